//! `PinnedKey::verify_strict` makes the same decision as ed25519-dalek's
//! `VerifyingKey::verify_strict` on every kind of edge case Ed25519
//! verifiers are known to disagree on (the taxonomy of C2SP's CCTV
//! ed25519vectors and "Taming the many EdDSAs"): small-order keys and `R`s,
//! keys and `R`s with a small-order component, non-canonical encodings of
//! both, non-canonical `S`, and `R = identity` with `S = k·a`. The cases are
//! built here from their definitions, with a hand-written signer that can
//! put torsion anywhere.

use backup_key_vault::bundle::ed25519::{verify_strict, PinnedKey};
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha512};

/// The group order ℓ, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn k(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let h = Sha512::new()
        .chain_update(r)
        .chain_update(a)
        .chain_update(message)
        .finalize();
    Scalar::from_bytes_mod_order_wide(&h.into())
}

/// Every encoding dalek decompresses to `point`'s coordinates or their
/// negation: the canonical one, the sign bit flipped (non-canonical when
/// x = 0), and y + p when y < 19 (non-canonical y).
fn encodings(point: &EdwardsPoint) -> Vec<[u8; 32]> {
    let canonical = point.compress().to_bytes();
    let mut out = vec![canonical];
    let mut flipped = canonical;
    flipped[31] ^= 0x80;
    out.push(flipped);
    let mut y = canonical;
    y[31] &= 0x7f;
    if y[1..].iter().all(|&b| b == 0) && y[0] < 19 {
        // y + p = y + 2^255 - 19, both signs.
        let mut plus_p = [0xffu8; 32];
        plus_p[31] = 0x7f;
        plus_p[0] = 0xed + y[0];
        out.push(plus_p);
        let mut neg = plus_p;
        neg[31] |= 0x80;
        out.push(neg);
    }
    out
}

/// `s + ℓ`, a non-canonical encoding of the same scalar.
fn plus_ell(s: &Scalar) -> [u8; 32] {
    let mut out = s.to_bytes();
    let mut carry = 0u16;
    for (o, l) in out.iter_mut().zip(ELL) {
        let sum = u16::from(*o) + u16::from(l) + carry;
        *o = sum as u8;
        carry = sum >> 8;
    }
    out
}

fn dalek_strict(key: &[u8; 32], message: &[u8], sig: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(key).is_ok_and(|vk| {
        vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    })
}

struct Tally {
    cases: usize,
    accepted: usize,
}

impl Tally {
    fn check(&mut self, pinned: &PinnedKey, message: &[u8], sig: &[u8; 64]) -> bool {
        let theirs = dalek_strict(pinned.as_bytes(), message, sig);
        let ours = pinned.verify_strict(message, sig);
        assert_eq!(
            ours,
            theirs,
            "key {:02x?} sig {:02x?}",
            pinned.as_bytes(),
            sig
        );
        assert_eq!(verify_strict(pinned.as_bytes(), message, sig), theirs);
        self.cases += 1;
        self.accepted += usize::from(ours);
        ours
    }
}

#[test]
fn pinned_verification_is_verify_strict_on_every_edge_case() {
    let mut rng = ChaCha20Rng::seed_from_u64(25519);
    let mut tally = Tally {
        cases: 0,
        accepted: 0,
    };
    let mut mixed_order_accepted = 0;
    let message = b"backup-key-vault edge cases";
    let a = Scalar::from_bytes_mod_order({
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        b
    });
    // Keys: a·B plus each torsion point (index 0 is the identity, so a·B
    // itself), and each small-order point alone; every encoding of each.
    let mut keys: Vec<(Option<Scalar>, EdwardsPoint)> =
        EIGHT_TORSION.iter().map(|t| (Some(a), B * a + t)).collect();
    keys.extend(EIGHT_TORSION.iter().map(|t| (None, *t)));
    for (secret, point) in keys {
        for key_bytes in encodings(&point) {
            let Some(decoded) = CompressedEdwardsY(key_bytes).decompress() else {
                continue;
            };
            let pinned = PinnedKey::new(key_bytes);
            assert_eq!(pinned.is_usable(), !decoded.is_small_order());
            let r = Scalar::from_bytes_mod_order({
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                b
            });
            // R: r·B plus each torsion point, and each small-order point.
            let nonces = EIGHT_TORSION
                .iter()
                .map(|t| (Some(r), B * r + t))
                .chain(EIGHT_TORSION.iter().map(|t| (None, *t)));
            for (nonce, r_point) in nonces {
                for r_bytes in encodings(&r_point) {
                    let k = k(&r_bytes, &key_bytes, message);
                    // S: the honest response where there is one, and
                    // S = k·a (what makes R = identity pass the plain
                    // equation), each canonical and plus ℓ.
                    let mut responses = Vec::new();
                    if let (Some(r), Some(a)) = (nonce, secret) {
                        responses.push(r + k * a);
                    }
                    if let Some(a) = secret {
                        responses.push(k * a);
                    }
                    responses.push(Scalar::ZERO);
                    for s in responses {
                        for s_bytes in [s.to_bytes(), plus_ell(&s)] {
                            let mut sig = [0u8; 64];
                            sig[..32].copy_from_slice(&r_bytes);
                            sig[32..].copy_from_slice(&s_bytes);
                            let ok = tally.check(&pinned, message, &sig);
                            if ok && decoded != B * a {
                                mixed_order_accepted += 1;
                            }
                            // Never for another message.
                            tally.check(&pinned, b"another message", &sig);
                        }
                    }
                }
            }
        }
    }
    // The cases are not all rejections: honest signatures pass, and so do
    // some with a small-order component in the key (verify_strict allows
    // them when k·T cancels), which the comparison above covers.
    assert!(tally.cases > 5_000, "{} cases", tally.cases);
    assert!(tally.accepted >= 8, "{} accepted", tally.accepted);
    assert!(mixed_order_accepted > 0);
}

#[test]
fn pinned_verification_agrees_on_random_keys_and_mutations() {
    let mut rng = ChaCha20Rng::seed_from_u64(8032);
    for _ in 0..40 {
        let key = SigningKey::generate(&mut rng);
        let pinned = PinnedKey::new(key.verifying_key().to_bytes());
        let mut message = vec![0u8; (rng.next_u32() % 300) as usize];
        rng.fill_bytes(&mut message);
        let sig = key.sign(&message).to_bytes();
        assert!(pinned.verify_strict(&message, &sig));
        for _ in 0..20 {
            let mut bad = sig;
            let at = (rng.next_u32() % 64) as usize;
            bad[at] ^= 1 << (rng.next_u32() % 8);
            assert!(!pinned.verify_strict(&message, &bad));
            assert!(!dalek_strict(pinned.as_bytes(), &message, &bad));
        }
        // A signature under this key does not verify under another.
        let other = PinnedKey::new(SigningKey::generate(&mut rng).verifying_key().to_bytes());
        assert!(!other.verify_strict(&message, &sig));
    }
}

/// SPEC.md §15.1 "Public-key encodings": every non-canonical encoding of
/// an Ed25519 public key (y + p for y < 19, either sign; the sign bit set
/// with x = 0) is, when it decodes at all, either of a small-order point,
/// refused at pinning as dalek's `verify_strict` refuses it, or of a point
/// of large order, accepted as a key exactly as dalek accepts it (`k`
/// hashes the bytes as given). Both verifiers agree on every signature.
#[test]
fn non_canonical_key_encodings_are_decided_as_dalek_decides() {
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    let mut small = 0;
    let mut large = 0;
    for y in 0u8..19 {
        for sign in [0u8, 0x80] {
            let mut key = [0xffu8; 32];
            key[0] = 0xed + y;
            key[31] = 0x7f | sign;
            let Some(point) = CompressedEdwardsY(key).decompress() else {
                continue;
            };
            assert_ne!(point.compress().to_bytes(), key, "non-canonical");
            let pinned = PinnedKey::new(key);
            if point.is_small_order() {
                small += 1;
                assert!(!pinned.is_usable(), "y = {y}: small order, refused");
            } else {
                large += 1;
                assert!(pinned.is_usable(), "y = {y}: large order, a key");
            }
            // Whatever the signature, the same decision as dalek's.
            for _ in 0..8 {
                let mut sig = [0u8; 64];
                rng.fill_bytes(&mut sig);
                sig[63] &= 0x0f;
                assert_eq!(
                    pinned.verify_strict(b"m", &sig),
                    dalek_strict(&key, b"m", &sig)
                );
            }
        }
    }
    // The identity's and the order-2 point's x = 0 encodings with the sign
    // bit set are small order too.
    for canonical in [EIGHT_TORSION[0], EIGHT_TORSION[4]] {
        let mut key = canonical.compress().to_bytes();
        key[31] |= 0x80;
        if let Some(point) = CompressedEdwardsY(key).decompress() {
            assert!(point.is_small_order());
            assert!(!PinnedKey::new(key).is_usable());
        }
    }
    assert!(small > 0, "some non-canonical encodings are small order");
    println!("non-canonical key encodings: {small} small order, {large} large order");
}
