//! Our key-exchange group (`backup_key_vault::group::Ristretto255`, the
//! basepoint table and kept encodings) computes exactly what opaque-ke's own
//! `Ristretto255` computes: every message, key and session key, byte for
//! byte, on the real and the fake-record paths, from the same randomness; and
//! both decode, and refuse, exactly the same public- and secret-key
//! encodings. (RFC 9807's own vectors run with our group in
//! tests/rfc_vectors.rs, through `Suite`.)

use backup_key_vault::group::Ristretto255 as Ours;
use curve25519_dalek::ristretto::CompressedRistretto;
use opaque_ke::key_exchange::group::Group;
use opaque_ke::keypair::{PrivateKey, PublicKey};
use opaque_ke::{
    CipherSuite, ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, Identifiers, ServerLogin, ServerLoginParameters,
    ServerRegistration, ServerSetup,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

type Upstream = opaque_ke::Ristretto255;

struct WithOurs;
impl CipherSuite for WithOurs {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<Ours, sha2::Sha512>;
    type Ksf = opaque_ke::ksf::Identity;
}

struct WithUpstream;
impl CipherSuite for WithUpstream {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<Upstream, sha2::Sha512>;
    type Ksf = opaque_ke::ksf::Identity;
}

/// Runs a registration and two logins (a real record, then the fake-record
/// path for an unknown user) with one suite, returning every byte string
/// that crosses the wire and every key either side derives or stores.
macro_rules! transcript {
    ($suite:ty, $seed:expr) => {{
        type S = $suite;
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut rng = ChaCha20Rng::seed_from_u64($seed);
        let setup = ServerSetup::<S>::new(&mut rng);
        out.push(setup.serialize().to_vec());
        out.push(setup.keypair().public().serialize().to_vec());
        let pw = b"correct horse";
        let id = b"record id || nonce";
        let reg = ClientRegistration::<S>::start(&mut rng, pw).unwrap();
        out.push(reg.message.serialize().to_vec());
        out.push(reg.state.serialize().to_vec());
        let resp = ServerRegistration::<S>::start(&setup, reg.message, id).unwrap();
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
        out.push(fin.server_s_pk.serialize().to_vec());
        let record = ServerRegistration::<S>::finish(fin.message);
        out.push(record.serialize().to_vec());
        for password_file in [Some(record), None] {
            let fake = password_file.is_none();
            let login = ClientLogin::<S>::start(&mut rng, pw).unwrap();
            out.push(login.message.serialize().to_vec());
            out.push(login.state.serialize().to_vec());
            let context = Some(&b"context"[..]);
            let params = ServerLoginParameters {
                context,
                identifiers: Identifiers::default(),
            };
            let start =
                ServerLogin::start(&mut rng, &setup, password_file, login.message, id, params)
                    .unwrap();
            out.push(start.message.serialize().to_vec());
            out.push(start.state.serialize().to_vec());
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
                    out.push(client.server_s_pk.serialize().to_vec());
                    let params = ServerLoginParameters {
                        context,
                        identifiers: Identifiers::default(),
                    };
                    let server = start.state.finish(client.message, params).unwrap();
                    out.push(server.session_key.to_vec());
                }
                Err(e) => {
                    assert!(fake, "the real record must log in");
                    out.push(format!("fake path refused: {e:?}").into_bytes());
                }
            }
        }
        out
    }};
}

#[test]
fn registrations_and_logins_are_byte_identical_with_either_group() {
    for seed in 0..32 {
        let ours = transcript!(WithOurs, seed);
        let theirs = transcript!(WithUpstream, seed);
        assert_eq!(ours, theirs, "seed {seed}");
        assert_eq!(ours.len(), 23, "seed {seed}");
    }
}

#[test]
fn derived_and_random_keys_are_identical_with_either_group() {
    let mut a = ChaCha20Rng::seed_from_u64(5);
    let mut b = ChaCha20Rng::seed_from_u64(5);
    for _ in 0..64 {
        let ours = Ours::random_sk(&mut a);
        let theirs = Upstream::random_sk(&mut b);
        assert_eq!(Ours::serialize_sk(&ours), Upstream::serialize_sk(&theirs));
        assert_eq!(
            Ours::serialize_pk(&Ours::public_key(&ours)),
            Upstream::serialize_pk(&Upstream::public_key(&theirs))
        );
        let mut seed = [0u8; 32];
        a.fill_bytes(&mut seed);
        b.fill_bytes(&mut [0u8; 32]);
        let ours = Ours::derive_scalar(seed.into()).unwrap();
        let theirs = Upstream::derive_scalar(seed.into()).unwrap();
        assert_eq!(Ours::serialize_sk(&ours), Upstream::serialize_sk(&theirs));
    }
}

/// Encodings worth trying: the identity, non-canonical encodings (field
/// elements at or above p, "negative" ones with the low bit set), points off
/// the curve, random bytes, and valid points (with their negative twins).
fn public_key_candidates() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    // The identity.
    out.push(vec![0; 32]);
    // p = 2^255 - 19 and a few values above it: non-canonical field elements.
    let mut p = [0xFF; 32];
    p[0] = 0xED;
    p[31] = 0x7F;
    out.push(p.to_vec());
    for k in 1u8..=18 {
        let mut above = p;
        above[0] = 0xED + k;
        out.push(above.to_vec());
    }
    // The top bit set (canonical encodings leave it clear).
    let mut top = [0u8; 32];
    top[31] = 0x80;
    out.push(top.to_vec());
    out.push(vec![0xFF; 32]);
    // Small values: mostly off the curve or negative.
    for v in 0u8..=16 {
        let mut b = [0u8; 32];
        b[0] = v;
        out.push(b.to_vec());
    }
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for _ in 0..300 {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        out.push(b.to_vec());
    }
    for _ in 0..20 {
        let valid = curve25519_dalek::RistrettoPoint::random(&mut rng)
            .compress()
            .to_bytes();
        out.push(valid.to_vec());
        // Its "negative" twin (s with the low bit set) is not canonical.
        let mut odd = valid;
        odd[0] |= 1;
        out.push(odd.to_vec());
        // One bit flipped high up: usually off the curve.
        let mut flipped = valid;
        flipped[17] ^= 0x10;
        out.push(flipped.to_vec());
        // Wrong lengths.
        out.push(valid[..31].to_vec());
        out.push([&valid[..], &[0]].concat());
    }
    out.push(Vec::new());
    out
}

#[test]
fn both_groups_accept_and_refuse_the_same_public_keys() {
    let mut accepted = 0;
    let mut refused_full_length = 0;
    for bytes in public_key_candidates() {
        let ours = PublicKey::<Ours>::deserialize(&bytes);
        let theirs = PublicKey::<Upstream>::deserialize(&bytes);
        assert_eq!(
            ours.as_ref()
                .map(|k| k.serialize().to_vec())
                .map_err(|e| format!("{e:?}")),
            theirs
                .as_ref()
                .map(|k| k.serialize().to_vec())
                .map_err(|e| format!("{e:?}")),
            "{bytes:02x?}"
        );
        if let Ok(key) = ours {
            accepted += 1;
            // Both read the first 32 bytes and leave the rest (opaque-ke's
            // `deserialize` does not insist on the exact length).
            let encoding = &bytes[..32];
            assert_eq!(key.serialize().as_slice(), encoding);
            // Accepted means canonical: it is what compression gives.
            let point = CompressedRistretto::from_slice(encoding)
                .unwrap()
                .decompress()
                .unwrap();
            assert_eq!(point.compress().as_bytes(), encoding);
        } else if bytes.len() == 32 {
            refused_full_length += 1;
        }
    }
    assert!(accepted >= 20, "{accepted}");
    assert!(refused_full_length >= 100, "{refused_full_length}");
}

#[test]
fn both_groups_accept_and_refuse_the_same_secret_keys() {
    // l, the group order, little-endian: l and above are not canonical.
    let l: [u8; 32] = [
        0xED, 0xD3, 0xF5, 0x5C, 0x1A, 0x63, 0x12, 0x58, 0xD6, 0x9C, 0xF7, 0xA2, 0xDE, 0xF9, 0xDE,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut candidates: Vec<Vec<u8>> = vec![vec![0; 32], l.to_vec(), vec![0xFF; 32], vec![1; 31]];
    let mut l_minus_1 = l;
    l_minus_1[0] -= 1;
    candidates.push(l_minus_1.to_vec());
    let mut l_plus_1 = l;
    l_plus_1[0] += 1;
    candidates.push(l_plus_1.to_vec());
    let mut one = [0u8; 32];
    one[0] = 1;
    candidates.push(one.to_vec());
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for _ in 0..100 {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        candidates.push(b.to_vec());
        b[31] &= 0x0F; // below 2^252: canonical
        candidates.push(b.to_vec());
    }
    let mut accepted = 0;
    for bytes in candidates {
        let ours = PrivateKey::<Ours>::deserialize(&bytes);
        let theirs = PrivateKey::<Upstream>::deserialize(&bytes);
        assert_eq!(
            ours.as_ref()
                .map(|k| k.public_key().serialize().to_vec())
                .map_err(|e| format!("{e:?}")),
            theirs
                .as_ref()
                .map(|k| k.public_key().serialize().to_vec())
                .map_err(|e| format!("{e:?}")),
            "{bytes:02x?}"
        );
        if ours.is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted >= 100, "{accepted}");
}
