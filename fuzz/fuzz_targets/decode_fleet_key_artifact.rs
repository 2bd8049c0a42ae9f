//! `FleetKeyArtifact` on arbitrary bytes: never panics, and whatever it accepts
//! is the canonical encoding of what it decoded.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(
    |data: &[u8]| backup_key_vault_fuzz::roundtrip::fleet_key_artifact(data)
);
