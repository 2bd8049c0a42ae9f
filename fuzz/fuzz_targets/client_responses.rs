//! See `backup_key_vault_fuzz::client`.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    backup_key_vault_fuzz::client::fuzz(data);
});
