//! The Raft log as raft-rs reads it: an in-memory mirror of what the node
//! has made durable in redb ([`crate::disk`]). The node writes to disk
//! first, then here; raft-rs only reads.
//!
//! The records are not here: the host keeps them (SPEC.md §8.5), so a
//! snapshot for a lagging peer is read from the host when the engine asks
//! for one ([`LogStore::snapshot`] notes the request and answers "not
//! yet"; the node prepares it, and the engine sends it at its next try).

use std::cell::Cell;

use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{Error, GetEntriesContext, RaftState, Storage, StorageError};

/// The log after the latest snapshot, the snapshot itself, and the hard
/// state.
#[derive(Default)]
pub struct LogStore {
    pub(crate) hard_state: HardState,
    pub(crate) conf_state: ConfState,
    /// Where the log was last compacted (the records on the host are at or
    /// past it).
    pub(crate) snapshot_meta: SnapshotMetadata,
    /// A snapshot read from the host for a lagging peer, until it is sent.
    pub(crate) prepared: Option<Snapshot>,
    /// The index the engine last asked a snapshot for and did not get.
    pub(crate) wanted: Cell<Option<u64>>,
    /// `entries[i].index == snapshot_meta.index + 1 + i`.
    pub(crate) entries: Vec<Entry>,
}

impl core::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LogStore")
            .field("snapshot_index", &self.snapshot_meta.index)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl LogStore {
    fn first(&self) -> u64 {
        self.snapshot_meta.index + 1
    }

    fn last(&self) -> u64 {
        self.snapshot_meta.index + self.entries.len() as u64
    }

    /// Appends entries, replacing any at or after the first one's index.
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let keep = first.index.saturating_sub(self.first()) as usize;
        self.entries.truncate(keep.min(self.entries.len()));
        self.entries.extend_from_slice(entries);
    }

    /// Installs a snapshot: the log before and at its index is gone.
    pub(crate) fn install(&mut self, meta: SnapshotMetadata) {
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot_meta = meta;
        self.prepared = None;
    }

    /// Compacts: a new snapshot at `index` (which must be in the log).
    pub(crate) fn compact(&mut self, index: u64) -> Option<SnapshotMetadata> {
        if index <= self.snapshot_meta.index || index > self.last() {
            return None;
        }
        let term = self.term(index).ok()?;
        let drop = (index - self.snapshot_meta.index) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..SnapshotMetadata::default()
        };
        meta.set_conf_state(self.conf_state.clone());
        self.snapshot_meta = meta.clone();
        Some(meta)
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut out = self
            .entries
            .get(lo..hi)
            .ok_or(Error::Store(StorageError::Unavailable))?
            .to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_meta.index {
            return Ok(self.snapshot_meta.term);
        }
        if idx < self.first() {
            return Err(Error::Store(StorageError::Compacted));
        }
        self.entries
            .get((idx - self.first()) as usize)
            .map(|e| e.term)
            .ok_or(Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// The prepared snapshot if it reaches `request_index`; otherwise the
    /// request is noted for the node and the engine tries again later.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        match &self.prepared {
            Some(snap) if snap.get_metadata().index >= request_index => Ok(snap.clone()),
            _ => {
                let wanted = self
                    .wanted
                    .get()
                    .map_or(request_index, |w| w.max(request_index));
                self.wanted.set(Some(wanted));
                Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}
