//! The vault over records the host keeps and the vault checks (SPEC.md
//! §8.5): registration and recovery work, and a host that rolls its tree
//! back gets no extra guess.

mod common;

use backup_key_vault::vault::tree;
use backup_key_vault::vault::verified::{MemoryHost, VerifiedStore};
use backup_key_vault::vault::{RecordStore, VaultPolicy};
use backup_key_vault::VaultError;
use common::{id, Failure, World};

fn world(cache: usize) -> World<VerifiedStore<MemoryHost>> {
    let mut policy = VaultPolicy::insecure_test_only();
    policy.max_attempts = 3;
    World::with_policy(
        7,
        VerifiedStore::new(MemoryHost::new(), tree::EMPTY, cache),
        policy,
    )
}

#[test]
fn registers_and_recovers_through_proofs() {
    let mut w = world(8);
    for n in 1..=5 {
        w.register(id(n), "correct horse").unwrap();
    }
    for n in 1..=5 {
        assert!(w.recover(id(n), "correct horse").is_ok());
    }
    assert_eq!(w.vault.store().rejections(), 0);
    assert_eq!(w.vault.store().root(), w.vault.store().host().tree().root());
}

#[test]
fn a_rolled_back_host_gets_no_extra_guess() {
    for cache in [0, 8] {
        rolled_back(cache);
    }
}

fn rolled_back(cache: usize) {
    let mut w = world(cache);
    w.register(id(1), "correct horse").unwrap();
    let fresh = w.vault.store().host().clone();
    for _ in 0..3 {
        assert!(w.recover(id(1), "wrong").is_err());
    }
    // The host puts back the tree from before the three charges. No
    // request for the record gets an attempt: without a cache the host's
    // answer is refused (Unavailable); with one, the trusted cache still
    // knows the record is exhausted.
    *w.vault.store_mut().host_mut() = fresh;
    let want = if cache == 0 {
        VaultError::Unavailable
    } else {
        VaultError::AttemptsExhausted
    };
    for code in ["correct horse", "wrong"] {
        assert!(matches!(w.recover(id(1), code), Err(Failure::Vault(e)) if e == want));
    }
    if cache == 0 {
        assert!(w.vault.store().rejections() >= 2);
        assert!(w.vault.store().load(&id(1)).is_err());
    }
}
