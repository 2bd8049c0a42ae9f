//! The key derivations of SPEC.md §4, as public functions over bytes, so
//! that another implementation can check itself against the vectors in
//! `vectors/` (SPEC.md §12) value by value.
//!
//! These are the functions the client and the vault use (they call the same
//! internals in `crypto`); nothing here is needed to run the protocol. Every
//! secret is returned in a [`Zeroizing`] buffer.

use alloc::vec::Vec;

use hkdf::Hkdf;
use hpke::{Deserializable, OpModeR};
use sha2::Sha512;
use zeroize::Zeroizing;

use crate::crypto::{self, label, HpkeAead, HpkeKdf, HpkeKem};
use crate::fleet::OPRF_SEED_LEN;
use crate::types::{RecordId, SessionId, BACKUP_KEY_LEN};
use crate::vault::OPRF_NONCE_LEN;
use crate::wire::{self, MessageType, WRAPPED_KEY_LEN};

/// Length of OPAQUE's credential identifier here: `record_id || oprf_nonce`.
pub const CREDENTIAL_IDENTIFIER_LEN: usize = 32 + OPRF_NONCE_LEN;

/// Every domain-separation label of SPEC.md §4.2, by its SPEC name, in the
/// table's order. The bytes include the `backup-key-vault/v1/` or (the
/// channel's, revision 11) `backup-key-vault/v2/` prefix.
pub const LABELS: &[(&str, &[u8])] = &[
    ("HPKE_INFO", label::HPKE_INFO),
    ("HPKE_INFO_RECOVERY", label::HPKE_INFO_RECOVERY),
    ("EXPORT_RECOVERY_RESPONSE", label::EXPORT_RECOVERY_RESPONSE),
    ("EXPORT_RECOVERY_FINISH", label::EXPORT_RECOVERY_FINISH),
    ("EXPORT_RECOVERY_RELEASE", label::EXPORT_RECOVERY_RELEASE),
    ("RECOVERY_SESSION_KEY", label::RECOVERY_SESSION_KEY),
    ("EXPORT_RESPONSE", label::EXPORT_RESPONSE),
    ("EXPORT_UPLOAD", label::EXPORT_UPLOAD),
    ("EXPORT_CONFIRM", label::EXPORT_CONFIRM),
    ("REGISTRATION_SESSION_KEY", label::REGISTRATION_SESSION_KEY),
    ("WRAP_KEY", label::WRAP_KEY),
    ("RELEASE_KEY", label::RELEASE_KEY),
    ("REKEY_TOKEN", label::REKEY_TOKEN),
    ("OPAQUE_CONTEXT", label::OPAQUE_CONTEXT),
    ("DUMMY_KEY", label::DUMMY_KEY),
    ("UNKNOWN_NONCE_KEY", label::UNKNOWN_NONCE_KEY),
    ("UNKNOWN_NONCE", label::UNKNOWN_NONCE),
    ("AAD_RESPONSE", label::AAD_RESPONSE),
    ("AAD_UPLOAD", label::AAD_UPLOAD),
    ("AAD_CONFIRM", label::AAD_CONFIRM),
    ("AAD_WRAP", label::AAD_WRAP),
    ("AAD_RELEASE", label::AAD_RELEASE),
    ("AAD_RECOVERY_RESPONSE", label::AAD_RECOVERY_RESPONSE),
    ("AAD_RECOVERY_FINISH", label::AAD_RECOVERY_FINISH),
];

fn key32(ikm: &[u8], label: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(crypto::derive_key(ikm, label, parts).0)
}

/// `K_wrap = HKDF(export_key, WRAP_KEY || record_id, 32)` (§4.2).
pub fn wrap_key(export_key: &[u8], record_id: &RecordId) -> Zeroizing<[u8; 32]> {
    key32(export_key, label::WRAP_KEY, &[record_id.as_bytes()])
}

/// The wrapped key (§5): `AEAD(K_wrap, AAD_WRAP || record_id, K)`.
pub fn wrapped_key(
    export_key: &[u8],
    record_id: &RecordId,
    backup_key: &[u8; BACKUP_KEY_LEN],
) -> [u8; WRAPPED_KEY_LEN] {
    let key = crypto::derive_key(export_key, label::WRAP_KEY, &[record_id.as_bytes()]);
    crypto::seal(&key, &wrap_aad(record_id), backup_key)
}

/// `K_release = HKDF(session_key || K_chan_release, RELEASE_KEY ||
/// record_id || session_id, 32)`, where `K_chan_release` is the recovery
/// channel's release key ([`RecoveryKeys::release`]).
pub fn release_key(
    session_key: &[u8],
    channel_release: &[u8; 32],
    record_id: &RecordId,
    session_id: &SessionId,
) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(
        crypto::release_key(
            session_key,
            &crate::types::Secret32(*channel_release),
            record_id,
            session_id,
        )
        .0,
    )
}

/// `rekey_token = HKDF(session_key, REKEY_TOKEN || record_id || session_id, 32)`.
pub fn rekey_token(
    session_key: &[u8],
    record_id: &RecordId,
    session_id: &SessionId,
) -> Zeroizing<[u8; 32]> {
    key32(
        session_key,
        label::REKEY_TOKEN,
        &[record_id.as_bytes(), session_id.as_bytes()],
    )
}

/// `HKDF(oprf_seed, DUMMY_KEY, 64)`: the 64 bytes reduced to the fake-record
/// private scalar (§4.1).
pub fn dummy_key_wide(oprf_seed: &[u8; OPRF_SEED_LEN]) -> Zeroizing<[u8; 64]> {
    let mut wide = Zeroizing::new([0u8; 64]);
    crypto::derive_into(oprf_seed, label::DUMMY_KEY, &[], &mut wide[..]);
    wide
}

/// `dummy_pk`, the fake-record public key (§4.1).
pub fn dummy_public_key(oprf_seed: &[u8; OPRF_SEED_LEN]) -> [u8; 32] {
    let wide = dummy_key_wide(oprf_seed);
    let scalar = curve25519_dalek::Scalar::from_bytes_mod_order_wide(&wide);
    curve25519_dalek::RistrettoPoint::mul_base(&scalar)
        .compress()
        .to_bytes()
}

/// `K_unknown = HKDF(oprf_seed, UNKNOWN_NONCE_KEY, 32)` (§4.1).
pub fn unknown_record_nonce_key(oprf_seed: &[u8; OPRF_SEED_LEN]) -> Zeroizing<[u8; 32]> {
    key32(oprf_seed, label::UNKNOWN_NONCE_KEY, &[])
}

/// `unknown_nonce(record_id) = HKDF(K_unknown, UNKNOWN_NONCE || record_id, 32)`
/// (§4.3): the OPRF nonce of an id with no live record.
pub fn unknown_record_nonce(
    oprf_seed: &[u8; OPRF_SEED_LEN],
    record_id: &RecordId,
) -> [u8; OPRF_NONCE_LEN] {
    let key = unknown_record_nonce_key(oprf_seed);
    *key32(&key[..], label::UNKNOWN_NONCE, &[record_id.as_bytes()])
}

/// OPAQUE's credential identifier: `record_id || oprf_nonce` (§3, §4.3).
pub fn credential_identifier(
    record_id: &RecordId,
    oprf_nonce: &[u8; OPRF_NONCE_LEN],
) -> [u8; CREDENTIAL_IDENTIFIER_LEN] {
    let mut id = [0u8; CREDENTIAL_IDENTIFIER_LEN];
    let filled = crypto::fill(&mut id, &[record_id.as_bytes(), oprf_nonce]);
    debug_assert!(filled, "32 + 32 bytes");
    id
}

/// The per-registration OPRF key's seed (§4.1, RFC 9807 §4.1.2):
/// `HKDF-Expand(oprf_seed, credential_identifier || "OprfKey", 32)`, with the
/// OPRF seed used directly as the pseudorandom key (no Extract). The OPRF
/// private key is RFC 9497's `DeriveKeyPair(this, "OPAQUE-DeriveKeyPair")`.
pub fn oprf_key_seed(
    oprf_seed: &[u8; OPRF_SEED_LEN],
    credential_identifier: &[u8],
) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // A 64-byte PRK is SHA-512's length, and 32 bytes are far below the
    // expansion limit: neither step can fail.
    if let Ok(hk) = Hkdf::<Sha512>::from_prk(oprf_seed) {
        let _ = hk.expand_multi_info(&[credential_identifier, b"OprfKey"], &mut out[..]);
    }
    out
}

/// The HPKE `info` of a registration: `HPKE_INFO || record_id` (§5.1).
pub fn hpke_info(record_id: &RecordId) -> Vec<u8> {
    crypto::bound_to_record(label::HPKE_INFO, record_id)
}

/// The aad of the registration request's HPKE seal: its first 1154 bytes,
/// `0x01 || 0x02 || record_id || enc` (§4.4).
pub fn registration_request_aad(
    record_id: &RecordId,
    encapsulated_key: &[u8; wire::ENCAPSULATED_KEY_LEN],
) -> Vec<u8> {
    request_aad(
        MessageType::RegistrationRequest,
        record_id,
        encapsulated_key,
    )
}

/// The aad of the recovery start's HPKE seal: its first 1154 bytes,
/// `0x05 || 0x02 || record_id || enc` (§4.4).
pub fn recovery_start_aad(
    record_id: &RecordId,
    encapsulated_key: &[u8; wire::ENCAPSULATED_KEY_LEN],
) -> Vec<u8> {
    request_aad(MessageType::RecoveryStart, record_id, encapsulated_key)
}

fn request_aad(ty: MessageType, record_id: &RecordId, encapsulated_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(wire::HEADER_LEN + 32 + encapsulated_key.len());
    aad.push(ty as u8);
    aad.push(ty.version());
    aad.extend_from_slice(record_id.as_bytes());
    aad.extend_from_slice(encapsulated_key);
    aad
}

/// The HPKE `info` of a recovery: `HPKE_INFO_RECOVERY || record_id` (§5.5).
pub fn recovery_hpke_info(record_id: &RecordId) -> Vec<u8> {
    crypto::bound_to_record(label::HPKE_INFO_RECOVERY, record_id)
}

/// AEAD aad of the sealed recovery response (§5.6).
pub fn recovery_response_aad(record_id: &RecordId, session_id: &SessionId) -> Vec<u8> {
    crypto::aad(label::AAD_RECOVERY_RESPONSE, record_id, session_id)
}

/// AEAD aad of the sealed recovery finish (§5.7).
pub fn recovery_finish_aad(record_id: &RecordId, session_id: &SessionId) -> Vec<u8> {
    crypto::aad(label::AAD_RECOVERY_FINISH, record_id, session_id)
}

/// The OPAQUE login context: `OPAQUE_CONTEXT || record_id` (§3).
pub fn opaque_context(record_id: &RecordId) -> Vec<u8> {
    crypto::bound_to_record(label::OPAQUE_CONTEXT, record_id)
}

/// AEAD aad of the registration response (§5.2).
pub fn response_aad(record_id: &RecordId, session_id: &SessionId) -> Vec<u8> {
    crypto::aad(label::AAD_RESPONSE, record_id, session_id)
}

/// AEAD aad of the registration upload (§5.3).
pub fn upload_aad(record_id: &RecordId, session_id: &SessionId) -> Vec<u8> {
    crypto::aad(label::AAD_UPLOAD, record_id, session_id)
}

/// AEAD aad of the registration confirmation (§5.4).
pub fn confirm_aad(record_id: &RecordId, session_id: &SessionId) -> Vec<u8> {
    crypto::aad(label::AAD_CONFIRM, record_id, session_id)
}

/// AEAD aad of the key release (§5.8).
pub fn release_aad(record_id: &RecordId, session_id: &SessionId) -> Vec<u8> {
    crypto::aad(label::AAD_RELEASE, record_id, session_id)
}

/// AEAD aad of the wrapped key: `AAD_WRAP || record_id` (§5).
pub fn wrap_aad(record_id: &RecordId) -> Vec<u8> {
    crypto::bound_to_record(label::AAD_WRAP, record_id)
}

/// The three registration keys of one vault answer (§4.2): `K_resp`,
/// `K_upload`, `K_confirm`, each `HKDF(Export(ctx, EXPORT_x, 32),
/// REGISTRATION_SESSION_KEY || session_id)`.
pub struct RegistrationKeys {
    /// From `Export(ctx, EXPORT_RESPONSE, 32)`: seals §5.2.
    pub response: Zeroizing<[u8; 32]>,
    /// From `Export(ctx, EXPORT_UPLOAD, 32)`: seals §5.3.
    pub upload: Zeroizing<[u8; 32]>,
    /// From `Export(ctx, EXPORT_CONFIRM, 32)`: seals §5.4.
    pub confirm: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for RegistrationKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RegistrationKeys([redacted])")
    }
}

/// The three secrets exported from a registration's HPKE context, before
/// they are bound to a session: `Export(ctx, EXPORT_x, 32)`. Same arguments
/// as [`registration_keys`], without the session.
pub fn registration_exports(
    transport_private: &[u8; 32],
    encapsulated_key: &[u8; wire::ENCAPSULATED_KEY_LEN],
    record_id: &RecordId,
) -> Option<RegistrationKeys> {
    let keys = exported(transport_private, encapsulated_key, record_id)?;
    Some(RegistrationKeys {
        response: Zeroizing::new(keys.response.0),
        upload: Zeroizing::new(keys.upload.0),
        confirm: Zeroizing::new(keys.confirm.0),
    })
}

/// The recovery channel's keys of one session (§4.4): `K_chan_resp`,
/// `K_chan_finish`, `K_chan_release`, each `HKDF(Export(ctx,
/// EXPORT_RECOVERY_x, 32), RECOVERY_SESSION_KEY || session_id)`; or, from
/// [`recovery_exports`], the exported secrets before that binding.
pub struct RecoveryKeys {
    /// Seals the recovery response (§5.6).
    pub response: Zeroizing<[u8; 32]>,
    /// Seals the recovery finish (§5.7).
    pub finish: Zeroizing<[u8; 32]>,
    /// The channel's half of the release key (§5.8).
    pub release: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for RecoveryKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecoveryKeys([redacted])")
    }
}

fn recovery_exported(
    transport_private: &[u8; 32],
    encapsulated_key: &[u8; wire::ENCAPSULATED_KEY_LEN],
    record_id: &RecordId,
) -> Option<crypto::RecoveryKeys> {
    let sk = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(transport_private).ok()?;
    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(encapsulated_key).ok()?;
    let ctx = hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeR::Base,
        &sk,
        &enc,
        &recovery_hpke_info(record_id),
    )
    .ok()?;
    crypto::export_recovery_keys(|l, out| ctx.export(l, out))
}

fn recovery_keys_out(keys: crypto::RecoveryKeys) -> RecoveryKeys {
    RecoveryKeys {
        response: Zeroizing::new(keys.response.0),
        finish: Zeroizing::new(keys.finish.0),
        release: Zeroizing::new(keys.release.0),
    }
}

/// The secrets exported from a recovery's HPKE context (X-Wing receiver
/// with the transport private key, the KE1's `enc`, `info =
/// HPKE_INFO_RECOVERY || record_id`), before they are bound to a session.
pub fn recovery_exports(
    transport_private: &[u8; 32],
    encapsulated_key: &[u8; wire::ENCAPSULATED_KEY_LEN],
    record_id: &RecordId,
) -> Option<RecoveryKeys> {
    recovery_exported(transport_private, encapsulated_key, record_id).map(recovery_keys_out)
}

/// The recovery channel's keys for the session the vault opened.
pub fn recovery_keys(
    transport_private: &[u8; 32],
    encapsulated_key: &[u8; wire::ENCAPSULATED_KEY_LEN],
    record_id: &RecordId,
    session_id: &SessionId,
) -> Option<RecoveryKeys> {
    recovery_exported(transport_private, encapsulated_key, record_id)
        .map(|k| recovery_keys_out(k.for_session(session_id)))
}

fn exported(
    transport_private: &[u8; 32],
    encapsulated_key: &[u8; wire::ENCAPSULATED_KEY_LEN],
    record_id: &RecordId,
) -> Option<crypto::RegistrationKeys> {
    let sk = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(transport_private).ok()?;
    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(encapsulated_key).ok()?;
    let ctx = hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeR::Base,
        &sk,
        &enc,
        &hpke_info(record_id),
    )
    .ok()?;
    crypto::export_registration_keys(|l, out| ctx.export(l, out))
}

/// The registration keys as the vault derives them: HPKE base-mode
/// receiver with the fleet's transport private key `tr_sk`, the request's
/// `enc` and `info = HPKE_INFO || record_id`, bound to the `session_id` of
/// the vault's answer. `None` if HPKE refuses `enc`.
pub fn registration_keys(
    transport_private: &[u8; 32],
    encapsulated_key: &[u8; wire::ENCAPSULATED_KEY_LEN],
    record_id: &RecordId,
    session_id: &crate::types::SessionId,
) -> Option<RegistrationKeys> {
    let keys = exported(transport_private, encapsulated_key, record_id)?.for_session(session_id);
    Some(RegistrationKeys {
        response: Zeroizing::new(keys.response.0),
        upload: Zeroizing::new(keys.upload.0),
        confirm: Zeroizing::new(keys.confirm.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_the_specified_lengths_and_prefix() {
        // SPEC.md §4.2's "Len" column, in table order.
        let lens = [
            32, 28, 37, 35, 36, 40, 41, 39, 40, 44, 28, 31, 31, 28, 29, 44, 40, 45, 43, 44, 35, 35,
            41, 39,
        ];
        assert_eq!(LABELS.len(), lens.len());
        for ((name, bytes), len) in LABELS.iter().zip(lens) {
            assert_eq!(bytes.len(), len, "{name}");
            let v2 = name.contains("RECOVERY") || ["HPKE_INFO", "RELEASE_KEY"].contains(name);
            let prefix: &[u8] = if v2 {
                b"backup-key-vault/v2/"
            } else {
                b"backup-key-vault/v1/"
            };
            assert!(bytes.starts_with(prefix), "{name}");
        }
    }

    #[test]
    fn wrapped_key_opens_under_wrap_key() {
        let id = RecordId([3; 32]);
        let wrapped = wrapped_key(&[9; 64], &id, &[7; 32]);
        let key = crate::types::Secret32(*wrap_key(&[9; 64], &id));
        let opened: Zeroizing<[u8; 32]> = crypto::open(&key, &wrap_aad(&id), &wrapped).unwrap();
        assert_eq!(*opened, [7; 32]);
    }
}
