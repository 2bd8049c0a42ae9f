//! The evidence package (SPEC.md §33): one JSON file with the ceremony's
//! transcript and its signatures, every HSM's attestation (certificate
//! chain and signed statement), the fleet-key artifact, and the auditor's
//! bundle for it.
//!
//! Decoding is strict: a size bound, a known format and version, no
//! unknown or repeated fields, every name in the restricted alphabet, every
//! hex field lower-case and of the right length, every list within its
//! bound. Anything else is an [`EvidenceError`], never a panic.
//!
//! The two signed objects, the [`Transcript`] and each [`Statement`], are
//! signed over a **canonical** encoding: a domain label, then the object as
//! compact JSON with its fields in the order of this module (and of SPEC.md
//! §31.2, §32.2). Because every string is restricted to characters JSON
//! never escapes, that encoding is unique and easy to reproduce.

use std::fmt;

use backup_key_vault::bundle::artifact::{is_valid_name, to_hex};
use backup_key_vault::bundle::{KeyRole, ValidationBundle};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The evidence format's name and version.
pub const EVIDENCE_FORMAT: &str = "bkv-deployment-evidence/v1";
/// Version of the [`Transcript`] encoding. Version 2 (SPEC.md §13,
/// revisions 10 and 11, developed together and released as one version)
/// records the operator's counter-signing key, and a fleet key is as long
/// as its role's ([`FleetKeyHex`]: 1216 bytes for the X-Wing transport
/// key); version 1 is refused.
pub const TRANSCRIPT_VERSION: u32 = 2;
/// The format of a ceremony that has not been published yet
/// ([`PendingCeremony`]).
pub const PENDING_FORMAT: &str = "bkv-ceremony-pending/v1";
/// Version of the [`Statement`] encoding. Version 2: as the transcript's.
pub const STATEMENT_VERSION: u32 = 2;
/// Domain label prefixed to the transcript's canonical JSON before signing.
pub const TRANSCRIPT_LABEL: &[u8] = b"bkv-deploy/v1/transcript\n";
/// Domain label prefixed to a statement's canonical JSON before signing.
pub const STATEMENT_LABEL: &[u8] = b"bkv-deploy/v1/attestation-statement\n";
/// Largest evidence file accepted, in bytes.
pub const MAX_EVIDENCE_LEN: usize = 4 << 20;
/// Most HSMs one ceremony may list.
pub const MAX_HSMS: usize = 64;
/// Most ceremony participants.
pub const MAX_PARTICIPANTS: usize = 32;
/// Most certificates in one attestation chain (device certificate first).
pub const MAX_CHAIN_LEN: usize = 4;
/// Largest certificate, in bytes of DER.
pub const MAX_CERT_LEN: usize = 8192;
/// Largest statement signature, in bytes.
pub const MAX_SIGNATURE_LEN: usize = 512;
/// Largest validation bundle, in bytes.
pub const MAX_BUNDLE_LEN: usize = 64 * 1024;

/// Why an evidence file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The file is larger than [`MAX_EVIDENCE_LEN`].
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not JSON of the expected shape: truncated, a missing, unknown or
    /// repeated field, a value of the wrong type or form.
    Malformed {
        /// Line of the problem (1-based; 0 if unknown).
        line: usize,
        /// Column of the problem.
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// The `format` is not [`EVIDENCE_FORMAT`].
    UnknownFormat(String),
    /// A version this verifier does not know.
    UnsupportedVersion {
        /// Which object.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// A list is empty or longer than its bound.
    Limit {
        /// Which list.
        what: &'static str,
    },
    /// A field has a value the format forbids.
    Invalid(&'static str),
}

impl fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len } => write!(
                f,
                "evidence file is {len} bytes, more than the {MAX_EVIDENCE_LEN} allowed"
            ),
            Self::Malformed {
                line,
                column,
                reason,
            } => write!(
                f,
                "evidence file is malformed at line {line}, column {column}: {reason}"
            ),
            Self::UnknownFormat(format) => write!(
                f,
                "unknown evidence format {format:?} (this verifier reads {EVIDENCE_FORMAT:?})"
            ),
            Self::UnsupportedVersion { what, version } => {
                write!(f, "unsupported {what} version {version}")
            }
            Self::Limit { what } => write!(f, "{what}: empty or too many entries"),
            Self::Invalid(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for EvidenceError {}

fn json_error(e: &serde_json::Error) -> EvidenceError {
    let reason = if e.is_eof() {
        format!("{e} (the file is truncated)")
    } else {
        e.to_string()
    };
    EvidenceError::Malformed {
        line: e.line(),
        column: e.column(),
        reason,
    }
}

/// A name: 1 to 128 bytes of `A-Z a-z 0-9 . _ - / :` (SPEC.md §14's rule
/// for fleet ids), so it never needs JSON escaping.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// The name, if valid.
    pub fn new(name: &str) -> Option<Self> {
        is_valid_name(name).then(|| Self(name.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::new(&text).ok_or_else(|| {
            D::Error::custom("invalid name: 1 to 128 characters of A-Z a-z 0-9 . _ - / :")
        })
    }
}

/// Exactly `N` bytes, as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex<const N: usize>(pub [u8; N]);

impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

/// Lower-case hex of exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = parse_hex_vec(text)?;
    bytes.try_into().ok()
}

/// Lower-case hex of any length.
pub fn parse_hex_vec(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    digits
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some((value(*hi)? << 4) | value(*lo)?),
            _ => None,
        })
        .collect()
}

impl<const N: usize> Serialize for Hex<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

impl<'de, const N: usize> Deserialize<'de> for Hex<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_hex::<N>(&text)
            .map(Self)
            .ok_or_else(|| D::Error::custom(format!("expected {N} bytes of lower-case hex")))
    }
}

/// A fleet public key as lower-case hex: 32 bytes (the OPAQUE key-exchange
/// key) or 1216 (the X-Wing transport key); which one its role needs is
/// checked where the role is known (SPEC.md §31.2).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FleetKeyHex(pub Vec<u8>);

impl fmt::Debug for FleetKeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl Serialize for FleetKeyHex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for FleetKeyHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let lengths = KeyRole::ALL.map(|r| r.key_len());
        match parse_hex_vec(&text) {
            Some(b) if lengths.contains(&b.len()) => Ok(Self(b)),
            _ => Err(D::Error::custom(format!(
                "expected a fleet key: {lengths:?} bytes of lower-case hex"
            ))),
        }
    }
}

/// Bytes of bounded length, as lower-case hex (a statement signature).
#[derive(Clone, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match parse_hex_vec(&text) {
            Some(b) if !b.is_empty() && b.len() <= MAX_SIGNATURE_LEN => Ok(Self(b)),
            _ => Err(D::Error::custom(format!(
                "expected 1 to {MAX_SIGNATURE_LEN} bytes of lower-case hex"
            ))),
        }
    }
}

/// Bytes as standard base64 with padding (certificates, the bundle).
#[derive(Clone, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

impl fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = B64
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("expected standard base64"))?;
        // One spelling only: re-encoding must give the same text.
        if B64.encode(&bytes) != text {
            return Err(D::Error::custom("base64 is not canonical"));
        }
        Ok(Self(bytes))
    }
}

/// A fleet key role by its artifact name (SPEC.md §14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(pub KeyRole);

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        KeyRole::from_name(&text)
            .map(Self)
            .ok_or_else(|| D::Error::custom("unknown key role"))
    }
}

/// One HSM of the ceremony, as the transcript lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptHsm {
    /// The HSM's identity: the common name of its device certificate.
    pub id: Name,
    /// Where it is installed (data centre); counted for the site quorum.
    pub site: Name,
    /// SHA-256 of its device certificate (DER).
    pub device_certificate: Hex<32>,
    /// The X25519 public key the fleet secrets were sealed to.
    pub import_key: Hex<32>,
}

/// One fleet public key, with its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptKey {
    /// The key's role.
    pub role: Role,
    /// The public key ([`KeyRole::key_len`] bytes).
    pub public_key: FleetKeyHex,
    /// SHA-256 of the public key.
    pub fingerprint: Hex<32>,
}

/// The code measurement the vault must run (SPEC.md §32).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementClaim {
    /// The recipe that defines what is built and hashed:
    /// [`crate::measure::RECIPE`].
    pub recipe: String,
    /// The SHA-256 measurement.
    pub sha256: Hex<32>,
}

/// The quorum policy: how many attested HSMs, at how many distinct sites,
/// the fleet must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumPolicy {
    /// Fewest distinct attested HSMs.
    pub min_hsms: u32,
    /// Fewest distinct sites among them.
    pub min_sites: u32,
}

/// A ceremony participant and the Ed25519 key they sign with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// The participant's name.
    pub name: Name,
    /// Their Ed25519 public key.
    pub public_key: Hex<32>,
}

/// What happened at the key ceremony (SPEC.md §31.2), signed by every
/// participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    /// Always [`TRANSCRIPT_VERSION`].
    pub version: u32,
    /// The fleet's id (as in the artifact).
    pub fleet_id: Name,
    /// The namespace the artifact is published under.
    pub namespace: Name,
    /// The epoch the artifact is published at.
    pub epoch: u64,
    /// When the ceremony took place, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The HSMs that received the fleet secrets.
    pub hsms: Vec<TranscriptHsm>,
    /// The fleet's public keys and their fingerprints.
    pub fleet_keys: Vec<TranscriptKey>,
    /// SHA-256 of the fleet-key artifact.
    pub artifact_digest: Hex<32>,
    /// The code measurement every HSM must run.
    pub measurement: MeasurementClaim,
    /// The quorum policy.
    pub quorum: QuorumPolicy,
    /// Who took part and signs.
    pub participants: Vec<Participant>,
    /// The operator's Ed25519 counter-signing key (SPEC.md §15.1), sealed
    /// to every HSM of this ceremony: the bundle's counter-signature must
    /// be by this key.
    pub operator_key: Hex<32>,
}

impl Transcript {
    /// The canonical encoding: compact JSON, fields in declaration order.
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// What each participant signs: [`TRANSCRIPT_LABEL`] followed by the
    /// canonical JSON.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut out = TRANSCRIPT_LABEL.to_vec();
        out.extend_from_slice(&self.canonical_json());
        out
    }

    /// SHA-256 of [`Self::signed_message`]: what the statements name.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.signed_message()).into()
    }
}

/// A participant's Ed25519 signature over the transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantSignature {
    /// The participant's name, as listed in the transcript.
    pub participant: Name,
    /// Ed25519 over [`Transcript::signed_message`].
    pub signature: Hex<64>,
}

/// A fleet key as one HSM attests it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedKey {
    /// The key's role.
    pub role: Role,
    /// The public key of the secret the HSM holds ([`KeyRole::key_len`]
    /// bytes).
    pub public_key: FleetKeyHex,
    /// Whether the HSM's key policy forbids exporting the secret.
    pub non_exportable: bool,
}

/// What an HSM states about itself, signed with its certified device key
/// (SPEC.md §32.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always [`STATEMENT_VERSION`].
    pub version: u32,
    /// The fleet the HSM joined.
    pub fleet_id: Name,
    /// The HSM's own identity.
    pub hsm_id: Name,
    /// [`Transcript::digest`] of the ceremony that gave it the secrets.
    pub transcript_digest: Hex<32>,
    /// The import key the secrets were sealed to.
    pub import_key: Hex<32>,
    /// The measurement of the code the HSM runs.
    pub measurement: Hex<32>,
    /// The fleet keys it holds, with their export policy.
    pub keys: Vec<AttestedKey>,
}

impl Statement {
    /// The canonical encoding: compact JSON, fields in declaration order.
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// What the device key signs: [`STATEMENT_LABEL`] followed by the
    /// canonical JSON.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut out = STATEMENT_LABEL.to_vec();
        out.extend_from_slice(&self.canonical_json());
        out
    }
}

/// One HSM's attestation: its certificate chain and its signed statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The HSM, as the transcript lists it.
    pub hsm_id: Name,
    /// The attestation format; selects the
    /// [`crate::attestation::AttestationVerifier`].
    pub format: String,
    /// DER certificates, device certificate first, then intermediates
    /// towards the vendor root (which may be omitted).
    pub chain: Vec<Base64Bytes>,
    /// The statement.
    pub statement: Statement,
    /// The statement signature's algorithm: `ecdsa-p256-sha256` (ASN.1
    /// DER signature) or `ed25519`.
    pub signature_algorithm: String,
    /// The signature over [`Statement::signed_message`].
    pub signature: HexBytes,
}

/// Where the fleet-key artifact was published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEvidence {
    /// The namespace.
    pub namespace: Name,
    /// The epoch.
    pub epoch: u64,
    /// The auditor's Ed25519 key, as the operator declares it.
    pub auditor_key: Hex<32>,
    /// The validation bundle (SPEC.md §16): the auditor's signed statement
    /// and the inclusion proof against a signed checkpoint.
    pub bundle: Base64Bytes,
}

/// The whole evidence package (SPEC.md §33).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Always [`EVIDENCE_FORMAT`].
    pub format: String,
    /// The ceremony transcript.
    pub transcript: Transcript,
    /// The participants' signatures over it.
    pub transcript_signatures: Vec<ParticipantSignature>,
    /// One attestation per HSM.
    pub attestations: Vec<Attestation>,
    /// The fleet-key artifact, its exact text (SPEC.md §14).
    pub fleet_key_artifact: String,
    /// Its publication in the auditor's log.
    pub log: LogEvidence,
}

/// A ceremony whose artifact is not published yet (`bkv fleet ceremony
/// --auditor URL` writes it; `bkv operator publish` completes it into the
/// [`Evidence`]): everything of the evidence but the log section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingCeremony {
    /// Always [`PENDING_FORMAT`].
    pub format: String,
    /// The ceremony transcript.
    pub transcript: Transcript,
    /// The participants' signatures over it.
    pub transcript_signatures: Vec<ParticipantSignature>,
    /// One attestation per HSM.
    pub attestations: Vec<Attestation>,
    /// The fleet-key artifact, its exact text (SPEC.md §14).
    pub fleet_key_artifact: String,
}

impl PendingCeremony {
    /// Decodes strictly: the format, then the fields (unknown or repeated
    /// ones refused), then every rule of the evidence but the log's.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(EvidenceError::TooLarge { len: bytes.len() });
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
        match value.get("format").and_then(serde_json::Value::as_str) {
            Some(PENDING_FORMAT) => {}
            Some(other) => return Err(EvidenceError::UnknownFormat(other.to_string())),
            None => return Err(EvidenceError::Invalid("format (missing)")),
        }
        let pending: Self = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
        validate_ceremony(
            &pending.transcript,
            &pending.transcript_signatures,
            &pending.attestations,
            &pending.fleet_key_artifact,
        )?;
        Ok(pending)
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The evidence, once the artifact is logged: `log` added.
    pub fn into_evidence(self, log: LogEvidence) -> Evidence {
        Evidence {
            format: EVIDENCE_FORMAT.into(),
            transcript: self.transcript,
            transcript_signatures: self.transcript_signatures,
            attestations: self.attestations,
            fleet_key_artifact: self.fleet_key_artifact,
            log,
        }
    }
}

impl Evidence {
    /// Decodes an evidence file strictly (see the module documentation).
    pub fn from_json(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(EvidenceError::TooLarge { len: bytes.len() });
        }
        // The format first, so a future version gets a clear error rather
        // than a complaint about its fields.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
        match value.get("format").and_then(serde_json::Value::as_str) {
            Some(EVIDENCE_FORMAT) => {}
            Some(other) => return Err(EvidenceError::UnknownFormat(other.to_string())),
            None => return Err(EvidenceError::Invalid("format (missing)")),
        }
        // serde_json::Value keeps only the last of repeated keys: decode
        // the bytes themselves so repeats are refused.
        let evidence: Self = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
        evidence.validate()?;
        Ok(evidence)
    }

    /// The evidence as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The validation bundle, decoded (it was checked by [`Self::from_json`]).
    pub fn bundle(&self) -> Result<ValidationBundle, EvidenceError> {
        ValidationBundle::from_bytes(&self.log.bundle.0)
            .map_err(|_| EvidenceError::Invalid("log bundle"))
    }

    fn validate(&self) -> Result<(), EvidenceError> {
        validate_ceremony(
            &self.transcript,
            &self.transcript_signatures,
            &self.attestations,
            &self.fleet_key_artifact,
        )?;
        if self.log.bundle.0.len() > MAX_BUNDLE_LEN {
            return Err(EvidenceError::Invalid("log bundle length"));
        }
        self.bundle()?;
        Ok(())
    }
}

/// Every rule of the evidence that does not involve the log: versions,
/// counts and lengths of the ceremony's own parts. Shared by
/// [`Evidence::from_json`] and [`PendingCeremony::from_json`], so a pending
/// ceremony is held to the evidence's rules before it is published.
fn validate_ceremony(
    t: &Transcript,
    transcript_signatures: &[ParticipantSignature],
    attestations: &[Attestation],
    fleet_key_artifact: &str,
) -> Result<(), EvidenceError> {
    if t.version != TRANSCRIPT_VERSION {
        return Err(EvidenceError::UnsupportedVersion {
            what: "transcript",
            version: t.version,
        });
    }
    let within = |len: usize, max: usize, what| {
        if len == 0 || len > max {
            Err(EvidenceError::Limit { what })
        } else {
            Ok(())
        }
    };
    within(t.hsms.len(), MAX_HSMS, "transcript hsms")?;
    within(
        t.fleet_keys.len(),
        KeyRole::ALL.len(),
        "transcript fleet_keys",
    )?;
    within(
        t.participants.len(),
        MAX_PARTICIPANTS,
        "transcript participants",
    )?;
    within(
        transcript_signatures.len(),
        MAX_PARTICIPANTS,
        "transcript_signatures",
    )?;
    within(attestations.len(), MAX_HSMS, "attestations")?;
    if t.quorum.min_hsms == 0 || t.quorum.min_sites == 0 {
        return Err(EvidenceError::Invalid(
            "quorum (minimums must be at least 1)",
        ));
    }
    for a in attestations {
        if a.statement.version != STATEMENT_VERSION {
            return Err(EvidenceError::UnsupportedVersion {
                what: "statement",
                version: a.statement.version,
            });
        }
        within(a.chain.len(), MAX_CHAIN_LEN, "attestation chain")?;
        if a.chain
            .iter()
            .any(|c| c.0.is_empty() || c.0.len() > MAX_CERT_LEN)
        {
            return Err(EvidenceError::Invalid("certificate length"));
        }
        within(a.statement.keys.len(), KeyRole::ALL.len(), "statement keys")?;
    }
    if fleet_key_artifact.is_empty()
        || fleet_key_artifact.len() > backup_key_vault::bundle::artifact::MAX_ARTIFACT_LEN
    {
        return Err(EvidenceError::Invalid("fleet_key_artifact length"));
    }
    Ok(())
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
