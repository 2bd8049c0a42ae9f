//! The fleet's secrets and public keys (SPEC.md §4.1).
//!
//! [`FleetSecrets`] are made once, by the key ceremony, and handed to every
//! HSM of the fleet; the vault state machine only ever receives them. They
//! never appear in a [`crate::vault::Command`].

use core::fmt;

use curve25519_dalek::{RistrettoPoint, Scalar};
use hpke::{Deserializable, Kem as _};
use opaque_ke::ServerSetup;
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{label, HpkeKem};
use crate::error::WireError;
use crate::suite::Suite;
use crate::xwing;

/// Length of the OPRF seed.
pub const OPRF_SEED_LEN: usize = 64;
/// Version byte of the [`FleetSecrets`] encoding. Version 2: the transport
/// private key is an X-Wing seed (SPEC.md §4.1, §4.4); version 1 (an X25519
/// key) is refused.
pub const FLEET_SECRETS_VERSION: u8 = 2;
/// Encoded length of [`FleetSecrets`]: version, OPRF seed, the key-exchange
/// private key and the X-Wing seed.
pub const FLEET_SECRETS_LEN: usize = 1 + OPRF_SEED_LEN + 32 + xwing::PRIVATE_KEY_LEN;
/// Length of the fleet's transport public key (X-Wing).
pub const TRANSPORT_PUBLIC_KEY_LEN: usize = xwing::PUBLIC_KEY_LEN;

/// What every HSM of one fleet holds: the OPRF seed (from which each
/// record's OPRF key is derived), the OPAQUE key-exchange private key
/// (ristretto255), and the transport private key (the 32-byte seed of an
/// X-Wing key: ML-KEM-768 and X25519) every client message is sealed to.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct FleetSecrets {
    oprf_seed: [u8; OPRF_SEED_LEN],
    key_exchange_private: [u8; 32],
    transport_private: [u8; 32],
}

impl fmt::Debug for FleetSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetSecrets")
            .field("public_keys", &self.public_keys())
            .finish_non_exhaustive()
    }
}

impl FleetSecrets {
    /// Makes a new fleet's secrets. Called by the key ceremony, never by the
    /// vault state machine.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut oprf_seed = [0u8; OPRF_SEED_LEN];
        rng.fill_bytes(&mut oprf_seed);
        // A uniformly random non-zero scalar.
        let key_exchange_private = loop {
            let s = Scalar::random(rng);
            if s != Scalar::ZERO {
                break s.to_bytes();
            }
        };
        let mut transport_private = [0u8; 32];
        rng.fill_bytes(&mut transport_private);
        Self {
            oprf_seed,
            key_exchange_private,
            transport_private,
        }
    }

    /// Encodes the secrets for sealing to an HSM:
    /// `version (2) || oprf_seed || key_exchange_private || transport_seed`.
    pub fn to_bytes(&self) -> Zeroizing<[u8; FLEET_SECRETS_LEN]> {
        let mut out = Zeroizing::new([0u8; FLEET_SECRETS_LEN]);
        let filled = crate::crypto::fill(
            &mut out[..],
            &[
                &[FLEET_SECRETS_VERSION],
                &self.oprf_seed,
                &self.key_exchange_private,
                &self.transport_private,
            ],
        );
        debug_assert!(filled, "the lengths are constants that add up");
        out
    }

    /// Decodes and validates: exact length, known version, a canonical
    /// non-zero key-exchange scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let bytes: &[u8; FLEET_SECRETS_LEN] = bytes.try_into().map_err(|_| WireError::Length {
            expected: FLEET_SECRETS_LEN,
            found: bytes.len(),
        })?;
        if bytes[0] != FLEET_SECRETS_VERSION {
            return Err(WireError::UnsupportedVersion(bytes[0]));
        }
        let mut secrets = Self {
            oprf_seed: [0; OPRF_SEED_LEN],
            key_exchange_private: [0; 32],
            transport_private: [0; 32],
        };
        secrets.oprf_seed.copy_from_slice(&bytes[1..65]);
        secrets.key_exchange_private.copy_from_slice(&bytes[65..97]);
        secrets.transport_private.copy_from_slice(&bytes[97..129]);
        let scalar: Option<Scalar> =
            Scalar::from_canonical_bytes(secrets.key_exchange_private).into();
        match scalar {
            Some(s) if s != Scalar::ZERO => Ok(secrets),
            _ => Err(WireError::InvalidField("key-exchange private key")),
        }
    }

    /// The public keys clients pin (or learn from a validation bundle).
    pub fn public_keys(&self) -> FleetPublicKeys {
        let scalar = Scalar::from_bytes_mod_order(self.key_exchange_private);
        let key_exchange = RistrettoPoint::mul_base(&scalar).compress().to_bytes();
        let transport = self
            .transport_key()
            .map(|sk| TransportPublicKey(*HpkeKem::sk_to_pk(&sk).as_bytes()))
            .unwrap_or(TransportPublicKey([0; TRANSPORT_PUBLIC_KEY_LEN]));
        FleetPublicKeys {
            key_exchange,
            transport,
        }
    }

    /// opaque-ke's server setup: the OPRF seed, the key-exchange key pair and
    /// a fake-record public key derived from the seed (so every HSM of the
    /// fleet answers an unknown record the same way).
    pub(crate) fn server_setup(&self) -> Option<ServerSetup<Suite>> {
        let mut wide = Zeroizing::new([0u8; 64]);
        crate::crypto::derive_into(&self.oprf_seed, label::DUMMY_KEY, &[], &mut wide[..]);
        let dummy_pk = RistrettoPoint::mul_base(&Scalar::from_bytes_mod_order_wide(&wide))
            .compress()
            .to_bytes();
        // opaque-ke's encoding: oprf_seed || private key || fake public key.
        let mut setup = Zeroizing::new([0u8; OPRF_SEED_LEN + 64]);
        if !crate::crypto::fill(
            &mut setup[..],
            &[&self.oprf_seed, &self.key_exchange_private, &dummy_pk],
        ) {
            return None;
        }
        ServerSetup::<Suite>::deserialize(&setup[..]).ok()
    }

    /// The key from which the vault derives the OPRF nonce it uses for a
    /// record id that has no record (SPEC.md §4.3).
    pub(crate) fn unknown_record_key(&self) -> crate::types::Secret32 {
        crate::crypto::derive_key(&self.oprf_seed, label::UNKNOWN_NONCE_KEY, &[])
    }

    /// The key fleet members authenticate and encrypt their messages to each
    /// other with (SPEC.md §21): `HKDF(oprf_seed, FLEET_TRANSPORT_KEY, 32)`.
    /// Only HSMs of this fleet can derive it; the host relaying the messages
    /// cannot.
    pub fn fleet_transport_key(&self) -> FleetTransportKey {
        FleetTransportKey(
            crate::crypto::derive_key(&self.oprf_seed, label::FLEET_TRANSPORT_KEY, &[]).0,
        )
    }

    /// The transport private key (X-Wing), expanded from its seed.
    pub(crate) fn transport_key(&self) -> Option<<HpkeKem as hpke::Kem>::PrivateKey> {
        <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(&self.transport_private).ok()
    }
}

/// The fleet's inter-node transport key (SPEC.md §21), derived from the
/// fleet secrets. Zeroized on drop; never shown by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct FleetTransportKey([u8; 32]);

impl FleetTransportKey {
    /// The key bytes, for the fleet's message authentication only.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// The AEAD key of the messages one sender boot sends on one link
    /// (SPEC.md §21): `HKDF(transport_key, FLEET_LINK_KEY || u64be(from) ||
    /// u64be(to) || u64be(incarnation) || boot_nonce, 32)`. A fresh random
    /// boot nonce per start makes every (key, sequence number) pair unique,
    /// even if a rolled-back disk makes a node reuse an incarnation.
    pub fn link_key(
        &self,
        from: u64,
        to: u64,
        incarnation: u64,
        boot_nonce: &[u8; 16],
    ) -> Zeroizing<[u8; 32]> {
        let key = crate::crypto::derive_key(
            &self.0,
            label::FLEET_LINK_KEY,
            &[
                &from.to_be_bytes(),
                &to.to_be_bytes(),
                &incarnation.to_be_bytes(),
                boot_nonce,
            ],
        );
        Zeroizing::new(key.0)
    }

    /// The key under which member `node` seals everything its untrusted
    /// host stores for it (SPEC.md §22): `HKDF(transport_key,
    /// FLEET_STORAGE_KEY || u64be(node))`. One key per member, so a row
    /// copied from another member's disk does not open.
    pub fn storage_key(&self, node: u64) -> Zeroizing<[u8; 32]> {
        let key =
            crate::crypto::derive_key(&self.0, label::FLEET_STORAGE_KEY, &[&node.to_be_bytes()]);
        Zeroizing::new(key.0)
    }
}

impl fmt::Debug for FleetTransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetTransportKey(..)")
    }
}

/// A fleet's public keys: what a client must trust before it talks to the
/// fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FleetPublicKeys {
    /// The OPAQUE key-exchange public key (ristretto255, compressed).
    pub key_exchange: [u8; 32],
    /// The transport public key (X-Wing: ML-KEM-768 then X25519) every
    /// client message is sealed to (SPEC.md §4.4).
    pub transport: TransportPublicKey,
}

/// The fleet's transport public key: an X-Wing key, `pk_M (1184) || pk_X
/// (32)` (SPEC.md §4.1). Public; `Debug` shows its first bytes only.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportPublicKey(pub [u8; TRANSPORT_PUBLIC_KEY_LEN]);

impl TransportPublicKey {
    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8; TRANSPORT_PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The key from its encoding: exactly [`TRANSPORT_PUBLIC_KEY_LEN`]
    /// bytes (validated where it is used: [`crate::ClientError::InvalidFleetKey`]).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for TransportPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransportPublicKey(")?;
        for b in self.0.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for TransportPublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for TransportPublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: alloc::vec::Vec<u8> = serde::Deserialize::deserialize(d)?;
        Self::from_slice(&bytes).ok_or_else(|| {
            serde::de::Error::invalid_length(bytes.len(), &"1216 bytes (an X-Wing public key)")
        })
    }
}

impl FleetPublicKeys {
    /// Whether `key` equals the pinned key-exchange key, in constant time.
    pub(crate) fn key_exchange_matches(&self, key: &[u8]) -> bool {
        key.len() == 32 && bool::from(self.key_exchange.ct_eq(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn secrets_round_trip_and_strict_decoding() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let s = FleetSecrets::generate(&mut rng);
        let bytes = s.to_bytes();
        let back = FleetSecrets::from_bytes(&bytes[..]).unwrap();
        assert_eq!(back.public_keys(), s.public_keys());
        assert!(FleetSecrets::from_bytes(&bytes[..128]).is_err());
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(FleetSecrets::from_bytes(&long).is_err());
        let mut wrong_version = *bytes;
        wrong_version[0] = 1;
        assert_eq!(
            FleetSecrets::from_bytes(&wrong_version).err(),
            Some(WireError::UnsupportedVersion(1))
        );
        let mut zero_scalar = *bytes;
        zero_scalar[65..97].fill(0);
        assert!(FleetSecrets::from_bytes(&zero_scalar).is_err());
        let mut non_canonical = *bytes;
        non_canonical[65..97].fill(0xFF);
        assert!(FleetSecrets::from_bytes(&non_canonical).is_err());
    }

    #[test]
    fn server_setup_uses_the_fleet_key() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let s = FleetSecrets::generate(&mut rng);
        let setup = s.server_setup().unwrap();
        assert_eq!(
            setup.keypair().public().serialize().as_slice(),
            &s.public_keys().key_exchange
        );
    }

    #[test]
    fn fleet_transport_key_is_derived_and_redacted() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let s = FleetSecrets::generate(&mut rng);
        let k = s.fleet_transport_key();
        let again = FleetSecrets::from_bytes(&s.to_bytes()[..]).unwrap();
        assert_eq!(
            k.expose_secret(),
            again.fleet_transport_key().expose_secret()
        );
        assert_ne!(k.expose_secret(), &s.oprf_seed[..32]);
        let other = FleetSecrets::generate(&mut rng);
        assert_ne!(
            k.expose_secret(),
            other.fleet_transport_key().expose_secret()
        );
        assert_eq!(format!("{k:?}"), "FleetTransportKey(..)");
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let s = FleetSecrets::generate(&mut rng);
        let shown = format!("{s:?}");
        assert!(!shown.contains("oprf_seed"));
        assert!(!shown.contains(&format!("{:?}", s.oprf_seed)));
    }
}
