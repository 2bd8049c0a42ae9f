//! The record tree and its slots on a node's host: the untrusted half of
//! the core's [`VerifiedStore`] (SPEC.md §8.5, "The fleet node").
//!
//! [`HostRecords`] is a [`RecordHost`] over the node's [`HostStore`]. The
//! tree's node rows live in [`Table::Tree`] in clear (hashes and ids only,
//! which the root authenticates), under keys that keep each four levels of
//! the tree together ([`tree_row_key`]); each record's slot lives in
//! [`Table::Slots`], sealed like every other row of the node (§22.1) with
//! an empty binding, because the tree, not the AEAD, ties it to a state. A
//! fetch reads the rows along the record's path (`tree::prove` over
//! [`HostStore::get`]) and opens the slot; the [`VerifiedStore`] above then
//! checks both against the root it trusts. A commit's rows are **staged**,
//! not written: later fetches see them, and the node takes them
//! ([`HostRecords::take_ops`]) to write in the same [`HostStore::apply`] as
//! the manifest that carries the new root, so the tree on disk and the root
//! the node vouches for change together.
//!
//! What the host can do and what it comes to: a row edited, dropped,
//! swapped or taken from an older copy of the disk either breaks the path
//! (`tree::prove` finds a node that its parent does not name), or leads to
//! another root, or gives a slot that does not open under its own id or does
//! not hash to its leaf. Each is refused, and counted: here when the rows
//! cannot even be read as a path or a slot ([`HostRecords::refused`]), in
//! the [`VerifiedStore`] when they can but do not check
//! ([`VerifiedStore::rejections`]). Rows and slots of recent reads and
//! commits are kept (bounded, [`SEEN_ROWS`], [`SEEN_SLOTS`]) and not asked
//! for again: a row the host edits after the node kept it is not read,
//! and so not refused, until it is asked for again or a scrub
//! ([`HostRecords::read_all`]) reads it; after any refusal nothing kept
//! is trusted to be what the host holds, and it is all dropped.
//!
//! The node runs on it ([`crate::node::Node`]): its trusted memory holds
//! the root, its own bounded slot cache, the rows and slots kept here, and
//! the rows of the commits not yet written (bounded, SPEC.md §22.2). Only a
//! full read
//! ([`HostRecords::read_all`]: a snapshot for a lagging peer, a scrub, a
//! test) costs the table's size.
//!
//! [`VerifiedStore`]: backup_key_vault::vault::verified::VerifiedStore
//! [`VerifiedStore::rejections`]: backup_key_vault::vault::verified::VerifiedStore::rejections

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use backup_key_vault::fleet::FleetTransportKey;
use backup_key_vault::vault::tree::{self, MemoryTree, Node, NodeKey, TreeUpdate};
use backup_key_vault::vault::verified::{HostAnswer, RecordHost};
use backup_key_vault::vault::{RecordSlot, RecordTable};
use backup_key_vault::{RecordId, StoreError};

use crate::error::FleetError;
use crate::platform::{HostOp, HostStore, Table};
use crate::sealed::RowCipher;

/// Levels of the record tree kept together on the host: the rows of each
/// four-level subtree sort next to each other (SPEC.md §22.1, layout 4).
pub const TREE_PAGE_LEVELS: usize = 4;

/// Length of a tree row's key on the host.
pub const TREE_ROW_KEY_LEN: usize = 2 + backup_key_vault::types::RECORD_ID_LEN;

/// The host key of the tree node at `key` (SPEC.md §22.1, storage layout
/// 4): `u8 page || base(32) || u8 position`, where `page = depth / 4`,
/// `base` is the first `4 · page` bits of the node's path (the rest 0) and
/// `position` is the node's place in its four-level subtree, numbered
/// breadth first from 1 (`1`, then `2 + bit`, then `4 + two bits`, then
/// `8 + three bits`). A path's rows then sit in `⌊depth / 4⌋ + 1` runs of
/// neighbouring keys instead of `depth + 1` scattered ones, so a write
/// touches fewer of the host's pages. One-to-one: the page and the
/// position's top bit give the depth, the base and the position's other
/// bits the path.
pub fn tree_row_key(key: &NodeKey) -> [u8; TREE_ROW_KEY_LEN] {
    let depth = key.depth();
    let page = depth / TREE_PAGE_LEVELS;
    let bytes = key.to_bytes();
    let path = bytes.get(2..).unwrap_or_default();
    let bit = |i: usize| path.get(i / 8).map_or(0u8, |b| (b >> (7 - i % 8)) & 1);
    let mut out = [0u8; TREE_ROW_KEY_LEN];
    if let Some(p) = out.first_mut() {
        *p = page as u8;
    }
    let mut base = [0u8; backup_key_vault::types::RECORD_ID_LEN];
    base.copy_from_slice(path);
    let base = NodeKey::on_path(&RecordId(base), page * TREE_PAGE_LEVELS).to_bytes();
    if let (Some(dst), Some(src)) = (
        out.get_mut(1..1 + backup_key_vault::types::RECORD_ID_LEN),
        base.get(2..),
    ) {
        dst.copy_from_slice(src);
    }
    let mut position = 1u8;
    for i in page * TREE_PAGE_LEVELS..depth {
        position = (position << 1) | bit(i);
    }
    if let Some(p) = out.last_mut() {
        *p = position;
    }
    out
}

/// Why [`HostRecords`] could not read a record's rows as a path and a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowRefusal {
    /// A tree row that is not a node (§8.5, "Node rows").
    TreeRow,
    /// Tree rows that do not fit together: a node whose hash is not the
    /// one its parent names, or a named child with no row.
    BrokenPath,
    /// A slot row that does not open under the node's key and the record's
    /// id (edited, or moved from another id or another node).
    SlotRow,
    /// Read in full ([`HostRecords::read_all`]): the slots do not make the
    /// root the node trusts.
    WrongRoot,
    /// Read in full: tree rows that the root's tree does not have, or
    /// rows it has that are missing.
    StrayRows,
}

/// What a node's records hold, kept up to date as commands apply (and
/// committed to by the manifest), so that reporting it (`GET /metrics`)
/// does not read the records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Records that can be recovered.
    pub live: u64,
    /// Tombstones: records erased (guesses exhausted) or deleted.
    pub erased: u64,
    /// Charges recorded on the live records (each record's `charges`:
    /// every attempt ever charged to its generation).
    pub charges: u64,
}

impl RecordStats {
    /// Counts a whole table.
    pub fn of(table: &RecordTable) -> Self {
        let mut stats = Self::default();
        for (_, slot) in table.iter() {
            stats.add(Some(slot));
        }
        stats
    }

    /// Counts a slot in.
    pub fn add(&mut self, slot: Option<&RecordSlot>) {
        match slot {
            Some(RecordSlot::Live(r)) => {
                self.live += 1;
                self.charges = self.charges.saturating_add(r.charges);
            }
            Some(RecordSlot::Erased { .. }) => self.erased += 1,
            None => {}
        }
    }

    /// Counts a slot out.
    pub fn remove(&mut self, slot: Option<&RecordSlot>) {
        match slot {
            Some(RecordSlot::Live(r)) => {
                self.live = self.live.saturating_sub(1);
                self.charges = self.charges.saturating_sub(r.charges);
            }
            Some(RecordSlot::Erased { .. }) => self.erased = self.erased.saturating_sub(1),
            None => {}
        }
    }
}

/// A [`RecordHost`] over a node's [`HostStore`], with the commits not yet
/// written staged in memory.
pub struct HostRecords<H> {
    host: H,
    rows: RowCipher,
    /// Tree rows changed by commits not yet taken (`None`: remove the row).
    tree: BTreeMap<NodeKey, Option<Node>>,
    /// Slots changed by commits not yet taken, in clear until sealed.
    slots: BTreeMap<RecordId, Zeroizing<Vec<u8>>>,
    refused: Cell<u64>,
    last_refusal: Cell<Option<RowRefusal>>,
    /// The host's error for the last read it could not make (its text
    /// names the file), for the node's log when it stops on it.
    read_error: RefCell<Option<String>>,
    /// How deep the rows read in one round trip go: a little past the
    /// deepest path lately (paths are about log2(records) + 1 deep).
    depth_hint: Cell<usize>,
    /// Tree rows read from the host or written by commits lately (`None`:
    /// no row), so that the next fetch near them does not ask again: the
    /// upper levels, which every path shares, and a record read and then
    /// committed. They are the host's rows as it handed them over, or the
    /// node's own: a proof built from them is checked like any other.
    seen_rows: RefCell<Recent<NodeKey, Option<Node>>>,
    /// Slots opened or committed lately, in clear, likewise.
    seen_slots: RefCell<Recent<RecordId, Zeroizing<Vec<u8>>>>,
}

/// The least and the first depth hint.
const MIN_DEPTH_HINT: usize = 8;

/// Tree rows a node keeps from recent fetches and commits, per generation
/// (there are two: at most 4,096 rows, about 0.5 MiB of trusted memory).
pub const SEEN_ROWS: usize = 2_048;

/// Slots a node keeps from recent fetches and commits, per generation (two):
/// enough for the records of the requests in flight at once in a round.
pub const SEEN_SLOTS: usize = 128;

/// A bounded map of what was used lately: two generations of at most `cap`
/// entries; a hit in the older moves to the newer, and when the newer is
/// full it becomes the older and the older is dropped. What was used again
/// lately stays; a put always holds the newest value for its key.
struct Recent<K, V> {
    new: BTreeMap<K, V>,
    old: BTreeMap<K, V>,
    cap: usize,
}

impl<K: Ord + Clone, V: Clone> Recent<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            new: BTreeMap::new(),
            old: BTreeMap::new(),
            cap: cap.max(1),
        }
    }

    fn contains(&self, key: &K) -> bool {
        self.new.contains_key(key) || self.old.contains_key(key)
    }

    fn get(&mut self, key: &K) -> Option<V> {
        if let Some(value) = self.new.get(key) {
            return Some(value.clone());
        }
        let value = self.old.remove(key)?;
        self.put(key.clone(), value.clone());
        Some(value)
    }

    fn put(&mut self, key: K, value: V) {
        if self.new.len() >= self.cap && !self.new.contains_key(&key) {
            // The older generation goes, and with it any older value of
            // `key` (the newer one has none).
            self.old = std::mem::take(&mut self.new);
            self.old.remove(&key);
        }
        self.new.insert(key, value);
    }

    fn clear(&mut self) {
        self.new.clear();
        self.old.clear();
    }

    fn len(&self) -> usize {
        self.new.len() + self.old.len()
    }
}

impl<H> fmt::Debug for HostRecords<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostRecords")
            .field("staged_rows", &self.tree.len())
            .field("staged_slots", &self.slots.len())
            .field("seen_rows", &self.seen_rows.borrow().len())
            .field("seen_slots", &self.seen_slots.borrow().len())
            .field("refused", &self.refused.get())
            .finish_non_exhaustive()
    }
}

impl<H: HostStore> HostRecords<H> {
    /// The records of member `node` of the fleet with `key`, on `host`.
    pub fn new(key: &FleetTransportKey, node: u64, host: H) -> Self {
        Self::with_sealing(key, node, host, true)
    }

    /// As [`Self::new`]; with `sealing = false` the slots are written and
    /// read in clear, for tests that show what sealing prevents (the
    /// node's `unsealed_disk`). The tree and its root are checked either
    /// way.
    pub fn with_sealing(key: &FleetTransportKey, node: u64, host: H, sealing: bool) -> Self {
        Self {
            host,
            rows: RowCipher::new(key, node, sealing),
            tree: BTreeMap::new(),
            slots: BTreeMap::new(),
            refused: Cell::new(0),
            last_refusal: Cell::new(None),
            read_error: RefCell::new(None),
            depth_hint: Cell::new(MIN_DEPTH_HINT),
            seen_rows: RefCell::new(Recent::new(SEEN_ROWS)),
            seen_slots: RefCell::new(Recent::new(SEEN_SLOTS)),
        }
    }

    /// The host, for inspection.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The host's error for the last read it could not make since this
    /// was last taken, if one failed: a disk that cannot be read, not a
    /// host that lies (that is a refusal, [`Self::refused`]).
    pub fn take_read_error(&self) -> Option<String> {
        self.read_error
            .try_borrow_mut()
            .ok()
            .and_then(|mut last| last.take())
    }

    /// Keeps a failed read's error and gives the store's opaque one.
    fn unreadable(&self, e: crate::platform::HostError) -> StoreError {
        if let Ok(mut last) = self.read_error.try_borrow_mut() {
            *last = Some(e.0);
        }
        StoreError
    }

    /// Records whose rows could not be read as a path and a slot so far.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// Why the latest such read was refused.
    pub fn last_refusal(&self) -> Option<RowRefusal> {
        self.last_refusal.get()
    }

    /// Rows (tree rows and slots) changed by commits and staged, not yet
    /// taken.
    pub fn staged(&self) -> usize {
        self.tree.len() + self.slots.len()
    }

    /// The staged rows as host operations (slots sealed, tree rows in
    /// clear), for the node to write together with the manifest that
    /// carries the root they lead to; staging starts empty again. If
    /// sealing fails, nothing is taken: the rows stay staged.
    pub fn take_ops<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
    ) -> Result<Vec<HostOp>, FleetError> {
        let mut ops = Vec::with_capacity(self.tree.len() + self.slots.len());
        for (key, node) in &self.tree {
            let key = tree_row_key(key).to_vec();
            ops.push(match node {
                Some(node) => HostOp::Put {
                    table: Table::Tree,
                    key,
                    value: node.to_bytes().to_vec(),
                },
                None => HostOp::Delete {
                    table: Table::Tree,
                    key,
                },
            });
        }
        for (id, slot) in &self.slots {
            let value = self
                .rows
                .seal(rng, Table::Slots, id.as_bytes(), &[], slot)?;
            ops.push(HostOp::Put {
                table: Table::Slots,
                key: id.as_bytes().to_vec(),
                value,
            });
        }
        self.tree.clear();
        self.slots.clear();
        Ok(ops)
    }

    /// Drops the rows and slots kept from recent reads and commits (not
    /// what is staged): after an answer was refused, so that a row that
    /// did not check is asked for again rather than kept. Rows and slots
    /// are kept as the host hands them over, before the root checks them.
    pub fn forget_kept(&self) {
        if let Ok(mut rows) = self.seen_rows.try_borrow_mut() {
            rows.clear();
        }
        if let Ok(mut slots) = self.seen_slots.try_borrow_mut() {
            slots.clear();
        }
    }

    /// Drops what is staged: the commits were not written (the node stops
    /// and starts again from its disk).
    pub fn clear_staged(&mut self) {
        self.tree.clear();
        self.slots.clear();
        // What was seen may include those commits.
        self.seen_rows.get_mut().clear();
        self.seen_slots.get_mut().clear();
    }

    /// Every record, read from the host in full (with what is staged) and
    /// checked: every slot must open under its id and decode, the slots
    /// must make `root`, and the tree rows must be exactly that tree's, no
    /// more, no fewer. A refusal is counted as any other. Costs the table's
    /// size in time and memory: for a snapshot sent to a lagging peer, a
    /// scrub and tests, never for a request. `Err` if the host could not
    /// read its disk.
    pub fn read_all(
        &self,
        root: &tree::Hash,
    ) -> Result<Result<RecordTable, RowRefusal>, FleetError> {
        let host_err = |e: crate::platform::HostError| FleetError::Disk(e.0);
        let mut table = RecordTable::new();
        let mut tree = MemoryTree::new();
        let mut sealed: BTreeMap<Vec<u8>, Vec<u8>> = self
            .host
            .scan(Table::Slots)
            .map_err(host_err)?
            .into_iter()
            .collect();
        for id in self.slots.keys() {
            sealed.remove(id.as_bytes().as_slice());
        }
        let mut plain: Vec<(RecordId, Zeroizing<Vec<u8>>)> = Vec::with_capacity(sealed.len());
        for (key, value) in &sealed {
            let Ok(id) = <[u8; 32]>::try_from(key.as_slice()) else {
                return Ok(Err(self.refused_with(RowRefusal::SlotRow)));
            };
            match self.rows.open(Table::Slots, key, &[], value, "slot row") {
                Ok(bytes) => plain.push((RecordId(id), bytes)),
                Err(_) => return Ok(Err(self.refused_with(RowRefusal::SlotRow))),
            }
        }
        plain.extend(self.slots.iter().map(|(id, bytes)| (*id, bytes.clone())));
        for (id, bytes) in plain {
            let Ok(slot) = RecordSlot::from_bytes(&bytes) else {
                return Ok(Err(self.refused_with(RowRefusal::SlotRow)));
            };
            if tree.set(&id, &tree::value_hash(&bytes)).is_err() {
                return Ok(Err(self.refused_with(RowRefusal::WrongRoot)));
            }
            table.restore(id, slot);
        }
        if tree.root() != *root {
            return Ok(Err(self.refused_with(RowRefusal::WrongRoot)));
        }
        let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = self
            .host
            .scan(Table::Tree)
            .map_err(host_err)?
            .into_iter()
            .collect();
        for (key, node) in &self.tree {
            let key = tree_row_key(key).to_vec();
            match node {
                Some(node) => rows.insert(key, node.to_bytes().to_vec()),
                None => rows.remove(&key),
            };
        }
        let exact = rows.len() == tree.node_count()
            && tree.nodes().all(|(key, node)| {
                rows.get(tree_row_key(key).as_ref())
                    .is_some_and(|row| row.as_slice() == node.to_bytes().as_slice())
            });
        if !exact {
            return Ok(Err(self.refused_with(RowRefusal::StrayRows)));
        }
        Ok(Ok(table))
    }

    /// The host operations that replace every record with `table` (a
    /// snapshot from the leader): both tables cleared, then the tree built
    /// from nothing and the slots sealed. Drops what is staged. Returns the
    /// operations and the new root.
    pub fn replace_ops<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        table: &RecordTable,
    ) -> Result<(Vec<HostOp>, tree::Hash), FleetError> {
        self.clear_staged();
        let mut tree = MemoryTree::new();
        let mut ops = vec![HostOp::Clear(Table::Tree), HostOp::Clear(Table::Slots)];
        for (id, slot) in table.iter() {
            let bytes = slot.to_bytes();
            tree.set(id, &tree::value_hash(&bytes))
                .map_err(|_| FleetError::Disk("the record tree could not be built".into()))?;
            let value = self
                .rows
                .seal(rng, Table::Slots, id.as_bytes(), &[], &bytes)?;
            ops.push(HostOp::Put {
                table: Table::Slots,
                key: id.as_bytes().to_vec(),
                value,
            });
        }
        for (key, node) in tree.nodes() {
            ops.push(HostOp::Put {
                table: Table::Tree,
                key: tree_row_key(key).to_vec(),
                value: node.to_bytes().to_vec(),
            });
        }
        Ok((ops, tree.root()))
    }

    fn refused_with(&self, why: RowRefusal) -> RowRefusal {
        let _ = self.refuse(why);
        why
    }

    fn refuse(&self, why: RowRefusal) -> StoreError {
        self.refused.set(self.refused.get().saturating_add(1));
        self.last_refusal.set(Some(why));
        self.forget_kept();
        StoreError
    }

    /// A tree row: staged, or seen lately (which holds every row read
    /// ahead that parsed, so none is parsed twice), or among the rows read
    /// ahead (one that is not a node is refused here), or asked for.
    fn node(
        &self,
        key: &NodeKey,
        ahead: &BTreeMap<NodeKey, Option<Vec<u8>>>,
    ) -> Result<Option<Node>, StoreError> {
        if let Some(staged) = self.tree.get(key) {
            return Ok(*staged);
        }
        if let Some(seen) = self.seen_rows.borrow_mut().get(key) {
            return Ok(seen);
        }
        let asked;
        let row = match ahead.get(key) {
            Some(row) => row.as_deref(),
            None => {
                // The host could not read its disk: unavailable, not a lie.
                asked = self
                    .host
                    .get(Table::Tree, &tree_row_key(key))
                    .map_err(|e| self.unreadable(e))?;
                asked.as_deref()
            }
        };
        let node = match row {
            None => None,
            Some(bytes) => {
                Some(Node::from_bytes(bytes).map_err(|_| self.refuse(RowRefusal::TreeRow))?)
            }
        };
        self.seen_rows.borrow_mut().put(*key, node);
        Ok(node)
    }

    /// A slot: staged, or the row the host handed over (`Some(row)`: it
    /// was asked for), opened, or seen lately, or asked for now.
    fn slot(
        &self,
        id: &RecordId,
        row: Option<Option<Vec<u8>>>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        if let Some(staged) = self.slots.get(id) {
            return Ok(Some(staged.clone()));
        }
        let row = match row {
            Some(row) => row,
            None => {
                if let Some(seen) = self.seen_slots.borrow_mut().get(id) {
                    return Ok(Some(seen));
                }
                self.host
                    .get(Table::Slots, id.as_bytes())
                    .map_err(|e| self.unreadable(e))?
            }
        };
        let Some(sealed) = row else {
            return Ok(None);
        };
        let slot = self
            .rows
            .open(Table::Slots, id.as_bytes(), &[], &sealed, "slot row")
            .map_err(|_| self.refuse(RowRefusal::SlotRow))?;
        self.seen_slots.borrow_mut().put(*id, slot.clone());
        Ok(Some(slot))
    }
}

impl<H: HostStore> RecordHost for HostRecords<H> {
    /// The record's path and slot, read from the host in one answer
    /// ([`HostStore::get_many`]: the rows on the id's path down to a little
    /// past the deepest path lately, and the slot), leaving out what is
    /// staged or was seen lately (nothing is asked if that is all); a
    /// deeper path asks for the rest one row at a time.
    fn fetch(&self, id: &RecordId) -> Result<HostAnswer, StoreError> {
        let hint = self.depth_hint.get().clamp(MIN_DEPTH_HINT, tree::MAX_DEPTH);
        // The path, and the siblings near its end lately (the deepest
        // sibling is sent opened, so its row is read too).
        let mut path: Vec<NodeKey> = (0..=hint).map(|d| NodeKey::on_path(id, d)).collect();
        let last = hint.saturating_sub(2);
        for d in last.saturating_sub(2).max(1)..=(last + 2).min(tree::MAX_DEPTH) {
            let mut other = *id.as_bytes();
            if let Some(byte) = other.get_mut((d - 1) / 8) {
                *byte ^= 0x80 >> ((d - 1) % 8);
            }
            path.push(NodeKey::on_path(&RecordId(other), d));
        }
        {
            // `get`, which moves what it finds to the newer generation, so
            // that the keys left out stay kept while this fetch goes on.
            let mut seen = self.seen_rows.borrow_mut();
            path.retain(|k| !self.tree.contains_key(k) && seen.get(k).is_none());
        }
        let ask_slot = !self.slots.contains_key(id) && !self.seen_slots.borrow().contains(id);
        let mut keys: Vec<(Table, Vec<u8>)> = path
            .iter()
            .map(|k| (Table::Tree, tree_row_key(k).to_vec()))
            .collect();
        if ask_slot {
            keys.push((Table::Slots, id.as_bytes().to_vec()));
        }
        let mut rows = if keys.is_empty() {
            Vec::new()
        } else {
            self.host.get_many(&keys).map_err(|e| self.unreadable(e))?
        };
        if rows.len() != keys.len() {
            return Err(StoreError);
        }
        let slot_row = if ask_slot { rows.pop() } else { None };
        let ahead: BTreeMap<NodeKey, Option<Vec<u8>>> = path.into_iter().zip(rows).collect();
        {
            // Kept, the rows the path did not use too (the next fetch need
            // not ask for them again); a row that is not a node is refused
            // if and when a path uses it.
            let mut seen = self.seen_rows.borrow_mut();
            for (key, row) in &ahead {
                match row {
                    None => seen.put(*key, None),
                    Some(bytes) => {
                        if let Ok(node) = Node::from_bytes(bytes) {
                            seen.put(*key, Some(node));
                        }
                    }
                }
            }
        }
        let proof = match tree::prove(|key| self.node(key, &ahead), id)? {
            Ok(proof) => proof,
            Err(_) => return Err(self.refuse(RowRefusal::BrokenPath)),
        };
        let depth = proof.depth();
        self.depth_hint
            .set((depth + 2).max(hint.saturating_sub(1)).min(tree::MAX_DEPTH));
        Ok(HostAnswer {
            slot: self.slot(id, slot_row)?,
            proof: proof.to_bytes(),
        })
    }

    fn store(&mut self, id: &RecordId, slot: &[u8], update: &TreeUpdate) -> Result<(), StoreError> {
        // Seen as they will be on the host once written, so what is seen
        // never falls behind the tree.
        let seen_rows = self.seen_rows.get_mut();
        for (key, node) in &update.writes {
            self.tree.insert(*key, *node);
            seen_rows.put(*key, *node);
        }
        let slot = Zeroizing::new(slot.to_vec());
        self.seen_slots.get_mut().put(*id, slot.clone());
        self.slots.insert(*id, slot);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::platform::{MemHost, MemImage};
    use backup_key_vault::suite::StretchingParams;
    use backup_key_vault::vault::verified::{HostRejection, VerifiedStore};
    use backup_key_vault::vault::{
        Applied, Command, RecordPayload, RecordStore, RecordTable, Refusal,
    };
    use backup_key_vault::FleetSecrets;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn key() -> FleetTransportKey {
        FleetSecrets::generate(&mut ChaCha20Rng::seed_from_u64(7)).fleet_transport_key()
    }

    /// Ids spread as an app's hashed account ids are.
    fn id(n: u8) -> RecordId {
        use sha2::{Digest, Sha256};
        RecordId(Sha256::digest([n]).into())
    }

    /// The bit of `id` at `depth` (most significant first).
    fn bit(id: &RecordId, depth: usize) -> u8 {
        (id.as_bytes()[depth / 8] >> (7 - depth % 8)) & 1
    }

    fn register(n: u8) -> Command {
        Command::Register {
            record_id: id(n),
            replaces: None,
            generation: 1,
            payload: RecordPayload {
                oprf_nonce: [n; 32],
                registration: [2; 192],
                wrapped_key: [3; 48],
                stretching: StretchingParams::default(),
                max_attempts: 3,
            },
        }
    }

    fn charge(n: u8) -> Command {
        Command::ChargeAttempt {
            record_id: id(n),
            generation: 1,
        }
    }

    type Store = VerifiedStore<HostRecords<MemHost>>;

    fn store(host: &MemHost, root: tree::Hash) -> Store {
        VerifiedStore::new(HostRecords::new(&key(), 1, host.clone()), root, 0)
    }

    /// Writes what is staged, as the node does with its manifest.
    fn flush(s: &mut Store, rng: &mut ChaCha20Rng) {
        let ops = s.host_mut().take_ops(rng).unwrap();
        s.host().host().clone().apply(&ops).unwrap();
    }

    fn refusals(s: &Store) -> u64 {
        s.rejections() + s.host().refused()
    }

    /// Sixteen records registered and written.
    fn filled(rng: &mut ChaCha20Rng) -> (MemHost, Store, RecordTable) {
        let host = MemHost::new();
        let mut s = store(&host, tree::EMPTY);
        let mut table = RecordTable::new();
        for n in 0..16 {
            assert_eq!(s.commit(&register(n)), Ok(table.apply(&register(n))));
        }
        flush(&mut s, rng);
        (host, s, table)
    }

    #[test]
    fn records_written_through_the_host_load_back_under_the_root_and_only_sealed() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (host, mut s, mut table) = filled(&mut rng);
        // Commits before a flush are seen by the next ones (staged rows).
        for n in [3, 3, 9] {
            assert_eq!(s.commit(&charge(n)), Ok(table.apply(&charge(n))));
        }
        assert_eq!(s.load(&id(3)).unwrap().as_ref(), table.get(&id(3)));
        // Two slots and the tree rows on their paths wait, and are what
        // the write carries.
        let staged = s.host().staged();
        let ops = s.host_mut().take_ops(&mut rng).unwrap();
        assert_eq!(ops.len(), staged);
        let slots = |op: &HostOp| {
            matches!(
                op,
                HostOp::Put {
                    table: Table::Slots,
                    ..
                }
            )
        };
        assert_eq!(ops.iter().filter(|op| slots(op)).count(), 2);
        assert!(staged > 2 + 2, "the paths' rows are staged too: {staged}");
        host.clone().apply(&ops).unwrap();
        assert_eq!(s.host().staged(), 0);
        // A node starting over with only the root reads every record back.
        let fresh = store(&host, s.root());
        for n in 0..20 {
            assert_eq!(fresh.load(&id(n)).unwrap().as_ref(), table.get(&id(n)));
        }
        assert_eq!(refusals(&fresh), 0);
        // The host holds the slots sealed, the tree rows in clear: about
        // two rows per record.
        let image = host.image();
        let slots = &image[&Table::Slots];
        assert_eq!(slots.len(), 16);
        for (k, v) in slots {
            let plain = table
                .get(&RecordId(k.as_slice().try_into().unwrap()))
                .unwrap()
                .to_bytes();
            assert_eq!(v.len(), plain.len() + 24 + 16);
            assert!(!v.windows(32).any(|w| plain[..].windows(32).any(|p| p == w)));
        }
        let rows = &image[&Table::Tree];
        assert!(rows.len() >= 16 && rows.len() < 64, "{}", rows.len());
        // Row for row the tree of the records, under layout 4's keys.
        let mut tree = MemoryTree::new();
        for (id, slot) in table.iter() {
            tree.set(id, &tree::value_hash(&slot.to_bytes())).unwrap();
        }
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = tree
            .nodes()
            .map(|(k, n)| (tree_row_key(k).to_vec(), n.to_bytes().to_vec()))
            .collect();
        assert_eq!(rows, &expected);
    }

    /// Layout 4's keys: one row per key (no two nodes share one), the
    /// rows of a four-level subtree next to each other, and a path in
    /// `depth / 4 + 1` such runs.
    #[test]
    fn tree_row_keys_are_one_to_one_and_keep_each_four_levels_together() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut keys = BTreeMap::new();
        for _ in 0..64 {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            let id = RecordId(bytes);
            for depth in 0..=tree::MAX_DEPTH {
                let key = NodeKey::on_path(&id, depth);
                let row = tree_row_key(&key);
                if let Some(other) = keys.insert(row, key) {
                    assert_eq!(other, key, "two nodes under one host key");
                }
                // The first byte is the page, the last the position.
                assert_eq!(usize::from(row[0]), depth / 4);
                let position = row[TREE_ROW_KEY_LEN - 1];
                assert_eq!(7 - position.leading_zeros() as usize, depth % 4);
            }
            // The path's rows under one (page, base) prefix are the depths
            // of one page: 65 runs for the whole path of 257 nodes.
            let runs: std::collections::BTreeSet<Vec<u8>> = (0..=tree::MAX_DEPTH)
                .map(|d| tree_row_key(&NodeKey::on_path(&id, d))[..33].to_vec())
                .collect();
            assert_eq!(runs.len(), tree::MAX_DEPTH / 4 + 1);
        }
        // A four-level subtree sorts as one run: no row of another page or
        // base falls between its first and last row.
        let id = RecordId([0xa5; 32]);
        let first = tree_row_key(&NodeKey::on_path(&id, 8));
        let last = tree_row_key(&NodeKey::on_path(&id, 11));
        for (row, key) in &keys {
            if (first..=last).contains(row) {
                assert_eq!(key.depth() / 4, 2);
                assert_eq!(row[..33], first[..33]);
            }
        }
        let mut root = [0u8; TREE_ROW_KEY_LEN];
        root[TREE_ROW_KEY_LEN - 1] = 1;
        assert_eq!(tree_row_key(&NodeKey::root()), root);
    }

    /// Runs `edit` on the host's rows, then expects `id(9)` to be refused
    /// and counted, and nothing released.
    fn refused_after(edit: impl FnOnce(&mut MemImage)) -> (Store, MemHost) {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (host, s, _) = filled(&mut rng);
        let fresh = store(&host, s.root());
        host.edit(edit).unwrap();
        assert_eq!(fresh.load(&id(9)), Err(StoreError));
        assert_eq!(refusals(&fresh), 1);
        (fresh, host)
    }

    fn leaf_key(image: &MemImage, n: u8) -> Vec<u8> {
        image[&Table::Tree]
            .iter()
            .find(|(_, v)| {
                matches!(Node::from_bytes(v), Ok(Node::Leaf { id: leaf, .. }) if leaf == id(n))
            })
            .map(|(k, _)| k.clone())
            .unwrap()
    }

    /// Acceptance (issue 18): a wrong leaf from the host is refused.
    #[test]
    fn a_wrong_leaf_is_refused() {
        let (s, _) = refused_after(|image| {
            let key = leaf_key(image, 9);
            let row = image.get_mut(&Table::Tree).unwrap().get_mut(&key).unwrap();
            *row.last_mut().unwrap() ^= 1;
        });
        assert_eq!(s.host().last_refusal(), Some(RowRefusal::BrokenPath));
        // The same leaf and its whole path rewritten to fit together: the
        // path then leads to another root.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (host, s, _) = filled(&mut rng);
        let mut other = store(&MemHost::new(), tree::EMPTY);
        for n in 0..16 {
            other.commit(&register(n)).unwrap();
        }
        other.commit(&charge(9)).unwrap();
        flush(&mut other, &mut rng);
        let forged = other.host().host().image();
        host.edit(|image| image.insert(Table::Tree, forged[&Table::Tree].clone()))
            .unwrap();
        let fresh = store(&host, s.root());
        assert_eq!(fresh.load(&id(9)), Err(StoreError));
        assert_eq!(
            fresh.last_rejection(),
            Some(HostRejection::Proof(tree::ProofError::RootMismatch))
        );
    }

    /// Acceptance (issue 18): a wrong sibling from the host is refused. The
    /// root row has no parent to check it against: only the root the node
    /// keeps catches a wrong sibling there.
    #[test]
    fn a_wrong_sibling_is_refused() {
        let (s, _) = refused_after(|image| {
            let root = tree_row_key(&NodeKey::root()).to_vec();
            let row = image.get_mut(&Table::Tree).unwrap().get_mut(&root).unwrap();
            // Row: version, tag, left (32), right (32). Change the child
            // off id(9)'s path: the sibling its proof carries.
            let at = if bit(&id(9), 0) == 0 { 65 } else { 33 };
            row[at] ^= 1;
        });
        assert_eq!(
            s.last_rejection(),
            Some(HostRejection::Proof(tree::ProofError::RootMismatch))
        );
        // The deepest sibling, which the proof carries opened: its parent
        // names another hash.
        let (s, _) = refused_after(|image| {
            let leaf = leaf_key(image, 9);
            let depth = (0..=tree::MAX_DEPTH)
                .find(|d| tree_row_key(&NodeKey::on_path(&id(9), *d))[..] == leaf[..])
                .unwrap();
            let mut other = *id(9).as_bytes();
            other[(depth - 1) / 8] ^= 0x80 >> ((depth - 1) % 8);
            let key = tree_row_key(&NodeKey::on_path(&RecordId(other), depth)).to_vec();
            let row = image.get_mut(&Table::Tree).unwrap().get_mut(&key).unwrap();
            row[40] ^= 1;
        });
        assert_eq!(s.host().last_refusal(), Some(RowRefusal::BrokenPath));
    }

    /// Acceptance (issue 18): a stale root, the whole disk or one record's
    /// rows taken from an older copy, is refused: the spent attempts do not
    /// come back.
    #[test]
    fn a_stale_tree_or_slot_is_refused_and_no_attempt_returns() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (host, mut s, _) = filled(&mut rng);
        let before = host.image();
        for _ in 0..3 {
            assert!(matches!(s.commit(&charge(9)), Ok(Applied::Charged { .. })));
        }
        flush(&mut s, &mut rng);
        assert_eq!(
            s.commit(&charge(9)),
            Ok(Applied::Refused(Refusal::Exhausted))
        );
        // The whole disk rolled back.
        let after = host.image();
        host.restore(before.clone());
        let fresh = store(&host, s.root());
        assert_eq!(fresh.load(&id(9)), Err(StoreError));
        assert_eq!(fresh.load(&id(1)), Err(StoreError));
        assert_eq!(
            fresh.last_rejection(),
            Some(HostRejection::Proof(tree::ProofError::RootMismatch))
        );
        // Only the slot rolled back (the tree is current): it opens, but
        // does not hash to its leaf.
        host.restore(after.clone());
        let old_slot = before[&Table::Slots][id(9).as_bytes().as_slice()].clone();
        host.edit(|image| {
            image
                .get_mut(&Table::Slots)
                .unwrap()
                .insert(id(9).as_bytes().to_vec(), old_slot)
        })
        .unwrap();
        let fresh = store(&host, s.root());
        assert_eq!(fresh.load(&id(9)), Err(StoreError));
        assert_eq!(fresh.last_rejection(), Some(HostRejection::WrongSlot));
        assert!(fresh.load(&id(1)).unwrap().is_some());
    }

    #[test]
    fn a_slot_moved_to_another_id_or_from_another_node_does_not_open() {
        let (s, _) = refused_after(|image| {
            let slots = image.get_mut(&Table::Slots).unwrap();
            let other = slots[id(1).as_bytes().as_slice()].clone();
            slots.insert(id(9).as_bytes().to_vec(), other);
        });
        assert_eq!(s.host().last_refusal(), Some(RowRefusal::SlotRow));
        // Node 2's own slot for the same record, under node 1's key: no.
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (host, s, _) = filled(&mut rng);
        let mut two = HostRecords::new(&key(), 2, MemHost::new());
        let slot = s.load(&id(9)).unwrap().unwrap().to_bytes();
        two.slots.insert(id(9), Zeroizing::new(slot.to_vec()));
        let ops = two.take_ops(&mut rng).unwrap();
        let HostOp::Put { value, .. } = &ops[0] else {
            panic!("a put")
        };
        let value = value.clone();
        host.edit(|image| {
            image
                .get_mut(&Table::Slots)
                .unwrap()
                .insert(id(9).as_bytes().to_vec(), value)
        })
        .unwrap();
        let fresh = store(&host, s.root());
        assert_eq!(fresh.load(&id(9)), Err(StoreError));
        assert_eq!(fresh.host().last_refusal(), Some(RowRefusal::SlotRow));
    }

    #[test]
    fn a_row_that_is_not_a_node_is_refused() {
        let (s, _) = refused_after(|image| {
            let root = tree_row_key(&NodeKey::root()).to_vec();
            image
                .get_mut(&Table::Tree)
                .unwrap()
                .insert(root, vec![1, 2, 3]);
        });
        assert_eq!(s.host().last_refusal(), Some(RowRefusal::TreeRow));
    }

    /// A host that counts its calls, to see a record read in one answer.
    #[derive(Clone, Default)]
    struct Counting(MemHost, std::sync::Arc<std::sync::atomic::AtomicU64>);

    impl HostStore for Counting {
        fn scan(&self, t: Table) -> Result<Vec<crate::platform::Row>, crate::platform::HostError> {
            self.0.scan(t)
        }
        fn get(&self, t: Table, k: &[u8]) -> Result<Option<Vec<u8>>, crate::platform::HostError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.get(t, k)
        }
        fn get_many(
            &self,
            keys: &[(Table, Vec<u8>)],
        ) -> Result<Vec<Option<Vec<u8>>>, crate::platform::HostError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            keys.iter().map(|(t, k)| self.0.get(*t, k)).collect()
        }
        fn apply(&mut self, ops: &[HostOp]) -> Result<(), crate::platform::HostError> {
            self.0.apply(ops)
        }
    }

    /// A record's path and slot come in one answer once the read-ahead
    /// depth has caught up with the tree; a path deeper than it (ids that
    /// share 100 bits) is still read whole, a row at a time past it.
    #[test]
    fn a_record_is_read_in_one_answer_and_deep_paths_still_load() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let host = Counting::default();
        let records = HostRecords::new(&key(), 1, host.clone());
        let mut s = VerifiedStore::new(records, tree::EMPTY, 0);
        let mut table = RecordTable::new();
        let deep = |n: u8| {
            let mut id = [0x5a; 32];
            id[13] = n;
            RecordId(id)
        };
        for n in 0..4u8 {
            let mut c = register(n);
            if let Command::Register { record_id, .. } = &mut c {
                *record_id = deep(n);
            }
            assert_eq!(s.commit(&c), Ok(table.apply(&c)));
        }
        let ops = s.host_mut().take_ops(&mut rng).unwrap();
        host.clone().apply(&ops).unwrap();
        let fresh = VerifiedStore::new(HostRecords::new(&key(), 1, host.clone()), s.root(), 0);
        let calls = || host.1.load(std::sync::atomic::Ordering::Relaxed);
        let before = calls();
        assert_eq!(fresh.load(&deep(2)).unwrap().as_ref(), table.get(&deep(2)));
        assert!(calls() - before > 1, "a 100-deep path past the hint");
        let before = calls();
        assert_eq!(fresh.load(&deep(3)).unwrap().as_ref(), table.get(&deep(3)));
        assert_eq!(calls() - before, 1, "the hint followed the depth");
        assert_eq!(fresh.rejections() + fresh.host().refused(), 0);
    }

    /// A record read, then committed, then read again asks the host once:
    /// the read's rows and slot are kept, and the commit's are seen as
    /// they will be written. (The store's own slot cache is off here.)
    #[test]
    fn a_record_read_then_committed_asks_the_host_once() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let host = Counting::default();
        let mut s = VerifiedStore::new(HostRecords::new(&key(), 1, host.clone()), tree::EMPTY, 0);
        let mut table = RecordTable::new();
        for n in 0..64u8 {
            assert_eq!(s.commit(&register(n)), Ok(table.apply(&register(n))));
        }
        let ops = s.host_mut().take_ops(&mut rng).unwrap();
        host.clone().apply(&ops).unwrap();
        let mut s = VerifiedStore::new(HostRecords::new(&key(), 1, host.clone()), s.root(), 0);
        let calls = || host.1.load(std::sync::atomic::Ordering::Relaxed);
        let before = calls();
        assert_eq!(s.load(&id(9)).unwrap().as_ref(), table.get(&id(9)));
        assert_eq!(calls() - before, 1);
        assert_eq!(s.commit(&charge(9)), Ok(table.apply(&charge(9))));
        assert_eq!(s.load(&id(9)).unwrap().as_ref(), table.get(&id(9)));
        assert_eq!(s.commit(&charge(9)), Ok(table.apply(&charge(9))));
        assert_eq!(
            calls() - before,
            1,
            "the commits and the second read asked again"
        );
        // Written, and read back by a node starting over.
        let ops = s.host_mut().take_ops(&mut rng).unwrap();
        host.clone().apply(&ops).unwrap();
        let fresh = VerifiedStore::new(HostRecords::new(&key(), 1, host.clone()), s.root(), 0);
        assert_eq!(fresh.load(&id(9)).unwrap().as_ref(), table.get(&id(9)));
        for s in [&s, &fresh] {
            assert_eq!(s.rejections() + s.host().refused(), 0);
        }
    }

    /// What a store keeps from its reads and commits never falls behind
    /// the tree, and stays bounded: random registrations, charges, writes
    /// and reads over more records than it keeps rows and slots for, each
    /// read the model's, nothing refused.
    #[test]
    fn what_is_seen_follows_every_commit_and_write_and_stays_bounded() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let host = MemHost::new();
        let mut s = store(&host, tree::EMPTY);
        let mut table = RecordTable::new();
        let ids: Vec<RecordId> = (0..3_000)
            .map(|_| {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                RecordId(b)
            })
            .collect();
        let on = |c: Command, id: RecordId| match c {
            Command::Register {
                replaces,
                generation,
                payload,
                ..
            } => Command::Register {
                record_id: id,
                replaces,
                generation,
                payload,
            },
            _ => Command::ChargeAttempt {
                record_id: id,
                generation: 1,
            },
        };
        for &id in &ids {
            let c = on(register(1), id);
            assert_eq!(s.commit(&c), Ok(table.apply(&c)));
        }
        flush(&mut s, &mut rng);
        for _ in 0..4_000 {
            let id = ids[rng.next_u32() as usize % ids.len()];
            match rng.next_u32() % 8 {
                0 => flush(&mut s, &mut rng),
                1..=3 => {
                    let c = on(charge(1), id);
                    assert_eq!(s.commit(&c), Ok(table.apply(&c)));
                }
                _ => assert_eq!(s.load(&id).unwrap().as_ref(), table.get(&id)),
            }
            let seen = s.host().seen_rows.borrow().len();
            assert!(seen <= 2 * SEEN_ROWS, "{seen} rows kept");
            assert!(s.host().seen_slots.borrow().len() <= 2 * SEEN_SLOTS);
        }
        assert_eq!(refusals(&s), 0);
        flush(&mut s, &mut rng);
        assert_eq!(s.host().read_all(&s.root()).unwrap().unwrap(), table);
    }

    /// A row the host changes under a running node, after the node kept
    /// it, is not used: the node's copy is the one the root vouches for.
    /// A scrub reads the host's rows, not the kept ones, and finds it.
    #[test]
    fn a_row_changed_after_it_was_kept_is_found_by_a_scrub() {
        let mut rng = ChaCha20Rng::seed_from_u64(15);
        let (host, s, table) = filled(&mut rng);
        assert_eq!(s.load(&id(9)).unwrap().as_ref(), table.get(&id(9)));
        host.edit(|image| {
            let key = leaf_key(image, 9);
            image.get_mut(&Table::Tree).unwrap().get_mut(&key).unwrap()[40] ^= 1;
        })
        .unwrap();
        assert_eq!(s.load(&id(9)).unwrap().as_ref(), table.get(&id(9)));
        assert_eq!(
            s.host().read_all(&s.root()).unwrap(),
            Err(RowRefusal::StrayRows)
        );
    }
}
