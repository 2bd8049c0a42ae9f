//! See `backup_key_vault_fuzz::guess_limit`.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| backup_key_vault_fuzz::guess_limit::fuzz(data));
