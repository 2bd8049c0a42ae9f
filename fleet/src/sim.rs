//! Deterministic simulation of a fleet (SPEC.md §24).
//!
//! N [`Node`]s run in one thread, each over a simulated host disk
//! ([`MemHost`]: the rows the host keeps, in memory) and, in NVRAM mode,
//! NVRAM the host cannot touch ([`MemNvram`]). One seeded RNG decides
//! everything, with every power SPEC §24.1 grants the host: which message
//! is delivered next (so messages are delayed and reordered), which are
//! dropped, duplicated, replayed (to the same boot, or recorded and
//! delivered again at any later time, across restarts) or altered, when
//! the network partitions and heals, when a node crashes, restarts, has its
//! disk wiped, rolled back to an older copy or edited (a byte of a row or a
//! key changed, rows dropped, duplicated, swapped, spliced from an older
//! copy, or taken from another node's disk), and what honest and attacking
//! clients do. After every step an oracle checks the invariants; at the end
//! the fleet is healed and every honest client must recover its key.
//!
//! A seed replays exactly: the nodes have no clocks, threads or randomness
//! of their own, raft-rs's election timeout is pinned (see
//! [`crate::node`]), and every map iterates in key order.

// The simulation indexes its own vectors of nodes, disks and clients, sized
// at construction; no index comes from a message or a disk.
#![allow(clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use backup_key_vault::client::{
    AwaitingKeyRelease, AwaitingRecoveryResponse, AwaitingRegistrationConfirmation,
    AwaitingRegistrationResponse, ClientConfig, Recovery, Registration,
};
use backup_key_vault::vault::{Applied, RecordSlot, RecordTable, VaultPolicy};
use backup_key_vault::wire::{
    KeyRelease, RecoveryResponse, RegistrationConfirmation, RegistrationResponse,
};
use backup_key_vault::{BackupKey, FleetSecrets, RecordId, RecordRange, RecoveryCode};

use crate::node::{Event, Node, NodeConfig, RecordStats};
use crate::platform::{HostStore, MemHost, MemImage, MemNvram, Nvram, Table};

/// What one simulated run looks like.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Fleet size (3 or 5 is typical).
    pub nodes: usize,
    /// Scheduler steps before the fleet is healed.
    pub steps: usize,
    /// Attempts per record (small, so records run out).
    pub max_attempts: u8,
    /// Honest clients, one record each.
    pub honest: usize,
    /// Whether crashes, restarts, partitions, wipes, rollbacks, replays and
    /// forgeries happen (message loss, delay, duplication and reordering
    /// always do).
    pub faults: bool,
    /// Applied entries between snapshots.
    pub snapshot_interval: u64,
    /// Applied entries whose record rows may wait in a node's memory
    /// ([`NodeConfig::records_write_every`]): a crash loses them, and the
    /// node must apply their entries again.
    pub records_write_every: u64,
    /// Whether every node has tamper-proof NVRAM (§22.4). With it, up to
    /// ⌊N/2⌋ disks may be damaged at once; without it, one at a time
    /// (§22.3).
    pub nvram: bool,
    /// **Test only**: run every node with the broken rule (KE2 before the
    /// charge commits).
    #[cfg(feature = "broken-rule")]
    pub broken_rule: bool,
    /// **Test only**: nodes answer a KE1 for a record they do not hold
    /// without a read barrier.
    #[cfg(feature = "broken-rule")]
    pub no_read_barrier: bool,
    /// **Test only**: a group's nodes serve every record id, whatever the
    /// group's range (a realm whose vaults forgot their range, §14.1).
    #[cfg(feature = "broken-rule")]
    pub ignore_range: bool,
}

impl SimConfig {
    /// The configuration the CI seeds use, varied by seed: 3 or 5 nodes,
    /// with NVRAM on even seeds (`BKV_SIM_NVRAM=on` or `off` sets it for
    /// every seed).
    pub fn for_seed(seed: u64) -> Self {
        let nvram = match std::env::var("BKV_SIM_NVRAM").as_deref() {
            Ok("on") => true,
            Ok("off") => false,
            _ => seed.is_multiple_of(2),
        };
        Self {
            nodes: if seed.is_multiple_of(3) { 3 } else { 5 },
            steps: 220,
            max_attempts: 3,
            honest: 2,
            faults: std::env::var_os("BKV_SIM_NO_FAULTS").is_none(),
            snapshot_interval: 8 + seed % 24,
            records_write_every: 1 + (seed / 3) % 8,
            nvram,
            #[cfg(feature = "broken-rule")]
            broken_rule: false,
            #[cfg(feature = "broken-rule")]
            no_read_barrier: false,
            #[cfg(feature = "broken-rule")]
            ignore_range: false,
        }
    }
}

/// What a run did (for reports and for tests that check coverage).
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// KE2s built from records.
    pub ke2s: u64,
    /// Keys released.
    pub releases: u64,
    /// Registrations confirmed.
    pub registrations: u64,
    /// Records erased.
    pub erasures: u64,
    /// Crashes, wipes, rollbacks injected.
    pub crashes: u64,
    /// Wipes injected.
    pub wipes: u64,
    /// Rollbacks injected.
    pub rollbacks: u64,
    /// Disks edited by the host (a byte changed, a row dropped,
    /// duplicated, swapped, taken from an older copy or another node's
    /// disk), each detected when the node next started.
    pub edits_detected: u64,
    /// Starts from a disk whose record tree or slots the host had changed
    /// (§8.5): these rows are checked as they are read, not at the start.
    pub record_edits: u64,
    /// Nodes that found record rows that did not check, reset their log
    /// and records, and recovered them from their peers.
    pub record_resets: u64,
    /// Recorded messages delivered again later, across restarts.
    pub late_replays: u64,
    /// Forged or altered messages injected and dropped.
    pub forgeries_dropped: u64,
    /// Replayed messages injected and dropped.
    pub replays_dropped: u64,
    /// Commands proposed / entries proposed (batching).
    pub commands_per_entry: f64,
    /// Snapshots taken or installed.
    pub snapshots: u64,
    /// Requests for another group's records refused (realm runs, §14.1).
    pub foreign_refused: u64,
    /// Snapshots read from a leader's host and sent to a lagging peer
    /// (counted on the nodes up at the end).
    pub snapshots_sent: u64,
}

impl SimReport {
    /// Adds another run's figures (`commands_per_entry` is summed: divide
    /// by the runs).
    pub fn absorb(&mut self, r: &SimReport) {
        self.ke2s += r.ke2s;
        self.releases += r.releases;
        self.registrations += r.registrations;
        self.erasures += r.erasures;
        self.crashes += r.crashes;
        self.wipes += r.wipes;
        self.rollbacks += r.rollbacks;
        self.edits_detected += r.edits_detected;
        self.record_edits += r.record_edits;
        self.record_resets += r.record_resets;
        self.late_replays += r.late_replays;
        self.forgeries_dropped += r.forgeries_dropped;
        self.replays_dropped += r.replays_dropped;
        self.commands_per_entry += r.commands_per_entry;
        self.snapshots += r.snapshots;
        self.foreign_refused += r.foreign_refused;
        self.snapshots_sent += r.snapshots_sent;
    }
}

struct Honest {
    record_id: RecordId,
    code: String,
    /// Backup key per confirmed generation.
    keys: BTreeMap<u64, [u8; 32]>,
    /// Every backup key this client uploaded, confirmed or not.
    uploaded: Vec<[u8; 32]>,
    busy: bool,
}

#[allow(clippy::large_enum_variant)]
enum Phase {
    RegResponse(AwaitingRegistrationResponse),
    RegConfirm(AwaitingRegistrationConfirmation),
    Ke2(AwaitingRecoveryResponse),
    Release(AwaitingKeyRelease),
}

struct Op {
    /// `Some(i)`: honest client i; `None`: an attacker.
    honest: Option<usize>,
    node: usize,
    incarnation: u64,
    phase: Phase,
    started: usize,
    /// The highest index any running node had applied when the request
    /// was sent (set by `send_request`): committed before the request
    /// arrived, so an answer must reflect it.
    fresh: u64,
}

struct InFlight {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

/// The oracle's view, fed by the nodes' events.
#[derive(Default)]
struct Oracle {
    entries: BTreeMap<u64, u64>,
    /// (record, generation) -> reset indices.
    resets: BTreeMap<(RecordId, u64), BTreeSet<u64>>,
    /// (record, generation) -> indices of the charges behind KE2s issued.
    ke2s: BTreeMap<(RecordId, u64), Vec<u64>>,
    /// record -> (index, generation) of erasures.
    erased: BTreeMap<RecordId, Vec<(u64, u64)>>,
    releases: u64,
}

/// One simulated fleet.
pub struct Sim {
    seed: u64,
    cfg: SimConfig,
    rng: ChaCha20Rng,
    secrets: FleetSecrets,
    client: ClientConfig,
    policy: VaultPolicy,
    disks: Vec<MemHost>,
    nvrams: Vec<MemNvram>,
    /// Older copies of each disk (the newest last), to roll back to or to
    /// take rows from, each with what was known of it when it was taken: a
    /// copy of a disk the host had edited is not an authentic state.
    images: Vec<Vec<Copy>>,
    /// Nodes whose disk the host edited since they last started: the next
    /// start must detect it.
    edited: Vec<Option<(usize, Table)>>,
    /// Per node: its disk before the host's first edit since it last ran,
    /// and whether a splice (whose outcome may be authentic) came since.
    edit_base: Vec<Option<(MemImage, bool)>>,
    /// Every kind of message ever sent, sampled: the host delivers any of
    /// them again at any later time.
    recorded: Vec<InFlight>,
    nodes: Vec<Option<Node>>,
    node_rngs: Vec<ChaCha20Rng>,
    /// Starts of each node so far.
    lives: Vec<u64>,
    net: Vec<InFlight>,
    delivered: Vec<(usize, Vec<u8>, u64)>,
    partition: Option<Vec<bool>>,
    /// Nodes whose disk was damaged (wiped, rolled back or edited) and that
    /// have not served since.
    damaged: BTreeSet<usize>,
    /// Nodes running on record rows the host changed that the node has not
    /// yet read (§8.5): each counts as damaged until its rows are found
    /// right again or it resets.
    lazy: BTreeSet<usize>,
    honest: Vec<Honest>,
    ops: BTreeMap<u64, Op>,
    next_tag: u64,
    now: u64,
    step: usize,
    oracle: Oracle,
    report: SimReport,
    /// The host's decisions, one byte each, before the RNG takes over
    /// ([`Sim::with_script`]).
    script: Vec<u8>,
    script_at: usize,
}

type Check = Result<(), String>;

/// A copy of a disk, its authentic base if the host had edited it, and the
/// edit that must be noticed if it is put back.
/// A copy of a disk: its rows, what was known of it when it was taken (the
/// disk before the host's edits since the node last ran, and the latest
/// edit), and whether the node was running on record rows the host had
/// changed.
type Copy = (
    MemImage,
    Option<(MemImage, bool)>,
    Option<(usize, Table)>,
    bool,
);

impl Sim {
    /// A fleet for `seed`, every node started on an empty disk.
    pub fn new(seed: u64, cfg: SimConfig) -> Result<Self, String> {
        let records = (0..cfg.honest)
            .map(|i| RecordId([i as u8 + 1; 32]))
            .collect();
        Self::new_group(seed, cfg, RecordRange::ALL, records)
    }

    /// One group of a realm (SPEC.md §14.1, §24.2): the fleet serves only
    /// `range` (its vaults refuse other ids, its clients are configured
    /// with the range), and its honest clients own `records` (one each,
    /// all in `range`; `cfg.honest` is ignored). The oracle also checks
    /// that no node charges, answers or holds a record outside `range`.
    /// [`crate::realm_sim`] runs several, routing each client by record id.
    pub fn new_group(
        seed: u64,
        cfg: SimConfig,
        range: RecordRange,
        records: Vec<RecordId>,
    ) -> Result<Self, String> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let secrets = FleetSecrets::generate(&mut rng);
        let client = ClientConfig::insecure_test_only(secrets.public_keys()).with_records(range);
        let policy = VaultPolicy {
            max_attempts: cfg.max_attempts,
            session_ttl_ms: 5_000,
            records: range,
            ..VaultPolicy::insecure_test_only()
        };
        if let Some(outside) = records.iter().find(|r| !range.contains(r)) {
            return Err(format!("record {outside:?} is outside the group's range"));
        }
        let cfg = SimConfig {
            honest: records.len(),
            ..cfg
        };
        let honest = records
            .into_iter()
            .enumerate()
            .map(|(i, record_id)| Honest {
                record_id,
                code: format!("code-{i}-{seed}"),
                keys: BTreeMap::new(),
                uploaded: Vec::new(),
                busy: false,
            })
            .collect();
        let mut sim = Self {
            seed,
            rng,
            secrets,
            client,
            policy,
            disks: (0..cfg.nodes).map(|_| MemHost::new()).collect(),
            nvrams: (0..cfg.nodes).map(|_| MemNvram::new()).collect(),
            images: vec![Vec::new(); cfg.nodes],
            edited: vec![None; cfg.nodes],
            edit_base: vec![None; cfg.nodes],
            recorded: Vec::new(),
            nodes: (0..cfg.nodes).map(|_| None).collect(),
            node_rngs: Vec::new(),
            lives: vec![0; cfg.nodes],
            net: Vec::new(),
            delivered: Vec::new(),
            partition: None,
            damaged: BTreeSet::new(),
            lazy: BTreeSet::new(),
            honest,
            ops: BTreeMap::new(),
            next_tag: 1,
            now: 1_000,
            step: 0,
            oracle: Oracle::default(),
            report: SimReport::default(),
            script: Vec::new(),
            script_at: 0,
            cfg,
        };
        sim.node_rngs = (0..sim.cfg.nodes)
            .map(|_| ChaCha20Rng::seed_from_u64(sim.rng.next_u64()))
            .collect();
        for i in 0..sim.cfg.nodes {
            sim.start(i)?;
        }
        Ok(sim)
    }

    fn fail(&self, what: impl core::fmt::Display) -> String {
        format!(
            "seed {} failed at step {}: {what} (replay: BKV_SIM_SEED={} cargo test --release -p bkv-fleet --test simulation)",
            self.seed, self.step, self.seed
        )
    }

    /// Lets `script` make the host's decisions: every choice of the
    /// scheduler (which step comes next, which message is delivered,
    /// duplicated, dropped, recorded or replayed, which fault strikes which
    /// node and which row an edit touches) takes the next byte of `script`,
    /// and the seeded RNG once it runs out. Keys, nonces and the clients'
    /// randomness always come from the RNG. A fuzzer drives the fleet this
    /// way (`fuzz/hosts`, target `fleet_sim`); the oracle is the same.
    #[must_use]
    pub fn with_script(mut self, script: Vec<u8>) -> Self {
        self.script = script;
        self.script_at = 0;
        self
    }

    /// One decision of the host: the script's next byte, else the RNG.
    fn draw(&mut self) -> u64 {
        match self.script.get(self.script_at) {
            Some(&b) => {
                self.script_at += 1;
                u64::from(b)
            }
            None => self.rng.next_u64(),
        }
    }

    fn pick(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.draw() % n as u64) as usize
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.draw() % 100 < percent
    }

    fn node_config(&self, i: usize) -> NodeConfig {
        let members: Vec<u64> = (1..=self.cfg.nodes as u64).collect();
        let mut c = NodeConfig::new(i as u64 + 1, members, self.policy.clone());
        // Different election timeouts per node, fixed per seed.
        // (The seed reduced first: any u64 is a seed, and the fuzzer's
        // `fleet_sim` target hands it u64::MAX.)
        c.election_tick = 8 + (((self.seed % 7) as usize + 3 * i) % 7);
        c.heartbeat_tick = 2;
        c.request_timeout_ticks = 40;
        c.snapshot_interval = self.cfg.snapshot_interval;
        c.records_write_every = self.cfg.records_write_every;
        c.record_events = true;
        #[cfg(feature = "broken-rule")]
        {
            c.broken_rule = self.cfg.broken_rule;
            c.no_read_barrier = self.cfg.no_read_barrier;
            if self.cfg.ignore_range {
                c.policy.records = RecordRange::ALL;
            }
        }
        c
    }

    fn start(&mut self, i: usize) -> Check {
        let host: Box<dyn HostStore> = Box::new(self.disks[i].clone());
        let nvram = self
            .cfg
            .nvram
            .then(|| Box::new(self.nvrams[i].clone()) as Box<dyn Nvram>);
        let config = self.node_config(i);
        // What the host changed since the node last ran, compared before
        // the node writes anything.
        let changed = |tables: &[Table]| {
            self.edit_base[i].as_ref().is_some_and(|(base, _)| {
                let now = self.disks[i].image();
                !same_rows(base, &now, tables)
            })
        };
        let records_changed = changed(&[Table::Tree, Table::Slots]);
        let strict = changed(&[Table::Meta, Table::Log, Table::Records]);
        let node = Node::open(config, &self.secrets, host, nvram, &mut self.node_rngs[i])
            .map_err(|e| self.fail(e))?;
        // Record rows the host changed are checked as they are read, not
        // at the start (§8.5): the node runs on them, counted as damaged.
        let rejected = node.counters().disk_rejected == 1;
        if rejected {
            // The whole disk was discarded, changed record rows with it.
            self.lazy.remove(&i);
        } else if records_changed {
            self.lazy.insert(i);
            self.report.record_edits += 1;
        }
        if let Some((kind, table)) = self.edited[i] {
            // Every edit the host made to a stopped node's log and manifest
            // is caught when it starts (§22.1).
            if strict && !rejected {
                return Err(self.fail(format!(
                    "node {} started from a disk its host edited (edit {kind} of {table:?}) without noticing",
                    i + 1
                )));
            }
            if rejected {
                self.report.edits_detected += 1;
            }
        }
        self.edited[i] = None;
        self.edit_base[i] = None;
        self.nodes[i] = Some(node);
        self.lives[i] += 1;
        Ok(())
    }

    /// Which life of node `i` this is: a restart, and a new incarnation
    /// after a detected rollback, are new lives (ops of an old life never
    /// hear back).
    fn life(&self, i: usize) -> u64 {
        self.lives[i] * 1_000_000 + self.nodes[i].as_ref().map_or(0, Node::incarnation)
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            None => true,
            Some(side) => side.get(a) == side.get(b),
        }
    }

    fn drive(&mut self, i: usize) -> Check {
        let now = self.now;
        let Some(node) = self.nodes[i].as_mut() else {
            return Ok(());
        };
        node.drive(&mut self.node_rngs[i], now);
        self.collect(i)
    }

    fn collect(&mut self, i: usize) -> Check {
        let Some(node) = self.nodes[i].as_mut() else {
            return Ok(());
        };
        if node.is_faulted() {
            // The engine refused to go on: the node crashes; the host
            // restarts it later from its disk.
            if node.records_were_reset() {
                // Only record rows the host changed may do this.
                if !self.lazy.contains(&i) {
                    let why = node.host_rejection();
                    return Err(self.fail(format!(
                        "node {} refused record rows its host had not changed ({why:?})",
                        i + 1
                    )));
                }
                // Its log and records are gone: damaged until it serves.
                self.lazy.remove(&i);
                self.damaged.insert(i);
                self.report.record_resets += 1;
            }
            self.nodes[i] = None;
            return Ok(());
        }
        let out = node.take_output();
        let events = node.take_events();
        for (to, bytes) in out.messages {
            // The host keeps a sample of everything sent, to deliver again
            // whenever it likes.
            if self.recorded.len() < 256 {
                self.recorded.push(InFlight {
                    from: i,
                    to: (to as usize).wrapping_sub(1),
                    bytes: bytes.clone(),
                });
            } else if self.draw().is_multiple_of(8) {
                let at = (self.draw() % 256) as usize;
                self.recorded[at] = InFlight {
                    from: i,
                    to: (to as usize).wrapping_sub(1),
                    bytes: bytes.clone(),
                };
            }
            self.net.push(InFlight {
                from: i,
                to: (to as usize).wrapping_sub(1),
                bytes,
            });
        }
        for e in events {
            self.observe(e)?;
        }
        for (tag, bytes) in out.replies {
            self.reply(tag, &bytes)?;
        }
        Ok(())
    }

    fn observe(&mut self, e: Event) -> Check {
        // A group serves only its range (§14.1): nothing outside it is
        // ever charged, answered or changed.
        let touched = match &e {
            Event::Command { command, .. } => Some(*command.record_id()),
            Event::Ke2 { record_id, .. } => Some(*record_id),
            _ => None,
        };
        if let Some(record) = touched.filter(|r| !self.policy.records.contains(r)) {
            return Err(self.fail(format!(
                "record {record:?} is outside this group's range, yet a node committed or answered for it"
            )));
        }
        match e {
            Event::Entry { index, digest } => {
                if let Some(d) = self.oracle.entries.insert(index, digest) {
                    if d != digest {
                        return Err(
                            self.fail(format!("two different entries applied at index {index}"))
                        );
                    }
                }
            }
            Event::Command {
                index,
                command,
                applied,
            } => match applied {
                Applied::Reset { .. } => {
                    self.oracle
                        .resets
                        .entry((*command.record_id(), generation_of(&command)))
                        .or_default()
                        .insert(index);
                }
                Applied::Erased => {
                    self.oracle
                        .erased
                        .entry(*command.record_id())
                        .or_default()
                        .push((index, generation_of(&command)));
                    self.report.erasures += 1;
                }
                _ => {}
            },
            Event::Ke2 {
                record_id,
                generation,
                index,
            } => {
                self.report.ke2s += 1;
                self.oracle
                    .ke2s
                    .entry((record_id, generation))
                    .or_default()
                    .push(index);
            }
            Event::Release { .. } => {
                self.oracle.releases += 1;
            }
        }
        Ok(())
    }

    /// G2 across the fleet: for every record generation, the KE2s whose
    /// charges lie between two consecutive resets in the log number at most
    /// `max_attempts`, summed over all nodes.
    fn check_guess_limit(&self) -> Check {
        let empty = BTreeSet::new();
        for (key, ke2s) in &self.oracle.ke2s {
            let resets = self.oracle.resets.get(key).unwrap_or(&empty);
            let mut per_epoch: BTreeMap<usize, usize> = BTreeMap::new();
            for index in ke2s {
                let epoch = resets.range(..*index).count();
                let n = per_epoch.entry(epoch).or_default();
                *n += 1;
                if *n > usize::from(self.cfg.max_attempts) {
                    return Err(self.fail(format!(
                        "guess limit broken: {n} KE2s for record {:02x?}.. generation {} since its last success (max {})",
                        &key.0 .0[..2],
                        key.1,
                        self.cfg.max_attempts
                    )));
                }
            }
        }
        Ok(())
    }

    /// An erased record never comes back: a node that has applied the erase
    /// never again shows that generation live.
    fn check_erased(&self) -> Check {
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(node) = node else {
                continue;
            };
            for (record, erasures) in &self.oracle.erased {
                for (index, generation) in erasures {
                    if node.applied_index() >= *index {
                        let slot = match node.record(record) {
                            Ok(slot) => slot,
                            // Refused: only rows the host changed may be.
                            Err(_) if self.lazy.contains(&i) => None,
                            Err(_) => {
                                return Err(self.fail(format!(
                                    "node {} refused a record its host had not changed",
                                    node.id()
                                )))
                            }
                        };
                        if let Some(RecordSlot::Live(r)) = slot {
                            if r.generation <= *generation {
                                return Err(self.fail(format!(
                                    "node {} shows generation {} of an erased record live",
                                    node.id(),
                                    r.generation
                                )));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn send_request(&mut self, mut op: Op, request: &[u8]) -> Check {
        let tag = self.next_tag;
        self.next_tag += 1;
        op.fresh = self
            .nodes
            .iter()
            .flatten()
            .map(Node::applied_index)
            .max()
            .unwrap_or(0);
        let i = op.node;
        let now = self.now;
        let Some(node) = self.nodes[i].as_mut() else {
            self.abandon(op);
            return Ok(());
        };
        let answer = node.client_request(&mut self.node_rngs[i], now, tag, request);
        self.ops.insert(tag, op);
        if let Some(bytes) = answer {
            self.reply(tag, &bytes)?;
        }
        self.drive(i)
    }

    fn abandon(&mut self, op: Op) {
        self.release_client(op.honest);
    }

    fn release_client(&mut self, honest: Option<usize>) {
        if let Some(h) = honest {
            if let Some(c) = self.honest.get_mut(h) {
                c.busy = false;
            }
        }
    }

    fn reply(&mut self, tag: u64, bytes: &[u8]) -> Check {
        let Some(op) = self.ops.remove(&tag) else {
            return Ok(());
        };
        let honest = op.honest;
        let node = op.node;
        let incarnation = op.incarnation;
        let started = op.started;
        let fresh = op.fresh;
        let next = |phase| Op {
            honest,
            node,
            incarnation,
            phase,
            started,
            fresh: 0,
        };
        match op.phase {
            Phase::RegResponse(state) => {
                let Ok(response) = RegistrationResponse::from_bytes(bytes) else {
                    self.release_client(honest);
                    return Ok(());
                };
                // The client picks the key itself, and remembers it before
                // the upload: a registration may commit without the client
                // hearing back (§8.3 item 4), and still be its own.
                let key = BackupKey::generate(&mut self.rng);
                if let Some(c) = honest.and_then(|h| self.honest.get_mut(h)) {
                    c.uploaded.push(*key.expose_secret());
                }
                let (state, upload) =
                    state
                        .finish(&mut self.rng, &response, Some(key))
                        .map_err(|e| {
                            self.fail(format!("client refused a registration response: {e}"))
                        })?;
                self.send_request(next(Phase::RegConfirm(state)), &upload.to_bytes())
            }
            Phase::RegConfirm(state) => {
                let Ok(confirmation) = RegistrationConfirmation::from_bytes(bytes) else {
                    self.release_client(honest);
                    return Ok(());
                };
                let registered = state
                    .finish(&confirmation)
                    .map_err(|e| self.fail(format!("confirmation refused: {e}")))?;
                self.report.registrations += 1;
                if let Some(h) = honest.and_then(|h| self.honest.get_mut(h)) {
                    h.keys.insert(
                        registered.generation,
                        *registered.backup_key.expose_secret(),
                    );
                    h.busy = false;
                }
                Ok(())
            }
            Phase::Ke2(state) => {
                if std::env::var_os("BKV_SIM_TRACE").is_some() && honest.is_some() {
                    eprintln!(
                        "honest {honest:?} KE1 answered by node {}: {:?}",
                        node + 1,
                        backup_key_vault::wire::Rejection::from_bytes(bytes).map(|r| r.code)
                    );
                }
                let Ok(ke2) = RecoveryResponse::from_bytes(bytes) else {
                    self.release_client(honest);
                    return Ok(());
                };
                match state.finish(&mut self.rng, &ke2) {
                    Ok((state, ke3)) => {
                        self.send_request(next(Phase::Release(state)), &ke3.to_bytes())
                    }
                    // A wrong code (an attacker) already fails here.
                    Err(_) => {
                        // The right code fails only on a KE2 from the
                        // fake-record path: the record is gone, or was never
                        // confirmed. That answer must come from a node that
                        // had applied everything committed before the KE1
                        // arrived (§20.2): otherwise a registration the
                        // client saw confirmed looks absent.
                        if honest.is_some() {
                            let same_life = self.life(node) == incarnation;
                            let applied = self.nodes[node]
                                .as_ref()
                                .filter(|_| same_life)
                                .map(Node::applied_index);
                            if let Some(applied) = applied.filter(|a| *a < fresh) {
                                return Err(self.fail(format!(
                                    "node {} answered an honest client's KE1 from the fake-record path at applied index {applied}, behind index {fresh} committed before the KE1 was sent",
                                    node + 1
                                )));
                            }
                        }
                        self.release_client(honest);
                        Ok(())
                    }
                }
            }
            Phase::Release(state) => {
                if std::env::var_os("BKV_SIM_TRACE").is_some() && honest.is_some() {
                    eprintln!(
                        "honest {honest:?} KE3 answered by node {}: {:?}",
                        node + 1,
                        backup_key_vault::wire::Rejection::from_bytes(bytes).map(|r| r.code)
                    );
                }
                let Ok(release) = KeyRelease::from_bytes(bytes) else {
                    self.release_client(honest);
                    return Ok(());
                };
                let Some(h) = honest else {
                    return Err(self.fail("an attacker recovered a key"));
                };
                let recovered = state
                    .finish(&release)
                    .map_err(|e| self.fail(format!("release refused: {e}")))?;
                self.report.releases += 1;
                let known = self.honest.get(h).map(|c| {
                    c.uploaded
                        .iter()
                        .any(|k| k == recovered.backup_key.expose_secret())
                });
                if known != Some(true) {
                    return Err(self.fail("recovered a key that was never registered"));
                }
                if let Some(c) = self.honest.get_mut(h) {
                    c.busy = false;
                }
                Ok(())
            }
        }
    }

    fn live_nodes(&self) -> Vec<usize> {
        (0..self.cfg.nodes)
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    fn start_client(&mut self) -> Check {
        let live = self.live_nodes();
        if live.is_empty() {
            return Ok(());
        }
        let node = live[self.pick(live.len())];
        let incarnation = self.life(node);
        if self.chance(45) && !self.honest.is_empty() {
            let h = self.pick(self.honest.len());
            if self.honest[h].busy {
                return Ok(());
            }
            self.honest[h].busy = true;
            let record_id = self.honest[h].record_id;
            let code =
                RecoveryCode::new(self.honest[h].code.as_bytes()).map_err(|e| self.fail(e))?;
            if self.honest[h].keys.is_empty() || self.chance(10) {
                let (state, request) =
                    Registration::start(&mut self.rng, &self.client, record_id, &code, None)
                        .map_err(|e| self.fail(e))?;
                let op = Op {
                    honest: Some(h),
                    node,
                    incarnation,
                    phase: Phase::RegResponse(state),
                    started: self.step,
                    fresh: 0,
                };
                self.send_request(op, &request.to_bytes())
            } else {
                let (state, ke1) = Recovery::start(&mut self.rng, &self.client, record_id, &code)
                    .map_err(|e| self.fail(e))?;
                let op = Op {
                    honest: Some(h),
                    node,
                    incarnation,
                    phase: Phase::Ke2(state),
                    started: self.step,
                    fresh: 0,
                };
                self.send_request(op, &ke1.to_bytes())
            }
        } else {
            // An attacker: a burst of guesses at one record, through one or
            // several nodes.
            let burst = 1 + self.pick(4);
            let target = if self.honest.is_empty() {
                RecordId([0xEE; 32])
            } else {
                let h = self.pick(self.honest.len());
                self.honest[h].record_id
            };
            for _ in 0..burst {
                let live = self.live_nodes();
                if live.is_empty() {
                    break;
                }
                let node = live[self.pick(live.len())];
                let guess = format!("guess-{}", self.rng.next_u64());
                let code = RecoveryCode::new(guess.as_bytes()).map_err(|e| self.fail(e))?;
                let (state, ke1) = Recovery::start(&mut self.rng, &self.client, target, &code)
                    .map_err(|e| self.fail(e))?;
                let op = Op {
                    honest: None,
                    node,
                    incarnation: self.life(node),
                    phase: Phase::Ke2(state),
                    started: self.step,
                    fresh: 0,
                };
                self.send_request(op, &ke1.to_bytes())?;
            }
            Ok(())
        }
    }

    fn deliver(&mut self, index: usize, keep_copy: bool) -> Check {
        if index >= self.net.len() {
            return Ok(());
        }
        let m = if keep_copy {
            let m = &self.net[index];
            InFlight {
                from: m.from,
                to: m.to,
                bytes: m.bytes.clone(),
            }
        } else {
            self.net.swap_remove(index)
        };
        if !self.connected(m.from, m.to) {
            return Ok(());
        }
        let Some(node) = self.nodes.get_mut(m.to).and_then(Option::as_mut) else {
            return Ok(());
        };
        // The window the message met: a replay counts only against it.
        let inc = self.lives[m.to] * 1_000_000 + node.incarnation();
        node.receive(&mut self.node_rngs[m.to], &m.bytes);
        if self.delivered.len() >= 64 {
            let at = self.pick(64);
            self.delivered[at] = (m.to, m.bytes, inc);
        } else {
            self.delivered.push((m.to, m.bytes, inc));
        }
        self.drive(m.to)
    }

    /// Injects a message the receiver must drop, and checks it did.
    fn inject(&mut self, to: usize, bytes: &[u8], replay_of: Option<u64>) -> Check {
        let Some(node) = self.nodes.get_mut(to).and_then(Option::as_mut) else {
            return Ok(());
        };
        // A replay to a node restarted since the original delivery meets a
        // fresh window and may be accepted (harmless to Raft, §21.3).
        if replay_of.is_some_and(|inc| inc != self.lives[to] * 1_000_000 + node.incarnation()) {
            return Ok(());
        }
        let before = node.counters();
        node.receive(&mut self.node_rngs[to], bytes);
        let after = node.counters();
        let dropped = |c: crate::transport::TransportCounters| {
            c.forged + c.replayed + c.stale + c.misaddressed
        };
        if after.transport.accepted != before.transport.accepted
            || dropped(after.transport) != dropped(before.transport) + 1
        {
            return Err(self.fail(format!(
                "node {} did not drop and count an injected {} message ({:?} -> {:?})",
                to + 1,
                if replay_of.is_some() {
                    "replayed"
                } else {
                    "altered"
                },
                before.transport,
                after.transport
            )));
        }
        if replay_of.is_some() {
            self.report.replays_dropped += 1;
        } else {
            self.report.forgeries_dropped += 1;
        }
        self.drive(to)
    }

    fn tick_all(&mut self) -> Check {
        self.now += 10;
        for i in 0..self.cfg.nodes {
            let now = self.now;
            if let Some(node) = self.nodes[i].as_mut() {
                node.tick(&mut self.node_rngs[i], now);
            }
            self.drive(i)?;
        }
        // Ops whose node crashed never hear back.
        let step = self.step;
        let stale: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| {
                step > op.started + 400
                    || self.nodes[op.node].as_ref().is_none_or(|n| {
                        self.lives[op.node] * 1_000_000 + n.incarnation() != op.incarnation
                    })
            })
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            if let Some(op) = self.ops.remove(&t) {
                self.abandon(op);
            }
        }
        Ok(())
    }

    /// How many disks may be damaged at once: one without NVRAM (§22.3),
    /// a minority of the fleet with it (§22.4: more would lose committed
    /// entries everywhere and stop the fleet for good, which is safe but
    /// leaves nothing to check after healing).
    fn damage_budget(&self) -> usize {
        if self.cfg.nvram {
            self.cfg.nodes / 2
        } else {
            1
        }
    }

    fn may_damage(&self, i: usize) -> bool {
        let hurt = self.damaged.union(&self.lazy).count();
        self.nodes[i].is_none()
            && (self.damaged.contains(&i) || self.lazy.contains(&i) || hurt < self.damage_budget())
    }

    fn fault(&mut self) -> Check {
        let n = self.cfg.nodes;
        match self.pick(12) {
            0 => {
                // Partition into two sides, or heal.
                if self.partition.is_some() {
                    self.partition = None;
                } else {
                    let side: Vec<bool> = (0..n).map(|_| self.chance(50)).collect();
                    self.partition = Some(side);
                }
            }
            1 | 2 => {
                let i = self.pick(n);
                if self.nodes[i].is_some() {
                    self.nodes[i] = None;
                    self.report.crashes += 1;
                }
            }
            3 | 4 => {
                let i = self.pick(n);
                if self.nodes[i].is_none() {
                    self.start(i)?;
                    self.drive(i)?;
                }
            }
            5 => {
                // Keep a copy of a disk, to roll back to or take rows from.
                let i = self.pick(n);
                let copy = (
                    self.disks[i].image(),
                    self.edit_base[i].clone(),
                    self.edited[i],
                    self.lazy.contains(&i),
                );
                let copies = &mut self.images[i];
                if copies.len() >= 3 {
                    copies.remove(0);
                }
                copies.push(copy);
            }
            6 => {
                // Wipe or roll back crashed nodes' disks: one at a time
                // without NVRAM, several together with it.
                let first = self.pick(n);
                let count = 1 + self.pick(self.damage_budget().max(1));
                for k in 0..count {
                    let i = (first + k) % n;
                    if !self.may_damage(i) {
                        continue;
                    }
                    let copies = self.images[i].len();
                    if copies > 0 && self.chance(70) {
                        let at = self.pick(copies);
                        let (image, base, edited, lazy) = self.images[i][at].clone();
                        self.disks[i].restore(image);
                        // A rollback to an authentic copy is not an edit; a
                        // copy of an edited disk still is.
                        self.edit_base[i] = base;
                        self.edited[i] = edited;
                        if lazy {
                            self.lazy.insert(i);
                        } else {
                            self.lazy.remove(&i);
                        }
                        self.report.rollbacks += 1;
                    } else {
                        self.disks[i].restore(MemImage::new());
                        self.edit_base[i] = None;
                        self.edited[i] = None;
                        self.lazy.remove(&i);
                        self.report.wipes += 1;
                    }
                    self.damaged.insert(i);
                }
            }
            7 => {
                if !self.delivered.is_empty() {
                    let at = self.pick(self.delivered.len());
                    let (to, bytes, inc) = self.delivered[at].clone();
                    self.inject(to, &bytes, Some(inc))?;
                }
            }
            8 => {
                // Deliver a recorded message again, whenever: across
                // restarts of its sender and its receiver.
                if !self.recorded.is_empty() {
                    let at = self.pick(self.recorded.len());
                    let m = &self.recorded[at];
                    let (from, to, bytes) = (m.from, m.to, m.bytes.clone());
                    self.net.push(InFlight { from, to, bytes });
                    let last = self.net.len() - 1;
                    self.report.late_replays += 1;
                    self.deliver(last, false)?;
                }
            }
            9 | 10 => {
                let i = self.pick(n);
                if self.may_damage(i) {
                    self.edit_disk(i);
                }
            }
            _ => {
                if !self.net.is_empty() {
                    let at = self.pick(self.net.len());
                    let mut bytes = self.net[at].bytes.clone();
                    let to = self.net[at].to;
                    if !bytes.is_empty() {
                        let pos = self.pick(bytes.len());
                        bytes[pos] ^= 1 << self.pick(8);
                        self.inject(to, &bytes, None)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The host edits a stopped node's disk: changes a byte of a row or of
    /// its key, drops a row, duplicates one under another key, swaps two,
    /// takes rows from an older copy of this disk (a splice) or from
    /// another node's disk, or makes one up in any table. The node must
    /// notice when it next starts.
    fn edit_disk(&mut self, i: usize) {
        let before = self.disks[i].image();
        let tables: Vec<Table> = Table::ALL
            .into_iter()
            .filter(|t| before.get(t).is_some_and(|rows| !rows.is_empty()))
            .collect();
        if tables.is_empty() {
            return;
        }
        let mut table = tables[self.pick(tables.len())];
        let kind = self.pick(8);
        if kind == 7 {
            // A row the host makes up, in any table: the record tree's
            // too, which this layout never writes.
            table = Table::ALL[self.pick(Table::ALL.len())];
        }
        let older = if self.images[i].is_empty() {
            None
        } else {
            let at = self.pick(self.images[i].len());
            Some(self.images[i][at].0.clone())
        };
        let other = self.pick(self.cfg.nodes);
        let foreign = (other != i).then(|| self.disks[other].image());
        let r1 = self.draw() as usize;
        let r2 = self.draw() as usize;
        let bit = 1u8 << self.pick(8);
        self.disks[i].edit(|image| {
            if kind == 7 {
                let key = r1.to_be_bytes()[..1 + r1 % 8].to_vec();
                let value = r2.to_be_bytes().repeat(1 + r2 % 9);
                image.entry(table).or_default().insert(key, value);
                return;
            }
            let Some(rows) = image.get_mut(&table) else {
                return;
            };
            let keys: Vec<Vec<u8>> = rows.keys().cloned().collect();
            let key = keys[r1 % keys.len()].clone();
            match kind {
                0 => {
                    if let Some(v) = rows.get_mut(&key) {
                        if !v.is_empty() {
                            let at = r2 % v.len();
                            v[at] ^= bit;
                        }
                    }
                }
                1 => {
                    if let Some(v) = rows.remove(&key) {
                        let mut k = key.clone();
                        if !k.is_empty() {
                            let at = r2 % k.len();
                            k[at] ^= bit;
                        }
                        rows.insert(k, v);
                    }
                }
                2 => {
                    rows.remove(&key);
                }
                3 => {
                    // Duplicate under a neighbouring key.
                    if let Some(v) = rows.get(&key).cloned() {
                        let mut k = key.clone();
                        if let Some(last) = k.last_mut() {
                            *last = last.wrapping_add(1);
                        }
                        rows.insert(k, v);
                    }
                }
                4 => {
                    let other_key = keys[r2 % keys.len()].clone();
                    let a = rows.get(&key).cloned();
                    let b = rows.get(&other_key).cloned();
                    if let (Some(a), Some(b)) = (a, b) {
                        rows.insert(key, b);
                        rows.insert(other_key, a);
                    }
                }
                5 => {
                    // Splice: from this key on, the older copy's rows.
                    if let Some(old) = older.as_ref().and_then(|o| o.get(&table)) {
                        rows.retain(|k, _| *k < key);
                        for (k, v) in old.range(key.clone()..) {
                            rows.insert(k.clone(), v.clone());
                        }
                    }
                }
                _ => {
                    // A row from another node's disk, under its own key.
                    if let Some(theirs) = foreign.as_ref().and_then(|f| f.get(&table)) {
                        if let Some((k, v)) = theirs.iter().nth(r2 % theirs.len().max(1)) {
                            rows.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        });
        let after = self.disks[i].image();
        if !same_rows(&after, &before, &Table::ALL) {
            self.damaged.insert(i);
            let base = self.edit_base[i].get_or_insert((before, false));
            base.1 |= kind == 5;
            // Every kind but the splice is caught for certain: a splice may
            // put back rows with the very plaintext the manifest names
            // (re-replicated entries); an emptied disk is a wipe; and edits
            // that undo each other leave the authentic disk.
            let empty = after.values().all(|rows| rows.is_empty());
            self.edited[i] = (!base.1 && !empty && !same_rows(&after, &base.0, &Table::ALL))
                .then_some((kind, table));
        }
    }

    /// One scheduler step.
    pub fn step(&mut self) -> Check {
        self.step += 1;
        let roll = self.pick(100);
        match roll {
            0..=44 => {
                // Deliver a few messages, each picked at random (reordering,
                // delay); some are duplicated.
                for _ in 0..1 + self.pick(24) {
                    if self.net.is_empty() {
                        break;
                    }
                    let at = self.pick(self.net.len());
                    let dup = self.chance(3);
                    self.deliver(at, dup)?;
                }
            }
            45..=49 => {
                if !self.net.is_empty() {
                    let at = self.pick(self.net.len());
                    self.net.swap_remove(at);
                }
            }
            50..=74 => self.tick_all()?,
            75..=89 => self.start_client()?,
            _ => {
                if self.cfg.faults {
                    self.fault()?;
                } else {
                    self.tick_all()?;
                }
            }
        }
        let nodes = &self.nodes;
        self.damaged
            .retain(|d| !nodes[*d].as_ref().is_some_and(Node::is_serving));
        // Changed record rows the node has overwritten since (or a
        // snapshot replaced) no longer count.
        self.lazy.retain(|d| {
            !nodes[*d]
                .as_ref()
                .is_some_and(|n| matches!(n.records(), Ok(Ok(_))))
        });
        self.check_guess_limit()?;
        self.check_erased()
    }

    /// Heals everything and runs until the fleet is quiet: every node up,
    /// serving and caught up with the leader.
    fn heal(&mut self) -> Check {
        self.partition = None;
        for i in 0..self.cfg.nodes {
            if self.nodes[i].is_none() {
                self.start(i)?;
            }
        }
        for round in 0..3000u32 {
            while !self.net.is_empty() {
                let at = self.pick(self.net.len());
                self.deliver(at, false)?;
            }
            if round.is_multiple_of(2) {
                self.tick_all()?;
            }
            for i in 0..self.cfg.nodes {
                if self.nodes[i].is_none() {
                    self.start(i)?;
                }
            }
            let leader = self
                .nodes
                .iter()
                .flatten()
                .find(|n| n.is_leader())
                .map(|n| n.applied_index());
            let quiet = leader.is_some_and(|applied| {
                self.nodes.iter().all(|n| {
                    n.as_ref()
                        .is_some_and(|n| n.is_serving() && n.applied_index() == applied)
                })
            }) && self.ops.is_empty();
            if quiet && round > 10 {
                // Every node reads its records in full: one whose host
                // changed rows it has not read yet finds them now, resets
                // and recovers them from its peers (§8.5).
                let mut clean = true;
                for i in 0..self.cfg.nodes {
                    if let Some(node) = self.nodes[i].as_mut() {
                        if node.scrub(&mut self.node_rngs[i]).is_err() {
                            clean = false;
                            self.collect(i)?;
                        }
                    }
                }
                if clean {
                    return Ok(());
                }
            }
            if std::env::var_os("BKV_SIM_TRACE").is_some() && round.is_multiple_of(100) {
                let states: Vec<String> = self
                    .nodes
                    .iter()
                    .flatten()
                    .map(|n| {
                        format!(
                            "{}{}{}@{} log {:?} leader {} {:?} term {}",
                            n.id(),
                            if n.is_leader() { "L" } else { "" },
                            if n.is_serving() { "S" } else { "R" },
                            n.applied_index(),
                            n.last_log(),
                            n.leader(),
                            n.counters(),
                            n.term()
                        )
                    })
                    .collect();
                let ops: Vec<String> = self
                    .ops
                    .iter()
                    .map(|(t, o)| {
                        format!(
                            "tag {t} node {} inc {} started {} honest {:?}",
                            o.node + 1,
                            o.incarnation,
                            o.started,
                            o.honest
                        )
                    })
                    .collect();
                eprintln!("heal {round} ops {ops:?} {states:?}");
            }
        }
        Err(self.fail("the healed fleet did not settle (no leader, or nodes not caught up)"))
    }

    fn leader_table(&self) -> Option<RecordTable> {
        self.nodes
            .iter()
            .flatten()
            .find(|n| n.is_leader())
            .and_then(|n| n.records().ok()?.ok())
    }

    /// After healing: every node holds the same table; every confirmed
    /// registration is still there; the right code recovers the key of
    /// every record that has attempts left.
    fn final_checks(&mut self) -> Check {
        let Some(table) = self.leader_table() else {
            return Err(self.fail("no leader after healing"));
        };
        for n in self.nodes.iter().flatten() {
            let Ok(Ok(own)) = n.records() else {
                return Err(self.fail(format!(
                    "node {}'s records do not check after healing",
                    n.id()
                )));
            };
            if own != table {
                return Err(self.fail(format!("node {} diverged from the leader", n.id())));
            }
            // The counts a node keeps as it applies (its metrics) are the
            // table's, across restarts, snapshots and catching up.
            if n.record_stats() != RecordStats::of(&own) {
                return Err(self.fail(format!(
                    "node {}'s record counts {:?} are not its table's {:?}",
                    n.id(),
                    n.record_stats(),
                    RecordStats::of(&own)
                )));
            }
        }
        for h in 0..self.honest.len() {
            let record_id = self.honest[h].record_id;
            let Some(&confirmed) = self.honest[h].keys.keys().max() else {
                continue;
            };
            let slot = table.get(&record_id).cloned();
            let generation = slot.as_ref().map_or(0, RecordSlot::generation);
            if generation < confirmed {
                return Err(self.fail(format!(
                    "a confirmed registration was lost: generation {confirmed} confirmed, {generation} held"
                )));
            }
            let Some(RecordSlot::Live(record)) = slot else {
                continue;
            };
            if record.attempts_used() >= record.payload.max_attempts {
                continue;
            }
            let Some(expected) = self.honest[h].keys.get(&record.generation).copied() else {
                // Registered by a confirmation the client never saw.
                continue;
            };
            self.recover_after_heal(h, expected)?;
        }
        self.check_guess_limit()?;
        self.check_erased()
    }

    /// The right code recovers the key, as a client would: retrying (at
    /// most three times) after an `Unavailable` answer (a timed-out commit,
    /// e.g. across a leader change), while the record has attempts left.
    fn recover_after_heal(&mut self, h: usize, expected: [u8; 32]) -> Check {
        let mut last = Ok(());
        for _ in 0..3 {
            last = self.try_recover_after_heal(h, expected);
            if last.is_ok() {
                return Ok(());
            }
            let record_id = self.honest[h].record_id;
            let live_with_attempts = self.leader_table().is_some_and(|t| {
                matches!(t.get(&record_id), Some(RecordSlot::Live(r)) if r.attempts_used() < r.payload.max_attempts)
            });
            if !live_with_attempts {
                return Ok(());
            }
        }
        last
    }

    fn try_recover_after_heal(&mut self, h: usize, expected: [u8; 32]) -> Check {
        let releases = self.report.releases;
        self.honest[h].busy = true;
        let node = self.pick(self.cfg.nodes);
        let incarnation = self.life(node);
        let record_id = self.honest[h].record_id;
        let code = RecoveryCode::new(self.honest[h].code.as_bytes()).map_err(|e| self.fail(e))?;
        let (state, ke1) = Recovery::start(&mut self.rng, &self.client, record_id, &code)
            .map_err(|e| self.fail(e))?;
        let op = Op {
            honest: Some(h),
            node,
            incarnation,
            phase: Phase::Ke2(state),
            started: self.step,
            fresh: 0,
        };
        self.send_request(op, &ke1.to_bytes())?;
        for _ in 0..400 {
            if !self.honest[h].busy {
                break;
            }
            while !self.net.is_empty() {
                let at = self.pick(self.net.len());
                self.deliver(at, false)?;
            }
            self.tick_all()?;
        }
        if self.report.releases != releases + 1 {
            return Err(self.fail(format!(
                "the right code did not recover record {h}'s key with a majority up and connected"
            )));
        }
        let _ = expected;
        Ok(())
    }

    /// A client of another group sends this group a KE1 and a
    /// registration request for `record_id`, outside this group's range,
    /// to a live node (a misrouted or malicious request, §14.1). The node
    /// must refuse each at once with `RecordNotInRange` (or `Unavailable`
    /// while it is not serving), before anything is charged: the oracle's
    /// range check sees any charge or KE2 it made.
    pub fn foreign_request(&mut self, record_id: RecordId) -> Check {
        use backup_key_vault::wire::{Rejection, RejectionCode};
        if self.policy.records.contains(&record_id) {
            return Err(self.fail("foreign_request needs an id outside the range"));
        }
        let live = self.live_nodes();
        if live.is_empty() {
            return Ok(());
        }
        let i = live[self.pick(live.len())];
        // The sender pins the keys without the range, as a misrouting
        // client would.
        let sender = ClientConfig::insecure_test_only(self.secrets.public_keys());
        let code = RecoveryCode::new(b"foreign guess").map_err(|e| self.fail(e))?;
        let (_, ke1) =
            Recovery::start(&mut self.rng, &sender, record_id, &code).map_err(|e| self.fail(e))?;
        let (_, registration) = Registration::start(&mut self.rng, &sender, record_id, &code, None)
            .map_err(|e| self.fail(e))?;
        for request in [ke1.to_bytes(), registration.to_bytes()] {
            let tag = self.next_tag;
            self.next_tag += 1;
            let now = self.now;
            let Some(node) = self.nodes[i].as_mut() else {
                return Ok(());
            };
            let answer = node.client_request(&mut self.node_rngs[i], now, tag, &request);
            let code = answer
                .as_deref()
                .and_then(|a| Rejection::from_bytes(a).ok())
                .map(|r| r.code);
            if !matches!(
                code,
                Some(RejectionCode::RecordNotInRange | RejectionCode::Unavailable)
            ) {
                return Err(self.fail(format!(
                    "node {} did not refuse another group's record at once: {code:?}",
                    i + 1
                )));
            }
            self.report.foreign_refused += 1;
            self.drive(i)?;
        }
        Ok(())
    }

    /// Runs the seed: the faulty phase, healing, the final checks.
    pub fn run(mut self) -> Result<SimReport, String> {
        let trace = std::env::var_os("BKV_SIM_TRACE").is_some();
        for _ in 0..self.cfg.steps {
            self.step()?;
            if trace {
                let states: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| match n {
                        None => "down".to_string(),
                        Some(n) => format!(
                            "{}{}@{}",
                            if n.is_leader() { "L" } else { "" },
                            if n.is_serving() { "S" } else { "R" },
                            n.applied_index()
                        ),
                    })
                    .collect();
                eprintln!(
                    "step {} net {} ops {} nodes {:?} report {:?}",
                    self.step,
                    self.net.len(),
                    self.ops.len(),
                    states,
                    self.report
                );
            }
        }
        self.finish()
    }

    /// Heals the fleet, runs the final checks (every honest client
    /// recovers its key, the guess limit, erasures) and reports: the end of
    /// [`Self::run`], for a caller that drives [`Self::step`] itself.
    pub fn finish(mut self) -> Result<SimReport, String> {
        self.heal()?;
        self.final_checks()?;
        let mut proposed = (0u64, 0u64);
        for n in self.nodes.iter().flatten() {
            let c = n.counters();
            proposed.0 += c.commands_proposed;
            proposed.1 += c.entries_proposed;
            self.report.snapshots += c.snapshots;
            self.report.snapshots_sent += c.snapshots_sent;
        }
        self.report.commands_per_entry = if proposed.1 == 0 {
            0.0
        } else {
            proposed.0 as f64 / proposed.1 as f64
        };
        Ok(self.report)
    }
}

fn generation_of(command: &backup_key_vault::vault::Command) -> u64 {
    use backup_key_vault::vault::Command as C;
    match command {
        C::ChargeAttempt { generation, .. }
        | C::ResetAttempts { generation, .. }
        | C::Erase { generation, .. } => *generation,
        C::Register { generation, .. } => *generation,
        C::Delete { .. } => 0,
    }
}

/// Runs one seed with its default configuration.
pub fn run_seed(seed: u64) -> Result<SimReport, String> {
    Sim::new(seed, SimConfig::for_seed(seed))?.run()
}

/// Whether two disk images hold the same rows in `tables`. A table with no
/// rows is the same as no table: the host that makes up a row in a table
/// the node never wrote, then deletes it, has given the node back its own
/// disk (seed 2475 of the long run found the oracle calling that an edit).
fn same_rows(a: &MemImage, b: &MemImage, tables: &[Table]) -> bool {
    fn rows<'a>(image: &'a MemImage, t: &Table) -> Option<&'a BTreeMap<Vec<u8>, Vec<u8>>> {
        image.get(t).filter(|rows| !rows.is_empty())
    }
    tables.iter().all(|t| rows(a, t) == rows(b, t))
}
