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
//! from the host), `BKV_SCALE_ROUNDS` (default 20) rounds per block. The
//! node writes its record rows every `records_write_every` entries (its
//! default; `BKV_SCALE_WRITE_EVERY` sets it). The sizes take turns, five blocks each,
//! and each turn's rates are compared with the first size's in the same
//! turn (the median is reported), so that a change in the machine's load
//! falls on all of them.
//!
//! * **Heap** is live bytes from a counting global allocator (stats_alloc
//!   around `System`), not RSS: what stays allocated from just before the
//!   node opens its disk to the end of its first block (a warm-up). The host's redb runs
//!   in the same process, so its page cache, capped at 4 MiB here, and its
//!   other structures are counted against the node: the figure is an upper
//!   bound on the node's own.
//! * **Recoveries per second** of CPU time, two ways. The node's own (what
//!   an HSM does: Raft, the record tree's proofs, sealing, OPAQUE): the
//!   host runs on a thread of its own ([`ThreadHost`]), and only the
//!   node's thread is timed. And the host's: that thread's CPU time (redb's
//!   lookups and writes, which an HSM's host does on its own CPU), with
//!   both together as what one machine running both would do. The clients'
//!   work is not timed, nor time spent waiting for redb's fsyncs.
//!
//! `cargo bench -p bkv-fleet --bench scale`. The disk goes to the system's
//! temporary directory (about 1.5 GB a million records), and filling holds
//! the tree in memory for a moment (about 3 GB for ten million).

use std::alloc::System;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use cpu_time::ThreadTime as Instant;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

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
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// redb's page cache in this benchmark (the host's, counted here), in
/// MiB: `BKV_SCALE_CACHE_MIB`, default 4.
fn cache() -> usize {
    std::env::var("BKV_SCALE_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4usize)
        << 20
}
/// Records written to the host per `apply` while filling.
const FILL_BATCH: u64 = 10_000;
const CLIENTS: usize = 16;
/// Records registered for real and recovered, `CLIENTS` a round, in turn:
/// more than the node caches ([`bkv_fleet::node::RECORD_CACHE`]), so that
/// recoveries read their records from the host, and a round's records are
/// not the last round's (a write does not carry the same few records'
/// rows again and again).
const POOL: usize = 1280;

fn live() -> i64 {
    let s = GLOBAL.stats();
    // stats_alloc folds a realloc's growth or shrink into these two.
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

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
    /// Report the thread's CPU time so far.
    Time(Sender<Duration>),
}

/// A host whose every call runs on a thread of its own, so that the
/// node's thread's CPU time is the node's work alone (an HSM's host does
/// its lookups and writes on its own CPU).
struct ThreadHost(Sender<Call>);

impl ThreadHost {
    fn spawn(mut host: RedbHost) -> Self {
        let (tx, rx) = channel::<Call>();
        std::thread::spawn(move || {
            let start = Instant::now();
            for call in rx {
                match call {
                    Call::Scan(t, reply) => drop(reply.send(host.scan(t))),
                    Call::Get(t, k, reply) => drop(reply.send(host.get(t, &k))),
                    Call::GetMany(keys, reply) => drop(reply.send(host.get_many(&keys))),
                    Call::Apply(ops, reply) => drop(reply.send(host.apply(&ops))),
                    Call::Time(reply) => drop(reply.send(start.elapsed())),
                }
            }
        });
        Self(tx)
    }

    /// The host thread's CPU time so far.
    fn time(&self) -> Duration {
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
        rx.recv().map_err(|_| gone())?
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let (tx, rx) = channel();
        self.0
            .send(Call::Get(table, key.to_vec(), tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    fn get_many(&self, keys: &[(Table, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        let (tx, rx) = channel();
        self.0
            .send(Call::GetMany(keys.to_vec(), tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
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
    let host = SharedHost::new(Box::new(
        RedbHost::open_with_cache(path, cache()).expect("a temporary redb file"),
    ));
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
fn start(n: u64, rounds: usize, secrets: &FleetSecrets) -> Running {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("node.redb");
    let filled = fill(&path, secrets, n);
    let before = live();
    let policy = VaultPolicy::insecure_test_only();
    let mut config = NodeConfig::new(1, vec![1], policy);
    config.snapshot_interval = 1000;
    if let Some(every) = std::env::var("BKV_SCALE_WRITE_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.records_write_every = every;
    }
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let host =
        ThreadHost::spawn(RedbHost::open_with_cache(&path, cache()).expect("the filled disk"));
    let host_thread = ThreadHost(host.0.clone());
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
    let ids: Vec<RecordId> = (0..POOL as u64).map(|i| spread_id(u64::MAX - i)).collect();
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
    running.heap = live() - before;
    running
}

/// `rounds` rounds in which every client recovers once: recoveries per
/// second of the node's CPU time, and of the node's and host's together.
fn block(r: &mut Running, rounds: usize) -> (f64, f64) {
    let code = RecoveryCode::new(b"correct horse").expect("code");
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
    let node = r.single.server;
    let host = r.host.time().saturating_sub(host_before);
    (
        done as f64 / node.as_secs_f64(),
        done as f64 / (node + host).as_secs_f64(),
    )
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
        .unwrap_or(20);
    const BLOCKS: usize = 5;
    let secrets = FleetSecrets::generate(&mut ChaCha20Rng::seed_from_u64(1));
    println!(
        "one-member fleet on node.redb (redb cache capped at {} MiB, counted); {CLIENTS} clients x {rounds} recoveries per block, {BLOCKS} blocks per size, the sizes taking turns",
        cache() >> 20
    );
    let mut nodes: Vec<Running> = sizes.iter().map(|n| start(*n, rounds, &secrets)).collect();
    // The sizes take turns, so that a change in the machine's load falls
    // on all of them; each block's rates against the first size's in the
    // same turn give the ratios, whose median is reported.
    let mut rates: Vec<Vec<(f64, f64)>> = vec![Vec::new(); nodes.len()];
    for _ in 0..BLOCKS {
        for (i, r) in nodes.iter_mut().enumerate() {
            rates[i].push(block(r, rounds));
        }
    }
    for (r, rates) in nodes.iter().zip(&rates) {
        println!(
            "{:>10} records: node heap {:>6.2} MiB ({} B); recoveries/s (median of {BLOCKS}) of the node's CPU time {:>6.0}, of node + host {:>6.0} ({} live records)",
            r.records,
            r.heap as f64 / (1 << 20) as f64,
            r.heap,
            median(rates.iter().map(|x| x.0).collect()),
            median(rates.iter().map(|x| x.1).collect()),
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
        let node: Vec<f64> = rates.iter().zip(first).map(|(x, f)| x.0 / f.0).collect();
        let both: Vec<f64> = rates.iter().zip(first).map(|(x, f)| x.1 / f.1).collect();
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
