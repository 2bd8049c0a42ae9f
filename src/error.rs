//! The crate's errors: one enum per role, each variant documented.
//!
//! Decoding errors ([`WireError`]) are precise: they say which rule a message
//! broke. Errors at the recovery-code check are deliberately not: a wrong
//! code, an unknown record, an expired or superseded session and a replayed
//! KE3 all surface as [`VaultError::AuthenticationFailed`] at the vault and
//! [`ClientError::RecoveryFailed`] at the client (SPEC.md §7).

use core::fmt;

/// A message could not be decoded. Every decoder in [`crate::wire`] is strict:
/// exact lengths, known type and version, no trailing bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The input is shorter than a message header.
    Empty,
    /// The type byte names no message this version knows.
    UnknownType(u8),
    /// The type byte names another message than the one expected.
    WrongType {
        /// The type expected here.
        expected: u8,
        /// The type found.
        found: u8,
    },
    /// The version byte is not one this implementation speaks.
    UnsupportedVersion(u8),
    /// The message is not exactly the length its type requires.
    Length {
        /// The exact length required.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A field has the right length but an invalid value (for example a
    /// point not on the curve, or Argon2 parameters Argon2 rejects).
    InvalidField(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("message too short for a header"),
            Self::UnknownType(t) => write!(f, "unknown message type 0x{t:02x}"),
            Self::WrongType { expected, found } => {
                write!(
                    f,
                    "expected message type 0x{expected:02x}, found 0x{found:02x}"
                )
            }
            Self::UnsupportedVersion(v) => write!(f, "unsupported message version {v}"),
            Self::Length { expected, found } => {
                write!(f, "message length {found}, expected exactly {expected}")
            }
            Self::InvalidField(name) => write!(f, "invalid field: {name}"),
        }
    }
}

/// What can go wrong on the client (the app's side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// A vault message could not be decoded.
    Wire(WireError),
    /// The recovery code is empty or too long.
    InvalidRecoveryCode,
    /// The Argon2 parameters are below the floor this client is configured
    /// with: a relay may be trying to downgrade the key stretching.
    StretchingBelowFloor,
    /// The Argon2 parameters exceed this client's ceiling: a relay may be
    /// trying to exhaust the device's memory or time.
    StretchingAboveCeiling,
    /// The registration response is not from the fleet: it was not encrypted
    /// under the key this session shares with the fleet's transport key (a
    /// response forged by the relay, or replayed from another session).
    RegistrationResponseNotAuthentic,
    /// The registration response names a key-exchange public key that is
    /// not the fleet key this client trusts. Registration only: in recovery
    /// the same mismatch is [`ClientError::RecoveryFailed`] (SPEC.md §6.2),
    /// because there it would tell a relay that its guessed code opened the
    /// envelope.
    FleetKeyMismatch,
    /// The registration confirmation is not from the fleet, or names another
    /// session: the record may not be stored.
    RegistrationNotConfirmed,
    /// Recovery failed: wrong recovery code, no such record, record erased,
    /// a response that does not belong to this exchange, or an envelope
    /// that opened under a key-exchange key the client does not trust (a
    /// relay's own KE2 for a guessed code). Deliberately uninformative: the
    /// app cannot tell these apart, so it cannot show a relay which it was
    /// (SPEC.md §6.2, §7.5).
    RecoveryFailed,
    /// The key release could not be opened: it was altered in transit or
    /// belongs to another session. The attempt is not lost: the vault has
    /// already reset the counter.
    ReleaseNotAuthentic,
    /// The rekey authorization belongs to another record.
    RekeyAuthorizationMismatch,
    /// The fleet's transport key could not be used: an X-Wing key whose
    /// ML-KEM part fails FIPS 203's check (SPEC.md §4.4).
    InvalidFleetKey,
    /// An internal cryptographic operation failed unexpectedly.
    Internal,
    /// A validation bundle was refused, or the vault used a key its verified
    /// bundle does not list (SPEC.md §17).
    Bundle(BundleError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "malformed vault message: {e}"),
            Self::InvalidRecoveryCode => f.write_str("recovery code is empty or too long"),
            Self::StretchingBelowFloor => {
                f.write_str("key-stretching parameters below the configured floor")
            }
            Self::StretchingAboveCeiling => {
                f.write_str("key-stretching parameters above the configured ceiling")
            }
            Self::RegistrationResponseNotAuthentic => {
                f.write_str("registration response not from the fleet")
            }
            Self::FleetKeyMismatch => {
                f.write_str("vault key-exchange key is not the trusted fleet key")
            }
            Self::RegistrationNotConfirmed => {
                f.write_str("registration not confirmed by the fleet")
            }
            Self::RecoveryFailed => f.write_str("recovery failed"),
            Self::ReleaseNotAuthentic => f.write_str("key release not authentic"),
            Self::RekeyAuthorizationMismatch => {
                f.write_str("rekey authorization is for another record")
            }
            Self::InvalidFleetKey => f.write_str("invalid fleet transport key"),
            Self::Internal => f.write_str("internal cryptographic error"),
            Self::Bundle(e) => write!(f, "fleet keys not trusted: {e}"),
        }
    }
}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

impl From<BundleError> for ClientError {
    fn from(e: BundleError) -> Self {
        Self::Bundle(e)
    }
}

/// What the vault answers instead of a response. Each maps to a one-byte
/// code on the wire ([`crate::wire::Rejection`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultError {
    /// A request could not be decoded.
    Wire(WireError),
    /// The recovery did not succeed. Covers a wrong code, an unknown, expired,
    /// superseded or finished session, and a KE3 for another record.
    /// Deliberately uninformative.
    AuthenticationFailed,
    /// The store could not commit the state change this answer depends on.
    /// Nothing was released (fail closed). Safe to retry.
    Unavailable,
    /// Too many sessions are pending; try again later. Nothing was charged.
    Busy,
    /// Every attempt of this record is spent and its last session is still
    /// pending; no further attempt can be started.
    AttemptsExhausted,
    /// A sealed request could not be opened with the fleet's transport key,
    /// or a registration upload was altered in transit.
    RequestNotAuthentic,
    /// The registration upload names no pending registration session (never
    /// made, expired, or already used).
    UnknownRegistration,
    /// A live record exists for this id and the request carried no valid
    /// proof of a successful recovery in this session; or the record changed
    /// while the registration was in flight.
    RegistrationRefused,
    /// The uploaded Argon2 parameters are below the vault's policy floor.
    StretchingBelowFloor,
    /// The [`crate::vault::VaultPolicy`] is inconsistent (zero attempts or
    /// session bounds, invalid or inconsistent Argon2 parameters).
    InvalidPolicy,
    /// An internal cryptographic operation failed unexpectedly.
    Internal,
    /// The vault holds no validation bundle to hand out (SPEC.md §16.2).
    NoBundle,
    /// The record id is outside the range of ids this vault's group owns
    /// (SPEC.md §14.1, §7): refused before anything is opened, charged or
    /// answered. Says nothing about the record: the ranges are public.
    RecordNotInRange,
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "malformed request: {e}"),
            Self::AuthenticationFailed => f.write_str("authentication failed"),
            Self::Unavailable => f.write_str("vault unavailable: state change not committed"),
            Self::Busy => f.write_str("vault busy: too many pending sessions"),
            Self::AttemptsExhausted => f.write_str("no attempts remain"),
            Self::RequestNotAuthentic => f.write_str("request not sealed to the fleet"),
            Self::UnknownRegistration => f.write_str("no such pending registration"),
            Self::RegistrationRefused => f.write_str("registration refused"),
            Self::StretchingBelowFloor => {
                f.write_str("key-stretching parameters below vault policy")
            }
            Self::InvalidPolicy => f.write_str("invalid vault policy"),
            Self::Internal => f.write_str("internal error"),
            Self::NoBundle => f.write_str("no validation bundle set"),
            Self::RecordNotInRange => f.write_str("record id outside the range this fleet serves"),
        }
    }
}

impl From<WireError> for VaultError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

/// A store could not durably commit a command. Deliberately carries no
/// detail: the vault's only reaction is to release nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StoreError;

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("store commit failed")
    }
}

#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl std::error::Error for WireError {}
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl std::error::Error for ClientError {}
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl std::error::Error for VaultError {}
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl std::error::Error for StoreError {}

/// A validation bundle, fleet-key artifact, checkpoint or log proof was
/// refused (SPEC.md §14–§18). Each check of the client's verification order
/// (§17) has its own variant, so an app can report what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle's bytes do not follow the codec of §16 (length, version,
    /// bounds, trailing bytes).
    Malformed(WireError),
    /// The artifact is not a canonical fleet-key artifact (§14); the name
    /// says which rule it broke.
    ArtifactMalformed(&'static str),
    /// SHA-256 of the artifact is not the digest the auditor signed: the
    /// artifact was changed after it was logged.
    ArtifactChanged,
    /// The auditor key named by the bundle is not one the client pins.
    UnknownAuditorKey,
    /// The auditor's signature does not verify over this statement
    /// (namespace, timestamp, epoch, digest): it was made for another epoch,
    /// digest or time.
    AuditorSignatureInvalid,
    /// The bundle carries no operator counter-signature.
    CounterSignatureMissing,
    /// The operator key named by the bundle is not one the client pins.
    UnknownOperatorKey,
    /// The operator's counter-signature is not over this bundle's auditor
    /// signature bytes.
    CounterSignatureInvalid,
    /// The artifact is for another namespace than the client's.
    WrongNamespace,
    /// The artifact's epoch is not the epoch of the signed statement.
    EpochMismatch,
    /// The app's time is before the artifact's `not_before_ms`.
    NotYetValid,
    /// The app's time is at or after the artifact's `not_after_ms`.
    Expired,
    /// The bundle's epoch is older than the newest epoch this client has
    /// stored: a rollback to an earlier fleet.
    Rollback {
        /// The newest epoch the client had stored.
        stored: u64,
        /// The epoch presented.
        presented: u64,
    },
    /// The checkpoint is not a well-formed C2SP checkpoint note (§15).
    CheckpointMalformed(&'static str),
    /// The checkpoint is for another log (its origin is not the namespace's).
    CheckpointOriginMismatch,
    /// No signature on the checkpoint verifies under a pinned auditor key.
    CheckpointSignatureInvalid,
    /// The inclusion proof does not lead from this entry to the checkpoint's
    /// root: it was made for another tree, index or entry.
    InclusionProofInvalid,
    /// A consistency proof does not show that the older checkpoint's tree is
    /// a prefix of the newer one: the log forked or rewrote history.
    ConsistencyProofInvalid,
    /// The artifact lists no key for this role (or several).
    MissingRole(crate::bundle::KeyRole),
    /// The vault used a key that the verified bundle does not list for this
    /// role.
    KeyNotListed(crate::bundle::KeyRole),
    /// The fleet's range (§14.1) does not hold the client's record id: the
    /// fleet does not own the record, so nothing is sent to it.
    RecordNotOwned {
        /// The first prefix the fleet owns.
        first: u64,
        /// The last prefix the fleet owns.
        last: u64,
    },
    /// Two artifacts of one realm and layout name overlapping but
    /// different ranges (§14.1): one record would have two groups.
    RangeOverlap,
    /// The bundle names another range of record ids than the vault serves
    /// (§16.2): a vault hands out only a bundle for its own range.
    RangeMismatch,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed validation bundle: {e}"),
            Self::ArtifactMalformed(what) => write!(f, "malformed fleet-key artifact: {what}"),
            Self::ArtifactChanged => f.write_str("artifact does not match the logged digest"),
            Self::UnknownAuditorKey => f.write_str("auditor key is not pinned"),
            Self::AuditorSignatureInvalid => f.write_str("auditor signature does not verify"),
            Self::CounterSignatureMissing => f.write_str("operator counter-signature missing"),
            Self::UnknownOperatorKey => f.write_str("operator key is not pinned"),
            Self::CounterSignatureInvalid => {
                f.write_str("operator counter-signature does not verify")
            }
            Self::WrongNamespace => f.write_str("artifact is for another namespace"),
            Self::EpochMismatch => f.write_str("artifact epoch differs from the signed epoch"),
            Self::NotYetValid => f.write_str("fleet keys not yet valid"),
            Self::Expired => f.write_str("fleet keys expired"),
            Self::Rollback { stored, presented } => write!(
                f,
                "rollback: epoch {presented} is older than the stored epoch {stored}"
            ),
            Self::CheckpointMalformed(what) => write!(f, "malformed checkpoint: {what}"),
            Self::CheckpointOriginMismatch => f.write_str("checkpoint is for another log"),
            Self::CheckpointSignatureInvalid => {
                f.write_str("checkpoint not signed by a pinned auditor key")
            }
            Self::InclusionProofInvalid => {
                f.write_str("inclusion proof does not match the checkpoint")
            }
            Self::ConsistencyProofInvalid => {
                f.write_str("checkpoints are not consistent: the log forked or was rewritten")
            }
            Self::MissingRole(role) => write!(f, "artifact lists no single key for role {role}"),
            Self::KeyNotListed(role) => {
                write!(
                    f,
                    "vault used a key the bundle does not list for role {role}"
                )
            }
            Self::RecordNotOwned { first, last } => write!(
                f,
                "the fleet serves record ids {first:016x}..={last:016x} (first 8 bytes), \
                 not this record"
            ),
            Self::RangeOverlap => {
                f.write_str("two groups of one realm and layout name overlapping ranges")
            }
            Self::RangeMismatch => {
                f.write_str("bundle names another range of record ids than the vault serves")
            }
        }
    }
}

impl From<WireError> for BundleError {
    fn from(e: WireError) -> Self {
        Self::Malformed(e)
    }
}

#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl std::error::Error for BundleError {}
