//! See `backup_key_vault_fuzz::checkpoint_note`.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| backup_key_vault_fuzz::checkpoint_note::fuzz(data));
