//! The loopback network front of a node (SPEC.md §23): threads, TCP between
//! peers, a small HTTP API for clients, and a wall clock for ticks. All the
//! decisions stay in [`Node`]; this module only carries bytes and time.
//!
//! * Peers: one TCP connection per direction, frames `u32be(len) || sealed
//!   envelope` (§21). A peer that cannot be reached loses the message (Raft
//!   retries).
//! * Clients: `POST /v1/vault` with a vault wire message as the body; the
//!   answer is the vault's wire answer (a Rejection when refused), always
//!   with status 200. `GET /v1/status` reports the node's state as text.

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use backup_key_vault::vault::VaultPolicy;
use backup_key_vault::wire::{Rejection, RejectionCode};
use backup_key_vault::{FleetSecrets, OsRng};

use crate::disk::RedbHost;
use crate::error::FleetError;
use crate::node::{Node, NodeConfig};
use crate::platform::{FileNvram, Nvram};

/// Largest frame a peer may send.
pub const MAX_FRAME: usize = 16 << 20;
/// Largest client request body.
pub const MAX_REQUEST: usize = 64 << 10;
/// How long a client request may wait for its answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to run one member on loopback.
#[derive(Debug)]
pub struct NodeOptions {
    /// This node's id.
    pub id: u64,
    /// Every member's peer address, this node's included (it listens there).
    pub peers: BTreeMap<u64, SocketAddr>,
    /// The client HTTP address.
    pub listen: SocketAddr,
    /// Where the node's redb database lives.
    pub data_dir: PathBuf,
    /// The vault policy.
    pub policy: VaultPolicy,
    /// Wall-clock length of one tick.
    pub tick: Duration,
    /// A file standing in for the HSM's NVRAM (§22.4). **Not tamper-proof**:
    /// whoever can write it can roll it back with the disk. `None`: the
    /// node runs without NVRAM and every start goes through the §22.3 gate.
    pub nvram: Option<PathBuf>,
}

enum Input {
    Peer(Vec<u8>),
    Client(Vec<u8>, Sender<Vec<u8>>),
    Status(Sender<String>),
}

fn io_err(e: impl core::fmt::Display) -> FleetError {
    FleetError::Io(e.to_string())
}

/// Runs a node until the process ends.
pub fn run_node(options: NodeOptions, secrets: &FleetSecrets) -> Result<(), FleetError> {
    std::fs::create_dir_all(&options.data_dir).map_err(io_err)?;
    let host = RedbHost::open_path(&options.data_dir.join("node.redb"))?;
    let nvram: Option<Box<dyn Nvram>> = options
        .nvram
        .as_deref()
        .map(|p| Box::new(FileNvram::new(p)) as Box<dyn Nvram>);
    let members: Vec<u64> = options.peers.keys().copied().collect();
    let mut config = NodeConfig::new(options.id, members, options.policy.clone());
    // Ticks are wall-clock here: vary election timeouts per node.
    config.election_tick = 10 + 2 * (options.id as usize % 5);
    config.request_timeout_ticks = 150;
    let mut rng = OsRng;
    let mut node = Node::open(config, secrets, Box::new(host), nvram, &mut rng)?;
    let disk = options.data_dir.join("node.redb");
    if let Some(why) = node.disk_rejection() {
        eprintln!(
            "node {}: refused {} ({why}): it is not what this node wrote; starting as if wiped and recovering from the peers (SPEC.md §22.1)",
            options.id,
            disk.display()
        );
    } else if node.counters().rollbacks_detected > 0 {
        eprintln!(
            "node {}: NVRAM shows {} is older than this node's latest state: discarded; recovering from the peers (SPEC.md §22.4)",
            options.id,
            disk.display()
        );
    }

    let own = options
        .peers
        .get(&options.id)
        .ok_or_else(|| FleetError::Io("this node's id is not in --peers".into()))?;
    let (tx, rx) = mpsc::channel::<Input>();
    let listener = TcpListener::bind(own).map_err(io_err)?;
    let peer_tx = tx.clone();
    thread::spawn(move || accept_peers(listener, peer_tx));
    let server = tiny_http::Server::http(options.listen).map_err(io_err)?;
    let client_tx = tx.clone();
    thread::spawn(move || serve_clients(server, client_tx));
    let mut senders: BTreeMap<u64, SyncSender<Vec<u8>>> = BTreeMap::new();
    for (id, addr) in &options.peers {
        if *id == options.id {
            continue;
        }
        let (s, r) = mpsc::sync_channel::<Vec<u8>>(4096);
        let addr = *addr;
        thread::spawn(move || send_to_peer(addr, r));
        senders.insert(*id, s);
    }
    drive(&mut node, &rx, &senders, options.tick, &mut rng);
    Ok(())
}

fn drive(
    node: &mut Node,
    rx: &Receiver<Input>,
    senders: &BTreeMap<u64, SyncSender<Vec<u8>>>,
    tick: Duration,
    rng: &mut OsRng,
) {
    let started = Instant::now();
    let mut next_tick = Instant::now() + tick;
    let mut waiting: BTreeMap<u64, Sender<Vec<u8>>> = BTreeMap::new();
    let mut next_tag = 0u64;
    loop {
        let now_ms = started.elapsed().as_millis() as u64;
        let timeout = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(timeout) {
            Ok(Input::Peer(bytes)) => node.receive(rng, &bytes),
            Ok(Input::Client(body, reply)) => {
                next_tag += 1;
                match node.client_request(rng, now_ms, next_tag, &body) {
                    Some(answer) => {
                        let _ = reply.send(answer);
                    }
                    None => {
                        waiting.insert(next_tag, reply);
                    }
                }
            }
            Ok(Input::Status(reply)) => {
                let c = node.counters();
                let _ = reply.send(format!(
                    "id {}\nserving {}\nleader {}\nterm {}\napplied {}\nincarnation {}\nnvram {}\naccepted {}\nforged {}\nreplayed {}\nstale {}\nmisaddressed {}\ncommands_proposed {}\nentries_proposed {}\ndisk_rejected {}\nrollbacks_detected {}\nanswers_refused {}\nvotes_withheld {}\nrefused_while_recovering {}\n",
                    node.id(),
                    node.is_serving(),
                    node.leader(),
                    node.term(),
                    node.applied_index(),
                    node.incarnation(),
                    node.has_nvram(),
                    c.transport.accepted,
                    c.transport.forged,
                    c.transport.replayed,
                    c.transport.stale,
                    c.transport.misaddressed,
                    c.commands_proposed,
                    c.entries_proposed,
                    c.disk_rejected,
                    c.rollbacks_detected,
                    c.answers_refused,
                    c.votes_withheld,
                    c.refused_while_recovering,
                ));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next_tick {
            node.tick(rng, now_ms);
            next_tick += tick;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + tick;
            }
        }
        node.drive(rng, now_ms);
        if node.is_faulted() {
            // The engine refused to continue: stop; the operator restarts
            // the node from its disk.
            return;
        }
        let out = node.take_output();
        for (to, bytes) in out.messages {
            if let Some(s) = senders.get(&to) {
                let _ = s.try_send(bytes);
            }
        }
        for (tag, bytes) in out.replies {
            if let Some(reply) = waiting.remove(&tag) {
                let _ = reply.send(bytes);
            }
        }
    }
}

fn accept_peers(listener: TcpListener, tx: Sender<Input>) {
    for stream in listener.incoming().flatten() {
        let tx = tx.clone();
        thread::spawn(move || read_frames(stream, tx));
    }
}

fn read_frames(mut stream: TcpStream, tx: Sender<Input>) {
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return;
        }
        let mut frame = vec![0u8; len];
        if stream.read_exact(&mut frame).is_err() {
            return;
        }
        if tx.send(Input::Peer(frame)).is_err() {
            return;
        }
    }
}

fn send_to_peer(addr: SocketAddr, rx: Receiver<Vec<u8>>) {
    let mut stream: Option<TcpStream> = None;
    let mut retry_at = Instant::now();
    for frame in rx {
        if stream.is_none() && Instant::now() >= retry_at {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    stream = Some(s);
                }
                Err(_) => retry_at = Instant::now() + Duration::from_millis(100),
            }
        }
        let Some(s) = stream.as_mut() else {
            continue;
        };
        let mut buf = Vec::with_capacity(4 + frame.len());
        buf.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        buf.extend_from_slice(&frame);
        if s.write_all(&buf).is_err() {
            stream = None;
        }
    }
}

fn serve_clients(server: tiny_http::Server, tx: Sender<Input>) {
    for mut request in server.incoming_requests() {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut body = Vec::new();
            let read = request
                .as_reader()
                .take(MAX_REQUEST as u64 + 1)
                .read_to_end(&mut body);
            let unavailable = Rejection {
                code: RejectionCode::Unavailable,
            }
            .to_bytes();
            let (status, answer) = match (request.method().as_str(), request.url()) {
                ("POST", "/v1/vault") if read.is_ok() && body.len() <= MAX_REQUEST => {
                    let (reply_tx, reply_rx) = mpsc::channel();
                    let _ = tx.send(Input::Client(body, reply_tx));
                    (
                        200,
                        reply_rx.recv_timeout(CLIENT_TIMEOUT).unwrap_or(unavailable),
                    )
                }
                ("GET", "/v1/status") => {
                    let (reply_tx, reply_rx) = mpsc::channel();
                    let _ = tx.send(Input::Status(reply_tx));
                    match reply_rx.recv_timeout(CLIENT_TIMEOUT) {
                        Ok(s) => (200, s.into_bytes()),
                        Err(_) => (503, b"unavailable\n".to_vec()),
                    }
                }
                _ => (404, b"not found\n".to_vec()),
            };
            let _ =
                request.respond(tiny_http::Response::from_data(answer).with_status_code(status));
        });
    }
}

/// A client of a loopback fleet: sends vault wire messages to a node's
/// HTTP API and returns its answer.
#[derive(Debug)]
pub struct FleetClient {
    agent: ureq::Agent,
}

impl Default for FleetClient {
    fn default() -> Self {
        Self::new()
    }
}

impl FleetClient {
    /// A client with a 10-second timeout per request.
    pub fn new() -> Self {
        Self {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    /// Sends `request` to the node at `base` (`http://127.0.0.1:port`).
    pub fn call(&self, base: &str, request: &[u8]) -> Result<Vec<u8>, FleetError> {
        let url = format!("{}/v1/vault", base.trim_end_matches('/'));
        self.agent
            .post(&url)
            .send(request)
            .map_err(io_err)?
            .body_mut()
            .read_to_vec()
            .map_err(io_err)
    }

    /// The node's status text.
    pub fn status(&self, base: &str) -> Result<String, FleetError> {
        let url = format!("{}/v1/status", base.trim_end_matches('/'));
        self.agent
            .get(&url)
            .call()
            .map_err(io_err)?
            .body_mut()
            .read_to_string()
            .map_err(io_err)
    }
}
