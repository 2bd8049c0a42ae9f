//! `bkv fleet up` on loopback: it refuses a fleet size SPEC.md §20 does not
//! allow, writes its secrets 0600 in a 0700 directory, fails when a node
//! cannot start (a second fleet on the same ports, naming the address),
//! and stops every node on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BKV: &str = env!("CARGO_BIN_EXE_bkv");

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Kills the process if the test fails before it stops.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A base port whose peer (base+1..=3) and client (base+101..=103) ports
/// are free now.
fn free_base() -> u16 {
    // Tests run in parallel in one process: each call starts elsewhere.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let first = CALLS.fetch_add(17, std::sync::atomic::Ordering::Relaxed);
    for i in first..first + 200 {
        let base = (20_000 + (std::process::id() % 200) * 100 + u32::from(i) * 211 % 20_000) as u16;
        let ports = [1, 2, 3, 101, 102, 103].map(|o| base + o);
        if ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free ports");
}

fn up(dir: &Path, base: u16, nodes: &str) -> Command {
    let mut c = Command::new(BKV);
    c.args(["fleet", "up", "--insecure-fast", "--nodes", nodes, "--dir"])
        .arg(dir)
        .args(["--base-port", &base.to_string()]);
    c
}

fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fleet_up_refuses_bad_sizes_fails_on_busy_ports_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["0", "1", "2", "4"] {
        let out = up(&dir.path().join("bad"), 7100, n).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--nodes {n}: {out:?}");
        assert!(!dir.path().join("bad").exists(), "--nodes {n} wrote files");
    }

    let base = free_base();
    let first_dir = dir.path().join("first");
    let mut first = Guard(Some(
        up(&first_dir, base, "3")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let stdout = first.0.as_mut().unwrap().stdout.take().unwrap();
    let stderr = first.0.as_mut().unwrap().stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(line.starts_with("fleet of 3 nodes up"), "{line}");
    assert_eq!(mode(&first_dir), 0o700);
    assert_eq!(mode(&first_dir.join("fleet.secrets")), 0o600);
    let pid = first.0.as_ref().unwrap().id();
    let nodes: Vec<u32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");

    // A node that dies is reported.
    let last = nodes[2].to_string();
    assert!(Command::new("kill")
        .args(["-KILL", &last])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = err_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no report of the dead node");
        if line.contains("exited") {
            assert!(line.contains("2 of 3 nodes running"), "{line}");
            break;
        }
    }

    // The same ports again: the command fails before it starts a node, and
    // says which address is taken.
    let second = up(&dir.path().join("second"), base, "3")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = Guard(Some(second));
    let status = wait_bounded(second.0.as_mut().unwrap(), Duration::from_secs(60));
    let mut err = String::new();
    std::io::Read::read_to_string(
        second.0.as_mut().unwrap().stderr.as_mut().unwrap(),
        &mut err,
    )
    .unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("in use"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{} ", base + 1)), "{err}");
    let mut out = String::new();
    std::io::Read::read_to_string(
        second.0.as_mut().unwrap().stdout.as_mut().unwrap(),
        &mut out,
    )
    .unwrap();
    assert!(!out.contains("nodes up"), "{out}");
    assert!(!dir.path().join("second").exists());

    // SIGTERM: the first fleet stops its nodes and exits.
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_bounded(first.0.as_mut().unwrap(), Duration::from_secs(30));
    first.0 = None;
    // Each node still running stopped as planned (it wrote the record rows
    // that waited), not killed after fleet up's grace: nodes 1 and 2 say
    // so on the stderr they share with fleet up (node 3 was killed above).
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(line) = err_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        said.push(line);
    }
    for id in [1, 2] {
        let planned = format!("node {id} stopped on a signal");
        assert!(said.iter().any(|l| l.contains(&planned)), "{said:#?}");
    }
    // No node process is left (each was stopped and reaped).
    for node in &nodes {
        assert!(
            !Path::new(&format!("/proc/{node}")).exists(),
            "node process {node} outlived fleet up"
        );
    }
    // No node is left holding a port.
    let deadline = Instant::now() + Duration::from_secs(10);
    for offset in [1, 2, 3, 101, 102, 103] {
        while TcpListener::bind(("127.0.0.1", base + offset)).is_err() {
            assert!(
                Instant::now() < deadline,
                "port {} still held after SIGTERM",
                base + offset
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // A node that cannot start (its data directory is a file): the command
    // fails with that node's error and stops the others.
    let third = dir.path().join("third");
    std::fs::create_dir(&third).unwrap();
    std::fs::write(third.join("node-2"), "not a directory").unwrap();
    let mut failing = Guard(Some(
        up(&third, free_base(), "3")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let status = wait_bounded(failing.0.as_mut().unwrap(), Duration::from_secs(60));
    let mut err = String::new();
    std::io::Read::read_to_string(
        failing.0.as_mut().unwrap().stderr.as_mut().unwrap(),
        &mut err,
    )
    .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("node-2"), "{err}");
    assert!(err.contains("node 2 failed to start"), "{err}");
}

/// The nodes' logs: with `BKV_LOG_FORMAT=json` each line on stderr is one
/// JSON object; every node reports its start (with its id and
/// incarnation) and a leader.
#[test]
fn nodes_write_structured_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Guard(Some(
        up(&dir.path().join("fleet"), free_base(), "3")
            .env("BKV_LOG_FORMAT", "json")
            .env("BKV_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let stderr = fleet.0.as_mut().unwrap().stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut started = std::collections::BTreeSet::new();
    let mut leader = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.len() < 3 || !leader {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("nodes started {started:?}, leader seen {leader}"));
        // fleet up's own reports are plain text; the nodes' are JSON.
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let fields = &v["fields"];
        match fields["message"].as_str() {
            Some("node started") => {
                assert_eq!(v["level"], "INFO", "{line}");
                assert!(fields["incarnation"].as_u64().is_some(), "{line}");
                started.insert(fields["node"].as_u64().unwrap());
            }
            Some("leader changed") if fields["leader"].as_u64() != Some(0) => leader = true,
            _ => {}
        }
    }
    assert_eq!(started.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    let pid = fleet.0.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_bounded(fleet.0.as_mut().unwrap(), Duration::from_secs(30));
    fleet.0 = None;
}
