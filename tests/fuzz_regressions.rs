//! The fuzz targets on stable Rust: every committed seed (`fuzz/corpus/`)
//! and every input a fuzzer once crashed on (`fuzz/regressions/`) is run
//! through the same target code libFuzzer runs (`fuzz/src/`), so the
//! harness keeps compiling and the fixed crashes stay fixed.
//!
//! To add a crash: copy libFuzzer's `fuzz/artifacts/<target>/crash-…` to
//! `fuzz/regressions/<target>/<short-name>`, fix the bug, and this test
//! replays it from then on.

#[path = "../fuzz/src/lib.rs"]
mod fuzz_lib;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// `(target, file name, bytes)` of every file under `fuzz/<kind>/`.
fn inputs(kind: &str) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(targets) = fs::read_dir(fuzz_dir().join(kind)) else {
        return out;
    };
    for target in targets.flatten() {
        let name = target.file_name().into_string().expect("UTF-8 name");
        for file in fs::read_dir(target.path()).expect("a directory").flatten() {
            let file_name = file.file_name().into_string().expect("UTF-8 name");
            out.push((
                name.clone(),
                file_name,
                fs::read(file.path()).expect("read"),
            ));
        }
    }
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let all = inputs(kind);
    for (target, name, bytes) in &all {
        assert!(
            fuzz_lib::TARGETS.contains(&target.as_str()),
            "fuzz/{kind}/{target} names no fuzz target"
        );
        let ran = std::panic::catch_unwind(|| fuzz_lib::run(target, bytes));
        assert!(
            matches!(ran, Ok(true)),
            "fuzz/{kind}/{target}/{name}: the target fails on this input"
        );
    }
    all.len()
}

#[test]
fn every_regression_input_passes() {
    replay("regressions");
}

#[test]
fn every_seed_passes_and_every_target_has_seeds() {
    assert!(replay("corpus") >= fuzz_lib::TARGETS.len());
    let seeded: Vec<String> = inputs("corpus").into_iter().map(|(t, _, _)| t).collect();
    for target in fuzz_lib::TARGETS {
        assert!(
            seeded.iter().any(|t| t == target),
            "fuzz/corpus/{target}/ has no seed"
        );
    }
}

#[test]
fn every_target_is_a_cargo_fuzz_binary() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for target in fuzz_lib::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] {target}"
        );
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(source.exists(), "{} is missing", source.display());
    }
    assert!(!fuzz_lib::run("no-such-target", &[]));
}

/// The client target's genuine exchange is the one of
/// `vectors/recovery-success.json`, and its seeds are those messages.
#[test]
fn client_target_runs_the_recovery_success_vectors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/recovery-success.json");
    let flow: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(path).expect("vectors")).expect("JSON");
    let output = |call: &str| -> String {
        flow["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["call"] == call)
            .and_then(|s| s["output"]["hex"].as_str())
            .expect("a message")
            .to_string()
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let g = fuzz_lib::client::genuine();
    assert_eq!(
        hex(&g.registration_response),
        output("Vault::registration_request")
    );
    assert_eq!(
        hex(&g.registration_confirmation),
        output("Vault::registration_upload")
    );
    assert_eq!(hex(&g.recovery_response), output("Vault::recovery_start"));
    assert_eq!(hex(&g.key_release), output("Vault::recovery_finish"));
}

/// The properties the client target asserts can fail: a tampered release
/// is refused by the client (so the target's "a key only from a genuine
/// release" branch is never reached with one), and the genuine one passes.
#[test]
fn client_target_accepts_the_genuine_release_only() {
    let g = fuzz_lib::client::genuine();
    let mut input = vec![3u8];
    input.extend_from_slice(&g.key_release);
    fuzz_lib::client::fuzz(&input);
    let last = input.len() - 1;
    input[last] ^= 1;
    fuzz_lib::client::fuzz(&input);
}
