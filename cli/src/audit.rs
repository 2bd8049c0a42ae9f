//! `bkv auditor serve` and `bkv audit verify-namespace` (SPEC.md §18).

use std::io::Write;
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

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Directory of the auditor's database (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// Loopback address to listen on, e.g. 127.0.0.1:8080 (port 0 picks
    /// one; the address is printed on the first line).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bearer token that publishing requires (reads are open).
    #[arg(long)]
    token: String,
}

/// Runs the auditor's HTTP server until killed.
pub fn serve(args: &ServeArgs) -> ExitCode {
    if !args.listen.ip().is_loopback() {
        eprintln!("refusing to listen on {}: loopback only", args.listen);
        return ExitCode::FAILURE;
    }
    if args.token.len() < 16 {
        eprintln!("the bearer token must be at least 16 characters");
        return ExitCode::FAILURE;
    }
    let auditor = match Auditor::open(&args.data) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot open the auditor's database: {e}");
            return ExitCode::FAILURE;
        }
    };
    let key = auditor.public_key_hex();
    let server = match Server::bind(&args.listen.to_string()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let Some(addr) = server.local_addr() else {
        eprintln!("no local address");
        return ExitCode::FAILURE;
    };
    println!("listening on http://{addr}");
    println!("auditor key {key}");
    let _ = std::io::stdout().flush();
    server.run(&Arc::new(Mutex::new(auditor)), &args.token);
    ExitCode::SUCCESS
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

fn report_failure(args: &VerifyArgs, failure: &MonitorFailure) -> ExitCode {
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "ok": false, "epoch": failure.epoch, "reason": failure.reason })
        );
    } else {
        eprintln!("FAILED: {failure}");
    }
    ExitCode::FAILURE
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
                None => return report_failure(args, &setup(format!("bad key {hex}"))),
            }
        }
    }
    let state = match args.state.as_deref().map(read_state).transpose() {
        Ok(state) => state.flatten(),
        Err(e) => return report_failure(args, &setup(e)),
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
            Err(e) => Err(setup(e)),
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
            }
        }
    } else {
        match std::fs::read_to_string(&args.source)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Export>(&t).map_err(|e| e.to_string()))
        {
            Err(e) => Err(setup(format!("{}: {e}", args.source))),
            Ok(export) => verify_namespace_with_state(
                &export,
                &pins,
                &mut proofs_from_entries(&export),
                state,
            ),
        }
    };
    let (report, next_state) = match result {
        Ok(r) => r,
        Err(failure) => return report_failure(args, &failure),
    };
    if let Some(path) = &args.state {
        if let Err(e) = write_state(path, &next_state) {
            return report_failure(args, &setup(e));
        }
    }
    if args.json {
        match serde_json::to_string(&report) {
            Ok(text) => println!("{{\"ok\":true,\"report\":{text}}}"),
            Err(e) => return report_failure(args, &setup(e.to_string())),
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "namespace {}: {} entries, {} checkpoints, {} checkpoint pairs consistent",
        report.namespace, report.log_size, report.checkpoints, report.consistent_pairs
    );
    println!("auditor key {}", report.auditor_key);
    if let Some(size) = report.remembered_size {
        println!("consistent with the checkpoint of size {size} the last run verified");
    }
    if report.remembered_size.is_some() {
        for key in &report.new_operator_keys {
            println!("operator key {key} (not seen by the last run)");
        }
    }
    for epoch in &report.epochs {
        println!(
            "epoch {}: fleet {}, digest {} (signed, counter-signed, in the log)",
            epoch.epoch, epoch.fleet_id, epoch.digest
        );
        for change in &epoch.changes {
            match change {
                KeyChange::Added { role, key } => println!("  + {role} {key}"),
                KeyChange::Removed { role, key } => println!("  - {role} {key}"),
                KeyChange::RoleChanged { key, from, to } => println!("  ~ {key}: {from} -> {to}"),
            }
        }
        if epoch.changes.is_empty() {
            println!("  (no key changes)");
        }
    }
    println!("OK");
    ExitCode::SUCCESS
}
