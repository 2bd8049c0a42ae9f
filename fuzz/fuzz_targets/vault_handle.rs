//! See `backup_key_vault_fuzz::vault_handle`.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| backup_key_vault_fuzz::vault_handle::fuzz(data));
