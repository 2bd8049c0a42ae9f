//! The monitor on a long log (SPEC.md §18.3): it proves each checkpoint
//! consistent with the one before (and the newest with the remembered
//! one), not every pair, so its work grows with the log, not its square.
//! Its time on 10,000 epochs is measured by `cargo bench -p bkv-auditor
//! --bench monitor` (BENCHMARKS.md, "Monitor").

#[path = "support/long_export.rs"]
mod long_export;

use bkv_auditor::export::{proofs_from_entries, verify_namespace_with_state};

#[test]
fn a_long_log_is_verified_pair_by_consecutive_pair() {
    let n = 300;
    let (export, pins, state) = long_export::monitor_inputs(n);
    let (report, _) = verify_namespace_with_state(
        &export,
        &pins,
        &mut proofs_from_entries(&export),
        Some(&state),
    )
    .unwrap();
    assert_eq!(report.log_size, n);
    // One proof per consecutive pair, and the remembered checkpoint
    // against the newest: linear, not every pair.
    assert_eq!(report.consistent_pairs as u64, n - 1 + 1);
    assert_eq!(report.remembered_size, Some(n / 2));
}
