//! Decoder targets: each decoder, given any bytes, returns an error or a
//! value that re-encodes to exactly those bytes (SPEC.md §5, §8.2, §8.4,
//! §4.1: every format has one encoding per value, no trailing bytes).
//!
//! To cover a new format (bundles, checkpoints, proofs, fleet messages):
//! add a function here, a name to [`super::TARGETS`] and [`super::run`], a
//! target file under `fuzz_targets/` and seeds under `corpus/<target>/`.

use backup_key_vault::bundle::{Checkpoint, FleetKeyArtifact, ValidationBundle};
use backup_key_vault::vault::tree::{self, Proof};
use backup_key_vault::vault::{Command, RecordSlot};
use backup_key_vault::wire::{
    BundleRequest, BundleResponse, KeyRelease, MessageType, RecoveryFinish, RecoveryResponse,
    RecoveryResponseWithBundle, RecoveryStart, RegistrationConfirmation, RegistrationRequest,
    RegistrationResponse, RegistrationUpload, Rejection,
};
use backup_key_vault::{FleetSecrets, RecordId};

/// Checks one decoder's result against the bytes it was given.
fn check<T, E: AsRef<[u8]>, Error>(
    data: &[u8],
    decoded: Result<T, Error>,
    encode: impl Fn(&T) -> E,
) -> Option<T> {
    let value = decoded.ok()?;
    assert_eq!(
        encode(&value).as_ref(),
        data,
        "a decoded value must re-encode to the bytes it came from"
    );
    Some(value)
}

macro_rules! wire_message {
    ($fn:ident, $ty:ident) => {
        #[doc = concat!("[`", stringify!($ty), "`]: round trip, and the error agrees with the header.")]
        pub fn $fn(data: &[u8]) {
            let decoded = $ty::from_bytes(data);
            // The header rules of SPEC.md §5 come first, in order: an input
            // whose header is bad fails with the header's error.
            if let Err(header) = MessageType::of(data) {
                assert_eq!(decoded.as_ref().err(), Some(&header));
            } else if decoded.is_ok() {
                assert_eq!(data.len(), $ty::ENCODED_LEN);
            }
            check(data, decoded, |m| m.to_bytes());
        }
    };
}

wire_message!(registration_request, RegistrationRequest);
wire_message!(registration_response, RegistrationResponse);
wire_message!(registration_upload, RegistrationUpload);
wire_message!(registration_confirmation, RegistrationConfirmation);
wire_message!(recovery_start, RecoveryStart);
wire_message!(recovery_response, RecoveryResponse);
wire_message!(recovery_finish, RecoveryFinish);
wire_message!(key_release, KeyRelease);
wire_message!(rejection, Rejection);
wire_message!(bundle_request, BundleRequest);

macro_rules! variable_wire_message {
    ($fn:ident, $ty:ident) => {
        #[doc = concat!("[`", stringify!($ty), "`] (variable length): round trip, and the error agrees with the header.")]
        pub fn $fn(data: &[u8]) {
            let decoded = $ty::from_bytes(data);
            if let Err(header) = MessageType::of(data) {
                assert_eq!(decoded.as_ref().err(), Some(&header));
            }
            check(data, decoded, |m| m.to_bytes());
        }
    };
}

variable_wire_message!(bundle_response, BundleResponse);
variable_wire_message!(recovery_response_with_bundle, RecoveryResponseWithBundle);

/// [`ValidationBundle`] (SPEC.md §16): round trip; whatever decodes encodes.
pub fn validation_bundle(data: &[u8]) {
    check(data, ValidationBundle::from_bytes(data), |b| {
        b.to_bytes().expect("a decoded bundle encodes")
    });
}

/// [`FleetKeyArtifact`] (SPEC.md §14): only the canonical form decodes.
pub fn fleet_key_artifact(data: &[u8]) {
    check(data, FleetKeyArtifact::from_bytes(data), |a| {
        a.to_bytes().expect("a decoded artifact encodes")
    });
}

/// [`Checkpoint`] notes (SPEC.md §15): the parsed body is exactly the text
/// the note's signatures cover, at its start.
pub fn checkpoint(data: &[u8]) {
    if let Ok((checkpoint, _signatures)) = Checkpoint::parse_note(data) {
        let body = checkpoint.body();
        assert!(
            data.starts_with(body.as_bytes()),
            "the body is the note's start"
        );
        let reparsed = Checkpoint::parse_note(data).map(|(c, _)| c);
        assert_eq!(
            reparsed.as_ref(),
            Ok(&checkpoint),
            "parsing is deterministic"
        );
    }
}

/// [`Command`] (SPEC.md §8.2): round trip, and the record id is the bytes'.
pub fn command(data: &[u8]) {
    if let Some(c) = check(data, Command::from_bytes(data), |c| c.to_bytes()) {
        assert_eq!(data.get(2..34), Some(&c.record_id().0[..]));
        match &c {
            Command::Register {
                replaces,
                generation,
                payload,
                ..
            } => {
                // §8.2: flag and replaced generation are (0, 0) or (1, >= 1);
                // the created generation is >= 1 and follows the replaced one.
                assert_ne!(*replaces, Some(0), "a replaced generation is at least 1");
                assert!(*generation >= 1);
                if let Some(g) = replaces {
                    assert_eq!(g.checked_add(1), Some(*generation));
                }
                assert!(payload.max_attempts >= 1 && payload.stretching.is_valid());
            }
            Command::ResetAttempts { charge, .. } => assert!(*charge >= 1),
            _ => {}
        }
    }
}

/// [`RecordSlot`] (SPEC.md §8.4): round trip, and a live record's counters
/// are consistent.
pub fn record_slot(data: &[u8]) {
    if let Some(RecordSlot::Live(r)) = check(data, RecordSlot::from_bytes(data), |s| s.to_bytes()) {
        assert!(r.forgiven_through <= r.charges);
        assert!(r.attempts_used() <= r.payload.max_attempts);
        assert!(r.generation >= 1);
    }
}

/// [`Proof`] (SPEC.md §8.5): round trip; checking it, and computing an
/// update from it, never panics, and an update is computed only from a
/// proof that checks. Each id is also tried against the root the proof
/// implies for it ([`Proof::implied_root`]), so that `set` and `remove`
/// really run: the ids are fixed ones (an empty end fits any id), the end
/// leaf's id, and the deepest leaf's id with bit depth − 1 flipped.
pub fn record_proof(data: &[u8]) {
    if let Some(p) = check(data, Proof::from_bytes(data), |p| p.to_bytes()) {
        let value = tree::value_hash(data);
        let mut ids = vec![RecordId([0; 32]), RecordId([0xff; 32]), RecordId(value)];
        ids.extend(ids_on_path(data));
        for id in ids {
            let implied = p.implied_root(&id);
            for root in [tree::EMPTY, value, implied] {
                let checked = p.check(&root, &id);
                if root == implied {
                    assert!(checked != Err(tree::ProofError::RootMismatch));
                }
                let set = p.set(&root, &id, &value);
                assert_eq!(set.is_ok(), checked.is_ok());
                let removed = p.remove(&root, &id);
                assert_eq!(removed.is_ok(), checked.is_ok());
                if let (Ok(set), Ok(removed)) = (set, removed) {
                    assert!(!set.writes.is_empty());
                    if checked == Ok(tree::Lookup::Absent) {
                        assert_eq!(removed.root, root);
                    }
                }
            }
        }
    }
}

/// The ids a decoded proof's bytes name that fit its path: the end leaf's
/// id, and the deepest sibling leaf's id with bit depth − 1 flipped (SPEC.md
/// §8.5's layout: the end leaf at bytes 2..34, the deepest node in the last
/// 65 bytes, the depth after the end).
fn ids_on_path(data: &[u8]) -> Vec<RecordId> {
    let id_at = |at: usize| -> Option<RecordId> {
        let mut id = [0u8; 32];
        id.copy_from_slice(data.get(at..at + 32)?);
        Some(RecordId(id))
    };
    let mut ids = Vec::new();
    let end_leaf = data.get(1) == Some(&2);
    if end_leaf {
        ids.extend(id_at(2));
    }
    let at = if end_leaf { 66 } else { 2 };
    let depth = match data.get(at..at + 2) {
        Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])),
        _ => 0,
    };
    if let (Some(upper), Some(tag_at)) = (depth.checked_sub(1), data.len().checked_sub(65)) {
        if data.get(tag_at) == Some(&2) {
            if let Some(mut id) = id_at(tag_at + 1) {
                id.0[upper / 8] ^= 0x80 >> (upper % 8);
                ids.push(id);
            }
        }
    }
    ids
}

/// [`FleetSecrets`] (SPEC.md §4.1): round trip.
pub fn fleet_secrets(data: &[u8]) {
    if let Some(s) = check(data, FleetSecrets::from_bytes(data), |s| s.to_bytes()) {
        // Accepted secrets are usable: their public keys can be computed.
        let _ = s.public_keys();
    }
}
