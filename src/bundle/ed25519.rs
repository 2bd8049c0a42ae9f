//! Strict Ed25519 verification for pinned keys (SPEC.md §15.5).
//!
//! A client verifies three Ed25519 signatures per bundle, always under keys
//! it pinned in advance (the auditor's statement and checkpoint, the
//! operator's counter-signature). [`PinnedKey`] spends the pinning moment on
//! a fixed-base table for the key, so each verification is two table
//! multiplications instead of ed25519-dalek's variable-base double
//! multiplication, and skips the decompression of `R`.
//!
//! The accept/reject decision is exactly ed25519-dalek 2's
//! `VerifyingKey::verify_strict`, which is:
//!
//! 1. `S` is canonical (`S < ℓ`);
//! 2. `R` decompresses, and is not of small order;
//! 3. `A` (the key) is not of small order;
//! 4. `compress([S]B - [k]A) == R` as bytes, with
//!    `k = SHA-512(R || A || M) mod ℓ` over the bytes as given.
//!
//! Here (1) is the same check; (3) is done once, when the key is pinned (a
//! small-order or undecodable key verifies nothing); (4) computes the same
//! point, since `[S]B` and `[k]A` are integer multiples, however they are
//! computed; and (2) is decided after (4): if (4) holds, `R` is the canonical
//! encoding of the point just computed, so `R` decompresses to that point and
//! its order is that point's; if (4) fails, both reject. The tests in
//! `tests/ed25519_strict.rs` compare the two on every edge case of the CCTV
//! taxonomy (small-order and mixed-order keys and `R`s, non-canonical
//! encodings, non-canonical `S`), built by hand there.

use alloc::boxed::Box;
use core::fmt;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Strict Ed25519 verification (RFC 8032 with ed25519-dalek's
/// `verify_strict`): `false` for a malformed key or signature too. For a key
/// used more than a few times, [`PinnedKey`] is faster.
pub fn verify_strict(
    public_key: &[u8; PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    VerifyingKey::from_bytes(public_key)
        .map(|key| {
            key.verify_strict(message, &Signature::from_bytes(signature))
                .is_ok()
        })
        .unwrap_or(false)
}

/// An Ed25519 public key a client pinned, prepared for strict verification.
///
/// Making one costs about a millisecond and 30 KiB (a fixed-base table of
/// the key); each [`Self::verify_strict`] then costs about half of
/// ed25519-dalek's. A key that does not decode, or is of small order, is
/// kept (so it still compares equal to its bytes) but verifies nothing.
#[derive(Clone)]
pub struct PinnedKey {
    bytes: [u8; PUBLIC_KEY_LEN],
    table: Option<Box<EdwardsBasepointTable>>,
}

impl PinnedKey {
    /// Prepares `bytes` (an Ed25519 public key as published).
    pub fn new(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        let table = CompressedEdwardsY(bytes)
            .decompress()
            .filter(|point| !point.is_small_order())
            .map(|point| Box::new(EdwardsBasepointTable::create(&point)));
        Self { bytes, table }
    }

    /// The key as it was pinned.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// Whether the key can verify anything: it decodes to a point that is
    /// not of small order.
    pub fn is_usable(&self) -> bool {
        self.table.is_some()
    }

    /// Strict verification of `signature` over `message`: the same decision
    /// as ed25519-dalek's `VerifyingKey::verify_strict` (module docs).
    pub fn verify_strict(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        let Some(table) = &self.table else {
            return false;
        };
        let signature = Signature::from_bytes(signature);
        let r_bytes = signature.r_bytes();
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))
        else {
            return false;
        };
        let hash = Sha512::new()
            .chain_update(r_bytes)
            .chain_update(self.bytes)
            .chain_update(message)
            .finalize();
        let k = Scalar::from_bytes_mod_order_wide(&hash.into());
        let expected_r: EdwardsPoint = EdwardsPoint::mul_base(&s) - table.mul_base(&k);
        expected_r.compress().as_bytes() == r_bytes && !expected_r.is_small_order()
    }
}

impl PartialEq for PinnedKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PinnedKey {}

impl fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PinnedKey")
            .field(&super::artifact::to_hex(&self.bytes))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn agrees_with_dalek_on_valid_and_tampered_signatures() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pinned = PinnedKey::new(key.verifying_key().to_bytes());
        assert!(pinned.is_usable());
        for len in [0usize, 1, 64, 200] {
            let message = alloc::vec![0x5a; len];
            let sig = key.sign(&message).to_bytes();
            assert!(pinned.verify_strict(&message, &sig));
            for bit in 0..512 {
                let mut bad = sig;
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!pinned.verify_strict(&message, &bad), "bit {bit}");
                assert!(!verify_strict(pinned.as_bytes(), &message, &bad));
            }
            let mut other = message.clone();
            other.push(1);
            assert!(!pinned.verify_strict(&other, &sig));
        }
    }

    #[test]
    fn unusable_keys_verify_nothing() {
        // The identity (small order) and an encoding that is not a point.
        let identity = PinnedKey::new(EdwardsPoint::default().compress().to_bytes());
        assert!(!identity.is_usable());
        assert!(!identity.verify_strict(b"", &[0; 64]));
        let not_a_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|bytes| CompressedEdwardsY(*bytes).decompress().is_none());
        let not_a_point = PinnedKey::new(not_a_point.unwrap());
        assert!(!not_a_point.is_usable());
        assert_eq!(not_a_point, not_a_point.clone());
    }

    /// Pins compare by their key bytes (the lists of pinned keys are
    /// compared and deduplicated with it), and `Debug` names the key.
    #[test]
    fn pins_compare_by_key_and_show_it() {
        let a = PinnedKey::new(SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes());
        let b = PinnedKey::new(SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes());
        assert_eq!(a, PinnedKey::new(*a.as_bytes()));
        assert_ne!(a, b);
        let shown = alloc::format!("{a:?}");
        assert_eq!(
            shown,
            alloc::format!(
                "PinnedKey({:?})",
                super::super::artifact::to_hex(a.as_bytes())
            )
        );
    }
}
