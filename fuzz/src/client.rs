//! The client-side target: a client that runs registration and recovery
//! against random vault responses. The client must never confirm a
//! registration, accept a KE2, or return a backup key unless the response is
//! the genuine one from the vault (SPEC.md §6: every vault answer is
//! authenticated; since revision 11 the KE2 is sealed in the channel under
//! keys bound to its session id, so the relay can change none of it, §4.4).
//!
//! The genuine exchange is the one of `vectors/recovery-success.json`
//! (same seeds, same inputs); `tests/fuzz_regressions.rs` checks that.

use std::sync::OnceLock;

use backup_key_vault::client::{
    AwaitingKeyRelease, AwaitingRecoveryResponse, AwaitingRegistrationConfirmation,
    AwaitingRegistrationResponse, ClientConfig, Recovery, Registration,
};
use backup_key_vault::vault::{MemoryStore, Vault, VaultPolicy};
use backup_key_vault::wire::{
    KeyRelease, RecoveryResponse, RegistrationConfirmation, RegistrationResponse,
};
use backup_key_vault::{BackupKey, FleetSecrets, RecordId, RecoveryCode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Seed of the fleet's secrets (`FleetSecrets::generate`).
pub const FLEET_SEED: u64 = 0x6276_6b2d_666c_6565;
/// Seed of the vault's RNG (one stream for the whole flow).
pub const VAULT_SEED: u64 = 0x6276_6b2d_7661_756c;
/// Seed of the registering client's RNG.
pub const REGISTRATION_CLIENT_SEED: u64 = 0x6276_6b2d_7265_6731;
/// Seed of the recovering client's RNG.
pub const RECOVERY_CLIENT_SEED: u64 = 0x6276_6b2d_7265_6331;
/// The record id of the flow.
pub const RECORD_ID: RecordId = RecordId([0x42; 32]);
/// The recovery code.
pub const CODE: &[u8] = b"4F7K-9QXD";
/// The backup key the app registers.
pub const BACKUP_KEY: [u8; 32] = [0xB7; 32];
/// The vault's clock during the flow, in milliseconds.
pub const NOW: u64 = 1_700_000_000_000;

/// The genuine vault answers of one registration and one recovery.
#[derive(Clone, Debug)]
pub struct Genuine {
    /// §5.2.
    pub registration_response: Vec<u8>,
    /// §5.4.
    pub registration_confirmation: Vec<u8>,
    /// §5.6.
    pub recovery_response: Vec<u8>,
    /// §5.8.
    pub key_release: Vec<u8>,
}

fn fleet() -> &'static FleetSecrets {
    static FLEET: OnceLock<FleetSecrets> = OnceLock::new();
    FLEET.get_or_init(|| FleetSecrets::generate(&mut ChaCha20Rng::seed_from_u64(FLEET_SEED)))
}

fn config() -> ClientConfig {
    ClientConfig::insecure_test_only(fleet().public_keys())
}

fn code() -> RecoveryCode {
    RecoveryCode::new(CODE).expect("a valid code")
}

fn registration_client() -> (ChaCha20Rng, AwaitingRegistrationResponse, Vec<u8>) {
    let mut rng = ChaCha20Rng::seed_from_u64(REGISTRATION_CLIENT_SEED);
    let (state, request) =
        Registration::start(&mut rng, &config(), RECORD_ID, &code(), None).expect("start");
    (rng, state, request.to_bytes())
}

fn recovery_client() -> (ChaCha20Rng, AwaitingRecoveryResponse, Vec<u8>) {
    let mut rng = ChaCha20Rng::seed_from_u64(RECOVERY_CLIENT_SEED);
    let (state, ke1) = Recovery::start(&mut rng, &config(), RECORD_ID, &code()).expect("start");
    (rng, state, ke1.to_bytes())
}

/// Runs the flow once with a real vault.
pub fn genuine() -> &'static Genuine {
    static GENUINE: OnceLock<Genuine> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let mut vault_rng = ChaCha20Rng::seed_from_u64(VAULT_SEED);
        let mut vault = Vault::new(
            fleet(),
            VaultPolicy::insecure_test_only(),
            MemoryStore::new(),
        )
        .expect("vault");
        let (mut rng, state, request) = registration_client();
        let request =
            backup_key_vault::wire::RegistrationRequest::from_bytes(&request).expect("request");
        let response = vault
            .registration_request(&mut vault_rng, NOW, &request)
            .expect("response");
        let (state, upload) = state
            .finish(&mut rng, &response, Some(BackupKey::from_bytes(BACKUP_KEY)))
            .expect("upload");
        let confirmation = vault.registration_upload(NOW, &upload).expect("confirm");
        state.finish(&confirmation).expect("registered");

        let (mut rng, state, ke1) = recovery_client();
        let ke1 = backup_key_vault::wire::RecoveryStart::from_bytes(&ke1).expect("ke1");
        let ke2 = vault
            .recovery_start(&mut vault_rng, NOW, &ke1)
            .expect("ke2");
        let (state, ke3) = state.finish(&mut rng, &ke2).expect("ke3");
        let release = vault.recovery_finish(NOW, &ke3).expect("release");
        let recovered = state.finish(&release).expect("recovered");
        assert_eq!(recovered.backup_key.expose_secret(), &BACKUP_KEY);
        Genuine {
            registration_response: response.to_bytes(),
            registration_confirmation: confirmation.to_bytes(),
            recovery_response: ke2.to_bytes(),
            key_release: release.to_bytes(),
        }
    })
}

fn awaiting_confirmation() -> AwaitingRegistrationConfirmation {
    let (mut rng, state, _) = registration_client();
    let response = RegistrationResponse::from_bytes(&genuine().registration_response)
        .expect("genuine response");
    state
        .finish(&mut rng, &response, Some(BackupKey::from_bytes(BACKUP_KEY)))
        .expect("genuine response accepted")
        .0
}

/// Feeds a KE2; if the client accepts it, checks it is the genuine one (up
/// to the unauthenticated fields) and returns the next state.
fn accept_ke2(bytes: &[u8]) -> Option<(AwaitingKeyRelease, RecoveryResponse)> {
    let ke2 = RecoveryResponse::from_bytes(bytes).ok()?;
    let (mut rng, state, _) = recovery_client();
    let opened = state.open(&ke2).ok();
    let (next, ke3) = state.finish(&mut rng, &ke2).ok()?;
    let real = RecoveryResponse::from_bytes(&genuine().recovery_response).expect("genuine");
    assert!(
        ke2 == real && opened.is_some(),
        "the client accepted a KE2 the vault did not send"
    );
    assert_eq!(ke3.session_id, ke2.session_id);
    Some((next, ke2))
}

/// Feeds a key release; if the client returns a key, checks the whole
/// exchange was genuine. Whether it returned one.
fn accept_release(state: AwaitingKeyRelease, ke2: &RecoveryResponse, bytes: &[u8]) -> bool {
    let Ok(release) = KeyRelease::from_bytes(bytes) else {
        return false;
    };
    let Ok(recovered) = state.finish(&release) else {
        return false;
    };
    {
        let g = genuine();
        assert_eq!(
            release.to_bytes(),
            g.key_release,
            "the client returned a key from a release the vault did not send"
        );
        let real = RecoveryResponse::from_bytes(&g.recovery_response).expect("genuine");
        assert_eq!(ke2.session_id, real.session_id);
        assert_eq!(recovered.backup_key.expose_secret(), &BACKUP_KEY);
    }
    true
}

/// The libFuzzer entry. Byte 0 picks the step the fuzzer answers (the
/// earlier steps get their genuine answers); the rest is the answer:
/// 0 registration response, 1 registration confirmation, 2 KE2, 3 key
/// release, 4 a KE2 (its exact length) followed by a key release. Returns
/// whether the client accepted the fuzzed answer(s).
pub fn fuzz(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    match mode % 5 {
        0 => {
            let Ok(response) = RegistrationResponse::from_bytes(rest) else {
                return false;
            };
            let (mut rng, state, _) = registration_client();
            let accepted = state
                .finish(&mut rng, &response, Some(BackupKey::from_bytes(BACKUP_KEY)))
                .is_ok();
            if accepted {
                assert_eq!(
                    rest,
                    &genuine().registration_response[..],
                    "the client accepted a registration response the vault did not send"
                );
            }
            accepted
        }
        1 => {
            let Ok(confirmation) = RegistrationConfirmation::from_bytes(rest) else {
                return false;
            };
            let accepted = awaiting_confirmation().finish(&confirmation).is_ok();
            if accepted {
                assert_eq!(
                    rest,
                    &genuine().registration_confirmation[..],
                    "the client believed a registration the vault did not confirm"
                );
            }
            accepted
        }
        2 => accept_ke2(rest).is_some(),
        3 => {
            let (state, ke2) = accept_ke2(&genuine().recovery_response).expect("genuine KE2");
            accept_release(state, &ke2, rest)
        }
        _ => {
            let (ke2, release) = rest.split_at(rest.len().min(RecoveryResponse::ENCODED_LEN));
            match accept_ke2(ke2) {
                Some((state, ke2)) => accept_release(state, &ke2, release),
                None => false,
            }
        }
    }
}
