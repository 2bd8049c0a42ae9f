//! Every decoder, given truncated, extended and random bytes, returns an
//! error and never panics; what decodes re-encodes to the same bytes.

mod common;
use backup_key_vault::client::{Recovery, Registration};
use backup_key_vault::vault::{Command, RecordSlot, RecordStore};
use backup_key_vault::wire::*;
use backup_key_vault::{FleetSecrets, RecoveryCode, WireError};
use common::*;
use proptest::prelude::*;

/// Decodes with every decoder; returns, for each that accepted the bytes,
/// its name and its re-encoding.
fn decode_any(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    macro_rules! try_decode {
        ($($t:ty),*) => {$(
            if let Ok(m) = <$t>::from_bytes(bytes) {
                out.push((stringify!($t), m.to_bytes().to_vec()));
            }
        )*};
    }
    try_decode!(
        RegistrationRequest,
        RegistrationResponse,
        RegistrationUpload,
        RegistrationConfirmation,
        RecoveryStart,
        RecoveryResponse,
        RecoveryFinish,
        KeyRelease,
        Rejection,
        Command,
        RecordSlot,
        FleetSecrets
    );
    out
}

/// The decoder named `name`, alone.
fn decode_with(name: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    decode_any(bytes)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
}

/// One valid encoding of every message, from a real exchange (made once).
fn valid_messages() -> &'static [Vec<u8>] {
    static MESSAGES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    MESSAGES.get_or_init(make_valid_messages)
}

fn make_valid_messages() -> Vec<Vec<u8>> {
    let mut w = World::new(40);
    let code = RecoveryCode::new(b"c").unwrap();
    let (state, request) = Registration::start(&mut w.rng, &w.config, id(1), &code, None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (state, upload) = state.finish(&mut w.rng, &response, None).unwrap();
    let confirmation = w.vault.registration_upload(w.now, &upload).unwrap();
    state.finish(&confirmation).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (_, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let release = w.vault.recovery_finish(w.now, &ke3).unwrap();
    vec![
        request.to_bytes(),
        response.to_bytes(),
        upload.to_bytes(),
        confirmation.to_bytes(),
        ke1.to_bytes(),
        ke2.to_bytes(),
        ke3.to_bytes(),
        release.to_bytes(),
        Rejection {
            code: RejectionCode::Busy,
        }
        .to_bytes(),
        Command::ChargeAttempt {
            record_id: id(1),
            generation: 1,
        }
        .to_bytes()
        .to_vec(),
        w.secrets.to_bytes().to_vec(),
        w.vault
            .store()
            .load(&id(1))
            .unwrap()
            .unwrap()
            .to_bytes()
            .to_vec(),
        RecordSlot::Erased { generation: 3 }.to_bytes().to_vec(),
    ]
}

#[test]
fn valid_messages_round_trip_and_every_truncation_or_extension_fails() {
    let messages = valid_messages();
    assert_eq!(messages.len(), 13);
    for bytes in messages {
        // Message types are told apart by their type byte; the storage
        // encodings (commands, slots, fleet secrets) live in other contexts
        // and may share prefixes with them, so each is checked against its
        // own decoder.
        let decoded = decode_any(bytes);
        let Some((name, encoded)) = decoded.first() else {
            panic!("no decoder accepts a valid message")
        };
        assert_eq!(encoded, bytes, "{name} re-encodes to the same bytes");
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_with(name, &bytes[..cut]),
                None,
                "{name} truncated to {cut} bytes decoded"
            );
        }
        for extra in [0u8, 1, 0xFF] {
            let mut long = bytes.clone();
            long.push(extra);
            assert_eq!(decode_with(name, &long), None, "{name} extended decoded");
        }
    }
}

#[test]
fn truncation_errors_are_typed() {
    let ke1 = RecoveryStart {
        record_id: id(1),
        encapsulated_key: [0; ENCAPSULATED_KEY_LEN],
        sealed: [0; KE1_LEN + TAG_LEN],
    }
    .to_bytes();
    assert_eq!(RecoveryStart::from_bytes(&ke1[..1]), Err(WireError::Empty));
    assert_eq!(
        RecoveryStart::from_bytes(&ke1[..50]),
        Err(WireError::Length {
            expected: RecoveryStart::ENCODED_LEN,
            found: 50
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_what_decodes_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for (_, encoded) in decode_any(&bytes) {
            prop_assert_eq!(&encoded, &bytes);
        }
    }

    #[test]
    fn random_bodies_under_a_valid_header_never_panic(ty in 1u8..=9, body in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut bytes = vec![ty, VERSION];
        bytes.extend_from_slice(&body);
        for (_, encoded) in decode_any(&bytes) {
            prop_assert_eq!(&encoded, &bytes);
        }
    }

    #[test]
    fn the_vault_answers_any_bytes_without_panicking(ty in 0u8..=10, body in prop::collection::vec(any::<u8>(), 0..400), seed in any::<u64>()) {
        let mut w = World::new(seed % 4);
        w.register(id(1), "c").unwrap();
        let mut bytes = vec![ty, VERSION];
        bytes.extend_from_slice(&body);
        let now = w.now;
        let answer = w.vault.handle(&mut w.rng, now, &bytes);
        // Random bytes are never a valid request: the answer is a rejection.
        prop_assert!(Rejection::from_bytes(&answer).is_ok());
    }

    #[test]
    fn the_client_never_recovers_a_key_from_random_responses(
        ke2 in prop::collection::vec(any::<u8>(), RecoveryResponse::ENCODED_LEN - 2 - 16),
        sealed in prop::collection::vec(any::<u8>(), KeyRelease::ENCODED_LEN - 2 - 16),
    ) {
        let mut w = World::new(41);
        w.register(id(1), "c").unwrap();
        let code = RecoveryCode::new(b"c").unwrap();
        let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        let real = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
        let mut forged = real.clone();
        forged.sealed.copy_from_slice(&ke2);
        prop_assert!(state.finish(&mut w.rng, &forged).is_err());
        // A genuine KE2 but a forged release: no key either.
        let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        let genuine = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
        let (state, _) = state.finish(&mut w.rng, &genuine).unwrap();
        let release = KeyRelease { session_id: genuine.session_id, sealed: sealed.try_into().unwrap() };
        prop_assert!(state.finish(&release).is_err());
    }

    #[test]
    fn mutated_valid_messages_never_panic(which in 0usize..13, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let messages = valid_messages();
        let mut bytes = messages[which % messages.len()].clone();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        for (_, encoded) in decode_any(&bytes) {
            prop_assert_eq!(&encoded, &bytes);
        }
    }
}
