//! The platform a fleet member runs on, as two small traits (SPEC.md §22).
//!
//! An HSM has no file system: the untrusted host keeps its disk. The node
//! ([`crate::node::Node`]) therefore does no storage I/O of its own. It
//! asks the host to keep and to hand back opaque rows ([`HostStore`]), which
//! it seals and checks itself ([`crate::sealed`]), and it may have a few
//! bytes of tamper-proof memory the host cannot roll back ([`Nvram`]), as
//! an HSM's NVRAM provides. The same node then runs over redb on a real
//! disk ([`crate::disk::RedbHost`]), over memory in the simulation
//! ([`MemHost`], whose host can edit, copy and roll back every row), and,
//! one day, inside an HSM whose agent keeps the rows. Compare Juicebox's
//! `hsm_core/src/hal.rs`, which gives its HSM code a clock, an RNG and a
//! small NVRAM and nothing else.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The host's tables. Keys and values are opaque to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// The node's manifest (one row).
    Meta,
    /// The Raft log after the snapshot, keyed by `u64be(index)`.
    Log,
    /// The record table as of the snapshot, keyed by record id.
    Records,
    /// The record tree's node rows (SPEC.md §8.5), keyed by
    /// `tree::NodeKey` bytes, in clear: hashes and ids only, authenticated
    /// by the root the node keeps ([`crate::records::HostRecords`]).
    Tree,
    /// The record slots the tree commits to, keyed by record id, each
    /// sealed by the node (SPEC.md §8.5, §22.1).
    Slots,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 5] = [
        Table::Meta,
        Table::Log,
        Table::Records,
        Table::Tree,
        Table::Slots,
    ];

    /// The table's name (also its name in redb).
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Log => "log",
            Table::Records => "records",
            Table::Tree => "tree",
            Table::Slots => "slots",
        }
    }
}

/// One row as the host keeps it: `(key, value)`.
pub type Row = (Vec<u8>, Vec<u8>);

/// One change the node asks the host to make.
#[derive(Clone, PartialEq, Eq)]
pub enum HostOp {
    /// Insert or replace a row.
    Put {
        /// The table.
        table: Table,
        /// The row's key.
        key: Vec<u8>,
        /// The row's value (sealed by the node).
        value: Vec<u8>,
    },
    /// Remove a row (absent rows are fine).
    Delete {
        /// The table.
        table: Table,
        /// The row's key.
        key: Vec<u8>,
    },
    /// Remove every row of a table.
    Clear(Table),
}

impl fmt::Debug for HostOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostOp::Put { table, key, value } => write!(
                f,
                "Put({table:?}, {} key bytes, {} value bytes)",
                key.len(),
                value.len()
            ),
            HostOp::Delete { table, key } => write!(f, "Delete({table:?}, {} bytes)", key.len()),
            HostOp::Clear(table) => write!(f, "Clear({table:?})"),
        }
    }
}

/// The host could not do what the node asked (I/O error, full disk, a
/// database it cannot open). The node fails closed: it stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError(pub String);

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the untrusted host keeps for a node: rows in a few tables. The host
/// may lose, edit, reorder, copy or roll back any of it; the node seals
/// every row and checks all of it when it loads (SPEC.md §22.1), or, for
/// the record tree and its slots, when it reads them (§8.5).
pub trait HostStore: Send {
    /// Every row of `table`, in key order.
    fn scan(&self, table: Table) -> Result<Vec<Row>, HostError>;
    /// One row of `table`, `None` if there is none.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, HostError>;
    /// Several rows, in the order asked, `None` for each that is not there:
    /// a record's path and slot in one answer (one round trip to a host
    /// across a boundary, one read transaction on a disk). By default, one
    /// [`Self::get`] each.
    fn get_many(&self, keys: &[(Table, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        keys.iter().map(|(t, k)| self.get(*t, k)).collect()
    }
    /// Makes every change in `ops` together and durably before returning
    /// (the node sends nothing that depends on them before that).
    fn apply(&mut self, ops: &[HostOp]) -> Result<(), HostError>;
}

/// Largest NVRAM content a node writes, in bytes (Juicebox's platform
/// offers 4,000; the node needs under 128).
pub const NVRAM_MAX: usize = 256;

/// A few bytes of tamper-proof memory that the host can neither read back
/// into an older state nor edit, as an HSM's NVRAM provides. Each write
/// replaces the content; a read returns the last content written (`None`
/// before the first write).
pub trait Nvram: Send {
    /// The last content written.
    fn read(&self) -> Result<Option<Vec<u8>>, HostError>;
    /// Replaces the content, durably, before returning.
    fn write(&mut self, bytes: &[u8]) -> Result<(), HostError>;
}

/// Rows in memory, shared with whoever holds a clone: the simulation's
/// host, which can copy, edit and roll back every row
/// ([`MemHost::image`], [`MemHost::restore`], [`MemHost::edit`]).
#[derive(Clone, Debug, Default)]
pub struct MemHost(Arc<Mutex<MemImage>>);

/// The content of a [`MemHost`]: table -> key -> value.
pub type MemImage = BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

impl MemHost {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every row, to roll back to (or to take rows from) later.
    pub fn image(&self) -> MemImage {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Replaces every row (a rollback; a wipe with an empty image).
    pub fn restore(&self, image: MemImage) {
        if let Ok(mut m) = self.0.lock() {
            *m = image;
        }
    }

    /// Lets the host change rows directly (edit, drop, duplicate, splice).
    pub fn edit<T>(&self, f: impl FnOnce(&mut MemImage) -> T) -> Option<T> {
        self.0.lock().ok().map(|mut m| f(&mut m))
    }

    /// Total bytes stored (keys and values).
    pub fn size(&self) -> usize {
        self.0
            .lock()
            .map(|m| {
                m.values()
                    .flat_map(|t| t.iter())
                    .map(|(k, v)| k.len() + v.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

fn poisoned() -> HostError {
    HostError("memory host lock poisoned".into())
}

impl HostStore for MemHost {
    fn scan(&self, table: Table) -> Result<Vec<Row>, HostError> {
        let m = self.0.lock().map_err(|_| poisoned())?;
        Ok(m.get(&table)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let m = self.0.lock().map_err(|_| poisoned())?;
        Ok(m.get(&table).and_then(|t| t.get(key)).cloned())
    }

    fn apply(&mut self, ops: &[HostOp]) -> Result<(), HostError> {
        let mut m = self.0.lock().map_err(|_| poisoned())?;
        for op in ops {
            match op {
                HostOp::Put { table, key, value } => {
                    m.entry(*table)
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                HostOp::Delete { table, key } => {
                    if let Some(t) = m.get_mut(table) {
                        t.remove(key);
                    }
                }
                HostOp::Clear(table) => {
                    m.remove(table);
                }
            }
        }
        Ok(())
    }
}

/// One host shared by the parts of a node that keep rows on it: the
/// sealed log and manifest ([`crate::sealed::SealedStore`]) and the record
/// tree and slots ([`crate::records::HostRecords`]), so that a commit's
/// rows and the manifest naming their root go to the host in one
/// [`HostStore::apply`].
#[derive(Clone)]
pub struct SharedHost(Arc<Mutex<Box<dyn HostStore>>>);

impl SharedHost {
    /// Shares `host`.
    pub fn new(host: Box<dyn HostStore>) -> Self {
        Self(Arc::new(Mutex::new(host)))
    }
}

impl fmt::Debug for SharedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedHost")
    }
}

fn shared_poisoned() -> HostError {
    HostError("shared host lock poisoned".into())
}

impl HostStore for SharedHost {
    fn scan(&self, table: Table) -> Result<Vec<Row>, HostError> {
        self.0.lock().map_err(|_| shared_poisoned())?.scan(table)
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        self.0
            .lock()
            .map_err(|_| shared_poisoned())?
            .get(table, key)
    }

    fn apply(&mut self, ops: &[HostOp]) -> Result<(), HostError> {
        self.0.lock().map_err(|_| shared_poisoned())?.apply(ops)
    }

    fn get_many(&self, keys: &[(Table, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        self.0.lock().map_err(|_| shared_poisoned())?.get_many(keys)
    }
}

/// NVRAM in memory, for the simulation and tests: the simulated host keeps
/// disks but cannot touch this.
#[derive(Clone, Debug, Default)]
pub struct MemNvram(Arc<Mutex<Option<Vec<u8>>>>);

impl MemNvram {
    /// Empty NVRAM.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Nvram for MemNvram {
    fn read(&self) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.0.lock().map_err(|_| poisoned())?.clone())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        if bytes.len() > NVRAM_MAX {
            return Err(HostError("NVRAM content too large".into()));
        }
        *self.0.lock().map_err(|_| poisoned())? = Some(bytes.to_vec());
        Ok(())
    }
}

/// **Not tamper-proof.** NVRAM kept in an ordinary file (written to a
/// temporary file, synced, then renamed over the old one), for trying the
/// NVRAM mode out on one machine. Whoever can write the file can roll it
/// back together with the disk, which is exactly what real NVRAM prevents;
/// `bkv node --nvram FILE` says so when it starts.
#[derive(Debug)]
pub struct FileNvram {
    path: PathBuf,
}

impl FileNvram {
    /// NVRAM in the file at `path` (created on the first write).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }
}

impl Nvram for FileNvram {
    fn read(&self) -> Result<Option<Vec<u8>>, HostError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HostError(format!("{}: {e}", self.path.display()))),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        if bytes.len() > NVRAM_MAX {
            return Err(HostError("NVRAM content too large".into()));
        }
        // Each error names the file it happened to: the temporary one
        // until the rename, which names both.
        let tmp = self.path.with_extension("tmp");
        let err = |e: std::io::Error| HostError(format!("{}: {e}", tmp.display()));
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            HostError(format!(
                "renaming {} to {}: {e}",
                tmp.display(),
                self.path.display()
            ))
        })?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}
