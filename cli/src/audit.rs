//! `bkv auditor serve` and `bkv audit verify-namespace` (SPEC.md §18).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backup_key_vault::bundle::ConsistencyProof;
use backup_key_vault::bundle::DEFAULT_NAMESPACE;
use bkv_auditor::export::{
    parse_hex, proofs_from_entries, verify_namespace_with_state, Export, KeyChange, MonitorFailure,
    MonitorState, Pins,
};
use bkv_auditor::http::Server;
use bkv_auditor::Auditor;
use clap::Args;

use crate::exit::{self, Exit, Failure};
use crate::secret::{self, SecretSource};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Directory of the auditor's database (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// Loopback address to listen on, e.g. 127.0.0.1:8080 (port 0 picks
    /// one; the address is printed on the first line).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bearer token that publishing requires (reads are open). Visible to
    /// every local user in the process list: prefer --token-file,
    /// BKV_AUDITOR_TOKEN or the prompt.
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// Read the bearer token from FILE (its first line). Without --token or
    /// --token-file: the environment variable BKV_AUDITOR_TOKEN, else a
    /// prompt on a terminal.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// Runs the auditor's HTTP server until killed.
pub fn serve(args: &ServeArgs) -> ExitCode {
    exit::finish("bkv auditor serve", run_serve(args))
}

fn run_serve(args: &ServeArgs) -> Result<(), Failure> {
    // The bearer token travels in clear (no TLS here): keep it on loopback;
    // a reverse proxy with TLS may forward to it.
    if !args.listen.ip().is_loopback() {
        return Err(Failure::usage(format!(
            "refusing to listen on {}: loopback only (the bearer token is sent in clear); put a TLS proxy in front",
            args.listen
        )));
    }
    let token = secret::read(&SecretSource {
        flag: args.token.as_deref(),
        file: args.token_file.as_deref(),
        env: "BKV_AUDITOR_TOKEN",
        what: "auditor token",
        options: "--token-file FILE",
    })?;
    if token.len() < 16 {
        return Err(Failure::usage(
            "the bearer token must be at least 16 characters",
        ));
    }
    let auditor = Auditor::open(&args.data)
        .map_err(|e| Failure::other(format!("cannot open the auditor's database: {e}")))?;
    let key = auditor.public_key_hex();
    let server = Server::bind(&args.listen.to_string())
        .map_err(|e| Failure::other(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = server
        .local_addr()
        .ok_or_else(|| Failure::other("no local address"))?;
    // The first lines tell a script where the auditor is; a closed stdout
    // does not stop the server.
    let _ = secret::print(&format!("listening on http://{addr}\nauditor key {key}"));
    // SIGINT/SIGTERM: stop accepting, finish the requests in flight.
    let stop = server.shutdown_handle();
    let _ = ctrlc::set_handler(move || stop.shutdown());
    server
        .run(&Arc::new(Mutex::new(auditor)), &token)
        .map_err(|e| Failure::other(format!("auditor on {addr}: {e}")))
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A namespace export file (JSON, from GET /namespaces/{ns}/export), or
    /// the auditor's base URL (http://host:port).
    source: String,
    /// The namespace (with a URL source).
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Pinned auditor key (hex); repeat for several. Without one, the
    /// log's declared key is used (and printed).
    #[arg(long = "auditor-key")]
    auditor_keys: Vec<String>,
    /// Pinned operator counter-signing key (hex); repeat for several.
    #[arg(long = "operator-key")]
    operator_keys: Vec<String>,
    /// Print the report (or the failure) as JSON.
    #[arg(long)]
    json: bool,
    /// A state file (JSON): the newest checkpoint verified and the keys it
    /// was verified under. Read if it exists, so the newest checkpoint must
    /// be consistent with the remembered one (a fork or rewrite between
    /// runs is caught even if the log no longer shows the old checkpoint);
    /// written after a successful run.
    #[arg(long)]
    state: Option<PathBuf>,
}

/// Reads the state file, if there is one.
fn read_state(path: &std::path::Path) -> Result<Option<MonitorState>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("state file {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("state file {}: {e}", path.display())),
    }
}

/// Writes the state file atomically: a temporary file beside it, then a
/// rename, so a crash leaves the old state or the new one.
fn write_state(path: &std::path::Path, state: &MonitorState) -> Result<(), String> {
    let text = serde_json::to_string_pretty(state).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("state file {}: {e}", path.display()))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("GET {url}: {e}"))
}

/// Reports a failure: `exit` is [`Exit::Verification`] when the log did not
/// verify, another code when it could not be checked at all.
fn report_failure(args: &VerifyArgs, failure: &MonitorFailure, exit: Exit) -> ExitCode {
    if args.json {
        let _ = secret::print(
            &serde_json::json!({ "ok": false, "epoch": failure.epoch, "reason": failure.reason })
                .to_string(),
        );
    } else {
        eprintln!("FAILED: {failure}");
    }
    exit.into()
}

/// The monitor: verifies a namespace and prints its key changes.
pub fn verify(args: &VerifyArgs) -> ExitCode {
    let setup = |reason: String| MonitorFailure {
        epoch: None,
        reason,
    };
    let mut pins = Pins::default();
    for (list, out) in [
        (&args.auditor_keys, &mut pins.auditor_keys),
        (&args.operator_keys, &mut pins.operator_keys),
    ] {
        for hex in list {
            match parse_hex::<32>(hex) {
                Some(k) => out.push(k),
                None => return report_failure(args, &setup(format!("bad key {hex}")), Exit::Usage),
            }
        }
    }
    let state = match args.state.as_deref().map(read_state).transpose() {
        Ok(state) => state.flatten(),
        Err(e) => return report_failure(args, &setup(e), Exit::Other),
    };
    if pins.auditor_keys.is_empty() {
        match &state {
            Some(s) => eprintln!(
                "warning: no --auditor-key pinned; using the key the state file remembers, {}",
                s.auditor_key
            ),
            None => eprintln!(
                "warning: no --auditor-key pinned; trusting the key the log declares (pin it with --auditor-key)"
            ),
        }
    }
    if pins.operator_keys.is_empty() {
        eprintln!(
            "warning: no --operator-key pinned; any operator key's counter-signature is accepted (pin them with --operator-key)"
        );
    }
    let state = state.as_ref();
    let result = if args.source.starts_with("http://") || args.source.starts_with("https://") {
        let base = args.source.trim_end_matches('/').to_string();
        let agent = agent();
        let export = get(
            &agent,
            &format!("{base}/namespaces/{}/export", args.namespace),
        )
        .and_then(|text| serde_json::from_str::<Export>(&text).map_err(|e| e.to_string()));
        match export {
            Err(e) => Err((setup(e), Exit::Unavailable)),
            Ok(export) => {
                // Consistency proofs come from the auditor itself.
                let mut from_auditor = |old: u64, new: u64| -> Result<ConsistencyProof, String> {
                    let text = get(
                        &agent,
                        &format!(
                            "{base}/namespaces/{}/consistency?old={old}&new={new}",
                            args.namespace
                        ),
                    )?;
                    let value: serde_json::Value =
                        serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    let hashes = value
                        .get("hashes")
                        .and_then(|h| h.as_array())
                        .ok_or("no hashes")?
                        .iter()
                        .map(|h| h.as_str().and_then(parse_hex::<32>).ok_or("bad hash"))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(ConsistencyProof { hashes })
                };
                verify_namespace_with_state(&export, &pins, &mut from_auditor, state)
                    .map_err(|f| (f, Exit::Verification))
            }
        }
    } else {
        match std::fs::read_to_string(&args.source)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Export>(&t).map_err(|e| e.to_string()))
        {
            Err(e) => Err((setup(format!("{}: {e}", args.source)), Exit::Other)),
            Ok(export) => verify_namespace_with_state(
                &export,
                &pins,
                &mut proofs_from_entries(&export),
                state,
            )
            .map_err(|f| (f, Exit::Verification)),
        }
    };
    let (report, next_state) = match result {
        Ok(r) => r,
        Err((failure, exit)) => return report_failure(args, &failure, exit),
    };
    if let Some(path) = &args.state {
        if let Err(e) = write_state(path, &next_state) {
            return report_failure(args, &setup(e), Exit::Other);
        }
    }
    if args.json {
        match serde_json::to_string(&report) {
            Ok(text) => {
                let _ = secret::print(&format!("{{\"ok\":true,\"report\":{text}}}"));
            }
            Err(e) => return report_failure(args, &setup(e.to_string()), Exit::Other),
        }
        return ExitCode::SUCCESS;
    }
    let mut text = format!(
        "namespace {}: {} entries, {} checkpoints, {} checkpoint pairs consistent\n",
        report.namespace, report.log_size, report.checkpoints, report.consistent_pairs
    );
    text.push_str(&format!("auditor key {}\n", report.auditor_key));
    if let Some(size) = report.remembered_size {
        text.push_str(&format!(
            "consistent with the checkpoint of size {size} the last run verified\n"
        ));
        for key in &report.new_operator_keys {
            text.push_str(&format!("operator key {key} (not seen by the last run)\n"));
        }
    }
    for epoch in &report.epochs {
        text.push_str(&format!(
            "epoch {}: fleet {}, digest {} (signed, counter-signed, in the log)\n",
            epoch.epoch, epoch.fleet_id, epoch.digest
        ));
        for change in &epoch.changes {
            text.push_str(&match change {
                KeyChange::Added { role, key } => format!("  + {role} {key}\n"),
                KeyChange::Removed { role, key } => format!("  - {role} {key}\n"),
                KeyChange::RoleChanged { key, from, to } => format!("  ~ {key}: {from} -> {to}\n"),
            });
        }
        if epoch.changes.is_empty() {
            text.push_str("  (no key changes)\n");
        }
    }
    text.push_str("OK");
    // The verdict is the exit status; a closed stdout (`| head`) is no panic.
    let _ = secret::print(&text);
    ExitCode::SUCCESS
}
