//! The recording relay of SPEC.md §2 (revision 11): it stores every byte of
//! a registration and a recovery today, and later computes discrete logs.
//! Simulated by handing it every classical secret involved: the fleet's
//! X25519 scalar (inside its X-Wing key), the record's OPRF key, the fleet's
//! OPAQUE key-exchange key (ristretto255). With those alone it opens
//! nothing and so cannot test a recovery code offline; handed the ML-KEM
//! decapsulation key as well, the same relay opens the registration and
//! tests a guess offline, so the test can fail.

mod common;

use backup_key_vault::client::{Recovery, Registration};
use backup_key_vault::derive;
use backup_key_vault::suite::{KeyStretching, StretchingParams, Suite};
use backup_key_vault::vault::{RecordSlot, RecordStore};
use backup_key_vault::wire::{
    KeyRelease, RecoveryFinish, RecoveryResponse, RecoveryStart, RegistrationConfirmation,
    RegistrationRequest, RegistrationResponse, RegistrationUpload,
};
use backup_key_vault::xwing::{PrivateKey, XWing};
use backup_key_vault::{RecordId, RecoveryCode};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use common::*;
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::Scalar;
use hpke::aead::ChaCha20Poly1305 as HpkeChaCha;
use hpke::kdf::HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR};
use opaque_ke::{ClientRegistration, ClientRegistrationFinishParameters, Identifiers};

const RIGHT: &str = "correct horse";

/// Every byte the relay saw, in order.
struct Recording {
    record_id: RecordId,
    registration_request: Vec<u8>,
    registration_response: Vec<u8>,
    registration_upload: Vec<u8>,
    registration_confirmation: Vec<u8>,
    recovery_start: Vec<u8>,
    recovery_response: Vec<u8>,
    recovery_finish: Vec<u8>,
    key_release: Vec<u8>,
}

/// What the relay knows later.
struct Knowledge {
    /// The fleet's X25519 scalar (from its X-Wing key), by discrete log.
    x25519: [u8; 32],
    /// The record's OPRF private key, by discrete log.
    oprf_key: Scalar,
    /// The fleet's transport public key (public anyway).
    transport_public: backup_key_vault::xwing::PublicKey,
    /// The ML-KEM-768 decapsulation key: what no discrete log gives.
    mlkem: Option<[u8; 2400]>,
}

fn record(w: &mut World<backup_key_vault::vault::MemoryStore>) -> Recording {
    let record_id = id(1);
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, request) =
        Registration::start(&mut w.rng, &w.config, record_id, &code, None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (state, upload) = state.finish(&mut w.rng, &response, None).unwrap();
    let confirmation = w.vault.registration_upload(w.now, &upload).unwrap();
    state.finish(&confirmation).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, record_id, &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let release = w.vault.recovery_finish(w.now, &ke3).unwrap();
    state.finish(&release).unwrap();
    Recording {
        record_id,
        registration_request: request.to_bytes(),
        registration_response: response.to_bytes(),
        registration_upload: upload.to_bytes(),
        registration_confirmation: confirmation.to_bytes(),
        recovery_start: ke1.to_bytes(),
        recovery_response: ke2.to_bytes(),
        recovery_finish: ke3.to_bytes(),
        key_release: release.to_bytes(),
    }
}

fn label(name: &str) -> &'static [u8] {
    derive::LABELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, l)| *l)
        .unwrap()
}

/// HKDF-SHA512, empty salt, 32 bytes (SPEC.md §4.2).
fn hkdf(ikm: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha512>::new(None, ikm)
        .expand_multi_info(info, &mut out)
        .unwrap();
    out
}

fn aead_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    ChaCha20Poly1305::new(key.into())
        .decrypt(&[0u8; 12].into(), Payload { msg: sealed, aad })
        .ok()
}

/// The relay's best attempt at the registration: open the HPKE request
/// with the key it can build, then the upload under the exported key. A
/// relay without the ML-KEM key uses one of its own for the ML-KEM half.
fn open_upload(rec: &Recording, knows: &Knowledge) -> Option<Vec<u8>> {
    let own = PrivateKey::from_seed(&[0x42; 32]);
    let mlkem = knows.mlkem.unwrap_or(*own.mlkem_decapsulation_key());
    let sk = PrivateKey::from_expanded_parts(&mlkem, &knows.x25519, &knows.transport_public);
    let request = RegistrationRequest::from_bytes(&rec.registration_request).unwrap();
    let enc = <XWing as Kem>::EncappedKey::from_bytes(&request.encapsulated_key).unwrap();
    let ctx = hpke::setup_receiver::<HpkeChaCha, HkdfSha256, XWing>(
        &OpModeR::Base,
        &sk,
        &enc,
        &derive::hpke_info(&rec.record_id),
    )
    .unwrap();
    // The request's own seal first: if it does not open, neither does
    // anything exported from the context.
    let mut probe = ctx;
    probe
        .open(
            &request.sealed,
            &derive::registration_request_aad(&rec.record_id, &request.encapsulated_key),
        )
        .ok()?;
    let mut upload_secret = [0u8; 32];
    probe
        .export(label("EXPORT_UPLOAD"), &mut upload_secret)
        .unwrap();
    let upload = RegistrationUpload::from_bytes(&rec.registration_upload).unwrap();
    let key = hkdf(
        &upload_secret,
        &[
            label("REGISTRATION_SESSION_KEY"),
            upload.session_id.as_bytes(),
        ],
    );
    aead_open(
        &key,
        &derive::upload_aad(&rec.record_id, &upload.session_id),
        &upload.sealed,
    )
}

/// Whether the relay can tell, offline, that `guess` is the code: from the
/// opened upload (the OPAQUE record and the Argon2 parameters) and the OPRF
/// key, it replays the client's registration for the guess with the
/// recorded envelope nonce and compares the client public key.
fn tests_guess(upload: &[u8], knows: &Knowledge, guess: &str) -> bool {
    let record = &upload[..192];
    let params: [u8; 12] = upload[192..204].try_into().unwrap();
    let stretching = StretchingParams::from_bytes(&params).unwrap();
    let mut rng = rng(99);
    let start = ClientRegistration::<Suite>::start(&mut rng, guess.as_bytes()).unwrap();
    let blinded = CompressedRistretto::from_slice(&start.message.serialize())
        .unwrap()
        .decompress()
        .unwrap();
    let evaluated = (knows.oprf_key * blinded).compress();
    // The server key is not needed to test the envelope: any valid point.
    let server_key = curve25519_dalek::RistrettoPoint::mul_base(&Scalar::from(7u8)).compress();
    let mut response = [0u8; 64];
    response[..32].copy_from_slice(evaluated.as_bytes());
    response[32..].copy_from_slice(server_key.as_bytes());
    let response = opaque_ke::RegistrationResponse::<Suite>::deserialize(&response).unwrap();
    let ksf = KeyStretching::new(stretching);
    // The envelope nonce the client drew, replayed.
    let mut nonce_rng = NonceRng(record[96..128].try_into().unwrap());
    let finished = start
        .state
        .finish(
            &mut nonce_rng,
            guess.as_bytes(),
            response,
            ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf)),
        )
        .unwrap();
    finished.message.serialize()[..32] == record[..32]
}

/// Hands out the recorded 32-byte envelope nonce.
struct NonceRng([u8; 32]);

impl rand_core::RngCore for NonceRng {
    fn next_u32(&mut self) -> u32 {
        unreachable!()
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert_eq!(dest.len(), 32, "only the envelope nonce is drawn");
        dest.copy_from_slice(&self.0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for NonceRng {}

#[test]
fn a_recording_relay_with_discrete_logs_cannot_test_a_guess_but_with_the_mlkem_key_it_could() {
    let mut w = World::new(1711);
    let rec = record(&mut w);

    // What the relay saw in clear: headers, the record id, session ids and
    // X-Wing ciphertexts. No OPAQUE message appears anywhere: KE1, KE2 and
    // KE3 travel sealed.
    assert_eq!(
        [
            rec.registration_request.len(),
            rec.registration_response.len(),
            rec.registration_upload.len(),
            rec.registration_confirmation.len(),
            rec.recovery_start.len(),
            rec.recovery_response.len(),
            rec.recovery_finish.len(),
            rec.key_release.len(),
        ],
        [
            RegistrationRequest::ENCODED_LEN,
            RegistrationResponse::ENCODED_LEN,
            RegistrationUpload::ENCODED_LEN,
            RegistrationConfirmation::ENCODED_LEN,
            RecoveryStart::ENCODED_LEN,
            RecoveryResponse::ENCODED_LEN,
            RecoveryFinish::ENCODED_LEN,
            KeyRelease::ENCODED_LEN,
        ]
    );

    // Every classical secret involved, as discrete logs would give them.
    let secrets = w.secrets.to_bytes();
    let transport = PrivateKey::from_seed(&secrets[97..129].try_into().unwrap());
    let nonce = match w.vault.store().load(&rec.record_id).unwrap() {
        Some(RecordSlot::Live(record)) => record.payload.oprf_nonce,
        other => panic!("{other:?}"),
    };
    let cid = derive::credential_identifier(&rec.record_id, &nonce);
    let key_seed = derive::oprf_key_seed(&secrets[1..65].try_into().unwrap(), &cid);
    let oprf_key = voprf::derive_key::<voprf::Ristretto255>(
        &key_seed[..],
        b"OPAQUE-DeriveKeyPair",
        voprf::Mode::Oprf,
    )
    .unwrap();
    let classical = Knowledge {
        x25519: *transport.x25519_private_key(),
        oprf_key,
        transport_public: XWing::sk_to_pk(&transport),
        mlkem: None,
    };
    // The OPRF key and the X25519 scalar are not enough: the upload (the
    // only place the envelope and the client key appear, besides KE2 inside
    // the recovery's channel) does not open, so there is nothing to test a
    // guess against.
    assert!(
        open_upload(&rec, &classical).is_none(),
        "the classical relay opened the channel"
    );

    // The same relay with the ML-KEM decapsulation key opens it and tests
    // guesses offline: the wrong one is told apart from the right one.
    let quantum_safe_broken = Knowledge {
        mlkem: Some(*transport.mlkem_decapsulation_key()),
        ..classical
    };
    let upload = open_upload(&rec, &quantum_safe_broken).expect("with the ML-KEM key it opens");
    assert!(tests_guess(&upload, &quantum_safe_broken, RIGHT));
    assert!(!tests_guess(&upload, &quantum_safe_broken, "wrong guess"));
}
