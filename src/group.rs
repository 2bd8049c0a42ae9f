//! ristretto255 as OPAQUE's key-exchange group, computed with less work.
//!
//! SPEC.md §3 fixes the key exchange as 3DH over ristretto255; SPEC.md §10
//! says why this group lives in this crate. [`Ristretto255`] implements
//! opaque-ke's public [`Group`] trait and computes exactly what opaque-ke's
//! own `opaque_ke::Ristretto255` computes (the same keys, the same bytes, the
//! same accepted and refused encodings), with two differences in *how*:
//!
//! 1. A public key made from a secret key ([`Group::public_key`], which the
//!    server runs for its ephemeral key on every login) uses
//!    curve25519-dalek's precomputed basepoint table instead of a
//!    variable-base multiplication by the basepoint: the same point, about a
//!    third of the time.
//! 2. A public key carries its 32-byte encoding beside the point, computed
//!    once when the key is made or parsed. A login serialises the static and
//!    ephemeral keys several times (masking, the transcript); upstream
//!    compresses the point again each time. Ristretto encodings are
//!    canonical (decompression accepts exactly one encoding per point), so the
//!    kept bytes are exactly what compression would return.
//!
//! Decoding refuses what upstream refuses: short input, non-canonical and
//! off-curve encodings (curve25519-dalek's `decompress`), and the identity.
//! Secret scalars are zeroized when dropped. `tests/group_equivalence.rs`
//! runs whole registrations and logins with both groups from the same
//! randomness and compares every byte.
//!
//! The OPRF stays opaque-ke's (voprf's) ristretto255: this type is only the
//! `G` of [`opaque_ke::TripleDh`].

use core::fmt;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use opaque_ke::errors::{InternalError, ProtocolError};
use opaque_ke::generic_array::typenum::U32;
use opaque_ke::generic_array::GenericArray;
use opaque_ke::key_exchange::group::Group;
use opaque_ke::key_exchange::tripledh::DiffieHellman;
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// RFC 9807 §6.4.2 `DeriveDiffieHellmanKeyPair`'s info string, as opaque-ke
/// passes it to voprf's `DeriveKeyPair`.
const DERIVE_KEY_PAIR_INFO: &[u8] = b"OPAQUE-DeriveDiffieHellmanKeyPair";

/// ristretto255 for OPAQUE-3DH: `opaque_ke::Ristretto255`'s arithmetic with
/// the basepoint table and kept encodings (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ristretto255;

/// A ristretto255 point that is not the identity, with its encoding.
///
/// Made only by multiplying the basepoint by a non-zero scalar or by
/// decoding a canonical, non-identity encoding, so the kept encoding is
/// always the point's.
#[derive(Clone, Copy)]
pub struct PublicPoint {
    point: RistrettoPoint,
    encoded: [u8; 32],
}

impl PublicPoint {
    /// The canonical 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.encoded
    }

    /// Decodes a canonical encoding of a point other than the identity.
    fn decode(encoded: [u8; 32]) -> Result<Self, ProtocolError> {
        let point = CompressedRistretto(encoded)
            .decompress()
            .ok_or(ProtocolError::SerializationError)?;
        if point.is_identity() {
            return Err(ProtocolError::SerializationError);
        }
        Ok(Self { point, encoded })
    }

    /// `scalar * B`, from the basepoint table. Not the identity: the scalar is
    /// non-zero and the group has prime order.
    fn from_secret(scalar: &SecretScalar) -> Self {
        let point = RistrettoPoint::mul_base(&scalar.0);
        Self {
            encoded: point.compress().to_bytes(),
            point,
        }
    }
}

impl PartialEq for PublicPoint {
    fn eq(&self, other: &Self) -> bool {
        // Canonical encodings: equal points, equal bytes.
        self.encoded == other.encoded
    }
}

impl Eq for PublicPoint {}

impl fmt::Debug for PublicPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicPoint").field(&self.encoded).finish()
    }
}

/// A non-zero ristretto255 scalar, zeroized when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretScalar(Scalar);

impl SecretScalar {
    fn non_zero(scalar: Scalar) -> Result<Self, ProtocolError> {
        let secret = Self(scalar);
        if secret.0 == Scalar::ZERO {
            Err(ProtocolError::SerializationError)
        } else {
            Ok(secret)
        }
    }
}

impl PartialEq for SecretScalar {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretScalar {}

impl fmt::Debug for SecretScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretScalar(..)")
    }
}

/// Takes the first 32 bytes of `bytes` (opaque-ke's `take_array`, which is
/// private to it, with the same error).
fn take_32(bytes: &mut &[u8], name: &'static str) -> Result<[u8; 32], ProtocolError> {
    let Some((front, back)) = bytes.split_first_chunk::<32>() else {
        return Err(ProtocolError::SizeError {
            name,
            len: 32,
            actual_len: bytes.len(),
        });
    };
    *bytes = back;
    Ok(*front)
}

impl Group for Ristretto255 {
    type Pk = PublicPoint;
    type PkLen = U32;
    type Sk = SecretScalar;
    type SkLen = U32;

    fn serialize_pk(pk: &Self::Pk) -> GenericArray<u8, Self::PkLen> {
        pk.encoded.into()
    }

    fn deserialize_take_pk(bytes: &mut &[u8]) -> Result<Self::Pk, ProtocolError> {
        PublicPoint::decode(take_32(bytes, "public key")?)
    }

    fn random_sk<R: RngCore + CryptoRng>(rng: &mut R) -> Self::Sk {
        // Upstream's loop, drawing the same randomness.
        loop {
            if let Ok(secret) = SecretScalar::non_zero(Scalar::random(rng)) {
                break secret;
            }
        }
    }

    fn derive_scalar(seed: GenericArray<u8, Self::SkLen>) -> Result<Self::Sk, InternalError> {
        let mut seed = seed;
        let scalar = voprf::derive_key::<voprf::Ristretto255>(
            &seed,
            DERIVE_KEY_PAIR_INFO,
            voprf::Mode::Oprf,
        );
        seed.as_mut_slice().zeroize();
        // voprf's DeriveKeyPair never returns zero (it retries), as upstream
        // relies on; checked anyway, as a derivation failure.
        SecretScalar::non_zero(scalar?)
            .map_err(|_| InternalError::OprfError(voprf::Error::Protocol))
    }

    fn public_key(sk: &Self::Sk) -> Self::Pk {
        PublicPoint::from_secret(sk)
    }

    fn serialize_sk(sk: &Self::Sk) -> GenericArray<u8, Self::SkLen> {
        sk.0.to_bytes().into()
    }

    fn deserialize_take_sk(bytes: &mut &[u8]) -> Result<Self::Sk, ProtocolError> {
        let mut encoded = take_32(bytes, "secret key")?;
        let scalar = Scalar::from_canonical_bytes(encoded).into_option();
        encoded.zeroize();
        SecretScalar::non_zero(scalar.ok_or(ProtocolError::SerializationError)?)
    }
}

impl DiffieHellman<Ristretto255> for SecretScalar {
    fn diffie_hellman(&self, pk: &PublicPoint) -> GenericArray<u8, U32> {
        // Not the identity: a non-zero scalar times a non-identity point of a
        // prime-order group. The product is public input to the 3DH IKM only
        // through its encoding, which is what is returned.
        (pk.point * self.0).compress().to_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;

    #[test]
    fn public_key_is_the_basepoint_multiple_and_keeps_its_encoding() {
        let sk = SecretScalar::non_zero(Scalar::from(1234567u64)).unwrap();
        let pk = Ristretto255::public_key(&sk);
        let expected = (RISTRETTO_BASEPOINT_POINT * sk.0).compress().to_bytes();
        assert_eq!(pk.to_bytes(), expected);
        assert_eq!(Ristretto255::serialize_pk(&pk).as_slice(), &expected);
        let mut bytes = &expected[..];
        assert_eq!(Ristretto255::deserialize_take_pk(&mut bytes).unwrap(), pk);
        assert!(bytes.is_empty());
    }

    #[test]
    fn zero_and_identity_are_refused() {
        let mut zero = &[0u8; 32][..];
        assert!(Ristretto255::deserialize_take_sk(&mut zero).is_err());
        let mut identity = &[0u8; 32][..];
        assert!(Ristretto255::deserialize_take_pk(&mut identity).is_err());
        let mut short = &[1u8; 31][..];
        assert!(matches!(
            Ristretto255::deserialize_take_pk(&mut short),
            Err(ProtocolError::SizeError { actual_len: 31, .. })
        ));
    }

    #[test]
    fn secret_scalars_are_zeroized_and_not_printed() {
        let mut sk = SecretScalar::non_zero(Scalar::from(99u64)).unwrap();
        assert_eq!(alloc::format!("{sk:?}"), "SecretScalar(..)");
        sk.zeroize();
        assert_eq!(sk.0, Scalar::ZERO);
    }
}
