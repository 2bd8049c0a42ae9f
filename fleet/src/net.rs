//! The network front of a node (SPEC.md §23): threads, TCP between peers,
//! an HTTP API for clients (the shared `bkv-http` front: hyper on tokio,
//! many connections at once, header and body timeouts, 413 for a body over
//! [`MAX_REQUEST`], graceful shutdown), and a wall clock for ticks. All the
//! decisions stay in [`Node`]; this module only carries bytes and time,
//! through one channel into the loop that drives the node.
//!
//! * Peers: one TCP connection per direction, frames `u32be(len) || sealed
//!   envelope` (§21). A peer that cannot be reached loses the message (Raft
//!   retries).
//! * Clients: `POST /v1/vault` with a vault wire message as the body; the
//!   answer is the vault's wire answer (a Rejection when refused), always
//!   with status 200. `GET /v1/status` reports the node's state as text;
//!   `GET /metrics` the same and more in Prometheus text format.
//! * The fleet's validation bundle (§16.2, §23): `GET /v1/bundle` answers
//!   the bundle this node hands out (its §16.1 bytes; 404 without one).
//!   `POST /v1/bundle` installs one, authenticated by its content: the
//!   node checks it under the auditor and operator keys it was started
//!   with ([`NodeOptions::anchors`]) against the wall clock, refuses one
//!   older than its own and one that does not list this fleet's keys
//!   ([`Node::check_bundle`]), writes it to `bundle` in its data directory
//!   (temporary file, fsync, rename), and only then hands it out. 200 with
//!   `installed epoch N`; 422 with the reason when refused (nothing
//!   changed); 403 when the node has no anchors; 500 when it could not be
//!   stored (nothing changed). The checks that need nothing of the node
//!   (decoding, signatures, log proof, validity) are made first on the
//!   front's thread, one bundle at a time (503 `busy` meanwhile), so a
//!   flood of forged bundles never reaches the driving loop
//!   (`precheck_bundle`). On start the stored bundle is checked the
//!   same way and handed out only if it still passes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use backup_key_vault::bundle::{EncodedBundle, TrustAnchors};
use backup_key_vault::vault::VaultPolicy;
use backup_key_vault::wire::{MessageType, Rejection, RejectionCode};
use backup_key_vault::{BundleError, FleetSecrets, OsRng};
use bkv_http::tokio::sync::oneshot;
use bkv_http::{Answer, Front, Handler, Limits, Request};

use crate::disk::RedbHost;
use crate::error::FleetError;
use crate::node::{Node, NodeConfig, RecordStats};
use crate::platform::{FileNvram, HostError, HostOp, HostStore, Nvram, Row, Table};

/// Largest frame a peer may send.
pub const MAX_FRAME: usize = 16 << 20;
/// Largest client request body: a vault message, or a bundle to install
/// (at most `bundle::MAX_BUNDLE_LEN`, 149,124 bytes).
pub const MAX_REQUEST: usize = 160 << 10;
/// How long a client request may wait for its answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send its request head, and then its body.
pub const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Client connections served at once (more wait in the accept queue).
pub const MAX_CLIENT_CONNECTIONS: usize = 1024;
/// The KE3 (second message) deadline of SPEC.md §23, in wall-clock time:
/// a request whose command has not applied by then is answered
/// `Unavailable`.
pub const REQUEST_DEADLINE: Duration = Duration::from_millis(1500);

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
    /// The auditor and operator keys (and namespace) a bundle must verify
    /// under to be installed (SPEC.md §17). `None`: the node installs no
    /// bundle and hands none out.
    pub anchors: Option<TrustAnchors>,
    /// A planned stop: once this is set (by a signal handler, say), the
    /// node writes the record rows that wait in its memory
    /// ([`Node::write_records`]), so that its next start replays nothing,
    /// stops its client front and [`run_node`] returns `Ok`. `None`: the
    /// node runs until its process ends.
    pub stop: Option<Arc<AtomicBool>>,
}

/// Why [`drive`] returned.
enum Stopped {
    /// [`NodeOptions::stop`] was set.
    Asked,
    /// The engine refused to go on.
    Faulted,
    /// Every input sender is gone.
    Disconnected,
}

/// Name of the file, in the node's data directory, that keeps the
/// installed bundle (its §16.1 encoding).
pub const BUNDLE_FILE: &str = "bundle";

/// What a bundle installation came to.
type Installed = Result<u64, (u16, String)>;

enum Input {
    Peer(Vec<u8>),
    Client(Vec<u8>, oneshot::Sender<Vec<u8>>),
    Status(oneshot::Sender<String>),
    Metrics(oneshot::Sender<String>),
    Bundle(oneshot::Sender<Option<Vec<u8>>>),
    InstallBundle(Vec<u8>, oneshot::Sender<Installed>),
}

/// Upper bounds (seconds) of the disk write latency histogram.
const DISK_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

/// Durations of the host's durable writes (each a redb commit with fsync).
#[derive(Debug, Default)]
struct DiskStats {
    buckets: [AtomicU64; DISK_BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
    failed: AtomicU64,
}

/// The node's disk, timed: every [`HostStore::apply`] is one durable write.
struct TimedHost {
    inner: RedbHost,
    stats: Arc<DiskStats>,
}

impl HostStore for TimedHost {
    fn scan(&self, table: Table) -> Result<Vec<Row>, HostError> {
        self.inner.scan(table)
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        self.inner.get(table, key)
    }

    fn get_many(&self, keys: &[(Table, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        self.inner.get_many(keys)
    }

    fn apply(&mut self, ops: &[HostOp]) -> Result<(), HostError> {
        let started = Instant::now();
        let result = self.inner.apply(ops);
        let took = started.elapsed();
        let s = &self.stats;
        for (bound, bucket) in DISK_BUCKETS.iter().zip(&s.buckets) {
            if took.as_secs_f64() <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        s.count.fetch_add(1, Ordering::Relaxed);
        s.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if result.is_err() {
            s.failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

fn io_err(e: impl core::fmt::Display) -> FleetError {
    FleetError::Io(e.to_string())
}

/// Milliseconds since the Unix epoch: the clock a bundle's validity
/// window is checked against.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Where a node keeps its bundle, and what it checks bundles against.
struct BundleStore {
    path: PathBuf,
    anchors: Option<TrustAnchors>,
    /// The epoch of the bundle stored in `path` at start even when it no
    /// longer verifies (expired, pins changed): a floor an install must
    /// not go below, so a restart does not reopen the door to an older,
    /// still valid epoch.
    floor: std::cell::Cell<Option<u64>>,
}

impl BundleStore {
    /// Checks, stores durably, then installs; on any refusal or failure the
    /// node keeps what it had.
    fn install(&self, node: &mut Node, bytes: &[u8]) -> Installed {
        self.check_and_set(node, bytes, true)
    }

    /// [`Self::install`]; `store: false` for the bundle read from the file
    /// itself at start.
    fn check_and_set(&self, node: &mut Node, bytes: &[u8], store: bool) -> Installed {
        let anchors = self.anchors.as_ref().ok_or_else(|| {
            (
                403,
                "this node was started without --auditor-key and --operator-key: it installs no bundle; restart it with both".to_string(),
            )
        })?;
        // The bundle already handed out, offered again (anyone can fetch it
        // from GET /v1/bundle): nothing to check or write.
        if let Some(held) = node.bundle().filter(|b| b.as_bytes() == bytes) {
            return Ok(held.bundle().epoch);
        }
        let bundle = EncodedBundle::from_bytes(bytes)
            .map_err(|e| (422, format!("refused: not a validation bundle: {e}")))?;
        if let Some(floor) = self.floor.get() {
            if bundle.bundle().epoch < floor {
                return Err((
                    422,
                    format!(
                        "refused: rollback: epoch {} is older than the stored epoch {floor}",
                        bundle.bundle().epoch
                    ),
                ));
            }
        }
        let fleet = node
            .check_bundle(anchors, &bundle, unix_ms())
            .map_err(|e| match e {
                BundleError::KeyNotListed(role) => (
                    422,
                    format!(
                        "refused: the bundle names another fleet's keys (its {role} key is not this node's)"
                    ),
                ),
                e => (422, format!("refused: {e}")),
            })?;
        if store {
            write_durably(&self.path, bundle.as_bytes()).map_err(|e| {
                (
                    500,
                    format!(
                        "could not store the bundle in {}: {e}; nothing changed",
                        self.path.display()
                    ),
                )
            })?;
        }
        node.set_bundle(bundle)
            .map_err(|e| (422, format!("refused: {e}")))?;
        let epoch = fleet.epoch_to_store();
        self.floor
            .set(Some(self.floor.get().map_or(epoch, |f| f.max(epoch))));
        Ok(epoch)
    }

    /// At start: hands out the stored bundle if it still passes every check.
    fn load(&self, node: &mut Node) {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(
                    "node {}: cannot read {}: {e}; handing out no bundle until the operator installs one",
                    node.id(),
                    self.path.display()
                );
                return;
            }
        };
        if let Ok(stored) = EncodedBundle::from_bytes(&bytes) {
            self.floor.set(Some(stored.bundle().epoch));
        }
        match self.check_and_set(node, &bytes, false) {
            Ok(epoch) => tracing::info!(
                "node {}: handing out the stored bundle of epoch {epoch} ({})",
                node.id(),
                self.path.display()
            ),
            Err((_, why)) => tracing::warn!(
                "node {}: the stored bundle {} is not handed out ({why}); install one with `bkv operator install`",
                node.id(),
                self.path.display()
            ),
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one: a temporary file beside it, synced, renamed, the directory synced.
fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Runs a node: until its process ends, or until [`NodeOptions::stop`] is
/// set (then `Ok`, the rows that waited written; `Err` if they could not
/// be), or until the node faults (`Err(FleetError::Faulted)`).
pub fn run_node(options: NodeOptions, secrets: &FleetSecrets) -> Result<(), FleetError> {
    std::fs::create_dir_all(&options.data_dir).map_err(io_err)?;
    let disk_stats = Arc::new(DiskStats::default());
    let host = TimedHost {
        inner: RedbHost::open_path(&options.data_dir.join("node.redb"))?,
        stats: disk_stats.clone(),
    };
    let nvram: Option<Box<dyn Nvram>> = options
        .nvram
        .as_deref()
        .map(|p| Box::new(FileNvram::new(p)) as Box<dyn Nvram>);
    let members: Vec<u64> = options.peers.keys().copied().collect();
    let mut config = NodeConfig::new(options.id, members, options.policy.clone());
    // Ticks are wall-clock here: vary election timeouts per node.
    config.election_tick = 10 + 2 * (options.id as usize % 5);
    // SPEC.md §23: 1.5 s, whatever the tick.
    config.request_timeout_ticks = ticks_for(REQUEST_DEADLINE, options.tick);
    let mut rng = OsRng;
    let mut node = Node::open(config, secrets, Box::new(host), nvram, &mut rng)?;
    let disk = options.data_dir.join("node.redb");
    if let Some(why) = node.disk_rejection() {
        tracing::warn!(
            node = options.id,
            disk = %disk.display(),
            reason = why,
            "node {}: refused {} ({why}): it is not what this node wrote; starting as if wiped and recovering from the peers (SPEC.md §22.1)",
            options.id,
            disk.display()
        );
    } else if node.counters().rollbacks_detected > 0 {
        tracing::warn!(
            node = options.id,
            disk = %disk.display(),
            "node {}: NVRAM shows {} is older than this node's latest state: discarded; recovering from the peers (SPEC.md §22.4)",
            options.id,
            disk.display()
        );
    }
    tracing::info!(
        node = options.id,
        incarnation = node.incarnation(),
        nvram = node.has_nvram(),
        serving = node.is_serving(),
        applied = node.applied_index(),
        disk = %disk.display(),
        "node started"
    );

    let own = options
        .peers
        .get(&options.id)
        .ok_or_else(|| FleetError::Io("this node's id is not in --peers".into()))?;
    let bundles = BundleStore {
        path: options.data_dir.join(BUNDLE_FILE),
        anchors: options.anchors.clone(),
        floor: std::cell::Cell::new(None),
    };
    bundles.load(&mut node);
    let (tx, rx) = mpsc::channel::<Input>();
    let listener = TcpListener::bind(own).map_err(io_err)?;
    let peer_tx = tx.clone();
    thread::spawn(move || accept_peers(listener, peer_tx));
    let front = Front::bind(options.listen).map_err(FleetError::Io)?;
    let shutdown = front.shutdown_handle();
    let handler = client_handler(tx.clone(), disk_stats, options.anchors.clone());
    let front_thread = thread::spawn(move || {
        if let Err(e) = front.run(client_limits(), handler) {
            tracing::error!(error = %e, "the client front stopped");
        }
    });
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
    drop(tx);
    let stopped = drive(
        &mut node,
        &rx,
        &senders,
        options.tick,
        &mut rng,
        &bundles,
        options.stop.as_deref(),
    );
    // Requests still queued hold their reply channels: dropped here, so
    // that their clients are answered `Unavailable` before the front
    // closes; the front then finishes the connections in flight (within
    // its grace, `client_limits`).
    drop(rx);
    shutdown.shutdown();
    if front_thread.join().is_err() {
        tracing::error!(node = node.id(), "the client front's thread panicked");
    }
    match stopped {
        Stopped::Asked => {
            // What a restart would otherwise replay from the log. A write
            // that fails loses nothing (the next start rebuilds the rows
            // from the log, SPEC.md §22.2), but the disk failed: the stop
            // says so.
            match node.write_records(&mut rng) {
                Ok(()) => {
                    tracing::info!(
                        node = node.id(),
                        applied = node.applied_index(),
                        "node stopped on request: the record rows that waited are written"
                    );
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(
                        node = node.id(),
                        error = %e,
                        "node stopped on request; writing the record rows that waited failed: the next start rebuilds them from the log"
                    );
                    Err(e)
                }
            }
        }
        Stopped::Faulted => Err(FleetError::Faulted),
        Stopped::Disconnected => Ok(()),
    }
}

/// Ticks in `deadline` at `tick` per tick (at least one).
pub fn ticks_for(deadline: Duration, tick: Duration) -> u64 {
    let tick = tick.as_micros().max(1);
    u64::try_from(deadline.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The client front's limits.
pub fn client_limits() -> Limits {
    Limits {
        header_timeout: CLIENT_READ_TIMEOUT,
        body_timeout: CLIENT_READ_TIMEOUT,
        max_body: MAX_REQUEST,
        max_connections: MAX_CLIENT_CONNECTIONS,
        grace: Duration::from_secs(5),
    }
}

fn drive(
    node: &mut Node,
    rx: &Receiver<Input>,
    senders: &BTreeMap<u64, SyncSender<Vec<u8>>>,
    tick: Duration,
    rng: &mut OsRng,
    bundles: &BundleStore,
    stop: Option<&AtomicBool>,
) -> Stopped {
    let started = Instant::now();
    let mut next_tick = Instant::now() + tick;
    let mut waiting: BTreeMap<u64, oneshot::Sender<Vec<u8>>> = BTreeMap::new();
    let mut next_tag = 0u64;
    let mut seen = Seen::of(node);
    loop {
        // Checked at least once a tick: the receive below waits no longer.
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Stopped::Asked;
        }
        let now_ms = started.elapsed().as_millis() as u64;
        let timeout = next_tick.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(timeout) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Stopped::Disconnected,
        };
        // Group commit: take every input already queued (up to a bound)
        // before one `drive`, so one Ready (one disk write, one fsync)
        // carries all the requests and messages that arrived meanwhile,
        // instead of one write per input.
        let mut inputs: Vec<Input> = first.into_iter().collect();
        while inputs.len() < MAX_INPUTS_PER_ROUND {
            match rx.try_recv() {
                Ok(input) => inputs.push(input),
                Err(_) => break,
            }
        }
        for input in inputs {
            handle_input(
                node,
                rng,
                now_ms,
                input,
                &mut waiting,
                &mut next_tag,
                bundles,
            );
        }
        if Instant::now() >= next_tick {
            node.tick(rng, now_ms);
            next_tick += tick;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + tick;
            }
        }
        node.drive(rng, now_ms);
        seen.log_changes(node);
        if node.is_faulted() {
            // The engine refused to continue: stop; the operator restarts
            // the node from its disk.
            tracing::error!(
                node = node.id(),
                reason = node.fault_reason().unwrap_or("unknown"),
                error = node.fault_detail().unwrap_or("none"),
                applied = node.applied_index(),
                "node stopped: restart it; it recovers from its disk and the peers"
            );
            return Stopped::Faulted;
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

/// What the loop last logged about the node, so that it logs changes only.
struct Seen {
    serving: bool,
    leader: u64,
    term: u64,
    rollbacks: u64,
    answers_refused: u64,
}

impl Seen {
    fn of(node: &Node) -> Self {
        let c = node.counters();
        Self {
            serving: node.is_serving(),
            leader: node.leader(),
            term: node.term(),
            rollbacks: c.rollbacks_detected,
            answers_refused: c.answers_refused,
        }
    }

    fn log_changes(&mut self, node: &Node) {
        let now = Self::of(node);
        let id = node.id();
        if now.serving && !self.serving {
            tracing::info!(
                node = id,
                applied = node.applied_index(),
                "caught up with the fleet: serving clients"
            );
        }
        if now.leader != self.leader || now.term != self.term {
            tracing::info!(
                node = id,
                leader = now.leader,
                term = now.term,
                "leader changed"
            );
        }
        if now.rollbacks > self.rollbacks {
            tracing::warn!(
                node = id,
                rollbacks_detected = now.rollbacks,
                "a peer showed this node's disk is older than its last run: recovering (SPEC.md §22.3)"
            );
        }
        if now.answers_refused > self.answers_refused {
            tracing::debug!(
                node = id,
                answers_refused = now.answers_refused,
                "answers not bound to this boot dropped (SPEC.md §21.3)"
            );
        }
        *self = now;
    }
}

/// Most inputs handled before one `drive` (one Ready, one disk write).
const MAX_INPUTS_PER_ROUND: usize = 1024;

/// Hands one input to the node; client answers that are ready at once go
/// back now, the others wait under their tag.
fn handle_input(
    node: &mut Node,
    rng: &mut OsRng,
    now_ms: u64,
    input: Input,
    waiting: &mut BTreeMap<u64, oneshot::Sender<Vec<u8>>>,
    next_tag: &mut u64,
    bundles: &BundleStore,
) {
    match input {
        Input::Peer(bytes) => node.receive(rng, &bytes),
        Input::Client(body, reply) => {
            *next_tag += 1;
            match node.client_request(rng, now_ms, *next_tag, &body) {
                Some(answer) => {
                    let _ = reply.send(answer);
                }
                None => {
                    waiting.insert(*next_tag, reply);
                }
            }
        }
        Input::Bundle(reply) => {
            let _ = reply.send(node.bundle().map(|b| b.as_bytes().to_vec()));
        }
        Input::InstallBundle(bytes, reply) => {
            let _ = reply.send(bundles.install(node, &bytes));
        }
        Input::Metrics(reply) => {
            let _ = reply.send(node_metrics(node));
        }
        Input::Status(reply) => {
            let c = node.counters();
            let _ = reply.send(format!(
                "id {}\nserving {}\nleader {}\nterm {}\napplied {}\nincarnation {}\nnvram {}\naccepted {}\nforged {}\nreplayed {}\nstale {}\nmisaddressed {}\ncommands_proposed {}\nentries_proposed {}\ndisk_rejected {}\nhost_rejected {}\nhost_rejection {}\nrollbacks_detected {}\nanswers_refused {}\nvotes_withheld {}\nrefused_while_recovering {}\n",
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
                c.host_rejected,
                node.host_rejection().unwrap_or("none"),
                c.rollbacks_detected,
                c.answers_refused,
                c.votes_withheld,
                c.refused_while_recovering,
            ));
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

/// The node's state in Prometheus text format.
fn node_metrics(node: &Node) -> String {
    let c = node.counters();
    let RecordStats {
        live,
        erased,
        charges,
    } = node.record_stats();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP bkv_node_{name} {help}\n# TYPE bkv_node_{name} {kind}\nbkv_node_{name} {value}\n"
        );
    };
    metric("id", "gauge", "This node's id.", node.id());
    metric(
        "bundle_epoch",
        "gauge",
        "Epoch of the validation bundle this node hands out (0: none).",
        node.bundle().map_or(0, |b| b.bundle().epoch),
    );
    metric(
        "serving",
        "gauge",
        "1 when the node answers clients (not recovering).",
        u64::from(node.is_serving()),
    );
    metric("raft_term", "gauge", "The Raft term.", node.term());
    metric(
        "raft_leader",
        "gauge",
        "The leader this node knows (0: none).",
        node.leader(),
    );
    metric(
        "raft_commit_index",
        "gauge",
        "The Raft commit index.",
        node.commit_index(),
    );
    metric(
        "raft_applied_index",
        "gauge",
        "The last log index applied to the vault.",
        node.applied_index(),
    );
    metric(
        "raft_last_index",
        "gauge",
        "The last log index held.",
        node.last_log().1,
    );
    metric(
        "incarnation",
        "gauge",
        "This boot's incarnation.",
        node.incarnation(),
    );
    metric(
        "records_live",
        "gauge",
        "Live records in the applied table.",
        live,
    );
    metric(
        "records_erased",
        "gauge",
        "Erased records (guesses exhausted or deleted) in the applied table.",
        erased,
    );
    metric(
        "record_charges",
        "gauge",
        "Charges recorded on live records in the applied table.",
        charges,
    );
    metric(
        "commands_proposed_total",
        "counter",
        "Commands this node proposed.",
        c.commands_proposed,
    );
    metric(
        "entries_proposed_total",
        "counter",
        "Raft entries this node proposed.",
        c.entries_proposed,
    );
    metric(
        "commands_applied_total",
        "counter",
        "Commands this node applied.",
        c.commands_applied,
    );
    metric(
        "requests_timed_out_total",
        "counter",
        "Requests answered Unavailable because their command did not apply, or their read barrier did not complete, in time.",
        c.requests_timed_out,
    );
    metric(
        "read_barriers_total",
        "counter",
        "KE1s for a record this node does not hold that waited for a read barrier (SPEC.md 20.2).",
        c.read_barriers,
    );
    metric(
        "read_index_rounds_total",
        "counter",
        "ReadIndex requests made for those KE1s: one per drive round that had new ones (SPEC.md 20.2).",
        c.read_index_rounds,
    );
    metric(
        "rollbacks_detected_total",
        "counter",
        "Times this node found its disk rolled back or wiped (SPEC.md 22.3, 22.4).",
        c.rollbacks_detected,
    );
    metric(
        "disk_rejected_total",
        "counter",
        "Starts at which the disk failed authentication (SPEC.md 22.1).",
        c.disk_rejected,
    );
    metric(
        "host_rejected_total",
        "counter",
        "Host answers for the record tree refused: rows that are not a path or a slot, or that do not check against the root (SPEC.md 8.5).",
        c.host_rejected,
    );
    metric(
        "votes_withheld_total",
        "counter",
        "Vote requests ignored while recovering.",
        c.votes_withheld,
    );
    metric(
        "refused_while_recovering_total",
        "counter",
        "Client requests refused while recovering.",
        c.refused_while_recovering,
    );
    metric(
        "answers_refused_total",
        "counter",
        "Authentic answers not bound to this boot, dropped (SPEC.md 21.3).",
        c.answers_refused,
    );
    metric(
        "snapshots_total",
        "counter",
        "Snapshots taken or installed.",
        c.snapshots,
    );
    let _ = write!(
        out,
        "# HELP bkv_node_peer_messages_total Inter-node messages received, by fate.\n# TYPE bkv_node_peer_messages_total counter\n"
    );
    for (fate, n) in [
        ("accepted", c.transport.accepted),
        ("forged", c.transport.forged),
        ("replayed", c.transport.replayed),
        ("stale", c.transport.stale),
        ("misaddressed", c.transport.misaddressed),
        ("inconsistent", c.inconsistent_messages),
    ] {
        let _ = writeln!(out, "bkv_node_peer_messages_total{{fate=\"{fate}\"}} {n}");
    }
    out
}

/// What the front counts: client requests by type and outcome, disk write
/// latency, and bundle installs it refused itself.
#[derive(Default)]
struct FrontStats {
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Bundles refused by the front's own checks, never handed to the
    /// driving loop ([`precheck_bundle`]).
    bundles_refused_at_front: AtomicU64,
    /// Bundle installs answered 503 because another was being checked.
    bundles_busy: AtomicU64,
    /// Set while the front checks a bundle: one at a time.
    checking_bundle: AtomicBool,
}

/// The checks of a bundle install that need nothing of the node: decoding,
/// and, under the pinned keys, the auditor's and operator's signatures,
/// the log proof and the validity window (SPEC.md §17, §23). Made on the
/// front's thread, one bundle at a time, so that forged bundles (anyone can
/// post one) cost the driving loop nothing; what passes is handed to the
/// loop, which checks it again in full, with the keys and range this node
/// holds and the epoch it hands out, before it stores anything.
fn precheck_bundle(anchors: &TrustAnchors, bytes: &[u8]) -> Result<(), (u16, String)> {
    let bundle = EncodedBundle::from_bytes(bytes)
        .map_err(|e| (422, format!("refused: not a validation bundle: {e}")))?;
    anchors
        .verify(bundle.bundle(), unix_ms(), None)
        .map(|_| ())
        .map_err(|e| (422, format!("refused: {e}")))
}

fn message_name(byte: Option<&u8>) -> &'static str {
    match byte.copied().map(MessageType::from_byte) {
        Some(Ok(MessageType::RegistrationRequest)) => "registration_request",
        Some(Ok(MessageType::RegistrationResponse)) => "registration_response",
        Some(Ok(MessageType::RegistrationUpload)) => "registration_upload",
        Some(Ok(MessageType::RegistrationConfirmation)) => "registration_confirmation",
        Some(Ok(MessageType::RecoveryStart)) => "recovery_start",
        Some(Ok(MessageType::RecoveryResponse)) => "recovery_response",
        Some(Ok(MessageType::RecoveryFinish)) => "recovery_finish",
        Some(Ok(MessageType::KeyRelease)) => "key_release",
        Some(Ok(MessageType::Rejection)) => "rejection",
        Some(Ok(MessageType::BundleRequest)) => "bundle_request",
        Some(Ok(MessageType::BundleResponse)) => "bundle_response",
        Some(Ok(MessageType::RecoveryResponseWithBundle)) => "recovery_response",
        _ => "unknown",
    }
}

/// The outcome label of a vault answer: the answer's type, or the
/// rejection's reason.
fn outcome(answer: &[u8]) -> &'static str {
    match Rejection::from_bytes(answer).map(|r| r.code) {
        Ok(RejectionCode::Malformed) => "rejected_malformed",
        Ok(RejectionCode::AuthenticationFailed) => "rejected_authentication_failed",
        Ok(RejectionCode::Unavailable) => "rejected_unavailable",
        Ok(RejectionCode::Busy) => "rejected_busy",
        Ok(RejectionCode::AttemptsExhausted) => "rejected_attempts_exhausted",
        Ok(RejectionCode::RequestNotAuthentic) => "rejected_request_not_authentic",
        Ok(RejectionCode::UnknownRegistration) => "rejected_unknown_registration",
        Ok(RejectionCode::RegistrationRefused) => "rejected_registration_refused",
        Ok(RejectionCode::StretchingBelowFloor) => "rejected_stretching_below_floor",
        Ok(RejectionCode::NoBundle) => "rejected_no_bundle",
        Ok(_) => "rejected_other",
        Err(_) => message_name(answer.first()),
    }
}

impl FrontStats {
    /// [`precheck_bundle`], one bundle at a time (503 while another is
    /// checked), counting what it refuses.
    fn precheck(&self, anchors: &TrustAnchors, bytes: &[u8]) -> Result<(), (u16, String)> {
        if self
            .checking_bundle
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.bundles_busy.fetch_add(1, Ordering::Relaxed);
            return Err((503, "busy: another bundle is being checked; retry".into()));
        }
        // Cleared however the check ends, so one bad input can never
        // leave every later install answered `busy`.
        struct Checking<'a>(&'a AtomicBool);
        impl Drop for Checking<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let checked = {
            let _checking = Checking(&self.checking_bundle);
            precheck_bundle(anchors, bytes)
        };
        if checked.is_err() {
            self.bundles_refused_at_front
                .fetch_add(1, Ordering::Relaxed);
        }
        checked
    }

    fn count(&self, kind: &'static str, outcome: &'static str) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((kind, outcome)).or_insert(0) += 1;
        }
    }

    fn render(&self, disk: &DiskStats) -> String {
        let mut out = String::from(
            "# HELP bkv_node_client_requests_total Client requests by type and outcome (charges: recovery_start answered recovery_response; resets: recovery_finish answered key_release).\n# TYPE bkv_node_client_requests_total counter\n",
        );
        if let Ok(m) = self.requests.lock() {
            for ((kind, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "bkv_node_client_requests_total{{type=\"{kind}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = write!(
            out,
            "# HELP bkv_node_disk_write_seconds Durable writes to the node's disk (redb commit with fsync).\n# TYPE bkv_node_disk_write_seconds histogram\n"
        );
        for (bound, bucket) in DISK_BUCKETS.iter().zip(&disk.buckets) {
            let _ = writeln!(
                out,
                "bkv_node_disk_write_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = disk.count.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "bkv_node_disk_write_seconds_bucket{{le=\"+Inf\"}} {count}\nbkv_node_disk_write_seconds_sum {}\nbkv_node_disk_write_seconds_count {count}\n# HELP bkv_node_disk_write_failures_total Durable writes that failed.\n# TYPE bkv_node_disk_write_failures_total counter\nbkv_node_disk_write_failures_total {}\n",
            disk.micros.load(Ordering::Relaxed) as f64 / 1e6,
            disk.failed.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "# HELP bkv_node_bundles_refused_at_front_total Bundle installs refused before reaching the driving loop (not a bundle, or not valid under the pinned keys).\n# TYPE bkv_node_bundles_refused_at_front_total counter\nbkv_node_bundles_refused_at_front_total {}\n# HELP bkv_node_bundle_installs_busy_total Bundle installs answered 503 because another bundle was being checked.\n# TYPE bkv_node_bundle_installs_busy_total counter\nbkv_node_bundle_installs_busy_total {}\n",
            self.bundles_refused_at_front.load(Ordering::Relaxed),
            self.bundles_busy.load(Ordering::Relaxed)
        );
        out
    }
}

/// The client API: each request is carried into the driving loop and its
/// answer carried back; nothing here decides anything.
fn client_handler(
    tx: Sender<Input>,
    disk: Arc<DiskStats>,
    anchors: Option<TrustAnchors>,
) -> Handler {
    let stats = Arc::new(FrontStats::default());
    let anchors = Arc::new(anchors);
    Arc::new(move |request: Request| {
        let tx = tx.clone();
        let stats = stats.clone();
        let disk = disk.clone();
        let anchors = anchors.clone();
        Box::pin(async move {
            let send = |input: Input| tx.send(input).is_ok();
            match (request.method.as_str(), request.url.as_str()) {
                ("POST", "/v1/vault") => {
                    let kind = message_name(request.body.first());
                    let (reply_tx, reply_rx) = oneshot::channel();
                    let answer = if send(Input::Client(request.body, reply_tx)) {
                        bkv_http::tokio::time::timeout(CLIENT_TIMEOUT, reply_rx)
                            .await
                            .ok()
                            .and_then(Result::ok)
                    } else {
                        None
                    };
                    let answer = answer.unwrap_or_else(|| {
                        Rejection {
                            code: RejectionCode::Unavailable,
                        }
                        .to_bytes()
                    });
                    stats.count(kind, outcome(&answer));
                    Answer {
                        status: 200,
                        content_type: "application/octet-stream",
                        body: answer,
                    }
                }
                ("GET", "/v1/bundle") => {
                    let (reply_tx, reply_rx) = oneshot::channel();
                    let answer = if send(Input::Bundle(reply_tx)) {
                        bkv_http::tokio::time::timeout(CLIENT_TIMEOUT, reply_rx)
                            .await
                            .ok()
                            .and_then(Result::ok)
                    } else {
                        None
                    };
                    match answer {
                        Some(Some(bytes)) => Answer {
                            status: 200,
                            content_type: "application/octet-stream",
                            body: bytes,
                        },
                        Some(None) => Answer::text(404, "this node holds no bundle\n"),
                        None => Answer::text(503, "unavailable\n"),
                    }
                }
                ("POST", "/v1/bundle") => {
                    // Without pins the loop answers 403 at once.
                    if let Some(anchors) = anchors.as_ref() {
                        if let Err((status, why)) = stats.precheck(anchors, &request.body) {
                            return Answer::text(status, why + "\n");
                        }
                    }
                    let (reply_tx, reply_rx) = oneshot::channel();
                    let answer = if send(Input::InstallBundle(request.body, reply_tx)) {
                        bkv_http::tokio::time::timeout(CLIENT_TIMEOUT, reply_rx)
                            .await
                            .ok()
                            .and_then(Result::ok)
                    } else {
                        None
                    };
                    match answer {
                        Some(Ok(epoch)) => Answer::text(200, format!("installed epoch {epoch}\n")),
                        Some(Err((status, why))) => Answer::text(status, why + "\n"),
                        None => Answer::text(503, "unavailable\n"),
                    }
                }
                ("GET", "/v1/status") => {
                    let (reply_tx, reply_rx) = oneshot::channel();
                    let answer = if send(Input::Status(reply_tx)) {
                        bkv_http::tokio::time::timeout(CLIENT_TIMEOUT, reply_rx)
                            .await
                            .ok()
                            .and_then(Result::ok)
                    } else {
                        None
                    };
                    match answer {
                        Some(s) => Answer::text(200, s),
                        None => Answer::text(503, "unavailable\n"),
                    }
                }
                ("GET", "/metrics") => {
                    let (reply_tx, reply_rx) = oneshot::channel();
                    let answer = if send(Input::Metrics(reply_tx)) {
                        bkv_http::tokio::time::timeout(CLIENT_TIMEOUT, reply_rx)
                            .await
                            .ok()
                            .and_then(Result::ok)
                    } else {
                        None
                    };
                    match answer {
                        Some(node) => Answer {
                            status: 200,
                            content_type: "text/plain; version=0.0.4; charset=utf-8",
                            body: (node + &stats.render(&disk)).into_bytes(),
                        },
                        None => Answer::text(503, "unavailable\n"),
                    }
                }
                _ => Answer::text(404, "not found\n"),
            }
        })
    })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn anchors() -> TrustAnchors {
        TrustAnchors::new(&[[1; 32]], &[[2; 32]])
    }

    #[test]
    fn the_front_refuses_what_is_not_a_valid_bundle_and_counts_it() {
        let stats = FrontStats::default();
        let (status, why) = stats.precheck(&anchors(), b"not a bundle").unwrap_err();
        assert_eq!(status, 422);
        assert!(why.starts_with("refused: not a validation bundle"), "{why}");
        assert_eq!(stats.bundles_refused_at_front.load(Ordering::Relaxed), 1);
        // The check is over: the next one runs.
        assert!(!stats.checking_bundle.load(Ordering::Relaxed));
        stats.precheck(&anchors(), &[]).unwrap_err();
        assert_eq!(stats.bundles_refused_at_front.load(Ordering::Relaxed), 2);
        assert!(stats
            .render(&DiskStats::default())
            .contains("\nbkv_node_bundles_refused_at_front_total 2\n"));
    }

    #[test]
    fn the_front_checks_one_bundle_at_a_time() {
        let stats = FrontStats::default();
        stats.checking_bundle.store(true, Ordering::Relaxed);
        let (status, why) = stats.precheck(&anchors(), b"not a bundle").unwrap_err();
        assert_eq!(
            (status, why.as_str()),
            (503, "busy: another bundle is being checked; retry")
        );
        assert_eq!(stats.bundles_busy.load(Ordering::Relaxed), 1);
        // Not checked, so not counted as refused, and the other check's
        // flag is left alone.
        assert_eq!(stats.bundles_refused_at_front.load(Ordering::Relaxed), 0);
        assert!(stats.checking_bundle.load(Ordering::Relaxed));
    }
}
