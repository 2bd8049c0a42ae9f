//! Process-spawning helpers shared by the `bkv` process tests: the binary,
//! free loopback ports, processes killed when a test ends however it
//! ends, an auditor server, and a fleet of `bkv node` processes.
//!
//! Everything listens on 127.0.0.1 only.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bkv_fleet::net::FleetClient;

/// The `bkv` binary under test.
pub const BKV: &str = env!("CARGO_BIN_EXE_bkv");

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` distinct loopback ports, free at the time of the call (all bound at
/// once, so no two are the same).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Runs `bkv ARGS` to completion.
pub fn bkv(args: &[&str]) -> Output {
    Command::new(BKV)
        .args(args)
        .env_remove("BKV_RECOVERY_CODE")
        .env_remove("BKV_AUDITOR_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Stdout and stderr of an output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A child process, stopped and reaped when dropped.
pub struct Process(pub Option<Child>);

impl Process {
    /// Stops it as an operator would, with SIGTERM, and reaps it; kills it
    /// if it is still running 15 s later. (`bkv fleet up` stops its nodes
    /// on SIGTERM; killed outright, it would leave them running.)
    pub fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // Only a child still running (not reaped: its pid is still its
            // own) is signalled.
            let running = matches!(c.try_wait(), Ok(None));
            if let (true, Ok(pid)) = (running, i32::try_from(c.id())) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while std::time::Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `bkv auditor serve` on an ephemeral loopback port.
pub struct AuditorServer {
    /// The process.
    pub process: Process,
    /// Its base URL.
    pub url: String,
    /// Its public key, hex.
    pub key: String,
    /// A 0600 file holding its bearer token.
    pub token_file: PathBuf,
}

impl AuditorServer {
    /// Starts an auditor with its database in `dir/auditor` and its token
    /// in `dir/auditor.token`.
    pub fn start(dir: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let token_file = dir.join("auditor.token");
        std::fs::write(&token_file, "test-token-0123456789\n").unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut child = Command::new(BKV)
            .args(["auditor", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.join("auditor"))
            .arg("--token-file")
            .arg(&token_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let process = Process(Some(child));
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .next()
            .unwrap()
            .unwrap()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        let key = lines
            .next()
            .unwrap()
            .unwrap()
            .strip_prefix("auditor key ")
            .unwrap()
            .to_string();
        Self {
            process,
            url,
            key,
            token_file,
        }
    }
}

/// `n` `bkv node` processes on loopback, each started with `per_node(i)`
/// (1-based) appended to its common arguments.
pub struct NodeFleet {
    /// Each node's full argument list (to restart it).
    pub args: Vec<Vec<String>>,
    /// Each node's client URL.
    pub endpoints: Vec<String>,
    /// The processes.
    pub nodes: Vec<Process>,
}

impl NodeFleet {
    /// Starts the nodes, data under `dir/node-i`, and waits until every
    /// one serves and a leader is known.
    pub fn start(dir: &Path, n: usize, per_node: impl Fn(usize) -> Vec<String>) -> Self {
        let ports = free_ports(2 * n);
        let peers: Vec<String> = (1..=n)
            .map(|i| format!("{i}=127.0.0.1:{}", ports[i - 1]))
            .collect();
        let endpoints: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", ports[n + i]))
            .collect();
        let args: Vec<Vec<String>> = (1..=n)
            .map(|i| {
                let mut a: Vec<String> = [
                    "node",
                    "--id",
                    &i.to_string(),
                    "--peers",
                    &peers.join(","),
                    "--data",
                    &dir.join(format!("node-{i}")).display().to_string(),
                    "--listen",
                    endpoints[i - 1].trim_start_matches("http://"),
                    "--insecure-fast",
                    "--tick-ms",
                    "10",
                ]
                .map(str::to_string)
                .to_vec();
                a.extend(per_node(i));
                a
            })
            .collect();
        let mut fleet = Self {
            args,
            endpoints,
            nodes: Vec::new(),
        };
        for i in 0..n {
            let p = fleet.spawn(i);
            fleet.nodes.push(p);
        }
        fleet.wait_serving();
        fleet
    }

    fn spawn(&self, i: usize) -> Process {
        Process(Some(
            Command::new(BKV)
                .args(&self.args[i])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ))
    }

    /// Stops node `i` (0-based) and starts it again from its disk.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].stop();
        self.nodes[i] = self.spawn(i);
        self.wait_serving();
    }

    /// Stops node `i` (0-based), deletes its data directory (a new disk),
    /// and starts it again: it recovers the records from its peers.
    pub fn replace(&mut self, i: usize) {
        self.nodes[i].stop();
        let data = self.args[i]
            .iter()
            .position(|a| a == "--data")
            .map(|k| PathBuf::from(&self.args[i][k + 1]))
            .unwrap();
        std::fs::remove_dir_all(&data).unwrap();
        self.nodes[i] = self.spawn(i);
        self.wait_serving();
    }

    /// Waits (at most 60 s) until every node serves and one knows a leader.
    pub fn wait_serving(&self) {
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

    /// `--endpoint URL` for every node.
    pub fn endpoint_args(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .flat_map(|e| ["--endpoint".to_string(), e.clone()])
            .collect()
    }
}

/// An HTTP agent that reports every status as an answer.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `POST url` with `body`; the status and the body as text.
pub fn post_bytes(url: &str, body: &[u8]) -> (u16, String) {
    let mut response = agent().post(url).send(body).unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// `GET url`: the status and the body's bytes.
pub fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let mut response = agent().get(url).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

/// A loopback HTTP server that reads each of up to `count` requests (head
/// and body) and answers every one with `status` and `body`: a server
/// failing on its side, for the commands that talk to auditors and nodes.
pub fn answering_server(
    count: usize,
    status: &'static str,
    content_type: &'static str,
    body: &'static [u8],
) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let mut wanted = None;
            loop {
                if wanted.is_none() {
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        wanted = Some(end + 4 + length);
                    }
                }
                if wanted.is_some_and(|w| request.len() >= w) {
                    break;
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    addr
}
