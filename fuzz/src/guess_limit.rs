//! The structured target: a vault, honest clients and an attacking relay
//! run random sequences of operations, store failures, replays and
//! restarts. After every step it checks the guess limit (SPEC.md §2 G2,
//! §8.3): the KE2s built from a record since its last successful recovery
//! never exceed its `max_attempts`; and that the right code works while
//! attempts remain and the store is healthy.
//!
//! The model is the one of `tests/properties.rs` (a proptest), extended with
//! KE1 replays, vault restarts and operator deletion.

use arbitrary::{Arbitrary, Unstructured};
use backup_key_vault::client::{AwaitingKeyRelease, ClientConfig, Recovery, Registration};
use backup_key_vault::vault::{
    Fault, FaultyStore, MemoryStore, RecordSlot, RecordStore, Vault, VaultPolicy,
};
use backup_key_vault::wire::{RecoveryFinish, RecoveryStart};
use backup_key_vault::{FleetSecrets, RecordId, RecoveryCode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Records under test.
pub const RECORDS: u8 = 2;
/// Each record's attempt limit.
pub const MAX: u8 = 3;
/// Longest sequence run per input (keeps one input under a few ms).
pub const MAX_OPS: usize = 48;

/// One step of the scenario.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    /// A client starts a recovery with the right or a wrong code.
    Start {
        /// Which record.
        rec: u8,
        /// Right code or not.
        right: bool,
    },
    /// A pending session sends its KE3 (a wrong-code client sends garbage).
    Finish {
        /// Which session.
        slot: u8,
    },
    /// The relay replays a KE3 already sent.
    ReplayKe3 {
        /// Which session.
        slot: u8,
    },
    /// The relay replays a KE1 already sent (a new charge).
    ReplayKe1 {
        /// Which session.
        slot: u8,
    },
    /// The relay sends one session's KE3 under another session's id.
    Splice {
        /// Session whose KE3 is sent.
        from: u8,
        /// Session whose id it names.
        to: u8,
    },
    /// The store starts or stops failing.
    SetFault(u8),
    /// Time passes (a little, or past the session lifetime).
    Advance {
        /// Past the session lifetime?
        long: bool,
    },
    /// The vault restarts: pending sessions are lost, the store is kept.
    Restart,
    /// An honest client runs a whole recovery with the right code.
    Honest {
        /// Which record.
        rec: u8,
    },
    /// The operator deletes a record; the app registers it again.
    DeleteAndRegister {
        /// Which record.
        rec: u8,
    },
}

/// A whole input: a seed for every RNG and the steps.
#[derive(Debug)]
pub struct Scenario {
    /// Seeds the fleet, the vault's and the clients' RNG.
    pub seed: u64,
    /// The steps, at most [`MAX_OPS`].
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Scenario {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let seed = u64::arbitrary(u)?;
        let mut ops = Vec::new();
        while ops.len() < MAX_OPS && !u.is_empty() {
            ops.push(Op::arbitrary(u)?);
        }
        Ok(Self { seed, ops })
    }
}

struct Session {
    rec: u8,
    right: bool,
    state: Option<AwaitingKeyRelease>,
    ke1: RecoveryStart,
    ke3: RecoveryFinish,
    sent: bool,
}

type Store = FaultyStore<MemoryStore>;

struct Model {
    rng: ChaCha20Rng,
    secrets: FleetSecrets,
    policy: VaultPolicy,
    vault: Vault<Store>,
    config: ClientConfig,
    now: u64,
    sessions: Vec<Session>,
    /// The charge number of every KE2 built from each record's live
    /// generation (SPEC.md §8.1 numbers charges from 1).
    issued: [Vec<u64>; RECORDS as usize],
    /// Each record's live generation as last seen.
    generation: [u64; RECORDS as usize],
    fault: Fault,
}

fn id(rec: u8) -> RecordId {
    RecordId([rec; 32])
}

fn code(right: bool) -> RecoveryCode {
    RecoveryCode::new(if right { b"right" } else { b"wrong" }).expect("a valid code")
}

impl Model {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let secrets = FleetSecrets::generate(&mut rng);
        let policy = VaultPolicy {
            max_attempts: MAX,
            ..VaultPolicy::insecure_test_only()
        };
        let vault = Vault::new(
            &secrets,
            policy.clone(),
            FaultyStore::new(MemoryStore::new()),
        )
        .expect("a valid policy");
        let config = ClientConfig::insecure_test_only(secrets.public_keys());
        let mut model = Self {
            rng,
            secrets,
            policy,
            vault,
            config,
            now: 1_000,
            sessions: Vec::new(),
            issued: core::array::from_fn(|_| Vec::new()),
            generation: [0; RECORDS as usize],
            fault: Fault::None,
        };
        for rec in 0..RECORDS {
            assert!(model.register(rec), "registration on a healthy store");
        }
        model
    }

    /// Registers the right code for `rec`; whether the vault confirmed it.
    fn register(&mut self, rec: u8) -> bool {
        let (state, request) =
            Registration::start(&mut self.rng, &self.config, id(rec), &code(true), None)
                .expect("client start");
        let Ok(response) = self
            .vault
            .registration_request(&mut self.rng, self.now, &request)
        else {
            return false;
        };
        let (state, upload) = state
            .finish(&mut self.rng, &response, None)
            .expect("an authentic response");
        let Ok(confirmation) = self.vault.registration_upload(self.now, &upload) else {
            return false;
        };
        state
            .finish(&confirmation)
            .expect("an authentic confirmation");
        true
    }

    fn slot(&self, rec: u8) -> Option<RecordSlot> {
        self.vault
            .store()
            .inner()
            .load(&id(rec))
            .expect("memory loads")
    }

    fn live(&self, rec: u8) -> Option<(u8, u64)> {
        match self.slot(rec) {
            Some(RecordSlot::Live(r)) => Some((r.attempts_used(), r.generation)),
            _ => None,
        }
    }

    /// Call after anything that may have reset or replaced a record.
    fn observe(&mut self, rec: u8) {
        let i = rec as usize;
        match self.live(rec) {
            Some((_, generation)) => {
                if generation != self.generation[i] {
                    self.generation[i] = generation;
                    self.issued[i].clear();
                }
            }
            None => self.issued[i].clear(),
        }
    }

    /// Sends a KE1. Every KE2 answered while the record stayed live in the
    /// same generation was built from it: it is counted, and it must come
    /// with exactly one committed charge (SPEC.md §8.3: charge, then KE2).
    /// `opener`, the client that sent the KE1 (when the model still has
    /// it), opens the sealed KE2 to check the count it reports.
    fn send_ke1(
        &mut self,
        rec: u8,
        ke1: &RecoveryStart,
        opener: Option<&backup_key_vault::client::AwaitingRecoveryResponse>,
    ) -> Option<backup_key_vault::wire::RecoveryResponse> {
        let before = self.live(rec);
        let ke2 = self
            .vault
            .recovery_start(&mut self.rng, self.now, ke1)
            .ok()?;
        let after = self.live(rec);
        if let (Some((used_before, g)), Some((used_after, g2))) = (before, after) {
            if g == g2 {
                assert_eq!(
                    used_after,
                    used_before + 1,
                    "a KE2 built from a record without exactly one charge"
                );
                if let Some(opener) = opener {
                    assert_eq!(
                        opener
                            .open(&ke2)
                            .expect("the vault's KE2 opens")
                            .attempts_remaining,
                        MAX - used_after,
                        "KE2 reports the committed count"
                    );
                }
                if let Some(RecordSlot::Live(r)) = self.slot(rec) {
                    assert!(
                        !self.issued[rec as usize].contains(&r.charges),
                        "two KE2s from one charge"
                    );
                    self.issued[rec as usize].push(r.charges);
                }
            }
        }
        Some(ke2)
    }

    fn start(&mut self, rec: u8, right: bool) -> Option<Session> {
        let (state, ke1) = Recovery::start(&mut self.rng, &self.config, id(rec), &code(right))
            .expect("client start");
        let live_before = self.live(rec).is_some();
        let ke2 = self.send_ke1(rec, &ke1, Some(&state))?;
        // A wrong code's KE3, sealed in the session's channel.
        let wrong_ke3 = state.seal_finish(&ke2, &[0x5A; 64]);
        Some(match state.finish(&mut self.rng, &ke2) {
            Ok((state, ke3)) => {
                assert!(
                    right && live_before,
                    "the client accepted a KE2 it should not have"
                );
                Session {
                    rec,
                    right,
                    state: Some(state),
                    ke1,
                    ke3,
                    sent: false,
                }
            }
            Err(_) => Session {
                rec,
                right: false,
                state: None,
                ke3: wrong_ke3,
                ke1,
                sent: false,
            },
        })
    }

    fn step(&mut self, op: Op) {
        let now = self.now;
        let n = self.sessions.len().max(1);
        match op {
            Op::Start { rec, right } => {
                if let Some(s) = self.start(rec % RECORDS, right) {
                    self.sessions.push(s);
                }
            }
            Op::Finish { slot } => {
                let Some(s) = self.sessions.get_mut(slot as usize % n) else {
                    return;
                };
                if s.sent {
                    return;
                }
                s.sent = true;
                let (ke3, rec, right) = (s.ke3.clone(), s.rec, s.right);
                let state = s.state.take();
                let answer = self.vault.recovery_finish(now, &ke3);
                if !right {
                    assert!(answer.is_err(), "a wrong code released the key");
                }
                self.observe(rec);
                if let (Ok(release), Some(state)) = (answer, state) {
                    state.finish(&release).expect("an authentic release opens");
                }
            }
            Op::ReplayKe3 { slot } => {
                let Some(s) = self.sessions.get(slot as usize % n) else {
                    return;
                };
                if !s.sent {
                    return;
                }
                let ke3 = s.ke3.clone();
                let before = self.vault.store().inner().table().clone();
                assert!(
                    self.vault.recovery_finish(now, &ke3).is_err(),
                    "a replayed KE3 was accepted"
                );
                assert_eq!(
                    self.vault.store().inner().table(),
                    &before,
                    "a replayed KE3 changed state"
                );
            }
            Op::ReplayKe1 { slot } => {
                let Some(s) = self.sessions.get(slot as usize % n) else {
                    return;
                };
                let (rec, ke1) = (s.rec, s.ke1.clone());
                // The relay gets a fresh KE2 (and is charged for it); the
                // session it opens supersedes the record's pending one.
                let _ = self.send_ke1(rec, &ke1, None);
            }
            Op::Splice { from, to } => {
                let (from, to) = (from as usize % n, to as usize % n);
                let (Some(a), Some(b)) = (self.sessions.get(from), self.sessions.get(to)) else {
                    return;
                };
                if from == to || a.rec != b.rec {
                    return;
                }
                let mut ke3 = a.ke3.clone();
                ke3.session_id = b.ke3.session_id;
                let rec = a.rec;
                assert!(
                    self.vault.recovery_finish(now, &ke3).is_err(),
                    "a spliced KE3 was accepted"
                );
                self.observe(rec);
                if let Some(b) = self.sessions.get_mut(to) {
                    b.sent = true;
                    b.state = None;
                }
            }
            Op::SetFault(f) => {
                self.fault =
                    [Fault::None, Fault::FailBeforeApply, Fault::FailAfterApply][f as usize % 3];
                self.vault.store_mut().set_fault(self.fault);
            }
            Op::Advance { long } => {
                self.now += if long {
                    self.policy.session_ttl_ms
                } else {
                    1_000
                };
            }
            Op::Restart => {
                let store = self.vault.store().clone();
                self.vault =
                    Vault::new(&self.secrets, self.policy.clone(), store).expect("restart");
                for s in &mut self.sessions {
                    s.state = None;
                    s.sent = true;
                }
            }
            Op::Honest { rec } => {
                let rec = rec % RECORDS;
                let before = self.live(rec);
                let session = self.start(rec, true);
                let recovered = session.and_then(|s| {
                    let release = self.vault.recovery_finish(self.now, &s.ke3);
                    self.observe(rec);
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
            Op::DeleteAndRegister { rec } => {
                let rec = rec % RECORDS;
                if self.vault.delete_record(&id(rec)).is_ok() {
                    assert!(
                        !matches!(self.slot(rec), Some(RecordSlot::Live(_))),
                        "a deleted record is still live"
                    );
                }
                self.observe(rec);
                if self.live(rec).is_none() && self.register(rec) {
                    assert!(self.live(rec).is_some(), "a confirmed registration is live");
                }
                self.observe(rec);
            }
        }
        self.check();
    }

    fn check(&mut self) {
        for rec in 0..RECORDS {
            let i = rec as usize;
            match self.slot(rec) {
                Some(RecordSlot::Live(r)) => {
                    assert!(r.attempts_used() <= r.payload.max_attempts);
                    // SPEC.md §8.3's claim: KE2s built from charges above
                    // the last one a success forgave number at most the
                    // limit (a reset whose acknowledgement was lost counts:
                    // it followed a proven success).
                    if r.generation == self.generation[i] {
                        let unforgiven = self.issued[i]
                            .iter()
                            .filter(|&&c| c > r.forgiven_through)
                            .count();
                        assert!(
                            unforgiven <= usize::from(MAX),
                            "record {rec}: {unforgiven} KE2s from charges no success forgave"
                        );
                    }
                    assert!(
                        r.generation >= self.generation[i],
                        "record {rec}: generation went backwards"
                    );
                }
                Some(RecordSlot::Erased { generation }) => {
                    assert!(generation >= self.generation[i]);
                }
                None => panic!("record {rec} vanished without a tombstone"),
            }
        }
    }
}

/// Runs one scenario: every step, then healing the store and checking that
/// every record with attempts left still recovers.
pub fn run(scenario: &Scenario) {
    let mut model = Model::new(scenario.seed);
    for &op in &scenario.ops {
        model.step(op);
    }
    model.step(Op::SetFault(0));
    model.step(Op::Advance { long: true });
    for rec in 0..RECORDS {
        model.step(Op::Honest { rec });
    }
}

/// The libFuzzer entry: bytes to a [`Scenario`], then [`run`].
pub fn fuzz(data: &[u8]) {
    if let Ok(scenario) = Scenario::arbitrary_take_rest(Unstructured::new(data)) {
        run(&scenario);
    }
}
