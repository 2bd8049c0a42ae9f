//! Five `bkv node` processes on 127.0.0.1; the host corrupts one stopped
//! node's `node.redb` (SPEC.md §22.1). The node notices when it starts,
//! says so in `GET /v1/status`, recovers from its peers, and the record
//! still gives out at most `max_attempts` KE2s, whichever node answers.
//! With an NVRAM stand-in, a node knows a rolled-back disk; a node that
//! cannot write its NVRAM stops, exits 1 and names the file.

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

    /// Starts node `i` with its stderr going to `log`.
    fn start_logged(&mut self, i: usize, log: &Path) {
        let child = Command::new(BKV)
            .args(&self.args[i])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    /// Waits (bounded) for node `i` to exit by itself; its exit status.
    fn wait_exit(&mut self, i: usize, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.children[i].as_mut().expect("node i runs");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.children[i] = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {} still runs after {within:?}",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// `bkv recover` through `node`, tried again (a few times, bounded) while
/// the fleet answers "unavailable" (exit 5), as during an election right
/// after a node restarted.
fn retrying(dir: &Path, code: &str, node: usize) -> Output {
    let mut o = bkv(dir, "recover", code, node);
    for _ in 0..20 {
        if o.status.code() != Some(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        o = bkv(dir, "recover", code, node);
    }
    o
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

/// Writes a fleet directory and starts `n` nodes; the nodes in `nvram`
/// get an NVRAM stand-in file (§22.4).
fn start_fleet(dir: &Path, n: usize, nvram: &[usize]) -> Nodes {
    let secrets = FleetSecrets::generate(&mut OsRng);
    std::fs::write(dir.join("fleet.secrets"), hex(&secrets.to_bytes()[..])).unwrap();
    // A node refuses a secrets file that others can read.
    std::fs::set_permissions(
        dir.join("fleet.secrets"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let keys = secrets.public_keys();
    std::fs::write(
        dir.join("fleet.public"),
        hex(&[&keys.key_exchange[..], &keys.transport.as_bytes()[..]].concat()),
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
    std::fs::write(dir.join("endpoints"), endpoints.join("\n")).unwrap();
    let args = (0..n)
        .map(|i| {
            let mut args = vec![
                "node".to_string(),
                "--id".into(),
                (i + 1).to_string(),
                "--peers".into(),
                peers.join(","),
                "--data".into(),
                data(dir, i).display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", client_ports[i]),
                "--secrets".into(),
                dir.join("fleet.secrets").display().to_string(),
                "--insecure-fast".into(),
                "--tick-ms".into(),
                "10".into(),
            ];
            if nvram.contains(&i) {
                args.push("--nvram".into());
                args.push(
                    dir.join(format!("node-{}.nvram", i + 1))
                        .display()
                        .to_string(),
                );
            }
            args
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
    nodes
}

fn data(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("node-{}", i + 1))
}

#[test]
fn a_node_whose_disk_was_corrupted_reports_it_and_the_record_keeps_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_fleet(dir.path(), 5, &[]);
    let data = |i: usize| data(dir.path(), i);
    let max = VaultPolicy::insecure_test_only().max_attempts;

    let registered = bkv(dir.path(), "register", "right code", 1);
    assert!(registered.status.success(), "{registered:?}");
    // Two wrong codes before the corruption.
    for node in [1, 2] {
        let o = retrying(dir.path(), "wrong code", node);
        assert!(remaining(&o).is_some(), "{o:?}");
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
        let o = retrying(dir.path(), "wrong code", victim + 1);
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

/// `bkv node --nvram FILE`: a clean restart is vouched for by NVRAM; a
/// rolled-back `node.redb` is recognised as such at start, discarded, and
/// the node catches up from its peers (§22.4).
#[test]
fn a_node_with_nvram_knows_a_rolled_back_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_fleet(dir.path(), 3, &[0]);
    let registered = bkv(dir.path(), "register", "right code", 2);
    assert!(registered.status.success(), "{registered:?}");
    let db = data(dir.path(), 0).join("node.redb");
    let old = dir.path().join("old.redb");

    nodes.kill(0);
    std::fs::copy(&db, &old).unwrap();
    nodes.start(0);
    nodes.wait_serving();
    let status = nodes.status(0);
    assert!(status.contains("nvram true\n"), "{status}");
    assert!(status.contains("rollbacks_detected 0\n"), "{status}");
    assert!(status.contains("disk_rejected 0\n"), "{status}");

    // The fleet moves on; then the host puts node 1's old file back.
    for node in [2, 3] {
        let o = retrying(dir.path(), "wrong code", node);
        assert!(remaining(&o).is_some(), "{o:?}");
    }
    nodes.kill(0);
    std::fs::copy(&old, &db).unwrap();
    nodes.start(0);
    nodes.wait_serving();
    let status = nodes.status(0);
    assert!(status.contains("rollbacks_detected 1\n"), "{status}");
    // Caught up: the counter through node 1 is the fleet's.
    let o = retrying(dir.path(), "wrong code", 1);
    assert_eq!(remaining(&o), Some(7), "{o:?}");
}

/// A node whose NVRAM stand-in cannot be written after a write to its disk
/// (NVRAM follows the disk, SPEC.md §22.2) stops: it exits 1 and says
/// why, and the other two go on serving. Once its NVRAM can be written
/// again it starts on its disk (one write ahead of NVRAM, as after a crash
/// between the two) and serves.
#[test]
fn a_node_that_cannot_write_its_nvram_stops_with_exit_1_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_fleet(dir.path(), 3, &[0]);
    nodes.kill(0);
    let log = dir.path().join("node-1.log");
    nodes.start_logged(0, &log);
    nodes.wait_serving();

    // The NVRAM file is replaced through a temporary file beside it
    // (`FileNvram`): a directory there makes every write fail.
    let blocker = dir.path().join("node-1.nvram").with_extension("tmp");
    std::fs::create_dir(&blocker).unwrap();
    // If node 1 leads, it stops in the middle of the registration, which
    // then fails "unavailable" (exit 5) until node 2 or 3 leads: tried
    // again. A try whose upload committed before the answer was lost
    // leaves alice registered, and the next is refused over her live
    // record (exit 4): she is registered either way.
    let mut registered = bkv(dir.path(), "register", "right code", 2);
    for _ in 0..50 {
        if registered.status.code() != Some(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        registered = bkv(dir.path(), "register", "right code", 2);
    }
    assert!(
        registered.status.success() || registered.status.code() == Some(4),
        "{registered:?}"
    );
    let status = nodes.wait_exit(0, Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "node 1: {status}; stderr:\n{text}");
    assert!(text.contains("node faulted; restart it"), "{text}");
    assert!(
        text.contains(&blocker.display().to_string()),
        "the log names the file that failed: {text}"
    );

    // Two of three serve: alice recovers through node 2.
    let o = retrying(dir.path(), "right code", 2);
    assert!(o.status.success(), "{o:?}");

    std::fs::remove_dir(&blocker).unwrap();
    nodes.start(0);
    nodes.wait_serving();
    let status = nodes.status(0);
    assert!(status.contains("rollbacks_detected 0\n"), "{status}");
    assert!(status.contains("disk_rejected 0\n"), "{status}");
    let o = retrying(dir.path(), "right code", 1);
    assert!(o.status.success(), "{o:?}");
}
