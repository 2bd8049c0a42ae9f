//! The record tree (SPEC.md §8.5): the trusted side's heap and the store
//! work per recovery at 1,000, 100,000 and 1,000,000 records, beside the
//! in-memory table a fleet node kept before SPEC revision 17 (`cargo bench --bench tree`;
//! `BKV_TREE_MAX=10000000` adds ten million).
//!
//! Heap is counted by a global allocator (stats_alloc around `System`):
//! net bytes allocated and not freed, not RSS. The host's tree and slots
//! live in the same process here (`MemoryHost`), so the trusted side is
//! measured as what stays allocated while a `VerifiedStore` serves
//! recoveries over a host filled beforehand: every recovery rewrites
//! existing rows only, so the host's own heap does not move.

use std::alloc::System;
use std::time::Instant;

use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::vault::tree::TreeUpdate;
use backup_key_vault::vault::tree::{self, Hash};
use backup_key_vault::vault::verified::{HostAnswer, MemoryHost, RecordHost, VerifiedStore};
use backup_key_vault::vault::{
    Applied, Command, MemoryStore, RecordPayload, RecordStore, Vault, VaultPolicy,
};
use backup_key_vault::StoreError;
use backup_key_vault::{FleetSecrets, RecordId, RecoveryCode, StretchingParams};
use rand::SeedableRng;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::cell::Cell;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Recoveries timed per size.
const RECOVERIES: u32 = 20_000;
/// Slots the trusted cache keeps.
const CACHE: usize = 1024;
/// Real (OPAQUE) records registered beside the synthetic ones, and full
/// recoveries timed against them.
const REAL: u32 = 64;
const FULL_RECOVERIES: u32 = 640;

fn id(i: u32) -> RecordId {
    // Spread like hashed account ids.
    RecordId(tree::value_hash(&i.to_be_bytes()))
}

fn register(i: u32) -> Command {
    Command::Register {
        record_id: id(i),
        replaces: None,
        generation: 1,
        payload: RecordPayload {
            oprf_nonce: [1; 32],
            registration: [2; 192],
            wrapped_key: [3; 48],
            stretching: StretchingParams::default(),
            max_attempts: 10,
        },
    }
}

/// A host that adds up the time spent in it: the host's share of a
/// request (building the proof from its rows, storing rows), which in a
/// deployment runs on the host's CPU, not the HSM's.
struct Timed {
    inner: MemoryHost,
    spent: Cell<Duration>,
}

impl RecordHost for Timed {
    fn fetch(&self, id: &RecordId) -> Result<HostAnswer, StoreError> {
        let t = Instant::now();
        let a = self.inner.fetch(id);
        self.spent.set(self.spent.get() + t.elapsed());
        a
    }
    fn store(&mut self, id: &RecordId, slot: &[u8], update: &TreeUpdate) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.store(id, slot, update);
        self.spent.set(self.spent.get() + t.elapsed());
        r
    }
}

fn live(region: &Region<System>) -> i64 {
    let s = region.change();
    // stats_alloc folds a realloc's growth or shrink into these two.
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// What a recovery asks of the store: the load, the charge before KE2 and
/// the reset before the key.
fn recovery<S: RecordStore>(store: &mut S, i: u32) {
    let rid = id(i);
    let _ = store.load(&rid).expect("load");
    let Ok(Applied::Charged { charge, .. }) = store.commit(&Command::ChargeAttempt {
        record_id: rid,
        generation: 1,
    }) else {
        panic!("charge refused")
    };
    let reset = store.commit(&Command::ResetAttempts {
        record_id: rid,
        generation: 1,
        charge,
    });
    assert!(matches!(reset, Ok(Applied::Reset { .. })));
}

/// The vault's own time per recovery (KE1 in, KE2 out; KE3 in, key out)
/// over the tree-backed store, against real records registered among the
/// synthetic ones. The client's work is not timed.
fn full_recoveries<S: RecordStore>(store: S) -> f64 {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let secrets = FleetSecrets::generate(&mut rng);
    let mut vault = Vault::new(&secrets, VaultPolicy::insecure_test_only(), store).expect("vault");
    let config = ClientConfig::insecure_test_only(secrets.public_keys());
    let code = RecoveryCode::new(b"correct horse battery").expect("code");
    let real = |k: u32| {
        RecordId(tree::value_hash(
            &[b"real".as_slice(), &k.to_be_bytes()].concat(),
        ))
    };
    let now = 1_000;
    for k in 0..REAL {
        let (state, request) =
            Registration::start(&mut rng, &config, real(k), &code, None).expect("start");
        let response = vault
            .registration_request(&mut rng, now, &request)
            .expect("response");
        let (state, upload) = state.finish(&mut rng, &response, None).expect("upload");
        let confirmation = vault.registration_upload(now, &upload).expect("confirm");
        state.finish(&confirmation).expect("registered");
    }
    let mut timed = std::time::Duration::ZERO;
    for r in 0..FULL_RECOVERIES {
        let (state, ke1) = Recovery::start(&mut rng, &config, real(r % REAL), &code).expect("ke1");
        let t = Instant::now();
        let ke2 = vault.recovery_start(&mut rng, now, &ke1).expect("ke2");
        timed += t.elapsed();
        let (state, ke3) = state.finish(&mut rng, &ke2).expect("ke3");
        let t = Instant::now();
        let release = vault.recovery_finish(now, &ke3).expect("release");
        timed += t.elapsed();
        state.finish(&release).expect("recovered");
    }
    timed.as_secs_f64() * 1e6 / f64::from(FULL_RECOVERIES)
}

fn main() {
    let max: u32 = std::env::var("BKV_TREE_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    println!(
        "records | table heap B/record | tree host heap B/record | trusted heap after {RECOVERIES} recoveries (B) | mean depth | proof bytes | store µs/recovery (tree; of which host) | store µs/recovery (table) | vault µs/recovery (tree) | vault recoveries/s (tree)"
    );
    for n in [1_000u32, 100_000, 1_000_000, 10_000_000] {
        if n > max {
            break;
        }
        // Today's node: the whole table in memory.
        let region = Region::new(GLOBAL);
        let mut table = MemoryStore::new();
        for i in 0..n {
            table.commit(&register(i)).expect("register");
        }
        let table_heap = live(&region);
        let started = Instant::now();
        for r in 0..RECOVERIES {
            recovery(&mut table, r.wrapping_mul(7919) % n);
        }
        let table_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(RECOVERIES);
        drop(table);

        // The host fills its tree through a store (as the fleet would,
        // command by command); the trusted side then starts from the root.
        let region = Region::new(GLOBAL);
        let mut filler = VerifiedStore::new(MemoryHost::new(), tree::EMPTY, 0);
        for i in 0..n {
            filler.commit(&register(i)).expect("register");
        }
        let host_heap = live(&region);
        let root: Hash = filler.root();
        let host = std::mem::take(filler.host_mut());
        drop(filler);
        let mut depth = 0usize;
        let mut proof_bytes = 0usize;
        for r in 0..1000u32 {
            let answer = host.fetch(&id(r.wrapping_mul(7919) % n)).expect("fetch");
            let proof = tree::Proof::from_bytes(&answer.proof).expect("proof");
            depth += proof.depth();
            proof_bytes += answer.proof.len();
        }

        let region = Region::new(GLOBAL);
        let timed = Timed {
            inner: host,
            spent: Cell::new(Duration::ZERO),
        };
        let mut store = VerifiedStore::new(timed, root, CACHE);
        let started = Instant::now();
        for r in 0..RECOVERIES {
            recovery(&mut store, r.wrapping_mul(7919) % n);
        }
        let tree_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(RECOVERIES);
        let host_us = store.host().spent.get().as_secs_f64() * 1e6 / f64::from(RECOVERIES);
        let trusted = live(&region);
        assert_eq!(store.rejections(), 0);
        let vault_us = full_recoveries(store);
        println!(
            "{n} | {:.0} | {:.0} | {trusted} | {:.1} | {:.0} | {tree_us:.2} ({host_us:.2} host) | {table_us:.2} | {vault_us:.1} | {:.0}",
            table_heap as f64 / f64::from(n),
            host_heap as f64 / f64::from(n),
            depth as f64 / 1000.0,
            proof_bytes as f64 / 1000.0,
            1e6 / vault_us,
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
}
