//! The deployment verifier (SPEC.md §34): every check an outside auditor
//! runs on an evidence package, as a list of named steps with pass or fail.
//!
//! Steps run in the order of [`StepId::ALL`]. A step whose inputs come from
//! a failed step is reported as skipped, so the first failure is the
//! cause; steps that do not depend on it still run. [`Report::passed`] is
//! true only if every step passed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::ed25519::PinnedKey;
use backup_key_vault::bundle::log::entry;
use backup_key_vault::bundle::statement::verify_strict;
use backup_key_vault::bundle::{
    artifact_digest, Checkpoint, ConsistencyProof, CounterSignature, FleetKeyArtifact, KeyRole,
    MerkleLog, ValidationBundle,
};
use bkv_auditor::export::{proofs_from_entries, verify_namespace, Export, Pins};
use serde::Serialize;

use crate::attestation::{AttestationVerifier, CheckTime, VerifiedDevice, X509StatementVerifier};
use crate::evidence::{sha256, Attestation, Evidence, Transcript, EVIDENCE_FORMAT};
use crate::measure::RECIPE;

/// The verifier's steps, in order (SPEC.md §34.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StepId {
    /// The evidence file decodes strictly.
    Evidence,
    /// Every HSM's certificate chain leads to the vendor root and is valid.
    AttestationChains,
    /// Every statement is signed by its certified device key and names its
    /// HSM, this ceremony, and the import key the transcript lists.
    AttestationStatements,
    /// Every statement names the same fleet keys as the transcript.
    FleetKeys,
    /// Every statement names the expected code measurement.
    CodeMeasurement,
    /// Every statement marks the fleet keys non-exportable.
    NonExportable,
    /// Enough distinct attested HSMs.
    QuorumHsms,
    /// Enough distinct sites.
    QuorumSites,
    /// The transcript is signed by every stated participant.
    TranscriptSignatures,
    /// The fleet-key artifact is the one the statements and transcript name.
    FleetKeyArtifact,
    /// The artifact's bundle is in the auditor's log.
    AuditorLog,
}

impl StepId {
    /// Every step, in order.
    pub const ALL: [StepId; 11] = [
        Self::Evidence,
        Self::AttestationChains,
        Self::AttestationStatements,
        Self::FleetKeys,
        Self::CodeMeasurement,
        Self::NonExportable,
        Self::QuorumHsms,
        Self::QuorumSites,
        Self::TranscriptSignatures,
        Self::FleetKeyArtifact,
        Self::AuditorLog,
    ];

    /// The step's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Evidence => "evidence",
            Self::AttestationChains => "attestation-chains",
            Self::AttestationStatements => "attestation-statements",
            Self::FleetKeys => "fleet-keys",
            Self::CodeMeasurement => "code-measurement",
            Self::NonExportable => "non-exportable",
            Self::QuorumHsms => "quorum-hsms",
            Self::QuorumSites => "quorum-sites",
            Self::TranscriptSignatures => "transcript-signatures",
            Self::FleetKeyArtifact => "fleet-key-artifact",
            Self::AuditorLog => "auditor-log",
        }
    }

    /// What the step checks, in a few words.
    pub fn title(&self) -> &'static str {
        match self {
            Self::Evidence => "the evidence file decodes",
            Self::AttestationChains => "every HSM's certificate chain leads to the vendor root",
            Self::AttestationStatements => "every statement is signed by its certified HSM",
            Self::FleetKeys => "every statement names the same fleet keys",
            Self::CodeMeasurement => "every HSM runs the expected code measurement",
            Self::NonExportable => "every HSM holds the fleet keys non-exportable",
            Self::QuorumHsms => "enough distinct HSMs",
            Self::QuorumSites => "enough distinct sites",
            Self::TranscriptSignatures => "the transcript is signed by every participant",
            Self::FleetKeyArtifact => "the fleet-key artifact is the one the HSMs attest",
            Self::AuditorLog => "the artifact's bundle is in the auditor's log",
        }
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A step's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The check passed.
    Pass,
    /// The check failed.
    Fail,
    /// Not run: an earlier step it needs failed.
    Skipped,
}

/// One step of a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Which step.
    pub step: StepId,
    /// What it checks.
    pub title: &'static str,
    /// Its result.
    pub result: Outcome,
    /// What was found: for a failure, what is wrong and where.
    pub detail: String,
}

/// The verifier's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether every step passed.
    pub ok: bool,
    /// The fleet, once the evidence decoded.
    pub fleet_id: Option<String>,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// Things that do not fail verification but weaken it.
    pub warnings: Vec<String>,
}

impl Report {
    fn new() -> Self {
        Self {
            ok: false,
            fleet_id: None,
            steps: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn record(&mut self, step: StepId, result: Result<String, String>) -> bool {
        let (result, detail, ok) = match result {
            Ok(d) => (Outcome::Pass, d, true),
            Err(d) => (Outcome::Fail, d, false),
        };
        self.steps.push(StepReport {
            step,
            title: step.title(),
            result,
            detail,
        });
        ok
    }

    fn skip(&mut self, step: StepId, needs: StepId) {
        self.steps.push(StepReport {
            step,
            title: step.title(),
            result: Outcome::Skipped,
            detail: format!("not run: needs step {needs}"),
        });
    }

    fn finish(mut self) -> Self {
        self.ok = self.steps.len() == StepId::ALL.len()
            && self.steps.iter().all(|s| s.result == Outcome::Pass);
        self
    }

    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        self.ok
    }

    /// The first failed step.
    pub fn first_failure(&self) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.result == Outcome::Fail)
    }

    /// A step's report.
    pub fn step(&self, id: StepId) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.step == id)
    }

    /// The report as text, one line per step.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(f) = &self.fleet_id {
            out.push_str(&format!("deployment evidence for fleet {f}\n"));
        }
        for s in &self.steps {
            let mark = match s.result {
                Outcome::Pass => "PASS",
                Outcome::Fail => "FAIL",
                Outcome::Skipped => "SKIP",
            };
            out.push_str(&format!("[{mark}] {:<22} {}\n", s.step.name(), s.title));
            out.push_str(&format!("       {}\n", s.detail));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out.push_str(if self.ok {
            "OK: every step passed\n"
        } else {
            "FAILED\n"
        });
        out
    }
}

/// Where the verifier reads the auditor's log, besides the bundle in the
/// evidence: a namespace export or the live auditor.
pub trait LogSource {
    /// What the source is, for reports.
    fn describe(&self) -> String;

    /// Verifies the log as a whole, if the source can (an export is
    /// checked like `bkv audit verify-namespace` does); returns a summary.
    fn verify_log(
        &mut self,
        _namespace: &str,
        _auditor_key: &[u8; 32],
    ) -> Result<Option<String>, String> {
        Ok(None)
    }

    /// The log's bundle for `epoch`, proven against its latest checkpoint.
    fn bundle(&mut self, namespace: &str, epoch: u64) -> Result<ValidationBundle, String>;

    /// A consistency proof between two tree sizes.
    fn consistency(
        &mut self,
        namespace: &str,
        old: u64,
        new: u64,
    ) -> Result<ConsistencyProof, String>;
}

/// A namespace export (`GET /namespaces/{ns}/export`, SPEC.md §18.3) as a
/// [`LogSource`].
pub struct ExportLog {
    export: Export,
    tree: MerkleLog,
}

impl ExportLog {
    /// Reads an export (strict JSON).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let export: Export =
            serde_json::from_slice(bytes).map_err(|e| format!("log export: {e}"))?;
        Ok(Self::new(export))
    }

    /// Wraps an export.
    pub fn new(export: Export) -> Self {
        let mut tree = MerkleLog::new();
        for e in &export.entries {
            if let Some(d) = crate::evidence::parse_hex::<32>(&e.digest.to_ascii_lowercase()) {
                tree.push(entry(e.epoch, &d));
            }
        }
        Self { export, tree }
    }
}

impl LogSource for ExportLog {
    fn describe(&self) -> String {
        format!("export of namespace {}", self.export.namespace)
    }

    fn verify_log(
        &mut self,
        namespace: &str,
        auditor_key: &[u8; 32],
    ) -> Result<Option<String>, String> {
        if self.export.namespace != namespace {
            return Err(format!(
                "the export is of namespace {}, not {namespace}",
                self.export.namespace
            ));
        }
        let pins = Pins {
            auditor_keys: vec![*auditor_key],
            operator_keys: Vec::new(),
        };
        let report = verify_namespace(&self.export, &pins, &mut proofs_from_entries(&self.export))
            .map_err(|f| format!("the log export does not verify: {f}"))?;
        Ok(Some(format!(
            "the export verifies ({} entries, {} checkpoints, every pair consistent)",
            report.log_size, report.checkpoints
        )))
    }

    fn bundle(&mut self, namespace: &str, epoch: u64) -> Result<ValidationBundle, String> {
        let (index, e) = self
            .export
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.epoch == epoch)
            .ok_or_else(|| format!("the log has no entry for epoch {epoch}"))?;
        let hex32 = |t: &str| crate::evidence::parse_hex::<32>(&t.to_ascii_lowercase());
        let hex64 = |t: &str| crate::evidence::parse_hex::<64>(&t.to_ascii_lowercase());
        let digest = hex32(&e.digest).ok_or("bad digest in the export")?;
        let auditor_key = hex32(&self.export.auditor_key).ok_or("bad auditor key in the export")?;
        let auditor_signature = hex64(&e.signature).ok_or("bad signature in the export")?;
        let counter_signature = match (&e.operator_key, &e.counter_signature) {
            (Some(k), Some(s)) => Some(CounterSignature {
                operator_key: hex32(k).ok_or("bad operator key in the export")?,
                signature: hex64(s).ok_or("bad counter-signature in the export")?,
            }),
            _ => None,
        };
        let inclusion = self
            .tree
            .prove_inclusion(index as u64)
            .ok_or("no inclusion proof")?;
        let checkpoint = self
            .export
            .checkpoints
            .last()
            .ok_or("the export has no checkpoint")?
            .as_bytes()
            .to_vec();
        Ok(ValidationBundle {
            namespace: namespace.to_string(),
            epoch,
            timestamp_ms: e.timestamp_ms,
            digest,
            auditor_key,
            auditor_signature,
            counter_signature,
            artifact: e.artifact.as_bytes().to_vec(),
            inclusion,
            checkpoint,
        })
    }

    fn consistency(
        &mut self,
        _namespace: &str,
        old: u64,
        new: u64,
    ) -> Result<ConsistencyProof, String> {
        self.tree
            .prefix(new)
            .and_then(|t| t.prove_consistency(old))
            .ok_or_else(|| "the export has fewer entries".to_string())
    }
}

/// The verifier and what it pins.
pub struct Verifier {
    attestation: Vec<Box<dyn AttestationVerifier>>,
    now_ms: u64,
    auditor_keys: Vec<[u8; 32]>,
    operator_keys: Vec<[u8; 32]>,
    participants: Vec<[u8; 32]>,
    min_hsms: u32,
    min_sites: u32,
    measurement: Option<[u8; 32]>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("now_ms", &self.now_ms)
            .field("min_hsms", &self.min_hsms)
            .field("min_sites", &self.min_sites)
            .finish_non_exhaustive()
    }
}

/// A device whose chain verified, with its attestation and verifier.
struct Attested<'a> {
    attestation: &'a Attestation,
    device: VerifiedDevice,
    verifier: &'a dyn AttestationVerifier,
}

type KeySet = BTreeSet<(KeyRole, Vec<u8>)>;

/// A key as an operator reads it: a 32-byte key in full, a longer one
/// (the X-Wing transport key) by its SHA-256.
fn describe_key(key: &[u8]) -> String {
    if key.len() <= 32 {
        to_hex(key)
    } else {
        format!("sha256:{} ({} bytes)", to_hex(&sha256(key)), key.len())
    }
}

fn describe_keys(keys: &KeySet) -> String {
    keys.iter()
        .map(|(role, key)| format!("{role} {}", describe_key(key)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn all_or_errors(errors: Vec<String>, pass: String) -> Result<String, String> {
    if errors.is_empty() {
        Ok(pass)
    } else {
        Err(errors.join("; "))
    }
}

impl Verifier {
    /// A verifier with the vendor root of [`X509StatementVerifier`] and the
    /// current time `now_ms` (milliseconds since the Unix epoch).
    pub fn new(vendor: X509StatementVerifier, now_ms: u64) -> Self {
        Self {
            attestation: vec![Box::new(vendor)],
            now_ms,
            auditor_keys: Vec::new(),
            operator_keys: Vec::new(),
            participants: Vec::new(),
            min_hsms: 0,
            min_sites: 0,
            measurement: None,
        }
    }

    /// Adds a verifier for another attestation format.
    pub fn with_attestation_verifier(mut self, verifier: Box<dyn AttestationVerifier>) -> Self {
        self.attestation.push(verifier);
        self
    }

    /// Pins an auditor key: the log must be signed by it. Without a pin
    /// the evidence's declared key is used and a warning is reported.
    pub fn pin_auditor_key(mut self, key: [u8; 32]) -> Self {
        self.auditor_keys.push(key);
        self
    }

    /// Pins an operator counter-signing key: the transcript's operator key
    /// must be one of the pinned ones. Without a pin, the transcript's key
    /// is used, with a warning.
    pub fn pin_operator_key(mut self, key: [u8; 32]) -> Self {
        self.operator_keys.push(key);
        self
    }

    /// Requires that the participant with this Ed25519 key signed.
    pub fn require_participant(mut self, key: [u8; 32]) -> Self {
        self.participants.push(key);
        self
    }

    /// Requires at least `n` HSMs, whatever the evidence's policy says.
    pub fn require_hsms(mut self, n: u32) -> Self {
        self.min_hsms = n;
        self
    }

    /// Requires at least `n` sites, whatever the evidence's policy says.
    pub fn require_sites(mut self, n: u32) -> Self {
        self.min_sites = n;
        self
    }

    /// Requires this code measurement (one the caller rebuilt with
    /// `bkv audit measure`).
    pub fn expect_measurement(mut self, measurement: [u8; 32]) -> Self {
        self.measurement = Some(measurement);
        self
    }

    /// Decodes and verifies an evidence file.
    pub fn verify_bytes(&self, bytes: &[u8], log: Option<&mut dyn LogSource>) -> Report {
        match Evidence::from_json(bytes) {
            Ok(evidence) => self.verify(&evidence, log),
            Err(e) => {
                let mut report = Report::new();
                report.record(StepId::Evidence, Err(e.to_string()));
                for step in StepId::ALL.iter().skip(1) {
                    report.skip(*step, StepId::Evidence);
                }
                report.finish()
            }
        }
    }

    /// Verifies a decoded evidence package.
    pub fn verify(&self, evidence: &Evidence, log: Option<&mut dyn LogSource>) -> Report {
        let t = &evidence.transcript;
        let mut report = Report::new();
        report.fleet_id = Some(t.fleet_id.to_string());
        report.record(
            StepId::Evidence,
            Ok(format!(
                "{EVIDENCE_FORMAT}: fleet {}, {} HSMs, {} participants, epoch {} of {}",
                t.fleet_id,
                t.hsms.len(),
                t.participants.len(),
                t.epoch,
                t.namespace
            )),
        );

        let attested = self.step_chains(evidence, &mut report);
        let statements_ok = match &attested {
            Some(a) => report.record(StepId::AttestationStatements, self.statements(t, a)),
            None => {
                report.skip(StepId::AttestationStatements, StepId::AttestationChains);
                false
            }
        };
        let attested = attested.filter(|_| statements_ok);
        let keys = match &attested {
            Some(a) => {
                let result = fleet_keys(t, a);
                let keys = result.as_ref().ok().map(|(_, k)| k.clone());
                report.record(StepId::FleetKeys, result.map(|(d, _)| d));
                keys
            }
            None => {
                report.skip(StepId::FleetKeys, StepId::AttestationStatements);
                None
            }
        };
        match &attested {
            Some(a) => {
                report.record(StepId::CodeMeasurement, self.measurement(t, a));
                report.record(StepId::NonExportable, non_exportable(a));
                report.record(StepId::QuorumHsms, self.quorum_hsms(t, a));
                report.record(StepId::QuorumSites, self.quorum_sites(t, a));
            }
            None => {
                for step in [
                    StepId::CodeMeasurement,
                    StepId::NonExportable,
                    StepId::QuorumHsms,
                    StepId::QuorumSites,
                ] {
                    report.skip(step, StepId::AttestationStatements);
                }
            }
        }
        report.record(
            StepId::TranscriptSignatures,
            self.transcript_signatures(evidence),
        );
        match &keys {
            Some(keys) => report.record(StepId::FleetKeyArtifact, artifact(evidence, keys)),
            None => {
                report.skip(StepId::FleetKeyArtifact, StepId::FleetKeys);
                false
            }
        };
        let log_result = self.auditor_log(evidence, log, &mut report.warnings);
        report.record(StepId::AuditorLog, log_result);
        report.finish()
    }

    fn step_chains<'a>(
        &'a self,
        evidence: &'a Evidence,
        report: &mut Report,
    ) -> Option<Vec<Attested<'a>>> {
        let times = [
            CheckTime {
                name: "the ceremony time",
                unix_ms: evidence.transcript.time_ms,
            },
            CheckTime {
                name: "the verification time",
                unix_ms: self.now_ms,
            },
        ];
        let mut attested = Vec::new();
        let mut errors = Vec::new();
        for a in &evidence.attestations {
            let Some(verifier) = self.attestation.iter().find(|v| v.format() == a.format) else {
                errors.push(format!(
                    "{}: unknown attestation format {:?}",
                    a.hsm_id, a.format
                ));
                continue;
            };
            match verifier.verify_chain(a, &times) {
                Ok(device) => attested.push(Attested {
                    attestation: a,
                    device,
                    verifier: verifier.as_ref(),
                }),
                Err(e) => errors.push(format!("{}: {e}", a.hsm_id)),
            }
        }
        let ok = report.record(
            StepId::AttestationChains,
            all_or_errors(
                errors,
                format!(
                    "{} chains lead to the vendor root, valid at the ceremony time ({} ms) and now ({} ms)",
                    attested.len(),
                    evidence.transcript.time_ms,
                    self.now_ms
                ),
            ),
        );
        ok.then_some(attested)
    }

    fn statements(&self, t: &Transcript, attested: &[Attested<'_>]) -> Result<String, String> {
        let digest = t.digest();
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        for a in attested {
            let (att, s) = (a.attestation, &a.attestation.statement);
            let id = att.hsm_id.as_str();
            if let Err(e) = a.verifier.verify_statement_signature(&a.device, att) {
                errors.push(format!("{id}: {e}"));
                continue;
            }
            if !seen.insert(id) {
                errors.push(format!("{id}: attested twice"));
            }
            if s.hsm_id != att.hsm_id {
                errors.push(format!("{id}: the statement is about HSM {}", s.hsm_id));
            }
            if s.fleet_id != t.fleet_id {
                errors.push(format!("{id}: the statement names fleet {}", s.fleet_id));
            }
            if s.transcript_digest.0 != digest {
                errors.push(format!(
                    "{id}: the statement names another ceremony (transcript digest {})",
                    s.transcript_digest
                ));
            }
            match t.hsms.iter().find(|h| h.id == att.hsm_id) {
                None => errors.push(format!("{id}: not listed in the transcript")),
                Some(h) => {
                    if h.device_certificate.0 != a.device.certificate_fingerprint {
                        errors.push(format!(
                            "{id}: the transcript lists another device certificate"
                        ));
                    }
                    if h.import_key != s.import_key {
                        errors.push(format!(
                            "{id}: the secrets were sealed to another import key than the transcript lists"
                        ));
                    }
                }
            }
        }
        for h in &t.hsms {
            if !attested.iter().any(|a| a.attestation.hsm_id == h.id) {
                errors.push(format!(
                    "{}: listed in the transcript but not attested",
                    h.id
                ));
            }
        }
        all_or_errors(
            errors,
            format!(
                "{} statements signed by their device keys, each naming this ceremony (transcript {})",
                attested.len(),
                to_hex(&digest)
            ),
        )
    }

    fn measurement(&self, t: &Transcript, attested: &[Attested<'_>]) -> Result<String, String> {
        let expected = t.measurement.sha256;
        if t.measurement.recipe != RECIPE {
            return Err(format!(
                "unknown measurement recipe {:?} (this verifier knows {RECIPE})",
                t.measurement.recipe
            ));
        }
        if let Some(mine) = self.measurement {
            if mine != expected.0 {
                return Err(format!(
                    "wrong code measurement: the evidence expects {expected}, the verifier's own build measures {}",
                    to_hex(&mine)
                ));
            }
        }
        let errors: Vec<String> = attested
            .iter()
            .filter(|a| a.attestation.statement.measurement != expected)
            .map(|a| {
                format!(
                    "wrong code measurement: {} runs code measured {}, expected {expected}",
                    a.attestation.hsm_id, a.attestation.statement.measurement
                )
            })
            .collect();
        all_or_errors(
            errors,
            format!(
                "every HSM runs measurement {expected} ({RECIPE}){}",
                if self.measurement.is_some() {
                    ", equal to the verifier's own"
                } else {
                    ""
                }
            ),
        )
    }

    fn quorum_hsms(&self, t: &Transcript, attested: &[Attested<'_>]) -> Result<String, String> {
        let required = t.quorum.min_hsms.max(self.min_hsms);
        let devices: BTreeSet<[u8; 32]> =
            attested.iter().map(|a| a.device.key_fingerprint).collect();
        let ids: BTreeSet<&str> = attested
            .iter()
            .map(|a| a.device.device_id.as_str())
            .collect();
        let count = devices.len().min(ids.len());
        if (count as u64) < u64::from(required) {
            Err(format!(
                "too few HSMs: {count} distinct attested HSMs, the policy requires at least {required}"
            ))
        } else {
            Ok(format!(
                "{count} distinct attested HSMs (at least {required} required)"
            ))
        }
    }

    fn quorum_sites(&self, t: &Transcript, attested: &[Attested<'_>]) -> Result<String, String> {
        let required = t.quorum.min_sites.max(self.min_sites);
        let sites: BTreeSet<&str> = attested
            .iter()
            .filter_map(|a| t.hsms.iter().find(|h| h.id == a.attestation.hsm_id))
            .map(|h| h.site.as_str())
            .collect();
        let list = sites.iter().copied().collect::<Vec<_>>().join(", ");
        if (sites.len() as u64) < u64::from(required) {
            Err(format!(
                "too few sites: {} distinct sites ({list}), the policy requires at least {required}",
                sites.len()
            ))
        } else {
            Ok(format!(
                "{} distinct sites: {list} (at least {required} required)",
                sites.len()
            ))
        }
    }

    fn transcript_signatures(&self, evidence: &Evidence) -> Result<String, String> {
        let t = &evidence.transcript;
        let message = t.signed_message();
        let mut errors = Vec::new();
        let names: BTreeSet<&str> = t.participants.iter().map(|p| p.name.as_str()).collect();
        let keys: BTreeSet<[u8; 32]> = t.participants.iter().map(|p| p.public_key.0).collect();
        if names.len() != t.participants.len() || keys.len() != t.participants.len() {
            errors.push("a participant is listed twice".to_string());
        }
        for p in &t.participants {
            let signatures: Vec<_> = evidence
                .transcript_signatures
                .iter()
                .filter(|s| s.participant == p.name)
                .collect();
            match signatures.as_slice() {
                [] => errors.push(format!(
                    "missing signature: participant {} did not sign",
                    p.name
                )),
                [one] => {
                    if !verify_strict(&p.public_key.0, &message, &one.signature.0) {
                        errors.push(format!(
                            "forged signature: participant {}'s signature does not verify over this transcript",
                            p.name
                        ));
                    }
                }
                _ => errors.push(format!("participant {} signed more than once", p.name)),
            }
        }
        for s in &evidence.transcript_signatures {
            if !names.contains(s.participant.as_str()) {
                errors.push(format!(
                    "a signature by {}, who is not a listed participant",
                    s.participant
                ));
            }
        }
        for pinned in &self.participants {
            if !keys.contains(pinned) {
                errors.push(format!(
                    "missing signature: required participant {} is not listed",
                    to_hex(pinned)
                ));
            }
        }
        all_or_errors(
            errors,
            format!(
                "signed by every participant: {}",
                names.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        )
    }

    fn auditor_log(
        &self,
        evidence: &Evidence,
        log: Option<&mut dyn LogSource>,
        warnings: &mut Vec<String>,
    ) -> Result<String, String> {
        let t = &evidence.transcript;
        let ns = evidence.log.namespace.as_str();
        let epoch = evidence.log.epoch;
        let key = evidence.log.auditor_key.0;
        if self.auditor_keys.is_empty() {
            warnings.push(format!(
                "the auditor key is not pinned (--auditor-key): the log was checked under the key the evidence declares, {}",
                to_hex(&key)
            ));
        } else if !self.auditor_keys.contains(&key) {
            return Err(format!(
                "the evidence's auditor key {} is not a pinned auditor key",
                to_hex(&key)
            ));
        }
        if ns != t.namespace.as_str() || epoch != t.epoch {
            return Err(
                "the log section names another namespace or epoch than the transcript".into(),
            );
        }
        let bundle = evidence
            .bundle()
            .map_err(|e| format!("the bundle does not decode: {e}"))?;
        let artifact = evidence.fleet_key_artifact.as_bytes();
        let digest = artifact_digest(artifact);
        if bundle.namespace != ns || bundle.epoch != epoch {
            return Err(format!(
                "fleet key not in the log: the bundle is for epoch {} of {}, not epoch {epoch} of {ns}",
                bundle.epoch, bundle.namespace
            ));
        }
        if bundle.artifact != artifact || bundle.digest != digest {
            return Err(format!(
                "fleet key not in the log: the bundle logs another artifact (digest {}) than the evidence's (digest {})",
                to_hex(&bundle.digest),
                to_hex(&digest)
            ));
        }
        if bundle.auditor_key != key {
            return Err(
                "the bundle is signed by another auditor key than the evidence declares".into(),
            );
        }
        // Prepared once: it verifies the statement and both checkpoints.
        let auditor = PinnedKey::new(key);
        if !auditor.verify_strict(&bundle.statement().to_bytes(), &bundle.auditor_signature) {
            return Err("the auditor's signature over the statement does not verify".into());
        }
        // The counter-signature is the operator's, by the key the
        // transcript records (sealed to the HSMs at the ceremony).
        let operator = t.operator_key.0;
        if self.operator_keys.is_empty() {
            warnings.push(format!(
                "the operator key is not pinned (--operator-key): the counter-signature was checked under the key the transcript records, {}",
                to_hex(&operator)
            ));
        } else if !self.operator_keys.contains(&operator) {
            return Err(format!(
                "the transcript's operator key {} is not a pinned operator key",
                to_hex(&operator)
            ));
        }
        let c = bundle
            .counter_signature
            .as_ref()
            .ok_or("the bundle carries no operator counter-signature")?;
        if c.operator_key != operator {
            return Err(format!(
                "the counter-signature is by operator key {}, not by the key the transcript records ({})",
                to_hex(&c.operator_key),
                to_hex(&operator)
            ));
        }
        if !verify_strict(&c.operator_key, &bundle.auditor_signature, &c.signature) {
            return Err("the operator's counter-signature does not verify".into());
        }
        let checkpoint =
            Checkpoint::verify_note(&bundle.checkpoint, ns, std::slice::from_ref(&auditor))
                .map_err(|e| format!("the checkpoint is not signed by the auditor key: {e}"))?;
        bundle
            .inclusion
            .verify(&entry(epoch, &digest), &checkpoint)
            .map_err(|e| {
                format!(
                    "fleet key not in the log: no inclusion of epoch {epoch} (digest {}) under the checkpoint of size {}: {e}",
                    to_hex(&digest),
                    checkpoint.tree_size
                )
            })?;
        let mut detail = format!(
            "epoch {epoch} (artifact digest {}) is entry {} of {ns}, proven against the checkpoint of size {} signed by auditor key {}",
            to_hex(&digest),
            bundle.inclusion.leaf_index,
            checkpoint.tree_size,
            to_hex(&key)
        );
        let Some(log) = log else {
            return Ok(detail);
        };
        let source = log.describe();
        if let Some(summary) = log.verify_log(ns, &key)? {
            detail.push_str(&format!("; {source}: {summary}"));
        }
        let live = log
            .bundle(ns, epoch)
            .map_err(|e| format!("fleet key not in the log ({source}): {e}"))?;
        if live.digest != digest || live.epoch != epoch {
            return Err(format!(
                "fleet key not in the log ({source}): epoch {epoch} holds another artifact (digest {})",
                to_hex(&live.digest)
            ));
        }
        if live.auditor_key != key {
            return Err(format!("{source} is signed by another auditor key"));
        }
        let live_checkpoint =
            Checkpoint::verify_note(&live.checkpoint, ns, std::slice::from_ref(&auditor)).map_err(
                |e| format!("{source}: the checkpoint is not signed by the auditor key: {e}"),
            )?;
        live.inclusion
            .verify(&entry(epoch, &digest), &live_checkpoint)
            .map_err(|e| format!("fleet key not in the log ({source}): {e}"))?;
        if checkpoint.tree_size > live_checkpoint.tree_size {
            return Err(format!(
                "{source}: the log (size {}) is older than the evidence's checkpoint (size {})",
                live_checkpoint.tree_size, checkpoint.tree_size
            ));
        }
        let proof = log
            .consistency(ns, checkpoint.tree_size, live_checkpoint.tree_size)
            .map_err(|e| format!("{source}: no consistency proof: {e}"))?;
        proof.verify(&checkpoint, &live_checkpoint).map_err(|_| {
            format!("{source}: the evidence's checkpoint is not consistent with the log (a fork)")
        })?;
        detail.push_str(&format!(
            "; {source} has it too, under its checkpoint of size {}, consistent with the evidence's",
            live_checkpoint.tree_size
        ));
        Ok(detail)
    }
}

fn statement_keys(a: &Attested<'_>) -> KeySet {
    a.attestation
        .statement
        .keys
        .iter()
        .map(|k| (k.role.0, k.public_key.0.clone()))
        .collect()
}

fn fleet_keys(t: &Transcript, attested: &[Attested<'_>]) -> Result<(String, KeySet), String> {
    let mut errors = Vec::new();
    let mut transcript_keys = KeySet::new();
    let mut roles = BTreeMap::new();
    for k in &t.fleet_keys {
        if k.fingerprint.0 != sha256(&k.public_key.0) {
            errors.push(format!(
                "the transcript's fingerprint of the {} key is not its SHA-256",
                k.role.0
            ));
        }
        if k.public_key.0.len() != k.role.0.key_len() {
            errors.push(format!(
                "the transcript's {} key is {} bytes, not {}",
                k.role.0,
                k.public_key.0.len(),
                k.role.0.key_len()
            ));
        }
        if roles.insert(k.role.0, k.public_key.0.clone()).is_some() {
            errors.push(format!("the transcript lists two {} keys", k.role.0));
        }
        transcript_keys.insert((k.role.0, k.public_key.0.clone()));
    }
    for role in KeyRole::ALL {
        if !roles.contains_key(&role) {
            errors.push(format!("the transcript lists no {role} key"));
        }
    }
    for a in attested {
        let keys = statement_keys(a);
        if keys.len() != a.attestation.statement.keys.len() || keys != transcript_keys {
            errors.push(format!(
                "attestation over other keys: {} attests {} (the transcript names {})",
                a.attestation.hsm_id,
                describe_keys(&keys),
                describe_keys(&transcript_keys)
            ));
        }
    }
    if errors.is_empty() {
        Ok((
            format!(
                "all {} HSMs attest the transcript's keys: {}",
                attested.len(),
                describe_keys(&transcript_keys)
            ),
            transcript_keys,
        ))
    } else {
        Err(errors.join("; "))
    }
}

fn non_exportable(attested: &[Attested<'_>]) -> Result<String, String> {
    let errors: Vec<String> = attested
        .iter()
        .flat_map(|a| {
            a.attestation
                .statement
                .keys
                .iter()
                .filter(|k| !k.non_exportable)
                .map(move |k| {
                    format!(
                        "exportable key: {} holds the {} key as exportable",
                        a.attestation.hsm_id, k.role.0
                    )
                })
        })
        .collect();
    all_or_errors(
        errors,
        "every HSM marks every fleet key non-exportable".to_string(),
    )
}

fn artifact(evidence: &Evidence, keys: &KeySet) -> Result<String, String> {
    let t = &evidence.transcript;
    let bytes = evidence.fleet_key_artifact.as_bytes();
    let artifact = FleetKeyArtifact::from_bytes(bytes)
        .map_err(|e| format!("the fleet-key artifact does not decode: {e}"))?;
    let digest = artifact_digest(bytes);
    let mut errors = Vec::new();
    if digest != t.artifact_digest.0 {
        errors.push(format!(
            "the artifact's SHA-256 {} is not the transcript's artifact digest {}",
            to_hex(&digest),
            t.artifact_digest
        ));
    }
    if artifact.namespace != t.namespace.as_str()
        || artifact.fleet_id != t.fleet_id.as_str()
        || artifact.epoch != t.epoch
    {
        errors.push(
            "the artifact names another namespace, fleet or epoch than the transcript".into(),
        );
    }
    let listed: KeySet = artifact
        .keys
        .iter()
        .map(|k| (k.role, k.public_key.clone()))
        .collect();
    if &listed != keys || listed.len() != artifact.keys.len() {
        errors.push(format!(
            "the artifact lists {}, not the keys the HSMs attest ({})",
            describe_keys(&listed),
            describe_keys(keys)
        ));
    }
    all_or_errors(
        errors,
        format!(
            "artifact {} for fleet {} epoch {} lists exactly the attested keys",
            to_hex(&digest),
            artifact.fleet_id,
            artifact.epoch
        ),
    )
}
