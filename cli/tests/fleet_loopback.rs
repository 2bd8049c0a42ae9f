//! Five `bkv node` processes on 127.0.0.1 (SPEC.md §23): register and
//! recover; kill two nodes and still recover; kill a third and get a clean
//! refusal with nothing released; restart them and recover again; the
//! attempts counter is the same whichever node answers.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use backup_key_vault::{FleetSecrets, OsRng};
use bkv_fleet::net::FleetClient;

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

struct Fleet {
    dir: PathBuf,
    args: Vec<Vec<String>>,
    endpoints: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Fleet {
    fn new(dir: &Path, n: usize) -> Self {
        let secrets = FleetSecrets::generate(&mut OsRng);
        let secrets_path = dir.join("fleet.secrets");
        std::fs::write(&secrets_path, hex(&secrets.to_bytes()[..])).unwrap();
        // A node refuses a secrets file that others can read.
        std::fs::set_permissions(&secrets_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let keys = secrets.public_keys();
        std::fs::write(
            dir.join("fleet.public"),
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
        std::fs::write(dir.join("endpoints"), endpoints.join("\n")).unwrap();
        let args = (0..n)
            .map(|i| {
                vec![
                    "node".to_string(),
                    "--id".into(),
                    (i + 1).to_string(),
                    "--peers".into(),
                    peers.join(","),
                    "--data".into(),
                    dir.join(format!("node-{}", i + 1)).display().to_string(),
                    "--listen".into(),
                    format!("127.0.0.1:{}", client_ports[i]),
                    "--secrets".into(),
                    dir.join("fleet.secrets").display().to_string(),
                    "--insecure-fast".into(),
                    "--tick-ms".into(),
                    "10".into(),
                ]
            })
            .collect();
        let mut fleet = Self {
            dir: dir.to_path_buf(),
            args,
            endpoints,
            children: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            fleet.start(i);
        }
        fleet
    }

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

    /// Waits (bounded) until the live nodes serve and one leads.
    fn wait_serving(&self) {
        let client = FleetClient::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let live: Vec<&String> = self
                .endpoints
                .iter()
                .zip(&self.children)
                .filter(|(_, c)| c.is_some())
                .map(|(e, _)| e)
                .collect();
            let statuses: Vec<String> = live
                .iter()
                .map(|e| client.status(e).unwrap_or_default())
                .collect();
            let serving = statuses.iter().all(|s| s.contains("serving true"));
            let leader = statuses
                .iter()
                .any(|s| !s.contains("leader 0\n") && s.contains("leader "));
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

    fn bkv(&self, command: &str, code: &str, node: Option<usize>) -> Output {
        let mut args = vec![
            command.to_string(),
            "--fleet".into(),
            self.dir.display().to_string(),
            "--record".into(),
            "alice".into(),
            "--code".into(),
            code.into(),
            "--insecure-fast".into(),
        ];
        if let Some(n) = node {
            args.push("--node".into());
            args.push(n.to_string());
        }
        Command::new(BKV).args(&args).output().unwrap()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn key_of(o: &Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("backup key ").map(str::to_string))
        .unwrap_or_else(|| {
            panic!(
                "no key in {:?} / {:?}",
                stdout(o),
                String::from_utf8_lossy(&o.stderr)
            )
        })
}

fn remaining(o: &Output) -> Option<u8> {
    stdout(o).lines().find_map(|l| {
        l.strip_prefix("attempts remaining ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse().ok())
    })
}

#[test]
fn five_node_processes_register_recover_survive_two_failures_and_refuse_without_a_majority() {
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(dir.path(), 5);
    fleet.wait_serving();

    let registered = fleet.bkv("register", "right code", None);
    assert!(registered.status.success(), "{registered:?}");
    let key = key_of(&registered);

    // Recover through node 1; the counter reads the same through every node.
    let first = fleet.bkv("recover", "right code", Some(1));
    assert!(first.status.success(), "{first:?}");
    assert_eq!(key_of(&first), key);
    assert_eq!(remaining(&first), Some(9));
    assert!(stdout(&first).contains("no wrong code was tried since your last recovery"));
    for (node, expected) in [(2, 9), (3, 8), (4, 7), (5, 6)] {
        let wrong = fleet.bkv("recover", "wrong code", Some(node));
        assert!(!wrong.status.success());
        assert_eq!(remaining(&wrong), Some(expected), "node {node}");
    }

    // Two nodes down: three are a majority.
    fleet.kill(3);
    fleet.kill(4);
    let with_three = fleet.bkv("recover", "right code", None);
    assert!(with_three.status.success(), "{with_three:?}");
    assert_eq!(key_of(&with_three), key);
    assert_eq!(remaining(&with_three), Some(5));
    // The four wrong codes, forgiven by this success, are told from the
    // sealed release, as the replicas computed it at the reset.
    assert!(
        stdout(&with_three).contains("\n4 wrong codes were tried since your last recovery\n"),
        "{with_three:?}"
    );

    // A third down: no majority, a clean refusal, nothing released.
    fleet.kill(2);
    let started = Instant::now();
    let refused = fleet.bkv("recover", "right code", None);
    assert!(!refused.status.success());
    assert!(!stdout(&refused).contains("backup key"));
    assert!(remaining(&refused).is_none(), "no KE2 without a majority");
    assert!(started.elapsed() < Duration::from_secs(60));

    // Back up: the restarted nodes recover from their disks and catch up.
    fleet.start(2);
    fleet.start(3);
    fleet.start(4);
    fleet.wait_serving();
    let again = fleet.bkv("recover", "right code", Some(4));
    assert!(again.status.success(), "{again:?}");
    assert_eq!(key_of(&again), key);
    // The same counter through a restarted node and an old one.
    let a = fleet.bkv("recover", "wrong code", Some(5));
    let b = fleet.bkv("recover", "wrong code", Some(1));
    assert_eq!(remaining(&a), Some(9));
    assert_eq!(remaining(&b), Some(8));
}
