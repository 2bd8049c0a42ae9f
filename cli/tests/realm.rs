//! `bkv fleet up --groups 2 --nodes 3`: a realm of two Raft groups on
//! loopback, each owning half of the record ids (SPEC.md §14.1). Records
//! landing in each group register and recover through the realm
//! directory, which routes by record id; a node of the other group
//! refuses a record it does not own, and charges nothing.

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bkv_fleet::net::FleetClient;

use common::{bkv, text, Process, BKV};
use sha2::{Digest, Sha256};

/// A base port whose ports for two groups of three (base+1..=3,
/// +101..=103, +201..=203, +301..=303) are free now.
fn free_base() -> u16 {
    for i in 0..400u32 {
        let base = (21_000 + (std::process::id() % 97) * 131 + i * 409 % 30_000) as u16;
        let ok = [0u16, 100, 200, 300]
            .iter()
            .flat_map(|g| (1..=3).map(move |o| base + g + o))
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if ok {
            return base;
        }
    }
    panic!("no free ports");
}

/// A record name whose id (SHA-256 of the name) starts below 0x80
/// (group 0) or at or above it (group 1).
fn name_in_group(group: u8) -> String {
    (0..)
        .map(|i| format!("realm-record-{i}"))
        .find(|n| (Sha256::digest(n.as_bytes())[0] >= 0x80) == (group == 1))
        .unwrap()
}

fn client(
    command: &str,
    dir: &std::path::Path,
    record: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        command,
        "--insecure-fast",
        "--record",
        record,
        "--code",
        "realm code",
    ];
    args.extend_from_slice(extra);
    let dir = dir.display().to_string();
    args.extend(["--fleet", &dir]);
    bkv(&args)
}

fn key_of(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("backup key "))
        .unwrap_or_else(|| panic!("no key: {}", text(out)))
        .to_string()
}

#[test]
fn a_two_group_realm_on_loopback_registers_and_recovers_in_both_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("realm");
    let base = free_base();
    let mut child = Command::new(BKV)
        .args([
            "fleet",
            "up",
            "--insecure-fast",
            "--groups",
            "2",
            "--nodes",
            "3",
        ])
        .arg("--dir")
        .arg(&dir)
        .args(["--base-port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _up = Process(Some(child));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(
        line.starts_with("realm of 2 groups of 3 nodes up"),
        "{line}"
    );
    // Each group elects its own leader.
    let status = FleetClient::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for port in [101u16, 102, 103, 301, 302, 303] {
        let endpoint = format!("http://127.0.0.1:{}", base + port);
        while !status
            .status(&endpoint)
            .is_ok_and(|s| s.contains("serving true") && !s.contains("leader 0\n"))
        {
            assert!(Instant::now() < deadline, "{endpoint} has no leader");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("realm")).unwrap(),
        "group-0 0000000000000000-7fffffffffffffff\n\
         group-1 8000000000000000-ffffffffffffffff\n"
    );

    // One record in each group: registered and recovered through the
    // realm directory, each answered by a node of its own group.
    for group in [0u8, 1] {
        let name = name_in_group(group);
        let registered = client("register", &dir, &name, &[]);
        assert_eq!(registered.status.code(), Some(0), "{}", text(&registered));
        let own_port = base + 200 * u16::from(group);
        let via = format!("via http://127.0.0.1:{}", own_port + 101);
        assert!(
            String::from_utf8_lossy(&registered.stdout).contains(&via),
            "group {group}: {}",
            text(&registered)
        );
        let recovered = client("recover", &dir, &name, &[]);
        assert_eq!(recovered.status.code(), Some(0), "{}", text(&recovered));
        assert_eq!(key_of(&recovered), key_of(&registered));
    }

    // A node of group 1 refuses group 0's record (Rejection code 12)
    // before anything is charged: the record then still recovers, with
    // every attempt left.
    let name = name_in_group(0);
    let other_node = format!("http://127.0.0.1:{}", base + 200 + 101);
    for command in ["recover", "register"] {
        let refused = client(command, &dir, &name, &["--endpoint", &other_node]);
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("does not serve this record"),
            "{}",
            text(&refused)
        );
    }
    let recovered = client("recover", &dir, &name, &[]);
    assert_eq!(recovered.status.code(), Some(0), "{}", text(&recovered));
    assert!(
        String::from_utf8_lossy(&recovered.stdout).contains("attempts remaining 9"),
        "{}",
        text(&recovered)
    );
}

#[test]
fn fleet_up_refuses_a_bad_group_count_and_a_realm_file_that_overlaps() {
    let tmp = tempfile::tempdir().unwrap();
    for g in ["0", "17"] {
        let out = bkv(&[
            "fleet",
            "up",
            "--insecure-fast",
            "--nodes",
            "3",
            "--groups",
            g,
            "--dir",
            &tmp.path().join("bad").display().to_string(),
        ]);
        assert_eq!(out.status.code(), Some(2), "--groups {g}: {}", text(&out));
        assert!(!tmp.path().join("bad").exists());
    }
    // A realm file whose ranges overlap routes nowhere.
    let dir = tmp.path().join("overlap");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("realm"),
        "group-0 0000000000000000-8fffffffffffffff\ngroup-1 8000000000000000-ffffffffffffffff\n",
    )
    .unwrap();
    let out = client("register", &dir, "anyone", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("overlaps group-0"),
        "{}",
        text(&out)
    );
}
