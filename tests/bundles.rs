//! Fleet keys over the air (SPEC.md §14–§18): a client that pins only the
//! auditor's and the operator's keys learns a fleet from its validation
//! bundle and registers and recovers against it; every way a bundle can be
//! wrong is refused with its own error; the codecs are strict and never
//! panic.

mod common;

use backup_key_vault::bundle::log::entry;
use backup_key_vault::bundle::{
    artifact_digest, AuditorSigningKey, EncodedBundle, FleetKeyArtifact, KeyRole, MerkleLog,
    OperatorSigningKey, TrustAnchors, ValidationBundle, DEFAULT_NAMESPACE,
};
use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::vault::{MemoryStore, RecordSlot, RecordStore, Vault, VaultPolicy};
use backup_key_vault::wire::{
    BundleRequest, BundleResponse, KeyRelease, MessageType, RecoveryResponseWithBundle,
    RegistrationConfirmation, RegistrationResponse, Rejection, RejectionCode,
};
use backup_key_vault::{
    BundleError, ClientError, FleetPublicKeys, FleetSecrets, RecoveryCode, StretchingParams,
    WireError,
};
use common::*;
use proptest::prelude::*;

const NOW: u64 = 5_000;

/// A minimal in-memory auditor over the core's log types (the real one is
/// the `bkv-auditor` crate): signs statements, logs entries, signs
/// checkpoints.
struct TestAuditor {
    key: AuditorSigningKey,
    namespace: String,
    log: MerkleLog,
}

impl TestAuditor {
    fn new(seed: u8, namespace: &str) -> Self {
        Self {
            key: AuditorSigningKey::from_bytes(&[seed; 32]),
            namespace: namespace.into(),
            log: MerkleLog::new(),
        }
    }

    /// Logs `artifact` at the next epoch and returns its bundle, proven
    /// against the new checkpoint, without a counter-signature.
    fn publish(&mut self, artifact: &[u8], epoch: u64) -> ValidationBundle {
        let digest = artifact_digest(artifact);
        self.log.push(entry(epoch, &digest));
        let mut bundle = ValidationBundle {
            namespace: self.namespace.clone(),
            epoch,
            timestamp_ms: 4_000 + epoch,
            digest,
            auditor_key: self.key.public_key(),
            auditor_signature: [0; 64],
            counter_signature: None,
            artifact: artifact.to_vec(),
            inclusion: self.log.prove_inclusion(self.log.len() - 1).unwrap(),
            checkpoint: self.log.checkpoint(&self.namespace).sign(&self.key),
        };
        bundle.auditor_signature = self.key.sign_statement(&bundle.statement());
        bundle
    }
}

fn artifact(keys: &FleetPublicKeys, epoch: u64, namespace: &str) -> Vec<u8> {
    FleetKeyArtifact::for_fleet(namespace, "fleet-a", epoch, keys, 1_000, 1_000_000)
        .to_bytes()
        .unwrap()
}

struct Setup {
    auditor: TestAuditor,
    operator: OperatorSigningKey,
    anchors: TrustAnchors,
    secrets: FleetSecrets,
    bundle: ValidationBundle,
}

fn setup(seed: u64) -> Setup {
    let mut rng = rng(seed);
    let secrets = FleetSecrets::generate(&mut rng);
    let mut auditor = TestAuditor::new(1, DEFAULT_NAMESPACE);
    let operator = OperatorSigningKey::from_bytes(&[2; 32]);
    let mut bundle = auditor.publish(&artifact(&secrets.public_keys(), 1, DEFAULT_NAMESPACE), 1);
    bundle.countersign(&operator);
    let anchors = TrustAnchors::new(&[auditor.key.public_key()], &[operator.public_key()]);
    Setup {
        auditor,
        operator,
        anchors,
        secrets,
        bundle,
    }
}

fn vault_with_bundle(secrets: &FleetSecrets, bundle: &ValidationBundle) -> Vault<MemoryStore> {
    let mut vault = Vault::new(
        secrets,
        VaultPolicy::insecure_test_only(),
        MemoryStore::new(),
    )
    .unwrap();
    vault
        .set_bundle(EncodedBundle::new(bundle.clone()).unwrap())
        .unwrap();
    vault
}

fn rejected(bytes: &[u8]) -> RejectionCode {
    Rejection::from_bytes(bytes).unwrap().code
}

#[test]
fn a_client_that_pins_only_auditor_and_operator_learns_the_fleet_and_uses_it() {
    let s = setup(1);
    let mut vault = vault_with_bundle(&s.secrets, &s.bundle);
    let mut rng = rng(2);
    // The app stores the newest epoch it has seen; nothing yet.
    let mut stored_epoch: Option<u64> = None;

    // 1. Ask the vault (through the relay) for its bundle, and verify it.
    let answer = vault.handle(&mut rng, NOW, &BundleRequest {}.to_bytes());
    let response = BundleResponse::from_bytes(&answer).unwrap();
    let fleet = s
        .anchors
        .verify(response.bundle.bundle(), NOW, stored_epoch)
        .unwrap();
    assert_eq!(fleet.public_keys(), s.secrets.public_keys());
    stored_epoch = Some(fleet.epoch_to_store());
    let config = ClientConfig::insecure_test_only_from_verified_fleet(&fleet);

    // 2. Register against the learned fleet, through the byte interface.
    let record = id(9);
    let code = RecoveryCode::new(b"learned over the air").unwrap();
    let (state, request) = Registration::start(&mut rng, &config, record, &code, None).unwrap();
    let answer = vault.handle(&mut rng, NOW, &request.to_bytes());
    let (state, upload) = state
        .finish(
            &mut rng,
            &RegistrationResponse::from_bytes(&answer).unwrap(),
            None,
        )
        .unwrap();
    let answer = vault.handle(&mut rng, NOW, &upload.to_bytes());
    let registered = state
        .finish(&RegistrationConfirmation::from_bytes(&answer).unwrap())
        .unwrap();

    // 3. Recover: the KE2 carries the bundle; the client checks it again.
    let (state, ke1) = Recovery::start(&mut rng, &config, record, &code).unwrap();
    let answer = vault.handle(&mut rng, NOW, &ke1.to_bytes());
    assert_eq!(
        MessageType::of(&answer).unwrap(),
        MessageType::RecoveryResponseWithBundle
    );
    let ke2 = RecoveryResponseWithBundle::from_bytes(&answer).unwrap();
    let (state, ke3, again) = state
        .finish_with_bundle(&mut rng, &ke2, &s.anchors, NOW, stored_epoch)
        .unwrap();
    assert_eq!(again.epoch_to_store(), 1);
    let answer = vault.handle(&mut rng, NOW, &ke3.to_bytes());
    let recovered = state
        .finish(&KeyRelease::from_bytes(&answer).unwrap())
        .unwrap();
    assert_eq!(recovered.backup_key, registered.backup_key);
}

#[test]
fn a_vault_without_a_bundle_says_so_and_answers_ke1_as_before() {
    let mut w = World::new(3);
    let answer = w.vault.handle(&mut w.rng, 0, &BundleRequest {}.to_bytes());
    assert_eq!(rejected(&answer), RejectionCode::NoBundle);
    w.register(id(1), "code").unwrap();
    let code = RecoveryCode::new(b"code").unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    assert_eq!(
        w.vault
            .recovery_start_with_bundle(&mut w.rng, 0, &ke1)
            .unwrap_err(),
        backup_key_vault::VaultError::NoBundle
    );
    // Nothing was charged by the refused request.
    let answer = w.vault.handle(&mut w.rng, 0, &ke1.to_bytes());
    let ke2 = backup_key_vault::wire::RecoveryResponse::from_bytes(&answer).unwrap();
    assert_eq!(state.open(&ke2).unwrap().attempts_remaining, 9);
}

#[test]
fn the_vault_refuses_a_bundle_for_other_keys_or_without_counter_signature() {
    let s = setup(4);
    let other = FleetSecrets::generate(&mut rng(5));
    let mut vault = Vault::new(
        &other,
        VaultPolicy::insecure_test_only(),
        MemoryStore::new(),
    )
    .unwrap();
    assert_eq!(
        vault.set_bundle(EncodedBundle::new(s.bundle.clone()).unwrap()),
        Err(BundleError::KeyNotListed(KeyRole::OpaqueKeyExchange))
    );
    let mut unsigned = s.bundle.clone();
    unsigned.counter_signature = None;
    let mut vault = Vault::new(
        &s.secrets,
        VaultPolicy::insecure_test_only(),
        MemoryStore::new(),
    )
    .unwrap();
    assert_eq!(
        vault.set_bundle(EncodedBundle::new(unsigned).unwrap()),
        Err(BundleError::CounterSignatureMissing)
    );
    assert!(vault.bundle().is_none());
}

fn verify(s: &Setup, bundle: &ValidationBundle) -> Result<u64, BundleError> {
    s.anchors
        .verify(bundle, NOW, None)
        .map(|f| f.epoch_to_store())
}

#[test]
fn artifact_byte_changed() {
    let s = setup(10);
    let mut b = s.bundle.clone();
    let last = b.artifact.len() - 3;
    b.artifact[last] ^= 1;
    assert_eq!(verify(&s, &b), Err(BundleError::ArtifactChanged));
}

#[test]
fn auditor_signature_by_an_unknown_key() {
    let s = setup(11);
    let mut rogue = TestAuditor::new(7, DEFAULT_NAMESPACE);
    let mut b = rogue.publish(&s.bundle.artifact, 1);
    b.countersign(&s.operator);
    assert_eq!(verify(&s, &b), Err(BundleError::UnknownAuditorKey));
}

#[test]
fn auditor_signature_over_another_epoch() {
    let mut s = setup(12);
    let keys = s.secrets.public_keys();
    let mut second = s.auditor.publish(&artifact(&keys, 2, DEFAULT_NAMESPACE), 2);
    second.countersign(&s.operator);
    assert_eq!(verify(&s, &second), Ok(2));
    // Epoch 1's signature on epoch 2's statement.
    second.auditor_signature = s.bundle.auditor_signature;
    second.countersign(&s.operator);
    assert_eq!(
        verify(&s, &second),
        Err(BundleError::AuditorSignatureInvalid)
    );
    // Or the statement's epoch changed under a valid signature.
    let mut b = s.bundle.clone();
    b.epoch = 2;
    assert_eq!(verify(&s, &b), Err(BundleError::AuditorSignatureInvalid));
}

#[test]
fn counter_signature_missing() {
    let s = setup(13);
    let mut b = s.bundle.clone();
    b.counter_signature = None;
    assert_eq!(verify(&s, &b), Err(BundleError::CounterSignatureMissing));
}

#[test]
fn counter_signature_over_other_bytes() {
    let s = setup(14);
    let mut b = s.bundle.clone();
    let mut counter = b.counter_signature.unwrap();
    let mut other = b.auditor_signature;
    other[0] ^= 1;
    counter.signature = s.operator.countersign(&other);
    b.counter_signature = Some(counter);
    assert_eq!(verify(&s, &b), Err(BundleError::CounterSignatureInvalid));
}

#[test]
fn counter_signature_by_an_unknown_operator_key() {
    let s = setup(15);
    let mut b = s.bundle.clone();
    b.countersign(&OperatorSigningKey::from_bytes(&[9; 32]));
    assert_eq!(verify(&s, &b), Err(BundleError::UnknownOperatorKey));
}

#[test]
fn several_pinned_keys_each_work() {
    let s = setup(16);
    let anchors = TrustAnchors::new(
        &[[5; 32], s.auditor.key.public_key()],
        &[[6; 32], s.operator.public_key()],
    );
    assert!(anchors.verify(&s.bundle, NOW, None).is_ok());
}

#[test]
fn wrong_namespace() {
    let s = setup(17);
    let mut auditor = TestAuditor::new(1, "other.fleet_keys.v1");
    let mut b = auditor.publish(
        &artifact(&s.secrets.public_keys(), 1, "other.fleet_keys.v1"),
        1,
    );
    b.countersign(&s.operator);
    assert_eq!(verify(&s, &b), Err(BundleError::WrongNamespace));
    // The same bundle is fine for a client of that namespace.
    let anchors = s.anchors.clone().with_namespace("other.fleet_keys.v1");
    assert!(anchors.verify(&b, NOW, None).is_ok());
}

#[test]
fn expired_and_not_yet_valid() {
    let s = setup(18);
    assert_eq!(
        s.anchors.verify(&s.bundle, 1_000_000, None).unwrap_err(),
        BundleError::Expired
    );
    assert_eq!(
        s.anchors.verify(&s.bundle, 999, None).unwrap_err(),
        BundleError::NotYetValid
    );
    assert!(s.anchors.verify(&s.bundle, 999_999, None).is_ok());
    assert!(s.anchors.verify(&s.bundle, 1_000, None).is_ok());
}

#[test]
fn rollback_to_an_older_epoch() {
    let mut s = setup(19);
    let keys = s.secrets.public_keys();
    let mut second = s.auditor.publish(&artifact(&keys, 2, DEFAULT_NAMESPACE), 2);
    second.countersign(&s.operator);
    let stored = s
        .anchors
        .verify(&second, NOW, Some(1))
        .unwrap()
        .epoch_to_store();
    assert_eq!(stored, 2);
    // Epoch 1's bundle is still valid in itself, but older than what the
    // client stored.
    assert_eq!(
        s.anchors.verify(&s.bundle, NOW, Some(stored)).unwrap_err(),
        BundleError::Rollback {
            stored: 2,
            presented: 1
        }
    );
    // The same epoch again is fine.
    assert!(s.anchors.verify(&second, NOW, Some(2)).is_ok());
}

#[test]
fn inclusion_proof_for_another_tree() {
    let mut s = setup(20);
    let keys = s.secrets.public_keys();
    let second = s.auditor.publish(&artifact(&keys, 2, DEFAULT_NAMESPACE), 2);
    // Epoch 1's proof (made in the 1-entry tree) with the 2-entry checkpoint.
    let mut b = s.bundle.clone();
    b.checkpoint = second.checkpoint.clone();
    assert_eq!(verify(&s, &b), Err(BundleError::InclusionProofInvalid));
    // Another index in the right tree.
    let mut b = s.bundle.clone();
    b.inclusion.leaf_index = 1;
    b.checkpoint = second.checkpoint.clone();
    b.inclusion.hashes = second.inclusion.hashes.clone();
    assert_eq!(verify(&s, &b), Err(BundleError::InclusionProofInvalid));
}

#[test]
fn checkpoint_of_another_log_or_signer() {
    let s = setup(21);
    let mut b = s.bundle.clone();
    let rogue = AuditorSigningKey::from_bytes(&[8; 32]);
    let mut log = MerkleLog::new();
    log.push(entry(1, &b.digest));
    b.checkpoint = log.checkpoint(DEFAULT_NAMESPACE).sign(&rogue);
    assert_eq!(verify(&s, &b), Err(BundleError::CheckpointSignatureInvalid));
    b.checkpoint = log.checkpoint("another.log").sign(&s.auditor.key);
    assert_eq!(verify(&s, &b), Err(BundleError::CheckpointOriginMismatch));
}

#[test]
fn artifact_epoch_differs_from_the_signed_epoch() {
    let s = setup(22);
    let mut auditor = TestAuditor::new(1, DEFAULT_NAMESPACE);
    // The auditor logs, at epoch 1, an artifact that says epoch 5.
    let mut b = auditor.publish(&artifact(&s.secrets.public_keys(), 5, DEFAULT_NAMESPACE), 1);
    b.countersign(&s.operator);
    assert_eq!(verify(&s, &b), Err(BundleError::EpochMismatch));
}

#[test]
fn a_relay_that_attaches_another_fleets_bundle_to_ke2_is_caught() {
    // The client registered with fleet A (pinned); the relay then attaches
    // a perfectly valid bundle of fleet B to A's KE2.
    let mut w = World::new(23);
    w.register(id(1), "code").unwrap();
    let b = setup(24);
    let code = RecoveryCode::new(b"code").unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let response = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let forged = RecoveryResponseWithBundle {
        response,
        bundle: EncodedBundle::new(b.bundle.clone()).unwrap(),
    };
    let Err(err) = state.finish_with_bundle(&mut w.rng, &forged, &b.anchors, NOW, None) else {
        panic!("accepted another fleet's bundle");
    };
    // The same error as a wrong code (SPEC.md §6.2): the envelope opened,
    // and a relay must not learn that from the app.
    assert_eq!(err, ClientError::RecoveryFailed);
}

#[test]
fn a_vault_whose_key_exchange_key_the_bundle_does_not_list_is_caught_at_registration() {
    // Fleet C shares A's transport key and OPRF seed but has another
    // key-exchange key: it can open A's registration requests, and answers
    // with its own key-exchange key.
    let s = setup(25);
    let mut bytes = s.secrets.to_bytes().to_vec();
    let other = FleetSecrets::generate(&mut rng(26)).to_bytes();
    bytes[65..97].copy_from_slice(&other[65..97]);
    let c = FleetSecrets::from_bytes(&bytes).unwrap();
    assert_eq!(c.public_keys().transport, s.secrets.public_keys().transport);
    let mut vault_c =
        Vault::new(&c, VaultPolicy::insecure_test_only(), MemoryStore::new()).unwrap();
    let fleet = s.anchors.verify(&s.bundle, NOW, None).unwrap();
    let config = ClientConfig::insecure_test_only_from_verified_fleet(&fleet);
    let mut rng = rng(27);
    let code = RecoveryCode::new(b"code").unwrap();
    let (state, request) = Registration::start(&mut rng, &config, id(2), &code, None).unwrap();
    let response = vault_c.registration_request(&mut rng, 0, &request).unwrap();
    assert_eq!(
        state.finish(&mut rng, &response, None).err(),
        Some(ClientError::Bundle(BundleError::KeyNotListed(
            KeyRole::OpaqueKeyExchange
        )))
    );
    // A pinned client reports the same as before.
    let pinned = ClientConfig::insecure_test_only(s.secrets.public_keys());
    let (state, request) = Registration::start(&mut rng, &pinned, id(3), &code, None).unwrap();
    let response = vault_c.registration_request(&mut rng, 0, &request).unwrap();
    assert_eq!(
        state.finish(&mut rng, &response, None).err(),
        Some(ClientError::FleetKeyMismatch)
    );
}

#[test]
fn verified_fleet_checks_keys_per_role() {
    let s = setup(28);
    let fleet = s.anchors.verify(&s.bundle, NOW, None).unwrap();
    let keys = s.secrets.public_keys();
    assert!(fleet
        .check_key(KeyRole::OpaqueKeyExchange, &keys.key_exchange)
        .is_ok());
    assert!(fleet
        .check_key(KeyRole::HpkeTransport, keys.transport.as_bytes())
        .is_ok());
    // The transport key is not listed as the key-exchange key.
    assert_eq!(
        fleet.check_key(KeyRole::OpaqueKeyExchange, keys.transport.as_bytes()),
        Err(BundleError::KeyNotListed(KeyRole::OpaqueKeyExchange))
    );
    // Another key of the right length, differing in one byte, is not it.
    let mut other = keys.key_exchange;
    other[31] ^= 1;
    assert_eq!(
        fleet.check_key(KeyRole::OpaqueKeyExchange, &other),
        Err(BundleError::KeyNotListed(KeyRole::OpaqueKeyExchange))
    );
}

// ----- Codecs ------------------------------------------------------------

fn valid_bundle_bytes() -> Vec<u8> {
    setup(30).bundle.to_bytes().unwrap()
}

#[test]
fn bundle_codec_round_trips_and_is_strict() {
    let bytes = valid_bundle_bytes();
    let decoded = ValidationBundle::from_bytes(&bytes).unwrap();
    assert_eq!(decoded.to_bytes().unwrap(), bytes);
    // Every strict prefix is refused.
    for n in 0..bytes.len() {
        assert!(
            ValidationBundle::from_bytes(&bytes[..n]).is_err(),
            "prefix {n}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        ValidationBundle::from_bytes(&long),
        Err(WireError::InvalidField("trailing bytes"))
    );
    // Version 3 (SPEC.md §16.1, revision 14); version 1, with its u16
    // checkpoint length, and version 2, whose artifacts named no range,
    // are retired.
    assert_eq!(bytes[0], 3);
    for v in [1, 2, 4] {
        let mut version = bytes.clone();
        version[0] = v;
        assert_eq!(
            ValidationBundle::from_bytes(&version),
            Err(WireError::UnsupportedVersion(v))
        );
    }
    let mut flag = bytes.clone();
    let flag_at = 2 + DEFAULT_NAMESPACE.len() + 8 + 8 + 32 + 32 + 64;
    flag[flag_at] = 2;
    assert_eq!(
        ValidationBundle::from_bytes(&flag),
        Err(WireError::InvalidField("counter-signature flag"))
    );
    let mut ns = bytes.clone();
    ns[2] = b' ';
    assert_eq!(
        ValidationBundle::from_bytes(&ns),
        Err(WireError::InvalidField("namespace"))
    );
    assert_eq!(ValidationBundle::from_bytes(&[]), Err(WireError::Empty));
}

#[test]
fn bundle_messages_are_strict() {
    let bundle = EncodedBundle::from_bytes(&valid_bundle_bytes()).unwrap();
    let msg = BundleResponse {
        bundle: bundle.clone(),
    };
    let bytes = msg.to_bytes();
    assert_eq!(BundleResponse::from_bytes(&bytes).unwrap(), msg);
    for n in 0..bytes.len() {
        assert!(BundleResponse::from_bytes(&bytes[..n]).is_err());
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        BundleResponse::from_bytes(&long),
        Err(WireError::Length { .. })
    ));
    let mut huge = bytes.clone();
    huge[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        BundleResponse::from_bytes(&huge),
        Err(WireError::InvalidField("bundle length"))
    );
    assert_eq!(
        BundleRequest::from_bytes(&BundleRequest {}.to_bytes()),
        Ok(BundleRequest {})
    );
    assert!(BundleRequest::from_bytes(&[0x0A, 1, 0]).is_err());

    let s = setup(31);
    let mut vault = vault_with_bundle(&s.secrets, &s.bundle);
    let mut rng = rng(32);
    let code = RecoveryCode::new(b"c").unwrap();
    let config = ClientConfig::insecure_test_only(s.secrets.public_keys());
    let (_, ke1) = Recovery::start(&mut rng, &config, id(1), &code).unwrap();
    let answer = vault.handle(&mut rng, 0, &ke1.to_bytes());
    let msg = RecoveryResponseWithBundle::from_bytes(&answer).unwrap();
    assert_eq!(msg.to_bytes(), answer);
    for n in 0..answer.len() {
        assert!(RecoveryResponseWithBundle::from_bytes(&answer[..n]).is_err());
    }
    // Its fixed part is a RecoveryResponse's: a retired version-1 header
    // is refused.
    let mut params = answer.clone();
    params[1] = 1;
    assert_eq!(
        RecoveryResponseWithBundle::from_bytes(&params),
        Err(WireError::UnsupportedVersion(1))
    );
    // A plain RecoveryResponse decoder refuses it, and the reverse.
    assert!(backup_key_vault::wire::RecoveryResponse::from_bytes(&answer).is_err());
    let _ = FleetSecrets::generate(&mut rng);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ValidationBundle::from_bytes(&bytes);
        let _ = BundleResponse::from_bytes(&bytes);
        let _ = RecoveryResponseWithBundle::from_bytes(&bytes);
        let _ = FleetKeyArtifact::from_bytes(&bytes);
        let _ = backup_key_vault::bundle::Checkpoint::parse_note(&bytes);
    }

    #[test]
    fn mutated_bundles_never_panic_and_never_verify_unless_unchanged(
        at in 0usize..4000, byte in any::<u8>()
    ) {
        let s = setup(33);
        let mut bytes = s.bundle.to_bytes().unwrap();
        let at = at % bytes.len();
        let changed = bytes[at] != byte;
        bytes[at] = byte;
        let result = s.anchors.verify_bytes(&bytes, NOW, None);
        if changed {
            prop_assert!(result.is_err());
        } else {
            prop_assert!(result.is_ok());
        }
    }
}

/// SPEC.md §15.3, §16.1: a checkpoint note with 16 cosignatures of
/// ML-DSA-87 size (about 100 kB) travels in a bundle, through a
/// `BundleResponse`, and the client accepts it (the cosignatures are by
/// keys it does not know, so they are ignored).
#[test]
fn a_checkpoint_with_sixteen_post_quantum_cosignatures_fits_a_bundle() {
    use base64ct::{Base64, Encoding};
    let s = setup(31);
    let mut bundle = s.bundle.clone();
    for i in 0..16u8 {
        let blob = [&[i; 4][..], &[i; 4627][..]].concat();
        let line = format!(
            "\u{2014} witness-{i:02}.example/{} {}\n",
            "w".repeat(90),
            Base64::encode_string(&blob)
        );
        bundle.checkpoint.extend_from_slice(line.as_bytes());
    }
    assert!(bundle.checkpoint.len() > 100_000);
    let bytes = bundle.to_bytes().unwrap();
    let response = BundleResponse::from_bytes(
        &BundleResponse {
            bundle: EncodedBundle::from_bytes(&bytes).unwrap(),
        }
        .to_bytes(),
    )
    .unwrap();
    s.anchors
        .verify_bytes(response.bundle.as_bytes(), NOW, None)
        .unwrap();
}

#[test]
fn a_member_installs_only_bundles_its_own_anchors_accept_for_its_own_keys() {
    let mut s = setup(40);
    let mut vault = Vault::new(
        &s.secrets,
        VaultPolicy::insecure_test_only(),
        MemoryStore::new(),
    )
    .unwrap();
    let encoded = |b: &ValidationBundle| EncodedBundle::new(b.clone()).unwrap();

    // An auditor the member was not started with.
    let mut stranger = TestAuditor::new(7, DEFAULT_NAMESPACE);
    let mut foreign =
        stranger.publish(&artifact(&s.secrets.public_keys(), 1, DEFAULT_NAMESPACE), 1);
    foreign.countersign(&s.operator);
    assert_eq!(
        vault.install_bundle(&s.anchors, encoded(&foreign), NOW),
        Err(BundleError::UnknownAuditorKey)
    );
    // A counter-signature by another operator key.
    let mut other_operator = s.bundle.clone();
    other_operator.countersign(&OperatorSigningKey::from_bytes(&[9; 32]));
    assert_eq!(
        vault.install_bundle(&s.anchors, encoded(&other_operator), NOW),
        Err(BundleError::UnknownOperatorKey)
    );
    // Another fleet's keys, properly logged and counter-signed.
    let other = FleetSecrets::generate(&mut rng(41));
    let mut other_fleet = s
        .auditor
        .publish(&artifact(&other.public_keys(), 2, DEFAULT_NAMESPACE), 2);
    other_fleet.countersign(&s.operator);
    assert_eq!(
        vault.install_bundle(&s.anchors, encoded(&other_fleet), NOW),
        Err(BundleError::KeyNotListed(KeyRole::OpaqueKeyExchange))
    );
    assert!(vault.bundle().is_none(), "nothing was installed");

    // The right bundle installs; the same fleet republished at epoch 3
    // replaces it; epoch 1 is then refused as a rollback.
    assert_eq!(
        vault
            .install_bundle(&s.anchors, encoded(&s.bundle), NOW)
            .unwrap()
            .epoch_to_store(),
        1
    );
    let mut newer = s
        .auditor
        .publish(&artifact(&s.secrets.public_keys(), 3, DEFAULT_NAMESPACE), 3);
    newer.countersign(&s.operator);
    vault
        .install_bundle(&s.anchors, encoded(&newer), NOW)
        .unwrap();
    assert_eq!(
        vault.check_bundle(&s.anchors, &encoded(&s.bundle), NOW),
        Err(BundleError::Rollback {
            stored: 3,
            presented: 1
        })
    );
    assert_eq!(vault.bundle().unwrap().bundle().epoch, 3);
    // Expired at the member's clock.
    assert_eq!(
        vault.check_bundle(&s.anchors, &encoded(&newer), 2_000_000),
        Err(BundleError::Expired)
    );
}

/// Registers `record` through `vault`'s byte interface, then recovers it
/// with the bundle attached to KE2; returns whether the keys match.
fn register_then_recover(
    vault: &mut Vault<MemoryStore>,
    anchors: &TrustAnchors,
    config: &ClientConfig,
    record: backup_key_vault::RecordId,
    rng: &mut common::Rng,
) -> bool {
    let code = RecoveryCode::new(b"realm code").unwrap();
    let (state, request) = Registration::start(rng, config, record, &code, None).unwrap();
    let answer = vault.handle(rng, NOW, &request.to_bytes());
    let (state, upload) = state
        .finish(
            rng,
            &RegistrationResponse::from_bytes(&answer).unwrap(),
            None,
        )
        .unwrap();
    let answer = vault.handle(rng, NOW, &upload.to_bytes());
    let registered = state
        .finish(&RegistrationConfirmation::from_bytes(&answer).unwrap())
        .unwrap();
    // The record keeps what the client stretched with: the test-only
    // constructor's parameters (its callers here), not RFC 9106's.
    match vault.store().load(&record).unwrap() {
        Some(RecordSlot::Live(r)) => {
            assert_eq!(r.payload.stretching, StretchingParams::INSECURE_TEST_ONLY)
        }
        other => panic!("no live record after registration: {other:?}"),
    }
    let (state, ke1) = Recovery::start(rng, config, record, &code).unwrap();
    let answer = vault.handle(rng, NOW, &ke1.to_bytes());
    let ke2 = RecoveryResponseWithBundle::from_bytes(&answer).unwrap();
    let (state, ke3, _) = state
        .finish_with_bundle(rng, &ke2, anchors, NOW, None)
        .unwrap();
    let answer = vault.handle(rng, NOW, &ke3.to_bytes());
    let recovered = state
        .finish(&KeyRelease::from_bytes(&answer).unwrap())
        .unwrap();
    recovered.backup_key == registered.backup_key
}

/// SPEC.md §14.1, §17 step 16: a realm of two groups, each its own fleet
/// with its own bundle naming its range. The client routes by record id
/// and refuses a group that does not own its record before it sends
/// anything; a vault refuses another group's record id before it opens,
/// charges or answers anything, and refuses a bundle naming another
/// range; a relay that attaches the other group's valid bundle to a KE2
/// is caught; two groups of one realm and layout cannot overlap.
#[test]
fn a_realm_routes_by_record_id_and_a_group_that_does_not_own_the_record_is_refused() {
    use backup_key_vault::{RecordId, RecordRange};
    let mut rng = rng(40);
    let mut auditor = TestAuditor::new(1, DEFAULT_NAMESPACE);
    let operator = OperatorSigningKey::from_bytes(&[2; 32]);
    let anchors = TrustAnchors::new(&[auditor.key.public_key()], &[operator.public_key()]);
    let mut groups = Vec::new();
    for g in 0..2u64 {
        let secrets = FleetSecrets::generate(&mut rng);
        let records = RecordRange::split(g, 2).unwrap();
        let artifact = FleetKeyArtifact::for_fleet(
            DEFAULT_NAMESPACE,
            &format!("group-{g}"),
            g + 1,
            &secrets.public_keys(),
            1_000,
            1_000_000,
        )
        .in_realm("realm-a", 1, records)
        .to_bytes()
        .unwrap();
        let mut bundle = auditor.publish(&artifact, g + 1);
        bundle.countersign(&operator);
        let policy = VaultPolicy {
            records,
            ..VaultPolicy::insecure_test_only()
        };
        let mut vault = Vault::new(&secrets, policy, MemoryStore::new()).unwrap();
        vault
            .set_bundle(EncodedBundle::new(bundle.clone()).unwrap())
            .unwrap();
        let fleet = anchors.verify(&bundle, NOW, None).unwrap();
        groups.push((secrets, bundle, vault, fleet));
    }
    let (low, high) = (RecordId([0x10; 32]), RecordId([0x90; 32]));
    let owner = |groups: &[(_, _, _, backup_key_vault::bundle::VerifiedFleet)],
                 record: &RecordId| {
        groups
            .iter()
            .position(|(_, _, _, fleet)| fleet.check_record(record).is_ok())
            .unwrap()
    };
    assert_eq!((owner(&groups, &low), owner(&groups, &high)), (0, 1));
    groups[0]
        .3
        .artifact()
        .check_realm(groups[1].3.artifact())
        .unwrap();

    // Each record registers and recovers in the group that owns it.
    for record in [low, high] {
        let g = owner(&groups, &record);
        let config = ClientConfig::insecure_test_only_from_verified_fleet(&groups[g].3);
        assert!(register_then_recover(
            &mut groups[g].2,
            &anchors,
            &config,
            record,
            &mut rng
        ));
    }

    // The client refuses group 0 for a record of group 1, before sending.
    let not_owned = BundleError::RecordNotOwned {
        first: 0,
        last: 0x7fff_ffff_ffff_ffff,
    };
    assert_eq!(groups[0].3.check_record(&high), Err(not_owned));
    let config0 = ClientConfig::insecure_test_only_from_verified_fleet(&groups[0].3);
    let code = RecoveryCode::new(b"realm code").unwrap();
    assert_eq!(
        Registration::start(&mut rng, &config0, high, &code, None).err(),
        Some(ClientError::Bundle(not_owned))
    );
    assert_eq!(
        Recovery::start(&mut rng, &config0, high, &code).err(),
        Some(ClientError::Bundle(not_owned))
    );

    // Group 0's vault refuses group 1's record, whatever a client sends:
    // a client that pins group 0's keys without a range gets code 12, and
    // nothing is charged or pending.
    let pinned = ClientConfig::insecure_test_only(groups[0].0.public_keys());
    let (_, ke1) = Recovery::start(&mut rng, &pinned, high, &code).unwrap();
    assert_eq!(
        groups[0].2.recovery_start(&mut rng, NOW, &ke1).err(),
        Some(backup_key_vault::VaultError::RecordNotInRange)
    );
    let answer = groups[0].2.handle(&mut rng, NOW, &ke1.to_bytes());
    assert_eq!(rejected(&answer), RejectionCode::RecordNotInRange);
    assert_eq!(groups[0].2.pending_recoveries(), 0);
    let (_, request) = Registration::start(&mut rng, &pinned, high, &code, None).unwrap();
    let answer = groups[0].2.handle(&mut rng, NOW, &request.to_bytes());
    assert_eq!(rejected(&answer), RejectionCode::RecordNotInRange);
    // Group 1 still holds the record, with no attempt spent.
    let config1 = ClientConfig::insecure_test_only_from_verified_fleet(&groups[1].3);
    let (state, ke1) = Recovery::start(&mut rng, &config1, high, &code).unwrap();
    let answer = groups[1].2.handle(&mut rng, NOW, &ke1.to_bytes());
    let ke2 = RecoveryResponseWithBundle::from_bytes(&answer).unwrap();
    assert_eq!(state.open(&ke2.response).unwrap().attempts_remaining, 9);

    // A vault refuses a bundle naming another range than it serves.
    let other = EncodedBundle::new(groups[1].1.clone()).unwrap();
    assert_eq!(
        groups[0].2.set_bundle(other.clone()),
        Err(BundleError::RangeMismatch)
    );

    // A relay attaching group 1's valid bundle to group 0's KE2 for a
    // record of group 0: the bundle's fleet does not own the record.
    let (state, ke1) = Recovery::start(&mut rng, &config0, low, &code).unwrap();
    let response = groups[0].2.recovery_start(&mut rng, NOW, &ke1).unwrap();
    let forged = RecoveryResponseWithBundle {
        response,
        bundle: other,
    };
    assert_eq!(
        state
            .finish_with_bundle(&mut rng, &forged, &anchors, NOW, None)
            .err(),
        Some(ClientError::Bundle(BundleError::RecordNotOwned {
            first: 0x8000_0000_0000_0000,
            last: u64::MAX,
        }))
    );

    // Two groups of one realm and layout may not overlap; another layout
    // (a range being moved, §14.1) or another realm may.
    let a = groups[0].3.artifact().clone();
    let overlapping = a.clone().in_realm(
        "realm-a",
        1,
        RecordRange::new(0x7000_0000_0000_0000, u64::MAX).unwrap(),
    );
    assert_eq!(a.check_realm(&overlapping), Err(BundleError::RangeOverlap));
    assert_eq!(overlapping.check_realm(&a), Err(BundleError::RangeOverlap));
    let moved = overlapping
        .clone()
        .in_realm("realm-a", 2, overlapping.records);
    assert_eq!(a.check_realm(&moved), Ok(()));
    assert_eq!(a.check_realm(&a), Ok(()));
}

/// The encoder refuses exactly what the decoder would (SPEC.md §16): a bad
/// namespace, an empty or oversize artifact or checkpoint, too long an
/// inclusion proof. With every field at its bound the bundle encodes to
/// `MAX_BUNDLE_LEN` bytes and decodes to itself.
#[test]
fn the_encoder_refuses_every_field_out_of_the_decoders_bounds() {
    use backup_key_vault::bundle::artifact::{MAX_ARTIFACT_LEN, MAX_NAME_LEN};
    use backup_key_vault::bundle::log::{MAX_CHECKPOINT_LEN, MAX_INCLUSION_HASHES};
    use backup_key_vault::bundle::MAX_BUNDLE_LEN;
    let s = setup(40);
    let refused = |edit: &dyn Fn(&mut ValidationBundle), field: &'static str| {
        let mut b = s.bundle.clone();
        edit(&mut b);
        assert_eq!(b.to_bytes(), Err(WireError::InvalidField(field)), "{field}");
    };
    refused(&|b| b.namespace = "bad name".into(), "namespace");
    refused(&|b| b.artifact.clear(), "artifact length");
    refused(
        &|b| b.artifact = vec![b'a'; MAX_ARTIFACT_LEN + 1],
        "artifact length",
    );
    refused(
        &|b| b.inclusion.hashes = vec![[0; 32]; MAX_INCLUSION_HASHES + 1],
        "inclusion proof length",
    );
    refused(&|b| b.checkpoint.clear(), "checkpoint length");
    refused(
        &|b| b.checkpoint = vec![b'c'; MAX_CHECKPOINT_LEN + 1],
        "checkpoint length",
    );
    let mut at = s.bundle.clone();
    assert!(at.counter_signature.is_some());
    at.namespace = "n".repeat(MAX_NAME_LEN);
    at.artifact = vec![b'a'; MAX_ARTIFACT_LEN];
    at.inclusion.hashes = vec![[1; 32]; MAX_INCLUSION_HASHES];
    at.checkpoint = vec![b'c'; MAX_CHECKPOINT_LEN];
    let bytes = at.to_bytes().unwrap();
    assert_eq!(bytes.len(), MAX_BUNDLE_LEN);
    assert!(ValidationBundle::from_bytes(&bytes).unwrap() == at);
}

/// A bundle's `Debug` names what identifies it, and not its bytes.
#[test]
fn a_bundles_debug_names_it_without_dumping_it() {
    let s = setup(41);
    let shown = format!("{:?}", s.bundle);
    for part in [
        "ValidationBundle",
        DEFAULT_NAMESPACE,
        "epoch: 1",
        "counter_signed: true",
    ] {
        assert!(shown.contains(part), "{part}: {shown}");
    }
    assert!(!shown.contains("artifact"), "{shown}");
    assert!(shown.len() < 400, "{shown}");
}

/// The anchors report what they pin: the namespace and both key lists,
/// in order (the CLI keeps client state per namespace and shows the keys).
#[test]
fn trust_anchors_report_their_namespace_and_keys() {
    let anchors = TrustAnchors::new(&[[1; 32], [2; 32]], &[[3; 32]]);
    assert_eq!(anchors.namespace(), DEFAULT_NAMESPACE);
    let anchors = anchors.with_namespace("example.org/keys");
    assert_eq!(anchors.namespace(), "example.org/keys");
    let bytes = |keys: &[backup_key_vault::bundle::ed25519::PinnedKey]| -> Vec<[u8; 32]> {
        keys.iter().map(|k| *k.as_bytes()).collect()
    };
    assert_eq!(bytes(anchors.auditor_keys()), vec![[1; 32], [2; 32]]);
    assert_eq!(bytes(anchors.operator_keys()), vec![[3; 32]]);
}

/// The artifact's own rules at their edges (§14): a range of one prefix is
/// a range, a key list must hold 1 to `MAX_KEYS` keys, and each role shows
/// as its name (error messages and the CLI print it).
#[test]
fn artifact_rules_hold_at_their_edges() {
    use backup_key_vault::bundle::artifact::{FleetKey, MAX_KEYS};
    use backup_key_vault::RecordRange;
    let secrets = FleetSecrets::generate(&mut rng(50));
    let base = FleetKeyArtifact::for_fleet(
        DEFAULT_NAMESPACE,
        "fleet-a",
        1,
        &secrets.public_keys(),
        1_000,
        1_000_000,
    );
    let round_trips = |a: &FleetKeyArtifact| {
        let bytes = a.to_bytes().unwrap();
        assert_eq!(&FleetKeyArtifact::from_bytes(&bytes).unwrap(), a);
    };
    let refused = |a: &FleetKeyArtifact, what: &'static str| {
        assert_eq!(a.to_bytes(), Err(BundleError::ArtifactMalformed(what)));
    };
    let mut one = base.clone();
    one.records = RecordRange { first: 7, last: 7 };
    round_trips(&one);
    one.records = RecordRange { first: 8, last: 7 };
    refused(&one, "record range");

    let key = |n: usize| FleetKey {
        role: KeyRole::OpaqueKeyExchange,
        public_key: vec![u8::try_from(n).unwrap() + 1; 32],
    };
    let mut many = base.clone();
    many.keys = (0..MAX_KEYS).map(key).collect();
    round_trips(&many);
    many.keys.push(key(MAX_KEYS));
    refused(&many, "number of keys");
    let mut none = base.clone();
    none.keys.clear();
    refused(&none, "number of keys");

    for role in KeyRole::ALL {
        assert_eq!(role.to_string(), role.name());
    }
    assert_eq!(KeyRole::HpkeTransport.to_string(), "xwing_transport");
}

/// The artifact and checkpoint decoders stop at their length bounds, and
/// only past them: input of exactly the bound goes on to be parsed (and is
/// refused here for what it is, not for its length).
#[test]
fn decoders_refuse_input_past_their_length_bounds_only() {
    use backup_key_vault::bundle::artifact::MAX_ARTIFACT_LEN;
    use backup_key_vault::bundle::log::{Checkpoint, MAX_CHECKPOINT_LEN};
    let artifact = |len: usize| FleetKeyArtifact::from_bytes(&vec![b' '; len]).unwrap_err();
    assert_eq!(
        artifact(MAX_ARTIFACT_LEN + 1),
        BundleError::ArtifactMalformed("too long")
    );
    assert_eq!(
        artifact(MAX_ARTIFACT_LEN),
        BundleError::ArtifactMalformed("not JSON")
    );
    let note = |len: usize| Checkpoint::parse_note(&vec![b'a'; len]).unwrap_err();
    assert_eq!(
        note(MAX_CHECKPOINT_LEN + 1),
        BundleError::CheckpointMalformed("too long")
    );
    assert_ne!(
        note(MAX_CHECKPOINT_LEN),
        BundleError::CheckpointMalformed("too long")
    );
}

/// The largest log a checkpoint or proof may describe is `MAX_TREE_SIZE`
/// entries: a note, an inclusion proof and a consistency proof of exactly
/// that size are taken, and of one more entry refused, whatever they prove.
#[test]
fn the_largest_tree_is_taken_and_a_larger_one_refused() {
    use backup_key_vault::bundle::log::{LEAF_LEN, MAX_TREE_SIZE};
    use backup_key_vault::bundle::{Checkpoint, ConsistencyProof, InclusionProof};
    use sha2::{Digest, Sha256};
    let node = |l: &[u8; 32], r: &[u8; 32]| -> [u8; 32] {
        Sha256::new()
            .chain_update([1])
            .chain_update(l)
            .chain_update(r)
            .finalize()
            .into()
    };
    let entry = [7u8; LEAF_LEN];
    let leaf: [u8; 32] = Sha256::new()
        .chain_update([0])
        .chain_update(entry)
        .finalize()
        .into();
    let checkpoint = |tree_size: u64, root_hash: [u8; 32]| Checkpoint {
        origin: DEFAULT_NAMESPACE.into(),
        tree_size,
        root_hash,
        extensions: Vec::new(),
    };
    // The last entry of a full tree of 2^40: 40 siblings, each on the left.
    let siblings: Vec<[u8; 32]> = (0..40u8).map(|i| [i; 32]).collect();
    let root = siblings.iter().fold(leaf, |h, s| node(s, &h));
    let full = checkpoint(MAX_TREE_SIZE, root);
    let last = InclusionProof {
        leaf_index: MAX_TREE_SIZE - 1,
        hashes: siblings,
    };
    assert_eq!(last.verify(&entry, &full), Ok(()));
    // One entry more: the new entry's path is the full tree's root.
    let past = checkpoint(MAX_TREE_SIZE + 1, node(&root, &leaf));
    let beyond = InclusionProof {
        leaf_index: MAX_TREE_SIZE,
        hashes: vec![root],
    };
    assert_eq!(
        beyond.verify(&entry, &past),
        Err(BundleError::InclusionProofInvalid)
    );
    // An index past the tree's last entry is no entry of it, whatever
    // the hashes: here the one-entry tree whose root is the entry's leaf.
    let single = checkpoint(1, leaf);
    for leaf_index in [1, 2, MAX_TREE_SIZE] {
        for hashes in [Vec::new(), vec![leaf]] {
            assert_eq!(
                InclusionProof { leaf_index, hashes }.verify(&entry, &single),
                Err(BundleError::InclusionProofInvalid)
            );
        }
    }
    assert_eq!(
        InclusionProof {
            leaf_index: 0,
            hashes: Vec::new()
        }
        .verify(&entry, &single),
        Ok(())
    );
    // A consistency proof between equal sizes is empty.
    let same = ConsistencyProof { hashes: Vec::new() };
    assert_eq!(same.verify(&full, &full), Ok(()));
    assert_eq!(
        same.verify(&past, &past),
        Err(BundleError::ConsistencyProofInvalid)
    );
    // The note of each.
    let key = AuditorSigningKey::from_bytes(&[3; 32]);
    let (parsed, _) = Checkpoint::parse_note(&full.sign(&key)).unwrap();
    assert_eq!(parsed, full);
    assert_eq!(
        Checkpoint::parse_note(&past.sign(&key)),
        Err(BundleError::CheckpointMalformed("tree size too large"))
    );
}

/// Signature lines (§15.3): a key name is non-empty, without `+` or
/// whitespace; the base64 is padded standard base64 read as Go reads it,
/// non-zero padding bits allowed (and reported) with one `=` or two.
#[test]
fn note_signature_lines_are_strict_in_names_and_lenient_in_padding() {
    use backup_key_vault::bundle::Checkpoint;
    use base64ct::{Base64, Encoding};
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let checkpoint = Checkpoint {
        origin: DEFAULT_NAMESPACE.into(),
        tree_size: 3,
        root_hash: [5; 32],
        extensions: Vec::new(),
    };
    let signed =
        String::from_utf8(checkpoint.sign(&AuditorSigningKey::from_bytes(&[3; 32]))).unwrap();
    let with = |line: &str| Checkpoint::parse_note(format!("{signed}{line}\n").as_bytes());
    // Base64 of `blob` with its padding bits set (one `=` for 11 bytes,
    // two for 10).
    let lenient = |blob: &[u8]| {
        let mut text = Base64::encode_string(blob).into_bytes();
        let pad = text.iter().rev().take_while(|&&b| b == b'=').count();
        let at = text.len() - pad - 1;
        let value = ALPHABET.iter().position(|&c| c == text[at]).unwrap();
        text[at] = ALPHABET[value | 1];
        (String::from_utf8(text).unwrap(), pad)
    };
    for len in [10usize, 11] {
        let blob: Vec<u8> = (1..=len as u8).collect();
        let (text, pad) = lenient(&blob);
        assert_eq!(pad, 3 - len % 3);
        let (_, lines) = with(&format!("\u{2014} witness {text}")).unwrap();
        let line = &lines[1];
        assert_eq!(line.name, "witness");
        assert!(!line.canonical, "{text}");
        assert_eq!(line.key_id[..], blob[..4]);
        assert_eq!(line.signature[..], blob[4..]);
        // The same bytes canonically encoded.
        let canonical = Base64::encode_string(&blob);
        let (_, lines) = with(&format!("\u{2014} witness {canonical}")).unwrap();
        assert!(lines[1].canonical);
    }
    // Padding alone, or too much of it: not base64 (and no arithmetic on
    // the padding's position goes below zero).
    for text in ["=", "==", "===", "====", "A===", "AB=", "ABC==", "AAAAA==="] {
        assert_eq!(
            with(&format!("\u{2014} witness {text}")),
            Err(BundleError::CheckpointMalformed("signature encoding")),
            "{text}"
        );
    }
    let blob = Base64::encode_string(&[9u8; 12]);
    for name in ["", "a+b", "a\u{2003}b", "\u{a0}"] {
        assert_eq!(
            with(&format!("\u{2014} {name} {blob}")),
            Err(BundleError::CheckpointMalformed("signature key name")),
            "{name:?}"
        );
    }
    assert!(with(&format!("\u{2014} a-b {blob}")).is_ok());
}

/// A checkpoint's size is a decimal without sign or leading zeros: 0 is a
/// size, every u64 parses (and past `MAX_TREE_SIZE` is refused as too
/// large, not as malformed), anything longer or with a leading zero is not
/// a number.
#[test]
fn checkpoint_sizes_are_plain_decimals() {
    use backup_key_vault::bundle::Checkpoint;
    let key = AuditorSigningKey::from_bytes(&[3; 32]);
    let signed = Checkpoint {
        origin: DEFAULT_NAMESPACE.into(),
        tree_size: 12,
        root_hash: [5; 32],
        extensions: Vec::new(),
    }
    .sign(&key);
    let signed = String::from_utf8(signed).unwrap();
    let with_size = |size: &str| {
        let note = signed.replacen("\n12\n", &format!("\n{size}\n"), 1);
        Checkpoint::parse_note(note.as_bytes()).map(|(c, _)| c.tree_size)
    };
    assert_eq!(with_size("12"), Ok(12));
    assert_eq!(with_size("0"), Ok(0));
    let too_large = Err(BundleError::CheckpointMalformed("tree size too large"));
    assert_eq!(with_size("18446744073709551615"), too_large);
    assert_eq!(with_size("10000000000000000000"), too_large);
    let malformed = Err(BundleError::CheckpointMalformed("tree size"));
    for bad in [
        "",
        "012",
        "00",
        "+12",
        "-1",
        "1 2",
        "18446744073709551616",
        "118446744073709551615",
    ] {
        assert_eq!(with_size(bad), malformed, "{bad:?}");
    }
}

/// A consistency proof is between two checkpoints of one log, the older
/// first: other origins or an old checkpoint larger than the new are
/// refused, even where the proof would otherwise hold (equal sizes and
/// roots with an empty proof).
#[test]
fn consistency_is_between_one_logs_checkpoints_older_first() {
    use backup_key_vault::bundle::{Checkpoint, ConsistencyProof};
    let checkpoint = |origin: &str, tree_size: u64, root_hash: [u8; 32]| Checkpoint {
        origin: origin.into(),
        tree_size,
        root_hash,
        extensions: Vec::new(),
    };
    let none = ConsistencyProof { hashes: Vec::new() };
    let a = checkpoint(DEFAULT_NAMESPACE, 5, [1; 32]);
    assert_eq!(none.verify(&a, &a), Ok(()));
    // Equal sizes: one tree, so equal roots and nothing to prove.
    let forked = checkpoint(DEFAULT_NAMESPACE, 5, [2; 32]);
    assert_eq!(
        none.verify(&a, &forked),
        Err(BundleError::ConsistencyProofInvalid)
    );
    let padded = ConsistencyProof {
        hashes: vec![[1; 32]],
    };
    assert_eq!(
        padded.verify(&a, &a),
        Err(BundleError::ConsistencyProofInvalid)
    );
    let other = checkpoint("example.org/other", 5, [1; 32]);
    assert_eq!(
        none.verify(&a, &other),
        Err(BundleError::ConsistencyProofInvalid)
    );
    // A real log: its size-3 checkpoint is consistent with its size-5 one,
    // and not the other way round.
    let mut log = MerkleLog::new();
    let mut checkpoints = Vec::new();
    for i in 0..5u8 {
        log.push([i; backup_key_vault::bundle::log::LEAF_LEN]);
        checkpoints.push(log.checkpoint(DEFAULT_NAMESPACE));
    }
    let (three, five) = (&checkpoints[2], &checkpoints[4]);
    let proof = log.prove_consistency(3).unwrap();
    assert_eq!(proof.verify(three, five), Ok(()));
    assert_eq!(
        proof.verify(five, three),
        Err(BundleError::ConsistencyProofInvalid)
    );
    assert_eq!(
        none.verify(five, three),
        Err(BundleError::ConsistencyProofInvalid)
    );
}
