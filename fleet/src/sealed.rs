//! What a node keeps on its host's disk, sealed and checked by the node
//! itself (SPEC.md §22.1–§22.2).
//!
//! The host stores every row ([`HostStore`]) and may edit, drop, duplicate,
//! reorder, splice or roll back any of them. So every row is encrypted and
//! authenticated with XChaCha20-Poly1305 under a key only this member can
//! derive (`FleetTransportKey::storage_key`, never written anywhere), with
//! the member, the table and the row's key bound in; and one **manifest**
//! row, sealed the same way, commits to everything else: the Raft hard
//! state and configuration, the snapshot's index and term, the root of
//! the record tree the host keeps ([`crate::records`]) with the log index
//! it is at and the record counts, the log's first and last index and the
//! head of a hash chain over its entries, the node's incarnation and the
//! peers' incarnations, and a write counter with the digest of the previous
//! manifest. Loading recomputes all of it; any difference is
//! [`LoadError::Tampered`] and the node treats the disk as wiped.
//!
//! What remains open to the host is a whole-disk rollback to an older
//! authentic state. With [`Nvram`] the node writes the manifest's counter
//! and digest (with its term, vote and highest log position) to tamper-
//! proof memory after every write and before anything that depends on it
//! leaves, so it recognises an older disk as such ([`Boot::RolledBack`]).

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::FleetError;
use crate::platform::{HostError, HostOp, HostStore, Nvram, Row, Table};
use crate::records::RecordStats;
use backup_key_vault::fleet::FleetTransportKey;

/// Version of the manifest (and of this storage layout). Version 3 keeps
/// the records in the host's tree ([`Table::Tree`], [`Table::Slots`]) and
/// never writes [`Table::Records`], where version 2 kept the table as of
/// the snapshot. Version 4 (the manifest itself unchanged) keys the tree's
/// rows by [`crate::records::tree_row_key`], where version 3 keyed them by
/// the node's `NodeKey` bytes.
pub const MANIFEST_VERSION: u8 = 4;
/// Version of the NVRAM content.
pub const NVRAM_VERSION: u8 = 1;
/// The manifest's key in [`Table::Meta`].
pub const MANIFEST_KEY: &[u8] = b"manifest";
/// Length of a row's nonce.
const NONCE_LEN: usize = 24;
/// Length of the NVRAM content: version, counter, manifest digest,
/// incarnation, term, vote, highest (last term, last index).
pub const NVRAM_LEN: usize = 1 + 8 + 32 + 8 + 8 + 8 + 8 + 8;

/// Why the stored state was refused when the node loaded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The host's rows are not what this node wrote: a row that does not
    /// open, a missing, extra, duplicated or reordered row, or a manifest
    /// that does not match the rows.
    Tampered(&'static str),
}

/// How the node starts, given what the host handed back and what NVRAM says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// NVRAM vouches for the disk: it is exactly the node's latest state
    /// (or a first start, with NVRAM and disk both empty).
    Intact,
    /// The disk is authentic but nothing can vouch that it is the latest
    /// (no NVRAM): every start may be a rollback (§22.3's gate).
    Unvouched,
    /// The disk failed authentication and was discarded.
    Rejected(&'static str),
    /// NVRAM shows the disk is older than the node's latest state, or gone:
    /// it was discarded, and the node knows its own recovery target.
    RolledBack,
}

/// The NVRAM content (SPEC.md §22.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NvramState {
    /// The latest manifest's write counter.
    pub counter: u64,
    /// The latest manifest's SHA-256.
    pub digest: [u8; 32],
    /// The latest incarnation.
    pub incarnation: u64,
    /// The Raft term.
    pub term: u64,
    /// The vote in that term.
    pub vote: u64,
    /// The highest (last term, last index) the node's log ever had: every
    /// entry it acknowledged lies at or below it.
    pub high: (u64, u64),
}

impl NvramState {
    fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(NVRAM_LEN);
        out.push(NVRAM_VERSION);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.digest);
        for v in [
            self.incarnation,
            self.term,
            self.vote,
            self.high.0,
            self.high.1,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, FleetError> {
        let mut r = Reader(bytes);
        let bad = |_| FleetError::Disk("NVRAM content is malformed".into());
        if r.u8().map_err(bad)? != NVRAM_VERSION {
            return Err(FleetError::Disk(
                "NVRAM content has an unknown version".into(),
            ));
        }
        let counter = r.u64().map_err(bad)?;
        let digest = r.array::<32>().map_err(bad)?;
        let incarnation = r.u64().map_err(bad)?;
        let term = r.u64().map_err(bad)?;
        let vote = r.u64().map_err(bad)?;
        let high = (r.u64().map_err(bad)?, r.u64().map_err(bad)?);
        r.finish().map_err(bad)?;
        Ok(Self {
            counter,
            digest,
            incarnation,
            term,
            vote,
            high,
        })
    }
}

/// Where the record tree on the host stands, as the manifest commits to it
/// (SPEC.md §8.5, §22.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordsState {
    /// The tree's root ([`backup_key_vault::vault::tree::EMPTY`] for none).
    pub root: [u8; 32],
    /// The log index whose command the tree includes last: a starting node
    /// applies the log from the next one.
    pub applied: u64,
    /// What the records hold, for the node's metrics.
    pub stats: RecordStats,
}

/// What a starting node finds.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The last persisted hard state (term, vote, commit).
    pub hard_state: HardState,
    /// The persisted configuration, if any.
    pub conf_state: Option<ConfState>,
    /// The snapshot's metadata, if the log was ever compacted.
    pub snapshot: Option<SnapshotMetadata>,
    /// The record tree the host keeps: its root, and how far it is applied.
    pub records: RecordsState,
    /// The log after the snapshot, in order.
    pub entries: Vec<Entry>,
    /// The incarnation of the last boot (0 on an empty disk).
    pub incarnation: u64,
    /// The highest incarnation accepted from each peer.
    pub peer_incarnations: BTreeMap<u64, u64>,
    /// With NVRAM, after a rollback: the highest log position this node
    /// ever had, which it must reach again before it votes or serves.
    pub target: Option<(u64, u64)>,
}

/// One Ready's worth of changes, written together.
#[derive(Default)]
pub struct Write<'a> {
    /// A snapshot to record: the log up to its index is covered (by
    /// `records`, or by a tree already at or past it).
    pub snapshot: Option<&'a SnapshotMetadata>,
    /// The record tree's changed rows ([`crate::records::HostRecords::take_ops`],
    /// or a whole new tree from a snapshot), and where they leave it.
    pub records: Option<(Vec<HostOp>, RecordsState)>,
    /// Entries to append; any persisted entry at or after the first one's
    /// index is replaced (Raft truncates conflicting suffixes).
    pub entries: &'a [Entry],
    /// The new hard state.
    pub hard_state: Option<&'a HardState>,
    /// Drop every log entry at or below this index (before appending
    /// `entries`): the snapshot covers them.
    pub compact_to: Option<u64>,
    /// Peers seen at a new incarnation.
    pub peer_incarnations: &'a [(u64, u64)],
}

/// The manifest: one sealed row that commits to every other row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Manifest {
    counter: u64,
    prev: [u8; 32],
    incarnation: u64,
    term: u64,
    vote: u64,
    commit: u64,
    voters: Vec<u64>,
    snapshot_index: u64,
    snapshot_term: u64,
    records: RecordsState,
    log_last: u64,
    log_base: [u8; 32],
    log_head: [u8; 32],
    peers: BTreeMap<u64, u64>,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        let (head, tail) = self
            .0
            .split_at_checked(n)
            .ok_or(LoadError::Tampered("manifest truncated"))?;
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        self.take(N)?
            .try_into()
            .map_err(|_| LoadError::Tampered("manifest truncated"))
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, LoadError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, LoadError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn finish(&self) -> Result<(), LoadError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(LoadError::Tampered("manifest has trailing bytes"))
        }
    }
}

impl Manifest {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 16 * self.peers.len());
        out.push(MANIFEST_VERSION);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.prev);
        for v in [self.incarnation, self.term, self.vote, self.commit] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&(self.voters.len() as u16).to_be_bytes());
        for v in &self.voters {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for v in [self.snapshot_index, self.snapshot_term] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.records.root);
        let stats = &self.records.stats;
        for v in [
            self.records.applied,
            stats.live,
            stats.erased,
            stats.charges,
            self.log_last,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.log_base);
        out.extend_from_slice(&self.log_head);
        out.extend_from_slice(&(self.peers.len() as u16).to_be_bytes());
        for (id, inc) in &self.peers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&inc.to_be_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, LoadError> {
        let mut r = Reader(bytes);
        if r.u8()? != MANIFEST_VERSION {
            return Err(LoadError::Tampered("manifest version"));
        }
        let mut m = Manifest {
            counter: r.u64()?,
            prev: r.array()?,
            incarnation: r.u64()?,
            term: r.u64()?,
            vote: r.u64()?,
            commit: r.u64()?,
            ..Manifest::default()
        };
        for _ in 0..r.u16()? {
            m.voters.push(r.u64()?);
        }
        m.snapshot_index = r.u64()?;
        m.snapshot_term = r.u64()?;
        m.records.root = r.array()?;
        m.records.applied = r.u64()?;
        m.records.stats = RecordStats {
            live: r.u64()?,
            erased: r.u64()?,
            charges: r.u64()?,
        };
        m.log_last = r.u64()?;
        m.log_base = r.array()?;
        m.log_head = r.array()?;
        for _ in 0..r.u16()? {
            let id = r.u64()?;
            let inc = r.u64()?;
            if m.peers.insert(id, inc).is_some() {
                return Err(LoadError::Tampered("manifest lists a peer twice"));
            }
        }
        r.finish()?;
        if m.log_last < m.snapshot_index {
            return Err(LoadError::Tampered("manifest log range"));
        }
        // The tree is applied through the snapshot (the log is compacted
        // only up to where the tree is) and not past the log.
        if m.records.applied < m.snapshot_index || m.records.applied > m.log_last {
            return Err(LoadError::Tampered("manifest records index"));
        }
        Ok(m)
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            ..ConfState::default()
        }
    }
}

/// The next link of the log's hash chain.
fn chain(prev: &[u8; 32], index: u64, entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"bkv-log-chain/v1");
    h.update(prev);
    h.update(index.to_be_bytes());
    h.update((entry.len() as u64).to_be_bytes());
    h.update(entry);
    h.finalize().into()
}

/// A checked disk: its manifest, what it holds, and the log's chain values.
type Checked = (Manifest, Loaded, Vec<[u8; 32]>);

fn host_err(e: HostError) -> FleetError {
    FleetError::Disk(e.0)
}

/// Seals and opens a node's rows: XChaCha20-Poly1305 under the member's
/// storage key, with the member, the table, the row's key and a binding
/// bound in (SPEC.md §22.1). Shared by the [`SealedStore`] and the record
/// slots ([`crate::records::HostRecords`]).
#[derive(Clone)]
pub(crate) struct RowCipher {
    cipher: XChaCha20Poly1305,
    node: u64,
    sealing: bool,
}

impl RowCipher {
    /// The cipher for `node`'s rows; `sealing = false` (tests of attacks
    /// without this defence) writes and reads rows in clear.
    pub(crate) fn new(key: &FleetTransportKey, node: u64, sealing: bool) -> Self {
        let storage_key = key.storage_key(node);
        Self {
            cipher: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&storage_key[..])),
            node,
            sealing,
        }
    }

    fn aad(&self, table: Table, key: &[u8], binding: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(48 + key.len() + binding.len());
        aad.extend_from_slice(b"bkv-row/v1");
        aad.extend_from_slice(&self.node.to_be_bytes());
        aad.push(table as u8);
        aad.extend_from_slice(&(key.len() as u64).to_be_bytes());
        aad.extend_from_slice(key);
        aad.extend_from_slice(binding);
        aad
    }

    pub(crate) fn seal<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        table: Table,
        key: &[u8],
        binding: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, FleetError> {
        if !self.sealing {
            return Ok(plaintext.to_vec());
        }
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let aad = self.aad(table, key, binding);
        let body = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| FleetError::Disk("sealing a row failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub(crate) fn open(
        &self,
        table: Table,
        key: &[u8],
        binding: &[u8],
        sealed: &[u8],
        what: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, LoadError> {
        if !self.sealing {
            return Ok(Zeroizing::new(sealed.to_vec()));
        }
        let (nonce, body) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(LoadError::Tampered(what))?;
        let aad = self.aad(table, key, binding);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| LoadError::Tampered(what))
    }
}

/// A node's sealed view of its host's disk.
pub struct SealedStore {
    host: Box<dyn HostStore>,
    nvram: Option<Box<dyn Nvram>>,
    rows: RowCipher,
    node: u64,
    sealing: bool,
    manifest: Manifest,
    /// `chain[i]`: the chain value after entry `snapshot_index + i`
    /// (`chain[0]` is the base).
    chain: Vec<[u8; 32]>,
    /// Term of the log's last entry (the snapshot's term if empty).
    last_term: u64,
    /// The NVRAM state last written.
    nv: Option<NvramState>,
}

impl core::fmt::Debug for SealedStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealedStore")
            .field("node", &self.node)
            .field("counter", &self.manifest.counter)
            .field("nvram", &self.nvram.is_some())
            .finish_non_exhaustive()
    }
}

impl SealedStore {
    /// Opens what the host keeps for `node`, checks all of it, and decides
    /// how the node starts. A disk that fails its checks, or that NVRAM
    /// shows to be older than the node's latest state, is discarded (its
    /// rows removed) and the node starts as if wiped.
    ///
    /// `sealing = false` is for tests that must show an attack works
    /// without this defence: rows are then written and read in clear,
    /// unchecked, as before SPEC revision 5.
    pub fn open(
        key: &FleetTransportKey,
        node: u64,
        host: Box<dyn HostStore>,
        nvram: Option<Box<dyn Nvram>>,
        sealing: bool,
    ) -> Result<(Self, Loaded, Boot), FleetError> {
        let mut store = Self {
            host,
            nvram,
            rows: RowCipher::new(key, node, sealing),
            node,
            sealing,
            manifest: Manifest::default(),
            chain: vec![[0; 32]],
            last_term: 0,
            nv: None,
        };
        let nv = match &store.nvram {
            Some(n) => match n.read().map_err(host_err)? {
                Some(bytes) => Some(NvramState::from_bytes(&bytes)?),
                None => None,
            },
            None => None,
        };
        store.nv = nv;
        let has_nvram = store.nvram.is_some();
        let read = store.read_all()?;
        let (loaded, boot) = match (read, nv) {
            (Ok(None), None) if has_nvram => (Loaded::default(), Boot::Intact),
            (Ok(None), None) => (Loaded::default(), Boot::Unvouched),
            (Ok(Some((m, loaded, chain))), None) => {
                store.adopt(m, &loaded, chain);
                (loaded, Boot::Unvouched)
            }
            (Ok(Some((m, loaded, chain))), Some(nv))
                if m.digest() == nv.digest
                    || (m.counter == nv.counter.wrapping_add(1) && m.prev == nv.digest) =>
            {
                store.adopt(m, &loaded, chain);
                (loaded, Boot::Intact)
            }
            (Ok(_), Some(nv)) => (store.discard(Some(nv))?, Boot::RolledBack),
            (Err(LoadError::Tampered(why)), nv) => (store.discard(nv)?, Boot::Rejected(why)),
        };
        Ok((store, loaded, boot))
    }

    /// With NVRAM: the highest log position this node ever had.
    pub fn nvram_high(&self) -> Option<(u64, u64)> {
        self.nv.map(|nv| nv.high)
    }

    /// Whether a tamper-proof NVRAM backs this store.
    pub fn has_nvram(&self) -> bool {
        self.nvram.is_some()
    }

    fn adopt(&mut self, m: Manifest, loaded: &Loaded, chain: Vec<[u8; 32]>) {
        self.last_term = loaded.entries.last().map_or(m.snapshot_term, |e| e.term);
        self.chain = chain;
        self.manifest = m;
    }

    /// Removes every row and starts from nothing, keeping from NVRAM what
    /// the node must never go back on (term, vote, incarnation, and the
    /// highest log position as its recovery target).
    fn discard(&mut self, nv: Option<NvramState>) -> Result<Loaded, FleetError> {
        let ops: Vec<HostOp> = Table::ALL.iter().map(|t| HostOp::Clear(*t)).collect();
        self.host.apply(&ops).map_err(host_err)?;
        let mut loaded = Loaded::default();
        self.manifest = Manifest::default();
        self.chain = vec![[0; 32]];
        self.last_term = 0;
        if let Some(nv) = nv {
            self.manifest.counter = nv.counter;
            self.manifest.prev = nv.digest;
            self.manifest.incarnation = nv.incarnation;
            self.manifest.term = nv.term;
            self.manifest.vote = nv.vote;
            loaded.incarnation = nv.incarnation;
            loaded.hard_state.term = nv.term;
            loaded.hard_state.vote = nv.vote;
            loaded.target = Some(nv.high);
        }
        Ok(loaded)
    }

    /// Reads and checks every row: `Ok(None)` for an empty disk.
    fn read_all(&self) -> Result<Result<Option<Checked>, LoadError>, FleetError> {
        let meta = self.host.scan(Table::Meta).map_err(host_err)?;
        let log = self.host.scan(Table::Log).map_err(host_err)?;
        // Layouts 3 and 4 never write the version-2 record table: any
        // row in it is the host's.
        let unwritten = !self.host.scan(Table::Records).map_err(host_err)?.is_empty();
        if unwritten && self.sealing {
            return Ok(Err(LoadError::Tampered(
                "rows in a table this node does not write",
            )));
        }
        if meta.is_empty() && log.is_empty() {
            // The tree and slots are not read here (they are checked
            // against the manifest's root as they are used, and may be
            // large); but without a manifest there can be none.
            let mut orphans = unwritten;
            for t in [Table::Tree, Table::Slots] {
                orphans |= !self.host.scan(t).map_err(host_err)?.is_empty();
            }
            if !orphans {
                return Ok(Ok(None));
            }
            if self.sealing {
                return Ok(Err(LoadError::Tampered("record rows without a manifest")));
            }
        }
        Ok(self.check(&meta, &log).map(Some))
    }

    fn check(&self, meta: &[Row], log: &[Row]) -> Result<Checked, LoadError> {
        let [(key, sealed)] = meta else {
            return Err(LoadError::Tampered("the meta table is not one manifest"));
        };
        if key != MANIFEST_KEY {
            return Err(LoadError::Tampered("the meta table is not one manifest"));
        }
        let m = Manifest::from_bytes(&self.rows.open(
            Table::Meta,
            MANIFEST_KEY,
            &[],
            sealed,
            "manifest does not open",
        )?)?;
        let mut loaded = Loaded {
            hard_state: HardState {
                term: m.term,
                vote: m.vote,
                commit: m.commit,
                ..HardState::default()
            },
            conf_state: (!m.voters.is_empty()).then(|| m.conf_state()),
            incarnation: m.incarnation,
            peer_incarnations: m.peers.clone(),
            ..Loaded::default()
        };
        if m.snapshot_index > 0 {
            let mut meta = SnapshotMetadata {
                index: m.snapshot_index,
                term: m.snapshot_term,
                ..SnapshotMetadata::default()
            };
            meta.set_conf_state(m.conf_state());
            loaded.snapshot = Some(meta);
        }
        loaded.records = m.records;
        // The log: exactly the indices after the snapshot through the last,
        // in order, chaining to the manifest's head.
        let mut head = m.log_base;
        let mut chain_values = vec![head];
        let mut expected = m.snapshot_index.saturating_add(1);
        for (key, sealed) in log {
            let index_bytes: [u8; 8] = key
                .as_slice()
                .try_into()
                .map_err(|_| LoadError::Tampered("log key"))?;
            let index = u64::from_be_bytes(index_bytes);
            if self.sealing && index != expected {
                return Err(LoadError::Tampered("the log rows are not contiguous"));
            }
            let bytes = self
                .rows
                .open(Table::Log, key, &[], sealed, "log row does not open")?;
            let entry = crate::codec::decode_raft_entry(&bytes)
                .map_err(|_| LoadError::Tampered("log entry"))?;
            if self.sealing && entry.index != index {
                return Err(LoadError::Tampered("log entry index"));
            }
            head = chain(&head, index, &bytes);
            chain_values.push(head);
            expected = index.saturating_add(1);
            loaded.entries.push(entry);
        }
        if self.sealing && (expected != m.log_last.saturating_add(1) || head != m.log_head) {
            return Err(LoadError::Tampered(
                "the log is not the one the manifest names",
            ));
        }
        Ok((m, loaded, chain_values))
    }

    fn write_manifest<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        mut ops: Vec<HostOp>,
        mut next: Manifest,
    ) -> Result<(), FleetError> {
        next.counter = self.manifest.counter.wrapping_add(1);
        next.prev = self.manifest.digest();
        next.log_head = self.chain.last().copied().unwrap_or_default();
        next.log_base = self.chain.first().copied().unwrap_or_default();
        let sealed = self
            .rows
            .seal(rng, Table::Meta, MANIFEST_KEY, &[], &next.to_bytes())?;
        ops.push(HostOp::Put {
            table: Table::Meta,
            key: MANIFEST_KEY.to_vec(),
            value: sealed,
        });
        self.host.apply(&ops).map_err(host_err)?;
        // Only now is the new state durable; NVRAM follows it, and nothing
        // that depends on it has left the node yet (SPEC.md §22.2).
        if let Some(nvram) = self.nvram.as_mut() {
            let high = (self.last_term, next.log_last);
            let state = NvramState {
                counter: next.counter,
                digest: next.digest(),
                incarnation: next.incarnation,
                term: next.term,
                vote: next.vote,
                high: self.nv.map_or(high, |nv| nv.high.max(high)),
            };
            nvram.write(&state.to_bytes()).map_err(host_err)?;
            self.nv = Some(state);
        }
        self.manifest = next;
        Ok(())
    }

    /// Where the record tree on the host stands, as the latest manifest
    /// says.
    pub fn records(&self) -> RecordsState {
        self.manifest.records
    }

    /// Empties the log and the record tree, keeping the hard state's term
    /// and vote, the configuration, the incarnations and (with NVRAM) the
    /// highest log position: for a node whose host handed back record rows
    /// that do not check against the root (SPEC.md §8.5). The node stops;
    /// started again, it finds no log and recovers the fleet's state from
    /// its peers, as after a wiped disk (§22.3, §22.4).
    pub fn reset_log_and_records<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
    ) -> Result<(), FleetError> {
        let next = Manifest {
            incarnation: self.manifest.incarnation,
            term: self.manifest.term,
            vote: self.manifest.vote,
            voters: self.manifest.voters.clone(),
            peers: self.manifest.peers.clone(),
            ..Manifest::default()
        };
        let ops = [Table::Log, Table::Records, Table::Tree, Table::Slots]
            .into_iter()
            .map(HostOp::Clear)
            .collect();
        self.chain = vec![[0; 32]];
        self.last_term = 0;
        self.write_manifest(rng, ops, next)
    }

    /// Records a new boot's incarnation (before the node sends anything).
    pub fn set_incarnation<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        incarnation: u64,
    ) -> Result<(), FleetError> {
        let mut next = self.manifest.clone();
        next.incarnation = incarnation;
        self.write_manifest(rng, Vec::new(), next)
    }

    /// Records the configuration (once, when the fleet is made).
    pub fn set_conf_state<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        conf: &ConfState,
    ) -> Result<(), FleetError> {
        let mut next = self.manifest.clone();
        next.voters = conf.voters.clone();
        self.write_manifest(rng, Vec::new(), next)
    }

    /// Writes one Ready's changes together, then (with NVRAM) vouches for
    /// them.
    pub fn write<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        w: Write<'_>,
    ) -> Result<(), FleetError> {
        let mut next = self.manifest.clone();
        let mut ops = Vec::new();
        if let Some((records, state)) = w.records {
            ops = records;
            next.records = state;
        }
        if let Some(snap_meta) = w.snapshot {
            next.snapshot_index = snap_meta.index;
            next.snapshot_term = snap_meta.term;
            let voters = &snap_meta.get_conf_state().voters;
            if !voters.is_empty() {
                next.voters = voters.clone();
            }
        }
        if let Some(to) = w.compact_to {
            // Drop entries at or below `to`; what stays chains on from the
            // chain value at the new snapshot index (zero if none is left
            // or the snapshot came from a peer).
            let first = self.manifest.snapshot_index.saturating_add(1);
            let last = self.manifest.log_last;
            let upto = to.min(last);
            for index in first..=upto {
                ops.push(HostOp::Delete {
                    table: Table::Log,
                    key: index.to_be_bytes().to_vec(),
                });
            }
            if to >= last {
                self.chain = vec![[0; 32]];
                next.log_last = next.snapshot_index;
                self.last_term = next.snapshot_term;
            } else {
                let drop = usize::try_from(upto.saturating_sub(self.manifest.snapshot_index))
                    .unwrap_or(usize::MAX);
                self.chain
                    .drain(..drop.min(self.chain.len().saturating_sub(1)));
            }
        } else if w.snapshot.is_some() {
            return Err(FleetError::Disk(
                "a snapshot without compaction would leave a gap".into(),
            ));
        }
        if let Some(first) = w.entries.first() {
            let base = next.snapshot_index;
            if first.index <= base || first.index > next.log_last.saturating_add(1) {
                return Err(FleetError::Disk("entries do not follow the log".into()));
            }
            for index in first.index..=next.log_last {
                ops.push(HostOp::Delete {
                    table: Table::Log,
                    key: index.to_be_bytes().to_vec(),
                });
            }
            let keep = usize::try_from(first.index - base).unwrap_or(usize::MAX);
            self.chain.truncate(keep);
            for e in w.entries {
                let bytes = e
                    .write_to_bytes()
                    .map_err(|e| FleetError::Disk(e.to_string()))?;
                let key = e.index.to_be_bytes();
                let prev = self.chain.last().copied().unwrap_or_default();
                self.chain.push(chain(&prev, e.index, &bytes));
                let value = self.rows.seal(rng, Table::Log, &key, &[], &bytes)?;
                ops.push(HostOp::Put {
                    table: Table::Log,
                    key: key.to_vec(),
                    value,
                });
                next.log_last = e.index;
                self.last_term = e.term;
            }
        }
        if let Some(hs) = w.hard_state {
            next.term = hs.term;
            next.vote = hs.vote;
            next.commit = hs.commit;
        }
        for (id, inc) in w.peer_incarnations {
            let v = next.peers.entry(*id).or_default();
            *v = (*v).max(*inc);
        }
        self.write_manifest(rng, ops, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{MemHost, MemImage, MemNvram};
    use backup_key_vault::FleetSecrets;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn key() -> FleetTransportKey {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        FleetSecrets::generate(&mut rng).fleet_transport_key()
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 20].into(),
            ..Entry::default()
        }
    }

    fn open(host: &MemHost, nvram: Option<&MemNvram>) -> (SealedStore, Loaded, Boot) {
        SealedStore::open(
            &key(),
            3,
            Box::new(host.clone()),
            nvram.map(|n| Box::new(n.clone()) as Box<dyn Nvram>),
            true,
        )
        .unwrap()
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..HardState::default()
        }
    }

    #[test]
    fn what_is_written_loads_back_and_the_log_follows_truncation_and_compaction() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let host = MemHost::new();
        let (mut s, loaded, boot) = open(&host, None);
        assert_eq!(boot, Boot::Unvouched);
        assert!(loaded.entries.is_empty());
        s.set_incarnation(&mut rng, 1).unwrap();
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1)).collect();
        s.write(
            &mut rng,
            Write {
                entries: &entries,
                hard_state: Some(&hs(1, 2, 9)),
                peer_incarnations: &[(2, 4)],
                ..Write::default()
            },
        )
        .unwrap();
        // A new leader replaces the tail from index 8.
        let tail = [entry(8, 2), entry(9, 2)];
        s.write(
            &mut rng,
            Write {
                entries: &tail,
                ..Write::default()
            },
        )
        .unwrap();
        // A snapshot at 5 drops the log through 5.
        let mut meta = SnapshotMetadata {
            index: 5,
            term: 1,
            ..SnapshotMetadata::default()
        };
        meta.set_conf_state(ConfState {
            voters: vec![1, 2, 3],
            ..ConfState::default()
        });
        // The records at 7, with their rows, then the log compacted to 5.
        let records = RecordsState {
            root: [7; 32],
            applied: 7,
            stats: RecordStats {
                live: 1,
                erased: 2,
                charges: 3,
            },
        };
        let row = HostOp::Put {
            table: Table::Tree,
            key: vec![1; 34],
            value: vec![2; 66],
        };
        s.write(
            &mut rng,
            Write {
                records: Some((vec![row], records)),
                ..Write::default()
            },
        )
        .unwrap();
        assert_eq!(s.records(), records);
        s.write(
            &mut rng,
            Write {
                snapshot: Some(&meta),
                compact_to: Some(5),
                ..Write::default()
            },
        )
        .unwrap();
        drop(s);
        let (_, loaded, boot) = open(&host, None);
        assert_eq!(boot, Boot::Unvouched);
        let got: Vec<(u64, u64)> = loaded.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(6, 1), (7, 1), (8, 2), (9, 2)]);
        assert_eq!(loaded.hard_state, hs(1, 2, 9));
        assert_eq!(loaded.incarnation, 1);
        assert_eq!(loaded.peer_incarnations.get(&2), Some(&4));
        let meta = loaded.snapshot.unwrap();
        assert_eq!((meta.index, meta.term), (5, 1));
        assert_eq!(loaded.records, records);
        // The tree's rows are the host's to keep: not read at the start.
        assert_eq!(host.image()[&Table::Tree].len(), 1);
    }

    #[test]
    fn another_members_disk_does_not_open() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let host = MemHost::new();
        let (mut s, _, _) = open(&host, None);
        s.set_incarnation(&mut rng, 1).unwrap();
        drop(s);
        let (_, _, boot) =
            SealedStore::open(&key(), 4, Box::new(host.clone()), None, true).unwrap();
        assert!(matches!(boot, Boot::Rejected(_)), "{boot:?}");
        // Refused rows are removed: the member starts as if wiped.
        assert!(host.image().values().all(|rows| rows.is_empty()));
    }

    /// Layouts 3 and 4 never write the version-2 record table: a row
    /// there is the host's and the disk is refused (and wiped). Rows in the
    /// record tree's tables are checked as they are read (§8.5), but on a
    /// disk without a manifest there can be none.
    #[test]
    fn rows_in_a_table_this_layout_does_not_write_are_refused() {
        let cases = [
            (
                Table::Records,
                true,
                "rows in a table this node does not write",
            ),
            (
                Table::Records,
                false,
                "rows in a table this node does not write",
            ),
            (Table::Tree, false, "record rows without a manifest"),
            (Table::Slots, false, "record rows without a manifest"),
        ];
        for (table, genuine, why) in cases {
            let mut rng = ChaCha20Rng::seed_from_u64(5);
            let host = MemHost::new();
            if genuine {
                let (mut s, _, _) = open(&host, None);
                s.set_incarnation(&mut rng, 1).unwrap();
            }
            host.edit(|image| {
                image
                    .entry(table)
                    .or_default()
                    .insert(vec![1; 34], vec![2; 66])
            })
            .unwrap();
            let (_, loaded, boot) = open(&host, None);
            assert_eq!(boot, Boot::Rejected(why), "{table:?}, genuine {genuine}");
            assert_eq!(loaded.incarnation, 0);
            assert!(host.image().values().all(|rows| rows.is_empty()));
        }
    }

    /// A manifest whose records index lies before the snapshot or past the
    /// log is refused: the tree could not be replayed to the log.
    #[test]
    fn the_records_index_must_lie_between_the_snapshot_and_the_log_end() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        for applied in [0u64, 3, 4, 9] {
            let host = MemHost::new();
            let (mut s, _, _) = open(&host, None);
            let entries: Vec<Entry> = (1..=6).map(|i| entry(i, 1)).collect();
            s.write(
                &mut rng,
                Write {
                    entries: &entries,
                    hard_state: Some(&hs(1, 1, 6)),
                    ..Write::default()
                },
            )
            .unwrap();
            s.write(
                &mut rng,
                Write {
                    records: Some((
                        Vec::new(),
                        RecordsState {
                            applied: 4,
                            ..RecordsState::default()
                        },
                    )),
                    ..Write::default()
                },
            )
            .unwrap();
            let meta = SnapshotMetadata {
                index: 4,
                term: 1,
                ..SnapshotMetadata::default()
            };
            s.write(
                &mut rng,
                Write {
                    snapshot: Some(&meta),
                    compact_to: Some(4),
                    ..Write::default()
                },
            )
            .unwrap();
            // The manifest names `applied` (sealed by the node, as a bug
            // or a forged state would be).
            let mut m = s.manifest.clone();
            m.records.applied = applied;
            s.write_manifest(&mut rng, Vec::new(), m).unwrap();
            drop(s);
            let (_, loaded, boot) = open(&host, None);
            if (4..=6).contains(&applied) {
                assert_eq!(boot, Boot::Unvouched, "applied {applied}");
                assert_eq!(loaded.records.applied, applied);
            } else {
                assert_eq!(
                    boot,
                    Boot::Rejected("manifest records index"),
                    "applied {applied}"
                );
            }
        }
    }

    /// A reset keeps term, vote, configuration and incarnations, and
    /// empties the log and every record row.
    #[test]
    fn a_reset_empties_log_and_records_and_keeps_the_hard_state() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let host = MemHost::new();
        let (mut s, _, _) = open(&host, None);
        s.set_incarnation(&mut rng, 3).unwrap();
        s.set_conf_state(
            &mut rng,
            &ConfState {
                voters: vec![1, 2, 3],
                ..ConfState::default()
            },
        )
        .unwrap();
        let entries: Vec<Entry> = (1..=3).map(|i| entry(i, 2)).collect();
        let row = HostOp::Put {
            table: Table::Slots,
            key: vec![4; 32],
            value: vec![5; 80],
        };
        s.write(
            &mut rng,
            Write {
                entries: &entries,
                hard_state: Some(&hs(2, 1, 3)),
                peer_incarnations: &[(2, 7)],
                ..Write::default()
            },
        )
        .unwrap();
        s.write(
            &mut rng,
            Write {
                records: Some((
                    vec![row],
                    RecordsState {
                        applied: 3,
                        ..RecordsState::default()
                    },
                )),
                ..Write::default()
            },
        )
        .unwrap();
        s.reset_log_and_records(&mut rng).unwrap();
        drop(s);
        let image = host.image();
        for t in [Table::Log, Table::Records, Table::Tree, Table::Slots] {
            assert!(image.get(&t).is_none_or(|rows| rows.is_empty()), "{t:?}");
        }
        let (_, loaded, boot) = open(&host, None);
        assert_eq!(boot, Boot::Unvouched);
        assert!(loaded.entries.is_empty());
        assert_eq!(loaded.records, RecordsState::default());
        assert_eq!(loaded.hard_state, hs(2, 1, 0));
        assert_eq!(loaded.incarnation, 3);
        assert_eq!(loaded.conf_state.unwrap().voters, vec![1, 2, 3]);
        assert_eq!(loaded.peer_incarnations.get(&2), Some(&7));
    }

    #[test]
    fn with_nvram_an_older_disk_is_a_rollback_and_term_vote_and_target_survive() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let host = MemHost::new();
        let nvram = MemNvram::new();
        let (mut s, _, boot) = open(&host, Some(&nvram));
        assert_eq!(boot, Boot::Intact, "a first start with NVRAM");
        s.set_incarnation(&mut rng, 1).unwrap();
        let old: MemImage = host.image();
        let entries: Vec<Entry> = (1..=4).map(|i| entry(i, 3)).collect();
        s.write(
            &mut rng,
            Write {
                entries: &entries,
                hard_state: Some(&hs(3, 2, 4)),
                ..Write::default()
            },
        )
        .unwrap();
        drop(s);
        // The latest disk: vouched for.
        let (s, loaded, boot) = open(&host, Some(&nvram));
        assert_eq!(boot, Boot::Intact);
        assert_eq!(loaded.entries.len(), 4);
        drop(s);
        // The host puts back the older, authentic disk.
        host.restore(old);
        let (s, loaded, boot) = open(&host, Some(&nvram));
        assert_eq!(boot, Boot::RolledBack);
        assert_eq!(loaded.target, Some((3, 4)));
        assert_eq!((loaded.hard_state.term, loaded.hard_state.vote), (3, 2));
        assert!(loaded.entries.is_empty());
        assert_eq!(s.nvram_high(), Some((3, 4)));
        drop(s);
        // A wiped disk is the same.
        host.restore(MemImage::new());
        let (_, loaded, boot) = open(&host, Some(&nvram));
        assert_eq!(boot, Boot::RolledBack);
        assert_eq!(loaded.target, Some((3, 4)));
    }

    /// NVRAM whose next write fails: a crash between the disk's commit and
    /// NVRAM's.
    struct FailingNvram(MemNvram);

    impl Nvram for FailingNvram {
        fn read(&self) -> Result<Option<Vec<u8>>, HostError> {
            self.0.read()
        }
        fn write(&mut self, _: &[u8]) -> Result<(), HostError> {
            Err(HostError("power lost".into()))
        }
    }

    #[test]
    fn a_crash_between_disk_and_nvram_keeps_the_disk_but_a_fork_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let host = MemHost::new();
        let nvram = MemNvram::new();
        let (mut s, _, _) = open(&host, Some(&nvram));
        s.set_incarnation(&mut rng, 1).unwrap();
        drop(s);
        let before = host.image();
        // The disk commits, NVRAM does not.
        let (mut s, _, _) = SealedStore::open(
            &key(),
            3,
            Box::new(host.clone()),
            Some(Box::new(FailingNvram(nvram.clone()))),
            true,
        )
        .unwrap();
        let entries = [entry(1, 1)];
        let w = Write {
            entries: &entries,
            ..Write::default()
        };
        assert!(s.write(&mut rng, w).is_err());
        drop(s);
        let crashed = host.image();
        // The disk one write ahead of NVRAM, continuing from it: kept.
        let (s, loaded, boot) = open(&host, Some(&nvram));
        assert_eq!(boot, Boot::Intact);
        assert_eq!(loaded.entries.len(), 1);
        drop(s);
        // But a second continuation of the same NVRAM state (a fork the
        // host kept) is refused once NVRAM has moved on along another.
        host.restore(before);
        let (mut s, _, boot) = open(&host, Some(&nvram));
        assert_eq!(boot, Boot::Intact);
        let other = [entry(1, 2)];
        s.write(
            &mut rng,
            Write {
                entries: &other,
                ..Write::default()
            },
        )
        .unwrap();
        drop(s);
        host.restore(crashed);
        let (_, _, boot) = open(&host, Some(&nvram));
        assert_eq!(boot, Boot::RolledBack);
    }

    #[test]
    fn nvram_content_is_strict() {
        let state = NvramState {
            counter: 1,
            digest: [2; 32],
            incarnation: 3,
            term: 4,
            vote: 5,
            high: (6, 7),
        };
        let bytes = state.to_bytes();
        // SPEC.md §22.4 gives the length.
        assert_eq!(NVRAM_LEN, 81);
        assert_eq!(bytes.len(), NVRAM_LEN);
        assert_eq!(NvramState::from_bytes(&bytes).unwrap(), state);
        assert!(NvramState::from_bytes(&bytes[..NVRAM_LEN - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(NvramState::from_bytes(&long).is_err());
        let mut version = bytes;
        version[0] = 9;
        assert!(NvramState::from_bytes(&version).is_err());
    }
}
