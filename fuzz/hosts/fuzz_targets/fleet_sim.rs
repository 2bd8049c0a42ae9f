//! See `bkv_fuzz_hosts::fleet_sim`.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz_hosts::fleet_sim::fuzz(data));
