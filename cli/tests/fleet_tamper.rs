//! Five `bkv node` processes on 127.0.0.1; the host corrupts one stopped
//! node's `node.redb` (SPEC.md §22.1). The node notices when it starts,
//! says so in `GET /v1/status`, recovers from its peers, and the record
//! still gives out at most `max_attempts` KE2s, whichever node answers.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use backup_key_vault::vault::VaultPolicy;
use backup_key_vault::{FleetSecrets, OsRng};
use bkv_fleet::disk::RedbHost;
use bkv_fleet::net::FleetClient;
use bkv_fleet::platform::{HostOp, HostStore, Table};

const BKV: &str = env!("CARGO_BIN_EXE_bkv");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Nodes {
    args: Vec<Vec<String>>,
    endpoints: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn start(&mut self, i: usize) {
        let child = Command::new(BKV)
            .args(&self.args[i])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn status(&self, i: usize) -> String {
        FleetClient::new()
            .status(&self.endpoints[i])
            .unwrap_or_default()
    }

    /// Waits (bounded) until every node serves and one leads.
    fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let statuses: Vec<String> = (0..self.endpoints.len()).map(|i| self.status(i)).collect();
            let serving = statuses.iter().all(|s| s.contains("serving true"));
            let leader = statuses
                .iter()
                .any(|s| s.contains("leader ") && !s.contains("leader 0\n"));
            if serving && leader {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fleet did not settle: {statuses:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn bkv(dir: &Path, command: &str, code: &str, node: usize) -> Output {
    Command::new(BKV)
        .args([
            command,
            "--fleet",
            &dir.display().to_string(),
            "--record",
            "alice",
            "--code",
            code,
            "--insecure-fast",
            "--node",
            &node.to_string(),
        ])
        .output()
        .unwrap()
}

fn remaining(o: &Output) -> Option<u8> {
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
        l.strip_prefix("attempts remaining ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse().ok())
    })
}

/// The host's script: change one byte in the middle of every log row of a
/// stopped node's database (through redb, so the file stays a valid redb
/// file and only the node can tell).
fn corrupt(path: &Path) -> usize {
    let mut host = RedbHost::open_path(path).unwrap();
    let mut ops = Vec::new();
    for (key, mut value) in host.scan(Table::Log).unwrap() {
        let at = value.len() / 2;
        value[at] ^= 0x55;
        ops.push(HostOp::Put {
            table: Table::Log,
            key,
            value,
        });
    }
    host.apply(&ops).unwrap();
    ops.len()
}

#[test]
fn a_node_whose_disk_was_corrupted_reports_it_and_the_record_keeps_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5;
    let secrets = FleetSecrets::generate(&mut OsRng);
    std::fs::write(
        dir.path().join("fleet.secrets"),
        hex(&secrets.to_bytes()[..]),
    )
    .unwrap();
    // A node refuses a secrets file that others can read.
    std::fs::set_permissions(
        dir.path().join("fleet.secrets"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let keys = secrets.public_keys();
    std::fs::write(
        dir.path().join("fleet.public"),
        hex(&[keys.key_exchange, keys.transport].concat()),
    )
    .unwrap();
    let peer_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let peers: Vec<String> = peer_ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    let endpoints: Vec<String> = client_ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    std::fs::write(dir.path().join("endpoints"), endpoints.join("\n")).unwrap();
    let data = |i: usize| dir.path().join(format!("node-{}", i + 1));
    let args = (0..n)
        .map(|i| {
            vec![
                "node".to_string(),
                "--id".into(),
                (i + 1).to_string(),
                "--peers".into(),
                peers.join(","),
                "--data".into(),
                data(i).display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", client_ports[i]),
                "--secrets".into(),
                dir.path().join("fleet.secrets").display().to_string(),
                "--insecure-fast".into(),
                "--tick-ms".into(),
                "10".into(),
            ]
        })
        .collect();
    let mut nodes = Nodes {
        args,
        endpoints,
        children: (0..n).map(|_| None).collect(),
    };
    for i in 0..n {
        nodes.start(i);
    }
    nodes.wait_serving();
    let max = VaultPolicy::insecure_test_only().max_attempts;

    let registered = bkv(dir.path(), "register", "right code", 1);
    assert!(registered.status.success(), "{registered:?}");
    // Two wrong codes before the corruption.
    for node in [1, 2] {
        assert!(remaining(&bkv(dir.path(), "recover", "wrong code", node)).is_some());
    }

    // The host stops node 3 and corrupts its disk.
    let victim = 2;
    nodes.kill(victim);
    let rows = corrupt(&data(victim).join("node.redb"));
    assert!(rows > 0, "node 3 had no log rows to corrupt");
    nodes.start(victim);
    nodes.wait_serving();
    let status = nodes.status(victim);
    assert!(status.contains("disk_rejected 1\n"), "{status}");

    // Every remaining attempt, through the corrupted node: the counter is
    // the fleet's, and runs out after max_attempts KE2s in all.
    let mut seen = vec![max - 1, max - 2];
    for _ in 0..usize::from(max) + 2 {
        let o = bkv(dir.path(), "recover", "wrong code", victim + 1);
        if let Some(r) = remaining(&o) {
            seen.push(r);
        }
        if seen.last() == Some(&0) {
            break;
        }
    }
    let expected: Vec<u8> = (0..max).rev().collect();
    assert_eq!(seen, expected, "KE2s through the corrupted node");
    // The last failure erased the record: the right code fails everywhere.
    for node in [victim + 1, 1] {
        let o = bkv(dir.path(), "recover", "right code", node);
        assert!(!o.status.success(), "recovered after the limit: {o:?}");
        assert!(!String::from_utf8_lossy(&o.stdout).contains("backup key"));
    }
}
