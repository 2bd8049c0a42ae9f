//! The vendored opaque-ke (patches/opaque-ke) computes exactly what upstream
//! opaque-ke 4.0.1 computes: every message, key and session key, byte for
//! byte, on the real and the fake-record paths, from the same randomness.
//! (RFC 9807's own vectors are checked in tests/vectors.rs.)

use opaque_ke::ksf::Identity;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

macro_rules! suite {
    ($name:ident, $krate:ident) => {
        struct $name;
        impl $krate::CipherSuite for $name {
            type OprfCs = $krate::Ristretto255;
            type KeyExchange = $krate::TripleDh<$krate::Ristretto255, sha2::Sha512>;
            type Ksf = $krate::ksf::Identity;
        }
    };
}

suite!(Patched, opaque_ke);
suite!(Upstream, opaque_ke_upstream);

/// Runs registration and two logins (a real record and the fake path) with
/// one crate, returning every byte string that crosses the wire and every
/// key either side derives.
macro_rules! transcript {
    ($krate:ident, $suite:ty, $seed:expr) => {{
        use $krate::*;
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut rng = ChaCha20Rng::seed_from_u64($seed);
        let setup = ServerSetup::<$suite>::new(&mut rng);
        out.push(setup.serialize().to_vec());
        let pw = b"correct horse";
        let id = b"record id || nonce";
        let reg = ClientRegistration::<$suite>::start(&mut rng, pw).unwrap();
        out.push(reg.message.serialize().to_vec());
        let resp = ServerRegistration::<$suite>::start(&setup, reg.message, id).unwrap();
        out.push(resp.message.serialize().to_vec());
        let fin = reg
            .state
            .finish(
                &mut rng,
                pw,
                resp.message,
                ClientRegistrationFinishParameters::default(),
            )
            .unwrap();
        out.push(fin.message.serialize().to_vec());
        out.push(fin.export_key.to_vec());
        let record = ServerRegistration::<$suite>::finish(fin.message);
        for password_file in [Some(record), None] {
            let fake = password_file.is_none();
            let login = ClientLogin::<$suite>::start(&mut rng, pw).unwrap();
            out.push(login.message.serialize().to_vec());
            let context = Some(&b"context"[..]);
            let params = ServerLoginParameters {
                context,
                identifiers: Identifiers::default(),
            };
            let start =
                ServerLogin::start(&mut rng, &setup, password_file, login.message, id, params)
                    .unwrap();
            out.push(start.message.serialize().to_vec());
            let finish = login.state.finish(
                &mut rng,
                pw,
                start.message,
                ClientLoginFinishParameters::new(context, Identifiers::default(), None),
            );
            match finish {
                Ok(client) => {
                    assert!(!fake, "the fake path must not log in");
                    out.push(client.message.serialize().to_vec());
                    out.push(client.session_key.to_vec());
                    out.push(client.export_key.to_vec());
                    let params = ServerLoginParameters {
                        context,
                        identifiers: Identifiers::default(),
                    };
                    let server = start.state.finish(client.message, params).unwrap();
                    out.push(server.session_key.to_vec());
                }
                Err(_) => {
                    assert!(fake, "the real record must log in");
                    out.push(b"fake path refused".to_vec());
                }
            }
        }
        out
    }};
}

#[test]
fn patched_opaque_ke_is_byte_identical_to_upstream() {
    for seed in 0..32 {
        let ours = transcript!(opaque_ke, Patched, seed);
        let theirs = transcript!(opaque_ke_upstream, Upstream, seed);
        assert_eq!(ours, theirs, "seed {seed}");
        assert!(ours.len() >= 14);
    }
}

#[test]
fn both_accept_and_refuse_the_same_public_keys() {
    // Deserialisation must refuse exactly what upstream refuses: the
    // identity, non-canonical encodings, points off the curve.
    let mut candidates: Vec<[u8; 32]> = vec![[0; 32], [0xFF; 32], [1; 32]];
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for _ in 0..200 {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut b);
        candidates.push(b);
    }
    let valid = curve25519_dalek::RistrettoPoint::random(&mut rng)
        .compress()
        .to_bytes();
    candidates.push(valid);
    let mut accepted = 0;
    for bytes in candidates {
        let ours = opaque_ke::keypair::PublicKey::<opaque_ke::Ristretto255>::deserialize(&bytes);
        let theirs =
            opaque_ke_upstream::keypair::PublicKey::<opaque_ke_upstream::Ristretto255>::deserialize(
                &bytes,
            );
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{bytes:?}");
        if let (Ok(a), Ok(b)) = (ours, theirs) {
            accepted += 1;
            assert_eq!(a.serialize().as_slice(), b.serialize().as_slice());
            assert_eq!(a.serialize().as_slice(), &bytes);
        }
    }
    assert!(accepted >= 1);
    let _ = Identity;
}
