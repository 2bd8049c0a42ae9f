//! The host's attacks on a fleet (SPEC.md §22, §24), as deterministic
//! scenarios, each run with its defence and without it, so the test shows
//! both that the attack is real and that the defence stops it:
//!
//! 1. probe answers recorded in one boot of a node and handed to it in a
//!    later boot, after its disk was rolled back (§21.3, §22.3);
//! 2. a stopped node's disk edited to give a record fresh attempts (§22.1);
//!
//! the rows of a real `node.redb` edited, swapped, dropped, duplicated,
//! spliced and taken from another node: the node refuses them, counts it,
//! and recovers from its peers; and every disk of the fleet rolled back
//! together, which NVRAM (§22.4) turns from fresh attempts into a fleet
//! that stops.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::vault::{RecordSlot, RecordTable, VaultPolicy};
use backup_key_vault::wire::{RecoveryResponse, RegistrationConfirmation, RegistrationResponse};
use backup_key_vault::{FleetSecrets, RecordId, RecoveryCode};
use bkv_fleet::disk::RedbHost;
use bkv_fleet::node::Event;
use bkv_fleet::platform::{HostStore, MemHost, MemImage, MemNvram, Nvram, Table};
use bkv_fleet::records::tree_row_key;
use bkv_fleet::{Node, NodeConfig};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const MAX_ATTEMPTS: u8 = 3;

/// Where a node's rows live.
enum Disks {
    Memory(Vec<MemHost>),
    /// In memory, each behind a switch that makes its reads fail.
    Flaky(Vec<MemHost>, Vec<Arc<AtomicU8>>),
    /// The files, and the directory that holds them (removed on drop).
    Redb(Vec<PathBuf>, #[allow(dead_code)] tempfile::TempDir),
}

/// A small fleet the test drives by hand: which messages arrive, who is
/// cut off, what the host records and hands back later.
struct Fleet {
    secrets: FleetSecrets,
    client: ClientConfig,
    policy: VaultPolicy,
    n: usize,
    disks: Disks,
    nvrams: Option<Vec<MemNvram>>,
    nodes: Vec<Option<Node>>,
    rngs: Vec<ChaCha20Rng>,
    rng: ChaCha20Rng,
    queue: Vec<(usize, usize, Vec<u8>)>,
    cut: BTreeSet<usize>,
    /// Directed links that lose every message (`(from, to)`).
    severed: BTreeSet<(usize, usize)>,
    /// Messages to this node are also kept on tape.
    recording: Option<usize>,
    tape: Vec<(usize, usize, Vec<u8>)>,
    now: u64,
    ke2s: Vec<(usize, RecordId, u64)>,
    replies: Vec<(usize, u64, Vec<u8>)>,
    next_tag: u64,
    tweak: fn(&mut NodeConfig),
}

impl Fleet {
    fn new(n: usize, disks: Disks, nvram: bool, tweak: fn(&mut NodeConfig)) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let secrets = FleetSecrets::generate(&mut rng);
        let client = ClientConfig::insecure_test_only(secrets.public_keys());
        let policy = VaultPolicy {
            max_attempts: MAX_ATTEMPTS,
            ..VaultPolicy::insecure_test_only()
        };
        let mut fleet = Self {
            secrets,
            client,
            policy,
            n,
            disks,
            nvrams: nvram.then(|| (0..n).map(|_| MemNvram::new()).collect()),
            nodes: (0..n).map(|_| None).collect(),
            rngs: (0..n)
                .map(|i| ChaCha20Rng::seed_from_u64(100 + i as u64))
                .collect(),
            rng,
            queue: Vec::new(),
            cut: BTreeSet::new(),
            severed: BTreeSet::new(),
            recording: None,
            tape: Vec::new(),
            now: 1_000,
            ke2s: Vec::new(),
            replies: Vec::new(),
            next_tag: 1,
            tweak,
        };
        for i in 0..n {
            fleet.start(i);
        }
        fleet
    }

    fn memory(n: usize, tweak: fn(&mut NodeConfig)) -> Self {
        Self::new(
            n,
            Disks::Memory((0..n).map(|_| MemHost::new()).collect()),
            false,
            tweak,
        )
    }

    fn redb(n: usize, tweak: fn(&mut NodeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = (0..n)
            .map(|i| dir.path().join(format!("node{}.redb", i + 1)))
            .collect();
        Self::new(n, Disks::Redb(paths, dir), false, tweak)
    }

    fn host(&self, i: usize) -> Box<dyn HostStore> {
        match &self.disks {
            Disks::Memory(hosts) => Box::new(hosts[i].clone()),
            Disks::Flaky(hosts, off) => Box::new(FlakyHost(hosts[i].clone(), off[i].clone())),
            Disks::Redb(paths, _) => Box::new(RedbHost::open_path(&paths[i]).unwrap()),
        }
    }

    fn mem(&self, i: usize) -> &MemHost {
        match &self.disks {
            Disks::Memory(hosts) | Disks::Flaky(hosts, _) => &hosts[i],
            Disks::Redb(..) => panic!("not a memory fleet"),
        }
    }

    fn path(&self, i: usize) -> PathBuf {
        match &self.disks {
            Disks::Redb(paths, _) => paths[i].clone(),
            Disks::Memory(_) | Disks::Flaky(..) => panic!("not a redb fleet"),
        }
    }

    fn start(&mut self, i: usize) {
        let members: Vec<u64> = (1..=self.n as u64).collect();
        let mut c = NodeConfig::new(i as u64 + 1, members, self.policy.clone());
        // Node 1 campaigns first, so it leads unless it is cut off.
        c.election_tick = if i == 0 { 6 } else { 12 + 4 * i };
        c.heartbeat_tick = 2;
        c.request_timeout_ticks = 60;
        c.record_events = true;
        // Each Ready's record rows go to the disk at once, so that the
        // tests below find them there to edit; rows that wait in memory
        // (the default) have a test of their own.
        c.records_write_every = 1;
        (self.tweak)(&mut c);
        let host = self.host(i);
        let nvram = self
            .nvrams
            .as_ref()
            .map(|v| Box::new(v[i].clone()) as Box<dyn Nvram>);
        self.nodes[i] = Some(Node::open(c, &self.secrets, host, nvram, &mut self.rngs[i]).unwrap());
    }

    fn stop(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    /// Node `i`'s records, read in full and checked against its root.
    fn table(&self, i: usize) -> RecordTable {
        self.node(i).records().unwrap().expect("the records check")
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().unwrap()
    }

    fn collect(&mut self, i: usize) {
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        node.drive(&mut self.rngs[i], self.now);
        let out = node.take_output();
        for e in node.take_events() {
            if let Event::Ke2 {
                record_id,
                generation,
                ..
            } = e
            {
                self.ke2s.push((i, record_id, generation));
            }
        }
        for (to, bytes) in out.messages {
            let to = to as usize - 1;
            if self.recording == Some(to) {
                self.tape.push((i, to, bytes.clone()));
            }
            self.queue.push((i, to, bytes));
        }
        for (tag, bytes) in out.replies {
            self.replies.push((i, tag, bytes));
        }
    }

    /// Delivers every queued message between running nodes that are not
    /// cut off (others are lost), until the network is quiet.
    fn pump(&mut self) {
        for i in 0..self.n {
            self.collect(i);
        }
        for _ in 0..1000 {
            if self.queue.is_empty() {
                return;
            }
            for (from, to, bytes) in std::mem::take(&mut self.queue) {
                if self.cut.contains(&from)
                    || self.cut.contains(&to)
                    || self.severed.contains(&(from, to))
                {
                    continue;
                }
                if let Some(node) = self.nodes[to].as_mut() {
                    node.receive(&mut self.rngs[to], &bytes);
                }
                self.collect(to);
            }
        }
    }

    fn tick(&mut self, times: usize) {
        for _ in 0..times {
            self.now += 10;
            for i in 0..self.n {
                if let Some(node) = self.nodes[i].as_mut() {
                    node.tick(&mut self.rngs[i], self.now);
                }
                self.collect(i);
            }
            self.pump();
        }
    }

    fn leader(&self) -> Option<usize> {
        (0..self.n)
            .find(|i| !self.cut.contains(i) && self.nodes[*i].as_ref().is_some_and(Node::is_leader))
    }

    fn settle(&mut self) {
        for _ in 0..400 {
            if self.leader().is_some() {
                break;
            }
            self.tick(1);
        }
        self.tick(5);
    }

    /// Sends one request to node `i` and waits (ticking) for its answer.
    fn call(&mut self, i: usize, request: &[u8]) -> Vec<u8> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let now = self.now;
        let node = self.nodes[i].as_mut().unwrap();
        if let Some(answer) = node.client_request(&mut self.rngs[i], now, tag, request) {
            self.collect(i);
            return answer;
        }
        for _ in 0..200 {
            self.pump();
            if let Some(at) = self.replies.iter().position(|(_, t, _)| *t == tag) {
                return self.replies.remove(at).2;
            }
            self.tick(1);
        }
        panic!("no answer from node {}", i + 1);
    }

    fn register(&mut self, i: usize, record: RecordId, code: &str) {
        let code = RecoveryCode::new(code.as_bytes()).unwrap();
        let (state, request) =
            Registration::start(&mut self.rng, &self.client, record, &code, None).unwrap();
        let answer = self.call(i, &request.to_bytes());
        let response = RegistrationResponse::from_bytes(&answer).unwrap();
        let (state, upload) = state.finish(&mut self.rng, &response, None).unwrap();
        let answer = self.call(i, &upload.to_bytes());
        state
            .finish(&RegistrationConfirmation::from_bytes(&answer).unwrap())
            .unwrap();
    }

    /// Severs the links between `a` and `b`, both ways (or mends them).
    fn sever(&mut self, a: usize, b: usize, severed: bool) {
        for link in [(a, b), (b, a)] {
            if severed {
                self.severed.insert(link);
            } else {
                self.severed.remove(&link);
            }
        }
    }

    /// Hands node `i` a wrong guess and does not wait for the answer.
    fn submit_guess(&mut self, i: usize, record: RecordId) {
        let guess = format!("guess-{}", self.rng.next_u64());
        let code = RecoveryCode::new(guess.as_bytes()).unwrap();
        let (_, ke1) = Recovery::start(&mut self.rng, &self.client, record, &code).unwrap();
        let tag = self.next_tag;
        self.next_tag += 1;
        let now = self.now;
        let node = self.nodes[i].as_mut().unwrap();
        let answer = node.client_request(&mut self.rngs[i], now, tag, &ke1.to_bytes());
        assert!(answer.is_none(), "a charge must wait for its commit");
        self.collect(i);
    }

    /// A wrong guess through node `i`: whether a KE2 came back.
    fn guess(&mut self, i: usize, record: RecordId) -> bool {
        let guess = format!("guess-{}", self.rng.next_u64());
        let code = RecoveryCode::new(guess.as_bytes()).unwrap();
        let (_, ke1) = Recovery::start(&mut self.rng, &self.client, record, &code).unwrap();
        let answer = self.call(i, &ke1.to_bytes());
        RecoveryResponse::from_bytes(&answer).is_ok()
    }

    /// KE2s built from `record`'s registration, by any node.
    fn ke2s_for(&self, record: RecordId) -> usize {
        self.ke2s.iter().filter(|(_, r, _)| *r == record).count()
    }
}

const RECORD: RecordId = RecordId([7; 32]);

/// A memory host whose reads fail while its switch has [`READS_FAIL`] on,
/// and its writes of record rows while it has [`RECORD_WRITES_FAIL`]: a
/// disk that cannot be read or written, not a host that lies.
struct FlakyHost(MemHost, Arc<AtomicU8>);

const READS_FAIL: u8 = 1;
const RECORD_WRITES_FAIL: u8 = 2;

impl FlakyHost {
    fn check(&self, what: u8) -> Result<(), bkv_fleet::platform::HostError> {
        if self.1.load(Ordering::SeqCst) & what != 0 {
            return Err(bkv_fleet::platform::HostError(
                if what == READS_FAIL {
                    "flaky.redb: read failed"
                } else {
                    "flaky.redb: write failed"
                }
                .into(),
            ));
        }
        Ok(())
    }
}

impl HostStore for FlakyHost {
    fn scan(
        &self,
        t: Table,
    ) -> Result<Vec<bkv_fleet::platform::Row>, bkv_fleet::platform::HostError> {
        self.check(READS_FAIL)?;
        self.0.scan(t)
    }
    fn get(&self, t: Table, k: &[u8]) -> Result<Option<Vec<u8>>, bkv_fleet::platform::HostError> {
        self.check(READS_FAIL)?;
        self.0.get(t, k)
    }
    fn get_many(
        &self,
        keys: &[(Table, Vec<u8>)],
    ) -> Result<Vec<Option<Vec<u8>>>, bkv_fleet::platform::HostError> {
        self.check(READS_FAIL)?;
        self.0.get_many(keys)
    }
    fn apply(
        &mut self,
        ops: &[bkv_fleet::platform::HostOp],
    ) -> Result<(), bkv_fleet::platform::HostError> {
        // The log's writes always go through.
        let records = ops.iter().any(|op| {
            matches!(
                op,
                bkv_fleet::platform::HostOp::Put {
                    table: Table::Tree | Table::Slots,
                    ..
                }
            )
        });
        if records {
            self.check(RECORD_WRITES_FAIL)?;
        }
        self.0.apply(ops)
    }
}

/// A 3-node fleet on [`FlakyHost`]s (every switch off) holding `RECORD`,
/// and the switches.
fn flaky_fleet_with_a_record() -> (Fleet, Vec<Arc<AtomicU8>>) {
    let off: Vec<Arc<AtomicU8>> = (0..3).map(|_| Arc::new(AtomicU8::new(0))).collect();
    let mut fleet = Fleet::new(
        3,
        Disks::Flaky((0..3).map(|_| MemHost::new()).collect(), off.clone()),
        false,
        defended,
    );
    fleet.settle();
    fleet.register(0, RECORD, "right code");
    fleet.tick(5);
    (fleet, off)
}

/// A leader whose host cannot write the rows a committed charge changed
/// stops, and the answer that charge had earned never leaves it (fail
/// closed): the client tries again elsewhere.
#[test]
fn a_failed_records_write_sends_no_answer() {
    let (mut fleet, off) = flaky_fleet_with_a_record();
    let a = fleet.leader().expect("a leader");
    // The record is cached, so the KE1 itself reads nothing: only the
    // write after the charge applies fails.
    off[a].store(RECORD_WRITES_FAIL, Ordering::SeqCst);
    fleet.replies.clear();
    fleet.submit_guess(a, RECORD);
    fleet.tick(20);
    assert_eq!(
        fleet.node(a).fault_reason(),
        Some("the record rows could not be written")
    );
    assert_eq!(
        fleet.node(a).fault_detail(),
        Some("node storage: flaky.redb: write failed"),
        "the host's error, which names the file, is kept for the log"
    );
    assert_eq!(
        fleet.ke2s_for(RECORD),
        1,
        "the charge applied and its KE2 was built"
    );
    assert!(
        fleet.node(a).is_faulted(),
        "the leader went on without its rows"
    );
    assert!(
        fleet.replies.iter().all(|(from, _, _)| *from != a),
        "an answer left a node whose rows were not written"
    );
}

/// A host that cannot read its disk while a committed command applies
/// stops the node, but is not taken for a liar: the node keeps its log and
/// records, and started again it applies the log from its tree and serves
/// the same table as its peers.
#[test]
fn a_failed_read_stops_the_node_without_resetting_it() {
    let (mut fleet, off) = flaky_fleet_with_a_record();
    let c = 2;
    // Started again, node 3 has kept none of the record's rows from its
    // commits: applying the next charge must read them.
    fleet.stop(c);
    fleet.start(c);
    fleet.tick(10);
    let before = fleet.node(c).applied_index();
    assert!(before > 0);
    off[c].store(READS_FAIL, Ordering::SeqCst);
    assert!(fleet.guess(0, RECORD), "the others still commit");
    fleet.tick(5);
    let node = fleet.node(c);
    assert!(node.is_faulted(), "node 3 applied without reading its rows");
    assert_eq!(
        node.fault_reason(),
        Some("the host could not read the record rows")
    );
    assert_eq!(
        node.fault_detail(),
        Some("node storage: flaky.redb: read failed"),
        "the host's error, which names the file, is kept for the log"
    );
    assert!(!node.records_were_reset(), "a failed read reset the node");
    assert_eq!(node.counters().host_rejected, 0);
    off[c].store(0, Ordering::SeqCst);
    fleet.stop(c);
    fleet.start(c);
    let node = fleet.node(c);
    assert_eq!(node.counters().disk_rejected, 0);
    assert!(node.applied_index() >= before, "the log was not kept");
    fleet.tick(50);
    let leader = fleet.leader().expect("a leader");
    assert_eq!(fleet.table(c), fleet.table(leader));
}

/// A host answer that does not check is not kept: once the host hands
/// over the right rows again, the record reads. A glitch costs one refused
/// read, not every read after it (and then a reset).
#[test]
fn a_refused_answer_is_not_kept() {
    let mut fleet = Fleet::memory(3, defended);
    fleet.settle();
    fleet.register(0, RECORD, "right code");
    fleet.tick(5);
    let c = 2;
    // Started again, node 3 keeps nothing of the record's rows.
    fleet.stop(c);
    fleet.start(c);
    fleet.tick(10);
    let good = fleet.mem(c).image();
    let edited = fleet.mem(c).edit(|image| {
        // The record's leaf (version, tag 2, id, value): its value.
        let rows = image.get_mut(&Table::Tree)?;
        let (key, _) = rows
            .iter()
            .find(|(_, v)| v.len() == 66 && v[1] == 2 && v[2..34] == RECORD.0)?;
        let key = key.clone();
        rows.get_mut(&key)?[40] ^= 1;
        Some(())
    });
    assert!(edited.flatten().is_some(), "no leaf for the record");
    assert!(fleet.node(c).record(&RECORD).is_err());
    assert!(fleet.node(c).counters().host_rejected > 0);
    fleet.mem(c).restore(good);
    assert!(
        fleet.node(c).record(&RECORD).unwrap().is_some(),
        "the refused rows were kept"
    );
}

fn rows_wait(c: &mut NodeConfig) {
    c.records_write_every = 1_000;
}

/// Record rows may wait in a node's memory after the answers leave
/// (§22.2): the log holds their commands. Every node killed before writing
/// them applies those entries again when it starts, to the same records:
/// the spent attempts stay spent.
#[test]
fn record_rows_that_wait_in_memory_are_applied_again_after_a_kill() {
    let mut fleet = Fleet::redb(3, rows_wait);
    fleet.settle();
    fleet.register(0, RECORD, "right code");
    for _ in 0..2 {
        assert!(fleet.guess(0, RECORD));
    }
    fleet.tick(5);
    let leader = fleet.leader().unwrap();
    let before = fleet.table(leader);
    assert!(
        matches!(before.get(&RECORD), Some(RecordSlot::Live(r)) if r.attempts_used() == 2),
        "two attempts spent"
    );
    for i in 0..3 {
        // Killed: a node has no shutdown that writes what waits.
        fleet.stop(i);
        let host = RedbHost::open_path(&fleet.path(i)).unwrap();
        assert!(
            host.scan(Table::Slots).unwrap().is_empty(),
            "node {} wrote its record rows already",
            i + 1
        );
    }
    for i in 0..3 {
        fleet.start(i);
    }
    fleet.settle();
    fleet.tick(20);
    for i in 0..3 {
        assert_eq!(fleet.table(i), before, "node {}", i + 1);
    }
    // One attempt is left of three, and then the record is gone.
    let leader = fleet.leader().unwrap();
    assert!(fleet.guess(leader, RECORD));
    assert!(!fleet.guess(leader, RECORD));
    // Before a planned stop, a node writes what waits.
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    fleet.nodes[leader]
        .as_mut()
        .unwrap()
        .write_records(&mut rng)
        .unwrap();
    let after = fleet.table(leader);
    fleet.stop(leader);
    let host = RedbHost::open_path(&fleet.path(leader)).unwrap();
    assert_eq!(host.scan(Table::Slots).unwrap().len(), 1);
    drop(host);
    fleet.start(leader);
    assert_eq!(fleet.table(leader), after);
}

fn rows_capped(c: &mut NodeConfig) {
    c.records_write_every = 1_000;
    c.records_staged_rows = 1;
}

/// However many entries they may wait for, rows are written once more of
/// them wait than the bound on trusted memory allows.
#[test]
fn record_rows_are_written_once_the_rows_waiting_reach_the_bound() {
    let mut fleet = Fleet::redb(3, rows_capped);
    fleet.settle();
    fleet.register(0, RECORD, "right code");
    fleet.tick(5);
    let leader = fleet.leader().unwrap();
    fleet.stop(leader);
    let host = RedbHost::open_path(&fleet.path(leader)).unwrap();
    assert_eq!(host.scan(Table::Slots).unwrap().len(), 1);
}

fn defended(_: &mut NodeConfig) {}

fn without_answer_binding(c: &mut NodeConfig) {
    c.unbound_answers = true;
}

/// Scenario 1 (issue: replayed probe answers pass the restart gate). In a
/// 3-node fleet {A, B, C} the host restarts C cleanly, records A's answers
/// to C's probes and copies C's disk; cuts B off and spends every attempt
/// through A; rolls C's disk back, restarts C, cuts A off and hands C the
/// recorded answers; then guesses through B and C. Returns the KE2s the
/// record's one generation gave out.
fn replayed_probe_answers(tweak: fn(&mut NodeConfig)) -> (usize, u64) {
    let (a, b, c) = (0, 1, 2);
    let mut fleet = Fleet::memory(3, tweak);
    fleet.settle();
    assert_eq!(fleet.leader(), Some(a));
    fleet.register(a, RECORD, "right code");

    // A clean restart of C, with A's messages to it on tape.
    fleet.stop(c);
    fleet.start(c);
    fleet.recording = Some(c);
    fleet.tick(40);
    assert!(fleet.node(c).is_serving(), "C did not recover");
    fleet.recording = None;
    let copy: MemImage = fleet.mem(c).image();

    // Every attempt, through A, committed by A and C.
    fleet.cut.insert(b);
    for _ in 0..MAX_ATTEMPTS {
        assert!(fleet.guess(a, RECORD), "A gave no KE2");
    }
    assert!(!fleet.guess(a, RECORD), "A gave more KE2s than allowed");

    // C rolled back and restarted; A cut off; C fed the recorded answers.
    fleet.stop(c);
    fleet.mem(c).restore(copy);
    fleet.start(c);
    fleet.cut.remove(&b);
    fleet.cut.insert(a);
    // One tick: C sends its first probes (the recorded answers are to the
    // same round numbers of the earlier boot).
    fleet.tick(1);
    let refused_before = fleet.node(c).counters().answers_refused;
    let tape: Vec<Vec<u8>> = fleet
        .tape
        .iter()
        .filter(|(from, _, _)| *from == a)
        .map(|(_, _, bytes)| bytes.clone())
        .collect();
    for bytes in &tape {
        fleet.nodes[c]
            .as_mut()
            .unwrap()
            .receive(&mut fleet.rngs[c], bytes);
        fleet.collect(c);
    }
    let refused = fleet.node(c).counters().answers_refused - refused_before;
    fleet.tick(200);
    for _ in 0..2 * MAX_ATTEMPTS {
        fleet.guess(b, RECORD);
        fleet.guess(c, RECORD);
    }
    (fleet.ke2s_for(RECORD), refused)
}

#[test]
fn replayed_probe_answers_give_no_extra_guesses() {
    let (ke2s, refused) = replayed_probe_answers(defended);
    assert!(refused > 0, "C did not refuse the recorded answers");
    assert_eq!(ke2s, usize::from(MAX_ATTEMPTS), "KE2s beyond the limit");
}

#[test]
fn without_boot_binding_replayed_probe_answers_give_extra_guesses() {
    // The same attack with the answers not bound to C's boot: the attack
    // is real, so the test above can fail.
    let (ke2s, _) = replayed_probe_answers(without_answer_binding);
    assert!(
        ke2s > usize::from(MAX_ATTEMPTS),
        "the attack got only {ke2s} KE2s: the scenario no longer exercises the defence"
    );
}

/// How the host edits C's record rows in scenario 2.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordEdit {
    /// A byte of the sealed slot: all a host can do to a sealed row.
    SealedByte,
    /// The slot in clear given fresh attempts, the tree left alone.
    SlotAlone,
    /// The slot in clear given fresh attempts, the tree rebuilt over it,
    /// and the manifest (in clear too) made to name the new root.
    SlotTreeAndRoot,
}

/// Scenario 2 (issue: an edited disk is trusted). The host spends every
/// attempt, stops C, edits the record's slot in C's rows (and perhaps the
/// tree and the root, see [`RecordEdit`]), restarts C and guesses through
/// C. Returns the KE2s given out and the host answers C refused.
fn edited_disk(tweak: fn(&mut NodeConfig), how: RecordEdit) -> (usize, u64) {
    use backup_key_vault::vault::tree::{value_hash, MemoryTree};
    let (a, c) = (0, 2);
    let mut fleet = Fleet::memory(3, tweak);
    fleet.settle();
    fleet.register(a, RECORD, "right code");
    for _ in 0..MAX_ATTEMPTS {
        assert!(fleet.guess(a, RECORD));
    }
    fleet.tick(5);
    let old_root = fleet.node(c).records_root();
    fleet.stop(c);
    let edited = fleet.mem(c).edit(|image| {
        let rows = image.get_mut(&Table::Slots)?;
        let row = rows.get_mut(&RECORD.0.to_vec())?;
        if how == RecordEdit::SealedByte {
            let last = row.len() - 1;
            row[last] ^= 1;
            return Some(());
        }
        let Ok(RecordSlot::Live(mut record)) = RecordSlot::from_bytes(row) else {
            return None;
        };
        record.forgiven_through = record.charges;
        *row = RecordSlot::Live(record).to_bytes().to_vec();
        if how == RecordEdit::SlotAlone {
            return Some(());
        }
        // The tree over the slots as they now are, and its root in the
        // manifest in place of the old one.
        let mut tree = MemoryTree::new();
        for (id, slot) in rows.iter() {
            let id = RecordId(id.as_slice().try_into().ok()?);
            tree.set(&id, &value_hash(slot)).ok()?;
        }
        let nodes = image.get_mut(&Table::Tree)?;
        nodes.clear();
        for (key, node) in tree.nodes() {
            nodes.insert(tree_row_key(key).to_vec(), node.to_bytes().to_vec());
        }
        let manifest = image.get_mut(&Table::Meta)?.values_mut().next()?;
        let at = manifest.windows(32).position(|w| w == old_root)?;
        manifest[at..at + 32].copy_from_slice(&tree.root());
        Some(())
    });
    assert!(
        edited.flatten().is_some(),
        "C holds no slot for the record, or no manifest naming its root"
    );
    fleet.start(c);
    assert_eq!(
        fleet.node(c).counters().disk_rejected,
        0,
        "record rows are checked as they are read, not at the start"
    );
    fleet.tick(200);
    for _ in 0..3 * MAX_ATTEMPTS {
        fleet.guess(c, RECORD);
    }
    (
        fleet.ke2s_for(RECORD),
        fleet.node(c).counters().host_rejected,
    )
}

#[test]
fn an_edited_disk_gives_no_extra_guesses() {
    let (ke2s, refused) = edited_disk(defended, RecordEdit::SealedByte);
    assert!(refused > 0, "C did not refuse its edited slot");
    assert_eq!(ke2s, usize::from(MAX_ATTEMPTS), "KE2s beyond the limit");
}

/// Without sealing, a slot edited in clear still does not check against
/// the root the manifest names: the tree alone refuses it.
#[test]
fn without_sealing_a_slot_edited_alone_is_refused_by_the_tree() {
    let (ke2s, refused) = edited_disk(|c| c.unsealed_disk = true, RecordEdit::SlotAlone);
    assert!(
        refused > 0,
        "C did not refuse a slot that is not the root's"
    );
    assert_eq!(ke2s, usize::from(MAX_ATTEMPTS), "KE2s beyond the limit");
}

/// Without sealing the manifest is in clear too: a host that rebuilds the
/// tree and puts its root in the manifest gives the record fresh attempts.
#[test]
fn without_sealing_an_edited_disk_gives_extra_guesses() {
    let (ke2s, refused) = edited_disk(|c| c.unsealed_disk = true, RecordEdit::SlotTreeAndRoot);
    assert_eq!(refused, 0);
    assert!(
        ke2s > usize::from(MAX_ATTEMPTS),
        "the attack got only {ke2s} KE2s: the scenario no longer exercises the defence"
    );
}

// ----- A real node.redb --------------------------------------------------

/// Reads every row of a stopped node's `node.redb`, lets `f` change them,
/// and writes them back, through redb itself: what a host with the file
/// can do.
fn edit_redb(path: &std::path::Path, f: impl FnOnce(&mut MemImage)) {
    let mut host = RedbHost::open_path(path).unwrap();
    let mut image = MemImage::new();
    for t in Table::ALL {
        image.insert(t, host.scan(t).unwrap().into_iter().collect());
    }
    let before = image.clone();
    f(&mut image);
    assert_ne!(image, before, "the edit changed nothing");
    let mut ops: Vec<bkv_fleet::platform::HostOp> = Table::ALL
        .iter()
        .map(|t| bkv_fleet::platform::HostOp::Clear(*t))
        .collect();
    for (t, rows) in image {
        for (key, value) in rows {
            ops.push(bkv_fleet::platform::HostOp::Put {
                table: t,
                key,
                value,
            });
        }
    }
    host.apply(&ops).unwrap();
}

fn snapshots_every_4(c: &mut NodeConfig) {
    c.snapshot_interval = 4;
}

/// A 3-node fleet on real redb files with records, attempts, a snapshot and
/// a log after it; node 3 stopped.
fn busy_redb_fleet() -> Fleet {
    let mut fleet = Fleet::redb(3, snapshots_every_4);
    fleet.settle();
    for k in 0..3u8 {
        fleet.register(0, RecordId([k; 32]), "right code");
    }
    for _ in 0..2 {
        assert!(fleet.guess(0, RECORD_A));
    }
    fleet.tick(5);
    fleet
}

const RECORD_A: RecordId = RecordId([1; 32]);

/// Starts node 3 again after the edit: it must refuse the disk, count it,
/// not serve, and then recover the fleet's state from its peers. An edit
/// of the record tree or slots (`at_start` false) is found when the rows
/// are read (§8.5), here by a scrub: the node resets its log and records,
/// stops, and recovers them when started again.
fn refuses_and_recovers(fleet: &mut Fleet, what: &str, at_start: bool) {
    let c = 2;
    fleet.start(c);
    if !at_start {
        assert_eq!(fleet.node(c).counters().disk_rejected, 0, "{what}");
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let node = fleet.nodes[c].as_mut().unwrap();
        assert!(node.scrub(&mut rng).is_err(), "{what}: not detected");
        assert!(node.counters().host_rejected > 0, "{what}");
        assert!(node.is_faulted() && node.records_were_reset(), "{what}");
        fleet.stop(c);
        fleet.start(c);
        assert_eq!(fleet.node(c).counters().disk_rejected, 0, "{what}");
        assert_eq!(
            fleet.node(c).applied_index(),
            0,
            "{what}: the log was not reset"
        );
    } else {
        let node = fleet.node(c);
        assert_eq!(node.counters().disk_rejected, 1, "{what}: not detected");
        assert!(node.disk_rejection().is_some(), "{what}");
    }
    assert!(
        !fleet.node(c).is_serving(),
        "{what}: serves from a refused disk"
    );
    // Activity after the restart, so the fleet commits past what node 3
    // had before.
    assert!(fleet.guess(0, RECORD_A), "{what}: the fleet stopped");
    fleet.tick(100);
    let leader = fleet.leader().expect("a leader");
    assert!(fleet.node(c).is_serving(), "{what}: node 3 did not recover");
    assert_eq!(
        fleet.table(c),
        fleet.table(leader),
        "{what}: node 3 recovered a different table"
    );
    // And its new disk is accepted as its own after another restart.
    fleet.stop(c);
    fleet.start(c);
    assert_eq!(fleet.node(c).counters().disk_rejected, 0, "{what}");
}

#[test]
fn edited_rows_of_a_real_node_redb_are_refused_and_the_node_recovers() {
    type Edit = fn(&mut MemImage, &MemImage, &MemImage);
    let edits: [(&str, bool, Edit); 10] = [
        ("a byte of a slot row", false, |image, _, _| {
            let rows = image.get_mut(&Table::Slots).unwrap();
            let row = rows.values_mut().next().unwrap();
            row[40] ^= 0x20;
        }),
        ("a byte of a tree row", false, |image, _, _| {
            let rows = image.get_mut(&Table::Tree).unwrap();
            let row = rows.values_mut().next_back().unwrap();
            row[40] ^= 0x20;
        }),
        (
            "the tree and slots of an older copy",
            false,
            |image, older, _| {
                for t in [Table::Tree, Table::Slots] {
                    image.insert(t, older.get(&t).cloned().unwrap_or_default());
                }
            },
        ),
        (
            "a row in the version-2 record table",
            true,
            |image, _, _| {
                image
                    .entry(Table::Records)
                    .or_default()
                    .insert(vec![1; 32], vec![2; 80]);
            },
        ),
        ("a byte of the manifest", true, |image, _, _| {
            let rows = image.get_mut(&Table::Meta).unwrap();
            let row = rows.values_mut().next().unwrap();
            let last = row.len() - 1;
            row[last] ^= 1;
        }),
        ("two log rows swapped", true, |image, _, _| {
            let rows = image.get_mut(&Table::Log).unwrap();
            let keys: Vec<Vec<u8>> = rows.keys().cloned().collect();
            assert!(keys.len() >= 2, "too few log rows");
            let a = rows[&keys[0]].clone();
            let b = rows[&keys[1]].clone();
            rows.insert(keys[0].clone(), b);
            rows.insert(keys[1].clone(), a);
        }),
        ("a log row dropped", true, |image, _, _| {
            let rows = image.get_mut(&Table::Log).unwrap();
            let first = rows.keys().next().unwrap().clone();
            rows.remove(&first);
        }),
        (
            "a log row duplicated under the next index",
            true,
            |image, _, _| {
                let rows = image.get_mut(&Table::Log).unwrap();
                let (last, value) = rows.iter().next_back().unwrap();
                let next = u64::from_be_bytes(last.as_slice().try_into().unwrap()) + 1;
                let value = value.clone();
                rows.insert(next.to_be_bytes().to_vec(), value);
            },
        ),
        (
            "the log spliced with an older copy's",
            true,
            |image, older, _| {
                // The current log truncated, then continued with the rows the
                // older copy has after the truncation point (and the older
                // copy's record rows).
                let old_log = older.get(&Table::Log).unwrap();
                let rows = image.get_mut(&Table::Log).unwrap();
                let cut = rows.keys().next().unwrap().clone();
                rows.retain(|k, _| *k <= cut);
                for (k, v) in old_log.range(cut.clone()..) {
                    rows.insert(k.clone(), v.clone());
                }
                for t in [Table::Tree, Table::Slots] {
                    image.insert(t, older.get(&t).cloned().unwrap_or_default());
                }
            },
        ),
        (
            "a slot row from another node's disk",
            false,
            |image, _, other| {
                let theirs = other.get(&Table::Slots).unwrap();
                let (k, v) = theirs.iter().next().unwrap();
                image
                    .get_mut(&Table::Slots)
                    .unwrap()
                    .insert(k.clone(), v.clone());
            },
        ),
    ];
    for (what, at_start, edit) in edits {
        let mut fleet = busy_redb_fleet();
        // An older copy of node 3's rows, then more activity.
        fleet.stop(2);
        let read = |path: &std::path::Path| {
            let host = RedbHost::open_path(path).unwrap();
            let mut image = MemImage::new();
            for t in Table::ALL {
                image.insert(t, host.scan(t).unwrap().into_iter().collect());
            }
            image
        };
        let older = read(&fleet.path(2));
        fleet.start(2);
        fleet.tick(20);
        for k in 3..6u8 {
            fleet.register(0, RecordId([k; 32]), "right code");
        }
        fleet.tick(20);
        // Entries after the latest snapshot, so the log has rows to edit.
        assert!(fleet.guess(0, RecordId([4; 32])));
        fleet.tick(10);
        fleet.stop(2);
        fleet.stop(1);
        let other = read(&fleet.path(1));
        fleet.start(1);
        fleet.tick(10);
        edit_redb(&fleet.path(2), |image| edit(image, &older, &other));
        refuses_and_recovers(&mut fleet, what, at_start);
    }
}

/// No record payload in clear anywhere in `node.redb` (log rows carry
/// `Register` commands, record rows the slots): the file is searched for
/// bytes of a known record. Without sealing they are there, so the search
/// can fail.
#[test]
fn no_record_payload_lies_in_clear_in_node_redb() {
    fn payload_found(tweak: fn(&mut NodeConfig)) -> bool {
        let mut fleet = Fleet::redb(3, tweak);
        fleet.settle();
        for k in 0..6u8 {
            fleet.register(0, RecordId([k + 1; 32]), "right code");
        }
        fleet.tick(10);
        let slot = fleet
            .table(2)
            .get(&RECORD_A)
            .expect("the record")
            .to_bytes();
        // The payload, after the version and slot-kind bytes.
        let needle = slot[2..34].to_vec();
        fleet.stop(2);
        let file = std::fs::read(fleet.path(2)).unwrap();
        file.windows(needle.len()).any(|w| w == needle.as_slice())
    }
    assert!(
        !payload_found(snapshots_every_4),
        "record bytes in clear in node.redb"
    );
    assert!(
        payload_found(|c| {
            c.snapshot_interval = 4;
            c.unsealed_disk = true;
        }),
        "the search would not find an unsealed record either"
    );
}

// ----- NVRAM ---------------------------------------------------------------

/// The host copies every disk, lets the attacker spend every attempt, then
/// puts every disk back and restarts the whole fleet. Returns the KE2s the
/// record's generation gave out, and how many nodes serve at the end.
fn whole_fleet_rolled_back(nvram: bool) -> (usize, usize) {
    let mut fleet = Fleet::new(
        3,
        Disks::Memory((0..3).map(|_| MemHost::new()).collect()),
        nvram,
        defended,
    );
    fleet.settle();
    fleet.register(0, RECORD, "right code");
    fleet.tick(5);
    let copies: Vec<MemImage> = (0..3).map(|i| fleet.mem(i).image()).collect();
    for _ in 0..MAX_ATTEMPTS {
        assert!(fleet.guess(0, RECORD));
    }
    for (i, copy) in copies.into_iter().enumerate() {
        fleet.stop(i);
        fleet.mem(i).restore(copy);
    }
    for i in 0..3 {
        fleet.start(i);
    }
    fleet.tick(300);
    for i in 0..3 {
        if fleet.node(i).is_serving() {
            fleet.guess(i, RECORD);
        }
    }
    let serving = (0..3).filter(|i| fleet.node(*i).is_serving()).count();
    (fleet.ke2s_for(RECORD), serving)
}

#[test]
fn with_nvram_rolling_back_every_disk_costs_availability_not_guesses() {
    let (ke2s, serving) = whole_fleet_rolled_back(true);
    assert_eq!(ke2s, usize::from(MAX_ATTEMPTS), "KE2s beyond the limit");
    // Every node knows from NVRAM that its disk went back; none can reach
    // the log position it had, so none serves.
    assert_eq!(serving, 0);
}

#[test]
fn without_nvram_rolling_back_every_disk_gives_fresh_attempts() {
    // The limit SPEC §22.3 states: without NVRAM, a fleet restarted from
    // older copies of all its disks cannot tell. This is what NVRAM adds.
    let (ke2s, serving) = whole_fleet_rolled_back(false);
    assert_eq!(serving, 3);
    assert!(ke2s > usize::from(MAX_ATTEMPTS), "{ke2s}");
}

#[test]
fn with_nvram_a_rolled_back_node_recovers_from_its_peers() {
    let mut fleet = Fleet::new(
        3,
        Disks::Memory((0..3).map(|_| MemHost::new()).collect()),
        true,
        defended,
    );
    fleet.settle();
    let copy = fleet.mem(2).image();
    fleet.register(0, RECORD, "right code");
    assert!(fleet.guess(0, RECORD));
    fleet.tick(5);
    fleet.stop(2);
    fleet.mem(2).restore(copy);
    fleet.start(2);
    assert_eq!(fleet.node(2).counters().rollbacks_detected, 1);
    assert!(!fleet.node(2).is_serving());
    fleet.tick(100);
    assert!(fleet.node(2).is_serving());
    assert_eq!(fleet.table(2), fleet.table(0));
    // A clean restart with NVRAM serves at once: no probing needed.
    fleet.stop(2);
    fleet.start(2);
    assert!(fleet.node(2).is_serving());
    assert_eq!(fleet.node(2).counters().rollbacks_detected, 0);
}

fn one_probe_round(c: &mut NodeConfig) {
    c.probe_interval_ticks = 1_000_000;
}

/// The gate's second way out (SPEC §22.3, item 3; `Node::update_gate`): a
/// restarted node's target counted an uncommitted tail that a leader of a
/// later term then replaced with a shorter log. The node must serve once it
/// has applied everything committed under the new term, without waiting
/// for the old tail's length, and never before: not while its log holds
/// only the old term's entries, however far they reach.
#[test]
fn a_target_whose_uncommitted_tail_a_later_leader_replaced_releases_the_gate_only_when_applied() {
    const N: usize = 5;
    const A: usize = 0; // the old leader, whose tail is never committed
    const E: usize = 4; // the restarted node
    let mut fleet = Fleet::memory(N, defended);
    fleet.settle();
    assert_eq!(fleet.leader(), Some(A));
    fleet.register(A, RECORD, "right code");
    fleet.tick(5);
    let committed = fleet.node(A).commit_index();

    // E stops; A is cut off from B, C and D and appends charges nobody
    // else stores: its tail stays uncommitted.
    fleet.stop(E);
    for peer in 1..E {
        fleet.sever(A, peer, true);
    }
    let old_term = fleet.node(A).term();
    for _ in 0..MAX_ATTEMPTS {
        fleet.submit_guess(A, RECORD);
    }
    let target = fleet.node(A).last_log();
    assert_eq!(target.0, old_term);
    assert!(target.1 >= committed + 2, "{target:?} after {committed}");
    assert_eq!(fleet.node(A).commit_index(), committed);

    // E restarts, reaches everyone: its probes' answers include A's, so
    // its target is A's log, and A hands it the tail. Holding a log as up
    // to date as the target, with nothing new committed, it must not serve.
    // (Few ticks: B, C and D stop hearing A and will elect a leader.) E
    // probes once only: later rounds would soon replace the target with
    // the new leader's log, closing the window this test looks into (it
    // lasts at most a probe interval in a real fleet).
    fleet.tweak = one_probe_round;
    fleet.start(E);
    for _ in 0..12 {
        fleet.tick(1);
        assert!(!fleet.node(E).is_serving(), "served on an uncommitted tail");
        if fleet.node(E).last_log() == target {
            break;
        }
    }
    assert_eq!(fleet.node(E).last_log(), target, "E took A's tail");
    assert_eq!(fleet.node(A).term(), old_term, "no election yet");

    // A goes away; E is kept out while B, C and D elect a leader of a later
    // term, whose log is shorter than the target.
    fleet.cut.insert(A);
    for peer in 1..E {
        fleet.sever(E, peer, true);
    }
    for _ in 0..400 {
        if fleet.leader().is_some() {
            break;
        }
        fleet.tick(1);
        assert!(!fleet.node(E).is_serving(), "served while cut off");
    }
    let leader = fleet.leader().expect("B, C and D elect a leader");
    assert_ne!(leader, E);
    fleet.tick(5);
    let new_term = fleet.node(leader).term();
    let new_commit = fleet.node(leader).commit_index();
    assert!(new_term > old_term);
    assert!(
        new_commit < target.1,
        "the new log is shorter than the target"
    );

    // E comes back: its tail is replaced, and it serves once it has applied
    // everything committed, before the log reaches the target's index.
    for peer in 1..E {
        fleet.sever(E, peer, false);
    }
    let mut served = false;
    for _ in 0..100 {
        fleet.tick(1);
        let e = fleet.node(E);
        if e.is_serving() {
            assert_eq!(e.last_log().0, new_term, "served on the old term's tail");
            assert!(e.applied_index() >= new_commit, "served before applying");
            assert!(e.applied_index() < target.1);
            served = true;
            break;
        }
    }
    assert!(
        served,
        "never left the gate: {:?}",
        fleet.node(E).last_log()
    );
    assert!(!fleet.node(E).is_leader());
}

/// KE1s for records a node does not hold wait for a read barrier (SPEC.md
/// §20.2). A relay that floods a follower with them must not make the
/// leader run one heartbeat round per KE1: the reads queued between two
/// drive rounds share one ReadIndex request, and each is still answered
/// (here with a KE2 from the fake-record path).
#[test]
fn ke1s_for_unknown_records_share_one_read_index_per_drive_round() {
    let mut fleet = Fleet::memory(3, defended);
    fleet.settle();
    let leader = fleet.leader().unwrap();
    let follower = (leader + 1) % 3;
    let before = fleet.node(follower).counters();
    let mut tags = Vec::new();
    for k in 0..20u8 {
        let code = RecoveryCode::new(b"a guess").unwrap();
        let (_, ke1) = Recovery::start(
            &mut fleet.rng,
            &fleet.client,
            RecordId([100 + k; 32]),
            &code,
        )
        .unwrap();
        let tag = fleet.next_tag;
        fleet.next_tag += 1;
        let now = fleet.now;
        let node = fleet.nodes[follower].as_mut().unwrap();
        let answer = node.client_request(&mut fleet.rngs[follower], now, tag, &ke1.to_bytes());
        assert!(
            answer.is_none(),
            "a KE1 for an unknown record waits for the barrier"
        );
        tags.push(tag);
    }
    for _ in 0..100 {
        fleet.pump();
        if tags
            .iter()
            .all(|t| fleet.replies.iter().any(|(_, r, _)| r == t))
        {
            break;
        }
        fleet.tick(1);
    }
    for tag in &tags {
        let (_, _, answer) = fleet.replies.iter().find(|(_, r, _)| r == tag).unwrap();
        assert!(
            RecoveryResponse::from_bytes(answer).is_ok(),
            "KE1 {tag} got {answer:?}"
        );
    }
    let after = fleet.node(follower).counters();
    assert_eq!(after.read_barriers - before.read_barriers, 20);
    assert_eq!(after.read_index_rounds - before.read_index_rounds, 1);
}
