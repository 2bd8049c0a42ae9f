//! Strict codecs for every protocol message (SPEC.md §5).
//!
//! Every message starts with a one-byte type and a one-byte version
//! ([`MessageType::version`]: [`CHANNEL_VERSION`] for the messages between
//! client and vault, which travel inside the post-quantum channel
//! (SPEC.md §4.4), [`KEY_RELEASE_VERSION`] for a [`KeyRelease`], [`VERSION`]
//! for the rejection and the bundle messages), then fixed-length fields. A decoder accepts exactly the
//! length its type requires and nothing else: no trailing bytes, no optional
//! fields. Group elements and OPAQUE sub-messages inside a message are
//! validated where they are used (the vault or the client parses them with
//! opaque-ke and maps a failure to [`WireError::InvalidField`]).

use alloc::vec::Vec;

use crate::bundle::{EncodedBundle, MAX_BUNDLE_LEN};
use crate::error::WireError;
use crate::suite::StretchingParams;
use crate::types::{RecordId, SessionId, RECORD_ID_LEN, SESSION_ID_LEN};

/// The version of the messages outside the channel: [`Rejection`],
/// [`BundleRequest`], [`BundleResponse`].
pub const VERSION: u8 = 1;
/// The version of the registration and recovery messages (types 0x01-0x07
/// and 0x0C): version 2 travels inside the X-Wing channel (SPEC.md §4.4);
/// version 1 (X25519 registration, recovery in clear) is refused.
pub const CHANNEL_VERSION: u8 = 2;
/// The version a [`KeyRelease`] carries. Version 3: sealed under a key
/// that also takes the channel's release secret (SPEC.md §5.8); versions 1
/// and 2 are refused.
pub const KEY_RELEASE_VERSION: u8 = 3;
/// Length of the header: type and version.
pub const HEADER_LEN: usize = 2;
/// Length of an AEAD tag (ChaCha20-Poly1305 and HPKE's ChaCha20-Poly1305).
pub const TAG_LEN: usize = 16;
/// Length of an HPKE encapsulated key: an X-Wing ciphertext.
pub const ENCAPSULATED_KEY_LEN: usize = crate::xwing::CIPHERTEXT_LEN;
/// Length of OPAQUE's `RegistrationRequest` (a blinded ristretto255 element).
pub const OPAQUE_REGISTRATION_REQUEST_LEN: usize = 32;
/// Length of OPAQUE's `RegistrationResponse` (evaluated element, server key).
pub const OPAQUE_REGISTRATION_RESPONSE_LEN: usize = 64;
/// Length of OPAQUE's `RegistrationRecord` (client key, masking key, envelope).
pub const OPAQUE_REGISTRATION_RECORD_LEN: usize = 192;
/// Length of OPAQUE's KE1 (`CredentialRequest` and client nonce and share).
pub const KE1_LEN: usize = 96;
/// Length of OPAQUE's KE2 (`CredentialResponse` and server auth message).
pub const KE2_LEN: usize = 320;
/// Length of OPAQUE's KE3 (the client MAC).
pub const KE3_LEN: usize = 64;
/// Length of a wrapped backup key (ChaCha20-Poly1305 of 32 bytes).
pub const WRAPPED_KEY_LEN: usize = 32 + TAG_LEN;
/// Length of a rekey token inside a sealed registration request.
pub const REKEY_TOKEN_LEN: usize = 32;
/// Plaintext of the sealed part of a [`KeyRelease`]: the wrapped key, then
/// one byte, the attempts charged before this session's that no earlier
/// success forgave (SPEC.md §5.8).
pub const RELEASE_PLAINTEXT_LEN: usize = WRAPPED_KEY_LEN + 1;

/// Plaintext of the HPKE-sealed part of a [`RegistrationRequest`]: the
/// OPAQUE request, a mode byte (0 = new record, 1 = replace after recovery)
/// and a 32-byte rekey token (all zero in mode 0).
pub const SEALED_REGISTRATION_PLAINTEXT_LEN: usize =
    OPAQUE_REGISTRATION_REQUEST_LEN + 1 + REKEY_TOKEN_LEN;
/// Plaintext of the sealed part of a [`RecoveryResponse`]: attempts
/// remaining, the record's Argon2 parameters, KE2 ([`RecoveryResponseContents`]).
pub const RECOVERY_RESPONSE_PLAINTEXT_LEN: usize = 1 + StretchingParams::ENCODED_LEN + KE2_LEN;
/// Plaintext of the sealed part of a [`RegistrationUpload`].
pub const SEALED_UPLOAD_PLAINTEXT_LEN: usize =
    OPAQUE_REGISTRATION_RECORD_LEN + StretchingParams::ENCODED_LEN + WRAPPED_KEY_LEN;

/// The type byte of each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// [`RegistrationRequest`], client to vault.
    RegistrationRequest = 0x01,
    /// [`RegistrationResponse`], vault to client.
    RegistrationResponse = 0x02,
    /// [`RegistrationUpload`], client to vault.
    RegistrationUpload = 0x03,
    /// [`RegistrationConfirmation`], vault to client.
    RegistrationConfirmation = 0x04,
    /// [`RecoveryStart`] (KE1), client to vault.
    RecoveryStart = 0x05,
    /// [`RecoveryResponse`] (KE2), vault to client.
    RecoveryResponse = 0x06,
    /// [`RecoveryFinish`] (KE3), client to vault.
    RecoveryFinish = 0x07,
    /// [`KeyRelease`], vault to client.
    KeyRelease = 0x08,
    /// [`Rejection`], vault to client.
    Rejection = 0x09,
    /// [`BundleRequest`], client to vault: the fleet's current bundle.
    BundleRequest = 0x0A,
    /// [`BundleResponse`], vault to client.
    BundleResponse = 0x0B,
    /// [`RecoveryResponseWithBundle`] (KE2 and the fleet's bundle), vault to
    /// client.
    RecoveryResponseWithBundle = 0x0C,
}

impl MessageType {
    /// The type named by a type byte.
    pub fn from_byte(byte: u8) -> Result<Self, WireError> {
        Ok(match byte {
            0x01 => Self::RegistrationRequest,
            0x02 => Self::RegistrationResponse,
            0x03 => Self::RegistrationUpload,
            0x04 => Self::RegistrationConfirmation,
            0x05 => Self::RecoveryStart,
            0x06 => Self::RecoveryResponse,
            0x07 => Self::RecoveryFinish,
            0x08 => Self::KeyRelease,
            0x09 => Self::Rejection,
            0x0A => Self::BundleRequest,
            0x0B => Self::BundleResponse,
            0x0C => Self::RecoveryResponseWithBundle,
            other => return Err(WireError::UnknownType(other)),
        })
    }

    /// The version this type's messages carry: [`KEY_RELEASE_VERSION`] for
    /// [`KeyRelease`], [`VERSION`] for [`Rejection`] and the bundle
    /// request and response, [`CHANNEL_VERSION`] for every other.
    pub fn version(self) -> u8 {
        match self {
            Self::KeyRelease => KEY_RELEASE_VERSION,
            Self::Rejection | Self::BundleRequest | Self::BundleResponse => VERSION,
            _ => CHANNEL_VERSION,
        }
    }

    /// The type of an encoded message, from its header, checking the
    /// version its type carries.
    pub fn of(bytes: &[u8]) -> Result<Self, WireError> {
        let (&ty, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        let ty = Self::from_byte(ty)?;
        let &version = rest.first().ok_or(WireError::Empty)?;
        if version != ty.version() {
            return Err(WireError::UnsupportedVersion(version));
        }
        Ok(ty)
    }
}

/// Reads the fields of one message after checking its header and its exact
/// length. Taking more than was checked is impossible by construction; it
/// would still return an error rather than panic.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn open(bytes: &'a [u8], ty: MessageType, body_len: usize) -> Result<Self, WireError> {
        let found = MessageType::of(bytes)?;
        if found != ty {
            return Err(WireError::WrongType {
                expected: ty as u8,
                found: found as u8,
            });
        }
        let expected = HEADER_LEN + body_len;
        if bytes.len() != expected {
            return Err(WireError::Length {
                expected,
                found: bytes.len(),
            });
        }
        Ok(Self {
            rest: bytes.get(HEADER_LEN..).unwrap_or_default(),
        })
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(WireError::InvalidField("length"))?;
        self.rest = tail;
        Ok(*head)
    }

    fn finish(self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::InvalidField("trailing bytes"))
        }
    }
}

fn writer(ty: MessageType, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body_len);
    out.push(ty as u8);
    out.push(ty.version());
    out
}

/// Implements `to_bytes`, `from_bytes`, `ENCODED_LEN` and (with the `serde`
/// feature) serde as a byte string, from one field list, so the encoder and
/// the decoder cannot drift apart.
macro_rules! message {
    (
        $(#[$meta:meta])*
        $name:ident = $ty:ident {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty = ($len:expr, $enc:expr, $dec:expr) ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }

        impl $name {
            /// Exact encoded length in bytes, header included.
            pub const ENCODED_LEN: usize = HEADER_LEN $( + $len )*;

            /// Encodes the message.
            pub fn to_bytes(&self) -> Vec<u8> {
                #[allow(unused_mut)] // a header-only message writes no field
                let mut out = writer(MessageType::$ty, Self::ENCODED_LEN - HEADER_LEN);
                $( {
                    let encode: fn(&$fty) -> [u8; $len] = $enc;
                    out.extend_from_slice(&encode(&self.$field));
                } )*
                out
            }

            /// Decodes the message, strictly: right type, version and exact
            /// length, every field valid.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
                #[allow(unused_mut)] // a header-only message reads no field
                let mut reader = Reader::open(bytes, MessageType::$ty, Self::ENCODED_LEN - HEADER_LEN)?;
                $(
                    let decode: fn([u8; $len]) -> Result<$fty, WireError> = $dec;
                    let $field = decode(reader.take::<{ $len }>()?)?;
                )*
                reader.finish()?;
                Ok(Self { $( $field, )* })
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                // Message contents are public (they cross the relay) but long;
                // show the type and length only.
                write!(f, concat!(stringify!($name), "({} bytes)"), Self::ENCODED_LEN)
            }
        }

        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.to_bytes())
            }
        }

        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes: alloc::vec::Vec<u8> = serde::Deserialize::deserialize(d)?;
                Self::from_bytes(&bytes).map_err(|e| serde::de::Error::custom(e))
            }
        }
    };
}

fn raw<const N: usize>(bytes: [u8; N]) -> Result<[u8; N], WireError> {
    Ok(bytes)
}
fn record_id(bytes: [u8; RECORD_ID_LEN]) -> Result<RecordId, WireError> {
    Ok(RecordId(bytes))
}
fn session_id(bytes: [u8; SESSION_ID_LEN]) -> Result<SessionId, WireError> {
    Ok(SessionId(bytes))
}
fn stretching(bytes: [u8; StretchingParams::ENCODED_LEN]) -> Result<StretchingParams, WireError> {
    StretchingParams::from_bytes(&bytes).ok_or(WireError::InvalidField("stretching parameters"))
}

message! {
    /// Registration step 1, client to vault: an OPAQUE registration request
    /// sealed with HPKE (X-Wing) to the fleet's transport key (SPEC.md §5.1).
    RegistrationRequest = RegistrationRequest {
        /// The record to register.
        record_id: RecordId = (RECORD_ID_LEN, |v| v.0, record_id),
        /// HPKE encapsulated key.
        encapsulated_key: [u8; ENCAPSULATED_KEY_LEN] = (ENCAPSULATED_KEY_LEN, |v| *v, raw),
        /// HPKE ciphertext of the OPAQUE request, mode and rekey token.
        sealed: [u8; SEALED_REGISTRATION_PLAINTEXT_LEN + TAG_LEN] =
            (SEALED_REGISTRATION_PLAINTEXT_LEN + TAG_LEN, |v| *v, raw),
    }
}

message! {
    /// Registration step 2, vault to client: the OPAQUE registration response,
    /// encrypted under a key exported from the request's HPKE context.
    RegistrationResponse = RegistrationResponse {
        /// The pending registration this answers.
        session_id: SessionId = (SESSION_ID_LEN, |v| v.0, session_id),
        /// ChaCha20-Poly1305 of the OPAQUE registration response.
        sealed: [u8; OPAQUE_REGISTRATION_RESPONSE_LEN + TAG_LEN] =
            (OPAQUE_REGISTRATION_RESPONSE_LEN + TAG_LEN, |v| *v, raw),
    }
}

message! {
    /// Registration step 3, client to vault: the OPAQUE record, Argon2
    /// parameters and wrapped backup key, encrypted under a key exported from
    /// the same HPKE context.
    RegistrationUpload = RegistrationUpload {
        /// The record being registered.
        record_id: RecordId = (RECORD_ID_LEN, |v| v.0, record_id),
        /// The pending registration this completes.
        session_id: SessionId = (SESSION_ID_LEN, |v| v.0, session_id),
        /// ChaCha20-Poly1305 of record, parameters and wrapped key.
        sealed: [u8; SEALED_UPLOAD_PLAINTEXT_LEN + TAG_LEN] =
            (SEALED_UPLOAD_PLAINTEXT_LEN + TAG_LEN, |v| *v, raw),
    }
}

message! {
    /// Registration step 4, vault to client: proof that the record was
    /// committed, with its generation.
    RegistrationConfirmation = RegistrationConfirmation {
        /// The registration this confirms.
        session_id: SessionId = (SESSION_ID_LEN, |v| v.0, session_id),
        /// ChaCha20-Poly1305 of the record's new generation (u64, big-endian).
        sealed: [u8; 8 + TAG_LEN] = (8 + TAG_LEN, |v| *v, raw),
    }
}

message! {
    /// Recovery step 1, client to vault: OPAQUE KE1 sealed with HPKE
    /// (X-Wing) to the fleet's transport key (SPEC.md §5.5).
    RecoveryStart = RecoveryStart {
        /// The record to recover.
        record_id: RecordId = (RECORD_ID_LEN, |v| v.0, record_id),
        /// HPKE encapsulated key (an X-Wing ciphertext).
        encapsulated_key: [u8; ENCAPSULATED_KEY_LEN] = (ENCAPSULATED_KEY_LEN, |v| *v, raw),
        /// HPKE ciphertext of KE1.
        sealed: [u8; KE1_LEN + TAG_LEN] = (KE1_LEN + TAG_LEN, |v| *v, raw),
    }
}

message! {
    /// Recovery step 2, vault to client: attempts remaining, the record's
    /// Argon2 parameters and OPAQUE KE2, sealed under a key exported from
    /// the KE1's HPKE context and bound to the session (SPEC.md §5.6); sent
    /// only after the attempt it costs was committed.
    RecoveryResponse = RecoveryResponse {
        /// The pending session KE3 must name.
        session_id: SessionId = (SESSION_ID_LEN, |v| v.0, session_id),
        /// ChaCha20-Poly1305 of the [`RecoveryResponseContents`].
        sealed: [u8; RECOVERY_RESPONSE_PLAINTEXT_LEN + TAG_LEN] =
            (RECOVERY_RESPONSE_PLAINTEXT_LEN + TAG_LEN, |v| *v, raw),
    }
}

/// What a [`RecoveryResponse`] seals: `attempts_remaining (1) ||
/// stretching (12) || KE2 (320)` (SPEC.md §5.6). Only the client that sent
/// the KE1 can open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryResponseContents {
    /// Attempts left after this one. Outside every OPAQUE MAC (the vault
    /// could say anything), so informational; [`crate::client::Recovered`]
    /// carries the count to rely on.
    pub attempts_remaining: u8,
    /// The Argon2 parameters stored with the record.
    pub stretching: StretchingParams,
    /// OPAQUE KE2.
    pub ke2: [u8; KE2_LEN],
}

impl RecoveryResponseContents {
    /// The plaintext encoding.
    pub fn to_bytes(&self) -> [u8; RECOVERY_RESPONSE_PLAINTEXT_LEN] {
        let mut out = [0u8; RECOVERY_RESPONSE_PLAINTEXT_LEN];
        let filled = crate::crypto::fill(
            &mut out,
            &[
                &[self.attempts_remaining],
                &self.stretching.to_bytes(),
                &self.ke2,
            ],
        );
        debug_assert!(filled, "the lengths are constants that add up");
        out
    }

    /// Decodes the plaintext: Argon2 parameters validated
    /// (`InvalidField("stretching parameters")`); KE2 is checked at use.
    pub fn from_bytes(bytes: &[u8; RECOVERY_RESPONSE_PLAINTEXT_LEN]) -> Result<Self, WireError> {
        let Some((&attempts_remaining, rest)) = bytes.split_first() else {
            return Err(WireError::InvalidField("length"));
        };
        let (params, ke2) = rest
            .split_first_chunk::<{ StretchingParams::ENCODED_LEN }>()
            .ok_or(WireError::InvalidField("length"))?;
        Ok(Self {
            attempts_remaining,
            stretching: stretching(*params)?,
            ke2: ke2
                .try_into()
                .map_err(|_| WireError::InvalidField("length"))?,
        })
    }
}

message! {
    /// Recovery step 3, client to vault: OPAQUE KE3 for a pending session,
    /// sealed under a key exported from the KE1's HPKE context and bound to
    /// the session (SPEC.md §5.7).
    RecoveryFinish = RecoveryFinish {
        /// The record being recovered.
        record_id: RecordId = (RECORD_ID_LEN, |v| v.0, record_id),
        /// The session from the KE2.
        session_id: SessionId = (SESSION_ID_LEN, |v| v.0, session_id),
        /// ChaCha20-Poly1305 of KE3.
        sealed: [u8; KE3_LEN + TAG_LEN] = (KE3_LEN + TAG_LEN, |v| *v, raw),
    }
}

message! {
    /// Recovery step 4, vault to client: the wrapped backup key and the
    /// count of attempts no success forgave before this one, encrypted under
    /// a key derived from the OPAQUE session key and the channel's release
    /// secret (version [`KEY_RELEASE_VERSION`]).
    KeyRelease = KeyRelease {
        /// The session this closes.
        session_id: SessionId = (SESSION_ID_LEN, |v| v.0, session_id),
        /// ChaCha20-Poly1305 of the wrapped key and the count.
        sealed: [u8; RELEASE_PLAINTEXT_LEN + TAG_LEN] =
            (RELEASE_PLAINTEXT_LEN + TAG_LEN, |v| *v, raw),
    }
}

message! {
    /// The vault's answer when it answers nothing else: a one-byte reason
    /// (SPEC.md §5.9).
    Rejection = Rejection {
        /// The reason code, see [`RejectionCode`].
        code: RejectionCode = (1, |v| [*v as u8], |b: [u8; 1]| RejectionCode::from_byte(b[0])),
    }
}

/// Why the vault answered with a [`Rejection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RejectionCode {
    /// The request was malformed.
    Malformed = 1,
    /// Authentication failed (uninformative by design).
    AuthenticationFailed = 2,
    /// A state change could not be committed; nothing was released.
    Unavailable = 3,
    /// Too many pending sessions.
    Busy = 4,
    /// No attempts remain while the last session is pending.
    AttemptsExhausted = 5,
    /// The sealed request or upload was not authentic.
    RequestNotAuthentic = 6,
    /// No such pending registration.
    UnknownRegistration = 7,
    /// Registration over a live record without proof of recovery.
    RegistrationRefused = 8,
    /// Argon2 parameters below the vault's policy.
    StretchingBelowFloor = 9,
    /// Internal error.
    Internal = 10,
    /// The vault holds no validation bundle.
    NoBundle = 11,
    /// The record id is outside the range this vault's group owns
    /// (SPEC.md §14.1).
    RecordNotInRange = 12,
}

impl RejectionCode {
    fn from_byte(byte: u8) -> Result<Self, WireError> {
        Ok(match byte {
            1 => Self::Malformed,
            2 => Self::AuthenticationFailed,
            3 => Self::Unavailable,
            4 => Self::Busy,
            5 => Self::AttemptsExhausted,
            6 => Self::RequestNotAuthentic,
            7 => Self::UnknownRegistration,
            8 => Self::RegistrationRefused,
            9 => Self::StretchingBelowFloor,
            10 => Self::Internal,
            11 => Self::NoBundle,
            12 => Self::RecordNotInRange,
            _ => return Err(WireError::InvalidField("rejection code")),
        })
    }
}

impl From<crate::VaultError> for RejectionCode {
    fn from(e: crate::VaultError) -> Self {
        use crate::VaultError as E;
        match e {
            E::Wire(_) => Self::Malformed,
            E::AuthenticationFailed => Self::AuthenticationFailed,
            E::Unavailable => Self::Unavailable,
            E::Busy => Self::Busy,
            E::AttemptsExhausted => Self::AttemptsExhausted,
            E::RequestNotAuthentic => Self::RequestNotAuthentic,
            E::UnknownRegistration => Self::UnknownRegistration,
            E::RegistrationRefused => Self::RegistrationRefused,
            E::StretchingBelowFloor => Self::StretchingBelowFloor,
            E::InvalidPolicy | E::Internal => Self::Internal,
            E::NoBundle => Self::NoBundle,
            E::RecordNotInRange => Self::RecordNotInRange,
        }
    }
}

message! {
    /// Asks the vault for the fleet's current validation bundle (SPEC.md
    /// §16.2). Header only.
    BundleRequest = BundleRequest {}
}

/// Length of the `u32be` length prefix in front of a bundle.
const BUNDLE_PREFIX_LEN: usize = 4;

/// Checks the header of a variable-length message and returns its body.
fn open_variable(bytes: &[u8], ty: MessageType) -> Result<&[u8], WireError> {
    let found = MessageType::of(bytes)?;
    if found != ty {
        return Err(WireError::WrongType {
            expected: ty as u8,
            found: found as u8,
        });
    }
    Ok(bytes.get(HEADER_LEN..).unwrap_or_default())
}

/// Reads `u32be(len) || bundle` filling the rest of `body` exactly.
fn read_bundle(body: &[u8], offset: usize) -> Result<EncodedBundle, WireError> {
    let short = WireError::Length {
        expected: offset + BUNDLE_PREFIX_LEN + 1,
        found: offset + body.len(),
    };
    let (len, bundle) = body.split_first_chunk::<BUNDLE_PREFIX_LEN>().ok_or(short)?;
    let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
    if len == 0 || len > MAX_BUNDLE_LEN {
        return Err(WireError::InvalidField("bundle length"));
    }
    if bundle.len() != len {
        return Err(WireError::Length {
            expected: offset + BUNDLE_PREFIX_LEN + len,
            found: offset + body.len(),
        });
    }
    EncodedBundle::from_bytes(bundle)
}

fn write_bundle(out: &mut Vec<u8>, bundle: &EncodedBundle) {
    let bytes = bundle.as_bytes();
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The vault's answer to a [`BundleRequest`]: `header || u32be(len) ||
/// bundle` (SPEC.md §16.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleResponse {
    /// The fleet's current validation bundle.
    pub bundle: EncodedBundle,
}

impl BundleResponse {
    /// Encodes the message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = writer(
            MessageType::BundleResponse,
            BUNDLE_PREFIX_LEN + self.bundle.as_bytes().len(),
        );
        write_bundle(&mut out, &self.bundle);
        out
    }

    /// Decodes strictly: type, version, a length prefix that matches the
    /// rest exactly, and a well-formed bundle.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let body = open_variable(bytes, MessageType::BundleResponse)?;
        Ok(Self {
            bundle: read_bundle(body, HEADER_LEN)?,
        })
    }
}

/// KE2 with the fleet's validation bundle, "as part of the HSM response"
/// (SPEC.md §16.2): the body of a [`RecoveryResponse`] (365 bytes), then
/// `u32be(len) || bundle`. A vault that holds a bundle answers every KE1
/// with this message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryResponseWithBundle {
    /// The KE2 and its fields, exactly as in a [`RecoveryResponse`].
    pub response: RecoveryResponse,
    /// The fleet's current validation bundle.
    pub bundle: EncodedBundle,
}

impl RecoveryResponseWithBundle {
    /// Encodes the message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let inner = self.response.to_bytes();
        let body = inner.get(HEADER_LEN..).unwrap_or_default();
        let mut out = writer(
            MessageType::RecoveryResponseWithBundle,
            body.len() + BUNDLE_PREFIX_LEN + self.bundle.as_bytes().len(),
        );
        out.extend_from_slice(body);
        write_bundle(&mut out, &self.bundle);
        out
    }

    /// Decodes strictly: the [`RecoveryResponse`] fields with their own
    /// validation, then the bundle filling the rest exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let body = open_variable(bytes, MessageType::RecoveryResponseWithBundle)?;
        let fixed = RecoveryResponse::ENCODED_LEN - HEADER_LEN;
        let (head, rest) = body.split_at_checked(fixed).ok_or(WireError::Length {
            expected: RecoveryResponse::ENCODED_LEN + BUNDLE_PREFIX_LEN + 1,
            found: bytes.len(),
        })?;
        let mut inner = Vec::with_capacity(RecoveryResponse::ENCODED_LEN);
        inner.extend_from_slice(&[
            MessageType::RecoveryResponse as u8,
            MessageType::RecoveryResponse.version(),
        ]);
        inner.extend_from_slice(head);
        Ok(Self {
            response: RecoveryResponse::from_bytes(&inner)?,
            bundle: read_bundle(rest, RecoveryResponse::ENCODED_LEN)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_lengths_are_the_specified_ones() {
        // SPEC.md §5 lists these; a change here is a wire-format change.
        assert_eq!(RegistrationRequest::ENCODED_LEN, 2 + 32 + 1120 + 65 + 16);
        assert_eq!(RegistrationRequest::ENCODED_LEN, 1235);
        assert_eq!(RegistrationResponse::ENCODED_LEN, 2 + 16 + 64 + 16);
        assert_eq!(RegistrationUpload::ENCODED_LEN, 2 + 32 + 16 + 252 + 16);
        assert_eq!(RegistrationConfirmation::ENCODED_LEN, 2 + 16 + 24);
        assert_eq!(RecoveryStart::ENCODED_LEN, 2 + 32 + 1120 + 96 + 16);
        assert_eq!(RecoveryStart::ENCODED_LEN, 1266);
        assert_eq!(RecoveryResponse::ENCODED_LEN, 2 + 16 + 1 + 12 + 320 + 16);
        assert_eq!(RecoveryResponse::ENCODED_LEN, 367);
        assert_eq!(RecoveryFinish::ENCODED_LEN, 2 + 32 + 16 + 64 + 16);
        assert_eq!(RecoveryFinish::ENCODED_LEN, 130);
        assert_eq!(KeyRelease::ENCODED_LEN, 2 + 16 + 48 + 1 + 16);
        assert_eq!(Rejection::ENCODED_LEN, 3);
    }

    #[test]
    fn round_trip_and_header_checks() {
        let msg = RecoveryStart {
            record_id: RecordId([7; 32]),
            encapsulated_key: [8; ENCAPSULATED_KEY_LEN],
            sealed: [9; KE1_LEN + TAG_LEN],
        };
        let bytes = msg.to_bytes();
        assert_eq!(bytes.len(), RecoveryStart::ENCODED_LEN);
        assert_eq!(RecoveryStart::from_bytes(&bytes), Ok(msg));

        // Version 1 is the retired KE1 in clear.
        let mut wrong_version = bytes.clone();
        wrong_version[1] = 1;
        assert_eq!(
            RecoveryStart::from_bytes(&wrong_version),
            Err(WireError::UnsupportedVersion(1))
        );
        let mut wrong_type = bytes.clone();
        wrong_type[0] = MessageType::RecoveryFinish as u8;
        assert_eq!(
            RecoveryStart::from_bytes(&wrong_type),
            Err(WireError::WrongType {
                expected: 0x05,
                found: 0x07
            })
        );
        let mut unknown = bytes.clone();
        unknown[0] = 0xEE;
        assert_eq!(
            RecoveryStart::from_bytes(&unknown),
            Err(WireError::UnknownType(0xEE))
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            RecoveryStart::from_bytes(&long),
            Err(WireError::Length {
                expected: 1266,
                found: 1267
            })
        );
        assert_eq!(
            RecoveryStart::from_bytes(&bytes[..1265]),
            Err(WireError::Length {
                expected: 1266,
                found: 1265
            })
        );
        assert_eq!(RecoveryStart::from_bytes(&[]), Err(WireError::Empty));
        assert_eq!(RecoveryStart::from_bytes(&[5]), Err(WireError::Empty));
    }

    #[test]
    fn a_key_release_carries_version_3_and_refuses_versions_1_and_2() {
        let release = KeyRelease {
            session_id: SessionId([4; 16]),
            sealed: [6; RELEASE_PLAINTEXT_LEN + TAG_LEN],
        };
        let bytes = release.to_bytes();
        assert_eq!(bytes[..2], [0x08, 0x03]);
        assert_eq!(bytes.len(), 83);
        assert_eq!(KeyRelease::from_bytes(&bytes), Ok(release));
        let mut v2 = bytes.clone();
        v2[1] = 2;
        assert_eq!(
            KeyRelease::from_bytes(&v2),
            Err(WireError::UnsupportedVersion(2))
        );
        let mut v1 = bytes.clone();
        v1[1] = 1;
        assert_eq!(
            KeyRelease::from_bytes(&v1),
            Err(WireError::UnsupportedVersion(1))
        );
        // A version-1 release of the old length: refused at the version.
        let mut old = v1;
        old.truncate(82);
        assert_eq!(
            KeyRelease::from_bytes(&old),
            Err(WireError::UnsupportedVersion(1))
        );
        // The channel's messages carry version 2, the rest version 1.
        let start = RecoveryStart {
            record_id: RecordId([7; 32]),
            encapsulated_key: [8; ENCAPSULATED_KEY_LEN],
            sealed: [9; KE1_LEN + TAG_LEN],
        }
        .to_bytes();
        assert_eq!(start[1], 2);
        for ty in 0x01..=0x0C {
            let ty = MessageType::from_byte(ty).unwrap();
            let expected = match ty {
                MessageType::KeyRelease => 3,
                MessageType::Rejection
                | MessageType::BundleRequest
                | MessageType::BundleResponse => 1,
                _ => 2,
            };
            assert_eq!(ty.version(), expected, "{ty:?}");
        }
    }

    #[test]
    fn invalid_fields_are_rejected() {
        let mut bytes = Rejection {
            code: RejectionCode::Busy,
        }
        .to_bytes();
        bytes[2] = 0;
        assert_eq!(
            Rejection::from_bytes(&bytes),
            Err(WireError::InvalidField("rejection code"))
        );
        let msg = RecoveryResponseContents {
            attempts_remaining: 9,
            stretching: StretchingParams::INSECURE_TEST_ONLY,
            ke2: [3; KE2_LEN],
        };
        let mut bytes = msg.to_bytes();
        assert_eq!(RecoveryResponseContents::from_bytes(&bytes), Ok(msg));
        // p_cost = 0 is not an Argon2 parameter set.
        bytes[1 + 8..1 + 12].copy_from_slice(&[0; 4]);
        assert_eq!(
            RecoveryResponseContents::from_bytes(&bytes),
            Err(WireError::InvalidField("stretching parameters"))
        );
    }
}
