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
/// Longest accepted checkpoint note, in bytes (128 KiB): room for the
/// text and 16 signature lines of post-quantum size (C2SP signed-note asks
/// verifiers to accept at least 16 signatures, and an ML-DSA-87 signature
/// line is about 6.3 kB), SPEC.md §15.3.
pub const MAX_CHECKPOINT_LEN: usize = 128 * 1024;
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

/// The root hash of the empty tree, `SHA-256("")` (RFC 6962 §2.1; Go's
/// `tlog` writes 32 zero bytes instead, SPEC.md §15.2).
pub fn empty_root() -> [u8; HASH_LEN] {
    Sha256::digest(b"").into()
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

/// A checkpoint: the log's origin, its size, its Merkle root, and any
/// extension lines (C2SP tlog-checkpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (SPEC.md §15.3: the namespace).
    pub origin: String,
    /// Number of entries.
    pub tree_size: u64,
    /// RFC 6962 Merkle tree hash of the entries.
    pub root_hash: [u8; HASH_LEN],
    /// The extension lines after the root hash, in order and without their
    /// newlines: opaque, optional, covered by the signatures. Our auditor
    /// writes none; a verifier keeps them only to report them.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`, then each extension
    /// line and its newline.
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
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
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
    /// monitors that report what a log claimed). Strict: exact form,
    /// canonical numbers and root hash, at least one signature line
    /// (SPEC.md §15.3). Extension lines are kept in
    /// [`Checkpoint::extensions`].
    pub fn parse_note(note: &[u8]) -> Result<(Self, Vec<NoteSignature>), BundleError> {
        let bad = BundleError::CheckpointMalformed;
        if note.len() > MAX_CHECKPOINT_LEN {
            return Err(bad("too long"));
        }
        let note = core::str::from_utf8(note).map_err(|_| bad("not UTF-8"))?;
        // Control characters: U+0000..=U+001F except the newline (DEL,
        // 0x7F, is not one: Go's note.Open agrees).
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(bad("control character"));
        }
        let (text, signatures) = note.split_once("\n\n").ok_or(bad("no signature block"))?;
        let mut lines = text.split('\n');
        let origin = lines.next().ok_or(bad("origin"))?;
        let size = lines.next().ok_or(bad("tree size"))?;
        let root = lines.next().ok_or(bad("root hash"))?;
        let extensions: Vec<String> = lines.map(String::from).collect();
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
            extensions,
        };
        Ok((checkpoint, parsed))
    }

    /// Parses a checkpoint note and checks it under the pinned auditor keys
    /// as C2SP signed-note says (SPEC.md §15.3): the note is the log
    /// `origin`'s; every line by a known key (named `origin`, with the key
    /// id of a pinned key) verifies strictly, else the whole note is
    /// refused even if another line verifies; at least one does. Lines by
    /// other keys (witness cosignatures, other algorithms) are ignored,
    /// whatever their length; a repeated line of a known key is ignored
    /// after the first, as Go's `note.Open` does.
    pub fn verify_note(
        note: &[u8],
        origin: &str,
        auditor_keys: &[PinnedKey],
    ) -> Result<Self, BundleError> {
        let (checkpoint, signatures) = Self::parse_note(note)?;
        if checkpoint.origin != origin {
            return Err(BundleError::CheckpointOriginMismatch);
        }
        // The signed text is the note up to and including the newline
        // before the blank line: the body, exactly.
        let body = checkpoint.body();
        let mut seen: Vec<[u8; 4]> = Vec::new();
        for line in &signatures {
            if line.name != origin || seen.contains(&line.key_id) {
                continue;
            }
            let Some(key) = auditor_keys
                .iter()
                .find(|key| note_key_id(origin, key.as_bytes()) == line.key_id)
            else {
                continue;
            };
            seen.push(line.key_id);
            let good = line.canonical
                && <&[u8; SIGNATURE_LEN]>::try_from(line.signature.as_slice())
                    .is_ok_and(|sig| key.verify_strict(body.as_bytes(), sig));
            if !good {
                return Err(BundleError::CheckpointSignatureInvalid);
            }
        }
        if seen.is_empty() {
            Err(BundleError::CheckpointSignatureInvalid)
        } else {
            Ok(checkpoint)
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
    /// The signature bytes (64 for Ed25519; any length for other keys).
    pub signature: Vec<u8>,
    /// Whether the base64 was canonical (zero padding bits). A line by an
    /// unknown key may use Go's lenient encoding and is ignored all the
    /// same; a known key's line must be canonical (SPEC.md §15.3).
    pub canonical: bool,
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
        let (blob, canonical) = decode_base64_lenient(blob).ok_or(bad("signature encoding"))?;
        let (key_id, signature) = blob.split_first_chunk::<4>().ok_or(bad("signature"))?;
        if signature.is_empty() {
            return Err(bad("signature"));
        }
        Ok(Self {
            name: String::from(name),
            key_id: *key_id,
            signature: signature.to_vec(),
            canonical,
        })
    }
}

/// Padded standard base64 as Go's `base64.StdEncoding` reads it: padding
/// required, non-zero padding bits allowed. Returns the bytes and whether
/// the text was canonical; `None` if it is not base64 at all.
fn decode_base64_lenient(text: &str) -> Option<(Vec<u8>, bool)> {
    if let Ok(bytes) = Base64::decode_vec(text) {
        return Some((bytes, true));
    }
    // Clear the padding bits of the last data character and try again.
    let pad = text.bytes().rev().take_while(|&b| b == b'=').count();
    if text.is_empty() || !text.len().is_multiple_of(4) || pad == 0 || pad > 2 {
        return None;
    }
    let at = text.len() - pad - 1;
    let last = *text.as_bytes().get(at)?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let value = ALPHABET.iter().position(|&c| c == last)?;
    // One '=': 2 unused bits; two: 4.
    let mask = if pad == 1 { !0b11 } else { !0b1111 };
    let fixed = *ALPHABET.get(value & mask)?;
    let mut canonical = String::from(text);
    canonical.replace_range(at..=at, core::str::from_utf8(&[fixed]).ok()?);
    Base64::decode_vec(&canonical).ok().map(|b| (b, false))
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
            // The empty tree has one root, SHA-256(""): a size-0 checkpoint
            // with any other root is not the empty tree of this log.
            let empty = empty_root();
            return if self.hashes.is_empty()
                && old.root_hash == empty
                && (new.tree_size > 0 || new.root_hash == empty)
            {
                Ok(())
            } else {
                bad
            };
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
            extensions: Vec::new(),
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

    /// A signature line `— name base64(blob)` with `blob` given.
    fn line(name: &str, blob: &[u8]) -> String {
        alloc::format!("\u{2014} {name} {}\n", Base64::encode_string(blob))
    }

    #[test]
    fn extension_lines_are_signed_and_exposed() {
        let key = AuditorSigningKey::from_bytes(&[5; 32]);
        let pinned = [PinnedKey::new(key.public_key())];
        let mut cp = log(3).checkpoint("ns");
        cp.extensions = alloc::vec!["ext one".into(), "\u{2014} two".into()];
        let note = cp.sign(&key);
        assert_eq!(Checkpoint::verify_note(&note, "ns", &pinned).unwrap(), cp);
        // The signature covers them: dropping or changing one fails.
        let text = core::str::from_utf8(&note).unwrap();
        for forged in [
            text.replacen("ext one\n", "", 1),
            text.replacen("ext one", "ext 1", 1),
        ] {
            assert_eq!(
                Checkpoint::verify_note(forged.as_bytes(), "ns", &pinned),
                Err(BundleError::CheckpointSignatureInvalid)
            );
        }
    }

    #[test]
    fn signature_lines_follow_c2sp_signed_note() {
        let key = AuditorSigningKey::from_bytes(&[5; 32]);
        let pinned = [PinnedKey::new(key.public_key())];
        let cp = log(3).checkpoint("ns");
        let note = cp.sign(&key);
        let text = core::str::from_utf8(&note).unwrap();
        let (body, ours) = text.split_once("\n\n").unwrap();
        let ours = ours.trim_end_matches('\n');
        let with = |lines: &[&str]| alloc::format!("{body}\n\n{}", lines.concat());
        // An unknown key's line in Go's lenient base64 (non-zero padding
        // bits) is ignored, before or after ours.
        let lenient = "\u{2014} witness AAAAAAB=\n";
        assert!(Base64::decode_vec("AAAAAAB=").is_err());
        let ours_line = alloc::format!("{ours}\n");
        for lines in [[lenient, ours_line.as_str()], [&ours_line, lenient]] {
            assert_eq!(
                Checkpoint::verify_note(with(&lines).as_bytes(), "ns", &pinned).unwrap(),
                cp
            );
        }
        // Text that is not base64 at all is malformed, as in Go.
        let garbage = with(&[&ours_line, "\u{2014} witness !!!!\n"]);
        assert!(matches!(
            Checkpoint::verify_note(garbage.as_bytes(), "ns", &pinned),
            Err(BundleError::CheckpointMalformed(_))
        ));
        // A failing signature by a known key rejects the note even if a
        // good one follows. A repeated line of the same key after the first
        // is ignored, as Go's note.Open does (vectors/c2sp: "a failing
        // auditor line after a good one" opens in Go).
        let id = note_key_id("ns", &key.public_key());
        let bad_sig = line("ns", &[&id[..], &[7u8; 64][..]].concat());
        assert_eq!(
            Checkpoint::verify_note(with(&[&bad_sig, &ours_line]).as_bytes(), "ns", &pinned),
            Err(BundleError::CheckpointSignatureInvalid)
        );
        assert_eq!(
            Checkpoint::verify_note(with(&[&ours_line, &bad_sig]).as_bytes(), "ns", &pinned)
                .unwrap(),
            cp
        );
        // With two pinned keys, a failing line of the second rejects the
        // note the first signed, in either order.
        let second = AuditorSigningKey::from_bytes(&[9; 32]);
        let both = [pinned[0].clone(), PinnedKey::new(second.public_key())];
        let id2 = note_key_id("ns", &second.public_key());
        let bad_second = line("ns", &[&id2[..], &[7u8; 64][..]].concat());
        for lines in [[&bad_second, &ours_line], [&ours_line, &bad_second]] {
            assert_eq!(
                Checkpoint::verify_note(with(&lines.map(String::as_str)).as_bytes(), "ns", &both),
                Err(BundleError::CheckpointSignatureInvalid)
            );
        }
        // A known key's line of another length is a failing signature too.
        let short = line("ns", &[&id[..], &[7u8; 63][..]].concat());
        assert_eq!(
            Checkpoint::verify_note(with(&[&short, &ours_line]).as_bytes(), "ns", &pinned),
            Err(BundleError::CheckpointSignatureInvalid)
        );
        // An unknown key's line of any length is ignored.
        let other_id = note_key_id("witness", &key.public_key());
        let odd = line("witness", &[&other_id[..], &[7u8; 100][..]].concat());
        assert_eq!(
            Checkpoint::verify_note(with(&[&odd, &ours_line]).as_bytes(), "ns", &pinned).unwrap(),
            cp
        );
        // The known key's own line in non-canonical base64 is refused.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b64 = ours.rsplit(' ').next().unwrap();
        assert!(b64.ends_with('=') && !b64.ends_with("=="), "68 bytes");
        let at = b64.len() - 2;
        let v = ALPHABET
            .iter()
            .position(|&c| c == b64.as_bytes()[at])
            .unwrap();
        let mut lenient_ours = String::from(b64);
        lenient_ours.replace_range(at..=at, core::str::from_utf8(&[ALPHABET[v | 1]]).unwrap());
        assert_eq!(
            decode_base64_lenient(&lenient_ours),
            Some((Base64::decode_vec(b64).unwrap(), false))
        );
        let l = alloc::format!("\u{2014} ns {lenient_ours}\n");
        assert_eq!(
            Checkpoint::verify_note(with(&[&l]).as_bytes(), "ns", &pinned),
            Err(BundleError::CheckpointSignatureInvalid)
        );
        // No signature line at all is malformed.
        assert!(matches!(
            Checkpoint::verify_note(alloc::format!("{body}\n\n").as_bytes(), "ns", &pinned),
            Err(BundleError::CheckpointMalformed(_))
        ));
    }

    #[test]
    fn sixteen_post_quantum_sized_cosignatures_fit() {
        // ML-DSA-87 signatures are 4,627 bytes; 16 of them, by witnesses
        // with long names, and ours.
        let key = AuditorSigningKey::from_bytes(&[5; 32]);
        let pinned = [PinnedKey::new(key.public_key())];
        let cp = log(3).checkpoint("ns");
        let mut note = cp.sign(&key);
        for i in 0..16u8 {
            let name = alloc::format!("witness.example/{i:0>100}");
            let blob = [&[i; 4][..], &[i; 4627][..]].concat();
            note.extend_from_slice(line(&name, &blob).as_bytes());
        }
        assert!(note.len() > 100_000 && note.len() <= MAX_CHECKPOINT_LEN);
        assert_eq!(Checkpoint::verify_note(&note, "ns", &pinned).unwrap(), cp);
    }

    #[test]
    fn the_empty_tree_has_one_root() {
        let empty = MerkleLog::new().checkpoint("ns");
        let three = log(3).checkpoint("ns");
        let none = ConsistencyProof { hashes: Vec::new() };
        none.verify(&empty, &three).unwrap();
        none.verify(&empty, &empty).unwrap();
        // Go's tlog writes 32 zero bytes for it; that is not our empty tree.
        let zero = Checkpoint {
            root_hash: [0; 32],
            ..empty.clone()
        };
        assert!(none.verify(&zero, &three).is_err());
        assert!(none.verify(&empty, &zero).is_err());
    }
}
