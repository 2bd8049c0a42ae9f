//! Shared test fixtures: a fleet, a vault, a client, and the message flows
//! with the relay in the middle as plain function calls.
#![allow(dead_code)]

use backup_key_vault::client::{
    ClientConfig, Recovered, Recovery, Registered, Registration, RekeyAuthorization,
};
use backup_key_vault::vault::{MemoryStore, RecordStore, Vault, VaultPolicy};
use backup_key_vault::{ClientError, FleetSecrets, RecordId, RecoveryCode, VaultError};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub type Rng = ChaCha20Rng;

pub fn rng(seed: u64) -> Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub struct World<S> {
    pub rng: Rng,
    pub secrets: FleetSecrets,
    pub vault: Vault<S>,
    pub config: ClientConfig,
    pub now: u64,
}

impl World<MemoryStore> {
    pub fn new(seed: u64) -> Self {
        World::with_store(seed, MemoryStore::new())
    }
}

impl<S: RecordStore> World<S> {
    pub fn with_store(seed: u64, store: S) -> Self {
        Self::with_policy(seed, store, VaultPolicy::insecure_test_only())
    }

    pub fn with_policy(seed: u64, store: S, policy: VaultPolicy) -> Self {
        let mut rng = rng(seed);
        let secrets = FleetSecrets::generate(&mut rng);
        let vault = Vault::new(&secrets, policy, store).unwrap();
        let config = ClientConfig::insecure_test_only(secrets.public_keys());
        Self {
            rng,
            secrets,
            vault,
            config,
            now: 1_000,
        }
    }

    pub fn register(&mut self, id: RecordId, code: &str) -> Result<Registered, Failure> {
        self.register_with(id, code, None)
    }

    pub fn register_with(
        &mut self,
        id: RecordId,
        code: &str,
        rekey: Option<&RekeyAuthorization>,
    ) -> Result<Registered, Failure> {
        let code = RecoveryCode::new(code.as_bytes()).unwrap();
        let (state, request) = Registration::start(&mut self.rng, &self.config, id, &code, rekey)?;
        let response = self
            .vault
            .registration_request(&mut self.rng, self.now, &request)?;
        let (state, upload) = state.finish(&mut self.rng, &response, None)?;
        let confirmation = self.vault.registration_upload(self.now, &upload)?;
        Ok(state.finish(&confirmation)?)
    }

    pub fn recover(&mut self, id: RecordId, code: &str) -> Result<Recovered, Failure> {
        let code = RecoveryCode::new(code.as_bytes()).unwrap();
        let (state, ke1) = Recovery::start(&mut self.rng, &self.config, id, &code)?;
        let ke2 = self.vault.recovery_start(&mut self.rng, self.now, &ke1)?;
        let (state, ke3) = state.finish(&mut self.rng, &ke2)?;
        let release = self.vault.recovery_finish(self.now, &ke3)?;
        Ok(state.finish(&release)?)
    }
}

/// Where a flow failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Failure {
    Client(ClientError),
    Vault(VaultError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl From<VaultError> for Failure {
    fn from(e: VaultError) -> Self {
        Failure::Vault(e)
    }
}

pub fn id(n: u8) -> RecordId {
    RecordId([n; 32])
}
