//! Property test: random interleavings of honest and attacking clients,
//! store crashes, replays and time, checked against the guess-limit
//! invariant after every step (SPEC.md §8.3).

mod common;
use backup_key_vault::client::{AwaitingKeyRelease, Recovery};
use backup_key_vault::vault::{
    Fault, FaultyStore, MemoryStore, RecordSlot, RecordStore, VaultPolicy,
};
use backup_key_vault::wire::RecoveryFinish;
use backup_key_vault::RecoveryCode;
use common::*;
use proptest::prelude::*;

const RECORDS: u8 = 2;
const MAX: u8 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// A client starts a recovery with the right or a wrong code.
    Start { rec: u8, right: bool },
    /// A pending client session sends its KE3 (a wrong-code client sends
    /// garbage, as an attacker would).
    Finish { slot: usize },
    /// The relay replays a KE3 already sent.
    Replay { slot: usize },
    /// The relay sends one session's KE3 under another session's id.
    Splice { from: usize, to: usize },
    /// The store starts or stops failing.
    SetFault(u8),
    /// Time passes (a little, or past the session lifetime).
    Advance { long: bool },
    /// An honest client runs a whole recovery with the right code.
    Honest { rec: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..RECORDS, any::<bool>()).prop_map(|(rec, right)| Op::Start { rec, right }),
        3 => (0..16usize).prop_map(|slot| Op::Finish { slot }),
        1 => (0..16usize).prop_map(|slot| Op::Replay { slot }),
        1 => (0..16usize, 0..16usize).prop_map(|(from, to)| Op::Splice { from, to }),
        1 => (0..3u8).prop_map(Op::SetFault),
        1 => any::<bool>().prop_map(|long| Op::Advance { long }),
        2 => (0..RECORDS).prop_map(|rec| Op::Honest { rec }),
    ]
}

struct Session {
    rec: u8,
    right: bool,
    state: Option<AwaitingKeyRelease>,
    ke3: RecoveryFinish,
    sent: bool,
}

struct Model {
    w: World<FaultyStore<MemoryStore>>,
    sessions: Vec<Session>,
    /// KE2s issued for each record's live record since its last reset.
    issued: [u8; RECORDS as usize],
    erased: [bool; RECORDS as usize],
    fault: Fault,
}

impl Model {
    fn slot(&self, rec: u8) -> Option<RecordSlot> {
        self.w.vault.store().inner().load(&id(rec)).unwrap()
    }

    fn used(&self, rec: u8) -> Option<(u8, u64)> {
        match self.slot(rec) {
            Some(RecordSlot::Live(r)) => Some((r.attempts_used(), r.generation)),
            _ => None,
        }
    }

    /// After a right-code KE3: if the store reset the counter (even with a
    /// lost acknowledgement), that was a success and the count restarts.
    fn after_right_ke3(&mut self, rec: u8) {
        if self.used(rec).map(|(u, _)| u) == Some(0) {
            self.issued[rec as usize] = 0;
        }
    }

    /// KE1 and KE2, counting every KE2 issued for a live record; the client
    /// then runs its side at once. A wrong-code client (an attacker) keeps a
    /// garbage KE3 to send.
    fn start(&mut self, rec: u8, right: bool) -> Option<Session> {
        let now = self.w.now;
        let code = RecoveryCode::new(if right { b"right" } else { b"wrong" }).unwrap();
        let (state, ke1) =
            Recovery::start(&mut self.w.rng, &self.w.config, id(rec), &code).unwrap();
        let live_before = self.used(rec).is_some();
        let ke2 = self
            .w
            .vault
            .recovery_start(&mut self.w.rng, now, &ke1)
            .ok()?;
        if live_before && self.used(rec).is_some() {
            self.issued[rec as usize] += 1;
        }
        // What the client sends when its code is wrong: a KE3 that fails
        // the vault's OPAQUE check, sealed in the session's channel.
        let wrong_ke3 = state.seal_finish(&ke2, &[0x5A; 64]);
        Some(match state.finish(&mut self.w.rng, &ke2) {
            Ok((state, ke3)) => {
                assert!(
                    right && live_before,
                    "the client accepted a KE2 it should not have"
                );
                Session {
                    rec,
                    right,
                    state: Some(state),
                    ke3,
                    sent: false,
                }
            }
            Err(_) => {
                let ke3 = wrong_ke3;
                Session {
                    rec,
                    right: false,
                    state: None,
                    ke3,
                    sent: false,
                }
            }
        })
    }

    fn step(&mut self, op: &Op) {
        let now = self.w.now;
        match *op {
            Op::Start { rec, right } => {
                if let Some(session) = self.start(rec, right) {
                    self.sessions.push(session);
                }
            }
            Op::Finish { slot } => {
                let Some(s) = self.sessions.get_mut(slot) else {
                    return;
                };
                if s.sent {
                    return;
                }
                s.sent = true;
                let (ke3, rec, right) = (s.ke3.clone(), s.rec, s.right);
                let state = s.state.take();
                let answer = self.w.vault.recovery_finish(now, &ke3);
                if right {
                    self.after_right_ke3(rec);
                }
                if let (Ok(release), Some(state)) = (answer, state) {
                    state.finish(&release).expect("an authentic release opens");
                }
            }
            Op::Replay { slot } => {
                let Some(s) = self.sessions.get(slot) else {
                    return;
                };
                if !s.sent {
                    return;
                }
                let ke3 = s.ke3.clone();
                let before = self.w.vault.store().inner().table().clone();
                assert!(
                    self.w.vault.recovery_finish(now, &ke3).is_err(),
                    "a replayed KE3 was accepted"
                );
                assert_eq!(
                    self.w.vault.store().inner().table(),
                    &before,
                    "a replay changed state"
                );
            }
            Op::Splice { from, to } => {
                let (Some(a), Some(b)) = (self.sessions.get(from), self.sessions.get(to)) else {
                    return;
                };
                if from == to || a.rec != b.rec {
                    return;
                }
                let mut ke3 = a.ke3.clone();
                ke3.session_id = b.ke3.session_id;
                assert!(
                    self.w.vault.recovery_finish(now, &ke3).is_err(),
                    "a spliced KE3 was accepted"
                );
                // The target session is consumed by the failed attempt.
                if let Some(b) = self.sessions.get_mut(to) {
                    b.sent = true;
                    b.state = None;
                }
            }
            Op::SetFault(f) => {
                self.fault =
                    [Fault::None, Fault::FailBeforeApply, Fault::FailAfterApply][f as usize];
                self.w.vault.store_mut().set_fault(self.fault);
            }
            Op::Advance { long } => {
                self.w.now += if long {
                    self.w.vault.policy().session_ttl_ms
                } else {
                    1_000
                };
            }
            Op::Honest { rec } => {
                let before = self.used(rec);
                let session = self.start(rec, true);
                let recovered = session.and_then(|s| {
                    let release = self.w.vault.recovery_finish(self.w.now, &s.ke3);
                    self.after_right_ke3(rec);
                    s.state
                        .zip(release.ok())
                        .map(|(state, release)| state.finish(&release))
                });
                match before {
                    Some((used, _)) if used < MAX && self.fault == Fault::None => {
                        assert!(
                            matches!(recovered, Some(Ok(_))),
                            "the right code must work while attempts remain"
                        );
                    }
                    Some(_) => {}
                    None => assert!(recovered.is_none(), "an erased record came back"),
                }
            }
        }
        self.check();
    }

    fn check(&mut self) {
        for rec in 0..RECORDS {
            let i = rec as usize;
            assert!(
                self.issued[i] <= MAX,
                "record {rec}: {} KE2s since the last success",
                self.issued[i]
            );
            match self.slot(rec) {
                Some(RecordSlot::Live(r)) => {
                    assert!(!self.erased[i], "record {rec} came back after erasure");
                    assert!(r.attempts_used() <= MAX);
                }
                Some(RecordSlot::Erased { .. }) => self.erased[i] = true,
                None => panic!("record {rec} vanished without a tombstone"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn guesses_stay_bounded_and_the_right_code_works(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
        let policy = VaultPolicy { max_attempts: MAX, ..VaultPolicy::insecure_test_only() };
        let mut w = World::with_policy(seed, FaultyStore::new(MemoryStore::new()), policy);
        for rec in 0..RECORDS {
            w.register(id(rec), "right").unwrap();
        }
        let mut model = Model { w, sessions: Vec::new(), issued: [0; RECORDS as usize], erased: [false; RECORDS as usize], fault: Fault::None };
        for op in &ops {
            model.step(op);
        }
        // Heal the store: every record that still has attempts recovers.
        model.step(&Op::SetFault(0));
        model.step(&Op::Advance { long: true });
        for rec in 0..RECORDS {
            model.step(&Op::Honest { rec });
        }
    }
}
