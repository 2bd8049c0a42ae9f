//! `Proof::from_bytes` (the record tree, SPEC.md §8.5) on arbitrary bytes:
//! never panics, whatever it accepts re-encodes to exactly the same bytes,
//! and checking or updating from it never panics.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| backup_key_vault_fuzz::roundtrip::record_proof(data));
