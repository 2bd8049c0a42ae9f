//! `bkv auditor serve` and `bkv audit verify-namespace`, end to end: a real
//! server process on loopback, three epochs published over HTTP, the
//! monitor run against it; and the monitor catching a forked log and a
//! rewritten entry in export files.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::{
    artifact_digest, FleetKeyArtifact, OperatorSigningKey, ValidationBundle, DEFAULT_NAMESPACE,
};
use backup_key_vault::FleetPublicKeys;
use base64::Engine as _;
use bkv_auditor::Auditor;

const BKV: &str = env!("CARGO_BIN_EXE_bkv");
const NS: &str = DEFAULT_NAMESPACE;
const TOKEN: &str = "test-token-0123456789";

/// Kills the server when the test ends, however it ends.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artifact(epoch: u64, n: u8) -> String {
    let keys = FleetPublicKeys {
        key_exchange: [n; 32],
        transport: backup_key_vault::fleet::TransportPublicKey([n ^ 0xff; 1216]),
    };
    let bytes = FleetKeyArtifact::for_fleet(NS, "fleet", epoch, &keys, 0, u64::MAX)
        .to_bytes()
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    auth: Option<&str>,
    body: serde_json::Value,
) -> (u16, String) {
    let mut req = agent.post(url).header("Content-Type", "application/json");
    if let Some(token) = auth {
        req = req.header("Authorization", &format!("Bearer {token}"));
    }
    let mut resp = req.send(body.to_string()).unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

fn bkv(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BKV).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn loopback_auditor_three_epochs_and_the_monitor() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(BKV)
        .args([
            "auditor",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--data",
        ])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = ServerProcess(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.strip_prefix("listening on ").unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let auditor_key = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("auditor key ")
        .unwrap()
        .to_string();

    let agent = agent();
    let operator = OperatorSigningKey::from_bytes(&[42; 32]);
    let root = artifact(1, 1);
    let (status, _) = post(
        &agent,
        &format!("{base}/namespaces"),
        Some(TOKEN),
        serde_json::json!({
            "name": NS,
            "root_epoch": 1,
            "root_digest": to_hex(&artifact_digest(root.as_bytes())),
        }),
    );
    assert_eq!(status, 201);
    // Publishing without the token is refused.
    let (status, _) = post(
        &agent,
        &format!("{base}/namespaces/{NS}/audits"),
        None,
        serde_json::json!({ "epoch": 1, "artifact": root }),
    );
    assert_eq!(status, 401);
    for epoch in 1..=3u64 {
        let (status, body) = post(
            &agent,
            &format!("{base}/namespaces/{NS}/audits"),
            Some(TOKEN),
            serde_json::json!({ "epoch": epoch, "artifact": artifact(epoch, epoch as u8) }),
        );
        assert_eq!(status, 200, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value["bundle"].as_str().unwrap())
            .unwrap();
        let mut bundle = ValidationBundle::from_bytes(&bytes).unwrap();
        bundle.countersign(&operator);
        let counter = bundle.counter_signature.unwrap();
        let (status, body) = post(
            &agent,
            &format!("{base}/namespaces/{NS}/audits/{epoch}/counter-signature"),
            Some(TOKEN),
            serde_json::json!({
                "operator_key": to_hex(&counter.operator_key),
                "signature": to_hex(&counter.signature),
            }),
        );
        assert_eq!(status, 200, "{body}");
    }
    // A skipped epoch over HTTP.
    let (status, _) = post(
        &agent,
        &format!("{base}/namespaces/{NS}/audits"),
        Some(TOKEN),
        serde_json::json!({ "epoch": 5, "artifact": artifact(5, 5) }),
    );
    assert_eq!(status, 422);

    let operator_key = to_hex(&operator.public_key());
    let (ok, out, err) = bkv(&[
        "audit",
        "verify-namespace",
        &base,
        "--json",
        "--auditor-key",
        &auditor_key,
        "--operator-key",
        &operator_key,
    ]);
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["report"]["log_size"], 3);
    assert_eq!(report["report"]["consistent_pairs"], 2);
    assert_eq!(report["report"]["epochs"].as_array().unwrap().len(), 3);
    let (ok, out, _) = bkv(&["audit", "verify-namespace", &base]);
    assert!(ok);
    assert!(out.contains("epoch 3: fleet fleet"), "{out}");
    assert!(out.contains("  - opaque_key_exchange"), "{out}");
    // A pin the log does not match fails.
    let (ok, _, err) = bkv(&[
        "audit",
        "verify-namespace",
        &base,
        "--operator-key",
        &to_hex(&[7; 32]),
    ]);
    assert!(!ok);
    assert!(err.contains("epoch 1: operator key is not pinned"), "{err}");
    drop(server);
}

fn export_file(dir: &Path, export: &bkv_auditor::Export) -> String {
    let path = dir.join("export.json");
    std::fs::write(&path, serde_json::to_string_pretty(export).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

/// An auditor with epochs 1..=n, counter-signed.
fn publish(auditor: &mut Auditor, from: u64, to: u64, seed: u8) {
    let operator = OperatorSigningKey::from_bytes(&[42; 32]);
    for e in from..=to {
        let mut b = auditor
            .publish(NS, e, artifact(e, e as u8 ^ seed).as_bytes(), None, e)
            .unwrap();
        b.countersign(&operator);
        auditor
            .add_counter_signature(NS, e, b.counter_signature.unwrap())
            .unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_monitor_catches_a_forked_log_and_a_rewritten_entry() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    {
        let mut a = Auditor::open(&real).unwrap();
        a.register_namespace(NS, 1, artifact_digest(artifact(1, 1).as_bytes()))
            .unwrap();
        publish(&mut a, 1, 1, 0);
    }
    // The same auditor (same key, same database) split in two after epoch
    // 1: one branch goes on honestly, the other logs another epoch 2.
    let fork = dir.path().join("fork");
    copy_dir(&real, &fork);
    let mut a = Auditor::open(&real).unwrap();
    publish(&mut a, 2, 3, 0);
    let mut b = Auditor::open(&fork).unwrap();
    publish(&mut b, 2, 2, 0x55);

    let export = a.export(NS).unwrap();
    let (ok, out, err) = bkv(&[
        "audit",
        "verify-namespace",
        &export_file(dir.path(), &export),
    ]);
    assert!(ok, "{out}{err}");

    // A monitor that saw the fork's checkpoint of size 2.
    let mut forked = export.clone();
    forked.checkpoints[1] = String::from_utf8(b.checkpoint_at(NS, 2).unwrap()).unwrap();
    let (ok, _, err) = bkv(&[
        "audit",
        "verify-namespace",
        &export_file(dir.path(), &forked),
    ]);
    assert!(!ok);
    assert!(err.contains("not consistent"), "{err}");
    let (ok, out, _) = bkv(&[
        "audit",
        "verify-namespace",
        &export_file(dir.path(), &forked),
        "--json",
    ]);
    assert!(!ok);
    let failure: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(failure["ok"], false);

    // A rewritten entry: epoch 2's artifact was changed.
    let mut rewritten = export.clone();
    rewritten.entries[1].artifact = artifact(2, 0x99);
    let (ok, _, err) = bkv(&[
        "audit",
        "verify-namespace",
        &export_file(dir.path(), &rewritten),
    ]);
    assert!(!ok);
    assert!(err.contains("epoch 2:"), "{err}");
    // The fork's own entry, with its own valid signatures, put in place of
    // the real epoch 2: the signed checkpoints do not contain it. (From a
    // file, the consistency proofs are computed from the exported entries,
    // so the rewrite shows as checkpoints that no longer fit them; from an
    // auditor URL the proofs are the auditor's and the entry is named.)
    let mut swapped = export.clone();
    swapped.entries[1] = b.export(NS).unwrap().entries[1].clone();
    let (ok, _, err) = bkv(&[
        "audit",
        "verify-namespace",
        &export_file(dir.path(), &swapped),
    ]);
    assert!(!ok);
    assert!(
        err.contains("not consistent") || err.contains("rewritten"),
        "{err}"
    );
}

/// Starts `bkv auditor serve` on a free loopback port; returns the process
/// and its base URL.
fn serve(data: &Path, extra: &[&str], env: Option<&str>) -> (ServerProcess, String) {
    let mut command = Command::new(BKV);
    command
        .args(["auditor", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env_remove("BKV_AUDITOR_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(token) = env {
        command.env("BKV_AUDITOR_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = ServerProcess(child);
    let first = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let base = first.strip_prefix("listening on ").unwrap().to_string();
    (server, base)
}

#[test]
fn the_token_stays_off_the_command_line_and_the_key_database_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = agent();
    let namespace = |n: u8| {
        serde_json::json!({
            "name": format!("{NS}.{n}"),
            "root_epoch": 1,
            "root_digest": to_hex(&artifact_digest(artifact(1, n).as_bytes())),
        })
    };

    // The token from a file; the scheme in any case (RFC 7235).
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (server, base) = serve(&data, &["--token-file", token_file.to_str().unwrap()], None);
    let url = format!("{base}/namespaces");
    let mut req = agent
        .post(&url)
        .header("Authorization", &format!("bearer {TOKEN}"));
    req = req.header("Content-Type", "application/json");
    let status = req
        .send(namespace(1).to_string())
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 201);
    assert_eq!(
        post(&agent, &url, Some("wrong-token-0123456"), namespace(2)).0,
        401
    );
    drop(server);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("auditor.redb")), 0o600);

    // The token from the environment.
    let other = "another-token-0123456789";
    let (server, base) = serve(&data, &[], Some(other));
    let url = format!("{base}/namespaces");
    assert_eq!(post(&agent, &url, Some(TOKEN), namespace(2)).0, 401);
    assert_eq!(post(&agent, &url, Some(other), namespace(2)).0, 201);
    drop(server);

    // No token anywhere and no terminal: a usage error.
    let out = Command::new(BKV)
        .args(["auditor", "serve", "--data"])
        .arg(&data)
        .env_remove("BKV_AUDITOR_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("BKV_AUDITOR_TOKEN"));

    // A key database others can read is refused, naming the file and fix.
    let db = data.join("auditor.redb");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BKV)
        .args(["auditor", "serve", "--data"])
        .arg(&data)
        .env("BKV_AUDITOR_TOKEN", other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!("chmod 600 {}", db.display())),
        "{text}"
    );
}

/// `--state FILE` (SPEC.md §18.3): the first run remembers the real log's
/// newest checkpoint; a second run on a fork, whose own export is
/// consistent and never shows the real checkpoint, fails; the state is
/// left as it was. Without pinned keys the monitor warns.
#[test]
fn the_state_file_catches_a_fork_between_two_runs() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    {
        let mut a = Auditor::open(&real).unwrap();
        a.register_namespace(NS, 1, artifact_digest(artifact(1, 1).as_bytes()))
            .unwrap();
        publish(&mut a, 1, 2, 0);
    }
    let fork = dir.path().join("fork");
    copy_dir(&real, &fork);
    let mut a = Auditor::open(&real).unwrap();
    publish(&mut a, 3, 3, 0);
    let mut b = Auditor::open(&fork).unwrap();
    publish(&mut b, 3, 4, 0x55);
    let state = dir.path().join("monitor-state.json");
    let state_arg = state.to_string_lossy().into_owned();

    let (ok, out, err) = bkv(&[
        "audit",
        "verify-namespace",
        &export_file(dir.path(), &a.export(NS).unwrap()),
        "--state",
        &state_arg,
    ]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("warning: no --auditor-key pinned"), "{err}");
    assert!(err.contains("warning: no --operator-key pinned"), "{err}");
    let remembered = std::fs::read_to_string(&state).unwrap();
    assert!(remembered.contains("bkv-monitor-state/v1"), "{remembered}");

    // The fork alone passes a monitor without memory...
    let forked = export_file(dir.path(), &b.export(NS).unwrap());
    let (ok, out, err) = bkv(&["audit", "verify-namespace", &forked]);
    assert!(ok, "{out}{err}");
    // ...and fails the one that remembers.
    let (ok, _, err) = bkv(&["audit", "verify-namespace", &forked, "--state", &state_arg]);
    assert!(!ok);
    assert!(err.contains("not consistent"), "{err}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), remembered);

    // The real log going on passes and moves the state forward.
    publish(&mut a, 4, 4, 0);
    let (ok, out, err) = bkv(&[
        "audit",
        "verify-namespace",
        &export_file(dir.path(), &a.export(NS).unwrap()),
        "--state",
        &state_arg,
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("consistent with the checkpoint of size 3 the last run verified"),
        "{out}"
    );
    assert_ne!(std::fs::read_to_string(&state).unwrap(), remembered);
}
