//! `bkv register` and `bkv recover` as a user and a script see them, against
//! three `bkv node` processes on 127.0.0.1: exit codes per outcome, no early
//! erasure after lockout, no panic on a closed stdout, `--key-out`, the
//! recovery code from a file or the environment, and errors that name the
//! file or address.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use backup_key_vault::{FleetSecrets, OsRng};
use bkv_fleet::net::FleetClient;

use common::{free_port, free_ports, hex, BKV};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
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
        std::fs::set_permissions(&secrets_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let keys = secrets.public_keys();
        std::fs::write(
            dir.join("fleet.public"),
            hex(&[&keys.key_exchange[..], &keys.transport.as_bytes()[..]].concat()),
        )
        .unwrap();
        // All at once, so no two nodes get the same port.
        let ports = free_ports(2 * n);
        let (peer_ports, client_ports) = ports.split_at(n);
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
                [
                    "node",
                    "--id",
                    &(i + 1).to_string(),
                    "--peers",
                    &peers.join(","),
                    "--data",
                    &dir.join(format!("node-{}", i + 1)).display().to_string(),
                    "--listen",
                    &format!("127.0.0.1:{}", client_ports[i]),
                    "--secrets",
                    &secrets_path.display().to_string(),
                    "--insecure-fast",
                    "--tick-ms",
                    "10",
                ]
                .map(str::to_string)
                .to_vec()
            })
            .collect();
        let mut fleet = Self {
            dir: dir.to_path_buf(),
            args,
            endpoints,
            children: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            let child = Command::new(BKV)
                .args(&fleet.args[i])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            fleet.children[i] = Some(child);
        }
        fleet.wait_serving();
        fleet
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn wait_serving(&self) {
        let client = FleetClient::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let statuses: Vec<String> = self
                .endpoints
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
            assert!(Instant::now() < deadline, "no fleet: {statuses:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `bkv COMMAND --fleet DIR --record RECORD --insecure-fast EXTRA...`,
    /// with no recovery code in the environment unless given.
    fn command(&self, command: &str, record: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(BKV);
        c.args([command, "--fleet"])
            .arg(&self.dir)
            .args(["--record", record, "--insecure-fast"])
            .args(extra)
            .env_remove("BKV_RECOVERY_CODE")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, command: &str, record: &str, extra: &[&str]) -> Output {
        self.command(command, record, extra).output().unwrap()
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn key_of(o: &Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("backup key ").map(str::to_string))
        .unwrap_or_else(|| panic!("no key in {o:?}"))
}

fn remaining(o: &Output) -> Option<u8> {
    stdout(o).lines().find_map(|l| {
        l.strip_prefix("attempts remaining ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse().ok())
    })
}

#[test]
fn exit_codes_lockout_without_early_erasure_secrets_off_the_command_line_and_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(dir.path(), 3);

    // Registration with the code from a file (not in the process list).
    let code_file = dir.path().join("code");
    std::fs::write(&code_file, "right code\n").unwrap();
    let code_file = code_file.display().to_string();
    let registered = fleet.run("register", "alice", &["--code-file", &code_file]);
    assert_eq!(registered.status.code(), Some(0), "{registered:?}");
    let key = key_of(&registered);

    // The code from the environment; the old flag still works.
    let from_env = fleet
        .command("recover", "alice", &[])
        .env("BKV_RECOVERY_CODE", "right code")
        .output()
        .unwrap();
    assert_eq!(from_env.status.code(), Some(0), "{from_env:?}");
    assert_eq!(key_of(&from_env), key);
    let from_flag = fleet.run("recover", "alice", &["--code", "right code"]);
    assert_eq!(key_of(&from_flag), key);

    // No code at all, no terminal: a usage error that says how to give one.
    let none = fleet.run("recover", "alice", &[]);
    assert_eq!(none.status.code(), Some(2), "{none:?}");
    assert!(stderr(&none).contains("BKV_RECOVERY_CODE"), "{none:?}");

    // Re-registering a live record is refused: exit 4, and the command
    // does not go on to another node.
    let again = fleet.run("register", "alice", &["--code", "other"]);
    assert_eq!(again.status.code(), Some(4), "{again:?}");

    // Wrong codes through node 1: exit 3 each, the count going down.
    for expected in (0..10).rev() {
        let wrong = fleet
            .command("recover", "alice", &["--node", "1"])
            .env("BKV_RECOVERY_CODE", "wrong code")
            .output()
            .unwrap();
        assert_eq!(wrong.status.code(), Some(3), "{wrong:?}");
        assert_eq!(remaining(&wrong), Some(expected));
        assert!(!stderr(&wrong).contains("recovery failed: recovery failed"));
    }

    // Locked: node 1 holds the last exchange. Without --node the command
    // asks node 1 first and must stop there with exit 4: asking node 2,
    // which holds no session, would erase the record at once.
    for extra in [&[][..], &["--node", "1"][..]] {
        let locked = fleet.run(
            "recover",
            "alice",
            &[&["--code", "right code"], extra].concat(),
        );
        assert_eq!(locked.status.code(), Some(4), "{locked:?}");
        assert!(
            remaining(&locked).is_none(),
            "a KE2 after lockout: {locked:?}"
        );
        assert!(!stdout(&locked).contains("backup key"));
        assert!(stderr(&locked).contains("locked"), "{locked:?}");
    }

    // A closed stdout: no panic after the registration committed.
    let mut child = fleet
        .command("register", "bob", &["--code", "bob's code"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let closed = child.wait_with_output().unwrap();
    assert!(!stderr(&closed).contains("panicked"), "{closed:?}");
    assert_eq!(closed.status.code(), Some(1), "{closed:?}");
    assert!(stderr(&closed).contains("--key-out"), "{closed:?}");
    // ... and the key is not lost with --key-out: a new 0600 file.
    let key_file = dir.path().join("carol.key");
    let mut child = fleet
        .command(
            "register",
            "carol",
            &["--code", "carol's code", "--key-out"],
        )
        .arg(&key_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let kept = child.wait_with_output().unwrap();
    assert_eq!(kept.status.code(), Some(0), "{kept:?}");
    assert_eq!(mode(&key_file), 0o600);
    let written = std::fs::read_to_string(&key_file).unwrap();
    let recovered = fleet.run("recover", "carol", &["--code", "carol's code"]);
    assert_eq!(key_of(&recovered), written.trim());
    // An existing file is never overwritten, and nothing is sent.
    let refused = fleet
        .command("register", "dave", &["--code", "dave's code", "--key-out"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), written);
    let first = fleet.run("register", "dave", &["--code", "dave's code"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "dave was registered before: {first:?}"
    );

    // No majority: exit 5, every endpoint's failure shown, no doubled text.
    fleet.kill(1);
    fleet.kill(2);
    let started = Instant::now();
    let unavailable = fleet.run("recover", "carol", &["--code", "carol's code"]);
    assert_eq!(unavailable.status.code(), Some(5), "{unavailable:?}");
    for e in &fleet.endpoints {
        assert!(stderr(&unavailable).contains(e.as_str()), "{unavailable:?}");
    }
    assert!(
        !stderr(&unavailable).contains("i/o: io:"),
        "{unavailable:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn errors_name_the_file_and_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-fleet");
    let out = Command::new(BKV)
        .args(["recover", "--record", "a", "--code", "c", "--fleet"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("bkv fleet up"), "{text}");

    std::fs::write(dir.path().join("fleet.public"), "not hex at all").unwrap();
    std::fs::write(dir.path().join("endpoints"), "http://127.0.0.1:9\n").unwrap();
    let out = Command::new(BKV)
        .args(["recover", "--record", "a", "--code", "c", "--fleet"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = stderr(&out);
    assert!(text.contains("fleet.public"), "{text}");
    assert!(text.contains("2496 hex digits"), "{text}");

    // --node out of range is a usage error.
    std::fs::write(dir.path().join("fleet.public"), "ab".repeat(1248)).unwrap();
    let out = Command::new(BKV)
        .args([
            "recover", "--record", "a", "--code", "c", "--node", "7", "--fleet",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Options that would be silently ignored together are refused up front
/// (exit 2, naming both), before any file is read or node contacted.
#[test]
fn options_that_would_be_ignored_together_are_refused() {
    let key = "ab".repeat(32);
    let cases: [&[&str]; 3] = [
        // --fleet's `endpoints` would be replaced by --endpoint.
        &[
            "operator",
            "install",
            "--bundle",
            "b",
            "--fleet",
            "f",
            "--endpoint",
            "http://127.0.0.1:9",
            "--auditor-key",
            &key,
            "--operator-key",
            &key,
        ],
        // A bundle file names its own epoch.
        &[
            "operator",
            "install",
            "--bundle",
            "b",
            "--epoch",
            "3",
            "--endpoint",
            "http://127.0.0.1:9",
            "--auditor-key",
            &key,
            "--operator-key",
            &key,
        ],
        // A client that reads fleet.public learns no epoch to remember.
        &["recover", "--record", "a", "--code", "c", "--state", "s"],
    ];
    for args in cases {
        let out = Command::new(BKV).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let text = stderr(&out);
        let named: Vec<&str> = match args[1] {
            "install" if args.contains(&"--fleet") => vec!["--fleet", "--endpoint"],
            "install" => vec!["--bundle", "--epoch"],
            _ => vec!["--auditor-key"],
        };
        for option in named {
            assert!(text.contains(option), "{args:?}: {text}");
        }
    }
}

#[test]
fn a_node_checks_its_arguments_and_its_secrets_file_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("fleet.secrets");
    std::fs::write(
        &secrets,
        hex(&FleetSecrets::generate(&mut OsRng).to_bytes()[..]),
    )
    .unwrap();
    let data = dir.path().join("data");
    let node = |id: &str| {
        Command::new(BKV)
            .args(["node", "--id", id, "--peers"])
            .arg(format!(
                "1=127.0.0.1:{},2=127.0.0.1:{},3=127.0.0.1:{}",
                free_port(),
                free_port(),
                free_port()
            ))
            .arg("--data")
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--secrets")
            .arg(&secrets)
            .output()
            .unwrap()
    };

    // A missing secrets file: named, with the next step.
    let missing = dir.path().join("missing.secrets");
    let out = Command::new(BKV)
        .args(["node", "--id", "1", "--peers"])
        .arg(format!("1=127.0.0.1:{}", free_port()))
        .arg("--data")
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--secrets")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stderr(&out);
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("bkv fleet up"), "{text}");
    assert!(!data.exists());

    // An id that is not a member: a usage error, nothing created.
    let out = node("4");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("--id 4 is not in --peers"), "{out:?}");
    assert!(!stderr(&out).contains("serving"));
    assert!(!data.exists());

    // A secrets file others can read is refused, naming the file and fix.
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = node("1");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stderr(&out);
    assert!(
        text.contains(&format!("chmod 600 {}", secrets.display())),
        "{text}"
    );
    assert!(!text.contains("serving"));
    assert!(!data.exists());
}

#[test]
fn exit_codes_are_in_help_and_in_the_readme_alike() {
    let help = Command::new(BKV).arg("--help").output().unwrap();
    let help = stdout(&help);
    let table = help
        .split("Exit codes:")
        .nth(1)
        .unwrap_or_else(|| panic!("no exit codes in --help: {help}"));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut codes = 0;
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let (code, meaning) = line.trim().split_once("  ").unwrap();
        assert!(
            readme.contains(&format!("| {code} | {} |", meaning.trim())),
            "README lacks exit code {code}: {meaning}"
        );
        codes += 1;
    }
    assert_eq!(codes, 7);
}
