//! A fleet node at scale (issue 18, SPEC.md §8.5): its heap and its
//! recoveries per second with 1,000, 100,000 and 1,000,000 records on its
//! host (`BKV_SCALE_RECORDS=1000,100000,1000000,10000000` changes the
//! list), in one run.
//!
//! For each size, a real `node.redb` is filled with that many records (the
//! record tree and sealed slots, written through the same `HostRecords`
//! the node uses, with payloads that are not real registrations), then a
//! one-member fleet starts on it, 16 clients register real records through
//! it and recover them, `BKV_SCALE_ROUNDS` (default 20) rounds each.
//!
//! * **Heap** is live bytes from a counting global allocator (stats_alloc
//!   around `System`), not RSS: what stays allocated from just before the
//!   node opens its disk to the end of the recoveries. The host's redb runs
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
//! `cargo bench -p bkv-fleet --bench scale`. Filling a million records
//! takes a few minutes and about 1.5 GB of disk (in the system's temporary
//! directory).

use std::alloc::System;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use cpu_time::ThreadTime as Instant;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::suite::StretchingParams;
use backup_key_vault::vault::tree::EMPTY;
use backup_key_vault::vault::verified::VerifiedStore;
use backup_key_vault::vault::{Command, RecordPayload, RecordStore, VaultPolicy};
use backup_key_vault::wire::{
    KeyRelease, RecoveryResponse, RegistrationConfirmation, RegistrationResponse,
};
use backup_key_vault::{FleetSecrets, RecordId, RecoveryCode};
use bkv_fleet::disk::RedbHost;
use bkv_fleet::platform::{HostError, HostOp, HostStore, Row, SharedHost, Table};
use bkv_fleet::records::{HostRecords, RecordStats};
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
/// naming their root.
fn fill(path: &std::path::Path, secrets: &FleetSecrets, n: u64) -> RecordsState {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let key = secrets.fleet_transport_key();
    let host = SharedHost::new(Box::new(
        RedbHost::open_with_cache(path, cache()).expect("a temporary redb file"),
    ));
    // Opened first: a disk with record rows and no manifest is refused.
    let (mut sealed, _, _) =
        SealedStore::open(&key, 1, Box::new(host.clone()), None, true).expect("the disk opens");
    let mut store = VerifiedStore::new(HostRecords::new(&key, 1, host.clone()), EMPTY, 0);
    let mut writer = host.clone();
    for i in 0..n {
        let command = Command::Register {
            record_id: spread_id(i),
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
        store
            .commit(&command)
            .expect("a fresh tree takes the record");
        if (i + 1) % FILL_BATCH == 0 {
            let ops = store.host_mut().take_ops(&mut rng).expect("sealed");
            writer.apply(&ops).expect("written");
        }
    }
    let ops = store.host_mut().take_ops(&mut rng).expect("sealed");
    let state = RecordsState {
        root: store.root(),
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
                records: Some((ops, state)),
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

/// What one size measured.
struct Measured {
    heap: i64,
    /// Recoveries per second of the node's thread's CPU time.
    node_rate: f64,
    /// The same over the node's and the host's CPU time together.
    both_rate: f64,
    live: u64,
}

/// Heap (bytes) and recoveries per second of a node over `n` records.
fn measure(n: u64, rounds: usize, secrets: &FleetSecrets) -> Measured {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("node.redb");
    let filled = fill(&path, secrets, n);
    let before = live();
    let policy = VaultPolicy::insecure_test_only();
    let mut config = NodeConfig::new(1, vec![1], policy);
    config.snapshot_interval = 1000;
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
    let ids: Vec<RecordId> = (0..CLIENTS as u64)
        .map(|i| spread_id(u64::MAX - i))
        .collect();
    let (states, requests): (Vec<_>, Vec<_>) = ids
        .iter()
        .map(|id| {
            let (s, r) = Registration::start(&mut rng, &client, *id, &code, None).expect("start");
            (s, r.to_bytes())
        })
        .unzip();
    let responses = single.round(&requests);
    let (states, uploads): (Vec<_>, Vec<_>) = states
        .into_iter()
        .zip(&responses)
        .map(|(s, r)| {
            let r = RegistrationResponse::from_bytes(r)
                .unwrap_or_else(|e| panic!("response: {e:?} {:02x?}", &r[..r.len().min(8)]));
            let (s, u) = s.finish(&mut rng, &r, None).expect("finish");
            (s, u.to_bytes())
        })
        .unzip();
    let confirmations = single.round(&uploads);
    for (s, c) in states.into_iter().zip(&confirmations) {
        s.finish(&RegistrationConfirmation::from_bytes(c).expect("confirmation"))
            .expect("registered");
    }
    single.server = Duration::ZERO;
    // The host thread's time for the recoveries only.
    let host_before = host_thread.time();
    let mut done = 0u64;
    for _ in 0..rounds {
        let (states, ke1s): (Vec<_>, Vec<_>) = ids
            .iter()
            .map(|id| {
                let (s, k) = Recovery::start(&mut rng, &client, *id, &code).expect("ke1");
                (s, k.to_bytes())
            })
            .unzip();
        let ke2s = single.round(&ke1s);
        let (states, ke3s): (Vec<_>, Vec<_>) = states
            .into_iter()
            .zip(&ke2s)
            .map(|(s, k)| {
                let k = RecoveryResponse::from_bytes(k).expect("ke2");
                let (s, k3) = s.finish(&mut rng, &k).expect("ke3");
                (s, k3.to_bytes())
            })
            .unzip();
        let releases = single.round(&ke3s);
        for (s, r) in states.into_iter().zip(&releases) {
            s.finish(&KeyRelease::from_bytes(r).expect("release"))
                .expect("recovered");
            done += 1;
        }
    }
    let node_time = single.server;
    let heap = live() - before;
    let live_records = single.node.record_stats().live;
    let host_time = host_thread.time().saturating_sub(host_before);
    Measured {
        heap,
        node_rate: done as f64 / node_time.as_secs_f64(),
        both_rate: done as f64 / (node_time + host_time).as_secs_f64(),
        live: live_records,
    }
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
    let secrets = FleetSecrets::generate(&mut ChaCha20Rng::seed_from_u64(1));
    println!(
        "one-member fleet on node.redb (redb cache capped at {} MiB, counted); {CLIENTS} clients x {rounds} recoveries",
        cache() >> 20
    );
    let mut results = Vec::new();
    for n in sizes {
        let m = measure(n, rounds, &secrets);
        println!(
            "{n:>10} records: node heap {:>6.2} MiB ({} B); recoveries/s of the node's CPU time {:>6.0}, of node + host {:>6.0} ({} live records)",
            m.heap as f64 / (1 << 20) as f64,
            m.heap,
            m.node_rate,
            m.both_rate,
            m.live
        );
        results.push((n, m));
    }
    for pair in results.windows(2) {
        let [(n0, a), (n1, b)] = pair else {
            continue;
        };
        println!(
            "{n0} -> {n1} records: heap grows {:.3} B/record; recoveries/s {:.1}% (node), {:.1}% (node + host)",
            (b.heap - a.heap) as f64 / (*n1 - *n0) as f64,
            100.0 * b.node_rate / a.node_rate,
            100.0 * b.both_rate / a.both_rate
        );
    }
    if let (Some((n0, a)), Some((n1, b))) = (results.first(), results.last()) {
        println!(
            "at {n1} records the node's recoveries/s are {:.1}% of those at {n0} (acceptance: at least 80%); node + host {:.1}%",
            100.0 * b.node_rate / a.node_rate,
            100.0 * b.both_rate / a.both_rate
        );
    }
}
