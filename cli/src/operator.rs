//! `bkv operator publish` and `bkv operator install`: the operator's side of
//! fleet keys over the air (SPEC.md §18.2, §23, §31.1 steps 8–9).
//!
//! `publish` takes a ceremony that has not been published (`bkv fleet
//! ceremony --auditor URL` wrote its `ceremony.json`) and runs the
//! ceremony's last steps (`ceremony::complete`) with the auditor over HTTP
//! as the publisher ([`HttpPublisher`]): it submits the
//! artifact to the auditor, verifies the auditor's statement signature
//! under the pinned auditor key, counter-signs it with the operator key
//! (opened inside the ceremony's simulated HSM), sends the
//! counter-signature, fetches the bundle (inclusion proof and checkpoint),
//! verifies it as a client would, writes the evidence and installs the
//! bundle on every node. Each step that fails stops the command, says
//! what was done and what was not, and names the next step; nothing is
//! counter-signed unless the auditor's signature verified, and nothing is
//! installed unless the whole bundle did.
//!
//! `install` hands a logged, counter-signed bundle (from the auditor, or a
//! file) to nodes: for a node that was restarted with a wiped disk, or
//! replaced.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::ed25519::verify_strict;
use backup_key_vault::bundle::{
    artifact_digest, CounterSignature, EncodedBundle, FleetKeyArtifact, OperatorSigningKey,
    SignatureMessage, TrustAnchors, ValidationBundle, VerifiedFleet,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bkv_deploy::ceremony::{self, Publisher};
use bkv_deploy::evidence::{parse_hex, PendingCeremony, Transcript};
use bkv_fleet::net::unix_ms;
use clap::Args;
use serde_json::json;

use crate::exit::{self, Exit, Failure};
use crate::ota::{key32, PinArgs};
use crate::secret::{self, SecretSource};

/// Where the bundle goes: the nodes' client URLs.
#[derive(Args, Debug)]
pub struct NodeTargets {
    /// A node's client URL (http://HOST:PORT); repeat for every node.
    #[arg(long = "endpoint", value_name = "URL")]
    endpoints: Vec<String>,
    /// A fleet directory whose `endpoints` file lists the nodes (not with
    /// --endpoint, which would replace its list).
    #[arg(long, value_name = "DIR", conflicts_with = "endpoints")]
    fleet: Option<PathBuf>,
}

impl NodeTargets {
    fn list(&self) -> Result<Vec<String>, Failure> {
        match (&self.fleet, self.endpoints.is_empty()) {
            (None, true) => Ok(Vec::new()),
            (Some(dir), _) => crate::fleet_node::endpoints(dir, &self.endpoints),
            (None, false) => crate::fleet_node::endpoints(Path::new("."), &self.endpoints),
        }
    }
}

/// `bkv operator publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The ceremony directory (`bkv fleet ceremony --auditor URL --out
    /// DIR`): its `ceremony.json`, sealed operator key and HSMs.
    #[arg(long, value_name = "DIR")]
    ceremony: PathBuf,
    /// The HSM that holds the operator key (default: the ceremony's first).
    #[arg(long, value_name = "ID")]
    hsm: Option<String>,
    /// The auditor's base URL (http://127.0.0.1:PORT).
    #[arg(long, value_name = "URL")]
    auditor: String,
    /// The auditor's public key (hex): its signatures must verify under it.
    #[arg(long = "auditor-key", value_name = "HEX")]
    auditor_key: String,
    /// Read the auditor's bearer token from FILE (its first line); else
    /// BKV_AUDITOR_TOKEN, else a prompt on a terminal.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Install the bundle on these nodes once it is published.
    #[command(flatten)]
    nodes: NodeTargets,
}

/// `bkv operator install`.
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The bundle to install: a file of its bytes (the ceremony
    /// directory's `bundle`). Or --auditor.
    #[arg(long, value_name = "FILE", conflicts_with = "auditor")]
    bundle: Option<PathBuf>,
    /// Fetch the bundle from the auditor at this base URL.
    #[arg(long, value_name = "URL", required_unless_present = "bundle")]
    auditor: Option<String>,
    /// With --auditor: the epoch (default: the namespace's latest). A
    /// bundle file names its own epoch.
    #[arg(long, conflicts_with = "bundle")]
    epoch: Option<u64>,
    /// The keys the bundle must verify under before any node sees it.
    #[command(flatten)]
    pins: PinArgs,
    /// The nodes.
    #[command(flatten)]
    nodes: NodeTargets,
}

/// An HTTP client of the auditor (SPEC.md §18.2).
struct AuditorClient {
    base: String,
    agent: ureq::Agent,
    token: Option<zeroize::Zeroizing<String>>,
}

impl AuditorClient {
    fn new(base: &str, token: Option<zeroize::Zeroizing<String>>) -> Result<Self, Failure> {
        if base.starts_with("https://") {
            // This build has no TLS client: say so instead of failing later
            // as if the auditor were down.
            return Err(Failure::usage(format!(
                "--auditor {base:?}: this bkv speaks plain HTTP only; reach the auditor on \
                 loopback (http://127.0.0.1:PORT, where `bkv auditor serve` listens), e.g. \
                 through an SSH tunnel or on the auditor's host"
            )));
        }
        if !base.starts_with("http://") {
            return Err(Failure::usage(format!(
                "--auditor {base:?}: expected the auditor's base URL, http://HOST:PORT"
            )));
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .into(),
            token,
        })
    }

    fn answer(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, serde_json::Value), Failure> {
        let mut response = response.map_err(|e| {
            Failure::new(
                Exit::Unavailable,
                format!(
                    "{what} {}: {e}; is `bkv auditor serve` running there?",
                    self.base
                ),
            )
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::other(format!("{what} {}: {e}", self.base)))?;
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        // A server error is the auditor's own trouble (its disk, say), not
        // an answer about what was asked: nothing can be concluded from it,
        // and the same request may succeed later.
        if (500..600).contains(&status) {
            return Err(Failure::new(
                Exit::Unavailable,
                format!(
                    "{what} {} answered {status} ({}): the auditor failed on its side;                      see its log, then retry",
                    self.base,
                    error_text(&value)
                ),
            ));
        }
        Ok((status, value))
    }

    fn get(&self, path: &str) -> Result<(u16, serde_json::Value), Failure> {
        let url = format!("{}{path}", self.base);
        self.answer(&format!("GET {path} at"), self.agent.get(&url).call())
    }

    fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(token) = &self.token {
            let header = zeroize::Zeroizing::new(format!("Bearer {}", token.as_str()));
            request = request.header("Authorization", header.as_str());
        }
        self.answer(&format!("POST {path} at"), request.send(body.to_string()))
    }

    /// A logged epoch's bundle (with its stored counter-signature, if any).
    fn bundle(&self, ns: &str, epoch: u64) -> Result<ValidationBundle, Failure> {
        let (status, value) = self.get(&format!("/namespaces/{ns}/audits/{epoch}/bundle"))?;
        if status == 404 {
            return Err(Failure::other(format!(
                "the auditor at {} has not logged epoch {epoch} of {ns}: publish it first with \
                 `bkv operator publish`; nothing was installed",
                self.base
            )));
        }
        if status != 200 {
            return Err(Failure::other(format!(
                "the auditor at {} answered {status} for the bundle of epoch {epoch}: {}",
                self.base,
                error_text(&value)
            )));
        }
        let bytes = value
            .get("bundle")
            .and_then(|b| b.as_str())
            .and_then(|b| B64.decode(b).ok())
            .ok_or_else(|| Failure::other("the auditor's answer carries no bundle"))?;
        ValidationBundle::from_bytes(&bytes).map_err(|e| {
            Failure::new(
                Exit::Verification,
                format!("the auditor's bundle does not decode: {e}"),
            )
        })
    }
}

fn error_text(value: &serde_json::Value) -> String {
    value
        .get("error")
        .and_then(|e| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string())
}

fn say(line: &str) {
    let _ = secret::print(line);
}

/// Reads a ceremony's transcript: from its evidence, or from its pending
/// `ceremony.json`.
pub fn ceremony_transcript(dir: &Path) -> Result<Transcript, Failure> {
    let evidence = dir.join("evidence.json");
    if let Ok(bytes) = std::fs::read(&evidence) {
        return bkv_deploy::evidence::Evidence::from_json(&bytes)
            .map(|e| e.transcript)
            .map_err(|e| Failure::other(format!("{}: {e}", evidence.display())));
    }
    Ok(read_pending(dir)?.transcript)
}

fn read_pending(dir: &Path) -> Result<PendingCeremony, Failure> {
    let path = dir.join("ceremony.json");
    let bytes = std::fs::read(&path).map_err(|e| {
        Failure::other(format!(
            "cannot read {}: {e}; `bkv fleet ceremony --auditor URL --out {}` writes it",
            path.display(),
            dir.display()
        ))
    })?;
    PendingCeremony::from_json(&bytes)
        .map_err(|e| Failure::other(format!("{}: {e}", path.display())))
}

/// Opens the operator key sealed to `hsm` (default: the transcript's
/// first HSM) at the ceremony in `dir`, inside that simulated HSM; refuses
/// a key that is not the one the transcript records.
pub fn open_operator_key(
    dir: &Path,
    transcript: &Transcript,
    hsm: Option<&str>,
) -> Result<OperatorSigningKey, Failure> {
    let id = match hsm {
        Some(id) => id.to_string(),
        None => transcript
            .hsms
            .first()
            .map(|h| h.id.as_str().to_string())
            .ok_or_else(|| Failure::other("the transcript lists no HSM"))?,
    };
    let state = dir.join("hsms").join(format!("{id}.json"));
    let device = bkv_deploy::sim::SimulatedHsm::load(&state)
        .map_err(|e| Failure::other(format!("HSM {id} ({}): {e}", state.display())))?;
    let sealed_path = dir.join("sealed").join(format!("{id}.operator"));
    let sealed = std::fs::read(&sealed_path)
        .map_err(|e| Failure::other(format!("cannot read {}: {e}", sealed_path.display())))?;
    let key = device
        .open_operator_key(&sealed, &transcript.digest())
        .map_err(|e| Failure::other(format!("{}: {e}", sealed_path.display())))?;
    if key.public_key() != transcript.operator_key.0 {
        return Err(Failure::new(
            Exit::Verification,
            format!(
                "{} holds operator key {}, not the key the transcript records ({})",
                sealed_path.display(),
                to_hex(&key.public_key()),
                to_hex(&transcript.operator_key.0)
            ),
        ));
    }
    Ok(key)
}

/// Installs `bundle` on every node; reports each and fails if any refused
/// or could not be reached.
fn install_on(nodes: &[String], bundle: &EncodedBundle) -> Result<(), Failure> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut failures = Vec::new();
    // Whether some node answered and refused (exit 1), rather than every
    // failure being a node that could not be reached (exit 5: retry).
    let mut refused = false;
    for node in nodes {
        let url = format!("{}/v1/bundle", node.trim_end_matches('/'));
        match agent.post(&url).send(bundle.as_bytes()) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                if status == 200 {
                    say(&format!("  {node}: {}", text.trim()));
                } else {
                    // 503: the node is busy or its loop did not answer;
                    // a retry may succeed. Anything else is a refusal.
                    refused |= status != 503;
                    failures.push(format!("{node}: {status} {}", text.trim()));
                }
            }
            Err(e) => failures.push(format!("{node}: unreachable ({e})")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        let exit = if refused {
            Exit::Other
        } else {
            Exit::Unavailable
        };
        let others = if failures.len() == nodes.len() {
            ""
        } else {
            "the others did; "
        };
        Err(Failure::new(
            exit,
            format!(
                "{} of {} nodes did not install the bundle:\n  {}\n{others}once the cause is \
                 fixed, run `bkv operator install` for these nodes",
                failures.len(),
                nodes.len(),
                failures.join("\n  ")
            ),
        ))
    }
}

/// Runs `bkv operator publish`.
pub fn publish(args: &PublishArgs) -> ExitCode {
    exit::finish("bkv operator publish", run_publish(args))
}

fn run_publish(args: &PublishArgs) -> Result<(), Failure> {
    let auditor_key = key32(&args.auditor_key, "--auditor-key")?;
    let nodes = args.nodes.list()?;
    let pending = read_pending(&args.ceremony)?;
    let transcript = pending.transcript.clone();
    let operator = open_operator_key(&args.ceremony, &transcript, args.hsm.as_deref())?;
    let ns = transcript.namespace.as_str().to_string();
    let epoch = transcript.epoch;
    let artifact = pending.fleet_key_artifact.as_bytes().to_vec();
    let digest = artifact_digest(&artifact);
    let public_keys = FleetKeyArtifact::from_bytes(&artifact)
        .and_then(|a| a.fleet_public_keys())
        .ok()
        .filter(|_| digest == transcript.artifact_digest.0)
        .ok_or_else(|| {
            Failure::new(
                Exit::Verification,
                format!(
                    "{}: the artifact is not the one the transcript records",
                    args.ceremony.join("ceremony.json").display()
                ),
            )
        })?;
    let token = secret::read(&SecretSource {
        flag: None,
        file: args.token_file.as_deref(),
        env: "BKV_AUDITOR_TOKEN",
        what: "auditor token",
        options: "--token-file FILE",
    })?;
    let mut publisher = HttpPublisher {
        auditor: AuditorClient::new(&args.auditor, Some(token))?,
        auditor_key,
        exit: Exit::Other,
    };
    say(&format!(
        "publishing fleet {} (epoch {epoch} of {ns}, artifact digest {})",
        transcript.fleet_id,
        to_hex(&digest)
    ));

    // Steps 8 and 9 of the ceremony (SPEC.md §31.1), as `bkv fleet
    // ceremony` runs them with an in-process auditor: the auditor logs the
    // artifact (the publisher checks its signature under the pinned key),
    // the operator key counter-signs, the evidence is assembled.
    let prepared = ceremony::PreparedCeremony {
        pending,
        sealed: Vec::new(),
        sealed_operator: Vec::new(),
        public_keys,
    };
    let outcome = ceremony::complete(prepared, &mut publisher, &operator).map_err(|e| {
        let message = match e {
            ceremony::CeremonyError::Publish(why) => why,
            other => other.to_string(),
        };
        Failure::new(publisher.exit, message)
    })?;
    say(&format!(
        "  counter-signed with operator key {}…",
        &to_hex(&operator.public_key())[..16]
    ));

    // The bundle as a client verifies it.
    let bundle = outcome.bundle;
    let anchors = TrustAnchors::new(&[auditor_key], &[operator.public_key()]).with_namespace(&ns);
    let fleet = verify_bundle(&anchors, &bundle)?;
    if bundle.artifact != artifact {
        return Err(Failure::new(
            Exit::Verification,
            "the auditor's bundle carries another artifact than the ceremony's; nothing was installed",
        ));
    }
    let encoded =
        EncodedBundle::new(bundle.clone()).map_err(|e| Failure::other(format!("bundle: {e}")))?;
    say(&format!(
        "  bundle verified: entry {} under the checkpoint of size {}",
        bundle.inclusion.leaf_index,
        fleet.checkpoint().tree_size
    ));

    // The evidence, and the bundle beside it.
    let evidence_path = args.ceremony.join("evidence.json");
    let bundle_path = args.ceremony.join("bundle");
    write_replacing(&evidence_path, &outcome.evidence.to_json())?;
    write_replacing(&bundle_path, encoded.as_bytes())?;
    say(&format!("evidence:    {}", evidence_path.display()));
    say(&format!("bundle:      {}", bundle_path.display()));

    // Every node.
    if nodes.is_empty() {
        say("no --endpoint or --fleet given: install it with `bkv operator install`");
        return Ok(());
    }
    say(&format!("installing on {} nodes:", nodes.len()));
    install_on(&nodes, &encoded)
}

/// The auditor over HTTP as the ceremony's [`Publisher`]: it checks the
/// auditor's declared key and its signature under the pinned key before
/// the operator key signs anything, and picks up a publication that an
/// earlier run left half done. `exit` is the exit code of its last failure.
struct HttpPublisher {
    auditor: AuditorClient,
    auditor_key: [u8; 32],
    exit: Exit,
}

impl HttpPublisher {
    fn fail(&mut self, exit: Exit, message: String) -> String {
        self.exit = exit;
        message
    }

    fn call(
        &mut self,
        answer: Result<(u16, serde_json::Value), Failure>,
    ) -> Result<(u16, serde_json::Value), String> {
        answer.map_err(|f| self.fail(f.exit, f.message))
    }
}

impl Publisher for HttpPublisher {
    fn next_epoch(&mut self, namespace: &str) -> Result<u64, String> {
        next_epoch(&self.auditor.base, namespace).map_err(|f| self.fail(f.exit, f.message))
    }

    fn publish(
        &mut self,
        ns: &str,
        epoch: u64,
        artifact: &[u8],
    ) -> Result<ValidationBundle, String> {
        let auditor_key = self.auditor_key;
        let digest = artifact_digest(artifact);
        let base = self.auditor.base.clone();

        // The auditor must be the pinned one before anything is sent to it.
        let (status, info) = self.call(self.auditor.get("/info"))?;
        let declared = info
            .get("public_key")
            .and_then(|k| k.as_str())
            .and_then(parse_hex::<32>);
        if status != 200 || declared != Some(auditor_key) {
            return Err(self.fail(
                Exit::Verification,
                format!(
                    "the auditor at {base} signs with key {}, not the pinned --auditor-key {}: \
                     nothing was submitted, counter-signed or installed",
                    declared
                        .map(|k| to_hex(&k))
                        .unwrap_or_else(|| "(none)".into()),
                    to_hex(&auditor_key)
                ),
            ));
        }

        // The namespace: a new one is registered with this artifact as its
        // root (SPEC.md §15.2).
        let (status, value) = self.call(self.auditor.get(&format!("/namespaces/{ns}")))?;
        match status {
            200 => {}
            404 => {
                let body = json!({"name": ns, "root_epoch": epoch, "root_digest": to_hex(&digest)});
                let (status, value) = self.call(self.auditor.post("/namespaces", &body))?;
                if status != 201 {
                    return Err(self.fail(
                        Exit::Other,
                        format!(
                            "the auditor refused to register namespace {ns} ({status}: {}); \
                             nothing was published",
                            error_text(&value)
                        ),
                    ));
                }
                say(&format!(
                    "  registered namespace {ns} with root epoch {epoch}"
                ));
            }
            _ => {
                return Err(self.fail(
                    Exit::Other,
                    format!(
                        "the auditor answered {status} for namespace {ns}: {}",
                        error_text(&value)
                    ),
                ))
            }
        }

        // The statement: submitted unless this artifact is already logged
        // at this epoch (a publish run again after a failure).
        let (status, existing) = self.call(
            self.auditor
                .get(&format!("/namespaces/{ns}/audits/{epoch}")),
        )?;
        let statement = match status {
            200 => {
                let logged = existing
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .and_then(parse_hex::<32>);
                if logged != Some(digest) {
                    return Err(self.fail(
                        Exit::Verification,
                        format!(
                            "the auditor logged another artifact at epoch {epoch} of {ns} \
                             (digest {}), not this ceremony's ({}): nothing was counter-signed \
                             or installed; run the ceremony again for the next epoch",
                            logged.map(|d| to_hex(&d)).unwrap_or_default(),
                            to_hex(&digest)
                        ),
                    ));
                }
                say(&format!(
                    "  epoch {epoch} was already logged with this artifact"
                ));
                existing
            }
            404 => {
                let text = String::from_utf8_lossy(artifact).into_owned();
                let body = json!({"epoch": epoch, "artifact": text, "digest": to_hex(&digest)});
                let (status, value) = self.call(
                    self.auditor
                        .post(&format!("/namespaces/{ns}/audits"), &body),
                )?;
                if status != 200 {
                    return Err(self.fail(
                        Exit::Other,
                        format!(
                            "the auditor refused to log the artifact at epoch {epoch} of {ns} \
                             ({status}: {}); nothing was counter-signed or installed",
                            error_text(&value)
                        ),
                    ));
                }
                say(&format!("  the auditor logged epoch {epoch}"));
                value
            }
            _ => {
                return Err(self.fail(
                    Exit::Other,
                    format!(
                        "the auditor answered {status} for epoch {epoch}: {}",
                        error_text(&existing)
                    ),
                ))
            }
        };

        // The auditor's signature over the statement, under the pinned key:
        // only then may the operator key sign anything.
        let signature = statement
            .get("signature")
            .and_then(|s| s.as_str())
            .and_then(parse_hex::<64>);
        let timestamp = statement.get("timestamp_ms").and_then(|t| t.as_u64());
        let (Some(signature), Some(timestamp_ms)) = (signature, timestamp) else {
            return Err(self.fail(
                Exit::Other,
                "the auditor's statement has no signature or timestamp; nothing was \
                 counter-signed"
                    .into(),
            ));
        };
        let message = SignatureMessage {
            namespace: ns,
            timestamp_ms,
            epoch,
            digest,
        };
        if !verify_strict(&auditor_key, &message.to_bytes(), &signature) {
            return Err(self.fail(
                Exit::Verification,
                format!(
                    "the auditor's signature on epoch {epoch} does not verify under the pinned \
                     auditor key {}: is --auditor-key this auditor's (`GET {base}/info`)? \
                     Nothing was counter-signed or installed",
                    to_hex(&auditor_key)
                ),
            ));
        }
        say(&format!(
            "  the auditor's signature verifies under {}…",
            &to_hex(&auditor_key)[..16]
        ));
        // The bundle (inclusion proof, latest checkpoint) of this very
        // statement.
        let bundle = self
            .auditor
            .bundle(ns, epoch)
            .map_err(|f| self.fail(f.exit, f.message))?;
        if bundle.auditor_signature != signature || bundle.digest != digest {
            return Err(self.fail(
                Exit::Verification,
                format!(
                    "the auditor's bundle for epoch {epoch} is not the statement it signed; \
                     nothing was counter-signed or installed"
                ),
            ));
        }
        Ok(bundle)
    }

    fn counter_sign(
        &mut self,
        ns: &str,
        epoch: u64,
        counter: CounterSignature,
    ) -> Result<(), String> {
        let body = json!({
            "operator_key": to_hex(&counter.operator_key),
            "signature": to_hex(&counter.signature),
        });
        let (status, value) = self.call(self.auditor.post(
            &format!("/namespaces/{ns}/audits/{epoch}/counter-signature"),
            &body,
        ))?;
        if status != 200 {
            return Err(self.fail(
                Exit::Other,
                format!(
                    "the auditor refused the counter-signature ({status}: {}); nothing was \
                     installed",
                    error_text(&value)
                ),
            ));
        }
        Ok(())
    }
}

fn verify_bundle(
    anchors: &TrustAnchors,
    bundle: &ValidationBundle,
) -> Result<VerifiedFleet, Failure> {
    anchors
        .verify(bundle, unix_ms(), None)
        .map_err(|e| crate::ota::bundle_refused("the auditor", &e, "nothing was installed"))
}

/// Replaces `path` atomically (a temporary file, synced, renamed).
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| Failure::other(format!("cannot write {}: {e}", path.display()));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Runs `bkv operator install`.
pub fn install(args: &InstallArgs) -> ExitCode {
    exit::finish("bkv operator install", run_install(args))
}

fn run_install(args: &InstallArgs) -> Result<(), Failure> {
    let anchors = args.pins.anchors()?.ok_or_else(|| {
        Failure::usage(
            "give --auditor-key and --operator-key: the bundle is verified under them before any \
             node sees it",
        )
    })?;
    let nodes = args.nodes.list()?;
    if nodes.is_empty() {
        return Err(Failure::usage(
            "no node: give --endpoint URL (repeat) or --fleet DIR",
        ));
    }
    let bundle = match (&args.bundle, &args.auditor) {
        (Some(path), _) => {
            let bytes = std::fs::read(path)
                .map_err(|e| Failure::other(format!("cannot read {}: {e}", path.display())))?;
            ValidationBundle::from_bytes(&bytes).map_err(|e| {
                Failure::new(
                    Exit::Verification,
                    format!("{}: not a validation bundle: {e}", path.display()),
                )
            })?
        }
        (None, Some(url)) => {
            let auditor = AuditorClient::new(url, None)?;
            let ns = anchors.namespace();
            let epoch = match args.epoch {
                Some(e) => e,
                None => {
                    let (status, value) = auditor.get(&format!("/namespaces/{ns}"))?;
                    if status != 200 {
                        return Err(Failure::other(format!(
                            "the auditor at {url} answered {status} for namespace {ns}: {}; \
                             nothing was installed",
                            error_text(&value)
                        )));
                    }
                    value
                        .get("latest_epoch")
                        .and_then(|e| e.as_u64())
                        .ok_or_else(|| {
                            Failure::other(format!(
                                "namespace {ns} at {url} has no epoch logged yet: publish one \
                                 with `bkv operator publish`; nothing was installed"
                            ))
                        })?
                }
            };
            auditor.bundle(ns, epoch)?
        }
        (None, None) => return Err(Failure::usage("give --bundle FILE or --auditor URL")),
    };
    let fleet = anchors
        .verify(&bundle, unix_ms(), None)
        .map_err(|e| crate::ota::bundle_refused("the bundle given", &e, "nothing was installed"))?;
    let encoded = EncodedBundle::new(bundle).map_err(|e| Failure::other(format!("bundle: {e}")))?;
    say(&format!(
        "installing fleet {} (epoch {} of {}) on {} nodes:",
        fleet.artifact().fleet_id,
        fleet.epoch_to_store(),
        anchors.namespace(),
        nodes.len()
    ));
    install_on(&nodes, &encoded)
}

/// The epoch the next artifact of `ns` gets at the auditor at `url`: 1
/// for a namespace it does not know (it becomes the root), else the
/// latest plus one.
pub fn next_epoch(url: &str, ns: &str) -> Result<u64, Failure> {
    let auditor = AuditorClient::new(url, None)?;
    let (status, value) = auditor.get(&format!("/namespaces/{ns}"))?;
    match status {
        404 => Ok(1),
        200 => match value.get("latest_epoch").and_then(|e| e.as_u64()) {
            Some(latest) => latest.checked_add(1).ok_or_else(|| {
                Failure::other(format!("namespace {ns} at {url} has no epoch left"))
            }),
            None => value
                .get("root_epoch")
                .and_then(|e| e.as_u64())
                .ok_or_else(|| {
                    Failure::other(format!("the auditor at {url}: no root epoch for {ns}"))
                }),
        },
        _ => Err(Failure::other(format!(
            "the auditor at {url} answered {status} for namespace {ns}: {}",
            error_text(&value)
        ))),
    }
}
