//! A node's durable state in redb (SPEC.md §22): the Raft log, hard state
//! and configuration, the latest snapshot of the record table, the node's
//! incarnation and the incarnations it has seen of its peers.
//!
//! Every change a Ready asks for is written in one redb write transaction,
//! committed (durably) before any message that depends on it is sent.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};
use redb::{
    Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition, WriteTransaction,
};
use zeroize::Zeroizing;

use backup_key_vault::vault::{RecordSlot, RecordTable};
use backup_key_vault::RecordId;

use crate::error::FleetError;

/// Scalars: hard state, configuration, snapshot metadata, incarnation.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The Raft log after the snapshot: index -> protobuf `Entry`.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// The record table as of the snapshot: record id -> `RecordSlot::to_bytes`.
const SNAPSHOT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("snapshot");
/// The highest incarnation of each peer this node has accepted a message from.
const PEERS: TableDefinition<u64, u64> = TableDefinition::new("peers");

const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";
const SNAPSHOT_META: &str = "snapshot_meta";
const INCARNATION: &str = "incarnation";
const LAYOUT: &str = "layout";
/// Version of this storage layout.
pub const LAYOUT_VERSION: u8 = 1;

/// What a node finds on its disk when it starts.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The last persisted hard state (term, vote, commit).
    pub hard_state: HardState,
    /// The persisted configuration, if any.
    pub conf_state: Option<ConfState>,
    /// The snapshot's metadata and table, if a snapshot was taken.
    pub snapshot: Option<(SnapshotMetadata, RecordTable)>,
    /// The log after the snapshot, in order.
    pub entries: Vec<Entry>,
    /// The incarnation of the last boot (0 on an empty disk).
    pub incarnation: u64,
    /// The highest incarnation accepted from each peer.
    pub peer_incarnations: BTreeMap<u64, u64>,
}

/// One Ready's worth of changes, written atomically.
#[derive(Default)]
pub struct Write<'a> {
    /// A snapshot to record: replaces the table and the snapshot metadata.
    pub snapshot: Option<(&'a SnapshotMetadata, &'a RecordTable)>,
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

/// A node's redb database.
pub struct Disk {
    db: Database,
}

impl core::fmt::Debug for Disk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Disk").finish_non_exhaustive()
    }
}

fn db_err(e: impl core::fmt::Display) -> FleetError {
    FleetError::Disk(e.to_string())
}

impl Disk {
    /// Opens (or creates) the database file at `path`.
    pub fn open_path(path: &Path) -> Result<Self, FleetError> {
        let db = Database::create(path).map_err(db_err)?;
        Self::init(db)
    }

    /// Opens (or creates) a database over any redb backend (the simulation
    /// uses [`SimDisk`]).
    pub fn open_backend(backend: impl StorageBackend) -> Result<Self, FleetError> {
        let db = Database::builder()
            .set_cache_size(1 << 20)
            .create_with_backend(backend)
            .map_err(db_err)?;
        Self::init(db)
    }

    fn init(db: Database) -> Result<Self, FleetError> {
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let layout = meta
                .get(LAYOUT)
                .map_err(db_err)?
                .map(|v| v.value().to_vec());
            match layout.as_deref() {
                None => {
                    meta.insert(LAYOUT, &[LAYOUT_VERSION][..]).map_err(db_err)?;
                }
                Some([LAYOUT_VERSION]) => {}
                Some(_) => return Err(FleetError::Disk("unknown storage layout".into())),
            }
            txn.open_table(LOG).map_err(db_err)?;
            txn.open_table(SNAPSHOT).map_err(db_err)?;
            txn.open_table(PEERS).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// Reads everything a starting node needs.
    pub fn load(&self) -> Result<Loaded, FleetError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let get = |key: &str| -> Result<Option<Vec<u8>>, FleetError> {
            Ok(meta.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
        };
        let mut loaded = Loaded::default();
        if let Some(bytes) = get(HARD_STATE)? {
            loaded.hard_state = HardState::parse_from_bytes(&bytes).map_err(db_err)?;
        }
        if let Some(bytes) = get(CONF_STATE)? {
            loaded.conf_state = Some(ConfState::parse_from_bytes(&bytes).map_err(db_err)?);
        }
        if let Some(bytes) = get(INCARNATION)? {
            let b: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| FleetError::Disk("incarnation".into()))?;
            loaded.incarnation = u64::from_be_bytes(b);
        }
        if let Some(bytes) = get(SNAPSHOT_META)? {
            let meta = SnapshotMetadata::parse_from_bytes(&bytes).map_err(db_err)?;
            let mut table = RecordTable::new();
            let snap = txn.open_table(SNAPSHOT).map_err(db_err)?;
            for row in snap.iter().map_err(db_err)? {
                let (id, slot) = row.map_err(db_err)?;
                let id: [u8; 32] = id
                    .value()
                    .try_into()
                    .map_err(|_| FleetError::Disk("record id".into()))?;
                let slot = RecordSlot::from_bytes(slot.value()).map_err(db_err)?;
                table.restore(RecordId(id), slot);
            }
            loaded.snapshot = Some((meta, table));
        }
        let log = txn.open_table(LOG).map_err(db_err)?;
        for row in log.iter().map_err(db_err)? {
            let (_, bytes) = row.map_err(db_err)?;
            loaded
                .entries
                .push(Entry::parse_from_bytes(bytes.value()).map_err(db_err)?);
        }
        let peers = txn.open_table(PEERS).map_err(db_err)?;
        for row in peers.iter().map_err(db_err)? {
            let (id, inc) = row.map_err(db_err)?;
            loaded.peer_incarnations.insert(id.value(), inc.value());
        }
        Ok(loaded)
    }

    /// Records a new boot's incarnation (before the node sends anything).
    pub fn set_incarnation(&self, incarnation: u64) -> Result<(), FleetError> {
        self.transaction(|txn| {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(INCARNATION, &incarnation.to_be_bytes()[..])
                .map_err(db_err)?;
            Ok(())
        })
    }

    /// Records the configuration (once, when the fleet is made).
    pub fn set_conf_state(&self, conf: &ConfState) -> Result<(), FleetError> {
        let bytes = conf.write_to_bytes().map_err(db_err)?;
        self.transaction(|txn| {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(CONF_STATE, &bytes[..]).map_err(db_err)?;
            Ok(())
        })
    }

    /// Writes one Ready's changes in one transaction.
    pub fn write(&self, w: &Write<'_>) -> Result<(), FleetError> {
        self.transaction(|txn| {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let mut log = txn.open_table(LOG).map_err(db_err)?;
            if let Some((snap_meta, table)) = w.snapshot {
                let mut snap = txn.open_table(SNAPSHOT).map_err(db_err)?;
                snap.retain(|_, _| false).map_err(db_err)?;
                for (id, slot) in table.iter() {
                    let bytes: Zeroizing<Vec<u8>> = slot.to_bytes();
                    snap.insert(&id.as_bytes()[..], &bytes[..])
                        .map_err(db_err)?;
                }
                let bytes = snap_meta.write_to_bytes().map_err(db_err)?;
                meta.insert(SNAPSHOT_META, &bytes[..]).map_err(db_err)?;
                let conf = snap_meta
                    .get_conf_state()
                    .write_to_bytes()
                    .map_err(db_err)?;
                meta.insert(CONF_STATE, &conf[..]).map_err(db_err)?;
            }
            if let Some(to) = w.compact_to {
                log.retain(|index, _| index > to).map_err(db_err)?;
            }
            if let Some(first) = w.entries.first() {
                log.retain(|index, _| index < first.index).map_err(db_err)?;
                for e in w.entries {
                    let bytes = e.write_to_bytes().map_err(db_err)?;
                    log.insert(e.index, &bytes[..]).map_err(db_err)?;
                }
            }
            if let Some(hs) = w.hard_state {
                let bytes = hs.write_to_bytes().map_err(db_err)?;
                meta.insert(HARD_STATE, &bytes[..]).map_err(db_err)?;
            }
            if !w.peer_incarnations.is_empty() {
                let mut peers = txn.open_table(PEERS).map_err(db_err)?;
                for (id, inc) in w.peer_incarnations {
                    peers.insert(*id, *inc).map_err(db_err)?;
                }
            }
            Ok(())
        })
    }

    fn transaction(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<(), FleetError>,
    ) -> Result<(), FleetError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        f(&txn)?;
        txn.commit().map_err(db_err)
    }
}

/// A simulated disk for the deterministic simulation: redb over bytes in
/// memory that the simulation can copy (to roll back to later) or wipe.
/// Every write is durable as soon as it is made (the simulation crashes
/// nodes only between steps, never inside a transaction).
#[derive(Clone, Debug, Default)]
pub struct SimDisk(Arc<Mutex<Vec<u8>>>);

fn poisoned() -> io::Error {
    io::Error::other("simulated disk lock poisoned")
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the disk's bytes, to roll back to.
    pub fn image(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Replaces the disk's bytes (a rollback, or a wipe with an empty image).
    pub fn restore(&self, image: Vec<u8>) {
        if let Ok(mut b) = self.0.lock() {
            *b = image;
        }
    }

    /// The disk's size in bytes.
    pub fn size(&self) -> usize {
        self.0.lock().map(|b| b.len()).unwrap_or(0)
    }
}

impl StorageBackend for SimDisk {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.0.lock().map_err(|_| poisoned())?.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let b = self.0.lock().map_err(|_| poisoned())?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let src = start
            .checked_add(out.len())
            .and_then(|end| b.get(start..end))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.0.lock().map_err(|_| poisoned())?.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut b = self.0.lock().map_err(|_| poisoned())?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start
            .checked_add(data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write overflow"))?;
        if b.len() < end {
            b.resize(end, 0);
        }
        let dst = b
            .get_mut(start..end)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past the end"))?;
        dst.copy_from_slice(data);
        Ok(())
    }
}
