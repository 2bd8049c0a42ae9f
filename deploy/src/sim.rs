//! The simulated HSM vendor and HSMs (SPEC.md §31.4). Simulation only.
//!
//! A [`SimulatedVendor`] has a root CA and a device CA (ECDSA P-256, made
//! with `rcgen`) and "manufactures" [`SimulatedHsm`]s: each gets a device
//! key and a device certificate (common name = the HSM's id, extended key
//! usage [`crate::attestation::EKU_HSM_ATTESTATION`]) and an X25519 import
//! key. An HSM can generate the fleet secrets, seal them to another HSM's
//! import key, import sealed secrets, attest its state, and run the vault.
//! The fleet secrets never leave an HSM except sealed.

use std::fmt;
use std::path::Path;

use backup_key_vault::bundle::{KeyRole, OperatorSigningKey};
use backup_key_vault::vault::{MemoryStore, Vault, VaultPolicy};
use backup_key_vault::{FleetPublicKeys, FleetSecrets, OsRng, VaultError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SigningKey as _, PKCS_ECDSA_P256_SHA256,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::attestation::{ALG_ECDSA_P256_SHA256, EKU_HSM_ATTESTATION_ARCS, X509_STATEMENT_FORMAT};
use crate::evidence::{
    Attestation, AttestedKey, Base64Bytes, FleetKeyHex, Hex, HexBytes, Name, Role, Statement,
    STATEMENT_VERSION,
};
use crate::seal::{self, ImportKey, SealError};

/// Why a simulation step failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SimError {
    /// Certificate or key generation failed.
    Certificate(String),
    /// A name is not valid (SPEC.md §14's alphabet).
    InvalidName(String),
    /// Sealing or opening the secrets failed.
    Seal(SealError),
    /// The HSM holds no fleet secrets yet.
    NoSecrets,
    /// The vault refused the secrets.
    Vault(VaultError),
    /// A state file could not be read or written.
    State(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Certificate(e) => write!(f, "certificate: {e}"),
            Self::InvalidName(n) => write!(f, "invalid name {n:?}"),
            Self::Seal(e) => write!(f, "{e}"),
            Self::NoSecrets => f.write_str("the HSM holds no fleet secrets"),
            Self::Vault(e) => write!(f, "vault: {e}"),
            Self::State(e) => write!(f, "state file: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

fn cert_error(e: rcgen::Error) -> SimError {
    SimError::Certificate(e.to_string())
}

fn offset_time(ms: u64) -> Result<time::OffsetDateTime, SimError> {
    let secs = i64::try_from(ms / 1000).map_err(|_| SimError::Certificate("time".into()))?;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| SimError::Certificate(e.to_string()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params(
    common_name: &str,
    not_before_ms: u64,
    not_after_ms: u64,
) -> Result<CertificateParams, SimError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = offset_time(not_before_ms)?;
    params.not_after = offset_time(not_after_ms)?;
    Ok(params)
}

/// Validity of a simulated certificate, in milliseconds since the Unix
/// epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Not before.
    pub not_before_ms: u64,
    /// Not after.
    pub not_after_ms: u64,
}

impl Validity {
    /// From `now` minus a day to `now` plus `years` years.
    pub fn around(now_ms: u64, years: u64) -> Self {
        Self {
            not_before_ms: now_ms.saturating_sub(86_400_000),
            not_after_ms: now_ms.saturating_add(years.saturating_mul(365 * 86_400_000)),
        }
    }
}

/// A simulated HSM vendor: a root CA and a device CA.
pub struct SimulatedVendor {
    name: String,
    root_key: KeyPair,
    root_der: Vec<u8>,
    root_pem: String,
    ca_key: KeyPair,
    ca_der: Vec<u8>,
    ca_params: CertificateParams,
}

impl fmt::Debug for SimulatedVendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedVendor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorState {
    name: String,
    root_key_pem: String,
    root_cert_pem: String,
    ca_key_pem: String,
    ca_cert_der: Base64Bytes,
    not_before_ms: u64,
    not_after_ms: u64,
}

impl SimulatedVendor {
    /// A new vendor whose root and device CA are valid over `validity`.
    pub fn new(name: &str, validity: Validity) -> Result<Self, SimError> {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
        let root_params = ca_params(
            &format!("{name} HSM attestation root"),
            validity.not_before_ms,
            validity.not_after_ms,
        )?;
        let root = root_params.self_signed(&root_key).map_err(cert_error)?;
        let root_issuer = Issuer::new(root_params, &root_key);
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
        let ca_params = ca_params(
            &format!("{name} HSM device CA"),
            validity.not_before_ms,
            validity.not_after_ms,
        )?;
        let ca = ca_params
            .signed_by(&ca_key, &root_issuer)
            .map_err(cert_error)?;
        Ok(Self {
            name: name.to_string(),
            root_der: root.der().to_vec(),
            root_pem: root.pem(),
            root_key,
            ca_der: ca.der().to_vec(),
            ca_key,
            ca_params,
        })
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The root certificate, PEM: what verifiers pin (`--vendor-root`).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Makes an HSM named `hsm_id` whose device certificate is valid over
    /// `validity`, running code with `measurement`.
    pub fn manufacture(
        &self,
        hsm_id: &str,
        validity: Validity,
        measurement: [u8; 32],
    ) -> Result<SimulatedHsm, SimError> {
        let id = Name::new(hsm_id).ok_or_else(|| SimError::InvalidName(hsm_id.into()))?;
        let device_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(hsm_id);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(
            EKU_HSM_ATTESTATION_ARCS.to_vec(),
        )];
        params.not_before = offset_time(validity.not_before_ms)?;
        params.not_after = offset_time(validity.not_after_ms)?;
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&device_key, &issuer).map_err(cert_error)?;
        Ok(SimulatedHsm {
            id,
            chain: vec![cert.der().to_vec(), self.ca_der.clone()],
            device_key,
            import_key: ImportKey::generate(),
            measurement,
            non_exportable: true,
            secrets: None,
        })
    }

    /// Saves the vendor (its private keys too: simulation only) as JSON.
    pub fn save(&self, path: &Path) -> Result<(), SimError> {
        let state = VendorState {
            name: self.name.clone(),
            root_key_pem: self.root_key.serialize_pem(),
            root_cert_pem: self.root_pem.clone(),
            ca_key_pem: self.ca_key.serialize_pem(),
            ca_cert_der: Base64Bytes(self.ca_der.clone()),
            not_before_ms: u64::try_from(self.ca_params.not_before.unix_timestamp()).unwrap_or(0)
                * 1000,
            not_after_ms: u64::try_from(self.ca_params.not_after.unix_timestamp()).unwrap_or(0)
                * 1000,
        };
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&state).map_err(|e| SimError::State(e.to_string()))?,
        );
        write_private(path, &json)
    }

    /// Loads a vendor saved by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| SimError::State(format!("{}: {e}", path.display())))?,
        );
        let state: VendorState =
            serde_json::from_slice(&bytes).map_err(|e| SimError::State(e.to_string()))?;
        let root_key = KeyPair::from_pem(&state.root_key_pem).map_err(cert_error)?;
        let ca_key = KeyPair::from_pem(&state.ca_key_pem).map_err(cert_error)?;
        let ca_params = ca_params(
            &format!("{} HSM device CA", state.name),
            state.not_before_ms,
            state.not_after_ms,
        )?;
        use rustls_pki_types::pem::PemObject as _;
        let root_der =
            rustls_pki_types::CertificateDer::from_pem_slice(state.root_cert_pem.as_bytes())
                .map_err(|e| SimError::State(e.to_string()))?
                .to_vec();
        Ok(Self {
            name: state.name,
            root_key,
            root_der,
            root_pem: state.root_cert_pem,
            ca_key,
            ca_der: state.ca_cert_der.0,
            ca_params,
        })
    }
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| SimError::State(format!("{}: {e}", path.display())))?;
    file.write_all(bytes)
        .map_err(|e| SimError::State(format!("{}: {e}", path.display())))
}

/// A simulated HSM: device key and certificate chain, import key, the
/// code it runs, its key policy, and (once given) the fleet secrets.
pub struct SimulatedHsm {
    id: Name,
    chain: Vec<Vec<u8>>,
    device_key: KeyPair,
    import_key: ImportKey,
    measurement: [u8; 32],
    non_exportable: bool,
    secrets: Option<FleetSecrets>,
}

impl fmt::Debug for SimulatedHsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedHsm")
            .field("id", &self.id)
            .field("holds_secrets", &self.secrets.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HsmState {
    id: Name,
    chain: Vec<Base64Bytes>,
    device_key_pem: String,
    import_key: Hex<32>,
    measurement: Hex<32>,
    non_exportable: bool,
}

impl SimulatedHsm {
    /// The HSM's id (its device certificate's common name).
    pub fn id(&self) -> &Name {
        &self.id
    }

    /// Device certificate first, then the vendor's device CA.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// Replaces the certificate chain (tests: a device certified by another
    /// vendor).
    pub fn set_chain(&mut self, chain: Vec<Vec<u8>>) {
        self.chain = chain;
    }

    /// The public import key secrets are sealed to.
    pub fn import_public_key(&self) -> [u8; 32] {
        self.import_key.public_key()
    }

    /// Loads other code (its measurement changes).
    pub fn load_code(&mut self, measurement: [u8; 32]) {
        self.measurement = measurement;
    }

    /// Sets the key policy imported secrets get: non-exportable (the
    /// default) or exportable (a misconfigured HSM).
    pub fn set_non_exportable(&mut self, non_exportable: bool) {
        self.non_exportable = non_exportable;
    }

    /// Generates a new fleet's secrets inside this HSM (the ceremony's
    /// first HSM) and returns their public keys.
    pub fn generate_fleet_secrets(&mut self) -> FleetPublicKeys {
        let secrets = FleetSecrets::generate(&mut OsRng);
        let keys = secrets.public_keys();
        self.secrets = Some(secrets);
        keys
    }

    /// The public keys of the secrets it holds.
    pub fn public_keys(&self) -> Option<FleetPublicKeys> {
        self.secrets.as_ref().map(FleetSecrets::public_keys)
    }

    /// Seals its secrets to another HSM's import key, for one ceremony.
    pub fn seal_for(
        &self,
        import_key: &[u8; 32],
        transcript_digest: &[u8; 32],
        hsm_id: &str,
    ) -> Result<Vec<u8>, SimError> {
        let secrets = self.secrets.as_ref().ok_or(SimError::NoSecrets)?;
        seal::seal(secrets, import_key, transcript_digest, hsm_id).map_err(SimError::Seal)
    }

    /// Imports secrets sealed to it and returns their public keys.
    pub fn import_sealed(
        &mut self,
        sealed: &[u8],
        transcript_digest: &[u8; 32],
    ) -> Result<FleetPublicKeys, SimError> {
        let secrets = seal::open(
            sealed,
            &self.import_key,
            transcript_digest,
            self.id.as_str(),
        )
        .map_err(SimError::Seal)?;
        let keys = secrets.public_keys();
        self.secrets = Some(secrets);
        Ok(keys)
    }

    /// Opens secrets sealed to it without keeping them: the node process
    /// that runs on this (simulated) HSM takes them.
    pub fn open_sealed(
        &self,
        sealed: &[u8],
        transcript_digest: &[u8; 32],
    ) -> Result<FleetSecrets, SimError> {
        seal::open(
            sealed,
            &self.import_key,
            transcript_digest,
            self.id.as_str(),
        )
        .map_err(SimError::Seal)
    }

    /// Opens the operator's counter-signing key sealed to it (SPEC.md
    /// §31.3).
    pub fn open_operator_key(
        &self,
        sealed: &[u8],
        transcript_digest: &[u8; 32],
    ) -> Result<OperatorSigningKey, SimError> {
        seal::open_operator_key(
            sealed,
            &self.import_key,
            transcript_digest,
            self.id.as_str(),
        )
        .map_err(SimError::Seal)
    }

    /// The statement this HSM makes about its state for a ceremony.
    pub fn statement(
        &self,
        fleet_id: &Name,
        transcript_digest: [u8; 32],
    ) -> Result<Statement, SimError> {
        let keys = self.public_keys().ok_or(SimError::NoSecrets)?;
        let key = |role: KeyRole, public_key: &[u8]| AttestedKey {
            role: Role(role),
            public_key: FleetKeyHex(public_key.to_vec()),
            non_exportable: self.non_exportable,
        };
        Ok(Statement {
            version: STATEMENT_VERSION,
            fleet_id: fleet_id.clone(),
            hsm_id: self.id.clone(),
            transcript_digest: Hex(transcript_digest),
            import_key: Hex(self.import_public_key()),
            measurement: Hex(self.measurement),
            keys: vec![
                key(KeyRole::OpaqueKeyExchange, &keys.key_exchange),
                key(KeyRole::HpkeTransport, keys.transport.as_bytes()),
            ],
        })
    }

    /// Attests its state for a ceremony: its chain and its statement,
    /// signed with the device key.
    pub fn attest(
        &self,
        fleet_id: &Name,
        transcript_digest: [u8; 32],
    ) -> Result<Attestation, SimError> {
        let statement = self.statement(fleet_id, transcript_digest)?;
        self.sign_statement(statement)
    }

    /// Signs any statement with the device key. A genuine HSM signs only
    /// its own state; tests use this to model a device that lies.
    pub fn sign_statement(&self, statement: Statement) -> Result<Attestation, SimError> {
        let signature = self
            .device_key
            .sign(&statement.signed_message())
            .map_err(cert_error)?;
        Ok(Attestation {
            hsm_id: self.id.clone(),
            format: X509_STATEMENT_FORMAT.to_string(),
            chain: self.chain.iter().cloned().map(Base64Bytes).collect(),
            statement,
            signature_algorithm: ALG_ECDSA_P256_SHA256.to_string(),
            signature: HexBytes(signature),
        })
    }

    /// Starts the vault on this HSM with the secrets it holds.
    pub fn start_vault(&self, policy: VaultPolicy) -> Result<Vault<MemoryStore>, SimError> {
        let secrets = self.secrets.as_ref().ok_or(SimError::NoSecrets)?;
        Vault::new(secrets, policy, MemoryStore::new()).map_err(SimError::Vault)
    }

    /// Saves the HSM's own keys (device key, import key; never the fleet
    /// secrets) as its simulated NVRAM, readable only by its owner.
    pub fn save(&self, path: &Path) -> Result<(), SimError> {
        let state = HsmState {
            id: self.id.clone(),
            chain: self.chain.iter().cloned().map(Base64Bytes).collect(),
            device_key_pem: self.device_key.serialize_pem(),
            import_key: Hex(*self.import_key.to_bytes()),
            measurement: Hex(self.measurement),
            non_exportable: self.non_exportable,
        };
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&state).map_err(|e| SimError::State(e.to_string()))?,
        );
        write_private(path, &json)
    }

    /// Loads an HSM saved by [`Self::save`] (it holds no secrets until it
    /// imports its sealed file).
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| SimError::State(format!("{}: {e}", path.display())))?,
        );
        let state: HsmState =
            serde_json::from_slice(&bytes).map_err(|e| SimError::State(e.to_string()))?;
        Ok(Self {
            id: state.id,
            chain: state.chain.into_iter().map(|c| c.0).collect(),
            device_key: KeyPair::from_pem(&state.device_key_pem).map_err(cert_error)?,
            import_key: ImportKey::from_bytes(&state.import_key.0),
            measurement: state.measurement.0,
            non_exportable: state.non_exportable,
            secrets: None,
        })
    }
}
