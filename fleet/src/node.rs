//! One fleet member: the vault, a raft-rs `RawNode`, redb storage and the
//! authenticated link, as a pure deterministic core (SPEC.md §20–§23).
//!
//! The node has no threads, no clock and no randomness of its own: whoever
//! drives it (the simulation, or the std runtime in [`crate::net`]) hands it
//! peer messages, client requests, ticks, the time and an RNG, and carries
//! away what it wants sent. The same code runs in both.
//!
//! The guess rule across the fleet: a request whose answer depends on a
//! state change (a charge before KE2, a reset before the key) is suspended
//! by the vault ([`Vault::begin`]); its command is proposed to Raft, batched
//! with every other command that arrived in the same round; the answer is
//! built ([`Vault::resume`]) only when this node applies the committed entry
//! that carries it, with the result the replicated state machine computed at
//! that log position. Without a majority, nothing commits: the request times
//! out and the answer is `Unavailable`, with nothing released.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, EntryType, Message, MessageType, Snapshot};
use raft::{Config, RawNode, ReadState, SnapshotStatus, StateRole};
use rand_core::{CryptoRng, RngCore};

use backup_key_vault::bundle::{EncodedBundle, TrustAnchors, VerifiedFleet};
use backup_key_vault::fleet::FleetTransportKey;
use backup_key_vault::vault::verified::VerifiedStore;
use backup_key_vault::vault::{
    Answer, Applied, Command, RecordSlot, RecordStore, RecordTable, Step, Suspended, Vault,
    VaultPolicy,
};
use backup_key_vault::wire::{MessageType as WireType, RecoveryStart, Rejection, RejectionCode};
use backup_key_vault::BundleError;
use backup_key_vault::{FleetSecrets, RecordId, StoreError};

use crate::codec::{self, PeerMessage, ProposalId};
use crate::error::FleetError;
use crate::log::LogStore;
use crate::platform::{HostStore, Nvram, SharedHost};
pub use crate::records::RecordStats;
use crate::records::{HostRecords, RowRefusal};
use crate::sealed::{Boot, RecordsState, SealedStore, Write};
use crate::transport::{Dropped, Link, TransportCounters};

/// How a node runs. Every member of a fleet uses the same values except `id`
/// (and, in the simulation, `election_tick`).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id (non-zero).
    pub id: u64,
    /// Every member's id, this node's included.
    pub members: Vec<u64>,
    /// The vault policy (the same on every member).
    pub policy: VaultPolicy,
    /// Ticks without a leader before a follower campaigns.
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_tick: usize,
    /// Ticks a suspended request waits for its command to apply before the
    /// answer is `Unavailable`.
    pub request_timeout_ticks: u64,
    /// Ticks between probe rounds while the node recovers (§22.3).
    pub probe_interval_ticks: u64,
    /// Applied entries between snapshots (log compaction).
    pub snapshot_interval: u64,
    /// Most commands in one Raft entry.
    pub max_batch: usize,
    /// Applied entries whose record rows may wait in trusted memory before
    /// they are written to the host (SPEC.md §22.2): the rows are written
    /// once this many entries have applied since the last write, or once
    /// [`Self::records_staged_rows`] rows wait, whichever comes first; `1`
    /// writes them after every Ready. The log holds every command they come
    /// from, so a node that stops before writing them applies those entries
    /// again when it starts. Waiting costs that replay and buys fewer,
    /// larger writes, which cost the host less per record.
    pub records_write_every: u64,
    /// Most record rows (tree rows and slots) that wait in trusted memory
    /// before they are written, whatever `records_write_every` says:
    /// [`STAGED_ROWS`] by default. Checked before each entry applies, so
    /// the rows waiting go past it by one entry's commits at most.
    pub records_staged_rows: usize,
    /// Record [`Event`]s for a test oracle (the simulation); off in service.
    pub record_events: bool,
    /// **Test only**: answer KE2 as soon as the charge is proposed, without
    /// waiting for it to commit. The simulation must catch it.
    #[cfg(feature = "broken-rule")]
    pub broken_rule: bool,
    /// **Test only**: keep the host's rows in clear and unchecked, as before
    /// SPEC revision 5, so a test can show the edited-disk attack works
    /// without this defence.
    #[cfg(feature = "broken-rule")]
    pub unsealed_disk: bool,
    /// **Test only**: accept answers (probe answers, Raft responses) that
    /// are not bound to this boot, as before SPEC revision 5, so a test can
    /// show the replayed-probe attack works without this defence.
    #[cfg(feature = "broken-rule")]
    pub unbound_answers: bool,
    /// **Test only**: answer a KE1 for a record this node does not hold at
    /// once, from the fake-record path, without first confirming that it
    /// has applied everything committed (as before SPEC revision 9), so a
    /// test can show the simulation's freshness oracle catches it.
    #[cfg(feature = "broken-rule")]
    pub no_read_barrier: bool,
}

impl NodeConfig {
    /// Defaults for a member of `members`: election after 10 ticks,
    /// heartbeats every 2, requests time out after 50 ticks.
    pub fn new(id: u64, members: Vec<u64>, policy: VaultPolicy) -> Self {
        Self {
            id,
            members,
            policy,
            election_tick: 10,
            heartbeat_tick: 2,
            request_timeout_ticks: 50,
            probe_interval_ticks: 5,
            snapshot_interval: 1000,
            max_batch: codec::MAX_BATCH,
            records_write_every: RECORDS_WRITE_EVERY,
            records_staged_rows: STAGED_ROWS,
            record_events: false,
            #[cfg(feature = "broken-rule")]
            broken_rule: false,
            #[cfg(feature = "broken-rule")]
            unsealed_disk: false,
            #[cfg(feature = "broken-rule")]
            unbound_answers: false,
            #[cfg(feature = "broken-rule")]
            no_read_barrier: false,
        }
    }

    fn sealing(&self) -> bool {
        #[cfg(feature = "broken-rule")]
        if self.unsealed_disk {
            return false;
        }
        true
    }

    fn binds_answers(&self) -> bool {
        #[cfg(feature = "broken-rule")]
        if self.unbound_answers {
            return false;
        }
        true
    }

    fn read_barrier(&self) -> bool {
        #[cfg(feature = "broken-rule")]
        if self.no_read_barrier {
            return false;
        }
        true
    }

    fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }
}

/// What a node wants sent after a call.
#[derive(Debug, Default)]
pub struct Output {
    /// Sealed messages for peers: `(to, bytes)`.
    pub messages: Vec<(u64, Vec<u8>)>,
    /// Answers for clients: `(client tag, wire bytes)`.
    pub replies: Vec<(u64, Vec<u8>)>,
}

/// What the node did, for a test oracle (only with `record_events`).
// Events exist only in simulations, briefly, between a call and the oracle.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An entry was applied at `index`; `digest` hashes its term and data.
    Entry {
        /// Log index.
        index: u64,
        /// FNV-1a of the term and the data.
        digest: u64,
    },
    /// A command was applied at `index` with this result.
    Command {
        /// Log index.
        index: u64,
        /// The command.
        command: Command,
        /// What the state machine did.
        applied: Applied,
    },
    /// A KE2 built from a record left this node, after the charge at
    /// `index` (with the broken rule: the applied index when it left).
    Ke2 {
        /// The record.
        record_id: RecordId,
        /// Its generation.
        generation: u64,
        /// The log index of the charge.
        index: u64,
    },
    /// A key release left this node, after the reset at `index`.
    Release {
        /// The record.
        record_id: RecordId,
        /// Its generation.
        generation: u64,
        /// The log index of the reset.
        index: u64,
    },
}

/// Counters an operator (or a test) can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Inter-node messages received, by fate.
    pub transport: TransportCounters,
    /// Raft entries this node proposed (each a batch).
    pub entries_proposed: u64,
    /// Commands in those entries.
    pub commands_proposed: u64,
    /// Commands this node applied (from any proposer).
    pub commands_applied: u64,
    /// Requests answered `Unavailable` because their command did not apply
    /// in time or could not be proposed, or their read barrier did not
    /// complete in time.
    pub requests_timed_out: u64,
    /// KE1s for a record this node does not hold that waited for a read
    /// barrier (§20.2) before being answered.
    pub read_barriers: u64,
    /// ReadIndex requests this node made for them: one per drive round
    /// that had new reads, however many KE1s wait on it.
    pub read_index_rounds: u64,
    /// Vote requests ignored while recovering (§22.3).
    pub votes_withheld: u64,
    /// Client requests refused while recovering.
    pub refused_while_recovering: u64,
    /// Times this node found its disk rolled back or wiped: a peer showed
    /// it had run with a later incarnation, or NVRAM showed the disk older
    /// than its latest state (§22.3, §22.4).
    pub rollbacks_detected: u64,
    /// Starts at which the host's rows failed authentication (edited,
    /// dropped, duplicated, reordered, spliced, or from another node): the
    /// disk was discarded as if wiped (§22.1).
    pub disk_rejected: u64,
    /// Authentic answers that were not bound to this boot (a probe answer
    /// without this boot's nonce, a Raft response naming an earlier boot
    /// of this node), dropped (§21.3).
    pub answers_refused: u64,
    /// Host answers for the record tree refused since this boot: rows that
    /// are not a path or a slot, or that do not check against the root
    /// (a wrong leaf, a wrong sibling, a stale root; SPEC.md §8.5).
    pub host_rejected: u64,
    /// Snapshots taken or installed.
    pub snapshots: u64,
    /// Snapshots read from the host for a lagging peer and sent.
    pub snapshots_sent: u64,
    /// Raft messages from a peer that named another sender or receiver.
    pub inconsistent_messages: u64,
}

/// Applied entries between writes of the record rows, by default
/// ([`NodeConfig::records_write_every`]).
pub const RECORDS_WRITE_EVERY: u64 = 64;

/// Most record rows (tree rows and slots) a node keeps staged in trusted
/// memory before it writes them, by default
/// ([`NodeConfig::records_staged_rows`]): about 130 bytes a tree row and
/// 400 a slot, so about 1.5 MiB, and one entry's commits more at most.
pub const STAGED_ROWS: usize = 12_288;

/// Slots a node keeps in trusted memory, besides the root: the most
/// recently committed (about 640 bytes each), served without asking the
/// host. Its trusted memory also holds the rows and slots of recent reads
/// and commits ([`crate::records::SEEN_ROWS`],
/// [`crate::records::SEEN_SLOTS`]) and the rows waiting to be written
/// ([`NodeConfig::records_staged_rows`]).
pub const RECORD_CACHE: usize = 1024;

/// The vault's store on a node: the records its host keeps (SPEC.md §8.5),
/// checked against the root this node holds, and their counts. `load`
/// reads a record with its proof; `commit` always fails, because on a node
/// every state change goes through consensus ([`Vault::begin`] /
/// [`Vault::resume`]) and is applied by [`Node`] as its entry commits.
pub struct NodeRecords {
    store: VerifiedStore<HostRecords<SharedHost>>,
    stats: RecordStats,
    /// Refusals counted by an earlier store of this boot.
    refused_before: u64,
    /// To start the store again on a new root (a snapshot installed).
    host: SharedHost,
    key: FleetTransportKey,
    node: u64,
    sealing: bool,
}

impl core::fmt::Debug for NodeRecords {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NodeRecords")
            .field("store", &self.store)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl NodeRecords {
    fn new(
        key: &FleetTransportKey,
        node: u64,
        host: SharedHost,
        sealing: bool,
        at: RecordsState,
    ) -> Self {
        let records = HostRecords::with_sealing(key, node, host.clone(), sealing);
        Self {
            store: VerifiedStore::new(records, at.root, RECORD_CACHE),
            stats: at.stats,
            refused_before: 0,
            host,
            key: key.clone(),
            node,
            sealing,
        }
    }

    /// The same host's records, trusted at `at` (nothing cached, nothing
    /// staged, the refusal counts kept).
    fn restart_at(&mut self, at: RecordsState) {
        let mut next = Self::new(&self.key, self.node, self.host.clone(), self.sealing, at);
        next.refused_before = self.refusals();
        *self = next;
    }

    /// Applies a committed command, keeping the counts. `Err` if the host's
    /// rows for the record did not check: nothing changed.
    fn apply(&mut self, command: &Command) -> Result<Applied, StoreError> {
        let (applied, before, after) = self.store.commit_with_slots(command)?;
        self.stats.remove(before.as_ref());
        self.stats.add(after.as_ref());
        Ok(applied)
    }

    /// Host answers refused so far: rows that did not read as a path or a
    /// slot, and paths or slots that did not check against the root.
    fn refusals(&self) -> u64 {
        self.refused_before
            .saturating_add(self.store.rejections())
            .saturating_add(self.store.host().refused())
    }
}

impl RecordStore for NodeRecords {
    fn load(&self, record_id: &RecordId) -> Result<Option<RecordSlot>, StoreError> {
        let refused = self.refusals();
        let loaded = self.store.load(record_id);
        if self.refusals() > refused {
            // What the host handed over is not kept past a refusal: once it
            // hands over the right rows again, they are read anew.
            self.store.host().forget_kept();
        }
        loaded
    }

    fn commit(&mut self, _command: &Command) -> Result<Applied, StoreError> {
        Err(StoreError)
    }
}

/// Whether the node may vote and serve (§22.3).
#[derive(Debug)]
enum Gate {
    /// Just started: neither serves clients nor votes for a candidate whose
    /// log is behind `target`, nor campaigns until its own log reaches it.
    Recovering {
        round: u64,
        round_started: u64,
        /// The nonce each recent probe round carried: an answer must echo
        /// its round's nonce, so answers recorded in an earlier boot fail.
        nonces: BTreeMap<u64, [u8; 16]>,
        /// The target came from NVRAM: no probing needed.
        fixed: bool,
        /// Per peer: the round of its latest answer, and its (last term,
        /// last index).
        answers: BTreeMap<u64, (u64, (u64, u64))>,
        /// The highest (last term, last index) a majority of the others
        /// reported in the latest complete round.
        target: Option<(u64, u64)>,
    },
    /// Caught up.
    Serving,
}

/// Probe rounds whose answers still count towards the target.
const RECENT_ROUNDS: u64 = 4;

struct Waiting {
    client: u64,
    suspended: Suspended,
    deadline: u64,
}

/// Most KE1s waiting for a read barrier at once; beyond it a KE1 for an
/// unknown record is refused `Busy` (each holds at most one 130-byte
/// request).
const MAX_PENDING_READS: usize = 4096;

/// A request that waits until this node has applied everything the fleet
/// had committed when it arrived (§20.2).
struct PendingRead {
    client: u64,
    request: Vec<u8>,
    deadline: u64,
    /// The ReadIndex request this read rides on (`None`: not asked yet;
    /// every read queued between two drive rounds shares one).
    batch: Option<u64>,
    /// The leader's commit index for this read, once it is known.
    index: Option<u64>,
}

/// One fleet member.
pub struct Node {
    config: NodeConfig,
    raw: RawNode<LogStore>,
    vault: Vault<NodeRecords>,
    store: SealedStore,
    link: Link,
    transport_key: backup_key_vault::fleet::FleetTransportKey,
    boot: [u8; 16],
    next_proposal: u64,
    batch: Vec<(ProposalId, Command)>,
    waiting: BTreeMap<ProposalId, Waiting>,
    next_read: u64,
    next_read_batch: u64,
    reads: BTreeMap<u64, PendingRead>,
    applied: u64,
    ticks: u64,
    gate: Gate,
    new_peer_incarnations: Vec<(u64, u64)>,
    snapshots_sent: Vec<u64>,
    output: Output,
    events: Vec<Event>,
    counters: NodeCounters,
    faulted: bool,
    fault_reason: Option<&'static str>,
    /// What the failure that made the node fault said, where a write to
    /// its host or NVRAM, or a read of its record rows, failed (its text
    /// names the file).
    fault_detail: Option<String>,
    /// The node reset its log and records after its host's record rows
    /// did not check (§8.5).
    records_reset: bool,
    /// The tick at which the snapshot in the log store was prepared.
    prepared_at: u64,
    disk_rejection: Option<&'static str>,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.config.id)
            .field("applied", &self.applied)
            .field("serving", &self.is_serving())
            .field("faulted", &self.faulted)
            .finish_non_exhaustive()
    }
}

fn rejection(code: RejectionCode) -> Vec<u8> {
    Rejection { code }.to_bytes()
}

/// FNV-1a over a term and bytes: the oracle's entry fingerprint.
fn digest(term: u64, data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in term.to_be_bytes().iter().chain(data) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Node {
    /// Starts a node from what its host keeps for it (nothing on first
    /// start), checked against the node's own key and, if there is one,
    /// its NVRAM (§22). Every start is a new incarnation. Without NVRAM it
    /// begins recovering (§22.3); with NVRAM it serves at once if NVRAM
    /// vouches for the disk, and otherwise recovers towards the log
    /// position NVRAM remembers (§22.4). A disk that fails authentication
    /// is discarded as if wiped and counted (`disk_rejected`).
    pub fn open<R: RngCore + CryptoRng>(
        config: NodeConfig,
        secrets: &FleetSecrets,
        host: Box<dyn HostStore>,
        nvram: Option<Box<dyn Nvram>>,
        rng: &mut R,
    ) -> Result<Self, FleetError> {
        if config.id == 0 || !config.members.contains(&config.id) {
            return Err(FleetError::Raft("node id must be a non-zero member".into()));
        }
        let transport_key = secrets.fleet_transport_key();
        // The sealed log and manifest, and the record tree, on one host.
        let host = SharedHost::new(host);
        let (mut sealed, loaded, boot) = SealedStore::open(
            &transport_key,
            config.id,
            Box::new(host.clone()),
            nvram,
            config.sealing(),
        )?;
        let mut counters = NodeCounters::default();
        let disk_rejection = match boot {
            Boot::Rejected(why) => Some(why),
            _ => None,
        };
        match boot {
            Boot::Rejected(_) => counters.disk_rejected += 1,
            Boot::RolledBack => counters.rollbacks_detected += 1,
            Boot::Intact | Boot::Unvouched => {}
        }
        let incarnation = loaded.incarnation.saturating_add(1);
        sealed.set_incarnation(rng, incarnation)?;
        let conf_state = match loaded.conf_state {
            Some(c) => c,
            None => {
                let c = ConfState {
                    voters: config.members.clone(),
                    ..ConfState::default()
                };
                sealed.set_conf_state(rng, &c)?;
                c
            }
        };
        let mut store = LogStore {
            hard_state: loaded.hard_state,
            conf_state,
            ..LogStore::default()
        };
        if let Some(meta) = loaded.snapshot {
            store.snapshot_meta = meta;
        }
        // The tree is at `records.applied` (at or past the snapshot): the
        // engine hands over the committed entries after it, which this
        // node applies again (§22.2).
        let applied = loaded.records.applied;
        store.append(&loaded.entries);
        // A hard state whose commit is past the log (a torn copy) is
        // clamped: commit is recomputed from the leader.
        let last = store.snapshot_meta.index + store.entries.len() as u64;
        if store.hard_state.commit > last {
            store.hard_state.commit = last;
        }
        if store.hard_state.commit < applied {
            store.hard_state.commit = applied;
        }
        let raft_config = Config {
            id: config.id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            // raft-rs draws the randomized timeout from its own thread RNG;
            // a range of one value keeps runs deterministic. The driver
            // varies timeouts per node instead.
            min_election_tick: config.election_tick,
            max_election_tick: config.election_tick + 1,
            applied,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_config, store, &logger)?;
        let records = NodeRecords::new(
            &transport_key,
            config.id,
            host,
            config.sealing(),
            loaded.records,
        );
        let vault =
            Vault::new(secrets, config.policy.clone(), records).map_err(FleetError::Vault)?;
        let mut boot_nonce = [0u8; 16];
        rng.fill_bytes(&mut boot_nonce);
        // With NVRAM the node knows the highest log position it ever had;
        // until its log is back there (after a discarded disk, or a crash
        // right after a discard), it recovers towards it (§22.4).
        let own = (
            raw.raft.raft_log.last_term(),
            raw.raft.raft_log.last_index(),
        );
        let high = loaded.target.or(sealed.nvram_high());
        let gate = match (&boot, high) {
            (Boot::Intact, None) => Gate::Serving,
            (Boot::Intact, Some(high)) if own >= high => Gate::Serving,
            (_, Some(target)) => Gate::Recovering {
                round: 0,
                round_started: 0,
                nonces: BTreeMap::new(),
                fixed: true,
                answers: BTreeMap::new(),
                target: Some(target),
            },
            _ => Gate::Recovering {
                round: 0,
                round_started: 0,
                nonces: BTreeMap::new(),
                fixed: false,
                answers: BTreeMap::new(),
                target: None,
            },
        };
        let boot = boot_nonce;
        let link = Link::new(
            transport_key.clone(),
            config.id,
            config.members.clone(),
            incarnation,
            boot,
            loaded.peer_incarnations,
        );
        Ok(Self {
            config,
            raw,
            vault,
            store: sealed,
            link,
            transport_key,
            boot,
            next_proposal: 0,
            batch: Vec::new(),
            waiting: BTreeMap::new(),
            next_read: 0,
            next_read_batch: 0,
            reads: BTreeMap::new(),
            applied,
            ticks: 0,
            gate,
            new_peer_incarnations: Vec::new(),
            snapshots_sent: Vec::new(),
            output: Output::default(),
            events: Vec::new(),
            counters,
            faulted: false,
            fault_reason: None,
            fault_detail: None,
            records_reset: false,
            prepared_at: 0,
            disk_rejection,
        })
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// Whether the node has caught up and serves clients (§22.3).
    pub fn is_serving(&self) -> bool {
        matches!(self.gate, Gate::Serving) && !self.faulted
    }

    /// Whether an internal invariant failed: the node stopped and must be
    /// restarted from its disk.
    pub fn is_faulted(&self) -> bool {
        self.faulted
    }

    /// Why the node faulted, if it did.
    pub fn fault_reason(&self) -> Option<&'static str> {
        self.fault_reason
    }

    /// What the failed write or read that made the node fault said (the
    /// host's or the NVRAM's error, which names the file), if one did.
    pub fn fault_detail(&self) -> Option<&str> {
        self.fault_detail.as_deref()
    }

    /// Keeps the first failed write's or read's error for
    /// [`Self::fault_detail`].
    fn note_failure(&mut self, e: &FleetError) {
        if self.fault_detail.is_none() {
            self.fault_detail = Some(e.to_string());
        }
    }

    /// Why the disk this node started from was refused, if it was (§22.1).
    pub fn disk_rejection(&self) -> Option<&'static str> {
        self.disk_rejection
    }

    /// Whether this node is the Raft leader.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of (0 if none).
    pub fn leader(&self) -> u64 {
        self.raw.raft.leader_id
    }

    /// The current Raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The index of the last entry applied.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// The Raft commit index (read-only, for metrics).
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The term and index of the last log entry.
    pub fn last_log(&self) -> (u64, u64) {
        (
            self.raw.raft.raft_log.last_term(),
            self.raw.raft.raft_log.last_index(),
        )
    }

    /// Every record as applied here, read from the host in full and checked
    /// against this node's root ([`HostRecords::read_all`]): for tests and
    /// the simulation's oracle. Costs the table's size; a refusal is
    /// counted (`host_rejected`). `Err` if the host could not read its
    /// disk.
    pub fn records(&self) -> Result<Result<RecordTable, RowRefusal>, FleetError> {
        self.vault
            .store()
            .store
            .host()
            .read_all(&self.vault.store().store.root())
    }

    /// One record as applied here, read with its proof and checked against
    /// this node's root (a refusal is counted, `host_rejected`).
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordSlot>, StoreError> {
        self.vault.store().load(id)
    }

    /// Why host answers for the record tree were refused (see
    /// [`NodeCounters::host_rejected`]), if any was: the latest row that
    /// could not be read as a path or a slot if there was one, else the
    /// latest answer that did not check against the root.
    pub fn host_rejection(&self) -> Option<&'static str> {
        use backup_key_vault::vault::verified::HostRejection;
        let records = &self.vault.store().store;
        if let Some(why) = records.host().last_refusal() {
            return Some(match why {
                RowRefusal::TreeRow => "a tree row that is not a node",
                RowRefusal::BrokenPath => "tree rows that do not fit together",
                RowRefusal::SlotRow => "a slot row that does not open",
                RowRefusal::WrongRoot => "slots that do not make the root",
                RowRefusal::StrayRows => "tree rows the root's tree does not have",
            });
        }
        records.last_rejection().map(|why| match why {
            HostRejection::Proof(_) => "a proof that does not lead to the root",
            HostRejection::WrongSlot => "a slot that is not the one the proof shows",
            HostRejection::Undecodable => "a slot or proof that does not decode",
            _ => "an answer that does not check",
        })
    }

    /// Whether this node found record rows that did not check and reset
    /// its log and records ([`Self::scrub`]); it is then faulted.
    pub fn records_were_reset(&self) -> bool {
        self.records_reset
    }

    /// The root of the record tree as applied here.
    pub fn records_root(&self) -> [u8; 32] {
        self.vault.store().store.root()
    }

    /// Reads every record in full and checks it ([`Self::records`]). If
    /// the host's rows do not check, the node resets its log and records
    /// and stops ([`Self::is_faulted`]): started again, it recovers them
    /// from its peers. An operator's scrub, and the simulation's after
    /// healing: a row the host changed is otherwise found only when a
    /// request reads it.
    pub fn scrub<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<(), FleetError> {
        match self.records()? {
            Ok(_) => Ok(()),
            Err(_) => {
                self.records_refused(rng);
                Err(FleetError::Faulted)
            }
        }
    }

    /// Writes the record rows that wait in memory now, whatever
    /// [`NodeConfig::records_write_every`] says (SPEC.md §22.2): before a
    /// planned stop, so that the next start replays nothing, or to measure
    /// what the node holds. `Err` if the node has stopped or the write
    /// failed (then it stops, as after any failed write).
    pub fn write_records<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<(), FleetError> {
        self.persist_records_when(rng, true)
            .map_err(|()| FleetError::Faulted)
    }

    /// The host's record rows did not check against the root while a
    /// committed command applied (or in a scrub): this node cannot go on
    /// with its records. It resets its log and records (keeping term, vote
    /// and incarnations) and stops; started again, it recovers the fleet's
    /// state from its peers as after a wiped disk (§8.5, §22.3).
    fn records_refused<R: RngCore + CryptoRng>(&mut self, rng: &mut R) {
        self.vault.store_mut().store.host_mut().clear_staged();
        self.records_reset = true;
        if let Err(e) = self.store.reset_log_and_records(rng) {
            self.note_failure(&e);
            self.fault("the host's record rows did not check, and the reset could not be written");
            return;
        }
        self.fault("the host's record rows did not check against the root: log and records reset, restart to recover them from the peers");
    }

    /// What the records hold (counted as commands apply).
    pub fn record_stats(&self) -> RecordStats {
        self.vault.store().stats
    }

    /// This boot's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.link.incarnation()
    }

    /// The counters.
    pub fn counters(&self) -> NodeCounters {
        NodeCounters {
            transport: self.link.counters(),
            host_rejected: self.vault.store().refusals(),
            ..self.counters
        }
    }

    /// Requests waiting for their command to apply.
    pub fn waiting(&self) -> usize {
        self.waiting.len() + self.reads.len() + usize::from(!self.batch.is_empty())
    }

    /// Takes the recorded events (with `record_events`).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Takes what the node wants sent.
    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.output)
    }

    fn event(&mut self, e: Event) {
        if self.config.record_events {
            self.events.push(e);
        }
    }

    fn fault(&mut self, why: &'static str) {
        self.fault_reason.get_or_insert(why);
        self.faulted = true;
        self.batch.clear();
        // Nothing is answered, not even what was answered since the last
        // `take_output`: a node that stops keeps nothing back, and the
        // client sees the connection fail, as after a crash.
        self.waiting.clear();
        self.reads.clear();
        self.output.replies.clear();
        self.raw.mut_store().prepared = None;
    }

    /// Runs a raft-rs call; a panic inside the engine (an inconsistency it
    /// refuses to continue with) stops the node instead of the process.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut RawNode<LogStore>) -> T) -> Option<T> {
        if self.faulted {
            return None;
        }
        match catch_unwind(AssertUnwindSafe(|| f(&mut self.raw))) {
            Ok(v) => Some(v),
            Err(_) => {
                self.fault("the raft engine panicked");
                None
            }
        }
    }

    // ----- Validation bundle ----------------------------------------------

    /// Checks a bundle for installation (SPEC.md §16.2, §23): see
    /// [`Vault::check_bundle`]. Changes nothing.
    pub fn check_bundle(
        &self,
        anchors: &TrustAnchors,
        bundle: &EncodedBundle,
        now_ms: u64,
    ) -> Result<VerifiedFleet, BundleError> {
        self.vault.check_bundle(anchors, bundle, now_ms)
    }

    /// Hands out `bundle` from now on (after [`Self::check_bundle`] and
    /// after the caller stored it durably).
    pub fn set_bundle(&mut self, bundle: EncodedBundle) -> Result<(), BundleError> {
        self.vault.set_bundle(bundle)
    }

    /// The bundle this node hands out, if any.
    pub fn bundle(&self) -> Option<&EncodedBundle> {
        self.vault.bundle()
    }

    // ----- Clients --------------------------------------------------------

    /// A client's request (the vault's wire bytes), tagged by the caller so
    /// the answer can find its way back. Returns the answer at once when
    /// nothing has to be committed first; otherwise the answer comes out of
    /// a later [`Node::drive`] or [`Node::tick`] as a reply with this tag.
    pub fn client_request<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        client: u64,
        request: &[u8],
    ) -> Option<Vec<u8>> {
        if self.faulted {
            return Some(rejection(RejectionCode::Unavailable));
        }
        if !self.is_serving() {
            self.counters.refused_while_recovering += 1;
            return Some(rejection(RejectionCode::Unavailable));
        }
        if self.config.read_barrier() && self.answer_depends_on_absence(request) {
            return self.begin_read(client, request);
        }
        self.begin_request(rng, now, client, request)
    }

    /// Whether the request is a KE1 for a record this node does not hold
    /// live. The vault would answer it at once from the fake-record path,
    /// from this node's applied table; but a follower may not yet have
    /// applied a registration the fleet committed (and confirmed to the
    /// client) a moment ago, and would then refuse the right code. Such a
    /// KE1 waits for a read barrier first (§20.2). A KE1 for a live record
    /// needs none: its charge goes through the log, and the answer comes
    /// from the state at the charge's position.
    fn answer_depends_on_absence(&self, request: &[u8]) -> bool {
        if !matches!(WireType::of(request), Ok(WireType::RecoveryStart)) {
            return false;
        }
        match RecoveryStart::from_bytes(request) {
            // Another group's id (§14.1) is refused at once, from the
            // range alone: no read barrier.
            Ok(msg) if !self.vault.policy().records.contains(&msg.record_id) => false,
            Ok(msg) => !matches!(
                self.vault.store().load(&msg.record_id),
                Ok(Some(RecordSlot::Live(_)))
            ),
            // The vault refuses it, with the same error either way.
            Err(_) => false,
        }
    }

    /// Queues a request behind a read barrier: the leader's commit index
    /// (raft-rs's ReadIndex, with the leader confirming its leadership with
    /// a majority first), asked at the next drive round for every read
    /// queued since the last ([`Self::ask_read_index`]); the request is
    /// answered once this node has applied up to that index.
    fn begin_read(&mut self, client: u64, request: &[u8]) -> Option<Vec<u8>> {
        if self.reads.len() >= MAX_PENDING_READS {
            return Some(rejection(RejectionCode::Busy));
        }
        let seq = self.next_read;
        self.next_read += 1;
        self.reads.insert(
            seq,
            PendingRead {
                client,
                request: request.to_vec(),
                deadline: self.ticks + self.config.request_timeout_ticks,
                batch: None,
                index: None,
            },
        );
        self.counters.read_barriers += 1;
        None
    }

    /// One ReadIndex request for every read queued since the last: each
    /// arrived before the request, so the commit index the leader confirms
    /// for it bounds what each must see. A flood of KE1s for unknown
    /// records then costs the leader one heartbeat round per drive round,
    /// not one per KE1.
    fn ask_read_index(&mut self) {
        let batch = self.next_read_batch;
        let mut asked = false;
        for read in self.reads.values_mut().filter(|r| r.batch.is_none()) {
            read.batch = Some(batch);
            asked = true;
        }
        if !asked {
            return;
        }
        self.next_read_batch += 1;
        let mut ctx = Vec::with_capacity(24);
        ctx.extend_from_slice(&self.boot);
        ctx.extend_from_slice(&batch.to_be_bytes());
        self.counters.read_index_rounds += 1;
        self.guarded(|raw| raw.read_index(ctx));
    }

    /// Notes the read indexes raft-rs confirmed; contexts are this boot's
    /// own (a read state for an earlier boot's context matches nothing).
    fn note_read_states(&mut self, states: Vec<ReadState>) {
        for state in states {
            let ctx = &state.request_ctx;
            let Some((boot, seq)) = ctx.split_first_chunk::<16>() else {
                continue;
            };
            if boot != &self.boot {
                continue;
            }
            let Ok(seq) = <[u8; 8]>::try_from(seq) else {
                continue;
            };
            let batch = Some(u64::from_be_bytes(seq));
            for read in self.reads.values_mut().filter(|r| r.batch == batch) {
                read.index = Some(state.index);
            }
        }
    }

    /// Answers the reads whose index this node has applied.
    fn serve_reads<R: RngCore + CryptoRng>(&mut self, rng: &mut R, now: u64) {
        let ready: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.index.is_some_and(|i| i <= self.applied))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in ready {
            if let Some(read) = self.reads.remove(&seq) {
                if let Some(answer) = self.begin_request(rng, now, read.client, &read.request) {
                    self.output.replies.push((read.client, answer));
                }
            }
        }
    }

    /// Hands a request to the vault: answered at once, or suspended until
    /// its command applies.
    fn begin_request<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        client: u64,
        request: &[u8],
    ) -> Option<Vec<u8>> {
        match self.vault.begin(rng, now, request) {
            Err(e) => Some(Rejection { code: e.into() }.to_bytes()),
            Ok(Step::Answered(answer)) => Some(answer.to_bytes()),
            Ok(Step::Commit(suspended)) => {
                #[cfg(feature = "broken-rule")]
                if self.config.broken_rule {
                    if let Command::ChargeAttempt {
                        record_id,
                        generation,
                    } = *suspended.command()
                    {
                        // The deliberately broken rule: charge a copy of the
                        // local table and answer now, before consensus.
                        let mut copy = RecordTable::new();
                        if let Ok(Some(slot)) = self.vault.store().load(&record_id) {
                            copy.restore(record_id, slot);
                        }
                        let applied = copy.apply(suspended.command());
                        let command = suspended.command().clone();
                        let answer = self.vault.resume(rng, now, suspended, Ok(applied));
                        if let Ok(Answer::RecoveryResponse(_)) = &answer {
                            self.event(Event::Ke2 {
                                record_id,
                                generation,
                                index: self.applied,
                            });
                        }
                        self.propose_command(client.wrapping_add(u64::MAX / 2), command, None);
                        return Some(match answer {
                            Ok(a) => a.to_bytes(),
                            Err(e) => Rejection { code: e.into() }.to_bytes(),
                        });
                    }
                }
                let command = suspended.command().clone();
                self.propose_command(client, command, Some(suspended));
                None
            }
        }
    }

    fn propose_command(&mut self, client: u64, command: Command, suspended: Option<Suspended>) {
        let id = ProposalId {
            boot: self.boot,
            seq: self.next_proposal,
        };
        self.next_proposal += 1;
        self.batch.push((id, command));
        if let Some(suspended) = suspended {
            self.waiting.insert(
                id,
                Waiting {
                    client,
                    suspended,
                    deadline: self.ticks + self.config.request_timeout_ticks,
                },
            );
        }
    }

    /// Finishes a waiting request with the outcome of its command.
    fn finish<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        waiting: Waiting,
        outcome: Result<(u64, Applied), StoreError>,
    ) {
        let command = waiting.suspended.command().clone();
        let index = outcome.as_ref().map(|(i, _)| *i).unwrap_or(0);
        let answer = self.vault.resume(
            rng,
            now,
            waiting.suspended,
            outcome.map(|(_, applied)| applied),
        );
        let bytes = match &answer {
            Ok(a) => a.to_bytes(),
            Err(e) => Rejection { code: (*e).into() }.to_bytes(),
        };
        match (&command, &answer) {
            (
                Command::ChargeAttempt {
                    record_id,
                    generation,
                },
                Ok(Answer::RecoveryResponse(_) | Answer::RecoveryResponseWithBundle(_)),
            ) => self.event(Event::Ke2 {
                record_id: *record_id,
                generation: *generation,
                index,
            }),
            (
                Command::ResetAttempts {
                    record_id,
                    generation,
                    ..
                },
                Ok(Answer::KeyRelease(_)),
            ) => self.event(Event::Release {
                record_id: *record_id,
                generation: *generation,
                index,
            }),
            _ => {}
        }
        self.output.replies.push((waiting.client, bytes));
    }

    // ----- Peers ------------------------------------------------------------

    fn send(&mut self, to: u64, message: &PeerMessage) {
        let sealed = self.link.seal(to, &message.to_bytes());
        self.output.messages.push((to, sealed));
    }

    fn send_raft(&mut self, messages: Vec<Message>) {
        for m in messages {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots_sent.push(m.to);
            }
            if let Ok(bytes) = m.write_to_bytes() {
                self.send(m.to, &PeerMessage::Raft(bytes));
            }
        }
    }

    /// A message from the host, claimed to come from a peer. Forged,
    /// altered, misaddressed, replayed and stale messages are dropped and
    /// counted ([`NodeCounters::transport`]).
    pub fn receive<R: RngCore + CryptoRng>(&mut self, rng: &mut R, bytes: &[u8]) {
        if self.faulted {
            return;
        }
        let opened = match self.link.open(bytes) {
            Ok(opened) => opened,
            Err(Dropped::Stale { from }) => {
                // The sender reuses an incarnation this node already saw:
                // tell it (the envelope's acknowledgement does).
                self.send(from, &PeerMessage::Nudge);
                return;
            }
            Err(Dropped::Refused) => return,
        };
        let from = opened.from;
        if opened.shows_rollback {
            // A peer has seen this node at a later incarnation, or at this
            // one with another boot: the disk this boot started from was
            // rolled back (or wiped). Take an incarnation above every one
            // the peers may have seen and start recovering again.
            self.counters.rollbacks_detected += 1;
            let seen = self.link.incarnation().max(opened.acknowledged_incarnation);
            let incarnation = seen.saturating_add(1);
            if let Err(e) = self.store.set_incarnation(rng, incarnation) {
                self.note_failure(&e);
                self.fault("could not persist a new incarnation");
                return;
            }
            rng.fill_bytes(&mut self.boot);
            self.link = Link::new(
                self.transport_key.clone(),
                self.config.id,
                self.config.members.clone(),
                incarnation,
                self.boot,
                self.link.peer_incarnations().clone(),
            );
            let high = self.store.nvram_high();
            self.gate = Gate::Recovering {
                round: 0,
                round_started: self.ticks,
                nonces: BTreeMap::new(),
                fixed: high.is_some(),
                answers: BTreeMap::new(),
                target: high,
            };
            // The message itself was authentic and fresh; go on with it.
        }
        // Answers must answer something this boot asked: a copy recorded
        // before this node restarted names an earlier boot of it (§21.3).
        let bound = opened.acknowledged_incarnation == self.link.incarnation()
            && opened.acknowledged_boot == self.boot;
        if opened.new_incarnation {
            if let Some(inc) = self.link.peer_incarnations().get(&from) {
                self.new_peer_incarnations.push((from, *inc));
            }
            self.forget_peer_progress(from);
        }
        let Ok(message) = PeerMessage::from_bytes(&opened.plaintext) else {
            return;
        };
        let is_answer = match &message {
            PeerMessage::Raft(_) | PeerMessage::Nudge | PeerMessage::Probe { .. } => false,
            PeerMessage::ProbeAnswer { .. } => true,
        };
        if is_answer && !bound && self.config.binds_answers() {
            self.counters.answers_refused += 1;
            return;
        }
        match message {
            PeerMessage::Raft(bytes) => {
                let Ok(m) = codec::decode_raft_message(&bytes) else {
                    self.counters.inconsistent_messages += 1;
                    return;
                };
                if is_bound_raft_type(m.get_msg_type()) && !bound && self.config.binds_answers() {
                    self.counters.answers_refused += 1;
                    return;
                }
                self.step(from, m);
            }
            PeerMessage::Nudge => {}
            PeerMessage::Probe { round, nonce } => {
                let (last_term, last_index) = self.last_log();
                self.send(
                    from,
                    &PeerMessage::ProbeAnswer {
                        round,
                        nonce,
                        last_term,
                        last_index,
                    },
                );
            }
            PeerMessage::ProbeAnswer {
                round: answered,
                nonce,
                last_term,
                last_index,
            } => {
                let need = self.config.majority();
                let binds = self.config.binds_answers();
                if let Gate::Recovering {
                    round,
                    nonces,
                    answers,
                    target,
                    fixed: false,
                    ..
                } = &mut self.gate
                {
                    // The answer must echo the nonce of a round this boot
                    // sent (§22.3): answers recorded in an earlier boot, whose
                    // rounds had the same numbers, carry other nonces.
                    let echoed = nonces.get(&answered).is_some_and(|n| {
                        bool::from(subtle::ConstantTimeEq::ct_eq(&n[..], &nonce[..]))
                    });
                    if !echoed && binds {
                        self.counters.answers_refused += 1;
                        return;
                    }
                    // Any recent round of this boot will do; the latest
                    // answer of each peer counts, and only recent rounds, so
                    // that a peer that went down since cannot hold the
                    // target up for ever.
                    let newer = answers.get(&from).is_none_or(|(r, _)| *r < answered);
                    if answered <= *round && newer {
                        answers.insert(from, (answered, (last_term, last_index)));
                    }
                    let recent: Vec<(u64, u64)> = answers
                        .values()
                        .filter(|(r, _)| r + RECENT_ROUNDS > *round)
                        .map(|(_, log)| *log)
                        .collect();
                    if recent.len() >= need {
                        *target = recent.iter().max().copied();
                    }
                }
            }
        }
    }

    /// Whether the node has NVRAM (§22.4).
    pub fn has_nvram(&self) -> bool {
        self.store.has_nvram()
    }

    /// A new boot of a peer may have lost log entries it acknowledged: if
    /// this node leads, it forgets how far the peer's log matched and probes
    /// again (§22.3). Lowering a match index can only delay commits.
    fn forget_peer_progress(&mut self, peer: u64) {
        if !self.is_leader() {
            return;
        }
        let last = self.raw.raft.raft_log.last_index();
        if let Some(pr) = self.raw.raft.mut_prs().get_mut(peer) {
            pr.matched = 0;
            pr.become_probe();
            pr.next_idx = last + 1;
        }
    }

    fn recovering_target(&self) -> Option<Option<(u64, u64)>> {
        match &self.gate {
            Gate::Recovering { target, .. } => Some(*target),
            Gate::Serving => None,
        }
    }

    fn step(&mut self, from: u64, mut m: Message) {
        if m.from != from || m.to != self.config.id {
            self.counters.inconsistent_messages += 1;
            return;
        }
        let last_index = self.raw.raft.raft_log.last_index();
        match m.get_msg_type() {
            // A leader that remembers more of this node's log than a
            // rolled-back disk holds would tell it to commit past its end;
            // commit only what is here (the rest follows with the entries).
            MessageType::MsgHeartbeat if m.commit > last_index => m.commit = last_index,
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
                if let Some(target) = self.recovering_target() {
                    let ok = target.is_some_and(|t| (m.log_term, m.index) >= t);
                    if !ok {
                        self.counters.votes_withheld += 1;
                        return;
                    }
                }
            }
            MessageType::MsgTimeoutNow if self.recovering_target().is_some() => return,
            _ => {}
        }
        self.guarded(|raw| {
            let _ = raw.step(m);
        });
    }

    // ----- Time -------------------------------------------------------------

    /// One tick of logical time: Raft's clock (elections, heartbeats), probe
    /// rounds while recovering, and request timeouts.
    pub fn tick<R: RngCore + CryptoRng>(&mut self, rng: &mut R, now: u64) {
        if self.faulted {
            return;
        }
        self.ticks += 1;
        let ticks = self.ticks;
        let own = self.last_log();
        let mut probe = None;
        let alone = self.config.members.len() == 1;
        let may_campaign = match &mut self.gate {
            Gate::Serving => true,
            Gate::Recovering {
                round,
                round_started,
                nonces,
                fixed,
                target,
                ..
            } => {
                if alone && !*fixed {
                    *target = Some(own);
                } else if !*fixed
                    && (*round == 0 || ticks >= *round_started + self.config.probe_interval_ticks)
                {
                    *round += 1;
                    *round_started = ticks;
                    let mut nonce = [0u8; 16];
                    rng.fill_bytes(&mut nonce);
                    nonces.insert(*round, nonce);
                    let keep_from = round.saturating_sub(RECENT_ROUNDS);
                    nonces.retain(|r, _| *r > keep_from);
                    probe = Some((*round, nonce));
                }
                target.is_some_and(|t| own >= t)
            }
        };
        if let Some((round, nonce)) = probe {
            let peers: Vec<u64> = self
                .config
                .members
                .iter()
                .copied()
                .filter(|p| *p != self.config.id)
                .collect();
            for p in peers {
                self.send(p, &PeerMessage::Probe { round, nonce });
            }
        }
        if may_campaign {
            self.guarded(|raw| {
                raw.tick();
            });
        } else {
            // Let time pass for the leader lease (a follower that has heard
            // from no leader for an election timeout grants votes again),
            // without ever reaching the point where raft-rs campaigns: a
            // campaign happens only inside `tick`.
            let timeout = self.raw.raft.election_timeout();
            let elapsed = &mut self.raw.raft.election_elapsed;
            *elapsed = (*elapsed + 1).min(timeout);
        }
        let expired: Vec<ProposalId> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= ticks)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(w) = self.waiting.remove(&id) {
                self.counters.requests_timed_out += 1;
                self.finish(rng, now, w, Err(StoreError));
            }
        }
        // A read the leader never confirmed (no leader, a lost message, a
        // leader change) is answered Unavailable; the client tries again.
        let expired: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.deadline <= ticks)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some(read) = self.reads.remove(&seq) {
                self.counters.requests_timed_out += 1;
                self.output
                    .replies
                    .push((read.client, rejection(RejectionCode::Unavailable)));
            }
        }
        self.update_gate();
    }

    fn update_gate(&mut self) {
        if let Gate::Recovering {
            target: Some(t), ..
        } = self.gate
        {
            // Caught up: the log is at least as up to date as the target,
            // and applied through it, or through everything committed once
            // a later term's entries have replaced an uncommitted tail the
            // target counted (the new leader's log may be shorter).
            let own = self.last_log();
            let committed = self.raw.raft.raft_log.committed;
            if own >= t && (self.applied >= t.1 || (own.0 > t.0 && self.applied >= committed)) {
                self.gate = Gate::Serving;
            }
        }
    }

    // ----- The Ready loop -----------------------------------------------------

    /// Proposes the batch collected since the last call (one Raft entry),
    /// then runs raft-rs's Ready loop: persist to redb, send, apply
    /// committed entries, answer the requests they finish. Call after
    /// every input.
    pub fn drive<R: RngCore + CryptoRng>(&mut self, rng: &mut R, now: u64) {
        if self.faulted {
            return;
        }
        // Twice at most: reads answered after the first round may suspend
        // requests whose commands are proposed in the second.
        for _ in 0..2 {
            self.ask_read_index();
            self.flush_batch(rng, now);
            let mut rounds = 0;
            while !self.faulted && self.raw.has_ready() && rounds < 64 {
                rounds += 1;
                if let Err(()) = self.ready_once(rng, now) {
                    self.fault("a Ready could not be persisted or applied");
                    return;
                }
            }
            self.serve_reads(rng, now);
            if self.batch.is_empty() {
                break;
            }
        }
        self.prepare_snapshot(rng);
        self.maybe_compact(rng);
        self.update_gate();
    }

    fn flush_batch<R: RngCore + CryptoRng>(&mut self, rng: &mut R, now: u64) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        for chunk in batch.chunks(self.config.max_batch.max(1)) {
            let data = codec::encode_batch(chunk);
            let proposed = self.guarded(|raw| raw.propose(vec![], data));
            match proposed {
                Some(Ok(())) => {
                    self.counters.entries_proposed += 1;
                    self.counters.commands_proposed += chunk.len() as u64;
                }
                _ => {
                    // No leader known (or the engine refused): nothing was
                    // proposed, so nothing can apply. Answer Unavailable now.
                    for (id, _) in chunk {
                        if let Some(w) = self.waiting.remove(id) {
                            self.counters.requests_timed_out += 1;
                            self.finish(rng, now, w, Err(StoreError));
                        }
                    }
                }
            }
        }
    }

    fn ready_once<R: RngCore + CryptoRng>(&mut self, rng: &mut R, now: u64) -> Result<(), ()> {
        let Some(mut rd) = self.guarded(|raw| raw.ready()) else {
            return Err(());
        };
        let immediate = rd.take_messages();
        self.send_raft(immediate);
        let read_states = rd.take_read_states();
        self.note_read_states(read_states);

        let snapshot = rd.snapshot().clone();
        let snapshot_table = if snapshot.get_metadata().index > 0 {
            Some(codec::decode_table(&snapshot.data).map_err(|_| ())?)
        } else {
            None
        };
        let entries = rd.take_entries();
        let hard_state = rd.hs().cloned();
        let peer_incarnations = std::mem::take(&mut self.new_peer_incarnations);
        // A snapshot from the leader replaces every record: the tree is
        // built from its slots and written with the snapshot's manifest.
        let records = match &snapshot_table {
            Some(table) => {
                let (ops, root) = self
                    .vault
                    .store_mut()
                    .store
                    .host_mut()
                    .replace_ops(rng, table)
                    .map_err(|_| ())?;
                let state = RecordsState {
                    root,
                    applied: snapshot.get_metadata().index,
                    stats: RecordStats::of(table),
                };
                Some((ops, state))
            }
            None => None,
        };
        let installed = records.as_ref().map(|(_, state)| *state);
        let written = self.store.write(
            rng,
            Write {
                snapshot: snapshot_table.as_ref().map(|_| snapshot.get_metadata()),
                records,
                entries: &entries,
                hard_state: hard_state.as_ref(),
                compact_to: snapshot_table.as_ref().map(|_| u64::MAX),
                peer_incarnations: &peer_incarnations,
            },
        );
        if let Err(e) = written {
            self.note_failure(&e);
            return Err(());
        }
        if let Some(at) = installed {
            self.install_snapshot(&snapshot, at);
        }
        let store = self.raw.mut_store();
        store.append(&entries);
        if let Some(hs) = hard_state {
            store.hard_state = hs;
        }

        let committed = rd.take_committed_entries();
        self.apply(rng, now, committed);
        self.persist_records(rng)?;
        let persisted = rd.take_persisted_messages();
        self.send_raft(persisted);

        let Some(mut light) = self.guarded(|raw| raw.advance(rd)) else {
            return Err(());
        };
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().hard_state.commit = commit;
        }
        let messages = light.take_messages();
        self.send_raft(messages);
        let committed = light.take_committed_entries();
        self.apply(rng, now, committed);
        self.persist_records(rng)?;
        self.guarded(|raw| raw.advance_apply()).ok_or(())?;
        // A snapshot is sent like any message, and may be lost like one:
        // report it sent, so the leader probes the follower again instead
        // of waiting for it for ever (a lost one is sent again, read anew).
        let sent = std::mem::take(&mut self.snapshots_sent);
        if !sent.is_empty() {
            self.raw.mut_store().prepared = None;
            self.counters.snapshots_sent += sent.len() as u64;
        }
        for to in sent {
            self.guarded(|raw| raw.report_snapshot(to, SnapshotStatus::Finish))
                .ok_or(())?;
        }
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot, at: RecordsState) {
        let meta = snapshot.get_metadata().clone();
        self.applied = meta.index;
        self.vault.store_mut().restart_at(at);
        self.raw.mut_store().install(meta);
        self.counters.snapshots += 1;
    }

    /// Writes the rows the commands applied since the last such write
    /// changed, with a manifest naming the new root and the last index
    /// applied (§8.5, §22.2), once [`NodeConfig::records_write_every`]
    /// entries have applied since that write or
    /// [`NodeConfig::records_staged_rows`] rows wait;
    /// until then they wait in trusted memory, where reads find them. The
    /// answers do not wait for them: they depend on the log. If the write
    /// fails the node stops: what it applied is in its log, and it applies
    /// it again when it starts.
    fn persist_records<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<(), ()> {
        self.persist_records_when(rng, false)
    }

    /// As [`Self::persist_records`]; with `now`, whatever the thresholds.
    fn persist_records_when<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: bool,
    ) -> Result<(), ()> {
        if self.faulted {
            return Err(());
        }
        let durable = self.store.records();
        let records = &mut self.vault.store_mut();
        let staged = records.store.host().staged();
        if durable.applied == self.applied && staged == 0 {
            return Ok(());
        }
        let behind = self.applied.saturating_sub(durable.applied);
        if !now
            && behind < self.config.records_write_every.max(1)
            && staged < self.config.records_staged_rows
        {
            return Ok(());
        }
        let Ok(ops) = records.store.host_mut().take_ops(rng) else {
            self.fault("the record rows could not be sealed");
            return Err(());
        };
        let state = RecordsState {
            root: records.store.root(),
            applied: self.applied,
            stats: records.stats,
        };
        let written = self.store.write(
            rng,
            Write {
                records: Some((ops, state)),
                ..Write::default()
            },
        );
        if let Err(e) = written {
            self.note_failure(&e);
            // What is kept may now be ahead of the disk: dropped with the
            // node's run (it starts again from its disk).
            self.vault.store_mut().store.host_mut().clear_staged();
            self.fault("the record rows could not be written");
            return Err(());
        }
        Ok(())
    }

    /// A snapshot for a lagging peer, if the engine asked for one
    /// ([`LogStore::snapshot`]): every record read from the host and
    /// checked ([`HostRecords::read_all`]), at the index applied here. The
    /// engine sends it at its next try; it is dropped once sent.
    fn prepare_snapshot<R: RngCore + CryptoRng>(&mut self, rng: &mut R) {
        // A prepared snapshot is the whole table in memory: dropped once
        // this node no longer leads, or when the follower did not take it
        // within a few election timeouts (it is read again if asked).
        let stale = self.ticks > self.prepared_at + 4 * (self.config.election_tick as u64).max(1);
        if self.raw.store().prepared.is_some() && (!self.is_leader() || stale) {
            self.raw.mut_store().prepared = None;
        }
        let Some(wanted) = self.raw.store().wanted.take() else {
            return;
        };
        if self.faulted || self.applied < wanted || self.applied < self.store.records().applied {
            return;
        }
        let Ok(term) = raft::Storage::term(self.raw.store(), self.applied) else {
            return;
        };
        let table = match self.records() {
            Ok(Ok(table)) => table,
            Ok(Err(_)) => {
                self.records_refused(rng);
                return;
            }
            Err(_) => return,
        };
        let store = self.raw.mut_store();
        let mut meta = raft::prelude::SnapshotMetadata {
            index: self.applied,
            term,
            ..Default::default()
        };
        meta.set_conf_state(store.conf_state.clone());
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(meta);
        snapshot.data = codec::encode_table(&table).into();
        store.prepared = Some(snapshot);
        self.prepared_at = self.ticks;
    }

    fn apply<R: RngCore + CryptoRng>(&mut self, rng: &mut R, now: u64, entries: Vec<Entry>) {
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            // Past the bound on waiting rows, what waits is written before
            // the next entry applies (§22.2): it goes past the bound by one
            // entry's commits at most.
            if self.vault.store().store.host().staged() >= self.config.records_staged_rows
                && self.persist_records(rng).is_err()
            {
                return;
            }
            self.applied = entry.index;
            self.event(Event::Entry {
                index: entry.index,
                digest: digest(entry.term, &entry.data),
            });
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                // Leader no-ops; membership is static (§20.4).
                continue;
            }
            let Ok(batch) = codec::decode_batch(&entry.data) else {
                continue;
            };
            for (id, command) in batch {
                let refused = self.vault.store().refusals();
                let Ok(applied) = self.vault.store_mut().apply(&command) else {
                    if self.vault.store().refusals() > refused {
                        // The host's rows for the record did not check:
                        // this node cannot apply the log any further.
                        self.records_refused(rng);
                    } else {
                        // The host could not read its disk: unavailable,
                        // not a lie. The node stops; started again, it
                        // applies the log from the tree on its disk.
                        if let Some(e) = self.vault.store().store.host().take_read_error() {
                            self.note_failure(&FleetError::Disk(e));
                        }
                        self.fault("the host could not read the record rows");
                    }
                    return;
                };
                self.counters.commands_applied += 1;
                if self.config.record_events {
                    self.event(Event::Command {
                        index: entry.index,
                        command: command.clone(),
                        applied,
                    });
                }
                if let Some(w) = self.waiting.remove(&id) {
                    self.finish(rng, now, w, Ok((entry.index, applied)));
                }
            }
        }
    }

    /// Compacts the log up to where the tree on the host is: the records
    /// are the snapshot (SPEC.md §8.5), so nothing is copied.
    fn maybe_compact<R: RngCore + CryptoRng>(&mut self, rng: &mut R) {
        if self.faulted {
            return;
        }
        let snap_index = self.raw.store().snapshot_meta.index;
        let index = self.store.records().applied.min(self.applied);
        if index < snap_index + self.config.snapshot_interval.max(1) {
            return;
        }
        let Some(meta) = self.raw.mut_store().compact(index) else {
            return;
        };
        let written = self.store.write(
            rng,
            Write {
                snapshot: Some(&meta),
                compact_to: Some(index),
                ..Write::default()
            },
        );
        if let Err(e) = written {
            self.note_failure(&e);
            self.fault("a snapshot could not be persisted");
            return;
        }
        self.counters.snapshots += 1;
    }
}

/// Raft messages that answer (or are forwarded to) a node in its current
/// boot, and so are accepted only if the envelope names that boot (§21.3).
/// A copy recorded before the receiver restarted is dropped: a vote granted
/// to an earlier boot must not elect this one, and an acknowledgement sent
/// to an earlier boot must not count towards a commit now.
fn is_bound_raft_type(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::MsgAppendResponse
            | MessageType::MsgHeartbeatResponse
            | MessageType::MsgRequestVoteResponse
            | MessageType::MsgRequestPreVoteResponse
            | MessageType::MsgReadIndexResp
            | MessageType::MsgPropose
            | MessageType::MsgReadIndex
    )
}
