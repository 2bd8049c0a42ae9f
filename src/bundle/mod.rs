//! Fleet keys over the air: validation bundles (SPEC.md §14–§18).
//!
//! A client that pins only the auditor's and the operator's keys learns a
//! fleet's public keys from a [`ValidationBundle`]: the fleet-key artifact
//! (JSON, [`artifact`]), the auditor's Ed25519 signature over plexi's
//! `SignatureMessage` ([`statement`]), the operator's counter-signature over
//! that signature, and an inclusion proof of the (epoch, digest) entry in
//! the auditor's Merkle log under a signed checkpoint ([`log`]).
//! [`TrustAnchors::verify`] runs every check of §17, in order, and returns a
//! [`VerifiedFleet`] only if all pass; each failure is its own
//! [`BundleError`].
//!
//! Persistence is explicit: the caller passes the newest epoch it has
//! stored and stores [`VerifiedFleet::epoch_to_store`] afterwards, so a
//! relay cannot roll the client back to an older fleet.

pub mod artifact;
pub mod ed25519;
pub mod log;
pub mod statement;

use alloc::string::String;
use alloc::vec::Vec;

use subtle::ConstantTimeEq;

pub use artifact::{artifact_digest, FleetKey, FleetKeyArtifact, KeyRole, DEFAULT_NAMESPACE};
pub use log::{Checkpoint, ConsistencyProof, InclusionProof, MerkleLog};
pub use statement::{AuditorSigningKey, OperatorSigningKey, SignatureMessage};

use crate::error::{BundleError, WireError};
use crate::fleet::FleetPublicKeys;
use artifact::{is_valid_name, DIGEST_LEN, MAX_ARTIFACT_LEN, MAX_NAME_LEN};
use ed25519::{PinnedKey, PUBLIC_KEY_LEN, SIGNATURE_LEN};
use log::{HASH_LEN, MAX_CHECKPOINT_LEN, MAX_INCLUSION_HASHES};

/// Version byte of the [`ValidationBundle`] encoding. Version 2 (SPEC.md
/// §13, revision 7) widened the checkpoint length to `u32be` so that a note
/// with 16 post-quantum cosignatures fits; version 3 (revision 14) carries
/// artifacts that name their realm and range of record ids (§14.1).
/// Versions 1 and 2 are refused.
pub const BUNDLE_VERSION: u8 = 3;
/// Longest encoded bundle: every field at its bound.
pub const MAX_BUNDLE_LEN: usize = 1
    + 1
    + MAX_NAME_LEN
    + 8
    + 8
    + DIGEST_LEN
    + PUBLIC_KEY_LEN
    + SIGNATURE_LEN
    + 1
    + PUBLIC_KEY_LEN
    + SIGNATURE_LEN
    + 4
    + MAX_ARTIFACT_LEN
    + 8
    + 1
    + MAX_INCLUSION_HASHES * HASH_LEN
    + 4
    + MAX_CHECKPOINT_LEN;

/// The operator's counter-signature: the key that made it, and Ed25519 over
/// the auditor's 64 signature bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterSignature {
    /// The operator's public key.
    pub operator_key: [u8; PUBLIC_KEY_LEN],
    /// The signature.
    pub signature: [u8; SIGNATURE_LEN],
}

/// Everything a client needs to trust one fleet's keys (SPEC.md §16).
#[derive(Clone, PartialEq, Eq)]
pub struct ValidationBundle {
    /// The namespace of the statement.
    pub namespace: String,
    /// The epoch of the statement.
    pub epoch: u64,
    /// When the auditor signed, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// SHA-256 of [`Self::artifact`].
    pub digest: [u8; DIGEST_LEN],
    /// The auditor's public key.
    pub auditor_key: [u8; PUBLIC_KEY_LEN],
    /// The auditor's signature over the [`SignatureMessage`].
    pub auditor_signature: [u8; SIGNATURE_LEN],
    /// The operator's counter-signature; `None` until the operator has made
    /// it (the auditor hands out bundles without one).
    pub counter_signature: Option<CounterSignature>,
    /// The fleet-key artifact, exactly as logged.
    pub artifact: Vec<u8>,
    /// The entry's audit path to [`Self::checkpoint`].
    pub inclusion: InclusionProof,
    /// The signed checkpoint note the proof leads to.
    pub checkpoint: Vec<u8>,
}

impl core::fmt::Debug for ValidationBundle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ValidationBundle")
            .field("namespace", &self.namespace)
            .field("epoch", &self.epoch)
            .field("digest", &artifact::to_hex(&self.digest))
            .field("counter_signed", &self.counter_signature.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads a bundle field by field with bounds; every failure is a
/// [`WireError`], never a panic.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(WireError::InvalidField("length"))?;
        let out = self.bytes.get(self.at..end).ok_or(WireError::Length {
            expected: end,
            found: self.bytes.len(),
        })?;
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let slice = self.take(N)?;
        slice
            .try_into()
            .map_err(|_| WireError::InvalidField("length"))
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

impl ValidationBundle {
    /// Encodes the bundle (SPEC.md §16). Fails if a field is out of the
    /// bounds the decoder enforces, so whatever encodes also decodes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        if !is_valid_name(&self.namespace) {
            return Err(WireError::InvalidField("namespace"));
        }
        if self.artifact.is_empty() || self.artifact.len() > MAX_ARTIFACT_LEN {
            return Err(WireError::InvalidField("artifact length"));
        }
        if self.inclusion.hashes.len() > MAX_INCLUSION_HASHES {
            return Err(WireError::InvalidField("inclusion proof length"));
        }
        if self.checkpoint.is_empty() || self.checkpoint.len() > MAX_CHECKPOINT_LEN {
            return Err(WireError::InvalidField("checkpoint length"));
        }
        let mut out = Vec::with_capacity(
            300 + self.artifact.len() + self.checkpoint.len() + 32 * self.inclusion.hashes.len(),
        );
        out.push(BUNDLE_VERSION);
        out.push(self.namespace.len() as u8);
        out.extend_from_slice(self.namespace.as_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.auditor_key);
        out.extend_from_slice(&self.auditor_signature);
        match &self.counter_signature {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&c.operator_key);
                out.extend_from_slice(&c.signature);
            }
        }
        out.extend_from_slice(&(self.artifact.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.artifact);
        out.extend_from_slice(&self.inclusion.leaf_index.to_be_bytes());
        out.push(self.inclusion.hashes.len() as u8);
        for h in &self.inclusion.hashes {
            out.extend_from_slice(h);
        }
        out.extend_from_slice(&(self.checkpoint.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.checkpoint);
        Ok(out)
    }

    /// Decodes a bundle strictly: known version, every length within its
    /// bound, no trailing bytes. Signatures, the artifact and the checkpoint
    /// are checked by [`TrustAnchors::verify`], not here.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.is_empty() {
            return Err(WireError::Empty);
        }
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(WireError::InvalidField("bundle length"));
        }
        let mut c = Cursor { bytes, at: 0 };
        let version = c.u8()?;
        if version != BUNDLE_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let ns_len = usize::from(c.u8()?);
        let namespace = core::str::from_utf8(c.take(ns_len)?)
            .ok()
            .filter(|n| is_valid_name(n))
            .ok_or(WireError::InvalidField("namespace"))?;
        let namespace = String::from(namespace);
        let epoch = c.u64()?;
        let timestamp_ms = c.u64()?;
        let digest = c.array()?;
        let auditor_key = c.array()?;
        let auditor_signature = c.array()?;
        let counter_signature = match c.u8()? {
            0 => None,
            1 => Some(CounterSignature {
                operator_key: c.array()?,
                signature: c.array()?,
            }),
            _ => return Err(WireError::InvalidField("counter-signature flag")),
        };
        let artifact_len = usize::try_from(c.u32()?).unwrap_or(usize::MAX);
        if artifact_len == 0 || artifact_len > MAX_ARTIFACT_LEN {
            return Err(WireError::InvalidField("artifact length"));
        }
        let artifact = c.take(artifact_len)?.to_vec();
        let leaf_index = c.u64()?;
        let count = usize::from(c.u8()?);
        if count > MAX_INCLUSION_HASHES {
            return Err(WireError::InvalidField("inclusion proof length"));
        }
        let mut hashes = Vec::with_capacity(count);
        for _ in 0..count {
            hashes.push(c.array()?);
        }
        let checkpoint_len = usize::try_from(c.u32()?).unwrap_or(usize::MAX);
        if checkpoint_len == 0 || checkpoint_len > MAX_CHECKPOINT_LEN {
            return Err(WireError::InvalidField("checkpoint length"));
        }
        let checkpoint = c.take(checkpoint_len)?.to_vec();
        if c.at != bytes.len() {
            return Err(WireError::InvalidField("trailing bytes"));
        }
        Ok(Self {
            namespace,
            epoch,
            timestamp_ms,
            digest,
            auditor_key,
            auditor_signature,
            counter_signature,
            artifact,
            inclusion: InclusionProof { leaf_index, hashes },
            checkpoint,
        })
    }

    /// The statement the auditor signed.
    pub fn statement(&self) -> SignatureMessage<'_> {
        SignatureMessage {
            namespace: &self.namespace,
            timestamp_ms: self.timestamp_ms,
            epoch: self.epoch,
            digest: self.digest,
        }
    }

    /// Adds (or replaces) the operator's counter-signature over the
    /// auditor's signature bytes. Done inside the fleet's HSMs.
    pub fn countersign(&mut self, operator: &OperatorSigningKey) {
        self.counter_signature = Some(CounterSignature {
            operator_key: operator.public_key(),
            signature: operator.countersign(&self.auditor_signature),
        });
    }
}

/// What a client pins: the auditor's keys and the operator's
/// counter-signing keys (several each, for rotation), and its namespace.
///
/// Each key is prepared for fast strict verification when the anchors are
/// made ([`PinnedKey`]: about a millisecond and 30 KiB per key), so make the
/// anchors once and keep them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustAnchors {
    namespace: String,
    auditor_keys: Vec<PinnedKey>,
    operator_keys: Vec<PinnedKey>,
}

impl TrustAnchors {
    /// Anchors for the default namespace.
    pub fn new(auditor_keys: &[[u8; 32]], operator_keys: &[[u8; 32]]) -> Self {
        Self {
            namespace: String::from(DEFAULT_NAMESPACE),
            auditor_keys: auditor_keys.iter().copied().map(PinnedKey::new).collect(),
            operator_keys: operator_keys.iter().copied().map(PinnedKey::new).collect(),
        }
    }

    /// Uses another namespace than [`DEFAULT_NAMESPACE`].
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = String::from(namespace);
        self
    }

    /// The namespace this client accepts.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pinned auditor keys.
    pub fn auditor_keys(&self) -> &[PinnedKey] {
        &self.auditor_keys
    }

    /// The pinned operator keys.
    pub fn operator_keys(&self) -> &[PinnedKey] {
        &self.operator_keys
    }

    /// Decodes and verifies a bundle; see [`Self::verify`].
    pub fn verify_bytes(
        &self,
        bundle: &[u8],
        now_ms: u64,
        stored_epoch: Option<u64>,
    ) -> Result<VerifiedFleet, BundleError> {
        self.verify(&ValidationBundle::from_bytes(bundle)?, now_ms, stored_epoch)
    }

    /// Runs the client's verification (SPEC.md §17), in this order, and
    /// returns the fleet only if every check passes:
    ///
    /// 1. the auditor key is pinned ([`BundleError::UnknownAuditorKey`]);
    /// 2. SHA-256 of the artifact is the digest ([`BundleError::ArtifactChanged`]);
    /// 3. the auditor's signature over the statement ([`BundleError::AuditorSignatureInvalid`]);
    /// 4. the counter-signature: present, by a pinned operator key, over the
    ///    auditor's signature bytes;
    /// 5. the namespace is this client's ([`BundleError::WrongNamespace`]);
    /// 6. the artifact decodes and names the same namespace and epoch;
    /// 7. the checkpoint is the namespace's log's and signed by a pinned
    ///    auditor key;
    /// 8. the entry (epoch, digest) is in the checkpoint's tree;
    /// 9. `now_ms` is inside the validity window;
    /// 10. the epoch is not older than `stored_epoch` ([`BundleError::Rollback`]);
    /// 11. the artifact lists one key for each role the client uses.
    ///
    /// `now_ms` is the app's time (milliseconds since the Unix epoch);
    /// `stored_epoch` the newest epoch the client stored, `None` on first use.
    pub fn verify(
        &self,
        bundle: &ValidationBundle,
        now_ms: u64,
        stored_epoch: Option<u64>,
    ) -> Result<VerifiedFleet, BundleError> {
        let auditor = find_key(&self.auditor_keys, &bundle.auditor_key)
            .ok_or(BundleError::UnknownAuditorKey)?;
        if !bool::from(artifact_digest(&bundle.artifact).ct_eq(&bundle.digest)) {
            return Err(BundleError::ArtifactChanged);
        }
        if !auditor.verify_strict(&bundle.statement().to_bytes(), &bundle.auditor_signature) {
            return Err(BundleError::AuditorSignatureInvalid);
        }
        let counter = bundle
            .counter_signature
            .as_ref()
            .ok_or(BundleError::CounterSignatureMissing)?;
        let operator = find_key(&self.operator_keys, &counter.operator_key)
            .ok_or(BundleError::UnknownOperatorKey)?;
        if !operator.verify_strict(&bundle.auditor_signature, &counter.signature) {
            return Err(BundleError::CounterSignatureInvalid);
        }
        if bundle.namespace != self.namespace {
            return Err(BundleError::WrongNamespace);
        }
        let artifact = FleetKeyArtifact::from_bytes(&bundle.artifact)?;
        if artifact.namespace != self.namespace {
            return Err(BundleError::WrongNamespace);
        }
        if artifact.epoch != bundle.epoch {
            return Err(BundleError::EpochMismatch);
        }
        let checkpoint =
            Checkpoint::verify_note(&bundle.checkpoint, &self.namespace, &self.auditor_keys)?;
        bundle
            .inclusion
            .verify(&log::entry(bundle.epoch, &bundle.digest), &checkpoint)?;
        if now_ms < artifact.not_before_ms {
            return Err(BundleError::NotYetValid);
        }
        if now_ms >= artifact.not_after_ms {
            return Err(BundleError::Expired);
        }
        if let Some(stored) = stored_epoch {
            if bundle.epoch < stored {
                return Err(BundleError::Rollback {
                    stored,
                    presented: bundle.epoch,
                });
            }
        }
        let keys = artifact.fleet_public_keys()?;
        Ok(VerifiedFleet {
            keys,
            artifact,
            digest: bundle.digest,
            checkpoint,
        })
    }
}

/// The pinned key equal to `key`, if any.
fn find_key<'a>(pinned: &'a [PinnedKey], key: &[u8; 32]) -> Option<&'a PinnedKey> {
    pinned.iter().find(|k| bool::from(k.as_bytes().ct_eq(key)))
}

/// A fleet whose bundle passed every check of §17. Only
/// [`TrustAnchors::verify`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedFleet {
    keys: FleetPublicKeys,
    artifact: FleetKeyArtifact,
    digest: [u8; DIGEST_LEN],
    checkpoint: Checkpoint,
}

impl VerifiedFleet {
    /// The fleet's keys, for [`crate::client::ClientConfig::from_verified_fleet`].
    pub fn public_keys(&self) -> FleetPublicKeys {
        self.keys
    }

    /// The epoch the client MUST store (durably) before it relies on the
    /// fleet: the next verification passes it back as `stored_epoch`.
    pub fn epoch_to_store(&self) -> u64 {
        self.artifact.epoch
    }

    /// Whether the fleet owns `record_id` (SPEC.md §14.1, §17 step 16):
    /// [`BundleError::RecordNotOwned`] if its range does not hold it. A
    /// client MUST call it before it sends anything about the record.
    pub fn check_record(&self, record_id: &crate::RecordId) -> Result<(), BundleError> {
        self.artifact.check_record(record_id)
    }

    /// The verified artifact.
    pub fn artifact(&self) -> &FleetKeyArtifact {
        &self.artifact
    }

    /// The artifact's digest.
    pub fn digest(&self) -> &[u8; DIGEST_LEN] {
        &self.digest
    }

    /// The verified checkpoint the entry was proven against.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Checks, in constant time, that `key` is the key the bundle lists for
    /// `role`: [`BundleError::KeyNotListed`] otherwise.
    pub fn check_key(&self, role: KeyRole, key: &[u8]) -> Result<(), BundleError> {
        let listed = self.artifact.key(role)?;
        if key.len() == listed.len() && bool::from(listed.ct_eq(key)) {
            Ok(())
        } else {
            Err(BundleError::KeyNotListed(role))
        }
    }
}

/// A bundle together with its encoding, known to be within the codec's
/// bounds: what the vault stores and the wire messages carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBundle {
    bundle: ValidationBundle,
    bytes: Vec<u8>,
}

impl EncodedBundle {
    /// Encodes `bundle`; fails if a field is out of bounds.
    pub fn new(bundle: ValidationBundle) -> Result<Self, WireError> {
        let bytes = bundle.to_bytes()?;
        Ok(Self { bundle, bytes })
    }

    /// Decodes strictly (see [`ValidationBundle::from_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        Ok(Self {
            bundle: ValidationBundle::from_bytes(bytes)?,
            bytes: bytes.to_vec(),
        })
    }

    /// The bundle.
    pub fn bundle(&self) -> &ValidationBundle {
        &self.bundle
    }

    /// Its encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}
