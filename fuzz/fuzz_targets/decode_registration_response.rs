//! `RegistrationResponse::from_bytes` on arbitrary bytes: never panics, and whatever it
//! accepts re-encodes to exactly the same bytes.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(
    |data: &[u8]| backup_key_vault_fuzz::roundtrip::registration_response(data)
);
