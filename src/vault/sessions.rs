//! Pending sessions: bounded, expiring, at most one per record.

use alloc::collections::BTreeMap;

use crate::types::{RecordId, SessionId};

struct Pending<T> {
    record_id: RecordId,
    expires_at: u64,
    state: T,
}

/// A table of pending sessions keyed by an unpredictable [`SessionId`], with
/// at most one session per record (a new one supersedes the old) and at most
/// `capacity` sessions in all.
pub(crate) struct Sessions<T> {
    by_id: BTreeMap<SessionId, Pending<T>>,
    by_record: BTreeMap<RecordId, SessionId>,
    capacity: usize,
}

/// Why a session could not be taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    /// No such session (never made, finished, superseded, or swept).
    Unknown,
    /// The session exists but belongs to another record; it is left alone.
    OtherRecord,
    /// The session expired; it is removed.
    Expired,
}

impl<T> Sessions<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            by_id: BTreeMap::new(),
            by_record: BTreeMap::new(),
            capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether a new session for `record_id` fits: either a slot is free, or
    /// the record's own session would be superseded, or expired sessions can
    /// be swept. Sweeping is done only when full, so the common path stays
    /// logarithmic.
    pub(crate) fn make_room(&mut self, now: u64, record_id: &RecordId) -> bool {
        if self.by_id.len() < self.capacity || self.by_record.contains_key(record_id) {
            return true;
        }
        self.sweep(now);
        self.by_id.len() < self.capacity
    }

    /// Removes every expired session.
    pub(crate) fn sweep(&mut self, now: u64) {
        let by_record = &mut self.by_record;
        self.by_id.retain(|id, p| {
            let live = p.expires_at > now;
            if !live && by_record.get(&p.record_id) == Some(id) {
                by_record.remove(&p.record_id);
            }
            live
        });
    }

    /// Removes the session that expires first (among equals, the one with
    /// the smallest session id). Linear, and only reached when the table is
    /// full.
    fn evict_earliest(&mut self) {
        let earliest = self
            .by_id
            .iter()
            .min_by_key(|(_, p)| p.expires_at)
            .map(|(id, p)| (*id, p.record_id));
        if let Some((id, record_id)) = earliest {
            self.by_id.remove(&id);
            if self.by_record.get(&record_id) == Some(&id) {
                self.by_record.remove(&record_id);
            }
        }
    }

    /// Whether the record has a session that has not expired.
    pub(crate) fn has_live(&self, record_id: &RecordId, now: u64) -> bool {
        self.by_record
            .get(record_id)
            .and_then(|id| self.by_id.get(id))
            .is_some_and(|p| p.expires_at > now)
    }

    /// Inserts a session, superseding (and returning) the record's previous
    /// one. The caller checked [`Self::make_room`] first; if the table
    /// filled up since (other requests were in flight between a vault's
    /// `begin` and `resume`), the session that expires first gives way, so
    /// the bound holds whatever the order of events.
    pub(crate) fn insert(
        &mut self,
        id: SessionId,
        record_id: RecordId,
        expires_at: u64,
        state: T,
    ) -> Option<T> {
        let superseded = self
            .by_record
            .insert(record_id, id)
            .and_then(|old| self.by_id.remove(&old))
            .map(|p| p.state);
        if superseded.is_none() && self.by_id.len() >= self.capacity {
            self.evict_earliest();
        }
        self.by_id.insert(
            id,
            Pending {
                record_id,
                expires_at,
                state,
            },
        );
        superseded
    }

    /// The session's state if it exists for this record and has not
    /// expired; leaves it in place.
    pub(crate) fn peek(
        &self,
        id: &SessionId,
        record_id: &RecordId,
        now: u64,
    ) -> Result<&T, Missing> {
        match self.by_id.get(id) {
            None => Err(Missing::Unknown),
            Some(p) if p.record_id != *record_id => Err(Missing::OtherRecord),
            Some(p) if p.expires_at <= now => Err(Missing::Expired),
            Some(p) => Ok(&p.state),
        }
    }

    /// Removes and returns the session if it exists for this record and has
    /// not expired. A session named with the wrong record id is left alone,
    /// so a relay cannot cancel someone else's session by guessing ids.
    pub(crate) fn take(
        &mut self,
        id: &SessionId,
        record_id: &RecordId,
        now: u64,
    ) -> Result<T, Missing> {
        match self.by_id.get(id) {
            None => return Err(Missing::Unknown),
            Some(p) if p.record_id != *record_id => return Err(Missing::OtherRecord),
            Some(_) => {}
        }
        let pending = self.by_id.remove(id).ok_or(Missing::Unknown)?;
        if self.by_record.get(record_id) == Some(id) {
            self.by_record.remove(record_id);
        }
        if pending.expires_at <= now {
            return Err(Missing::Expired);
        }
        Ok(pending.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: RecordId = RecordId([1; 32]);
    const B: RecordId = RecordId([2; 32]);

    #[test]
    fn supersede_expire_and_bound() {
        let mut s = Sessions::new(2);
        assert!(s.make_room(0, &A));
        assert_eq!(s.insert(SessionId([1; 16]), A, 10, "a1"), None);
        assert_eq!(s.insert(SessionId([2; 16]), A, 10, "a2"), Some("a1"));
        assert_eq!(s.take(&SessionId([1; 16]), &A, 0), Err(Missing::Unknown));
        assert_eq!(
            s.take(&SessionId([2; 16]), &B, 0),
            Err(Missing::OtherRecord)
        );
        s.insert(SessionId([3; 16]), B, 5, "b");
        assert_eq!(s.len(), 2);
        // Full: a third record fits only once B's session has expired.
        let c = RecordId([3; 32]);
        assert!(!s.make_room(4, &c));
        assert!(
            s.make_room(4, &A),
            "superseding A's own session always fits"
        );
        assert!(s.make_room(5, &c));
        assert_eq!(s.len(), 1);
        assert!(s.has_live(&A, 9));
        assert!(!s.has_live(&A, 10));
        assert_eq!(s.take(&SessionId([2; 16]), &A, 10), Err(Missing::Expired));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn the_bound_holds_when_inserts_outrun_make_room() {
        // Three two-phase requests all found room at `begin`; their
        // sessions arrive at `resume`. The table never exceeds its bound:
        // the session that expires first gives way.
        let mut s = Sessions::new(2);
        let c = RecordId([3; 32]);
        for r in [&A, &B, &c] {
            assert!(s.make_room(0, r));
        }
        s.insert(SessionId([1; 16]), A, 30, "a");
        s.insert(SessionId([2; 16]), B, 20, "b");
        s.insert(SessionId([3; 16]), c, 40, "c");
        assert_eq!(s.len(), 2);
        assert!(!s.has_live(&B, 0), "B's session expired first: evicted");
        assert!(s.has_live(&A, 0) && s.has_live(&c, 0));
        assert_eq!(s.take(&SessionId([2; 16]), &B, 0), Err(Missing::Unknown));
        // Superseding a record's own session never evicts another.
        s.insert(SessionId([4; 16]), A, 50, "a2");
        assert_eq!(s.len(), 2);
        assert!(s.has_live(&c, 0));
    }

    /// Sweeping happens only when the table is full (the common path stays
    /// logarithmic): below the bound, an expired session stays until it is
    /// named, and is then reported as expired rather than unknown.
    #[test]
    fn no_sweep_below_the_bound() {
        let mut s = Sessions::new(3);
        s.insert(SessionId([1; 16]), A, 10, "a");
        assert!(s.make_room(20, &B));
        assert_eq!(s.len(), 1, "an expired session was swept below the bound");
        assert_eq!(s.take(&SessionId([1; 16]), &A, 20), Err(Missing::Expired));
    }

    /// A swept session leaves nothing behind for its record: the record
    /// gets room again only as any other record would.
    #[test]
    fn a_swept_session_frees_its_record() {
        let mut s = Sessions::new(1);
        s.insert(SessionId([1; 16]), A, 5, "a");
        assert!(s.make_room(10, &B), "A's session expired: swept");
        s.insert(SessionId([2; 16]), B, 100, "b");
        assert!(
            !s.make_room(10, &A),
            "full with B's live session: A has no session of its own to supersede"
        );
        assert!(!s.has_live(&A, 10));
    }

    /// Likewise an evicted session: its record keeps no claim on a slot.
    #[test]
    fn an_evicted_session_frees_its_record() {
        let mut s = Sessions::new(1);
        s.insert(SessionId([1; 16]), A, 10, "a");
        s.insert(SessionId([2; 16]), B, 20, "b");
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(&SessionId([1; 16]), &A, 0), Err(Missing::Unknown));
        assert!(
            !s.make_room(0, &A),
            "full with B's live session: A's was evicted, nothing to supersede"
        );
    }

    /// `peek` answers as `take` does, and leaves the session in place.
    #[test]
    fn peek_checks_record_and_expiry_and_keeps_the_session() {
        let mut s = Sessions::new(2);
        s.insert(SessionId([1; 16]), A, 10, "a");
        let id = SessionId([1; 16]);
        assert_eq!(s.peek(&id, &A, 9), Ok(&"a"));
        assert_eq!(s.peek(&id, &A, 9), Ok(&"a"), "peek keeps the session");
        assert_eq!(s.peek(&id, &B, 9), Err(Missing::OtherRecord));
        assert_eq!(s.peek(&id, &A, 10), Err(Missing::Expired));
        assert_eq!(s.peek(&SessionId([9; 16]), &A, 0), Err(Missing::Unknown));
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(&id, &A, 9), Ok("a"));
    }

    /// A taken session leaves no claim on a slot either.
    #[test]
    fn a_taken_session_frees_its_record() {
        let mut s = Sessions::new(1);
        s.insert(SessionId([1; 16]), A, 100, "a");
        assert_eq!(s.take(&SessionId([1; 16]), &A, 0), Ok("a"));
        s.insert(SessionId([2; 16]), B, 100, "b");
        assert!(!s.make_room(0, &A));
    }
}
