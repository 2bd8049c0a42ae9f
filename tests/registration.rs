//! Registration through an untrusted relay: SPEC.md §6.1, §7.1.

mod common;
use backup_key_vault::client::{ClientConfig, Registration};
use backup_key_vault::vault::{MemoryStore, RecordSlot, RecordStore, Vault, VaultPolicy};
use backup_key_vault::{
    BackupKey, ClientError, FleetPublicKeys, FleetSecrets, RecoveryCode, StretchingParams,
    VaultError,
};
use common::*;

fn code(s: &str) -> RecoveryCode {
    RecoveryCode::new(s.as_bytes()).unwrap()
}

#[test]
fn the_app_can_supply_its_own_backup_key() {
    let mut w = World::new(20);
    let key = BackupKey::from_bytes([0x42; 32]);
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (state, upload) = state
        .finish(&mut w.rng, &response, Some(key.clone()))
        .unwrap();
    let confirmation = w.vault.registration_upload(w.now, &upload).unwrap();
    assert_eq!(state.finish(&confirmation).unwrap().backup_key, key);
    assert_eq!(w.recover(id(1), "c").unwrap().backup_key, key);
}

#[test]
fn a_tampered_upload_is_rejected_and_nothing_is_stored() {
    let mut w = World::new(21);
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (_, mut upload) = state.finish(&mut w.rng, &response, None).unwrap();
    upload.sealed[100] ^= 0x01;
    assert_eq!(
        w.vault.registration_upload(w.now, &upload).err(),
        Some(VaultError::RequestNotAuthentic)
    );
    assert_eq!(w.vault.store().load(&id(1)).unwrap(), None);
    // Redirecting an upload to another record id fails too.
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (_, mut upload) = state.finish(&mut w.rng, &response, None).unwrap();
    upload.record_id = id(2);
    assert_eq!(
        w.vault.registration_upload(w.now, &upload).err(),
        Some(VaultError::UnknownRegistration)
    );
}

#[test]
fn a_response_made_by_the_relay_with_its_own_oprf_key_is_rejected() {
    let mut w = World::new(22);
    // The relay runs its own "vault" with its own secrets and answers the
    // client with a response to a request the relay made itself.
    let relay_secrets = FleetSecrets::generate(&mut w.rng);
    let mut relay_vault = Vault::new(
        &relay_secrets,
        VaultPolicy::insecure_test_only(),
        MemoryStore::new(),
    )
    .unwrap();
    let relay_config = ClientConfig::insecure_test_only(relay_secrets.public_keys());
    let (_, relay_request) =
        Registration::start(&mut w.rng, &relay_config, id(1), &code("x"), None).unwrap();
    let forged = relay_vault
        .registration_request(&mut w.rng, w.now, &relay_request)
        .unwrap();

    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    // The relay cannot even open the client's request.
    assert_eq!(
        relay_vault
            .registration_request(&mut w.rng, w.now, &request)
            .err(),
        Some(VaultError::RequestNotAuthentic)
    );
    assert_eq!(
        state.finish(&mut w.rng, &forged, None).err(),
        Some(ClientError::RegistrationResponseNotAuthentic)
    );
}

#[test]
fn a_response_replayed_from_another_session_is_rejected() {
    let mut w = World::new(23);
    let (_, request_a) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("a"), None).unwrap();
    let response_a = w
        .vault
        .registration_request(&mut w.rng, w.now, &request_a)
        .unwrap();
    let (state_b, request_b) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("b"), None).unwrap();
    let _ = w
        .vault
        .registration_request(&mut w.rng, w.now, &request_b)
        .unwrap();
    assert_eq!(
        state_b.finish(&mut w.rng, &response_a, None).err(),
        Some(ClientError::RegistrationResponseNotAuthentic)
    );
}

#[test]
fn a_wrong_fleet_key_in_the_response_is_rejected() {
    let mut w = World::new(24);
    // The client pins a key-exchange key the fleet does not hold (say, a
    // stale pin, or a fleet that kept the transport key but not the KE key).
    let other = FleetSecrets::generate(&mut w.rng).public_keys();
    let pinned = FleetPublicKeys {
        key_exchange: other.key_exchange,
        transport: w.secrets.public_keys().transport,
    };
    let config = ClientConfig::insecure_test_only(pinned);
    let (state, request) =
        Registration::start(&mut w.rng, &config, id(1), &code("c"), None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    assert_eq!(
        state.finish(&mut w.rng, &response, None).err(),
        Some(ClientError::FleetKeyMismatch)
    );
}

#[test]
fn parameters_below_the_floor_are_refused_by_client_and_vault() {
    let mut w = World::new(25);
    let weak = ClientConfig::new(w.secrets.public_keys())
        .with_stretching(StretchingParams::INSECURE_TEST_ONLY);
    assert_eq!(
        Registration::start(&mut w.rng, &weak, id(1), &code("c"), None).err(),
        Some(ClientError::StretchingBelowFloor)
    );
    // A vault with the production floor refuses a record stretched weakly.
    let mut vault = Vault::new(&w.secrets, VaultPolicy::default(), MemoryStore::new()).unwrap();
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let response = vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (_, upload) = state.finish(&mut w.rng, &response, None).unwrap();
    assert_eq!(
        vault.registration_upload(w.now, &upload).err(),
        Some(VaultError::StretchingBelowFloor)
    );
}

#[test]
fn requests_bound_to_record_and_fleet() {
    let mut w = World::new(26);
    // The relay moves a sealed request to another record id: HPKE's info
    // and AAD bind the id.
    let (_, mut request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    request.record_id = id(2);
    assert_eq!(
        w.vault
            .registration_request(&mut w.rng, w.now, &request)
            .err(),
        Some(VaultError::RequestNotAuthentic)
    );
    // A request sealed to another fleet cannot be opened.
    let other = ClientConfig::insecure_test_only(FleetSecrets::generate(&mut w.rng).public_keys());
    let (_, request) = Registration::start(&mut w.rng, &other, id(1), &code("c"), None).unwrap();
    assert_eq!(
        w.vault
            .registration_request(&mut w.rng, w.now, &request)
            .err(),
        Some(VaultError::RequestNotAuthentic)
    );
}

#[test]
fn uploads_are_single_use_and_expire() {
    let mut w = World::new(27);
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (_, upload) = state.finish(&mut w.rng, &response, None).unwrap();
    w.vault.registration_upload(w.now, &upload).unwrap();
    assert_eq!(
        w.vault.registration_upload(w.now, &upload).err(),
        Some(VaultError::UnknownRegistration)
    );

    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(2), &code("c"), None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (_, upload) = state.finish(&mut w.rng, &response, None).unwrap();
    let later = w.now + w.vault.policy().session_ttl_ms;
    assert_eq!(
        w.vault.registration_upload(later, &upload).err(),
        Some(VaultError::UnknownRegistration)
    );
    assert_eq!(w.vault.store().load(&id(2)).unwrap(), None);
}

#[test]
fn a_forged_confirmation_is_rejected() {
    let mut w = World::new(28);
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (state, _upload) = state.finish(&mut w.rng, &response, None).unwrap();
    // The relay drops the upload and claims success.
    let forged = backup_key_vault::wire::RegistrationConfirmation {
        session_id: response.session_id,
        sealed: [0; 24],
    };
    assert_eq!(
        state.finish(&forged).err(),
        Some(ClientError::RegistrationNotConfirmed)
    );
}

#[test]
fn overwriting_a_live_record_needs_a_recovery_in_the_same_session() {
    let mut w = World::new(29);
    let first = w.register(id(1), "old").unwrap();
    // Without proof: refused, and the record is untouched.
    assert_eq!(
        w.register(id(1), "attacker").err(),
        Some(Failure::Vault(VaultError::RegistrationRefused))
    );
    assert_eq!(
        w.recover(id(1), "old").unwrap().backup_key,
        first.backup_key
    );

    // With a fresh recovery's authorization: replaced, generation 2.
    let recovered = w.recover(id(1), "old").unwrap();
    // Its Debug names the record and nothing of the token.
    let shown = format!("{:?}", recovered.rekey);
    assert!(
        shown.starts_with("RekeyAuthorization") && shown.contains("record_id"),
        "{shown}"
    );
    assert!(!shown.contains("token"), "{shown}");
    let second = w
        .register_with(id(1), "new", Some(&recovered.rekey))
        .unwrap();
    assert_eq!(second.generation, 2);
    assert_eq!(
        w.recover(id(1), "new").unwrap().backup_key,
        second.backup_key
    );
    assert_eq!(
        w.recover(id(1), "old").err(),
        Some(Failure::Client(ClientError::RecoveryFailed))
    );

    // The authorization is single-use.
    assert_eq!(
        w.register_with(id(1), "again", Some(&recovered.rekey))
            .err(),
        Some(Failure::Vault(VaultError::RegistrationRefused))
    );
    // And it is bound to its record.
    let other = w.register(id(2), "other").unwrap();
    let _ = other;
    let for_one = w.recover(id(1), "new").unwrap();
    assert_eq!(
        w.register_with(id(2), "x", Some(&for_one.rekey)).err(),
        Some(Failure::Client(ClientError::RekeyAuthorizationMismatch))
    );
    // It expires with the session lifetime.
    w.now += w.vault.policy().session_ttl_ms;
    assert_eq!(
        w.register_with(id(1), "late", Some(&for_one.rekey)).err(),
        Some(Failure::Vault(VaultError::RegistrationRefused))
    );
    match w.vault.store().load(&id(1)).unwrap() {
        Some(RecordSlot::Live(r)) => assert_eq!(r.generation, 2),
        other => panic!("unexpected slot {other:?}"),
    }
}

#[test]
fn a_garbled_upload_does_not_use_up_the_pending_registration() {
    let mut w = World::new(30);
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (state, upload) = state.finish(&mut w.rng, &response, None).unwrap();
    let mut garbled = upload.clone();
    garbled.sealed[0] ^= 0x80;
    assert_eq!(
        w.vault.registration_upload(w.now, &garbled).err(),
        Some(VaultError::RequestNotAuthentic)
    );
    let confirmation = w.vault.registration_upload(w.now, &upload).unwrap();
    state.finish(&confirmation).unwrap();
}

#[test]
fn a_rekey_whose_commit_failed_can_be_retried() {
    use backup_key_vault::vault::{Fault, FaultyStore};
    let mut w = World::with_store(31, FaultyStore::new(MemoryStore::new()));
    w.register(id(1), "old").unwrap();
    let recovered = w.recover(id(1), "old").unwrap();
    w.vault.store_mut().set_fault(Fault::FailBeforeApply);
    assert_eq!(
        w.register_with(id(1), "new", Some(&recovered.rekey)).err(),
        Some(Failure::Vault(VaultError::Unavailable))
    );
    w.vault.store_mut().set_fault(Fault::None);
    assert_eq!(
        w.register_with(id(1), "new", Some(&recovered.rekey))
            .unwrap()
            .generation,
        2
    );
    // A commit that was applied but not acknowledged cannot be replayed into
    // a second replacement: the grant names the generation it replaces.
    let recovered = w.recover(id(1), "new").unwrap();
    w.vault.store_mut().set_fault(Fault::FailAfterApply);
    assert!(w
        .register_with(id(1), "newer", Some(&recovered.rekey))
        .is_err());
    w.vault.store_mut().set_fault(Fault::None);
    assert_eq!(
        w.register_with(id(1), "newest", Some(&recovered.rekey))
            .err(),
        Some(Failure::Vault(VaultError::RegistrationRefused))
    );
    assert!(w.recover(id(1), "newer").is_ok());
}

#[test]
fn a_replayed_registration_request_never_reuses_a_response_key() {
    // HPKE's receiver context is a function of the request alone, so a relay
    // that sends one request twice gets the same exported secrets twice. Were
    // they used directly, two answers would seal two different OPRF
    // evaluations under one key and the zero nonce: the relay could recover
    // the Poly1305 key and forge an answer that makes the client register a
    // record no recovery can open. Each answer's keys are bound to its own
    // session, so each answer opens only under its own session.
    let mut w = World::new(32);
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let first = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let second = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    assert_ne!(first.session_id, second.session_id);
    // Same plaintext position, different keystream: the ciphertexts of the
    // server-key half (identical plaintext) differ.
    assert_ne!(
        first.sealed[32..64],
        second.sealed[32..64],
        "a response key was reused"
    );
    // Splicing one answer's ciphertext under the other's session fails.
    let spliced = backup_key_vault::wire::RegistrationResponse {
        session_id: second.session_id,
        sealed: first.sealed,
    };
    assert_eq!(
        state.finish(&mut w.rng, &spliced, None).err(),
        Some(ClientError::RegistrationResponseNotAuthentic)
    );
}

/// SPEC.md §7.1 step 6: an id whose slot is at generation 2^64 − 1 has no
/// generation left; the vault refuses at the request (§5.1), before it
/// draws a nonce or answers, not at the upload.
#[test]
fn a_slot_at_the_last_generation_is_refused_at_the_request() {
    use backup_key_vault::vault::{Applied, Command};
    use backup_key_vault::{RecordId, StoreError};
    struct LastGeneration;
    impl RecordStore for LastGeneration {
        fn load(&self, _: &RecordId) -> Result<Option<RecordSlot>, StoreError> {
            Ok(Some(RecordSlot::Erased {
                generation: u64::MAX,
            }))
        }
        fn commit(&mut self, _: &Command) -> Result<Applied, StoreError> {
            panic!("nothing may be committed")
        }
    }
    let mut w = World::with_store(31, LastGeneration);
    let (_state, request) =
        Registration::start(&mut w.rng, &w.config, id(1), &code("c"), None).unwrap();
    let mut counting = CountingRng(rng(32), 0);
    assert_eq!(
        w.vault
            .registration_request(&mut counting, w.now, &request)
            .err(),
        Some(VaultError::RegistrationRefused)
    );
    assert_eq!(counting.1, 0, "refused before anything is drawn");
}

/// An RNG that counts the bytes drawn from it.
struct CountingRng(Rng, usize);
impl rand_core::RngCore for CountingRng {
    fn next_u32(&mut self) -> u32 {
        self.1 += 4;
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.1 += 8;
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.1 += dest.len();
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.1 += dest.len();
        self.0.try_fill_bytes(dest)
    }
}
impl rand_core::CryptoRng for CountingRng {}
