//! See `bkv_fuzz_hosts::fleet_disk`.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz_hosts::fleet_disk::fuzz(data));
