//! The storage trait the vault commits through, and two stores that ship
//! with the crate: [`MemoryStore`] and the fault-injecting [`FaultyStore`].

use crate::error::StoreError;
use crate::types::RecordId;
use crate::vault::state::{Applied, Command, RecordSlot, RecordTable};

/// Durable storage of the record table, as the vault sees it.
///
/// The contract (SPEC.md §8.3): `commit` applies the command with
/// [`RecordTable::apply`] semantics and returns `Ok` only once the result is
/// durable (on disk, in NVRAM, or committed by a majority of the fleet). If
/// it returns `Err`, the command may or may not have been applied; the vault
/// then releases nothing that depends on it. `load` returns the state as of
/// the last durable commit. A store may retry a commit whose outcome it lost
/// by applying the command again: every command is safe to apply twice
/// (SPEC.md §8.3 item 5), though a retried charge spends one more attempt.
pub trait RecordStore {
    /// The slot for a record id, if any.
    fn load(&self, record_id: &RecordId) -> Result<Option<RecordSlot>, StoreError>;

    /// Applies a command durably and returns what it did.
    fn commit(&mut self, command: &Command) -> Result<Applied, StoreError>;
}

impl<S: RecordStore + ?Sized> RecordStore for &mut S {
    fn load(&self, record_id: &RecordId) -> Result<Option<RecordSlot>, StoreError> {
        (**self).load(record_id)
    }

    fn commit(&mut self, command: &Command) -> Result<Applied, StoreError> {
        (**self).commit(command)
    }
}

/// A store that keeps the table in memory. "Durable" for as long as the
/// process lives: for tests, the demo, and as the state machine a
/// replicated store applies commands to.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    table: RecordTable,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The table, for inspection.
    pub fn table(&self) -> &RecordTable {
        &self.table
    }
}

impl RecordStore for MemoryStore {
    fn load(&self, record_id: &RecordId) -> Result<Option<RecordSlot>, StoreError> {
        Ok(self.table.get(record_id).cloned())
    }

    fn commit(&mut self, command: &Command) -> Result<Applied, StoreError> {
        Ok(self.table.apply(command))
    }
}

/// How a [`FaultyStore`] fails its commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fault {
    /// Commits succeed.
    #[default]
    None,
    /// Commits fail before anything is applied (disk full, no quorum).
    FailBeforeApply,
    /// Commits are applied but report failure (the acknowledgement was lost:
    /// a crash between the write and the answer). The vault must treat this
    /// as a failure too.
    FailAfterApply,
}

/// A store wrapper for tests that can be told to fail commits, and counts
/// what was committed.
#[derive(Debug, Default, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    fault: Fault,
    fail_loads: bool,
    commits: usize,
}

impl<S: RecordStore> FaultyStore<S> {
    /// Wraps a store; commits succeed until told otherwise.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            fault: Fault::None,
            fail_loads: false,
            commits: 0,
        }
    }

    /// Sets how the following commits fail.
    pub fn set_fault(&mut self, fault: Fault) {
        self.fault = fault;
    }

    /// Makes loads fail (or succeed again).
    pub fn set_fail_loads(&mut self, fail: bool) {
        self.fail_loads = fail;
    }

    /// Number of commits that reported success.
    pub fn successful_commits(&self) -> usize {
        self.commits
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: RecordStore> RecordStore for FaultyStore<S> {
    fn load(&self, record_id: &RecordId) -> Result<Option<RecordSlot>, StoreError> {
        if self.fail_loads {
            return Err(StoreError);
        }
        self.inner.load(record_id)
    }

    fn commit(&mut self, command: &Command) -> Result<Applied, StoreError> {
        match self.fault {
            Fault::None => {
                let applied = self.inner.commit(command)?;
                self.commits += 1;
                Ok(applied)
            }
            Fault::FailBeforeApply => Err(StoreError),
            Fault::FailAfterApply => {
                let _ = self.inner.commit(command);
                Err(StoreError)
            }
        }
    }
}
