//! The key ceremony (SPEC.md §31): creates a fleet inside simulated HSMs,
//! publishes its fleet-key artifact through the auditor, and assembles the
//! evidence package.
//!
//! Order: check every HSM's certificate chain to the vendor root; the
//! first HSM generates the fleet secrets; the artifact is built for the
//! auditor's next epoch; the transcript is written; the first HSM seals
//! the secrets, and the operator's counter-signing key the transcript
//! records, to every HSM's import key (bound to the transcript digest and
//! the HSM id) and the others import them; every HSM attests; every
//! participant signs the transcript ([`prepare`]); the auditor logs the
//! artifact and the operator counter-signs the auditor's signature
//! ([`complete`], which `bkv operator publish` runs later against a live
//! auditor). The secrets exist in clear only inside the simulated HSMs.

use std::fmt;

use backup_key_vault::bundle::{
    artifact_digest, CounterSignature, FleetKeyArtifact, KeyRole, OperatorSigningKey,
    ValidationBundle,
};
use backup_key_vault::FleetPublicKeys;
use bkv_auditor::{Auditor, AuditorError};
use ed25519_dalek::{Signer as _, SigningKey};
use zeroize::Zeroizing;

use crate::attestation::{AttestationVerifier as _, CheckTime, X509StatementVerifier};
use crate::evidence::{
    sha256, Attestation, Base64Bytes, Evidence, FleetKeyHex, Hex, LogEvidence, MeasurementClaim,
    Name, Participant, ParticipantSignature, PendingCeremony, QuorumPolicy, Role, Transcript,
    TranscriptHsm, TranscriptKey, PENDING_FORMAT, TRANSCRIPT_VERSION,
};
use crate::measure::RECIPE;
use crate::sim::{SimError, SimulatedHsm};

/// A ceremony participant's Ed25519 key. Zeroized on drop, redacted in
/// `Debug`.
#[derive(Clone)]
pub struct ParticipantKey {
    name: Name,
    key: SigningKey,
}

impl fmt::Debug for ParticipantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParticipantKey")
            .field("name", &self.name)
            .field("public_key", &Hex(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl ParticipantKey {
    /// A fresh key for `name`.
    pub fn generate(name: Name) -> Self {
        Self {
            name,
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The key from its 32-byte seed.
    pub fn from_seed(name: Name, seed: &[u8; 32]) -> Self {
        Self {
            name,
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The seed, for the participant's own safekeeping.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The participant's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs a transcript.
    pub fn sign(&self, transcript: &Transcript) -> ParticipantSignature {
        ParticipantSignature {
            participant: self.name.clone(),
            signature: Hex(self.key.sign(&transcript.signed_message()).to_bytes()),
        }
    }
}

/// Where the ceremony publishes the artifact: the auditor, in-process or
/// over HTTP.
pub trait Publisher {
    /// The epoch the next artifact of `namespace` must have.
    fn next_epoch(&mut self, namespace: &str) -> Result<u64, String>;
    /// Logs the artifact and returns its bundle (with the inclusion proof).
    fn publish(
        &mut self,
        namespace: &str,
        epoch: u64,
        artifact: &[u8],
    ) -> Result<ValidationBundle, String>;
    /// Stores the operator's counter-signature of an epoch.
    fn counter_sign(
        &mut self,
        namespace: &str,
        epoch: u64,
        counter: CounterSignature,
    ) -> Result<(), String>;
}

impl Publisher for Auditor {
    fn next_epoch(&mut self, namespace: &str) -> Result<u64, String> {
        match self.namespace(namespace) {
            Ok(info) => Ok(info
                .latest_epoch
                .map_or(info.root_epoch, |e| e.saturating_add(1))),
            Err(AuditorError::UnknownNamespace) => Ok(1),
            Err(e) => Err(e.to_string()),
        }
    }

    fn publish(
        &mut self,
        namespace: &str,
        epoch: u64,
        artifact: &[u8],
    ) -> Result<ValidationBundle, String> {
        if matches!(
            self.namespace(namespace),
            Err(AuditorError::UnknownNamespace)
        ) {
            self.register_namespace(namespace, epoch, artifact_digest(artifact))
                .map_err(|e| e.to_string())?;
        }
        Auditor::publish(self, namespace, epoch, artifact, None, crate::now_ms())
            .map_err(|e| e.to_string())
    }

    fn counter_sign(
        &mut self,
        namespace: &str,
        epoch: u64,
        counter: CounterSignature,
    ) -> Result<(), String> {
        self.add_counter_signature(namespace, epoch, counter)
            .map_err(|e| e.to_string())
    }
}

/// What the ceremony is asked to do.
#[derive(Clone, Debug)]
pub struct CeremonyPlan {
    /// The new fleet's id.
    pub fleet_id: Name,
    /// The namespace its artifact is published under.
    pub namespace: Name,
    /// When the ceremony takes place, ms since the Unix epoch.
    pub time_ms: u64,
    /// The artifact's validity window, ms since the Unix epoch.
    pub not_before_ms: u64,
    /// End of the window (exclusive).
    pub not_after_ms: u64,
    /// The code measurement every HSM must run.
    pub measurement: [u8; 32],
    /// The quorum policy.
    pub quorum: QuorumPolicy,
    /// The realm group the fleet is (SPEC.md §14.1); `None` for a fleet
    /// alone in its realm (every record id).
    pub group: Option<RealmGroup>,
}

/// Where a fleet sits in a realm of several (SPEC.md §14.1): its artifact
/// names the realm, the layout and the range of record ids it serves.
#[derive(Clone, Debug)]
pub struct RealmGroup {
    /// The realm's name.
    pub realm: Name,
    /// The realm's layout.
    pub layout: u64,
    /// The record ids the fleet serves.
    pub records: backup_key_vault::RecordRange,
}

/// An HSM taking part, and its site.
pub struct CeremonyHsm<'a> {
    /// The HSM.
    pub hsm: &'a mut SimulatedHsm,
    /// Where it is installed.
    pub site: Name,
}

/// A ceremony up to, not including, the publication of its artifact
/// (steps 1–7 of SPEC.md §31.1).
pub struct PreparedCeremony {
    /// Everything of the evidence but the log section.
    pub pending: PendingCeremony,
    /// Each HSM's sealed secrets, to be written to its own file.
    pub sealed: Vec<(Name, Vec<u8>)>,
    /// The operator's counter-signing key sealed to each HSM.
    pub sealed_operator: Vec<(Name, Vec<u8>)>,
    /// The fleet's public keys.
    pub public_keys: FleetPublicKeys,
}

impl fmt::Debug for PreparedCeremony {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedCeremony")
            .field("fleet_id", &self.pending.transcript.fleet_id)
            .field("public_keys", &self.public_keys)
            .finish_non_exhaustive()
    }
}

/// What the ceremony produced.
pub struct CeremonyOutcome {
    /// The evidence package.
    pub evidence: Evidence,
    /// Each HSM's sealed secrets, to be written to its own file.
    pub sealed: Vec<(Name, Vec<u8>)>,
    /// The operator's counter-signing key sealed to each HSM.
    pub sealed_operator: Vec<(Name, Vec<u8>)>,
    /// The fleet's public keys.
    pub public_keys: FleetPublicKeys,
    /// The bundle, as the auditor handed it out (counter-signed).
    pub bundle: ValidationBundle,
}

impl fmt::Debug for CeremonyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CeremonyOutcome")
            .field("fleet_id", &self.evidence.transcript.fleet_id)
            .field("public_keys", &self.public_keys)
            .finish_non_exhaustive()
    }
}

/// Why a ceremony stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The plan is unusable (no HSM, a repeated name, ...).
    Plan(String),
    /// An HSM's certificate chain does not verify: no secrets are sealed
    /// to it.
    UntrustedHsm(String),
    /// An HSM failed.
    Hsm(SimError),
    /// The auditor refused or failed.
    Publish(String),
}

impl fmt::Display for CeremonyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plan(e) => write!(f, "ceremony plan: {e}"),
            Self::UntrustedHsm(e) => write!(f, "untrusted HSM: {e}"),
            Self::Hsm(e) => write!(f, "HSM: {e}"),
            Self::Publish(e) => write!(f, "auditor: {e}"),
        }
    }
}

impl std::error::Error for CeremonyError {}

impl From<SimError> for CeremonyError {
    fn from(e: SimError) -> Self {
        Self::Hsm(e)
    }
}

fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    names.into_iter().all(|n| seen.insert(n))
}

/// Checks that HSMs with these ids, at these sites, can meet `quorum`:
/// distinct ids, at least one HSM and one site required, at least
/// `min_hsms` HSMs and `min_sites` distinct sites. A caller checks this
/// before it writes, seals or logs anything (`bkv fleet ceremony` does),
/// so a fleet that could never pass does not take an epoch. [`run`] itself
/// checks only what it needs to run (ids, participants, non-zero
/// minimums) and leaves the quorum to the verifier (SPEC.md §34.2), which
/// must catch below-policy evidence however it was made.
pub fn check_quorum<'a>(
    quorum: &QuorumPolicy,
    hsms: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), CeremonyError> {
    let (ids, sites): (Vec<&str>, Vec<&str>) = hsms.into_iter().unzip();
    if quorum.min_hsms == 0 || quorum.min_sites == 0 {
        return Err(CeremonyError::Plan(
            "quorum minimums must be at least 1".into(),
        ));
    }
    if !distinct(ids.iter().copied()) {
        return Err(CeremonyError::Plan("two HSMs have the same id".into()));
    }
    if (ids.len() as u64) < u64::from(quorum.min_hsms) {
        return Err(CeremonyError::Plan(format!(
            "{} HSM(s) cannot meet the policy of at least {} HSMs",
            ids.len(),
            quorum.min_hsms
        )));
    }
    let distinct_sites = sites
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if (distinct_sites as u64) < u64::from(quorum.min_sites) {
        return Err(CeremonyError::Plan(format!(
            "{distinct_sites} distinct site(s) cannot meet the policy of at least {} sites",
            quorum.min_sites
        )));
    }
    Ok(())
}

/// Runs the ceremony. `vendor` is the vendor root every HSM must chain to;
/// `operator` counter-signs the auditor's signature. [`prepare`] for the
/// publisher's next epoch, then [`complete`].
pub fn run(
    plan: &CeremonyPlan,
    hsms: &mut [CeremonyHsm<'_>],
    participants: &[ParticipantKey],
    vendor: &X509StatementVerifier,
    publisher: &mut dyn Publisher,
    operator: &OperatorSigningKey,
) -> Result<CeremonyOutcome, CeremonyError> {
    let epoch = publisher
        .next_epoch(plan.namespace.as_str())
        .map_err(CeremonyError::Publish)?;
    let prepared = prepare(plan, epoch, hsms, participants, vendor, operator)?;
    complete(prepared, publisher, operator)
}

/// Steps 1–7 of SPEC.md §31.1 for the artifact of `epoch`: the secrets
/// generated and sealed to every HSM, the operator key sealed to every HSM
/// and recorded in the transcript, the attestations and the participants'
/// signatures. Nothing is published.
pub fn prepare(
    plan: &CeremonyPlan,
    epoch: u64,
    hsms: &mut [CeremonyHsm<'_>],
    participants: &[ParticipantKey],
    vendor: &X509StatementVerifier,
    operator: &OperatorSigningKey,
) -> Result<PreparedCeremony, CeremonyError> {
    if hsms.is_empty() || participants.is_empty() {
        return Err(CeremonyError::Plan(
            "a ceremony needs HSMs and participants".into(),
        ));
    }
    if !distinct(hsms.iter().map(|h| h.hsm.id().as_str())) {
        return Err(CeremonyError::Plan("two HSMs have the same id".into()));
    }
    if !distinct(participants.iter().map(|p| p.name().as_str())) {
        return Err(CeremonyError::Plan(
            "two participants have the same name".into(),
        ));
    }
    if plan.quorum.min_hsms == 0 || plan.quorum.min_sites == 0 {
        return Err(CeremonyError::Plan(
            "quorum minimums must be at least 1".into(),
        ));
    }

    // No secrets go to an HSM whose device chain does not verify.
    let at = [CheckTime {
        name: "the ceremony time",
        unix_ms: plan.time_ms,
    }];
    for h in hsms.iter() {
        let probe = Attestation {
            hsm_id: h.hsm.id().clone(),
            format: crate::attestation::X509_STATEMENT_FORMAT.into(),
            chain: h.hsm.chain().iter().cloned().map(Base64Bytes).collect(),
            statement: crate::evidence::Statement {
                version: crate::evidence::STATEMENT_VERSION,
                fleet_id: plan.fleet_id.clone(),
                hsm_id: h.hsm.id().clone(),
                transcript_digest: Hex([0; 32]),
                import_key: Hex(h.hsm.import_public_key()),
                measurement: Hex(plan.measurement),
                keys: Vec::new(),
            },
            signature_algorithm: String::new(),
            signature: crate::evidence::HexBytes(vec![0]),
        };
        vendor
            .verify_chain(&probe, &at)
            .map_err(|e| CeremonyError::UntrustedHsm(format!("{}: {e}", h.hsm.id())))?;
    }

    let (genesis, _) = hsms
        .split_first_mut()
        .ok_or_else(|| CeremonyError::Plan("no HSM".into()))?;
    let keys = genesis.hsm.generate_fleet_secrets();

    let ns = plan.namespace.as_str();
    let artifact = FleetKeyArtifact::for_fleet(
        ns,
        plan.fleet_id.as_str(),
        epoch,
        &keys,
        plan.not_before_ms,
        plan.not_after_ms,
    );
    let artifact = match &plan.group {
        Some(g) => artifact.in_realm(g.realm.as_str(), g.layout, g.records),
        None => artifact,
    }
    .to_bytes()
    .map_err(|e| CeremonyError::Plan(format!("artifact: {e}")))?;

    let fleet_key = |role: KeyRole, public_key: &[u8]| TranscriptKey {
        role: Role(role),
        public_key: FleetKeyHex(public_key.to_vec()),
        fingerprint: Hex(sha256(public_key)),
    };
    let transcript = Transcript {
        version: TRANSCRIPT_VERSION,
        fleet_id: plan.fleet_id.clone(),
        namespace: plan.namespace.clone(),
        epoch,
        time_ms: plan.time_ms,
        hsms: hsms
            .iter()
            .map(|h| TranscriptHsm {
                id: h.hsm.id().clone(),
                site: h.site.clone(),
                device_certificate: Hex(h
                    .hsm
                    .chain()
                    .first()
                    .map(|c| sha256(c))
                    .unwrap_or([0; 32])),
                import_key: Hex(h.hsm.import_public_key()),
            })
            .collect(),
        fleet_keys: vec![
            fleet_key(KeyRole::OpaqueKeyExchange, &keys.key_exchange),
            fleet_key(KeyRole::HpkeTransport, keys.transport.as_bytes()),
        ],
        artifact_digest: Hex(artifact_digest(&artifact)),
        measurement: MeasurementClaim {
            recipe: RECIPE.into(),
            sha256: Hex(plan.measurement),
        },
        quorum: plan.quorum,
        participants: participants
            .iter()
            .map(|p| Participant {
                name: p.name().clone(),
                public_key: Hex(p.public_key()),
            })
            .collect(),
        operator_key: Hex(operator.public_key()),
    };
    let digest = transcript.digest();

    // The first HSM seals the secrets to every HSM (itself included, so
    // each can be restarted from its file); the others import them.
    let mut sealed = Vec::with_capacity(hsms.len());
    let mut sealed_operator = Vec::with_capacity(hsms.len());
    {
        let genesis = hsms
            .first()
            .ok_or_else(|| CeremonyError::Plan("no HSM".into()))?;
        for h in hsms.iter() {
            let blob =
                genesis
                    .hsm
                    .seal_for(&h.hsm.import_public_key(), &digest, h.hsm.id().as_str())?;
            sealed.push((h.hsm.id().clone(), blob));
            let blob = crate::seal::seal_operator_key(
                operator,
                &h.hsm.import_public_key(),
                &digest,
                h.hsm.id().as_str(),
            )
            .map_err(|e| CeremonyError::Hsm(SimError::Seal(e)))?;
            sealed_operator.push((h.hsm.id().clone(), blob));
        }
    }
    for (h, (_, blob)) in hsms.iter_mut().zip(&sealed).skip(1) {
        h.hsm.import_sealed(blob, &digest)?;
    }
    let attestations = hsms
        .iter()
        .map(|h| h.hsm.attest(&plan.fleet_id, digest))
        .collect::<Result<Vec<_>, _>>()?;
    let transcript_signatures = participants.iter().map(|p| p.sign(&transcript)).collect();
    Ok(PreparedCeremony {
        pending: PendingCeremony {
            format: PENDING_FORMAT.into(),
            transcript,
            transcript_signatures,
            attestations,
            fleet_key_artifact: String::from_utf8(artifact)
                .map_err(|_| CeremonyError::Plan("artifact is not UTF-8".into()))?,
        },
        sealed,
        sealed_operator,
        public_keys: keys,
    })
}

/// Steps 8–9 of SPEC.md §31.1: the auditor logs the artifact, the operator
/// counter-signs the auditor's signature (refused unless `operator` is the
/// key the transcript records) and sends it to the auditor; the evidence
/// is assembled.
pub fn complete(
    prepared: PreparedCeremony,
    publisher: &mut dyn Publisher,
    operator: &OperatorSigningKey,
) -> Result<CeremonyOutcome, CeremonyError> {
    let PreparedCeremony {
        pending,
        sealed,
        sealed_operator,
        public_keys,
    } = prepared;
    if pending.transcript.operator_key.0 != operator.public_key() {
        return Err(CeremonyError::Plan(
            "the operator key is not the one the transcript records".into(),
        ));
    }
    let ns = pending.transcript.namespace.as_str();
    let epoch = pending.transcript.epoch;
    let artifact = pending.fleet_key_artifact.as_bytes();
    let mut bundle = publisher
        .publish(ns, epoch, artifact)
        .map_err(CeremonyError::Publish)?;
    bundle.countersign(operator);
    if let Some(counter) = bundle.counter_signature {
        publisher
            .counter_sign(ns, epoch, counter)
            .map_err(CeremonyError::Publish)?;
    }
    let bundle_bytes = bundle
        .to_bytes()
        .map_err(|e| CeremonyError::Publish(format!("bundle: {e}")))?;
    let log = LogEvidence {
        namespace: pending.transcript.namespace.clone(),
        epoch,
        auditor_key: Hex(bundle.auditor_key),
        bundle: Base64Bytes(bundle_bytes),
    };
    let evidence = pending.into_evidence(log);
    Ok(CeremonyOutcome {
        evidence,
        sealed,
        sealed_operator,
        public_keys,
        bundle,
    })
}
