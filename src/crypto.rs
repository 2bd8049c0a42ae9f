//! Key derivations, single-use AEAD, and the HPKE channel to the fleet
//! (SPEC.md §4). Every label is listed here and in the SPEC, once.

use hkdf::Hkdf;
use sha2::Sha512;
use zeroize::Zeroizing;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use crate::types::{RecordId, Secret32, SessionId};
use crate::wire::TAG_LEN;

/// HPKE suite of the channel (SPEC.md §4.4): X-Wing (ML-KEM-768 +
/// X25519, KEM id 0x647a), HKDF-SHA256, ChaCha20-Poly1305.
pub(crate) type HpkeKem = crate::xwing::XWing;
pub(crate) type HpkeKdf = hpke::kdf::HkdfSha256;
pub(crate) type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// Domain-separation labels. Each derived key is used for exactly one
/// encryption, so the AEAD nonce is fixed at zero.
pub(crate) mod label {
    /// HPKE `info` prefix for registration (followed by the record id).
    /// `v2`: the channel's KEM is X-Wing (SPEC.md §4.4).
    pub const HPKE_INFO: &[u8] = b"backup-key-vault/v2/registration";
    /// HPKE `info` prefix for recovery (followed by the record id).
    pub const HPKE_INFO_RECOVERY: &[u8] = b"backup-key-vault/v2/recovery";
    /// HPKE exporter context for the recovery response (KE2) key.
    pub const EXPORT_RECOVERY_RESPONSE: &[u8] = b"backup-key-vault/v2/recovery-response";
    /// HPKE exporter context for the recovery finish (KE3) key.
    pub const EXPORT_RECOVERY_FINISH: &[u8] = b"backup-key-vault/v2/recovery-finish";
    /// HPKE exporter context for the channel's share of the release key.
    pub const EXPORT_RECOVERY_RELEASE: &[u8] = b"backup-key-vault/v2/recovery-release";
    /// HKDF info: an exported recovery secret -> that secret's key for one
    /// session (followed by the session id).
    pub const RECOVERY_SESSION_KEY: &[u8] = b"backup-key-vault/v2/recovery-session-key";
    /// HPKE exporter context for the registration response key.
    pub const EXPORT_RESPONSE: &[u8] = b"backup-key-vault/v1/registration-response";
    /// HPKE exporter context for the registration upload key.
    pub const EXPORT_UPLOAD: &[u8] = b"backup-key-vault/v1/registration-upload";
    /// HPKE exporter context for the registration confirmation key.
    pub const EXPORT_CONFIRM: &[u8] = b"backup-key-vault/v1/registration-confirm";
    /// HKDF info: an exported registration secret -> that secret's key for
    /// one vault answer (followed by the session id).
    pub const REGISTRATION_SESSION_KEY: &[u8] = b"backup-key-vault/v1/registration-session-key";
    /// HKDF info: export key -> backup-key wrapping key.
    pub const WRAP_KEY: &[u8] = b"backup-key-vault/v1/wrap-key";
    /// HKDF info: OPAQUE session key || the channel's release secret ->
    /// key-release key (`v2`: the channel's secret joined the input).
    pub const RELEASE_KEY: &[u8] = b"backup-key-vault/v2/release-key";
    /// HKDF info: session key -> rekey token.
    pub const REKEY_TOKEN: &[u8] = b"backup-key-vault/v1/rekey-token";
    /// OPAQUE key-exchange context prefix (followed by the record id).
    pub const OPAQUE_CONTEXT: &[u8] = b"backup-key-vault/v1/recovery";
    /// HKDF info: OPRF seed -> the fake-record public key.
    pub const DUMMY_KEY: &[u8] = b"backup-key-vault/v1/dummy-key";
    /// HKDF info: OPRF seed -> the key that derives unknown records' nonces.
    pub const UNKNOWN_NONCE_KEY: &[u8] = b"backup-key-vault/v1/unknown-record-nonce-key";
    /// HKDF info: that key -> an unknown record's OPRF nonce (with the id).
    pub const UNKNOWN_NONCE: &[u8] = b"backup-key-vault/v1/unknown-record-nonce";
    /// HKDF info: OPRF seed -> the fleet's inter-node transport key (SPEC.md §21).
    pub const FLEET_TRANSPORT_KEY: &[u8] = b"backup-key-vault/v1/fleet-transport-key";
    /// HKDF info prefix: fleet transport key -> one sender boot's key for one
    /// link (followed by from, to, incarnation, boot nonce; SPEC.md §21).
    pub const FLEET_LINK_KEY: &[u8] = b"backup-key-vault/v1/fleet-link-key";
    /// HKDF info prefix: fleet transport key -> one member's key for what
    /// its host stores for it (followed by the member id; SPEC.md §22).
    pub const FLEET_STORAGE_KEY: &[u8] = b"backup-key-vault/v1/fleet-storage-key";
    /// AEAD associated-data prefixes, one per encrypted field.
    pub const AAD_RESPONSE: &[u8] = b"backup-key-vault/v1/aad/registration-response";
    pub const AAD_UPLOAD: &[u8] = b"backup-key-vault/v1/aad/registration-upload";
    pub const AAD_CONFIRM: &[u8] = b"backup-key-vault/v1/aad/registration-confirm";
    pub const AAD_WRAP: &[u8] = b"backup-key-vault/v1/aad/wrapped-key";
    pub const AAD_RELEASE: &[u8] = b"backup-key-vault/v1/aad/key-release";
    pub const AAD_RECOVERY_RESPONSE: &[u8] = b"backup-key-vault/v2/aad/recovery-response";
    pub const AAD_RECOVERY_FINISH: &[u8] = b"backup-key-vault/v2/aad/recovery-finish";
}

/// Writes `parts` one after another into `out`. Returns `false`, having
/// written a prefix, if their lengths do not add up to `out`'s exactly: a bug
/// in the caller, reported rather than panicking.
#[must_use]
pub(crate) fn fill(out: &mut [u8], parts: &[&[u8]]) -> bool {
    let mut rest = out;
    for part in parts {
        let Some((head, tail)) = rest.split_at_mut_checked(part.len()) else {
            return false;
        };
        head.copy_from_slice(part);
        rest = tail;
    }
    rest.is_empty()
}

/// `label || record_id`, for HPKE info and the OPAQUE context.
pub(crate) fn bound_to_record(label: &[u8], record_id: &RecordId) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::with_capacity(label.len() + 32);
    out.extend_from_slice(label);
    out.extend_from_slice(record_id.as_bytes());
    out
}

/// HKDF-SHA512 with an empty salt: `Expand(Extract(ikm), label || parts…, 32)`.
pub(crate) fn derive_key(ikm: &[u8], label: &[u8], parts: &[&[u8]]) -> Secret32 {
    let mut out = Secret32([0; 32]);
    derive_into(ikm, label, parts, &mut out.0);
    out
}

/// HKDF-SHA512 with an empty salt into `out` (at most 255 * 64 bytes).
pub(crate) fn derive_into(ikm: &[u8], label: &[u8], parts: &[&[u8]], out: &mut [u8]) {
    let hk = Hkdf::<Sha512>::new(None, ikm);
    let mut info: alloc::vec::Vec<&[u8]> = alloc::vec::Vec::with_capacity(parts.len() + 1);
    info.push(label);
    info.extend_from_slice(parts);
    // Every caller asks for 32 or 64 bytes, far below HKDF-SHA512's limit of
    // 255 * 64: this cannot fail.
    let _ = hk.expand_multi_info(&info, out);
}

/// Associated data: `label || record_id || session_id`.
pub(crate) fn aad(
    label: &[u8],
    record_id: &RecordId,
    session_id: &SessionId,
) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::with_capacity(label.len() + 48);
    out.extend_from_slice(label);
    out.extend_from_slice(record_id.as_bytes());
    out.extend_from_slice(session_id.as_bytes());
    out
}

/// Encrypts `plaintext` under a single-use key (nonce zero) into
/// `ciphertext || tag`.
pub(crate) fn seal<const P: usize, const C: usize>(
    key: &Secret32,
    aad: &[u8],
    plaintext: &[u8; P],
) -> [u8; C] {
    debug_assert_eq!(P + TAG_LEN, C);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
    let mut buf = Zeroizing::new(*plaintext);
    let mut out = [0u8; C];
    // Encryption fails only for plaintexts over 256 GiB.
    if let Ok(tag) =
        cipher.encrypt_in_place_detached(Nonce::from_slice(&[0; 12]), aad, &mut buf[..])
    {
        let (body, tag_out) = out.split_at_mut(P);
        body.copy_from_slice(&buf[..]);
        tag_out.copy_from_slice(&tag);
    }
    out
}

/// Opens `ciphertext || tag` under a single-use key. `None` when the tag
/// does not verify (or the lengths disagree).
pub(crate) fn open<const C: usize, const P: usize>(
    key: &Secret32,
    aad: &[u8],
    sealed: &[u8; C],
) -> Option<Zeroizing<[u8; P]>> {
    let (body, tag) = sealed.split_at_checked(P)?;
    if tag.len() != TAG_LEN {
        return None;
    }
    let mut buf = Zeroizing::new([0u8; P]);
    buf.copy_from_slice(body);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&[0; 12]),
            aad,
            &mut buf[..],
            Tag::from_slice(tag),
        )
        .ok()?;
    Some(buf)
}

/// hpke 0.13 takes its randomness through rand_core 0.9, opaque-ke through
/// rand_core 0.6: this adapter lends the caller's one RNG to hpke.
pub(crate) struct HpkeRng<'a, R>(pub &'a mut R);

impl<R: rand_core::RngCore> rand_core_09::RngCore for HpkeRng<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl<R: rand_core::RngCore + rand_core::CryptoRng> rand_core_09::CryptoRng for HpkeRng<'_, R> {}

/// The three registration keys: exported from the registration's HPKE
/// context, then bound to the session the vault opened for its answer
/// ([`RegistrationKeys::for_session`]).
pub(crate) struct RegistrationKeys {
    pub response: Secret32,
    pub upload: Secret32,
    pub confirm: Secret32,
}

pub(crate) fn export_registration_keys<F>(export: F) -> Option<RegistrationKeys>
where
    F: Fn(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
{
    let take = |label: &[u8]| -> Option<Secret32> {
        let mut k = Secret32([0; 32]);
        export(label, &mut k.0).ok()?;
        Some(k)
    };
    Some(RegistrationKeys {
        response: take(label::EXPORT_RESPONSE)?,
        upload: take(label::EXPORT_UPLOAD)?,
        confirm: take(label::EXPORT_CONFIRM)?,
    })
}

impl RegistrationKeys {
    /// The keys for one vault answer: `HKDF(secret, REGISTRATION_SESSION_KEY
    /// || session_id)` for each exported secret. HPKE's receiver context is a
    /// function of the request alone, so a relay that replays one request
    /// gets the same exported secrets every time; the vault's fresh random
    /// session id makes every answer's keys new, so no key ever seals twice
    /// under the fixed zero nonce (SPEC.md §4.2).
    pub(crate) fn for_session(&self, session_id: &SessionId) -> Self {
        let bind = |secret: &Secret32| {
            derive_key(
                &secret.0,
                label::REGISTRATION_SESSION_KEY,
                &[session_id.as_bytes()],
            )
        };
        Self {
            response: bind(&self.response),
            upload: bind(&self.upload),
            confirm: bind(&self.confirm),
        }
    }
}

/// The recovery channel's keys (SPEC.md §4.4): exported from the HPKE
/// context of the [`crate::wire::RecoveryStart`], then bound to the session
/// the vault opened ([`RecoveryKeys::for_session`]), as for registration.
#[derive(Clone)]
pub(crate) struct RecoveryKeys {
    pub response: Secret32,
    pub finish: Secret32,
    pub release: Secret32,
}

pub(crate) fn export_recovery_keys<F>(export: F) -> Option<RecoveryKeys>
where
    F: Fn(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
{
    let take = |label: &[u8]| -> Option<Secret32> {
        let mut k = Secret32([0; 32]);
        export(label, &mut k.0).ok()?;
        Some(k)
    };
    Some(RecoveryKeys {
        response: take(label::EXPORT_RECOVERY_RESPONSE)?,
        finish: take(label::EXPORT_RECOVERY_FINISH)?,
        release: take(label::EXPORT_RECOVERY_RELEASE)?,
    })
}

impl RecoveryKeys {
    /// `HKDF(secret, RECOVERY_SESSION_KEY || session_id)` for each exported
    /// secret: a replayed KE1 opens the same context, the vault's fresh
    /// session id makes every answer's keys new.
    pub(crate) fn for_session(&self, session_id: &SessionId) -> Self {
        Self {
            response: Self::bind(&self.response, session_id),
            finish: Self::bind(&self.finish, session_id),
            release: Self::bind(&self.release, session_id),
        }
    }

    /// One exported secret bound to a session: the vault binds each when
    /// it first needs it (the response key at KE2, the others at KE3).
    pub(crate) fn bind(secret: &Secret32, session_id: &SessionId) -> Secret32 {
        derive_key(
            &secret.0,
            label::RECOVERY_SESSION_KEY,
            &[session_id.as_bytes()],
        )
    }
}

/// The key-release key (SPEC.md §4.2, §5.8): `HKDF(session_key ||
/// channel_release, RELEASE_KEY || record_id || session_id)`. Both halves
/// are needed: the OPAQUE session key (only the client that knew the code
/// and the fleet have it) and the channel's (post-quantum) release secret.
pub(crate) fn release_key(
    session_key: &[u8],
    channel_release: &Secret32,
    record_id: &RecordId,
    session_id: &SessionId,
) -> Secret32 {
    let mut ikm = Zeroizing::new(alloc::vec::Vec::with_capacity(session_key.len() + 32));
    ikm.extend_from_slice(session_key);
    ikm.extend_from_slice(&channel_release.0);
    derive_key(
        &ikm,
        label::RELEASE_KEY,
        &[record_id.as_bytes(), session_id.as_bytes()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = Secret32([1; 32]);
        let sealed: [u8; 48] = seal(&key, b"aad", &[7u8; 32]);
        let opened: Zeroizing<[u8; 32]> = open(&key, b"aad", &sealed).unwrap();
        assert_eq!(*opened, [7u8; 32]);
        assert!(open::<48, 32>(&key, b"other", &sealed).is_none());
        let mut flipped = sealed;
        flipped[0] ^= 1;
        assert!(open::<48, 32>(&key, b"aad", &flipped).is_none());
        assert!(open::<48, 32>(&Secret32([2; 32]), b"aad", &sealed).is_none());
    }

    #[test]
    fn fill_checks_lengths() {
        let mut out = [0u8; 4];
        assert!(fill(&mut out, &[&[1, 2], &[3, 4]]));
        assert_eq!(out, [1, 2, 3, 4]);
        assert!(!fill(&mut out, &[&[1, 2, 3]]));
        assert!(!fill(&mut out, &[&[1, 2, 3], &[4, 5]]));
    }

    #[test]
    fn derivations_are_domain_separated() {
        let a = derive_key(b"ikm", label::WRAP_KEY, &[b"x"]);
        let b = derive_key(b"ikm", label::RELEASE_KEY, &[b"x"]);
        let c = derive_key(b"ikm", label::WRAP_KEY, &[b"y"]);
        assert_ne!(a.0, b.0);
        assert_ne!(a.0, c.0);
        assert_eq!(a.0, derive_key(b"ikm", label::WRAP_KEY, &[b"x"]).0);
    }
}
