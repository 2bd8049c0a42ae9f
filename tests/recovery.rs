//! Guess-limited recovery: the acceptance tests of SPEC.md §7 and §8.

mod common;
use backup_key_vault::client::Recovery;
use backup_key_vault::vault::{
    Fault, FaultyStore, MemoryStore, RecordSlot, RecordStore, VaultPolicy,
};
use backup_key_vault::{ClientError, RecoveryCode, VaultError};
use common::*;

const RIGHT: &str = "right code";
const WRONG: &str = "wrong code";

fn attempts_used<S: RecordStore>(w: &World<S>, n: u8) -> Option<u8> {
    match w.vault.store().load(&id(n)).unwrap() {
        Some(RecordSlot::Live(r)) => Some(r.attempts_used()),
        _ => None,
    }
}

#[test]
fn each_wrong_code_costs_exactly_one_attempt_and_success_resets() {
    let mut w = World::new(2);
    let registered = w.register(id(1), RIGHT).unwrap();
    let max = w.vault.policy().max_attempts;
    for spent in 1..=3u8 {
        // Watch the KE2's own count as well as the store's.
        let code = RecoveryCode::new(WRONG.as_bytes()).unwrap();
        let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
        assert_eq!(state.open(&ke2).unwrap().attempts_remaining, max - spent);
        assert_eq!(attempts_used(&w, 1), Some(spent));
        assert_eq!(
            state.finish(&mut w.rng, &ke2).err(),
            Some(ClientError::RecoveryFailed)
        );
        assert_eq!(
            attempts_used(&w, 1),
            Some(spent),
            "a failed guess costs nothing more"
        );
    }
    let recovered = w.recover(id(1), RIGHT).unwrap();
    assert_eq!(recovered.backup_key, registered.backup_key);
    assert_eq!(
        attempts_used(&w, 1),
        Some(0),
        "success resets to the maximum"
    );
}

#[test]
fn a_wrong_ke3_costs_the_attempt_that_ke2_already_charged() {
    // The client side fails a wrong code before KE3; an attacker that sends a
    // KE3 anyway (here: one from another session) changes nothing more.
    let mut w = World::new(3);
    w.register(id(1), RIGHT).unwrap();
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (a, ke1a) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2a = w.vault.recovery_start(&mut w.rng, w.now, &ke1a).unwrap();
    let (_, ke3a) = a.finish(&mut w.rng, &ke2a).unwrap();
    // A second session for the same record supersedes the first.
    let (b, ke1b) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2b = w.vault.recovery_start(&mut w.rng, w.now, &ke1b).unwrap();
    assert_eq!(attempts_used(&w, 1), Some(2));
    // KE3 of the superseded session: rejected, no state change.
    assert_eq!(
        w.vault.recovery_finish(w.now, &ke3a).err(),
        Some(VaultError::AuthenticationFailed)
    );
    assert_eq!(attempts_used(&w, 1), Some(2));
    // KE3 of session A presented as session B's: sealed under session A's
    // channel key, it does not open under B's, and leaves B alone.
    let mut spliced = ke3a.clone();
    spliced.session_id = ke2b.session_id;
    assert_eq!(
        w.vault.recovery_finish(w.now, &spliced).err(),
        Some(VaultError::RequestNotAuthentic)
    );
    assert_eq!(attempts_used(&w, 1), Some(2));
    // Session A's OPAQUE KE3 resealed into B's channel (an attacker with
    // both sessions' channel keys): OPAQUE rejects it and B is used up.
    let wrong = b.seal_finish(&ke2b, &[0x11; 64]);
    assert_eq!(
        w.vault.recovery_finish(w.now, &wrong).err(),
        Some(VaultError::AuthenticationFailed)
    );
    assert_eq!(attempts_used(&w, 1), Some(2));
    // Session B was consumed by that KE3, so its own KE3 fails too.
    let (_, ke3b) = b.finish(&mut w.rng, &ke2b).unwrap();
    assert_eq!(
        w.vault.recovery_finish(w.now, &ke3b).err(),
        Some(VaultError::AuthenticationFailed)
    );
}

#[test]
fn after_the_last_failure_the_record_is_erased_and_the_right_code_fails() {
    let mut w = World::with_policy(
        4,
        MemoryStore::new(),
        VaultPolicy {
            max_attempts: 3,
            ..VaultPolicy::insecure_test_only()
        },
    );
    w.register(id(1), RIGHT).unwrap();
    for _ in 0..3 {
        assert_eq!(
            w.recover(id(1), WRONG).err(),
            Some(Failure::Client(ClientError::RecoveryFailed))
        );
    }
    // The client saw the last failure locally and sent no KE3, so the last
    // session is still pending: a new KE1 is refused until it expires.
    assert_eq!(
        w.recover(id(1), RIGHT).err(),
        Some(Failure::Vault(VaultError::AttemptsExhausted))
    );
    assert!(matches!(
        w.vault.store().load(&id(1)).unwrap(),
        Some(RecordSlot::Live(_))
    ));
    // Once it expired, the next KE1 finds the record exhausted with no live
    // session, erases it, and answers as for an unknown record.
    w.now += w.vault.policy().session_ttl_ms;
    assert_eq!(
        w.recover(id(1), RIGHT).err(),
        Some(Failure::Client(ClientError::RecoveryFailed))
    );
    let slot = w.vault.store().load(&id(1)).unwrap();
    assert_eq!(
        slot,
        Some(RecordSlot::Erased { generation: 1 }),
        "only a tombstone remains"
    );
    assert_eq!(
        w.recover(id(1), RIGHT).err(),
        Some(Failure::Client(ClientError::RecoveryFailed))
    );
}

#[test]
fn a_failed_ke3_on_the_last_attempt_erases_at_once() {
    let mut w = World::with_policy(
        5,
        MemoryStore::new(),
        VaultPolicy {
            max_attempts: 1,
            ..VaultPolicy::insecure_test_only()
        },
    );
    w.register(id(1), RIGHT).unwrap();
    // An attacker who has a KE3 for another session sends it into the last
    // attempt's session.
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    assert_eq!(state.open(&ke2).unwrap().attempts_remaining, 0);
    // Without the channel's keys it cannot even seal a KE3: refused before
    // the session is touched.
    let forged = backup_key_vault::wire::RecoveryFinish {
        record_id: id(1),
        session_id: ke2.session_id,
        sealed: [7; 80],
    };
    assert_eq!(
        w.vault.recovery_finish(w.now, &forged).err(),
        Some(VaultError::RequestNotAuthentic)
    );
    // A forged KE3 sealed in this session's channel (what an attacker
    // holding the channel keys could send): the OPAQUE check fails and the
    // last attempt erases the record.
    let wrong_ke3 = state.seal_finish(&ke2, &[7; 64]);
    assert_eq!(
        w.vault.recovery_finish(w.now, &wrong_ke3).err(),
        Some(VaultError::AuthenticationFailed)
    );
    assert_eq!(
        w.vault.store().load(&id(1)).unwrap(),
        Some(RecordSlot::Erased { generation: 1 })
    );
}

#[test]
fn twenty_parallel_ke1s_yield_at_most_the_remaining_attempts() {
    let mut w = World::new(6);
    w.register(id(1), RIGHT).unwrap();
    // Spend two attempts first.
    w.recover(id(1), WRONG).unwrap_err();
    w.recover(id(1), WRONG).unwrap_err();
    let remaining = (w.vault.policy().max_attempts - 2) as usize;
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let mut issued = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        match w.vault.recovery_start(&mut w.rng, w.now, &ke1) {
            Ok(ke2) => issued.push((state, ke2)),
            Err(e) => {
                assert_eq!(e, VaultError::AttemptsExhausted);
                refused += 1;
            }
        }
    }
    assert_eq!(issued.len(), remaining);
    assert_eq!(refused, 20 - remaining);
    // Only the newest session can still succeed; it does, with the right code.
    let (state, ke2) = issued.pop().unwrap();
    let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let release = w.vault.recovery_finish(w.now, &ke3).unwrap();
    state.finish(&release).unwrap();
    for (state, ke2) in issued {
        let (_, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
        assert_eq!(
            w.vault.recovery_finish(w.now, &ke3).err(),
            Some(VaultError::AuthenticationFailed)
        );
    }
    assert_eq!(attempts_used(&w, 1), Some(0));
}

#[test]
fn a_failing_store_makes_the_vault_release_nothing() {
    for fault in [Fault::FailBeforeApply, Fault::FailAfterApply] {
        let mut w = World::with_store(7, FaultyStore::new(MemoryStore::new()));
        w.register(id(1), RIGHT).unwrap();
        let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();

        // No KE2 when the charge cannot be committed.
        w.vault.store_mut().set_fault(fault);
        let (_, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        assert_eq!(
            w.vault.recovery_start(&mut w.rng, w.now, &ke1).err(),
            Some(VaultError::Unavailable)
        );
        assert_eq!(w.vault.pending_recoveries(), 0, "no session was opened");

        // No key when the reset cannot be committed.
        w.vault.store_mut().set_fault(Fault::None);
        let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
        let (_, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
        w.vault.store_mut().set_fault(fault);
        assert_eq!(
            w.vault.recovery_finish(w.now, &ke3).err(),
            Some(VaultError::Unavailable)
        );

        // A store that cannot even be read releases nothing either.
        w.vault.store_mut().set_fault(Fault::None);
        w.vault.store_mut().set_fail_loads(true);
        let (_, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        assert_eq!(
            w.vault.recovery_start(&mut w.rng, w.now, &ke1).err(),
            Some(VaultError::Unavailable)
        );
        w.vault.store_mut().set_fail_loads(false);

        // With the store healthy again the right code still works.
        w.recover(id(1), RIGHT).unwrap();
    }
}

#[test]
fn ke3_replayed_or_after_expiry_is_rejected_without_state_change() {
    let mut w = World::new(8);
    w.register(id(1), RIGHT).unwrap();
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();

    // Replay of a KE3 that already succeeded.
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (_, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    w.vault.recovery_finish(w.now, &ke3).unwrap();
    let before = w.vault.store().table().clone();
    assert_eq!(
        w.vault.recovery_finish(w.now, &ke3).err(),
        Some(VaultError::AuthenticationFailed)
    );
    assert_eq!(w.vault.store().table(), &before);

    // KE3 after the session expired.
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (_, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let before = w.vault.store().table().clone();
    let later = w.now + w.vault.policy().session_ttl_ms;
    assert_eq!(
        w.vault.recovery_finish(later, &ke3).err(),
        Some(VaultError::AuthenticationFailed)
    );
    assert_eq!(w.vault.store().table(), &before);

    // KE3 naming another record's session is refused and leaves it alone.
    w.register(id(2), RIGHT).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let mut other = ke3.clone();
    other.record_id = id(2);
    assert_eq!(
        w.vault.recovery_finish(w.now, &other).err(),
        Some(VaultError::AuthenticationFailed)
    );
    let release = w.vault.recovery_finish(w.now, &ke3).unwrap();
    state.finish(&release).unwrap();
}

#[test]
fn unknown_record_gets_a_fake_response_like_a_fresh_record() {
    let mut w = World::new(9);
    w.register(id(1), RIGHT).unwrap();
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (real_state, real_ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let real = w
        .vault
        .recovery_start(&mut w.rng, w.now, &real_ke1)
        .unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(9), &code).unwrap();
    let fake = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    assert_eq!(fake.to_bytes().len(), real.to_bytes().len());
    let (fake_opened, real_opened) = (state.open(&fake).unwrap(), real_state.open(&real).unwrap());
    assert_eq!(
        fake_opened.attempts_remaining, real_opened.attempts_remaining,
        "both report a fresh record"
    );
    assert_eq!(fake_opened.stretching, real_opened.stretching);
    assert_eq!(
        state.finish(&mut w.rng, &fake).err(),
        Some(ClientError::RecoveryFailed)
    );
    assert_eq!(
        w.vault.store().load(&id(9)).unwrap(),
        None,
        "nothing was created"
    );
}

#[test]
fn busy_vault_refuses_before_charging() {
    let mut w = World::with_policy(
        10,
        MemoryStore::new(),
        VaultPolicy {
            max_pending_recoveries: 2,
            ..VaultPolicy::insecure_test_only()
        },
    );
    for n in 1..=3 {
        w.register(id(n), RIGHT).unwrap();
    }
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    for n in 1..=2 {
        let (_, ke1) = Recovery::start(&mut w.rng, &w.config, id(n), &code).unwrap();
        w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    }
    let (_, ke1) = Recovery::start(&mut w.rng, &w.config, id(3), &code).unwrap();
    assert_eq!(
        w.vault.recovery_start(&mut w.rng, w.now, &ke1).err(),
        Some(VaultError::Busy)
    );
    assert_eq!(attempts_used(&w, 3), Some(0), "a refused KE1 costs nothing");
    // Once the pending sessions expire there is room again.
    w.now += w.vault.policy().session_ttl_ms;
    w.recover(id(3), RIGHT).unwrap();
}

#[test]
fn client_refuses_parameters_below_its_floor_or_above_its_ceiling() {
    use backup_key_vault::client::ClientConfig;
    use backup_key_vault::StretchingParams;
    let mut w = World::new(11);
    w.register(id(1), RIGHT).unwrap();
    // A production client (RFC 9106 floor) meets a record with weak params,
    // as a relay downgrading them would present it.
    let strict = ClientConfig::new(w.secrets.public_keys());
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &strict, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    assert_eq!(
        state.finish(&mut w.rng, &ke2).err(),
        Some(ClientError::StretchingBelowFloor)
    );
    // Parameters above the client's ceiling (what a compromised fleet
    // could send to exhaust the phone; a relay cannot, they are sealed) are
    // refused too.
    let low_ceiling = w.config.clone().with_ceiling(StretchingParams {
        m_cost: 4,
        t_cost: 1,
        p_cost: 1,
    });
    let (state, ke1) = Recovery::start(&mut w.rng, &low_ceiling, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    assert_eq!(
        state.finish(&mut w.rng, &ke2).err(),
        Some(ClientError::StretchingAboveCeiling)
    );
    // A relay that changes a byte of the sealed response (the parameters
    // are inside it) just fails the exchange.
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let mut ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    ke2.sealed[9] ^= 1;
    assert_eq!(
        state.finish(&mut w.rng, &ke2).err(),
        Some(ClientError::RecoveryFailed)
    );
}

#[test]
fn tampered_release_is_detected() {
    let mut w = World::new(12);
    w.register(id(1), RIGHT).unwrap();
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let mut release = w.vault.recovery_finish(w.now, &ke3).unwrap();
    release.sealed[5] ^= 1;
    assert_eq!(
        state.finish(&release).err(),
        Some(ClientError::ReleaseNotAuthentic)
    );
}

#[test]
fn operator_deletion_destroys_and_reveals_nothing() {
    let mut w = World::new(13);
    w.register(id(1), RIGHT).unwrap();
    w.vault.delete_record(&id(1)).unwrap();
    assert_eq!(
        w.vault.store().load(&id(1)).unwrap(),
        Some(RecordSlot::Erased { generation: 1 })
    );
    assert_eq!(
        w.recover(id(1), RIGHT).err(),
        Some(Failure::Client(ClientError::RecoveryFailed))
    );
    // The id can be registered afresh, with a higher generation.
    assert_eq!(w.register(id(1), RIGHT).unwrap().generation, 2);
}

#[test]
fn the_byte_interface_answers_rejections() {
    use backup_key_vault::wire::{Rejection, RejectionCode};
    let mut w = World::new(14);
    let now = w.now;
    let answer = w.vault.handle(&mut w.rng, now, &[0x05, 0x01, 0x00]);
    assert_eq!(
        Rejection::from_bytes(&answer).unwrap().code,
        RejectionCode::Malformed
    );
    let answer = w.vault.handle(&mut w.rng, now, &[]);
    assert_eq!(
        Rejection::from_bytes(&answer).unwrap().code,
        RejectionCode::Malformed
    );
    // A vault-to-client message sent to the vault is malformed, not served.
    let release = backup_key_vault::wire::KeyRelease {
        session_id: backup_key_vault::SessionId([0; 16]),
        sealed: [0; 65],
    };
    let answer = w.vault.handle(&mut w.rng, now, &release.to_bytes());
    assert_eq!(
        Rejection::from_bytes(&answer).unwrap().code,
        RejectionCode::Malformed
    );
    // The whole recovery through bytes.
    w.register(id(1), RIGHT).unwrap();
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.handle(&mut w.rng, now, &ke1.to_bytes());
    let ke2 = backup_key_vault::wire::RecoveryResponse::from_bytes(&ke2).unwrap();
    let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let release = w.vault.handle(&mut w.rng, now, &ke3.to_bytes());
    let release = backup_key_vault::wire::KeyRelease::from_bytes(&release).unwrap();
    state.finish(&release).unwrap();
    // Replaying the KE3 bytes: an uninformative rejection.
    let answer = w.vault.handle(&mut w.rng, now, &ke3.to_bytes());
    assert_eq!(
        Rejection::from_bytes(&answer).unwrap().code,
        RejectionCode::AuthenticationFailed
    );
}

#[test]
fn oprf_answers_collected_before_registration_are_worthless_after() {
    // An attacker replays one KE1 (one blinded guess) for an id before it is
    // registered, and again after. If the OPRF key depended only on the id,
    // both answers would carry the same evaluated element, and every answer
    // collected for free before registration would test a guess offline
    // against the record's first KE2.
    let mut w = World::new(15);
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let answer = |w: &mut World<_>| {
        let response = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
        state.open(&response).unwrap().ke2
    };
    let before = answer(&mut w);
    let again = answer(&mut w);
    assert_eq!(
        before[..32],
        again[..32],
        "an unknown id answers consistently"
    );
    w.register(id(1), RIGHT).unwrap();
    let after = answer(&mut w);
    assert_ne!(before[..32], after[..32], "the record has its own OPRF key");
    // A re-registration gets a fresh key again.
    w.vault.delete_record(&id(1)).unwrap();
    w.register(id(1), RIGHT).unwrap();
    let fresh = answer(&mut w);
    assert_ne!(after[..32], fresh[..32]);
}

#[test]
fn a_host_that_rewinds_the_clock_cannot_revive_an_expired_session() {
    let mut w = World::new(16);
    w.register(id(1), RIGHT).unwrap();
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (_, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    // Time passes (the vault sees it through any request) ...
    let later = w.now + w.vault.policy().session_ttl_ms;
    let (_, other) = Recovery::start(&mut w.rng, &w.config, id(2), &code).unwrap();
    w.vault.recovery_start(&mut w.rng, later, &other).unwrap();
    // ... then the host hands the vault an old time with the old KE3.
    assert_eq!(
        w.vault.recovery_finish(w.now, &ke3).err(),
        Some(VaultError::AuthenticationFailed)
    );
}

#[test]
fn inconsistent_policies_are_refused() {
    use backup_key_vault::vault::Vault;
    use backup_key_vault::{FleetSecrets, StretchingParams};
    let secrets = FleetSecrets::generate(&mut rng(17));
    let bad = [
        VaultPolicy {
            max_attempts: 0,
            ..VaultPolicy::default()
        },
        VaultPolicy {
            max_pending_recoveries: 0,
            ..VaultPolicy::default()
        },
        VaultPolicy {
            max_pending_registrations: 0,
            ..VaultPolicy::default()
        },
        VaultPolicy {
            session_ttl_ms: 0,
            ..VaultPolicy::default()
        },
        // Unknown records would answer with parameters no real record has.
        VaultPolicy {
            unknown_record_stretching: StretchingParams::INSECURE_TEST_ONLY,
            ..VaultPolicy::default()
        },
    ];
    for policy in bad {
        assert_eq!(
            Vault::new(&secrets, policy.clone(), MemoryStore::new()).err(),
            Some(VaultError::InvalidPolicy),
            "{policy:?}"
        );
    }
    assert!(Vault::new(&secrets, VaultPolicy::default(), MemoryStore::new()).is_ok());
}

/// A store that keeps every command it is asked to commit, so a test can
/// replay one later, as a store that retried a commit of unknown outcome
/// would (SPEC.md §8.3).
struct Recording {
    inner: MemoryStore,
    log: Vec<backup_key_vault::vault::Command>,
}

impl RecordStore for Recording {
    fn load(
        &self,
        record_id: &backup_key_vault::RecordId,
    ) -> Result<Option<RecordSlot>, backup_key_vault::StoreError> {
        self.inner.load(record_id)
    }

    fn commit(
        &mut self,
        command: &backup_key_vault::vault::Command,
    ) -> Result<backup_key_vault::vault::Applied, backup_key_vault::StoreError> {
        self.log.push(command.clone());
        self.inner.commit(command)
    }
}

#[test]
fn commands_applied_twice_give_no_fresh_attempts() {
    use backup_key_vault::vault::{Applied, Command, Refusal};
    let store = Recording {
        inner: MemoryStore::new(),
        log: Vec::new(),
    };
    let mut w = World::with_store(31, store);
    w.register(id(1), RIGHT).unwrap();
    w.recover(id(1), RIGHT).unwrap();
    let register = w.vault.store().log[0].clone();
    let reset = w.vault.store().log.last().cloned().unwrap();
    assert!(matches!(register, Command::Register { generation: 1, .. }));
    assert!(matches!(reset, Command::ResetAttempts { charge: 1, .. }));

    // A guesser spends every attempt.
    let max = w.vault.policy().max_attempts;
    for _ in 0..max {
        assert_eq!(
            w.recover(id(1), WRONG).err(),
            Some(Failure::Client(ClientError::RecoveryFailed))
        );
    }
    assert_eq!(attempts_used(&w, 1), Some(max));
    // The success's reset, applied again: no attempt comes back, and it
    // reports what it reported the first time (nothing was tried before).
    assert_eq!(
        w.vault.store_mut().commit(&reset),
        Ok(Applied::Reset {
            unforgiven_attempts: 0
        })
    );
    assert_eq!(attempts_used(&w, 1), Some(max));
    assert!(w.recover(id(1), RIGHT).is_err());
    // When the last guess's session has expired, the next KE1 erases it.
    w.now += w.vault.policy().session_ttl_ms + 1;
    assert!(w.recover(id(1), RIGHT).is_err());

    // Once the record is erased, the first registration, applied again,
    // does not bring it back.
    assert_eq!(attempts_used(&w, 1), None, "erased");
    assert_eq!(
        w.vault.store_mut().commit(&register),
        Ok(Applied::Refused(Refusal::GenerationMismatch))
    );
    assert!(matches!(
        w.vault.store().load(&id(1)).unwrap(),
        Some(RecordSlot::Erased { generation: 1 })
    ));
    // A new registration takes the next generation.
    w.register(id(1), RIGHT).unwrap();
    assert!(matches!(
        w.vault.store().log.last(),
        Some(Command::Register { generation: 2, .. })
    ));
}

// ----- Issue 19: the release tells how many attempts nobody forgave ------

/// A relay that holds the user's KE1 back and spends guesses first.
fn spend_guesses<S: RecordStore>(w: &mut World<S>, record: u8, guesses: u8) {
    for _ in 0..guesses {
        assert_eq!(
            w.recover(id(record), WRONG).err(),
            Some(Failure::Client(ClientError::RecoveryFailed))
        );
    }
}

#[test]
fn the_release_tells_how_many_guesses_a_relay_spent_before_the_recovery() {
    let max = 5;
    let mut w = World::with_policy(
        40,
        MemoryStore::new(),
        VaultPolicy {
            max_attempts: max,
            ..VaultPolicy::insecure_test_only()
        },
    );
    for k in 0..max {
        let n = 40 + k;
        let registered = w.register(id(n), RIGHT).unwrap();
        // The user sends KE1; the relay holds it and spends k guesses.
        let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
        let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(n), &code).unwrap();
        spend_guesses(&mut w, n, k);
        // Then it lets the user's KE1 through, which may hold the last
        // attempt (k = max - 1), and the success forgives every guess.
        let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
        let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
        let release = w.vault.recovery_finish(w.now, &ke3).unwrap();
        let recovered = state.finish(&release).unwrap();
        assert_eq!(recovered.backup_key, registered.backup_key);
        assert_eq!(attempts_used(&w, n), Some(0), "the guesses are forgiven");
        assert_eq!(recovered.unforgiven_attempts, k, "but the user is told");
        // The next recovery finds nothing new.
        assert_eq!(w.recover(id(n), RIGHT).unwrap().unforgiven_attempts, 0);
    }
}

#[test]
fn guesses_made_while_the_users_session_is_pending_are_told_next_time() {
    let mut w = World::new(41);
    w.register(id(1), RIGHT).unwrap();
    spend_guesses(&mut w, 1, 2);
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    // A guess charged after the user's own charge, before its KE3. (It
    // would supersede the user's session on this vault; a second vault on
    // the same store, or a fleet node, keeps both: charge it directly.)
    use backup_key_vault::vault::{Applied, Command};
    let charged = w.vault.store_mut().commit(&Command::ChargeAttempt {
        record_id: id(1),
        generation: 1,
    });
    assert!(matches!(charged, Ok(Applied::Charged { charge: 4, .. })));
    let release = w.vault.recovery_finish(w.now, &ke3).unwrap();
    // Charges 1 and 2 came before the user's charge 3; charge 4 is not
    // forgiven by it and is not reported now.
    assert_eq!(state.finish(&release).unwrap().unforgiven_attempts, 2);
    assert_eq!(attempts_used(&w, 1), Some(1));
    // The next success reports it.
    assert_eq!(w.recover(id(1), RIGHT).unwrap().unforgiven_attempts, 1);
    assert_eq!(w.recover(id(1), RIGHT).unwrap().unforgiven_attempts, 0);
}

/// Runs the user's recovery of `id(n)` up to the release, which the relay
/// then holds: the client state that waits for it, and the release.
fn held_release(
    w: &mut World<MemoryStore>,
    n: u8,
) -> (
    backup_key_vault::client::AwaitingKeyRelease,
    backup_key_vault::wire::KeyRelease,
) {
    let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(n), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let release = w.vault.recovery_finish(w.now, &ke3).unwrap();
    (state, release)
}

#[test]
fn tampering_with_the_releases_count_fails_the_release() {
    use backup_key_vault::wire::WRAPPED_KEY_LEN;
    let mut w = World::new(42);
    w.register(id(1), RIGHT).unwrap();
    // The count is the byte after the wrapped key. ChaCha20 maps plaintext
    // bit i to ciphertext bit i, so flipping ciphertext bits there is the
    // relay's best try at turning "3" into "2" (3 ^ 1) or "0" (3 ^ 3); the
    // tag catches it.
    for flip in [1u8, 3, 0x80] {
        spend_guesses(&mut w, 1, 3);
        let (state, mut release) = held_release(&mut w, 1);
        release.sealed[WRAPPED_KEY_LEN] ^= flip;
        assert_eq!(
            state.finish(&release).err(),
            Some(ClientError::ReleaseNotAuthentic),
            "flip {flip:#x}"
        );
    }
    // Untouched, the release tells the three guesses.
    spend_guesses(&mut w, 1, 3);
    let (state, release) = held_release(&mut w, 1);
    assert_eq!(state.finish(&release).unwrap().unforgiven_attempts, 3);
    // Nor can the relay hand over the release of another session that said
    // 0 instead of the one that says 3.
    let (_, says_zero) = held_release(&mut w, 1);
    spend_guesses(&mut w, 1, 3);
    let (state, says_three) = held_release(&mut w, 1);
    let mut substituted = says_zero.clone();
    substituted.session_id = says_three.session_id;
    assert_eq!(
        state.finish(&substituted).err(),
        Some(ClientError::ReleaseNotAuthentic)
    );
}

#[test]
fn a_relay_cannot_forge_attempts_remaining_and_the_client_reports_the_sealed_count() {
    let mut w = World::new(43);
    let registered = w.register(id(1), RIGHT).unwrap();
    let max = w.vault.policy().max_attempts;
    for at in [0, 1, 17, 100, 364] {
        // Two guesses, then the user's recovery; the relay rewrites a byte
        // of the sealed KE2 (where the count used to travel in clear): the
        // response no longer opens. The untouched one does.
        spend_guesses(&mut w, 1, 2);
        let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
        let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
        assert_eq!(state.open(&ke2).unwrap().attempts_remaining, max - 3);
        let mut forged = ke2.clone();
        match forged.sealed.get_mut(at) {
            Some(byte) => *byte ^= 0x40,
            None => forged.session_id.0[0] ^= 0x40,
        }
        assert_eq!(
            state.open(&forged),
            Err(ClientError::RecoveryFailed),
            "byte {at}"
        );
        let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
        let release = w.vault.recovery_finish(w.now, &ke3).unwrap();
        let recovered = state.finish(&release).unwrap();
        assert_eq!(recovered.backup_key, registered.backup_key);
        assert_eq!(recovered.unforgiven_attempts, 2, "byte {at}");
    }
}

/// A store that applies every reset twice and answers with the second
/// result, as a store that lost the outcome of a commit and appended it
/// again would (SPEC.md §8.3 item 5).
struct ResetTwice(MemoryStore);

impl RecordStore for ResetTwice {
    fn load(
        &self,
        record_id: &backup_key_vault::RecordId,
    ) -> Result<Option<RecordSlot>, backup_key_vault::StoreError> {
        self.0.load(record_id)
    }

    fn commit(
        &mut self,
        command: &backup_key_vault::vault::Command,
    ) -> Result<backup_key_vault::vault::Applied, backup_key_vault::StoreError> {
        if matches!(
            command,
            backup_key_vault::vault::Command::ResetAttempts { .. }
        ) {
            self.0.commit(command)?;
        }
        self.0.commit(command)
    }
}

#[test]
fn a_reset_applied_twice_still_tells_the_count() {
    let mut w = World::with_store(44, ResetTwice(MemoryStore::new()));
    w.register(id(1), RIGHT).unwrap();
    spend_guesses(&mut w, 1, 4);
    // The first application forgave the guesses; the second, whose result
    // the vault sees, reports what the first computed.
    assert_eq!(w.recover(id(1), RIGHT).unwrap().unforgiven_attempts, 4);
    assert_eq!(attempts_used(&w, 1), Some(0));
    assert_eq!(w.recover(id(1), RIGHT).unwrap().unforgiven_attempts, 0);
}

#[test]
fn a_relay_answering_ke1_with_its_own_ke2_learns_nothing_about_its_guess() {
    // The user's record is at the real fleet. The relay runs a vault of
    // its own where it registered the same record under a guessed code,
    // and answers the user's KE1 from it. A right guess opens the envelope
    // (under the relay's key-exchange key); a wrong one does not. The app
    // must fail the same way in both cases, or the relay tests guesses
    // outside the real vault's count.
    //
    // Since revision 11 a relay cannot even open the KE1 (it is sealed to
    // the fleet's transport key), so this plays the stronger relay that
    // stole the transport private key but not the OPAQUE keys.
    let mut w = World::new(41);
    w.register(id(1), RIGHT).unwrap();
    for (guess, opens) in [(RIGHT, true), (WRONG, false)] {
        let mut relay = World::new(42 + u64::from(opens));
        let code = RecoveryCode::new(RIGHT.as_bytes()).unwrap();
        let (_, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        assert_eq!(
            relay
                .vault
                .recovery_start(&mut relay.rng, relay.now, &ke1)
                .err(),
            Some(VaultError::RequestNotAuthentic),
            "a vault without the fleet's transport key cannot open KE1"
        );
        let mut stolen = *relay.secrets.to_bytes();
        stolen[97..129].copy_from_slice(&w.secrets.to_bytes()[97..129]);
        let secrets = backup_key_vault::FleetSecrets::from_bytes(&stolen).unwrap();
        relay.vault = backup_key_vault::vault::Vault::new(
            &secrets,
            VaultPolicy::insecure_test_only(),
            MemoryStore::new(),
        )
        .unwrap();
        relay.config =
            backup_key_vault::client::ClientConfig::insecure_test_only(secrets.public_keys());
        relay.register(id(1), guess).unwrap();
        let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
        let forged = relay
            .vault
            .recovery_start(&mut relay.rng, relay.now, &ke1)
            .unwrap();
        assert_eq!(
            state.finish(&mut w.rng, &forged).err(),
            Some(ClientError::RecoveryFailed),
            "guess {guess:?} (envelope opens: {opens})"
        );
    }
    // The real fleet charged nothing.
    assert_eq!(attempts_used(&w, 1), Some(0));
}
