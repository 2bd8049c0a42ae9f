//! The host fuzz targets (`fuzz/hosts/`) on stable Rust: every committed
//! seed (`fuzz/hosts/corpus/`) and every input a fuzzer once crashed on
//! (`fuzz/hosts/regressions/`) runs through the same target code libFuzzer
//! runs, so the harness keeps compiling and fixed crashes stay fixed.
//!
//! To add a crash: copy libFuzzer's `fuzz/hosts/artifacts/<target>/crash-…`
//! to `fuzz/hosts/regressions/<target>/<short-name>`, fix the bug, and this
//! test replays it from then on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../../fuzz/hosts/src/lib.rs"]
mod fuzz_hosts;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/hosts")
}

/// `(target, file name, bytes)` of every file under `fuzz/hosts/<kind>/`.
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
            fuzz_hosts::TARGETS.contains(&target.as_str()),
            "fuzz/hosts/{kind}/{target} names no fuzz target"
        );
        let ran = std::panic::catch_unwind(|| fuzz_hosts::run(target, bytes));
        assert!(
            matches!(ran, Ok(true)),
            "fuzz/hosts/{kind}/{target}/{name}: the target fails on this input"
        );
    }
    all.len()
}

#[test]
fn every_host_seed_passes_and_every_target_has_seeds() {
    assert!(replay("corpus") >= fuzz_hosts::TARGETS.len());
    let seeded: Vec<String> = inputs("corpus").into_iter().map(|(t, _, _)| t).collect();
    for target in fuzz_hosts::TARGETS {
        assert!(
            seeded.iter().any(|t| t == target),
            "fuzz/hosts/corpus/{target}/ has no seed"
        );
    }
}

#[test]
fn every_host_regression_input_passes() {
    replay("regressions");
}

#[test]
fn every_host_target_is_a_cargo_fuzz_binary() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("Cargo.toml");
    for target in fuzz_hosts::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/hosts/Cargo.toml has no [[bin]] {target}"
        );
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(source.exists(), "{} is missing", source.display());
    }
    assert!(!fuzz_hosts::run("no-such-target", &[]));
}

/// The evidence target runs the whole verification: the ceremony's
/// evidence passes, and with one signature byte changed it does not.
#[test]
fn evidence_target_tells_the_ceremonys_evidence_from_an_altered_copy() {
    let genuine = fs::read(fuzz_dir().join("data/evidence.json")).unwrap();
    assert!(fuzz_hosts::deploy_evidence::check(&genuine));
    let text = String::from_utf8(genuine).unwrap();
    let at = text.find("\"signature\": \"").unwrap() + 14;
    let mut altered = text.into_bytes();
    altered[at] = if altered[at] == b'0' { b'1' } else { b'0' };
    assert!(!fuzz_hosts::deploy_evidence::check(&altered));
}
