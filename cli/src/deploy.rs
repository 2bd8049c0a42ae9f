//! `bkv fleet ceremony`, `bkv audit measure` and `bkv audit
//! verify-deployment` (SPEC.md §30–§35).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::{
    ConsistencyProof, OperatorSigningKey, ValidationBundle, DEFAULT_NAMESPACE,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bkv_auditor::Auditor;
use bkv_deploy::ceremony::{self, CeremonyHsm, CeremonyPlan, ParticipantKey, RealmGroup};
use bkv_deploy::evidence::{parse_hex, Name, QuorumPolicy};
use bkv_deploy::measure::{self, MeasureOptions};
use bkv_deploy::sim::{SimulatedHsm, SimulatedVendor, Validity};
use bkv_deploy::verify::{ExportLog, LogSource, Report};
use bkv_deploy::{Verifier, X509StatementVerifier};
use clap::Args;

use crate::exit::{Exit, Failure};

const DAY_MS: u64 = 86_400_000;

fn hex32(text: &str, what: &str) -> Result<[u8; 32], String> {
    parse_hex::<32>(&text.to_ascii_lowercase())
        .ok_or_else(|| format!("{what}: expected 32 bytes of hex, got {text:?}"))
}

fn name(text: &str, what: &str) -> Result<Name, String> {
    Name::new(text)
        .ok_or_else(|| format!("{what} {text:?}: use 1 to 128 characters of A-Z a-z 0-9 . _ - / :"))
}

fn failed(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

#[derive(Args, Debug)]
pub struct CeremonyArgs {
    /// Directory for the evidence, the sealed secrets and the simulated
    /// HSMs' state (created; must not already hold evidence).
    #[arg(long)]
    out: PathBuf,
    /// The new fleet's id.
    #[arg(long)]
    fleet_id: String,
    /// An HSM and its site, as ID@SITE; repeat for each HSM. The first
    /// generates the fleet secrets.
    #[arg(long = "hsm", required = true)]
    hsms: Vec<String>,
    /// A ceremony participant; repeat. Each gets a fresh Ed25519 key,
    /// written to OUT/participants/NAME.key (simulation).
    #[arg(long = "participant", required = true)]
    participants: Vec<String>,
    /// Fewest distinct attested HSMs the fleet must have.
    #[arg(long, default_value_t = 3)]
    min_hsms: u32,
    /// Fewest distinct sites.
    #[arg(long, default_value_t = 2)]
    min_sites: u32,
    /// The code measurement the HSMs run (hex, from `bkv audit measure`).
    #[arg(long)]
    measurement: String,
    /// The namespace the fleet-key artifact is published under.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// The simulated vendor (JSON with its CA keys); created if missing.
    /// Default: OUT/vendor.json.
    #[arg(long)]
    vendor: Option<PathBuf>,
    /// The auditor's database directory (in-process auditor); created if
    /// missing. Default: OUT/auditor.
    #[arg(long, conflicts_with = "auditor")]
    auditor_dir: Option<PathBuf>,
    /// A running auditor (`bkv auditor serve`) at this base URL: the
    /// artifact is made for its next epoch and NOT published; the ceremony
    /// writes OUT/ceremony.json and `bkv operator publish` publishes it.
    #[arg(long, value_name = "URL")]
    auditor: Option<String>,
    /// Take the operator's counter-signing key from an earlier ceremony's
    /// directory (opened in its first HSM) instead of generating one:
    /// every fleet of a namespace is counter-signed by the same key, the
    /// one clients pin.
    #[arg(long, value_name = "DIR")]
    operator_from: Option<PathBuf>,
    /// Days the fleet-key artifact is valid.
    #[arg(long, default_value_t = 365)]
    valid_days: u64,
    /// Make the fleet a group of this realm (SPEC.md §14.1): its artifact
    /// names the realm, --layout and --records. Without it the fleet is
    /// alone in its realm and serves every record id.
    #[arg(long, value_name = "NAME", requires = "records")]
    realm: Option<String>,
    /// With --realm: the realm's layout.
    #[arg(long, default_value_t = 1, requires = "realm")]
    layout: u64,
    /// With --realm: the record ids the fleet serves, FIRST-LAST (16 hex
    /// digits each, the ids' first 8 bytes, inclusive). Its nodes run
    /// with the same `bkv node --records`.
    #[arg(long, value_name = "FIRST-LAST", requires = "realm")]
    records: Option<String>,
}

fn parse_hsm(spec: &str) -> Result<(Name, Name), String> {
    let (id, site) = spec
        .split_once('@')
        .ok_or_else(|| format!("--hsm {spec:?}: expected ID@SITE"))?;
    Ok((name(id, "HSM id")?, name(site, "site")?))
}

/// Runs the key ceremony with simulated HSMs and an in-process auditor,
/// writes the evidence and every HSM's sealed secrets, then verifies the
/// evidence as an outsider would.
pub fn ceremony(args: &CeremonyArgs) -> ExitCode {
    match run_ceremony(args) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(report)) if report.passed() => ExitCode::SUCCESS,
        Ok(Some(_)) => {
            eprintln!("error: the ceremony's own evidence does not verify");
            Exit::Verification.into()
        }
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.exit.into()
        }
    }
}

/// The ceremony's report, or `None` when it was prepared for publication
/// by `bkv operator publish`. Bad arguments exit 2, an auditor that cannot
/// be reached 5 (the exit codes of `bkv --help`).
fn run_ceremony(args: &CeremonyArgs) -> Result<Option<Report>, Failure> {
    let now = bkv_deploy::now_ms();
    let measurement = hex32(&args.measurement, "--measurement").map_err(Failure::usage)?;
    let fleet_id = name(&args.fleet_id, "fleet id").map_err(Failure::usage)?;
    let namespace = name(&args.namespace, "namespace").map_err(Failure::usage)?;
    let hsm_specs = args
        .hsms
        .iter()
        .map(|s| parse_hsm(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::usage)?;
    let participants = args
        .participants
        .iter()
        .map(|p| name(p, "participant").map(ParticipantKey::generate))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::usage)?;

    // A policy these HSMs cannot meet fails here, before any secret is
    // generated, any file written or anything logged at the auditor.
    ceremony::check_quorum(
        &QuorumPolicy {
            min_hsms: args.min_hsms,
            min_sites: args.min_sites,
        },
        hsm_specs
            .iter()
            .map(|(id, site)| (id.as_str(), site.as_str())),
    )
    .map_err(|e| e.to_string())?;

    let out = &args.out;
    if out.join("evidence.json").exists() || out.join("ceremony.json").exists() {
        return Err(format!("{} already holds a ceremony", out.display()).into());
    }
    // The operator key: an earlier ceremony's (the one clients pin), or a
    // new one; it leaves this process only sealed to the HSMs.
    let operator = match &args.operator_from {
        Some(dir) => {
            let transcript = crate::operator::ceremony_transcript(dir).map_err(|e| e.message)?;
            crate::operator::open_operator_key(dir, &transcript, None).map_err(|e| e.message)?
        }
        None => OperatorSigningKey::generate(&mut rand::rngs::OsRng),
    };
    // With a running auditor: its next epoch, asked before anything is
    // written (an auditor that cannot be reached leaves nothing behind).
    let auditor_epoch = match &args.auditor {
        Some(url) => Some(crate::operator::next_epoch(url, namespace.as_str())?),
        None => None,
    };
    for dir in ["sealed", "hsms", "participants"] {
        std::fs::create_dir_all(out.join(dir)).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let vendor_path = args
        .vendor
        .clone()
        .unwrap_or_else(|| out.join("vendor.json"));
    let vendor = if vendor_path.exists() {
        SimulatedVendor::load(&vendor_path).map_err(|e| e.to_string())?
    } else {
        let v = SimulatedVendor::new("Simulated HSM vendor", Validity::around(now, 20))
            .map_err(|e| e.to_string())?;
        v.save(&vendor_path).map_err(|e| e.to_string())?;
        v
    };
    let root_pem = out.join("vendor-root.pem");
    write(&root_pem, vendor.root_pem().as_bytes())?;
    let root = X509StatementVerifier::new(vendor.root_der().to_vec()).map_err(|e| e.to_string())?;

    let mut hsms: Vec<(SimulatedHsm, Name)> = Vec::new();
    for (id, site) in hsm_specs {
        let hsm = vendor
            .manufacture(id.as_str(), Validity::around(now, 10), measurement)
            .map_err(|e| e.to_string())?;
        hsms.push((hsm, site));
    }
    let plan = CeremonyPlan {
        fleet_id,
        namespace: namespace.clone(),
        time_ms: now,
        not_before_ms: now.saturating_sub(60_000),
        not_after_ms: now.saturating_add(args.valid_days.saturating_mul(DAY_MS)),
        measurement,
        quorum: QuorumPolicy {
            min_hsms: args.min_hsms,
            min_sites: args.min_sites,
        },
        group: match (&args.realm, &args.records) {
            (Some(realm), Some(records)) => Some(RealmGroup {
                realm: name(realm, "realm")?,
                layout: args.layout,
                records: crate::fleet_node::parse_range(records)
                    .map_err(|e| format!("--records {e}"))?,
            }),
            _ => None,
        },
    };
    let mut taking_part: Vec<CeremonyHsm<'_>> = hsms
        .iter_mut()
        .map(|(hsm, site)| CeremonyHsm {
            hsm,
            site: site.clone(),
        })
        .collect();
    if let (Some(url), Some(epoch)) = (&args.auditor, auditor_epoch) {
        // Prepared only: `bkv operator publish` publishes it.
        let prepared = ceremony::prepare(
            &plan,
            epoch,
            &mut taking_part,
            &participants,
            &root,
            &operator,
        )
        .map_err(|e| e.to_string())?;
        drop(taking_part);
        write_ceremony_files(
            out,
            &hsms,
            &participants,
            &prepared.sealed,
            &prepared.sealed_operator,
        )?;
        let pending_path = out.join("ceremony.json");
        write(&pending_path, &prepared.pending.to_json())?;
        print_ceremony(&prepared.pending.transcript, &prepared.public_keys);
        println!(
            "  artifact for epoch {epoch} of {}, not yet published",
            namespace.as_str()
        );
        println!("ceremony:    {}", pending_path.display());
        println!("vendor root: {}", root_pem.display());
        println!("sealed:      {}", out.join("sealed").display());
        println!(
            "\nnext: bkv operator publish --ceremony {} --auditor {url} --auditor-key HEX --token-file FILE --fleet DIR",
            out.display()
        );
        return Ok(None);
    }
    let auditor_dir = args
        .auditor_dir
        .clone()
        .unwrap_or_else(|| out.join("auditor"));
    let mut auditor = Auditor::open(&auditor_dir).map_err(|e| e.to_string())?;
    let outcome = ceremony::run(
        &plan,
        &mut taking_part,
        &participants,
        &root,
        &mut auditor,
        &operator,
    )
    .map_err(|e| e.to_string())?;
    drop(taking_part);
    write_ceremony_files(
        out,
        &hsms,
        &participants,
        &outcome.sealed,
        &outcome.sealed_operator,
    )?;
    let evidence_path = out.join("evidence.json");
    write(&evidence_path, &outcome.evidence.to_json())?;
    let export = auditor
        .export(namespace.as_str())
        .map_err(|e| e.to_string())?;
    let export_path = out.join("log-export.json");
    write(
        &export_path,
        &serde_json::to_vec_pretty(&export).map_err(|e| e.to_string())?,
    )?;

    let t = &outcome.evidence.transcript;
    print_ceremony(t, &outcome.public_keys);
    println!(
        "  artifact logged at epoch {} of {} by auditor {}",
        t.epoch,
        t.namespace,
        to_hex(&auditor.public_key())
    );
    println!("evidence:    {}", evidence_path.display());
    println!("vendor root: {}", root_pem.display());
    println!("log export:  {}", export_path.display());
    println!("sealed:      {}", out.join("sealed").display());
    println!("\nverifying the evidence as an outsider would:\n");
    let verifier = Verifier::new(root, bkv_deploy::now_ms())
        .pin_auditor_key(auditor.public_key())
        .pin_operator_key(operator.public_key())
        .expect_measurement(measurement);
    let mut log = ExportLog::new(export);
    let report = verifier.verify(&outcome.evidence, Some(&mut log));
    print!("{}", report.to_text());
    Ok(Some(report))
}

fn print_ceremony(t: &bkv_deploy::evidence::Transcript, keys: &backup_key_vault::FleetPublicKeys) {
    println!(
        "ceremony for fleet {} at {} ms: {} HSMs, {} participants",
        t.fleet_id,
        t.time_ms,
        t.hsms.len(),
        t.participants.len()
    );
    for h in &t.hsms {
        println!(
            "  HSM {} at {}: secrets and operator key sealed to its import key",
            h.id, h.site
        );
    }
    println!(
        "  key-exchange key {} (fingerprint {})",
        to_hex(&keys.key_exchange),
        to_hex(&bkv_deploy::evidence::sha256(&keys.key_exchange))
    );
    println!(
        "  transport key    {} (fingerprint {})",
        to_hex(keys.transport.as_bytes()),
        to_hex(&bkv_deploy::evidence::sha256(keys.transport.as_bytes()))
    );
    println!("  operator key     {}", t.operator_key);
}

/// Writes the sealed secrets and operator key (one file each per HSM), the
/// HSMs' own keys (simulated NVRAM) and the participants' keys
/// (simulation).
fn write_ceremony_files(
    out: &Path,
    hsms: &[(SimulatedHsm, Name)],
    participants: &[ParticipantKey],
    sealed: &[(Name, Vec<u8>)],
    sealed_operator: &[(Name, Vec<u8>)],
) -> Result<(), String> {
    for (id, blob) in sealed {
        write(&out.join("sealed").join(format!("{id}.sealed")), blob)?;
    }
    for (id, blob) in sealed_operator {
        write(&out.join("sealed").join(format!("{id}.operator")), blob)?;
    }
    for (hsm, _) in hsms {
        hsm.save(&out.join("hsms").join(format!("{}.json", hsm.id())))
            .map_err(|e| e.to_string())?;
    }
    for p in participants {
        write_secret(
            &out.join("participants").join(format!("{}.key", p.name())),
            to_hex(&p.seed()[..]).as_bytes(),
        )?;
    }
    Ok(())
}

/// Opens the fleet secrets of a ceremony's HSM `hsm` in that simulated
/// HSM, for the node that runs on it (`bkv node --ceremony DIR --hsm ID`).
pub fn open_ceremony_secrets(
    dir: &Path,
    hsm: &str,
) -> Result<backup_key_vault::FleetSecrets, Failure> {
    let transcript = crate::operator::ceremony_transcript(dir)?;
    if !transcript.hsms.iter().any(|h| h.id.as_str() == hsm) {
        return Err(Failure::usage(format!(
            "--hsm {hsm}: the ceremony in {} has HSMs {}",
            dir.display(),
            transcript
                .hsms
                .iter()
                .map(|h| h.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let state = dir.join("hsms").join(format!("{hsm}.json"));
    let device = SimulatedHsm::load(&state)
        .map_err(|e| Failure::other(format!("HSM {hsm} ({}): {e}", state.display())))?;
    let sealed_path = dir.join("sealed").join(format!("{hsm}.sealed"));
    let sealed = std::fs::read(&sealed_path)
        .map_err(|e| Failure::other(format!("cannot read {}: {e}", sealed_path.display())))?;
    device
        .open_sealed(&sealed, &transcript.digest())
        .map_err(|e| Failure::other(format!("{}: {e}", sealed_path.display())))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Args, Debug)]
pub struct MeasureArgs {
    /// The checkout to build (the workspace root).
    #[arg(long, default_value = ".")]
    checkout: PathBuf,
    /// A rustup toolchain to build with (the recipe pins Rust 1.95.0).
    #[arg(long)]
    toolchain: Option<String>,
    /// Measure with another toolchain than the pinned one (the result is
    /// then not the canonical measurement).
    #[arg(long)]
    allow_other_toolchain: bool,
    /// Keep the build in this directory instead of a temporary one.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Print the manifest of hashed files too.
    #[arg(long)]
    manifest: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Rebuilds the vault by the recipe of SPEC.md §30 and prints its SHA-256.
pub fn measure(args: &MeasureArgs) -> ExitCode {
    let wrapper = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return failed(format!("cannot find this executable: {e}")),
    };
    let options = MeasureOptions {
        checkout: args.checkout.clone(),
        toolchain: args.toolchain.clone(),
        allow_other_toolchain: args.allow_other_toolchain,
        wrapper,
        target_dir: args.target_dir.clone(),
    };
    eprintln!(
        "building {} for {} with Rust {} ({}), this takes a few minutes...",
        measure::PACKAGE,
        measure::TARGET,
        measure::TOOLCHAIN,
        measure::RECIPE
    );
    let m = match measure::measure(&options) {
        Ok(m) => m,
        Err(e) => return failed(e),
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "recipe": measure::RECIPE,
                "rustc": m.rustc,
                "measurement": to_hex(&m.sha256),
                "files": m.files.iter().map(|f| serde_json::json!({
                    "crate": f.crate_name, "sha256": to_hex(&f.sha256)
                })).collect::<Vec<_>>(),
            })
        );
    } else {
        if args.manifest {
            print!("{}", m.manifest);
        }
        println!("{}", to_hex(&m.sha256));
    }
    ExitCode::SUCCESS
}

#[derive(Args, Debug)]
pub struct VerifyDeploymentArgs {
    /// The evidence file (JSON).
    evidence: PathBuf,
    /// The HSM vendor's root certificate (PEM), obtained from the vendor.
    #[arg(long)]
    vendor_root: PathBuf,
    /// The auditor's log: its base URL (http://host:port), or a namespace
    /// export file (from GET /namespaces/{ns}/export).
    #[arg(long)]
    log: Option<String>,
    /// Pinned auditor key (hex); repeat for several. Without one, the
    /// evidence's declared key is used, with a warning.
    #[arg(long = "auditor-key")]
    auditor_keys: Vec<String>,
    /// Pinned operator counter-signing key (hex); repeat for several. The
    /// transcript's operator key must be one of them, and the bundle
    /// counter-signed by it. Without one, the transcript's key is used,
    /// with a warning.
    #[arg(long = "operator-key")]
    operator_keys: Vec<String>,
    /// A participant who must have signed the transcript (Ed25519 key,
    /// hex); repeat.
    #[arg(long = "participant-key")]
    participant_keys: Vec<String>,
    /// Require at least this many HSMs, whatever the evidence's policy.
    #[arg(long)]
    min_hsms: Option<u32>,
    /// Require at least this many sites, whatever the evidence's policy.
    #[arg(long)]
    min_sites: Option<u32>,
    /// The measurement you rebuilt yourself (`bkv audit measure`, hex).
    #[arg(long)]
    measurement: Option<String>,
    /// Verify as of this time (ms since the Unix epoch) instead of now.
    #[arg(long)]
    at: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// The live auditor over HTTP (SPEC.md §18.2) as a log source.
struct HttpLog {
    base: String,
    agent: ureq::Agent,
}

impl HttpLog {
    fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let url = format!("{}{path}", self.base);
        let text = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}"))
    }
}

impl LogSource for HttpLog {
    fn describe(&self) -> String {
        format!("the auditor at {}", self.base)
    }

    fn bundle(&mut self, namespace: &str, epoch: u64) -> Result<ValidationBundle, String> {
        let value = self.get_json(&format!("/namespaces/{namespace}/audits/{epoch}/bundle"))?;
        let bytes = value
            .get("bundle")
            .and_then(|b| b.as_str())
            .and_then(|b| B64.decode(b).ok())
            .ok_or("the answer has no bundle")?;
        ValidationBundle::from_bytes(&bytes).map_err(|e| format!("bundle: {e}"))
    }

    fn consistency(
        &mut self,
        namespace: &str,
        old: u64,
        new: u64,
    ) -> Result<ConsistencyProof, String> {
        let value = self.get_json(&format!(
            "/namespaces/{namespace}/consistency?old={old}&new={new}"
        ))?;
        let hashes = value
            .get("hashes")
            .and_then(|h| h.as_array())
            .ok_or("no hashes")?
            .iter()
            .map(|h| h.as_str().and_then(parse_hex::<32>).ok_or("bad hash"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ConsistencyProof { hashes })
    }
}

/// The verifier, the log source and the evidence bytes.
type VerifySetup = (Verifier, Option<Box<dyn LogSource>>, Vec<u8>);

/// Verifies an evidence package and prints every step; exit status zero
/// only if all pass.
pub fn verify_deployment(args: &VerifyDeploymentArgs) -> ExitCode {
    let setup = || -> Result<VerifySetup, String> {
        let pem = std::fs::read(&args.vendor_root)
            .map_err(|e| format!("{}: {e}", args.vendor_root.display()))?;
        let root = X509StatementVerifier::from_pem(&pem).map_err(|e| e.to_string())?;
        let mut verifier = Verifier::new(root, args.at.unwrap_or_else(bkv_deploy::now_ms));
        for k in &args.auditor_keys {
            verifier = verifier.pin_auditor_key(hex32(k, "--auditor-key")?);
        }
        for k in &args.operator_keys {
            verifier = verifier.pin_operator_key(hex32(k, "--operator-key")?);
        }
        for k in &args.participant_keys {
            verifier = verifier.require_participant(hex32(k, "--participant-key")?);
        }
        if let Some(n) = args.min_hsms {
            verifier = verifier.require_hsms(n);
        }
        if let Some(n) = args.min_sites {
            verifier = verifier.require_sites(n);
        }
        if let Some(m) = &args.measurement {
            verifier = verifier.expect_measurement(hex32(m, "--measurement")?);
        }
        let log: Option<Box<dyn LogSource>> = match &args.log {
            None => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(Box::new(HttpLog {
                    base: url.trim_end_matches('/').to_string(),
                    agent: agent(),
                }))
            }
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
                Some(Box::new(ExportLog::from_json(&bytes)?))
            }
        };
        let evidence = std::fs::read(&args.evidence)
            .map_err(|e| format!("{}: {e}", args.evidence.display()))?;
        Ok((verifier, log, evidence))
    };
    let (verifier, mut log, evidence) = match setup() {
        Ok(s) => s,
        Err(e) => {
            if args.json {
                println!("{}", serde_json::json!({ "ok": false, "error": e }));
                return ExitCode::FAILURE;
            }
            return failed(e);
        }
    };
    let report = match log.as_mut() {
        Some(log) => verifier.verify_bytes(&evidence, Some(log.as_mut())),
        None => verifier.verify_bytes(&evidence, None),
    };
    let text = if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => text + "\n",
            Err(e) => return failed(e),
        }
    } else {
        report.to_text()
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        Exit::Verification.into()
    }
}

/// The demo's fleet: made by a key ceremony, its evidence verified as an
/// outsider would, before anyone trusts its keys.
pub struct DemoFleet {
    /// The HSM the demo's vault runs on (it holds the secrets, sealed to
    /// it by the ceremony and imported).
    pub hsm: SimulatedHsm,
    /// The fleet's keys, as the verified evidence's artifact lists them.
    pub keys: backup_key_vault::FleetPublicKeys,
    /// HSMs, sites and participants of the ceremony.
    pub summary: String,
    /// The verifier's report.
    pub report: Report,
}

/// Runs a ceremony with three simulated HSMs at three sites (an in-process
/// auditor in a temporary directory) and verifies its evidence; fails
/// unless every step passes.
pub fn demo_ceremony() -> Result<DemoFleet, String> {
    let now = bkv_deploy::now_ms();
    // The demo does not rebuild the vault (that takes minutes, `bkv audit
    // measure`): its simulated HSMs run a declared placeholder measurement.
    let measurement = bkv_deploy::evidence::sha256(b"bkv demo: placeholder code measurement");
    let vendor = SimulatedVendor::new("Demo HSM vendor", Validity::around(now, 20))
        .map_err(|e| e.to_string())?;
    let mut hsms = Vec::new();
    for (id, site) in [
        ("hsm-1", "eu-west-a"),
        ("hsm-2", "eu-west-b"),
        ("hsm-3", "eu-central"),
    ] {
        let hsm = vendor
            .manufacture(id, Validity::around(now, 10), measurement)
            .map_err(|e| e.to_string())?;
        hsms.push((hsm, name(site, "site")?));
    }
    let participants = ["alice", "bob"]
        .iter()
        .map(|p| name(p, "participant").map(ParticipantKey::generate))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut auditor = Auditor::open(dir.path()).map_err(|e| e.to_string())?;
    let root = X509StatementVerifier::new(vendor.root_der().to_vec()).map_err(|e| e.to_string())?;
    let plan = CeremonyPlan {
        fleet_id: name("demo-fleet-1", "fleet id")?,
        namespace: name("backup-key-vault.demo_fleet_keys.v1", "namespace")?,
        time_ms: now,
        not_before_ms: now.saturating_sub(60_000),
        not_after_ms: now.saturating_add(30 * DAY_MS),
        measurement,
        quorum: QuorumPolicy {
            min_hsms: 3,
            min_sites: 2,
        },
        group: None,
    };
    let mut taking_part: Vec<CeremonyHsm<'_>> = hsms
        .iter_mut()
        .map(|(hsm, site)| CeremonyHsm {
            hsm,
            site: site.clone(),
        })
        .collect();
    let operator = OperatorSigningKey::generate(&mut rand::rngs::OsRng);
    let outcome = ceremony::run(
        &plan,
        &mut taking_part,
        &participants,
        &root,
        &mut auditor,
        &operator,
    )
    .map_err(|e| e.to_string())?;
    drop(taking_part);

    // The verifier reads the evidence file, pins the vendor root and the
    // auditor key, and checks the log through the auditor's export.
    let export = auditor
        .export(plan.namespace.as_str())
        .map_err(|e| e.to_string())?;
    let verifier = Verifier::new(
        X509StatementVerifier::from_pem(vendor.root_pem().as_bytes()).map_err(|e| e.to_string())?,
        bkv_deploy::now_ms(),
    )
    .pin_auditor_key(auditor.public_key())
    .expect_measurement(measurement);
    let report = verifier.verify_bytes(
        &outcome.evidence.to_json(),
        Some(&mut ExportLog::new(export)),
    );
    if !report.passed() {
        return Err(format!(
            "the ceremony's evidence does not verify:\n{}",
            report.to_text()
        ));
    }
    // The client trusts the keys the verified artifact lists.
    let keys = backup_key_vault::bundle::FleetKeyArtifact::from_bytes(
        outcome.evidence.fleet_key_artifact.as_bytes(),
    )
    .and_then(|a| a.fleet_public_keys())
    .map_err(|e| e.to_string())?;
    let (hsm, _) = hsms.into_iter().next().ok_or("no HSM")?;
    Ok(DemoFleet {
        hsm,
        keys,
        summary: "3 HSMs, 3 sites, 2 signers".into(),
        report,
    })
}
