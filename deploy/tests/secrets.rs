//! The fleet secrets stay sealed: a sealed file opens only for its HSM and
//! ceremony, malformed files are refused, and no `Debug` shows a secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use backup_key_vault::bundle::artifact::to_hex;
use bkv_deploy::ceremony::ParticipantKey;
use bkv_deploy::seal::{self, ImportKey, SealError, SEALED_LEN};
use common::*;

#[test]
fn sealed_secrets_open_only_for_their_hsm_and_ceremony() {
    let mut w = three_sites();
    let outcome = w.ceremony();
    let digest = outcome.evidence.transcript.digest();
    let (id, blob) = &outcome.sealed[1];
    assert_eq!(id.as_str(), "hsm-2");
    assert_eq!(blob.len(), SEALED_LEN);

    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("hsm-2.json");
    w.hsms[1].save(&path).unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let import = ImportKey::from_bytes(
        &bkv_deploy::evidence::parse_hex::<32>(saved["import_key"].as_str().unwrap()).unwrap(),
    );
    let secrets = seal::open(blob, &import, &digest, "hsm-2").unwrap();
    assert_eq!(secrets.public_keys(), outcome.public_keys);

    // Another HSM's name, another ceremony, another key: nothing opens.
    assert_eq!(
        seal::open(blob, &import, &digest, "hsm-3").err(),
        Some(SealError::DoesNotOpen)
    );
    assert_eq!(
        seal::open(blob, &import, &[0; 32], "hsm-2").err(),
        Some(SealError::DoesNotOpen)
    );
    assert_eq!(
        seal::open(blob, &ImportKey::generate(), &digest, "hsm-2").err(),
        Some(SealError::DoesNotOpen)
    );
    // Malformed files are refused, never a panic.
    for len in [0, 1, 33, SEALED_LEN - 1, SEALED_LEN + 1] {
        let mut bad = blob.clone();
        bad.resize(len, 0);
        assert!(seal::open(&bad, &import, &digest, "hsm-2").is_err());
    }
    let mut bad = blob.clone();
    bad[0] = 2;
    assert_eq!(
        seal::open(&bad, &import, &digest, "hsm-2").err(),
        Some(SealError::Malformed)
    );
    let mut flipped = blob.clone();
    flipped[100] ^= 1;
    assert!(seal::open(&flipped, &import, &digest, "hsm-2").is_err());

    // The saved HSM state holds its own keys, never the fleet secrets; a
    // reloaded HSM holds nothing until it imports its sealed file.
    let encoded = secrets.to_bytes();
    let state_text = std::fs::read_to_string(&path).unwrap();
    assert!(!state_text.contains(&to_hex(&encoded[1..65])));
    assert!(!state_text.contains(&to_hex(&encoded[65..97])));
    let mut reloaded = bkv_deploy::sim::SimulatedHsm::load(&path).unwrap();
    assert!(reloaded.public_keys().is_none());
    assert_eq!(
        reloaded.import_sealed(blob, &digest).unwrap(),
        outcome.public_keys
    );

    // Debug never shows a secret.
    let shown = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        w.hsms[1], reloaded, import, outcome, w.participants[0], w.vendor
    );
    for part in [&encoded[1..65], &encoded[65..97], &encoded[97..129]] {
        assert!(!shown.contains(&to_hex(part)), "{shown}");
        assert!(!shown.contains(&format!("{part:?}")), "{shown}");
    }
    assert!(!shown.contains(&to_hex(&import.to_bytes()[..])));
    let participant = ParticipantKey::generate(name("dave"));
    assert!(!format!("{participant:?}").contains(&to_hex(&participant.seed()[..])));
}

#[test]
fn the_sealed_operator_key_opens_only_for_its_hsm_and_ceremony_and_never_as_fleet_secrets() {
    use bkv_deploy::seal::SEALED_OPERATOR_LEN;
    let mut w = three_sites();
    let outcome = w.ceremony();
    let digest = outcome.evidence.transcript.digest();
    assert_eq!(
        outcome.evidence.transcript.operator_key.0,
        w.operator.public_key()
    );
    let (id, blob) = &outcome.sealed_operator[1];
    assert_eq!(id.as_str(), "hsm-2");
    assert_eq!(blob.len(), SEALED_OPERATOR_LEN);
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("hsm-2.json");
    w.hsms[1].save(&path).unwrap();
    let hsm = bkv_deploy::sim::SimulatedHsm::load(&path).unwrap();
    let opened = hsm.open_operator_key(blob, &digest).unwrap();
    assert_eq!(opened.public_key(), w.operator.public_key());

    // Another HSM's file, another ceremony: nothing opens.
    let (_, other) = &outcome.sealed_operator[2];
    assert!(hsm.open_operator_key(other, &digest).is_err());
    assert!(hsm.open_operator_key(blob, &[0; 32]).is_err());
    // The labels differ: neither kind of file opens as the other.
    let (_, secrets_blob) = &outcome.sealed[1];
    assert!(hsm.open_operator_key(secrets_blob, &digest).is_err());
    assert!(hsm.open_sealed(blob, &digest).is_err());
    let mut relabelled = blob.clone();
    relabelled.resize(SEALED_LEN, 0);
    assert!(hsm.open_sealed(&relabelled, &digest).is_err());
    // Malformed files are refused, never a panic.
    for len in [0, 1, 33, SEALED_OPERATOR_LEN - 1, SEALED_OPERATOR_LEN + 1] {
        let mut bad = blob.clone();
        bad.resize(len, 0);
        assert!(hsm.open_operator_key(&bad, &digest).is_err());
    }
    let mut flipped = blob.clone();
    flipped[60] ^= 1;
    assert!(hsm.open_operator_key(&flipped, &digest).is_err());
    // Debug of the HSM or the key shows no seed.
    let shown = format!("{hsm:?} {opened:?}");
    assert!(!shown.contains(&to_hex(&opened.to_bytes()[..])), "{shown}");
}
