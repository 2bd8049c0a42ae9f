//! `bkv fleet ceremony` and `bkv audit verify-deployment` end to end, and
//! the promise that the fleet secrets appear in no output and no file but
//! the sealed ones, in no form (issue 4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use backup_key_vault::bundle::artifact::to_hex;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bkv_deploy::evidence::{parse_hex, Evidence};
use bkv_deploy::seal::{self, ImportKey};

fn bkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bkv"))
        .args(args)
        .output()
        .unwrap()
}

fn ceremony(out: &Path, hsms: &[&str], extra: &[&str]) -> Output {
    let mut args = vec![
        "fleet",
        "ceremony",
        "--out",
        out.to_str().unwrap(),
        "--fleet-id",
        "fleet-test-1",
        "--participant",
        "alice",
        "--participant",
        "bob",
        "--measurement",
        "4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d",
    ];
    for h in hsms {
        args.push("--hsm");
        args.push(h);
    }
    args.extend_from_slice(extra);
    bkv(&args)
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn ceremony_then_verify_deployment_and_no_secret_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fleet");
    let run = ceremony(
        &out,
        &["hsm-1@eu-west-a", "hsm-2@eu-west-b", "hsm-3@eu-central"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("OK: every step passed"), "{stdout}");

    let evidence = out.join("evidence.json");
    let root = out.join("vendor-root.pem");
    let export = out.join("log-export.json");
    let verify = bkv(&[
        "audit",
        "verify-deployment",
        evidence.to_str().unwrap(),
        "--vendor-root",
        root.to_str().unwrap(),
        "--log",
        export.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success(), "{report}");
    for step in bkv_deploy::StepId::ALL {
        assert!(
            report.contains(&format!("[PASS] {}", step.name())),
            "{report}"
        );
    }
    let json = bkv(&[
        "audit",
        "verify-deployment",
        evidence.to_str().unwrap(),
        "--vendor-root",
        root.to_str().unwrap(),
        "--json",
    ]);
    assert!(json.status.success());
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["ok"], true);
    assert_eq!(value["steps"].as_array().unwrap().len(), 11);

    // A truncated file: a clear error at the first step, exit status 6
    // (verification failed), no panic.
    let bytes = std::fs::read(&evidence).unwrap();
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let bad = bkv(&[
        "audit",
        "verify-deployment",
        truncated.to_str().unwrap(),
        "--vendor-root",
        root.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(6), "{text}");
    assert!(
        text.contains("[FAIL] evidence") && text.contains("truncated"),
        "{text}"
    );
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("panicked"));

    // Recover the fleet secrets the way only an HSM can: open hsm-2's
    // sealed file with its import key.
    let parsed = Evidence::from_json(&bytes).unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("hsms/hsm-2.json")).unwrap()).unwrap();
    let import =
        ImportKey::from_bytes(&parse_hex::<32>(state["import_key"].as_str().unwrap()).unwrap());
    let sealed = std::fs::read(out.join("sealed/hsm-2.sealed")).unwrap();
    let secrets = seal::open(&sealed, &import, &parsed.transcript.digest(), "hsm-2").unwrap();
    assert_eq!(
        secrets.public_keys().key_exchange,
        parsed.transcript.fleet_keys[0].public_key.0[..]
    );
    // The operator's counter-signing key: sealed to every HSM like the
    // secrets, its public half in the transcript, no loose key file.
    let sealed_operator = std::fs::read(out.join("sealed/hsm-2.operator")).unwrap();
    let operator = seal::open_operator_key(
        &sealed_operator,
        &import,
        &parsed.transcript.digest(),
        "hsm-2",
    )
    .unwrap();
    assert_eq!(operator.public_key(), parsed.transcript.operator_key.0);
    assert_eq!(
        parsed
            .bundle()
            .unwrap()
            .counter_signature
            .unwrap()
            .operator_key,
        operator.public_key()
    );
    assert!(seal::open_operator_key(
        &sealed_operator,
        &import,
        &parsed.transcript.digest(),
        "hsm-1"
    )
    .is_err());
    assert!(!out.join("operator.key").exists());
    let operator_seed = operator.to_bytes();
    let encoded = secrets.to_bytes();
    let whole = &encoded[..];
    let parts = [
        whole,
        &whole[1..65],
        &whole[65..97],
        &whole[97..129],
        &operator_seed[..],
    ];
    let mut forms: Vec<Vec<u8>> = Vec::new();
    for part in parts {
        forms.push(part.to_vec());
        forms.push(to_hex(part).into_bytes());
        forms.push(to_hex(part).to_uppercase().into_bytes());
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            forms.push(engine.encode(part).into_bytes());
        }
        // A prefix long enough to be unmistakable.
        forms.push(to_hex(&part[..16]).into_bytes());
    }
    let mut everything = vec![
        ("ceremony stdout".to_string(), run.stdout.clone()),
        ("ceremony stderr".to_string(), run.stderr.clone()),
        ("verify stdout".to_string(), verify.stdout.clone()),
        ("verify json".to_string(), json.stdout.clone()),
    ];
    let mut paths = Vec::new();
    files(&out, &mut paths);
    assert!(paths.len() >= 10, "{paths:?}");
    for path in paths {
        everything.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    for (what, bytes) in &everything {
        for form in &forms {
            assert!(!contains(bytes, form), "a fleet secret appears in {what}");
        }
    }
    // The search itself works: it finds the secret where it is.
    assert!(contains(
        &[b"x".as_slice(), &forms[1], b"y"].concat(),
        &forms[1]
    ));
}

#[test]
fn a_ceremony_that_cannot_meet_its_policy_fails_before_it_writes_or_logs_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fleet");
    let auditor = dir.path().join("auditor");
    let auditor_arg = auditor.to_str().unwrap().to_string();
    for (hsms, extra, reason) in [
        // Two HSMs at one site when two sites are required.
        (
            &["hsm-1@eu-west-a", "hsm-2@eu-west-a"][..],
            &["--min-hsms", "2", "--min-sites", "2"][..],
            "1 distinct site(s) cannot meet the policy of at least 2 sites",
        ),
        // One HSM when three are required (the default).
        (
            &["hsm-1@eu-west-a"][..],
            &[][..],
            "1 HSM(s) cannot meet the policy of at least 3 HSMs",
        ),
    ] {
        let run = ceremony(
            &out,
            hsms,
            &[extra, &["--auditor-dir", &auditor_arg]].concat(),
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
        // Nothing generated, sealed or written; nothing logged (no auditor
        // database even exists).
        assert!(!out.exists(), "{hsms:?} wrote {out:?}");
        assert!(!auditor.exists(), "{hsms:?} opened the auditor");
    }
}

/// A loopback HTTP server that answers each of up to `count` requests
/// with `500` and a JSON error: an auditor failing on its side.
fn failing_auditor(count: usize) -> std::net::SocketAddr {
    common::answering_server(
        count,
        "500 Internal Server Error",
        "application/json",
        br#"{"error":"storage: disk full"}"#,
    )
}

#[test]
fn an_unreachable_or_failing_auditor_exits_unavailable_and_bad_arguments_exit_usage() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fleet");
    let hsms = ["hsm-1@a", "hsm-2@b", "hsm-3@c"];
    // Nothing listens on this loopback port any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{closed}");
    let run = ceremony(&out, &hsms, &["--auditor", &url]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains(&closed.to_string()), "{stderr}");
    assert!(!out.exists(), "an unreachable auditor left {out:?}");

    // An auditor that answers 500: its own trouble, retry later (5), not
    // a verification failure (6); the message carries its error.
    let url = format!("http://{}", failing_auditor(4));
    let run = ceremony(&out, &hsms, &["--auditor", &url]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("500") && stderr.contains("disk full"),
        "{stderr}"
    );
    assert!(!out.exists(), "a failing auditor left {out:?}");

    // Malformed arguments are usage errors (2), as clap's own are.
    for bad in [
        &["--namespace", "bad name"][..],
        &["--participant", "bad name"][..],
        &["--hsm", "hsm-4-without-a-site"][..],
    ] {
        let run = ceremony(&out, &hsms, bad);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(!out.exists());
    }
}

#[test]
fn verify_deployment_against_the_live_auditor() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fleet");
    let run = ceremony(
        &out,
        &["hsm-1@eu-west-a", "hsm-2@eu-west-b", "hsm-3@eu-central"],
        &[],
    );
    assert!(run.status.success());
    // The ceremony's auditor database, served over HTTP on loopback.
    let mut server = Command::new(env!("CARGO_BIN_EXE_bkv"))
        .args([
            "auditor",
            "serve",
            "--data",
            out.join("auditor").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--token",
            "0123456789abcdef0123",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let url = lines
        .next()
        .unwrap()
        .unwrap()
        .trim_start_matches("listening on ")
        .to_string();
    let key = lines
        .next()
        .unwrap()
        .unwrap()
        .trim_start_matches("auditor key ")
        .to_string();
    // The operator key the transcript records (sealed to the HSMs).
    let operator = Evidence::from_json(&std::fs::read(out.join("evidence.json")).unwrap())
        .unwrap()
        .transcript
        .operator_key
        .to_string();
    let args = |log: &str| {
        bkv(&[
            "audit",
            "verify-deployment",
            out.join("evidence.json").to_str().unwrap(),
            "--vendor-root",
            out.join("vendor-root.pem").to_str().unwrap(),
            "--log",
            log,
            "--auditor-key",
            &key,
            "--operator-key",
            &operator,
        ])
    };
    let live = args(&url);
    let text = String::from_utf8_lossy(&live.stdout).into_owned();
    // A namespace the live log does not have: the entry is not there.
    let missing = args(&format!("{url}/nowhere"));
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(live.status.success(), "{text}");
    assert!(text.contains("the auditor at http://127.0.0.1"), "{text}");
    assert!(!text.contains("warning"), "{text}");
    let text = String::from_utf8_lossy(&missing.stdout);
    // Exit 6: the evidence did not verify.
    assert_eq!(missing.status.code(), Some(6), "{text}");
    assert!(text.contains("[FAIL] auditor-log"), "{text}");
    assert!(text.contains("fleet key not in the log"), "{text}");
}
