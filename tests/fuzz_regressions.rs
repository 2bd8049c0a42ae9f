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
    assert!(
        replay("regressions") >= 1,
        "fuzz/regressions/ holds the fixed inputs"
    );
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

/// The client target tells a genuine answer from an altered one: each
/// genuine answer is accepted (so the target's checks on accepted answers
/// run), and the same answer with its last byte flipped is refused.
#[test]
fn client_target_accepts_genuine_answers_only() {
    let g = fuzz_lib::client::genuine();
    let with_ke2 = [&g.recovery_response[..], &g.key_release].concat();
    for (mode, answer) in [
        (0u8, &g.registration_response),
        (1, &g.registration_confirmation),
        (2, &g.recovery_response),
        (3, &g.key_release),
        (4, &with_ke2),
    ] {
        let mut input = vec![mode];
        input.extend_from_slice(answer);
        assert!(
            fuzz_lib::client::fuzz(&input),
            "mode {mode}: genuine answer refused"
        );
        let last = input.len() - 1;
        input[last] ^= 1;
        assert!(
            !fuzz_lib::client::fuzz(&input),
            "mode {mode}: altered answer accepted"
        );
    }
}
