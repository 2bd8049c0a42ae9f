//! Three `bkv node` processes on three loopback addresses standing in for
//! three hosts (127.0.0.2, .3, .4): they elect, register and recover; the
//! client front answers an oversized body with 413 and keeps serving while
//! one upload stalls; `GET /metrics` counts what happened.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backup_key_vault::{FleetSecrets, OsRng};
use bkv_fleet::net::FleetClient;
use bkv_fleet::platform::HostStore as _;

const BKV: &str = env!("CARGO_BIN_EXE_bkv");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port(host: &str) -> u16 {
    TcpListener::bind(format!("{host}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A raw HTTP exchange: sends `raw`, reads the answer's status line.
fn status_line(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn nodes_on_distinct_addresses_serve_limit_bodies_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = FleetSecrets::generate(&mut OsRng);
    let secrets_path = dir.path().join("fleet.secrets");
    std::fs::write(&secrets_path, hex(&secrets.to_bytes()[..])).unwrap();
    std::fs::set_permissions(&secrets_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let keys = secrets.public_keys();
    std::fs::write(
        dir.path().join("fleet.public"),
        hex(&[&keys.key_exchange[..], &keys.transport.as_bytes()[..]].concat()),
    )
    .unwrap();
    let hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let peers: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{}={h}:{}", i + 1, free_port(h)))
        .collect();
    let listen: Vec<SocketAddr> = hosts
        .iter()
        .map(|h| format!("{h}:{}", free_port(h)).parse().unwrap())
        .collect();
    let endpoints: Vec<String> = listen.iter().map(|a| format!("http://{a}")).collect();
    std::fs::write(dir.path().join("endpoints"), endpoints.join("\n")).unwrap();
    let nodes = Nodes(
        (0..hosts.len())
            .map(|i| {
                Command::new(BKV)
                    .args(["node", "--id", &(i + 1).to_string(), "--peers"])
                    .arg(peers.join(","))
                    .arg("--data")
                    .arg(dir.path().join(format!("node-{}", i + 1)))
                    .arg("--listen")
                    .arg(listen[i].to_string())
                    .arg("--secrets")
                    .arg(&secrets_path)
                    .args(["--insecure-fast", "--tick-ms", "10"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );

    // Settle: every node serving, a leader known.
    let client = FleetClient::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses: Vec<String> = endpoints
            .iter()
            .map(|e| client.status(e).unwrap_or_default())
            .collect();
        if statuses
            .iter()
            .all(|s| s.contains("serving true") && !s.contains("leader 0\n"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no leader: {statuses:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let bkv = |command: &str, code: &str| {
        Command::new(BKV)
            .args([command, "--fleet"])
            .arg(dir.path())
            .args(["--record", "alice", "--code", code, "--insecure-fast"])
            .output()
            .unwrap()
    };
    let registered = bkv("register", "right code");
    assert!(registered.status.success(), "{registered:?}");
    let wrong = bkv("recover", "wrong code");
    assert!(!wrong.status.success());
    let recovered = bkv("recover", "right code");
    assert!(recovered.status.success(), "{recovered:?}");

    // An oversized body: 413, not read.
    let big = status_line(
        listen[0],
        b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");

    // A stalled upload (announces 60,000 bytes, sends one) does not delay
    // other requests to the same node; it is cut at the body timeout.
    let mut stalled = TcpStream::connect(listen[0]).unwrap();
    stalled
        .write_all(b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\na")
        .unwrap();
    let started = Instant::now();
    for _ in 0..5 {
        assert!(client
            .status(&endpoints[0])
            .unwrap()
            .contains("serving true"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "status waited {:?} behind a stalled upload",
        started.elapsed()
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let cut = started.elapsed();
    assert!(cut < Duration::from_secs(8), "stalled upload held {cut:?}");

    // Metrics: summed over the nodes, the requests the CLI made.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let scrape = |e: &String| {
        agent
            .get(&format!("{e}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    // A follower that missed heartbeats while this 2-core machine compiles
    // other tests may be between leaders for a moment: each node's scrape
    // is taken once it knows a leader again (bounded), so the leader check
    // below asserts that the fleet has one, not when a heartbeat landed.
    let scrapes: Vec<String> = endpoints
        .iter()
        .map(|e| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let s = scrape(e);
                if metric(&s, "bkv_node_raft_leader") >= 1 || Instant::now() >= deadline {
                    break s;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .collect();
    let sum = |name: &str| scrapes.iter().map(|s| metric(s, name)).sum::<u64>();
    let requests = "bkv_node_client_requests_total";
    assert_eq!(
        sum(&format!(
            "{requests}{{type=\"recovery_finish\",outcome=\"key_release\"}}"
        )),
        1,
        "one reset: {scrapes:#?}"
    );
    // A wrong code fails at the client (the envelope does not open): no
    // KE3 is sent, but its KE1 was charged.
    assert_eq!(
        sum(&format!(
            "{requests}{{type=\"recovery_start\",outcome=\"recovery_response\"}}"
        )),
        2,
        "two charges: {scrapes:#?}"
    );
    for s in &scrapes {
        assert_eq!(metric(s, "bkv_node_records_live"), 1, "{s}");
        assert_eq!(metric(s, "bkv_node_records_erased"), 0, "{s}");
        assert!(metric(s, "bkv_node_raft_term") >= 1, "{s}");
        assert!(metric(s, "bkv_node_raft_leader") >= 1, "{s}");
        assert!(metric(s, "bkv_node_raft_commit_index") >= 3, "{s}");
        assert!(metric(s, "bkv_node_disk_write_seconds_count") >= 1, "{s}");
        assert_eq!(metric(s, "bkv_node_rollbacks_detected_total"), 0, "{s}");
    }

    // A planned stop: on SIGTERM each node writes the record rows that
    // wait in its memory and exits 0. Alice's slot is then on every
    // node's disk. Before the stop it was on none: bkv node writes record
    // rows every `records_write_every` entries (64 by default,
    // `bkv_fleet::node::RECORDS_WRITE_EVERY`), and fewer than ten entries
    // were applied above.
    let mut nodes = nodes;
    for child in &nodes.0 {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, child) in nodes.0.iter_mut().enumerate() {
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not stop on SIGTERM",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "node {}: {status}", i + 1);
        let disk = bkv_fleet::disk::RedbHost::open_path(
            &dir.path().join(format!("node-{}", i + 1)).join("node.redb"),
        )
        .unwrap();
        let slots = disk.scan(bkv_fleet::platform::Table::Slots).unwrap();
        assert_eq!(slots.len(), 1, "node {}: alice's slot on disk", i + 1);
    }
    drop(nodes);
}
