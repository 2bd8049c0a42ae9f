//! See `bkv_fuzz_hosts::host_records`.
#![no_main]
#![forbid(unsafe_code)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz_hosts::host_records::fuzz(data));
