//! The host's side of a node's storage on a real disk: redb, one file
//! `node.redb` per node (SPEC.md §22.1).
//!
//! This is the untrusted part. It keeps the rows the node hands it, in
//! five tables, and gives them back; it never sees a key and never looks
//! inside a row. Every [`HostStore::apply`] is one redb write transaction,
//! committed (fsynced) before it returns.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::FleetError;
use crate::platform::{HostError, HostOp, HostStore, Row, Table};

const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log");
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const TREE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tree");
const SLOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("slots");

fn definition(table: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    match table {
        Table::Meta => META,
        Table::Log => LOG,
        Table::Records => RECORDS,
        Table::Tree => TREE,
        Table::Slots => SLOTS,
    }
}

/// A redb error as the host's, prefixed with the file it happened to, so
/// that a node that stops on it can say which (`Node::fault_detail`).
fn named<E: core::fmt::Display>(path: &str) -> impl Fn(E) -> HostError + '_ {
    move |e| HostError(format!("{path}: {e}"))
}

/// A node's rows in a redb database file.
pub struct RedbHost {
    db: Database,
    /// The file, as its errors name it.
    path: String,
}

impl core::fmt::Debug for RedbHost {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedbHost").finish_non_exhaustive()
    }
}

impl RedbHost {
    /// Opens (or creates) the database file at `path`.
    pub fn open_path(path: &Path) -> Result<Self, FleetError> {
        let db = Database::create(path)
            .map_err(|e| FleetError::Disk(format!("{}: {e}", path.display())))?;
        Self::ready(db, path)
    }

    /// As [`Self::open_path`], with redb's page cache capped at
    /// `cache_bytes` (the default grows to a gigabyte). The cache is the
    /// host's memory, not the node's (the scale benchmark counts the two
    /// apart, and caps it on request).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, FleetError> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| FleetError::Disk(format!("{}: {e}", path.display())))?;
        Self::ready(db, path)
    }

    fn ready(db: Database, path: &Path) -> Result<Self, FleetError> {
        let path = path.display().to_string();
        let disk = |e: HostError| FleetError::Disk(e.0);
        let txn = db.begin_write().map_err(named(&path)).map_err(disk)?;
        for t in Table::ALL {
            txn.open_table(definition(t))
                .map_err(named(&path))
                .map_err(disk)?;
        }
        txn.commit().map_err(named(&path)).map_err(disk)?;
        Ok(Self { db, path })
    }
}

impl HostStore for RedbHost {
    fn scan(&self, table: Table) -> Result<Vec<Row>, HostError> {
        let txn = self.db.begin_read().map_err(named(&self.path))?;
        let t = txn
            .open_table(definition(table))
            .map_err(named(&self.path))?;
        let mut rows = Vec::new();
        for row in t.iter().map_err(named(&self.path))? {
            let (k, v) = row.map_err(named(&self.path))?;
            rows.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(rows)
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let txn = self.db.begin_read().map_err(named(&self.path))?;
        let t = txn
            .open_table(definition(table))
            .map_err(named(&self.path))?;
        Ok(t.get(key)
            .map_err(named(&self.path))?
            .map(|v| v.value().to_vec()))
    }

    fn get_many(&self, keys: &[(Table, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        // One read transaction: one consistent view, and each table opened
        // once. The keys are taken in order; keys of one table that differ
        // only in their last byte (the rows of one page of the record
        // tree, SPEC.md §22.1) are read with one range: one descent of
        // redb's B-tree for the run instead of one per key.
        let txn = self.db.begin_read().map_err(named(&self.path))?;
        let mut open = Vec::new();
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut order: Vec<(usize, &(Table, Vec<u8>))> = keys.iter().enumerate().collect();
        order.sort_by(|a, b| a.1.cmp(b.1));
        let mut rest = &order[..];
        while let Some(((_, (table, first)), _)) = rest.split_first() {
            let same_page = |(_, (t, k)): &&(usize, &(Table, Vec<u8>))| {
                t == table
                    && k.len() == first.len()
                    && k.split_last().map(|l| l.1) == first.split_last().map(|l| l.1)
            };
            let run_len = rest.iter().take_while(|e| same_page(e)).count();
            let (run, after) = rest.split_at(run_len);
            rest = after;
            let at = match open.iter().position(|(t, _)| t == table) {
                Some(at) => at,
                None => {
                    open.push((
                        *table,
                        txn.open_table(definition(*table))
                            .map_err(named(&self.path))?,
                    ));
                    open.len() - 1
                }
            };
            let Some((_, t)) = open.get(at) else {
                return Err(HostError("a table opened for the read is gone".into()));
            };
            let Some((_, (_, last))) = run.last() else {
                continue;
            };
            if run.len() == 1 {
                let value = t
                    .get(&first[..])
                    .map_err(named(&self.path))?
                    .map(|v| v.value().to_vec());
                if let Some((i, _)) = run.first() {
                    if let Some(slot) = out.get_mut(*i) {
                        *slot = value;
                    }
                }
                continue;
            }
            let mut wanted = run.iter().peekable();
            for row in t.range(&first[..]..=&last[..]).map_err(named(&self.path))? {
                let (k, v) = row.map_err(named(&self.path))?;
                let k = k.value();
                // Keys asked for that sort before this row are not stored.
                while wanted.next_if(|(_, (_, w))| w.as_slice() < k).is_some() {}
                while let Some((i, _)) = wanted.next_if(|(_, (_, w))| w.as_slice() == k) {
                    if let Some(slot) = out.get_mut(*i) {
                        *slot = Some(v.value().to_vec());
                    }
                }
            }
        }
        Ok(out)
    }

    fn apply(&mut self, ops: &[HostOp]) -> Result<(), HostError> {
        let txn = self.db.begin_write().map_err(named(&self.path))?;
        {
            let mut meta = txn.open_table(META).map_err(named(&self.path))?;
            let mut log = txn.open_table(LOG).map_err(named(&self.path))?;
            let mut records = txn.open_table(RECORDS).map_err(named(&self.path))?;
            let mut tree = txn.open_table(TREE).map_err(named(&self.path))?;
            let mut slots = txn.open_table(SLOTS).map_err(named(&self.path))?;
            for op in ops {
                let table = match op {
                    HostOp::Put { table, .. }
                    | HostOp::Delete { table, .. }
                    | HostOp::Clear(table) => *table,
                };
                let handle = match table {
                    Table::Meta => &mut meta,
                    Table::Log => &mut log,
                    Table::Records => &mut records,
                    Table::Tree => &mut tree,
                    Table::Slots => &mut slots,
                };
                match op {
                    HostOp::Put { key, value, .. } => {
                        handle
                            .insert(&key[..], &value[..])
                            .map_err(named(&self.path))?;
                    }
                    HostOp::Delete { key, .. } => {
                        handle.remove(&key[..]).map_err(named(&self.path))?;
                    }
                    HostOp::Clear(_) => {
                        handle.retain(|_, _| false).map_err(named(&self.path))?;
                    }
                }
            }
        }
        txn.commit().map_err(named(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error of the file names the file: a node that stops on it says
    /// which (`Node::fault_detail`). Here the file is cut short under an
    /// open host, whose small cache then reads the lost pages.
    #[test]
    fn a_failed_read_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let mut host = RedbHost::open_with_cache(&path, 1 << 16).unwrap();
        let ops: Vec<HostOp> = (0..200u32)
            .map(|i| HostOp::Put {
                table: Table::Slots,
                key: i.to_be_bytes().to_vec(),
                value: vec![i as u8; 4000],
            })
            .collect();
        host.apply(&ops).unwrap();
        drop(host);
        let host = RedbHost::open_with_cache(&path, 1 << 16).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(8192)
            .unwrap();
        let e = host.scan(Table::Slots).unwrap_err();
        assert!(e.0.starts_with(&format!("{}: ", path.display())), "{}", e.0);
    }

    /// `get_many` answers what `get` answers, key by key, across tables.
    #[test]
    fn get_many_is_get_for_each_key_in_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = RedbHost::open_with_cache(&dir.path().join("node.redb"), 1 << 20).unwrap();
        host.apply(&[
            HostOp::Put {
                table: Table::Tree,
                key: vec![1],
                value: vec![10],
            },
            HostOp::Put {
                table: Table::Slots,
                key: vec![1],
                value: vec![20],
            },
            HostOp::Put {
                table: Table::Tree,
                key: vec![2],
                value: vec![30],
            },
        ])
        .unwrap();
        let keys = vec![
            (Table::Slots, vec![1]),
            (Table::Tree, vec![2]),
            (Table::Tree, vec![3]),
            (Table::Tree, vec![1]),
            (Table::Meta, vec![1]),
        ];
        let each: Vec<Option<Vec<u8>>> =
            keys.iter().map(|(t, k)| host.get(*t, k).unwrap()).collect();
        assert_eq!(host.get_many(&keys).unwrap(), each);
        assert_eq!(
            each,
            vec![Some(vec![20]), Some(vec![30]), None, Some(vec![10]), None]
        );
    }

    /// Runs of keys that differ in their last byte, read with one range,
    /// are answered as `get` answers them: what is stored between them
    /// and not asked for is not answered, keys asked for twice are
    /// answered twice, keys not stored (before, inside and after a run)
    /// are `None`, across pages, tables and key lengths, in the order
    /// asked. Checked against `get`, key by key, over random rows and
    /// requests.
    #[test]
    fn get_many_answers_as_get_does_over_runs_in_one_page() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let mut host = RedbHost::open_with_cache(&dir.path().join("node.redb"), 1 << 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        // Keys like the tree's rows (a page byte, a base, a position) in a
        // few pages, some one byte shorter, and slot-like keys.
        let key = |rng: &mut rand_chacha::ChaCha20Rng| -> (Table, Vec<u8>) {
            let r = rng.next_u32();
            let table = if r.is_multiple_of(5) {
                Table::Slots
            } else {
                Table::Tree
            };
            let len = if r.is_multiple_of(7) { 3 } else { 4 };
            let mut k = vec![(r >> 8) as u8 % 2, (r >> 16) as u8 % 3, 0, 0];
            k.truncate(len);
            if let Some(last) = k.last_mut() {
                *last = (r >> 24) as u8 % 16;
            }
            (table, k)
        };
        for _ in 0..20 {
            let ops: Vec<HostOp> = (0..40)
                .map(|_| {
                    let (table, key) = key(&mut rng);
                    HostOp::Put {
                        table,
                        key,
                        value: rng.next_u64().to_be_bytes().to_vec(),
                    }
                })
                .collect();
            host.apply(&ops).unwrap();
            let asked: Vec<(Table, Vec<u8>)> = (0..30).map(|_| key(&mut rng)).collect();
            let each: Vec<Option<Vec<u8>>> = asked
                .iter()
                .map(|(t, k)| host.get(*t, k).unwrap())
                .collect();
            assert_eq!(host.get_many(&asked).unwrap(), each);
            assert!(each.iter().any(Option::is_some) && each.iter().any(Option::is_none));
        }
    }
}
