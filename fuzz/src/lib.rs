//! Fuzz-target logic for backup-key-vault, shared by the libFuzzer targets
//! under `fuzz_targets/` and by `tests/fuzz_regressions.rs`, which replays
//! every committed corpus and regression input on stable Rust.
#![forbid(unsafe_code)]

pub mod checkpoint_note;
pub mod client;
pub mod guess_limit;
pub mod roundtrip;
pub mod vault_handle;

/// Every target, by its cargo-fuzz name.
pub const TARGETS: &[&str] = &[
    "decode_registration_request",
    "decode_registration_response",
    "decode_registration_upload",
    "decode_registration_confirmation",
    "decode_recovery_start",
    "decode_recovery_response",
    "decode_recovery_finish",
    "decode_key_release",
    "decode_rejection",
    "decode_command",
    "decode_record_slot",
    "decode_fleet_secrets",
    "decode_bundle_request",
    "decode_bundle_response",
    "decode_recovery_response_with_bundle",
    "decode_validation_bundle",
    "decode_fleet_key_artifact",
    "decode_checkpoint",
    "decode_record_proof",
    "vault_handle",
    "vault_guess_limit",
    "client_responses",
    "checkpoint_note",
];

/// Runs the target named `target` on one input. Panics (as the target
/// would crash) on a violated property; `false` for an unknown name.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "decode_registration_request" => roundtrip::registration_request(data),
        "decode_registration_response" => roundtrip::registration_response(data),
        "decode_registration_upload" => roundtrip::registration_upload(data),
        "decode_registration_confirmation" => roundtrip::registration_confirmation(data),
        "decode_recovery_start" => roundtrip::recovery_start(data),
        "decode_recovery_response" => roundtrip::recovery_response(data),
        "decode_recovery_finish" => roundtrip::recovery_finish(data),
        "decode_key_release" => roundtrip::key_release(data),
        "decode_rejection" => roundtrip::rejection(data),
        "decode_command" => roundtrip::command(data),
        "decode_record_slot" => roundtrip::record_slot(data),
        "decode_fleet_secrets" => roundtrip::fleet_secrets(data),
        "decode_bundle_request" => roundtrip::bundle_request(data),
        "decode_bundle_response" => roundtrip::bundle_response(data),
        "decode_recovery_response_with_bundle" => roundtrip::recovery_response_with_bundle(data),
        "decode_validation_bundle" => roundtrip::validation_bundle(data),
        "decode_fleet_key_artifact" => roundtrip::fleet_key_artifact(data),
        "decode_checkpoint" => roundtrip::checkpoint(data),
        "decode_record_proof" => roundtrip::record_proof(data),
        "vault_handle" => vault_handle::fuzz(data),
        "vault_guess_limit" => guess_limit::fuzz(data),
        "client_responses" => {
            client::fuzz(data);
        }
        "checkpoint_note" => checkpoint_note::fuzz(data),
        _ => return false,
    }
    true
}
