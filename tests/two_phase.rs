//! The vault's two-phase interface (SPEC.md §8.3): `begin` names the command
//! an answer depends on, `resume` finishes with the outcome of committing it.
//! This is how a fleet replicates the vault; here replicas share one
//! ordered log by hand.

mod common;
use backup_key_vault::client::Recovery;
use backup_key_vault::vault::{
    Answer, Applied, Command, MemoryStore, RecordStore, RecordTable, Refusal, Step, Vault,
    VaultPolicy,
};
use backup_key_vault::{RecoveryCode, StoreError, VaultError};
use common::*;

fn suspended(step: Step) -> backup_key_vault::vault::Suspended {
    match step {
        Step::Commit(s) => s,
        Step::Answered(a) => panic!("expected a command to commit, got {a:?}"),
    }
}

#[test]
fn replicas_racing_for_the_last_attempt_issue_one_ke2() {
    let policy = VaultPolicy {
        max_attempts: 1,
        ..VaultPolicy::insecure_test_only()
    };
    let mut w = World::with_policy(50, MemoryStore::new(), policy.clone());
    w.register(id(1), "code").unwrap();
    // A second replica with the same secrets and the same state.
    let mut replica = Vault::new(&w.secrets, policy, w.vault.store().clone()).unwrap();
    let code = RecoveryCode::new(b"code").unwrap();
    let (_, ke1_a) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let (_, ke1_b) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();

    // Both replicas see one attempt left and propose a charge.
    let a = suspended(w.vault.begin(&mut w.rng, w.now, &ke1_a.to_bytes()).unwrap());
    let b = suspended(replica.begin(&mut w.rng, w.now, &ke1_b.to_bytes()).unwrap());
    assert!(matches!(a.command(), Command::ChargeAttempt { .. }));
    assert_eq!(a.command(), b.command());

    // Consensus orders them; the state machine decides at apply time.
    let mut log = w.vault.store().table().clone();
    let outcome_a = log.apply(a.command());
    let outcome_b = log.apply(b.command());
    assert!(matches!(
        outcome_a,
        Applied::Charged {
            attempts_remaining: 0,
            ..
        }
    ));
    assert_eq!(outcome_b, Applied::Refused(Refusal::Exhausted));

    let now = w.now;
    let answer_a = w.vault.resume(&mut w.rng, now, a, Ok(outcome_a)).unwrap();
    assert!(matches!(answer_a, Answer::RecoveryResponse(_)));
    assert_eq!(
        replica.resume(&mut w.rng, now, b, Ok(outcome_b)).err(),
        Some(VaultError::AttemptsExhausted)
    );
    let _ = RecordTable::new();
}

#[test]
fn an_uncommitted_command_releases_nothing_and_opens_no_session() {
    let mut w = World::new(51);
    w.register(id(1), "code").unwrap();
    let code = RecoveryCode::new(b"code").unwrap();
    let (_, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let now = w.now;
    let s = suspended(w.vault.begin(&mut w.rng, now, &ke1.to_bytes()).unwrap());
    assert_eq!(
        w.vault.resume(&mut w.rng, now, s, Err(StoreError)).err(),
        Some(VaultError::Unavailable)
    );
    assert_eq!(w.vault.pending_recoveries(), 0);
}

#[test]
fn the_key_waits_for_the_reset() {
    let mut w = World::new(52);
    w.register(id(1), "code").unwrap();
    let code = RecoveryCode::new(b"code").unwrap();
    let (state, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let (state, ke3) = state.finish(&mut w.rng, &ke2).unwrap();
    let now = w.now;
    let s = suspended(w.vault.begin(&mut w.rng, now, &ke3.to_bytes()).unwrap());
    assert!(matches!(s.command(), Command::ResetAttempts { .. }));
    let applied = w.vault.store_mut().commit(s.command()).unwrap();
    let Answer::KeyRelease(release) = w.vault.resume(&mut w.rng, now, s, Ok(applied)).unwrap()
    else {
        panic!("expected a key release")
    };
    state.finish(&release).unwrap();
}

#[test]
fn a_registration_is_confirmed_only_after_its_register_command() {
    use backup_key_vault::client::Registration;
    let mut w = World::new(53);
    let code = RecoveryCode::new(b"code").unwrap();
    let (state, request) = Registration::start(&mut w.rng, &w.config, id(1), &code, None).unwrap();
    let response = w
        .vault
        .registration_request(&mut w.rng, w.now, &request)
        .unwrap();
    let (_, upload) = state.finish(&mut w.rng, &response, None).unwrap();
    let now = w.now;
    let s = suspended(w.vault.begin(&mut w.rng, now, &upload.to_bytes()).unwrap());
    assert!(matches!(
        s.command(),
        Command::Register { replaces: None, .. }
    ));
    // Another registration for the id won the race in the log.
    assert_eq!(
        w.vault
            .resume(
                &mut w.rng,
                now,
                s,
                Ok(Applied::Refused(Refusal::RecordExists))
            )
            .err(),
        Some(VaultError::RegistrationRefused)
    );
    assert_eq!(w.vault.store().load(&id(1)).unwrap(), None);
}
