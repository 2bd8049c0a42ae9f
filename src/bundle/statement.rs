//! The auditor's signed statement, plexi's `SignatureMessage`, and the
//! Ed25519 keys that sign and counter-sign it (SPEC.md §15.1).
//!
//! The encoding is Cloudflare plexi's ciphersuite 0x0001 (protobuf +
//! Ed25519): a proto2 message whose five fields are all `required`, written
//! here by a small deterministic encoder, fields in number order, each once,
//! integers as minimal varints. Verification is `verify_strict` (no
//! small-order keys, canonical `S`), as plexi does.

use alloc::vec::Vec;
use core::fmt;

use ed25519_dalek::{Signer, SigningKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::artifact::DIGEST_LEN;

pub use super::ed25519::{verify_strict, PUBLIC_KEY_LEN, SIGNATURE_LEN};

/// plexi's ciphersuite 0x0001: protobuf encoding, Ed25519 signature.
pub const CIPHERSUITE_PROTOBUF_ED25519: u32 = 0x0001;

/// What the auditor signs for one logged artifact: plexi's
/// `SignatureMessage { ciphersuite = 1, namespace, timestamp (ms), epoch,
/// digest }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureMessage<'a> {
    /// The namespace the artifact is published under.
    pub namespace: &'a str,
    /// When the auditor signed, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The epoch.
    pub epoch: u64,
    /// SHA-256 of the artifact.
    pub digest: [u8; DIGEST_LEN],
}

impl SignatureMessage<'_> {
    /// The protobuf encoding (SPEC.md §15.1), the bytes that are signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.namespace.len());
        // 1: ciphersuite (varint)
        out.push(0x08);
        varint(&mut out, u64::from(CIPHERSUITE_PROTOBUF_ED25519));
        // 2: namespace (length-delimited)
        out.push(0x12);
        varint(&mut out, self.namespace.len() as u64);
        out.extend_from_slice(self.namespace.as_bytes());
        // 3: timestamp (varint)
        out.push(0x18);
        varint(&mut out, self.timestamp_ms);
        // 4: epoch, an embedded message Epoch { 1: inner (varint) }
        let mut epoch = Vec::with_capacity(11);
        epoch.push(0x08);
        varint(&mut epoch, self.epoch);
        out.push(0x22);
        varint(&mut out, epoch.len() as u64);
        out.extend_from_slice(&epoch);
        // 5: digest (length-delimited)
        out.push(0x2a);
        varint(&mut out, DIGEST_LEN as u64);
        out.extend_from_slice(&self.digest);
        out
    }
}

/// Appends `value` as a protobuf base-128 varint (minimal length).
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

macro_rules! signing_key {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        ///
        /// The secret zeroizes on drop and is redacted in `Debug`.
        #[derive(Clone)]
        pub struct $name(SigningKey);

        impl $name {
            /// A fresh key from `rng`.
            pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
                Self(SigningKey::generate(rng))
            }

            /// The key from its 32-byte secret seed.
            pub fn from_bytes(seed: &[u8; 32]) -> Self {
                Self(SigningKey::from_bytes(seed))
            }

            /// The 32-byte secret seed, for sealed storage.
            pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
                Zeroizing::new(self.0.to_bytes())
            }

            /// The public key clients pin.
            pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
                self.0.verifying_key().to_bytes()
            }

            fn sign_bytes(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
                self.0.sign(message).to_bytes()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("public_key", &super::artifact::to_hex(&self.public_key()))
                    .finish_non_exhaustive()
            }
        }
    };
}

signing_key! {
    /// The auditor's Ed25519 key: signs [`SignatureMessage`]s and the log's
    /// checkpoints.
    AuditorSigningKey
}

signing_key! {
    /// The operator's counter-signing Ed25519 key, held in the fleet's HSMs:
    /// counter-signs the auditor's signature bytes.
    OperatorSigningKey
}

impl AuditorSigningKey {
    /// Signs a statement: Ed25519 over its protobuf encoding.
    pub fn sign_statement(&self, message: &SignatureMessage<'_>) -> [u8; SIGNATURE_LEN] {
        self.sign_bytes(&message.to_bytes())
    }

    /// Signs arbitrary text (a checkpoint note body, SPEC.md §15.3).
    pub fn sign_note_text(&self, text: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.sign_bytes(text)
    }
}

impl OperatorSigningKey {
    /// Counter-signs: Ed25519 over the auditor's 64 signature bytes.
    pub fn countersign(&self, auditor_signature: &[u8; SIGNATURE_LEN]) -> [u8; SIGNATURE_LEN] {
        self.sign_bytes(auditor_signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn encoding_is_the_protobuf_one() {
        let m = SignatureMessage {
            namespace: "ns",
            timestamp_ms: 300,
            epoch: 1,
            digest: [0xab; 32],
        };
        let mut expected = alloc::vec![0x08, 0x01, 0x12, 0x02, b'n', b's', 0x18, 0xac, 0x02];
        expected.extend_from_slice(&[0x22, 0x02, 0x08, 0x01, 0x2a, 0x20]);
        expected.extend_from_slice(&[0xab; 32]);
        assert_eq!(m.to_bytes(), expected);
        // Zero is still written (proto2 required fields are always present).
        let zero = SignatureMessage {
            epoch: 0,
            timestamp_ms: 0,
            ..m
        }
        .to_bytes();
        assert_eq!(&zero[6..12], &[0x18, 0x00, 0x22, 0x02, 0x08, 0x00]);
        let big = SignatureMessage {
            epoch: u64::MAX,
            ..m
        }
        .to_bytes();
        assert_eq!(&big[9..12], &[0x22, 0x0b, 0x08]);
    }

    #[test]
    fn sign_verify_and_redaction() {
        let key = AuditorSigningKey::from_bytes(&[7; 32]);
        let m = SignatureMessage {
            namespace: "ns",
            timestamp_ms: 1,
            epoch: 2,
            digest: [3; 32],
        };
        let sig = key.sign_statement(&m);
        assert!(verify_strict(&key.public_key(), &m.to_bytes(), &sig));
        let other = SignatureMessage { epoch: 3, ..m };
        assert!(!verify_strict(&key.public_key(), &other.to_bytes(), &sig));
        let op = OperatorSigningKey::from_bytes(&[8; 32]);
        let cs = op.countersign(&sig);
        assert!(verify_strict(&op.public_key(), &sig, &cs));
        let shown = format!("{key:?}");
        assert!(!shown.contains("0707"));
        assert!(!verify_strict(&[0; 32], b"x", &[0; 64]));
    }

    /// SPEC.md §15.1: the operator key MUST sign nothing but the auditor's
    /// 64 signature bytes (its counter-signature has no context string).
    /// The type enforces it: the shared signing function is private to the
    /// macro's types, and `OperatorSigningKey` exposes one signing method,
    /// whose input is exactly 64 bytes. This test fails if another is added.
    #[test]
    fn the_operator_key_signs_only_auditor_signatures() {
        // The code of this file, without its tests.
        let source = include_str!("statement.rs")
            .split("#[cfg(test)]")
            .next()
            .unwrap();
        assert_eq!(source.matches("\nimpl OperatorSigningKey").count(), 1);
        let block = source.split("\nimpl OperatorSigningKey {").nth(1).unwrap();
        let block = &block[..block.find("\n}\n").unwrap()];
        let methods: Vec<&str> = block
            .match_indices("pub fn ")
            .map(|(i, _)| &block[i + 7..])
            .map(|rest| &rest[..rest.find(['(', '<']).unwrap()])
            .collect();
        assert_eq!(methods, ["countersign"]);
        assert!(block.contains("auditor_signature: &[u8; SIGNATURE_LEN]"));
        // The macro's shared signer stays private.
        assert!(source.contains("            fn sign_bytes(&self"));
        assert!(!source.contains("pub fn sign_bytes"));
    }
}
