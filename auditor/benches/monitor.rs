//! The monitor (`bkv audit verify-namespace`, SPEC.md §18.3) on a
//! 10,000-epoch export with a state remembered at 5,000, against its floor
//! in the same run: the 30,000 strict Ed25519 verifications it cannot skip
//! (a checkpoint note, a statement and a counter-signature per epoch).
//! `cargo bench -p bkv-auditor --bench monitor`, then
//! `python3 benches/report.py` prints the ratio (BENCHMARKS.md, "Monitor").

#[path = "../tests/support/long_export.rs"]
mod long_export;

use bkv_auditor::export::{proofs_from_entries, verify_namespace_with_state};
use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::{Signer, SigningKey};

const EPOCHS: u64 = 10_000;

fn monitor(c: &mut Criterion) {
    let (export, pins, state) = long_export::monitor_inputs(EPOCHS);
    let mut group = c.benchmark_group("monitor");
    group.sample_size(10);
    group.bench_function("verify_namespace_10000", |b| {
        b.iter(|| {
            let (report, _) = verify_namespace_with_state(
                &export,
                &pins,
                &mut proofs_from_entries(&export),
                Some(&state),
            )
            .expect("the export verifies");
            assert_eq!(report.log_size, EPOCHS);
        })
    });

    // The floor: as many strict verifications, under two keys, of messages
    // as long as a checkpoint note's body.
    let keys = [
        SigningKey::from_bytes(&[0xA7; 32]),
        SigningKey::from_bytes(&[3; 32]),
    ];
    let signed: Vec<_> = (0..3 * EPOCHS)
        .map(|i| {
            let key = &keys[(i % 2) as usize];
            let mut message = [0u8; 120];
            message[..8].copy_from_slice(&i.to_be_bytes());
            (key.verifying_key(), message, key.sign(&message))
        })
        .collect();
    group.bench_function("floor_30000_verifications", |b| {
        b.iter(|| {
            for (key, message, signature) in &signed {
                key.verify_strict(message, signature)
                    .expect("a genuine signature");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, monitor);
criterion_main!(benches);
