//! A [`RecordStore`] whose records the untrusted host keeps and the vault
//! checks: trusted memory holds the record tree's root and a small cache,
//! nothing that grows with the records (SPEC.md §8.5).
//!
//! [`VerifiedStore`] asks its [`RecordHost`] for a record's slot bytes and
//! proof, decodes the proof strictly and checks both against the root it
//! trusts. A commit applies the command to the one slot it names with
//! [`RecordTable::apply`] semantics, computes the new root from the proof
//! ([`Proof::set`]), hands the host the new slot bytes and the tree rows
//! that change, and only then moves its root. A host that answers with a
//! wrong slot, a wrong leaf, a wrong sibling or an older state of the tree
//! is refused ([`StoreError`], so the vault answers `Unavailable` and
//! releases nothing) and counted ([`VerifiedStore::rejections`]). A host
//! whose `store` fails may have stored the change all the same (§8.3 item
//! 4): the next answer that checks, against the old root or the one the
//! commit computed, settles which it was.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::types::RecordId;
use crate::vault::state::{Applied, Command, RecordSlot, RecordTable};
use crate::vault::store::RecordStore;
use crate::vault::tree::{self, Hash, Lookup, MemoryTree, Proof, ProofError, TreeUpdate};

/// A host's answer for one record: what it claims, to be checked. `Debug`
/// shows the slot's length only (it holds the record).
#[derive(Clone, Default)]
pub struct HostAnswer {
    /// The slot bytes kept for the record (§8.4), `None` if none.
    pub slot: Option<Zeroizing<Vec<u8>>>,
    /// The encoded proof for the record's id (§8.5).
    pub proof: Vec<u8>,
}

impl fmt::Debug for HostAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostAnswer")
            .field("slot_len", &self.slot.as_ref().map(|s| s.len()))
            .field("proof_len", &self.proof.len())
            .finish()
    }
}

/// What the untrusted host does for a [`VerifiedStore`]: keeps each record's
/// slot bytes (§8.4) and the record tree's rows, answers with a record and
/// its proof, and stores what a commit changed. Nothing it returns is
/// trusted.
pub trait RecordHost {
    /// The slot bytes kept for `id` and the proof for `id`.
    fn fetch(&self, id: &RecordId) -> Result<HostAnswer, StoreError>;

    /// Stores a committed change: `id`'s new slot bytes and the tree rows of
    /// `update`, together and durably before returning.
    fn store(&mut self, id: &RecordId, slot: &[u8], update: &TreeUpdate) -> Result<(), StoreError>;
}

/// Why the last host answer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostRejection {
    /// The proof did not decode or did not lead to the trusted root.
    Proof(ProofError),
    /// The slot bytes do not hash to the leaf the proof shows, or a slot
    /// came for an id the proof shows absent, or none for one it shows
    /// present.
    WrongSlot,
    /// The slot bytes match the tree but do not decode (§8.4). The tree
    /// only ever holds slots the vault encoded, so this means a broken
    /// encoder, never a host's lie; it is refused like one.
    Undecodable,
}

/// The most slots a [`VerifiedStore`] caches, whatever capacity it is
/// given: about 2.5 MiB of trusted memory (about 630 bytes a cached slot
/// as measured, BENCHMARKS.md "Record tree"), which an HSM can spare;
/// past it the cache would grow trusted memory with the records, which
/// the tree is there to avoid.
pub const MAX_CACHE_CAPACITY: usize = 4096;

/// A record store over a [`RecordHost`], checked against a trusted root.
pub struct VerifiedStore<H> {
    host: H,
    root: Cell<Hash>,
    /// The root a commit computed whose `store` failed: the host may have
    /// stored it all the same (a lost acknowledgement, §8.3 item 4).
    pending: Cell<Option<Hash>>,
    rejections: Cell<u64>,
    last_rejection: Cell<Option<HostRejection>>,
    cache: BTreeMap<RecordId, RecordSlot>,
    order: VecDeque<RecordId>,
    cache_capacity: usize,
}

impl<H> fmt::Debug for VerifiedStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedStore")
            .field("root", &self.root.get())
            .field("pending", &self.pending.get())
            .field("rejections", &self.rejections.get())
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl<H: RecordHost> VerifiedStore<H> {
    /// A store trusting `root` (the empty tree's is [`tree::EMPTY`]) that
    /// keeps at most `cache_capacity` recently committed slots in memory (0:
    /// no cache; every load asks the host), and never more than
    /// [`MAX_CACHE_CAPACITY`]: a larger capacity is lowered to it.
    pub fn new(host: H, root: Hash, cache_capacity: usize) -> Self {
        Self {
            host,
            root: Cell::new(root),
            pending: Cell::new(None),
            rejections: Cell::new(0),
            last_rejection: Cell::new(None),
            cache: BTreeMap::new(),
            order: VecDeque::new(),
            cache_capacity: cache_capacity.min(MAX_CACHE_CAPACITY),
        }
    }

    /// The root this store trusts: the record table as of the last commit.
    pub fn root(&self) -> Hash {
        self.root.get()
    }

    /// Host answers refused so far.
    pub fn rejections(&self) -> u64 {
        self.rejections.get()
    }

    /// Why the latest refused answer was refused.
    pub fn last_rejection(&self) -> Option<HostRejection> {
        self.last_rejection.get()
    }

    /// The host (untrusted), for inspection.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The host, to change it (tests make it lie).
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// Slots held in the cache now (at most the capacity).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn refuse(&self, why: HostRejection) -> StoreError {
        self.rejections.set(self.rejections.get().saturating_add(1));
        self.last_rejection.set(Some(why));
        StoreError
    }

    /// Asks the host for `id` and checks its answer against the root.
    ///
    /// After a commit whose `store` failed, the first answer that checks
    /// settles it: a proof against the root the commit computed means the
    /// host stored the change after all, and that root is taken (the failed
    /// commit was applied, §8.3 item 4); a proof against the trusted root
    /// means it was not, and the computed root is forgotten, so the host
    /// cannot apply the change later, after other answers.
    fn fetch_checked(&self, id: &RecordId) -> Result<(Option<RecordSlot>, Proof), StoreError> {
        let HostAnswer {
            slot: slot_bytes,
            proof: proof_bytes,
        } = self.host.fetch(id)?;
        let proof = Proof::from_bytes(&proof_bytes)
            .map_err(|e| self.refuse(HostRejection::Proof(ProofError::Malformed(e))))?;
        let (lookup, root) = match (proof.check(&self.root.get(), id), self.pending.get()) {
            (Ok(lookup), _) => (lookup, self.root.get()),
            (Err(ProofError::RootMismatch), Some(pending)) => match proof.check(&pending, id) {
                Ok(lookup) => (lookup, pending),
                Err(_) => return Err(self.refuse(HostRejection::Proof(ProofError::RootMismatch))),
            },
            (Err(e), _) => return Err(self.refuse(HostRejection::Proof(e))),
        };
        let slot = match (lookup, slot_bytes) {
            (Lookup::Absent, None) => None,
            (Lookup::Present(value), Some(bytes)) if tree::value_hash(&bytes) == value => Some(
                RecordSlot::from_bytes(&bytes)
                    .map_err(|_| self.refuse(HostRejection::Undecodable))?,
            ),
            _ => return Err(self.refuse(HostRejection::WrongSlot)),
        };
        // The whole answer checks against `root`: that is the tree now.
        self.root.set(root);
        self.pending.set(None);
        Ok((slot, proof))
    }

    /// Drops `id` from the cache.
    fn forget(&mut self, id: &RecordId) {
        if self.cache.remove(id).is_some() {
            self.order.retain(|k| k != id);
        }
    }

    fn remember(&mut self, id: RecordId, slot: RecordSlot) {
        if self.cache_capacity == 0 {
            return;
        }
        if self.cache.insert(id, slot).is_some() {
            // Committed again: it goes last, so the cache drops the slots
            // committed least recently (a linear scan of at most
            // `MAX_CACHE_CAPACITY` ids).
            self.order.retain(|k| *k != id);
        }
        self.order.push_back(id);
        while self.cache.len() > self.cache_capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.cache.remove(&old);
                }
                None => break,
            }
        }
    }
}

impl<H: RecordHost> RecordStore for VerifiedStore<H> {
    fn load(&self, record_id: &RecordId) -> Result<Option<RecordSlot>, StoreError> {
        if let Some(slot) = self.cache.get(record_id) {
            return Ok(Some(slot.clone()));
        }
        Ok(self.fetch_checked(record_id)?.0)
    }

    fn commit(&mut self, command: &Command) -> Result<Applied, StoreError> {
        self.commit_with_slots(command)
            .map(|(applied, _, _)| applied)
    }
}

impl<H: RecordHost> VerifiedStore<H> {
    /// As [`RecordStore::commit`], also returning the record's slot before
    /// and after the command: what a caller that keeps counts of the
    /// records needs, without reading the record a second time.
    pub fn commit_with_slots(
        &mut self,
        command: &Command,
    ) -> Result<(Applied, Option<RecordSlot>, Option<RecordSlot>), StoreError> {
        let id = *command.record_id();
        let (before, proof) = self.fetch_checked(&id)?;
        // Commands act on the slot they name only, so the one-slot table
        // computes exactly what the whole table would.
        let mut one = RecordTable::new();
        let before_bytes = before.as_ref().map(RecordSlot::to_bytes);
        if let Some(slot) = before.clone() {
            one.restore(id, slot);
        }
        let applied = one.apply(command);
        let Some(after) = one.get(&id) else {
            // No command takes a slot away (`Delete` leaves a tombstone), so
            // an absent slot stayed absent.
            return Ok((applied, before, None));
        };
        let after_bytes = after.to_bytes();
        // The slot holds the record: compared in constant time.
        let unchanged = before_bytes
            .as_ref()
            .is_some_and(|b| bool::from(b.as_slice().ct_eq(after_bytes.as_slice())));
        if unchanged {
            let after = before.clone();
            return Ok((applied, before, after));
        }
        // `fetch_checked` checked the proof against this very root.
        let update = proof.set_checked(&id, &tree::value_hash(&after_bytes));
        let after = after.clone();
        if let Err(e) = self.host.store(&id, &after_bytes, &update) {
            // The host may have stored it all the same: the next answer
            // that checks settles which root is the tree (`fetch_checked`).
            // Until then the slot is whichever the host proves.
            self.pending.set(Some(update.root));
            self.forget(&id);
            return Err(e);
        }
        self.root.set(update.root);
        self.pending.set(None);
        self.remember(id, after.clone());
        Ok((applied, before, Some(after)))
    }
}

/// A [`RecordHost`] in memory: a [`MemoryTree`] and the slot bytes. For
/// tests and benches, whose host can lie through [`MemoryHost::tree_mut`]
/// and [`MemoryHost::slots_mut`]. `Debug` shows counts only.
#[derive(Clone, Default)]
pub struct MemoryHost {
    tree: MemoryTree,
    slots: BTreeMap<RecordId, Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for MemoryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryHost")
            .field("nodes", &self.tree.node_count())
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl MemoryHost {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree as the host keeps it.
    pub fn tree(&self) -> &MemoryTree {
        &self.tree
    }

    /// The tree, to edit (the host's power).
    pub fn tree_mut(&mut self) -> &mut MemoryTree {
        &mut self.tree
    }

    /// The slot bytes, to edit (the host's power).
    pub fn slots_mut(&mut self) -> &mut BTreeMap<RecordId, Zeroizing<Vec<u8>>> {
        &mut self.slots
    }
}

impl RecordHost for MemoryHost {
    fn fetch(&self, id: &RecordId) -> Result<HostAnswer, StoreError> {
        let proof = self.tree.prove(id).map_err(|_| StoreError)?;
        Ok(HostAnswer {
            slot: self.slots.get(id).cloned(),
            proof: proof.to_bytes(),
        })
    }

    fn store(&mut self, id: &RecordId, slot: &[u8], update: &TreeUpdate) -> Result<(), StoreError> {
        self.tree.apply(update);
        self.slots.insert(*id, Zeroizing::new(slot.to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::StretchingParams;
    use crate::vault::state::{RecordPayload, Refusal};
    use crate::vault::store::MemoryStore;
    use crate::vault::tree::Node;

    fn id(n: u8) -> RecordId {
        RecordId([n; 32])
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

    /// A host that answers every fetch with one fixed answer and stores
    /// honestly.
    struct Fixed(MemoryHost, HostAnswer);

    impl RecordHost for Fixed {
        fn fetch(&self, _: &RecordId) -> Result<HostAnswer, StoreError> {
            Ok(self.1.clone())
        }
        fn store(
            &mut self,
            id: &RecordId,
            slot: &[u8],
            update: &TreeUpdate,
        ) -> Result<(), StoreError> {
            self.0.store(id, slot, update)
        }
    }

    fn filled() -> VerifiedStore<MemoryHost> {
        let mut s = VerifiedStore::new(MemoryHost::new(), tree::EMPTY, 0);
        for n in 0..16 {
            s.commit(&register(n)).unwrap();
        }
        s
    }

    #[test]
    fn same_results_as_the_table_and_the_root_follows() {
        let mut v = VerifiedStore::new(MemoryHost::new(), tree::EMPTY, 4);
        let mut m = MemoryStore::new();
        let mut commands = Vec::new();
        for n in 0..8 {
            commands.push(register(n));
            commands.push(charge(n));
        }
        for n in 0..8 {
            for _ in 0..4 {
                commands.push(charge(n));
            }
            commands.push(Command::Erase {
                record_id: id(n),
                generation: 1,
                charge: 3,
            });
            commands.push(Command::Delete { record_id: id(n) });
            commands.push(register(n));
        }
        commands.push(Command::Delete { record_id: id(200) });
        for c in &commands {
            assert_eq!(v.commit(c), m.commit(c), "{c:?}");
            assert_eq!(v.root(), v.host().tree().root());
        }
        // The slots before and after a commit are the table's.
        let mut w = VerifiedStore::new(MemoryHost::new(), tree::EMPTY, 0);
        let mut t = MemoryStore::new();
        for c in &commands {
            let before = t.load(c.record_id());
            let applied = t.commit(c);
            let after = t.load(c.record_id());
            let got = w.commit_with_slots(c).map(|(a, b, f)| (a, Ok(b), Ok(f)));
            assert_eq!(got, applied.map(|a| (a, before, after)), "{c:?}");
        }
        for n in 0..=200 {
            assert_eq!(v.load(&id(n)), m.load(&id(n)));
        }
        // The root is that of the table's slots.
        let set: BTreeMap<RecordId, Hash> = m
            .table()
            .iter()
            .map(|(k, s)| (*k, tree::value_hash(&s.to_bytes())))
            .collect();
        assert_eq!(v.root(), tree::root_of(&set));
        assert!(v.cached() <= 4);
        assert_eq!(v.rejections(), 0);
    }

    /// Acceptance (issue 18): a host that hands back a wrong leaf (another
    /// record's slot, or an older slot of this record with its leaf) is
    /// refused and counted; the refused commit changes nothing.
    #[test]
    fn a_wrong_leaf_from_the_host_is_refused_and_counted() {
        let mut s = filled();
        let root = s.root();
        let other = s.host().slots.get(&id(4)).unwrap().clone();
        s.host_mut().slots_mut().insert(id(3), other);
        assert_eq!(s.load(&id(3)), Err(StoreError));
        assert_eq!(s.last_rejection(), Some(HostRejection::WrongSlot));
        assert_eq!(s.commit(&charge(3)), Err(StoreError));
        assert_eq!(s.rejections(), 2);
        assert_eq!(s.root(), root);
        // The slot and its proof both from before the last charge.
        let mut s = filled();
        let old = s.host().fetch(&id(5)).unwrap();
        s.commit(&charge(5)).unwrap();
        let root = s.root();
        let host = core::mem::take(s.host_mut());
        let mut lying = VerifiedStore::new(Fixed(host, old), root, 0);
        assert_eq!(lying.load(&id(5)), Err(StoreError));
        assert_eq!(
            lying.last_rejection(),
            Some(HostRejection::Proof(ProofError::RootMismatch))
        );
        assert_eq!(lying.commit(&charge(5)), Err(StoreError));
        assert_eq!(lying.rejections(), 2);
        assert_eq!(lying.root(), root);
        // A record the host hides: its slot gone, the leaf still proved.
        let mut s = filled();
        s.host_mut().slots_mut().remove(&id(6));
        assert_eq!(s.load(&id(6)), Err(StoreError));
        assert_eq!(s.last_rejection(), Some(HostRejection::WrongSlot));
        // Slot and leaf both gone: the host's tree, rebuilt without the
        // leaf, proves absence against a root the vault never had.
        let mut s = filled();
        let root = s.root();
        s.host_mut().slots_mut().remove(&id(6));
        s.host_mut().tree_mut().remove(&id(6)).unwrap();
        assert_eq!(s.load(&id(6)), Err(StoreError));
        assert_eq!(
            s.last_rejection(),
            Some(HostRejection::Proof(ProofError::RootMismatch))
        );
        assert_eq!(s.commit(&register(6)), Err(StoreError));
        assert_eq!(s.rejections(), 2);
        assert_eq!(s.root(), root);
    }

    /// Acceptance (issue 18): a wrong sibling in the host's proof is refused.
    #[test]
    fn a_wrong_sibling_from_the_host_is_refused_and_counted() {
        let mut s = filled();
        let depth = s.host().tree().prove(&id(7)).unwrap().depth();
        assert!(depth >= 1);
        // Edit the sibling node of id 7's leaf on the host.
        let mut sibling = id(7).0;
        sibling[(depth - 1) / 8] ^= 0x80 >> ((depth - 1) % 8);
        let key = tree::NodeKey::on_path(&RecordId(sibling), depth);
        let edited = match s.host().tree().nodes().find(|(k, _)| **k == key) {
            Some((_, Node::Inner { left, right })) => Node::Inner {
                left: *right,
                right: *left,
            },
            Some((_, Node::Leaf { id, value })) => Node::Leaf {
                id: *id,
                value: tree::value_hash(value),
            },
            None => panic!("no sibling row"),
        };
        s.host_mut().tree_mut().put_node(key, Some(edited));
        // The host's own prover notices the store no longer fits together;
        // a host that serves the proof anyway (below) is refused by the root.
        assert!(s.load(&id(7)).is_err());
        let mut s = filled();
        let mut answer = s.host().fetch(&id(7)).unwrap();
        let last = answer.proof.len() - 1;
        answer.proof[last] ^= 1; // the deepest sibling's last byte
        let root = s.root();
        let host = core::mem::take(s.host_mut());
        let mut lying = VerifiedStore::new(Fixed(host, answer), root, 0);
        assert_eq!(lying.load(&id(7)), Err(StoreError));
        assert_eq!(
            lying.last_rejection(),
            Some(HostRejection::Proof(ProofError::RootMismatch))
        );
        assert_eq!(lying.commit(&charge(7)), Err(StoreError));
        assert_eq!(lying.rejections(), 2);
        assert_eq!(lying.root(), root);
    }

    /// Acceptance (issue 18): a host rolled back to an older tree (a stale
    /// root) is refused: the spent attempt cannot be given back.
    #[test]
    fn a_rolled_back_host_is_refused_and_no_attempt_returns() {
        let mut s = filled();
        let before = s.host().clone();
        for _ in 0..3 {
            assert!(matches!(s.commit(&charge(9)), Ok(Applied::Charged { .. })));
        }
        assert_eq!(
            s.commit(&charge(9)),
            Ok(Applied::Refused(Refusal::Exhausted))
        );
        *s.host_mut() = before;
        assert_eq!(s.load(&id(9)), Err(StoreError));
        assert_eq!(s.commit(&charge(9)), Err(StoreError));
        // Other records too: the whole old tree leads to the old root.
        assert_eq!(s.load(&id(1)), Err(StoreError));
        assert_eq!(s.rejections(), 3);
        assert_eq!(
            s.last_rejection(),
            Some(HostRejection::Proof(ProofError::RootMismatch))
        );
    }

    /// A host whose next `store` fails: after storing the change
    /// (a lost acknowledgement) or before.
    #[derive(Default)]
    struct Flaky {
        host: MemoryHost,
        fail_next: Option<bool>,
    }

    impl RecordHost for Flaky {
        fn fetch(&self, id: &RecordId) -> Result<HostAnswer, StoreError> {
            self.host.fetch(id)
        }
        fn store(
            &mut self,
            id: &RecordId,
            slot: &[u8],
            update: &TreeUpdate,
        ) -> Result<(), StoreError> {
            match self.fail_next.take() {
                Some(stored) => {
                    if stored {
                        self.host.store(id, slot, update)?;
                    }
                    Err(StoreError)
                }
                None => self.host.store(id, slot, update),
            }
        }
    }

    fn flaky(stored: bool) -> VerifiedStore<Flaky> {
        let mut s = VerifiedStore::new(Flaky::default(), tree::EMPTY, 4);
        for n in 0..16 {
            s.commit(&register(n)).unwrap();
        }
        s.host_mut().fail_next = Some(stored);
        s
    }

    /// A host that stores a commit and then reports failure (§8.3 item 4)
    /// is not refused for ever: the next answer proves the new root, which
    /// is taken, and the charge counts.
    #[test]
    fn a_lost_acknowledgement_is_settled_by_the_next_answer() {
        let mut s = flaky(true);
        let before = s.root();
        let cached = s.load(&id(15)).unwrap();
        assert_eq!(s.commit(&charge(15)), Err(StoreError));
        assert_eq!(s.root(), before);
        assert_ne!(s.host().host.tree().root(), before);
        // Any record: the answer leads to the new root, not the trusted one.
        assert!(s.load(&id(1)).unwrap().is_some());
        assert_eq!(s.root(), s.host().host.tree().root());
        assert_eq!(s.rejections(), 0);
        // The charged slot comes from the host, not the stale cache.
        let charged = s.load(&id(15)).unwrap();
        assert_ne!(charged, cached);
        let mut m = MemoryStore::new();
        m.commit(&register(15)).unwrap();
        m.commit(&charge(15)).unwrap();
        assert_eq!(charged, m.load(&id(15)).unwrap());
        assert!(matches!(s.commit(&charge(15)), Ok(Applied::Charged { .. })));
        assert_eq!(s.root(), s.host().host.tree().root());
    }

    /// A host that did not store the failed commit keeps the old root: the
    /// change is taken only with a proof, and once an answer proves the old
    /// root, the change can no longer be brought in.
    #[test]
    fn a_failed_store_that_did_not_happen_changes_nothing() {
        let mut s = flaky(false);
        let before = s.root();
        // What the host would hold had it stored the change.
        let mut twin = VerifiedStore::new(s.host().host.clone(), before, 0);
        twin.commit(&charge(15)).unwrap();
        assert_eq!(s.commit(&charge(15)), Err(StoreError));
        assert_eq!(s.host().host.tree().root(), before);
        assert_eq!(s.load(&id(1)).map(|x| x.is_some()), Ok(true));
        assert_eq!(s.root(), before);
        assert_eq!(s.rejections(), 0);
        // Settled: the tree with the change is now a tree the vault never
        // committed, and refused.
        s.host_mut().host = twin.host().clone();
        assert_eq!(s.load(&id(1)), Err(StoreError));
        assert_eq!(
            s.last_rejection(),
            Some(HostRejection::Proof(ProofError::RootMismatch))
        );
        assert_eq!(s.root(), before);
        // A tree that is neither is refused while the failure is unsettled.
        let mut s = flaky(false);
        assert_eq!(s.commit(&charge(15)), Err(StoreError));
        s.host_mut()
            .host
            .tree_mut()
            .set(&id(200), &[7; 32])
            .unwrap();
        assert_eq!(s.load(&id(1)), Err(StoreError));
        assert_eq!(s.rejections(), 1);
    }

    #[test]
    fn a_malformed_proof_is_refused() {
        struct Garbage;
        impl RecordHost for Garbage {
            fn fetch(&self, _: &RecordId) -> Result<HostAnswer, StoreError> {
                Ok(HostAnswer {
                    slot: None,
                    proof: alloc::vec![1, 0, 0],
                })
            }
            fn store(&mut self, _: &RecordId, _: &[u8], _: &TreeUpdate) -> Result<(), StoreError> {
                Ok(())
            }
        }
        let s = VerifiedStore::new(Garbage, tree::EMPTY, 0);
        assert_eq!(s.load(&id(1)), Err(StoreError));
        assert!(matches!(
            s.last_rejection(),
            Some(HostRejection::Proof(ProofError::Malformed(_)))
        ));
    }

    #[test]
    fn debug_shows_no_record_bytes() {
        let s = filled();
        let answer = s.host().fetch(&id(3)).unwrap();
        // The slot of id 3 holds a nonce of 3s and a record of 2s.
        for text in [
            alloc::format!("{answer:?}"),
            alloc::format!("{:?}", s.host()),
            alloc::format!("{s:?}"),
        ] {
            assert!(!text.contains("3, 3, 3"), "{text}");
            assert!(!text.contains("2, 2, 2"), "{text}");
        }
        assert_eq!(
            alloc::format!("{answer:?}"),
            alloc::format!(
                "HostAnswer {{ slot_len: Some(312), proof_len: {} }}",
                answer.proof.len()
            )
        );
    }

    #[test]
    fn the_cache_is_bounded_and_serves_without_the_host() {
        let mut s = VerifiedStore::new(MemoryHost::new(), tree::EMPTY, 3);
        for n in 0..10 {
            s.commit(&register(n)).unwrap();
        }
        assert_eq!(s.cached(), 3);
        // The host loses everything: the three latest still load from the
        // cache, older ones are refused.
        *s.host_mut() = MemoryHost::new();
        assert!(s.load(&id(9)).unwrap().is_some());
        assert_eq!(s.load(&id(0)), Err(StoreError));
    }

    /// A slot committed again goes to the back of the cache: the one
    /// committed least recently is dropped first.
    #[test]
    fn the_cache_drops_the_least_recently_committed() {
        let mut s = VerifiedStore::new(MemoryHost::new(), tree::EMPTY, 3);
        for n in 0..3 {
            s.commit(&register(n)).unwrap();
        }
        s.commit(&charge(0)).unwrap();
        s.commit(&register(3)).unwrap();
        assert_eq!(s.cached(), 3);
        assert_eq!(s.order.len(), 3);
        *s.host_mut() = MemoryHost::new();
        assert!(s.load(&id(0)).unwrap().is_some());
        assert!(s.load(&id(3)).unwrap().is_some());
        assert_eq!(s.load(&id(1)), Err(StoreError));
    }

    #[test]
    fn the_cache_capacity_is_capped() {
        let s = VerifiedStore::new(MemoryHost::new(), tree::EMPTY, usize::MAX);
        assert_eq!(s.cache_capacity, MAX_CACHE_CAPACITY);
    }
}
