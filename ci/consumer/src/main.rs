//! One registration and one recovery through the packaged crate, as a
//! crates.io user would write them.

use std::marker::PhantomData;

use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::suite::Suite;
use backup_key_vault::vault::{MemoryStore, Vault, VaultPolicy};
use backup_key_vault::{FleetSecrets, OsRng, RecordId, RecoveryCode};

/// Compiles only if the two types are the same.
fn same_type<T>(_: PhantomData<T>, _: PhantomData<T>) {}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The speed is in the package: the suite's key exchange is the crate's
    // own ristretto255 group (basepoint table, kept encodings), on upstream
    // opaque-ke, with nothing patched.
    same_type(
        PhantomData::<<Suite as opaque_ke::CipherSuite>::KeyExchange>,
        PhantomData::<opaque_ke::TripleDh<backup_key_vault::group::Ristretto255, sha2::Sha512>>,
    );

    let mut rng = OsRng;
    let secrets = FleetSecrets::generate(&mut rng);
    let mut vault = Vault::new(&secrets, VaultPolicy::insecure_test_only(), MemoryStore::new())?;
    let config = ClientConfig::insecure_test_only(secrets.public_keys());
    let id = RecordId([7; 32]);
    let code = RecoveryCode::new(b"4F7K-9QXD")?;

    let (state, request) = Registration::start(&mut rng, &config, id, &code, None)?;
    let response = vault.registration_request(&mut rng, 0, &request)?;
    let (state, upload) = state.finish(&mut rng, &response, None)?;
    let confirmation = vault.registration_upload(0, &upload)?;
    let registered = state.finish(&confirmation)?;

    let (state, ke1) = Recovery::start(&mut rng, &config, id, &code)?;
    let ke2 = vault.recovery_start(&mut rng, 0, &ke1)?;
    let (state, ke3) = state.finish(&mut rng, &ke2)?;
    let release = vault.recovery_finish(0, &ke3)?;
    let recovered = state.finish(&release)?;

    if recovered.backup_key != registered.backup_key {
        return Err("the recovered backup key differs from the registered one".into());
    }
    println!("consumer: registered and recovered the backup key through the packaged crate");
    Ok(())
}
