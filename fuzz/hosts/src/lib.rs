//! Fuzz-target logic for what the host and the network reach outside the
//! core crate: the fleet's envelope and codecs, a fleet driven by the
//! fuzzer, a node's stored state and its record tree, deployment evidence
//! and the auditor's HTTP handlers. Shared by the libFuzzer targets under `fuzz_targets/`
//! and by `cli/tests/fuzz_hosts.rs`, which replays every committed seed and
//! regression input on stable Rust.
#![forbid(unsafe_code)]

pub mod auditor_http;
pub mod deploy_evidence;
pub mod fleet_disk;
pub mod fleet_envelope;
pub mod fleet_sim;
pub mod host_records;
pub mod rows;

/// Every target, by its cargo-fuzz name.
pub const TARGETS: &[&str] = &[
    "fleet_envelope",
    "fleet_sim",
    "fleet_disk",
    "deploy_evidence",
    "auditor_http",
    "host_records",
];

/// Runs the target named `target` on one input. Panics (as the target
/// would crash) on a violated property; `false` for an unknown name.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "fleet_envelope" => fleet_envelope::fuzz(data),
        "fleet_sim" => fleet_sim::fuzz(data),
        "fleet_disk" => fleet_disk::fuzz(data),
        "deploy_evidence" => deploy_evidence::fuzz(data),
        "auditor_http" => auditor_http::fuzz(data),
        "host_records" => host_records::fuzz(data),
        _ => return false,
    }
    true
}
