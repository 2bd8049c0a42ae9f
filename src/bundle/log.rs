//! The auditor's log: RFC 6962/9162 Merkle hashing of (epoch, digest)
//! entries, C2SP checkpoints in the signed-note format, and the inclusion
//! and consistency proofs a client and a monitor verify (SPEC.md §15).
//!
//! The Merkle arithmetic and proof verification are `ct-merkle`'s (no_std,
//! constant-time root comparison). The checkpoint note parser and verifier
//! are ours: the published signed-note crates need `std`, and a client on an
//! HSM-class device must verify a checkpoint too. The auditor produces its
//! notes with Cloudflare's `signed_note`, and its tests check both that this
//! verifier accepts `signed_note`'s notes and the reverse.

use alloc::string::String;
use alloc::vec::Vec;

use base64ct::{Base64, Encoding};
use ct_merkle::{ConsistencyProof as CtConsistency, InclusionProof as CtInclusion, RootHash};
use sha2::{Digest, Sha256};

use super::artifact::DIGEST_LEN;
use super::ed25519::{PinnedKey, PUBLIC_KEY_LEN, SIGNATURE_LEN};
use super::statement::AuditorSigningKey;
use crate::error::BundleError;

/// The log's hash, SHA-256 (through the digest 0.11 traits ct-merkle uses).
type LogHash = sha2_011::Sha256;

/// Length of a Merkle tree hash.
pub const HASH_LEN: usize = 32;
/// Length of an encoded log entry: `u64be(epoch) || digest`.
pub const LEAF_LEN: usize = 8 + DIGEST_LEN;
/// Largest tree size accepted in a checkpoint (2^40 entries): far beyond any
/// real log of fleet keys, and well inside the range where the Merkle index
/// arithmetic cannot overflow.
pub const MAX_TREE_SIZE: u64 = 1 << 40;
/// Most hashes in an inclusion proof (the height of the largest tree).
pub const MAX_INCLUSION_HASHES: usize = 40;
/// Most hashes in a consistency proof (twice the height, a bound RFC 9162
/// §2.1.4 proofs never reach).
pub const MAX_CONSISTENCY_HASHES: usize = 80;
/// Longest accepted checkpoint note, in bytes.
pub const MAX_CHECKPOINT_LEN: usize = 4096;
/// Most signature lines in a checkpoint note (signed-note's own bound).
pub const MAX_NOTE_SIGNATURES: usize = 100;
/// The signed-note signature type of Ed25519.
pub const NOTE_ALG_ED25519: u8 = 0x01;

/// The log entry for one statement: `u64be(epoch) || digest` (SPEC.md
/// §15.2). Its Merkle leaf hash is `SHA-256(0x00 || entry)`.
pub fn entry(epoch: u64, digest: &[u8; DIGEST_LEN]) -> [u8; LEAF_LEN] {
    let mut out = [0u8; LEAF_LEN];
    let (head, tail) = out.split_at_mut(8);
    head.copy_from_slice(&epoch.to_be_bytes());
    tail.copy_from_slice(digest);
    out
}

/// The signed-note key id of an Ed25519 key under `name`:
/// `SHA-256(name || "\n" || 0x01 || public_key)[..4]`.
pub fn note_key_id(name: &str, public_key: &[u8; PUBLIC_KEY_LEN]) -> [u8; 4] {
    let hash = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([NOTE_ALG_ED25519])
        .chain_update(public_key)
        .finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(hash.get(..4).unwrap_or(&[0; 4]));
    id
}

/// A checkpoint: the log's origin, its size, and its Merkle root (C2SP
/// tlog-checkpoint, without extension lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (SPEC.md §15.3: the namespace).
    pub origin: String,
    /// Number of entries.
    pub tree_size: u64,
    /// RFC 6962 Merkle tree hash of the entries.
    pub root_hash: [u8; HASH_LEN],
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        let mut text = String::with_capacity(self.origin.len() + 70);
        text.push_str(&self.origin);
        text.push('\n');
        {
            use core::fmt::Write;
            let _ = write!(text, "{}", self.tree_size);
        }
        text.push('\n');
        text.push_str(&Base64::encode_string(&self.root_hash));
        text.push('\n');
        text
    }

    /// The signed note: the body, a blank line, and one signature line
    /// `— origin base64(key_id || signature)` by `key`.
    pub fn sign(&self, key: &AuditorSigningKey) -> Vec<u8> {
        let body = self.body();
        let signature = key.sign_note_text(body.as_bytes());
        let mut blob = Vec::with_capacity(4 + SIGNATURE_LEN);
        blob.extend_from_slice(&note_key_id(&self.origin, &key.public_key()));
        blob.extend_from_slice(&signature);
        let mut note = body.into_bytes();
        note.push(b'\n');
        note.extend_from_slice("\u{2014} ".as_bytes());
        note.extend_from_slice(self.origin.as_bytes());
        note.push(b' ');
        note.extend_from_slice(Base64::encode_string(&blob).as_bytes());
        note.push(b'\n');
        note
    }

    /// Parses a checkpoint note without checking any signature (for
    /// monitors that report what a log claimed). Strict: exact form, no
    /// extension lines, canonical numbers and base64.
    pub fn parse_note(note: &[u8]) -> Result<(Self, Vec<NoteSignature>), BundleError> {
        let bad = BundleError::CheckpointMalformed;
        if note.len() > MAX_CHECKPOINT_LEN {
            return Err(bad("too long"));
        }
        let note = core::str::from_utf8(note).map_err(|_| bad("not UTF-8"))?;
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(bad("control character"));
        }
        let (text, signatures) = note.split_once("\n\n").ok_or(bad("no signature block"))?;
        let mut lines = text.split('\n');
        let origin = lines.next().ok_or(bad("origin"))?;
        let size = lines.next().ok_or(bad("tree size"))?;
        let root = lines.next().ok_or(bad("root hash"))?;
        if lines.next().is_some() {
            return Err(bad("extension lines"));
        }
        if !super::artifact::is_valid_name(origin) {
            return Err(bad("origin"));
        }
        let tree_size = parse_decimal(size).ok_or(bad("tree size"))?;
        if tree_size > MAX_TREE_SIZE {
            return Err(bad("tree size too large"));
        }
        let root_hash: [u8; HASH_LEN] = Base64::decode_vec(root)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(bad("root hash"))?;
        let signatures = signatures
            .strip_suffix('\n')
            .ok_or(bad("signature block"))?;
        let mut parsed = Vec::new();
        for line in signatures.split('\n') {
            if parsed.len() == MAX_NOTE_SIGNATURES {
                return Err(bad("too many signatures"));
            }
            parsed.push(NoteSignature::parse(line)?);
        }
        let checkpoint = Self {
            origin: String::from(origin),
            tree_size,
            root_hash,
        };
        Ok((checkpoint, parsed))
    }

    /// Parses a checkpoint note and checks that it is the log `origin`'s and
    /// that one of its signature lines verifies, strictly, under one of the
    /// pinned auditor keys. Other lines (witness cosignatures, unknown keys)
    /// are ignored.
    pub fn verify_note(
        note: &[u8],
        origin: &str,
        auditor_keys: &[PinnedKey],
    ) -> Result<Self, BundleError> {
        let (checkpoint, signatures) = Self::parse_note(note)?;
        if checkpoint.origin != origin {
            return Err(BundleError::CheckpointOriginMismatch);
        }
        let body = checkpoint.body();
        let signed = signatures.iter().any(|line| {
            line.name == origin
                && auditor_keys.iter().any(|key| {
                    note_key_id(origin, key.as_bytes()) == line.key_id
                        && line
                            .signature
                            .as_slice()
                            .try_into()
                            .is_ok_and(|sig| key.verify_strict(body.as_bytes(), sig))
                })
        });
        if signed {
            Ok(checkpoint)
        } else {
            Err(BundleError::CheckpointSignatureInvalid)
        }
    }

    fn root(&self) -> RootHash<LogHash> {
        RootHash::new(self.root_hash.into(), self.tree_size)
    }
}

/// One signature line of a note: `— name base64(key_id || signature)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The 4-byte key id.
    pub key_id: [u8; 4],
    /// The signature bytes (64 for Ed25519).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    fn parse(line: &str) -> Result<Self, BundleError> {
        let bad = BundleError::CheckpointMalformed;
        let line = line
            .strip_prefix("\u{2014} ")
            .ok_or(bad("signature line"))?;
        let (name, blob) = line.split_once(' ').ok_or(bad("signature line"))?;
        if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
            return Err(bad("signature key name"));
        }
        let blob = Base64::decode_vec(blob).map_err(|_| bad("signature encoding"))?;
        let (key_id, signature) = blob.split_first_chunk::<4>().ok_or(bad("signature"))?;
        if signature.is_empty() {
            return Err(bad("signature"));
        }
        Ok(Self {
            name: String::from(name),
            key_id: *key_id,
            signature: signature.to_vec(),
        })
    }
}

/// A decimal without sign or leading zeros.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn concat(hashes: &[[u8; HASH_LEN]]) -> Vec<u8> {
    hashes.iter().flatten().copied().collect()
}

/// An RFC 6962 audit path: the entry's index and the sibling hashes from
/// the leaf up (SPEC.md §15.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry's index in the log (0 for the first entry).
    pub leaf_index: u64,
    /// The path, leaf level first.
    pub hashes: Vec<[u8; HASH_LEN]>,
}

impl InclusionProof {
    /// Checks that `entry` is at `leaf_index` in the tree `checkpoint`
    /// commits to. Never panics.
    pub fn verify(
        &self,
        entry: &[u8; LEAF_LEN],
        checkpoint: &Checkpoint,
    ) -> Result<(), BundleError> {
        if checkpoint.tree_size > MAX_TREE_SIZE
            || self.leaf_index >= checkpoint.tree_size
            || self.hashes.len() > MAX_INCLUSION_HASHES
        {
            return Err(BundleError::InclusionProofInvalid);
        }
        let proof = CtInclusion::<LogHash>::try_from_bytes(concat(&self.hashes))
            .map_err(|_| BundleError::InclusionProofInvalid)?;
        checkpoint
            .root()
            .verify_inclusion(entry, self.leaf_index, &proof)
            .map_err(|_| BundleError::InclusionProofInvalid)
    }
}

/// An RFC 6962 consistency proof between two sizes of one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The proof's hashes.
    pub hashes: Vec<[u8; HASH_LEN]>,
}

impl ConsistencyProof {
    /// Checks that the tree of `old` is a prefix of the tree of `new` (same
    /// origin, older size). Equal sizes need an empty proof and equal roots;
    /// an empty old tree is a prefix of anything. Never panics.
    pub fn verify(&self, old: &Checkpoint, new: &Checkpoint) -> Result<(), BundleError> {
        let bad = Err(BundleError::ConsistencyProofInvalid);
        if old.origin != new.origin
            || old.tree_size > new.tree_size
            || new.tree_size > MAX_TREE_SIZE
            || self.hashes.len() > MAX_CONSISTENCY_HASHES
        {
            return bad;
        }
        if old.tree_size == 0 {
            return if self.hashes.is_empty() { Ok(()) } else { bad };
        }
        if old.tree_size == new.tree_size {
            return if self.hashes.is_empty() && old.root() == new.root() {
                Ok(())
            } else {
                bad
            };
        }
        let proof = CtConsistency::<LogHash>::try_from_bytes(concat(&self.hashes))
            .map_err(|_| BundleError::ConsistencyProofInvalid)?;
        new.root()
            .verify_consistency(&old.root(), &proof)
            .map_err(|_| BundleError::ConsistencyProofInvalid)
    }
}

/// The hash of `entries` as one RFC 6962 tree, with the proofs the auditor
/// serves: a small in-memory log (ct-merkle's memory-backed tree).
#[derive(Clone, Debug, Default)]
pub struct MerkleLog {
    tree: ct_merkle::mem_backed_tree::MemoryBackedTree<LogHash, [u8; LEAF_LEN]>,
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry.
    pub fn push(&mut self, entry: [u8; LEAF_LEN]) {
        self.tree.push(entry);
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The entry at `index`.
    pub fn get(&self, index: u64) -> Option<&[u8; LEAF_LEN]> {
        self.tree.get(usize::try_from(index).ok()?)
    }

    /// The current root, as an unsigned checkpoint of log `origin`.
    pub fn checkpoint(&self, origin: &str) -> Checkpoint {
        let mut root_hash = [0u8; HASH_LEN];
        root_hash.copy_from_slice(self.tree.root().as_bytes());
        Checkpoint {
            origin: String::from(origin),
            tree_size: self.tree.len(),
            root_hash,
        }
    }

    /// The audit path of entry `index` in the current tree; `None` if there
    /// is no such entry.
    pub fn prove_inclusion(&self, index: u64) -> Option<InclusionProof> {
        if index >= self.len() {
            return None;
        }
        let proof = self.tree.prove_inclusion(usize::try_from(index).ok()?);
        Some(InclusionProof {
            leaf_index: index,
            hashes: split_hashes(proof.as_bytes()),
        })
    }

    /// A proof that the first `old_size` entries are a prefix of the current
    /// tree; `None` if `old_size` exceeds the current size.
    pub fn prove_consistency(&self, old_size: u64) -> Option<ConsistencyProof> {
        let len = self.len();
        if old_size > len {
            return None;
        }
        if old_size == 0 || old_size == len {
            return Some(ConsistencyProof { hashes: Vec::new() });
        }
        let additions = usize::try_from(len - old_size).ok()?;
        let proof = self.tree.prove_consistency(additions);
        Some(ConsistencyProof {
            hashes: split_hashes(proof.as_bytes()),
        })
    }

    /// The log of the first `size` entries (to prove against an older
    /// checkpoint); `None` if `size` exceeds the current size.
    pub fn prefix(&self, size: u64) -> Option<Self> {
        let size = usize::try_from(size).ok()?;
        let mut out = Self::new();
        for entry in self.tree.items().get(..size)? {
            out.push(*entry);
        }
        Some(out)
    }
}

fn split_hashes(bytes: &[u8]) -> Vec<[u8; HASH_LEN]> {
    bytes
        .chunks_exact(HASH_LEN)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> MerkleLog {
        let mut log = MerkleLog::new();
        for e in 1..=n {
            log.push(entry(e, &[e as u8; 32]));
        }
        log
    }

    #[test]
    fn inclusion_and_consistency_round_trip() {
        let key = AuditorSigningKey::from_bytes(&[5; 32]);
        for n in 1..=9u64 {
            let l = log(n);
            let cp = l.checkpoint("ns");
            let note = cp.sign(&key);
            assert_eq!(
                Checkpoint::verify_note(&note, "ns", &[PinnedKey::new(key.public_key())]).unwrap(),
                cp
            );
            for i in 0..n {
                let p = l.prove_inclusion(i).unwrap();
                p.verify(l.get(i).unwrap(), &cp).unwrap();
                // Another entry, index or tree does not verify.
                let other = entry(99, &[0; 32]);
                assert_eq!(
                    p.verify(&other, &cp),
                    Err(BundleError::InclusionProofInvalid)
                );
                let bigger = log(n + 1).checkpoint("ns");
                assert!(p.verify(l.get(i).unwrap(), &bigger).is_err());
            }
            for m in 0..=n {
                let old = l.prefix(m).unwrap().checkpoint("ns");
                let proof = l.prove_consistency(m).unwrap();
                proof.verify(&old, &cp).unwrap();
                if m > 0 && m < n {
                    let mut forked = log(m);
                    forked.push(entry(1000, &[9; 32]));
                    let forked = forked.checkpoint("ns");
                    assert!(proof.verify(&forked, &cp).is_err());
                }
            }
        }
        assert!(log(3).prove_inclusion(3).is_none());
        assert!(log(3).prove_consistency(4).is_none());
    }

    #[test]
    fn leaf_hash_is_rfc6962() {
        // One entry: the root is SHA-256(0x00 || entry).
        let l = log(1);
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(l.get(0).unwrap());
        assert_eq!(l.checkpoint("ns").root_hash, <[u8; 32]>::from(h.finalize()));
        // The empty tree's root is SHA-256 of nothing.
        assert_eq!(
            MerkleLog::new().checkpoint("ns").root_hash,
            <[u8; 32]>::from(Sha256::digest(b""))
        );
    }

    #[test]
    fn checkpoint_notes_are_strict() {
        let key = AuditorSigningKey::from_bytes(&[5; 32]);
        let other = AuditorSigningKey::from_bytes(&[6; 32]);
        let cp = log(3).checkpoint("ns");
        let note = cp.sign(&key);
        let pinned = [PinnedKey::new(key.public_key())];
        assert_eq!(
            Checkpoint::verify_note(&note, "other", &pinned),
            Err(BundleError::CheckpointOriginMismatch)
        );
        assert_eq!(
            Checkpoint::verify_note(&note, "ns", &[PinnedKey::new(other.public_key())]),
            Err(BundleError::CheckpointSignatureInvalid)
        );
        let text = core::str::from_utf8(&note).unwrap();
        let forged = text.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            Checkpoint::verify_note(forged.as_bytes(), "ns", &pinned),
            Err(BundleError::CheckpointSignatureInvalid)
        );
        for bad in [
            text.replacen("\n3\n", "\n03\n", 1),
            text.replacen("\n3\n", "\n3\nextension\n", 1),
            text.replacen("\n\n", "\n", 1),
            text.replacen('\u{2014}', "-", 1),
            String::from(&text[..text.len() - 1]),
        ] {
            assert!(
                matches!(
                    Checkpoint::verify_note(bad.as_bytes(), "ns", &pinned),
                    Err(BundleError::CheckpointMalformed(_))
                ),
                "{bad}"
            );
        }
        // A second signature line by an unknown key (a witness) is ignored.
        let mut cosigned = note.clone();
        let witness = Checkpoint {
            origin: "witness".into(),
            ..cp.clone()
        }
        .sign(&other);
        let line = witness.split(|&b| b == b'\n').nth(4).unwrap();
        cosigned.extend_from_slice(line);
        cosigned.push(b'\n');
        assert_eq!(
            Checkpoint::verify_note(&cosigned, "ns", &pinned).unwrap(),
            cp
        );
    }
}
