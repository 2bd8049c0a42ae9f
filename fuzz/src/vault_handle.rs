//! The vault's byte entry point (`Vault::handle`, SPEC.md §5.9, §7) on
//! arbitrary requests: it never panics, always answers one well-formed
//! message, and a request that does not decode changes no record.

use std::cell::RefCell;

use backup_key_vault::vault::{MemoryStore, Vault, VaultPolicy};
use backup_key_vault::wire::{MessageType, Rejection, RejectionCode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

thread_local! {
    static VAULT: RefCell<(Vault<MemoryStore>, ChaCha20Rng)> = RefCell::new({
        let mut rng = ChaCha20Rng::seed_from_u64(super::client::FLEET_SEED);
        let fleet = backup_key_vault::FleetSecrets::generate(&mut rng);
        let vault = Vault::new(&fleet, VaultPolicy::insecure_test_only(), MemoryStore::new())
            .expect("vault");
        (vault, ChaCha20Rng::seed_from_u64(super::client::VAULT_SEED))
    });
}

/// The libFuzzer entry: one request to a long-lived vault.
pub fn fuzz(data: &[u8]) {
    VAULT.with(|cell| {
        let (vault, rng) = &mut *cell.borrow_mut();
        let before = vault.store().table().clone();
        let answer = vault.handle(rng, super::client::NOW, data);
        let ty = MessageType::of(&answer).expect("the vault answers a well-formed header");
        match ty {
            MessageType::Rejection => {
                let rejection = Rejection::from_bytes(&answer).expect("a valid rejection");
                if rejection.code == RejectionCode::Malformed {
                    assert_eq!(
                        vault.store().table(),
                        &before,
                        "a malformed request changed state"
                    );
                }
            }
            MessageType::RegistrationResponse
            | MessageType::RegistrationConfirmation
            | MessageType::RecoveryResponse
            | MessageType::KeyRelease => {}
            other => panic!("the vault answered with a request type: {other:?}"),
        }
    });
}
