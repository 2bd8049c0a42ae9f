//! A fleet node at scale (issue 18, SPEC.md §8.5): its heap and its
//! recoveries per second with 1,000, 100,000 and 1,000,000 records on its
//! host (`BKV_SCALE_RECORDS=1000,100000,1000000,10000000` changes the
//! list), in one run.
//!
//! For each size, a real `node.redb` is filled with that many records (the
//! record tree, built in memory, and the slots, sealed by the same
//! `HostRecords` the node uses, with payloads that are not real
//! registrations), then a one-member fleet starts on it, and 1,280 real
//! records are registered through it and recovered, 16 clients at a time,
//! each round the next 16 (more than the node caches, so recoveries read
//! from the host), `BKV_SCALE_ROUNDS` (default 32) rounds per block. The
//! node writes its record rows every `records_write_every` entries (its
//! default, 64: a round is two entries; `BKV_SCALE_WRITE_EVERY` sets it),
//! and each block starts with none waiting and ends by writing its own,
//! timed, so that each block pays for one write of its own rows. The
//! sizes take turns, five blocks each,
//! and each turn's rates are compared with the first size's in the same
//! turn (the median is reported), so that a change in the machine's load
//! falls on all of them.
//!
//! * **Heap** is the node's live bytes, not RSS: what stays allocated by
//!   the node's thread from just before the node opens its disk to the end
//!   of its first block (a warm-up), after it has written the rows that
//!   wait. A counting global allocator (tracking-allocator around
//!   `System`) tags each allocation with the thread that made it, and a
//!   free, on whichever thread, is taken off that thread's count. The
//!   host's redb runs on a thread of its own ([`ThreadHost`]), and what
//!   it hands the node is copied into the node's memory (as an HSM copies
//!   what its host hands it): the host's page cache and structures are
//!   the host's, reported apart. redb's cache is its default (it grows to
//!   a gigabyte), as `bkv node` opens its disk; `BKV_SCALE_CACHE_MIB`
//!   caps it.
//! * **Recoveries per second** of CPU time, two ways. The node's own (what
//!   an HSM does: Raft, the record tree's proofs, sealing, OPAQUE): only
//!   the node's thread is timed. And with the host's: that thread's CPU
//!   time (redb's lookups and writes, which an HSM's host does on its own
//!   CPU), with both together as what one machine running both would do;
//!   the host's CPU per recovery is also given, reading and writing, and
//!   the bytes it writes per recovery (Linux's `wchar`: redb's pages,
//!   what a node's disk must take). The clients' work is not timed, nor
//!   time spent waiting for redb's fsyncs.
//!
//! `cargo bench -p bkv-fleet --bench scale`. The disk goes to the system's
//! temporary directory (about 1.5 GB a million records), and filling holds
//! the tree in memory for a moment (about 3 GB for ten million).

use std::alloc::System;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use cpu_time::ThreadTime as Instant;
use tracking_allocator::{
    AllocationGroupId, AllocationGroupToken, AllocationRegistry, AllocationTracker, Allocator,
};

use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::suite::StretchingParams;
use backup_key_vault::vault::tree::{value_hash, MemoryTree, TreeUpdate, EMPTY};
use backup_key_vault::vault::verified::RecordHost;
use backup_key_vault::vault::{Command, RecordPayload, RecordTable, VaultPolicy};
use backup_key_vault::wire::{
    KeyRelease, RecoveryResponse, RegistrationConfirmation, RegistrationResponse,
};
use backup_key_vault::{FleetSecrets, RecordId, RecoveryCode};
use bkv_fleet::disk::RedbHost;
use bkv_fleet::platform::{HostError, HostOp, HostStore, Row, SharedHost, Table};
use bkv_fleet::records::{tree_row_key, HostRecords, RecordStats};
use bkv_fleet::sealed::{RecordsState, SealedStore, Write};
use bkv_fleet::{Node, NodeConfig};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

#[global_allocator]
static GLOBAL: Allocator<System> = Allocator::system();

/// Live bytes per allocation group: the group an allocation was made in
/// keeps it until it is freed, on whichever thread.
struct Live([AtomicI64; GROUPS]);
const GROUPS: usize = 16;
static LIVE: Live = Live([const { AtomicI64::new(0) }; GROUPS]);

impl AllocationTracker for &'static Live {
    fn allocated(&self, _: usize, size: usize, _: usize, group: AllocationGroupId) {
        self.0[group.as_usize().get() % GROUPS].fetch_add(size as i64, Ordering::Relaxed);
    }

    fn deallocated(
        &self,
        _: usize,
        size: usize,
        _: usize,
        source: AllocationGroupId,
        _: AllocationGroupId,
    ) {
        self.0[source.as_usize().get() % GROUPS].fetch_sub(size as i64, Ordering::Relaxed);
    }
}

/// Live bytes made by `group` (and not yet freed, on any thread).
fn live(group: &AllocationGroupId) -> i64 {
    LIVE.0[group.as_usize().get() % GROUPS].load(Ordering::Relaxed)
}

/// redb's page cache on the host, in MiB: `BKV_SCALE_CACHE_MIB`; by
/// default redb's own (it grows to a gigabyte), as `bkv node` opens its
/// disk. The host's memory, counted apart from the node's.
fn cache() -> Option<usize> {
    std::env::var("BKV_SCALE_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|mib| mib << 20)
}

fn open_host(path: &std::path::Path) -> RedbHost {
    match cache() {
        Some(bytes) => RedbHost::open_with_cache(path, bytes),
        None => RedbHost::open_path(path),
    }
    .expect("the redb file opens")
}
/// Records written to the host per `apply` while filling.
const FILL_BATCH: u64 = 10_000;
const CLIENTS: usize = 16;
/// Rounds per block by default: 32 rounds are 64 entries (one for each
/// round's requests and one for their answers' second messages), one
/// write cycle at the node's default `records_write_every`
/// ([`bkv_fleet::node::RECORDS_WRITE_EVERY`]), so the block's closing
/// write is the one the node would make anyway.
const ROUNDS: usize = 32;
/// Records registered for real and recovered, `CLIENTS` a round, in turn:
/// more than the node caches ([`bkv_fleet::node::RECORD_CACHE`]), so that
/// recoveries read their records from the host, and a round's records are
/// not the last round's (a write does not carry the same few records'
/// rows again and again).
const POOL: usize = 1280;

fn spread_id(i: u64) -> RecordId {
    RecordId(Sha256::digest(i.to_be_bytes()).into())
}

/// A call to the host, carried to its thread.
enum Call {
    Scan(Table, Sender<Result<Vec<Row>, HostError>>),
    Get(Table, Vec<u8>, Sender<Result<Option<Vec<u8>>, HostError>>),
    GetMany(
        Vec<(Table, Vec<u8>)>,
        Sender<Result<Vec<Option<Vec<u8>>>, HostError>>,
    ),
    Apply(Vec<HostOp>, Sender<Result<(), HostError>>),
    /// Report the thread's CPU time so far, the part spent writing, and
    /// the bytes it has handed the kernel to write.
    Time(Sender<HostTime>),
}

/// What the host answers is copied into the node's memory (as an HSM
/// copies what its host hands it) and the host's buffers are freed: the
/// node's count holds only what the node keeps.
fn copied<T: Clone>(answer: Result<T, HostError>) -> Result<T, HostError> {
    // The clone is made on the node's thread, so it is the node's; the
    // host's `answer` is freed here, off the host's count.
    let mine = answer.clone();
    drop(answer);
    mine
}

/// What the host thread has done so far.
#[derive(Clone, Copy, Default)]
struct HostTime {
    /// Its CPU time.
    cpu: Duration,
    /// The part of it spent in `apply` (writing).
    writing: Duration,
    /// Bytes it has passed to `write`-like system calls (Linux's
    /// `wchar`): redb's pages, before the kernel writes them to the disk;
    /// `None` where `/proc/thread-self/io` cannot be read.
    written: Option<u64>,
}

/// Bytes this thread has passed to `write`-like system calls so far
/// (`wchar` in Linux's `/proc/thread-self/io`).
fn written_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A host whose every call runs on a thread of its own, so that the
/// node's thread's CPU time is the node's work alone (an HSM's host does
/// its lookups and writes on its own CPU).
struct ThreadHost(Sender<Call>, AllocationGroupId);

impl ThreadHost {
    /// Opens the disk at `path` on a thread of its own, in an allocation
    /// group of its own: redb's cache and structures are the host's memory.
    fn spawn(path: &std::path::Path) -> Self {
        let (tx, rx) = channel::<Call>();
        let (group_tx, group_rx) = channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let mut token = AllocationGroupToken::register().expect("an allocation group");
            let _ = group_tx.send(token.id());
            let _in_group = token.enter();
            let mut host = open_host(&path);
            let start = Instant::now();
            let mut writing = Duration::ZERO;
            for call in rx {
                match call {
                    Call::Scan(t, reply) => drop(reply.send(host.scan(t))),
                    Call::Get(t, k, reply) => drop(reply.send(host.get(t, &k))),
                    Call::GetMany(keys, reply) => drop(reply.send(host.get_many(&keys))),
                    Call::Apply(ops, reply) => {
                        let write = Instant::now();
                        let done = host.apply(&ops);
                        writing += write.elapsed();
                        drop(reply.send(done));
                    }
                    Call::Time(reply) => drop(reply.send(HostTime {
                        cpu: start.elapsed(),
                        writing,
                        written: written_bytes(),
                    })),
                }
            }
        });
        let group = group_rx.recv().expect("the host thread starts");
        Self(tx, group)
    }

    /// Live bytes the host thread made (redb's cache and structures).
    fn heap(&self) -> i64 {
        live(&self.1)
    }

    /// The host thread's CPU time so far, and what it wrote.
    fn time(&self) -> HostTime {
        let (tx, rx) = channel();
        let _ = self.0.send(Call::Time(tx));
        rx.recv().unwrap_or_default()
    }
}

fn gone() -> HostError {
    HostError("the host thread stopped".into())
}

impl HostStore for ThreadHost {
    fn scan(&self, table: Table) -> Result<Vec<Row>, HostError> {
        let (tx, rx) = channel();
        self.0.send(Call::Scan(table, tx)).map_err(|_| gone())?;
        copied(rx.recv().map_err(|_| gone())?)
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let (tx, rx) = channel();
        self.0
            .send(Call::Get(table, key.to_vec(), tx))
            .map_err(|_| gone())?;
        copied(rx.recv().map_err(|_| gone())?)
    }

    fn get_many(&self, keys: &[(Table, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        let (tx, rx) = channel();
        self.0
            .send(Call::GetMany(keys.to_vec(), tx))
            .map_err(|_| gone())?;
        copied(rx.recv().map_err(|_| gone())?)
    }

    fn apply(&mut self, ops: &[HostOp]) -> Result<(), HostError> {
        let (tx, rx) = channel();
        self.0
            .send(Call::Apply(ops.to_vec(), tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

/// Fills the disk at `path` with `n` records for member 1, and a manifest
/// naming their root. The tree is built in memory (`MemoryTree`: the same
/// rows, row for row, as the node's commits would leave, SPEC.md §8.5) and
/// written with the slots, sealed by the node's own `HostRecords`, in
/// batches: ten million records take minutes this way, not hours.
fn fill(path: &std::path::Path, secrets: &FleetSecrets, n: u64) -> RecordsState {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let key = secrets.fleet_transport_key();
    let host = SharedHost::new(Box::new(open_host(path)));
    // Opened first: a disk with record rows and no manifest is refused.
    let (mut sealed, _, _) =
        SealedStore::open(&key, 1, Box::new(host.clone()), None, true).expect("the disk opens");
    let mut records = HostRecords::new(&key, 1, host.clone());
    let mut writer = host.clone();
    let mut tree = MemoryTree::new();
    let no_rows = TreeUpdate {
        root: EMPTY,
        writes: Vec::new(),
    };
    for i in 0..n {
        let record_id = spread_id(i);
        let command = Command::Register {
            record_id,
            replaces: None,
            generation: 1,
            payload: RecordPayload {
                oprf_nonce: [i as u8; 32],
                registration: [2; 192],
                wrapped_key: [3; 48],
                stretching: StretchingParams::default(),
                max_attempts: 10,
            },
        };
        let mut one = RecordTable::new();
        one.apply(&command);
        let bytes = one.get(&record_id).expect("registered").to_bytes();
        tree.set(&record_id, &value_hash(&bytes))
            .expect("a tree in memory takes the record");
        // Stages the slot only; the tree's rows are written below.
        records.store(&record_id, &bytes, &no_rows).expect("staged");
        if (i + 1) % FILL_BATCH == 0 {
            let ops = records.take_ops(&mut rng).expect("sealed");
            writer.apply(&ops).expect("written");
        }
    }
    let ops = records.take_ops(&mut rng).expect("sealed");
    writer.apply(&ops).expect("written");
    let mut rows = Vec::with_capacity(FILL_BATCH as usize);
    for (key, node) in tree.nodes() {
        rows.push(HostOp::Put {
            table: Table::Tree,
            key: tree_row_key(key).to_vec(),
            value: node.to_bytes().to_vec(),
        });
        if rows.len() == 4 * FILL_BATCH as usize {
            writer.apply(&rows).expect("written");
            rows.clear();
        }
    }
    let state = RecordsState {
        root: tree.root(),
        applied: 0,
        stats: RecordStats {
            live: n,
            ..RecordStats::default()
        },
    };
    sealed
        .write(
            &mut rng,
            Write {
                records: Some((rows, state)),
                ..Write::default()
            },
        )
        .expect("written");
    state
}

/// A one-member fleet on its disk, driven by this thread.
struct Single {
    node: Node,
    rng: ChaCha20Rng,
    now: u64,
    server: Duration,
}

impl Single {
    fn tick(&mut self) {
        self.now += 10;
        let start = Instant::now();
        self.node.tick(&mut self.rng, self.now);
        self.node.drive(&mut self.rng, self.now);
        self.server += start.elapsed();
    }

    /// Sends every request, then drives until each has its answer.
    fn round(&mut self, requests: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut answers: Vec<Option<Vec<u8>>> = vec![None; requests.len()];
        let start = Instant::now();
        for (i, r) in requests.iter().enumerate() {
            answers[i] = self
                .node
                .client_request(&mut self.rng, self.now, i as u64, r);
        }
        self.node.drive(&mut self.rng, self.now);
        self.server += start.elapsed();
        for _ in 0..200 {
            for (tag, bytes) in self.node.take_output().replies {
                answers[tag as usize] = Some(bytes);
            }
            if answers.iter().all(Option::is_some) {
                break;
            }
            self.tick();
        }
        answers
            .into_iter()
            .map(|a| a.expect("every request answered"))
            .collect()
    }
}

/// A node on a filled disk, with its clients registered.
struct Running {
    records: u64,
    single: Single,
    host: ThreadHost,
    heap: i64,
    /// The registered records, recovered `CLIENTS` at a time in turn.
    ids: Vec<RecordId>,
    /// Where the next round's records start in `ids`.
    next: usize,
    client: ClientConfig,
    rng: ChaCha20Rng,
    /// Keeps the disk until the end.
    _dir: tempfile::TempDir,
}

/// Fills a disk with `n` records, starts a node on it, registers the
/// clients and runs one warm-up block; the heap is counted from just
/// before the node opens its disk to the end of the warm-up.
fn start(n: u64, rounds: usize, secrets: &FleetSecrets, node_group: &AllocationGroupId) -> Running {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("node.redb");
    let filled = fill(&path, secrets, n);
    let before = live(node_group);
    let policy = VaultPolicy::insecure_test_only();
    let mut config = NodeConfig::new(1, vec![1], policy);
    config.snapshot_interval = 1000;
    if let Some(every) = std::env::var("BKV_SCALE_WRITE_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.records_write_every = every;
    }
    if let Some(rows) = std::env::var("BKV_SCALE_STAGED_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.records_staged_rows = rows;
    }
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let host = ThreadHost::spawn(&path);
    let host_thread = ThreadHost(host.0.clone(), host.1.clone());
    let node = Node::open(config, secrets, Box::new(host), None, &mut rng).expect("node");
    assert_eq!(
        node.records_root(),
        filled.root,
        "the node trusts the filled tree"
    );
    let mut single = Single {
        node,
        rng,
        now: 0,
        server: Duration::ZERO,
    };
    for _ in 0..100 {
        single.tick();
        if single.node.is_leader() && single.node.is_serving() {
            break;
        }
    }
    assert!(single.node.is_serving(), "the one-member fleet serves");
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let client = ClientConfig::insecure_test_only(secrets.public_keys());
    let code = RecoveryCode::new(b"correct horse").expect("code");
    // A block's records are all different (none of its rows is written
    // twice in its one write), whatever the rounds.
    let pool = POOL.max(CLIENTS * rounds);
    let ids: Vec<RecordId> = (0..pool as u64).map(|i| spread_id(u64::MAX - i)).collect();
    for chunk in ids.chunks(CLIENTS) {
        let (states, requests): (Vec<_>, Vec<_>) = chunk
            .iter()
            .map(|id| {
                let (s, r) =
                    Registration::start(&mut rng, &client, *id, &code, None).expect("start");
                (s, r.to_bytes())
            })
            .unzip();
        let responses = single.round(&requests);
        let (states, uploads): (Vec<_>, Vec<_>) = states
            .into_iter()
            .zip(&responses)
            .map(|(s, r)| {
                let r = RegistrationResponse::from_bytes(r).expect("a registration response");
                let (s, u) = s.finish(&mut rng, &r, None).expect("finish");
                (s, u.to_bytes())
            })
            .unzip();
        let confirmations = single.round(&uploads);
        for (s, c) in states.into_iter().zip(&confirmations) {
            s.finish(&RegistrationConfirmation::from_bytes(c).expect("confirmation"))
                .expect("registered");
        }
    }
    let mut running = Running {
        records: n,
        single,
        host: host_thread,
        heap: 0,
        ids,
        next: 0,
        client,
        rng,
        _dir: dir,
    };
    block(&mut running, rounds);
    // The rows that wait (at most `records_staged_rows`) are written, so
    // that where each size stands in its write cycle does not move the
    // figure.
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    running
        .single
        .node
        .write_records(&mut rng)
        .expect("the rows are written");
    running.heap = live(node_group) - before;
    running
}

/// One block's figures.
#[derive(Clone, Copy)]
struct Rates {
    /// Recoveries per second of the node's CPU time.
    node: f64,
    /// Recoveries per second of the node's and the host's together.
    both: f64,
    /// The host's CPU per recovery reading, and writing, in milliseconds.
    host_read_ms: f64,
    host_write_ms: f64,
    /// Bytes the host wrote per recovery (its pages: the log's, the
    /// manifest's and the record rows'), where the system says.
    host_written: Option<f64>,
}

/// `rounds` rounds in which every client recovers once, and the write of
/// the record rows they changed. The block starts with no row waiting
/// (written, untimed) and ends by writing its own (timed), so that every
/// block pays for exactly one write of exactly its rows: without this a
/// block's figure depended on whether the node's write cycle
/// (`records_write_every` entries, two per round) fell inside it.
fn block(r: &mut Running, rounds: usize) -> Rates {
    let code = RecoveryCode::new(b"correct horse").expect("code");
    r.single
        .node
        .write_records(&mut r.single.rng)
        .expect("the rows are written");
    r.single.server = Duration::ZERO;
    let host_before = r.host.time();
    let mut done = 0u64;
    for _ in 0..rounds {
        let round: Vec<RecordId> = (0..CLIENTS)
            .filter_map(|i| r.ids.get((r.next + i) % r.ids.len()).copied())
            .collect();
        r.next = (r.next + CLIENTS) % r.ids.len();
        let (states, ke1s): (Vec<_>, Vec<_>) = round
            .iter()
            .map(|id| {
                let (s, k) = Recovery::start(&mut r.rng, &r.client, *id, &code).expect("ke1");
                (s, k.to_bytes())
            })
            .unzip();
        let ke2s = r.single.round(&ke1s);
        let (states, ke3s): (Vec<_>, Vec<_>) = states
            .into_iter()
            .zip(&ke2s)
            .map(|(s, k)| {
                let k = RecoveryResponse::from_bytes(k).expect("ke2");
                let (s, k3) = s.finish(&mut r.rng, &k).expect("ke3");
                (s, k3.to_bytes())
            })
            .unzip();
        let releases = r.single.round(&ke3s);
        for (s, k) in states.into_iter().zip(&releases) {
            s.finish(&KeyRelease::from_bytes(k).expect("release"))
                .expect("recovered");
            done += 1;
        }
    }
    let write = Instant::now();
    r.single
        .node
        .write_records(&mut r.single.rng)
        .expect("the rows are written");
    let node = r.single.server + write.elapsed();
    let host_after = r.host.time();
    let host = host_after.cpu.saturating_sub(host_before.cpu);
    let writing = host_after.writing.saturating_sub(host_before.writing);
    let written = host_after
        .written
        .zip(host_before.written)
        .map(|(a, b)| a.saturating_sub(b) as f64 / done as f64);
    let per = |d: Duration| 1e3 * d.as_secs_f64() / done as f64;
    Rates {
        node: done as f64 / node.as_secs_f64(),
        both: done as f64 / (node + host).as_secs_f64(),
        host_read_ms: per(host.saturating_sub(writing)),
        host_write_ms: per(writing),
        host_written: written,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<u64> = std::env::var("BKV_SCALE_RECORDS")
        .unwrap_or_else(|_| "1000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds = std::env::var("BKV_SCALE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    const BLOCKS: usize = 5;
    // The node runs on this thread, in an allocation group of its own;
    // each host on its own thread and group (ThreadHost::spawn).
    AllocationRegistry::set_global_tracker(&LIVE).expect("the only tracker");
    AllocationRegistry::enable_tracking();
    let mut node_token = AllocationGroupToken::register().expect("an allocation group");
    let node_group = node_token.id();
    let _in_node_group = node_token.enter();
    let secrets = FleetSecrets::generate(&mut ChaCha20Rng::seed_from_u64(1));
    println!(
        "one-member fleet on node.redb (the host's redb cache {}, counted apart from the node); {CLIENTS} clients x {rounds} recoveries per block, {BLOCKS} blocks per size, the sizes taking turns",
        cache().map_or("redb's default, as bkv node".into(), |b| format!("capped at {} MiB", b >> 20))
    );
    let mut nodes: Vec<Running> = sizes
        .iter()
        .map(|n| start(*n, rounds, &secrets, &node_group))
        .collect();
    // The sizes take turns, so that a change in the machine's load falls
    // on all of them; each block's rates against the first size's in the
    // same turn give the ratios, whose median is reported.
    let mut rates: Vec<Vec<Rates>> = vec![Vec::new(); nodes.len()];
    for _ in 0..BLOCKS {
        for (i, r) in nodes.iter_mut().enumerate() {
            rates[i].push(block(r, rounds));
        }
    }
    for (r, rates) in nodes.iter().zip(&rates) {
        println!(
            "{:>10} records: node heap {:>6.2} MiB ({} B), host heap {:>7.2} MiB; recoveries/s (median of {BLOCKS}) of the node's CPU time {:>6.0}, of node + host {:>6.0}; host CPU per recovery {:.3} ms reading, {:.3} ms writing; host writes {} per recovery ({} live records)",
            r.records,
            r.heap as f64 / (1 << 20) as f64,
            r.heap,
            r.host.heap() as f64 / (1 << 20) as f64,
            median(rates.iter().map(|x| x.node).collect()),
            median(rates.iter().map(|x| x.both).collect()),
            median(rates.iter().map(|x| x.host_read_ms).collect()),
            median(rates.iter().map(|x| x.host_write_ms).collect()),
            rates
                .iter()
                .map(|x| x.host_written)
                .collect::<Option<Vec<f64>>>()
                .map_or("(not known here)".into(), |w| format!(
                    "{:.1} KiB",
                    median(w) / 1024.0
                )),
            r.single.node.record_stats().live
        );
    }
    for i in 1..nodes.len() {
        let (a, b) = (&nodes[i - 1], &nodes[i]);
        println!(
            "{} -> {} records: heap grows {:.3} B/record",
            a.records,
            b.records,
            (b.heap - a.heap) as f64 / (b.records - a.records) as f64
        );
    }
    let Some(first) = rates.first() else {
        return;
    };
    for (r, rates) in nodes.iter().zip(&rates).skip(1) {
        let node: Vec<f64> = rates
            .iter()
            .zip(first)
            .map(|(x, f)| x.node / f.node)
            .collect();
        let both: Vec<f64> = rates
            .iter()
            .zip(first)
            .map(|(x, f)| x.both / f.both)
            .collect();
        println!(
            "at {} records the node's recoveries/s are {:.1}% of those at {} (median of the turns {:?}; acceptance: at least 80%); node + host {:.1}%",
            r.records,
            100.0 * median(node.clone()),
            nodes[0].records,
            node.iter().map(|x| format!("{:.1}%", 100.0 * x)).collect::<Vec<_>>(),
            100.0 * median(both)
        );
    }
}
