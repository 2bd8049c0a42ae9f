//! The monitor on a long log (SPEC.md §18.3): it proves each checkpoint
//! consistent with the one before (and the newest with the remembered
//! one), not every pair, so its work grows with the log, not its square.
//! `cargo test -p bkv-auditor --release --test monitor_scale -- --ignored
//! --nocapture` times it on 10,000 epochs (BENCHMARKS.md, "Monitor").

use std::time::Instant;

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::log::entry;
use backup_key_vault::bundle::{
    artifact_digest, AuditorSigningKey, FleetKeyArtifact, MerkleLog, OperatorSigningKey,
    SignatureMessage, DEFAULT_NAMESPACE,
};
use backup_key_vault::FleetPublicKeys;
use bkv_auditor::export::{
    proofs_from_entries, verify_namespace_with_state, Export, ExportedEntry, Pins, EXPORT_FORMAT,
};

const NS: &str = DEFAULT_NAMESPACE;

/// An export of `n` epochs, each counter-signed, with the signed
/// checkpoint of every size, as the auditor writes it.
fn export_of(n: u64, auditor: &AuditorSigningKey, operator: &OperatorSigningKey) -> Export {
    let mut log = MerkleLog::new();
    let mut entries = Vec::new();
    let mut checkpoints = Vec::new();
    for epoch in 1..=n {
        let keys = FleetPublicKeys {
            key_exchange: fleet_key(epoch, 1),
            transport: {
                let mut k = [2; 1216];
                k[..32].copy_from_slice(&fleet_key(epoch, 2));
                backup_key_vault::fleet::TransportPublicKey(k)
            },
        };
        let artifact = FleetKeyArtifact::for_fleet(NS, "fleet", epoch, &keys, 0, u64::MAX)
            .to_bytes()
            .unwrap();
        let digest = artifact_digest(&artifact);
        let statement = SignatureMessage {
            namespace: NS,
            timestamp_ms: epoch,
            epoch,
            digest,
        };
        let signature = auditor.sign_statement(&statement);
        log.push(entry(epoch, &digest));
        checkpoints.push(String::from_utf8(log.checkpoint(NS).sign(auditor)).unwrap());
        entries.push(ExportedEntry {
            epoch,
            timestamp_ms: epoch,
            digest: to_hex(&digest),
            signature: to_hex(&signature),
            operator_key: Some(to_hex(&operator.public_key())),
            counter_signature: Some(to_hex(&operator.countersign(&signature))),
            artifact: String::from_utf8(artifact).unwrap(),
        });
    }
    Export {
        format: EXPORT_FORMAT.into(),
        namespace: NS.into(),
        auditor_key: to_hex(&auditor.public_key()),
        root_epoch: 1,
        root_digest: entries[0].digest.clone(),
        entries,
        checkpoints,
    }
}

/// Distinct 32-byte keys per epoch and role.
fn fleet_key(epoch: u64, role: u8) -> [u8; 32] {
    let mut k = [role; 32];
    k[..8].copy_from_slice(&epoch.to_be_bytes());
    k
}

fn verify(n: u64) -> std::time::Duration {
    let auditor = AuditorSigningKey::from_bytes(&[0xA7; 32]);
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let export = export_of(n, &auditor, &operator);
    let pins = Pins {
        auditor_keys: vec![auditor.public_key()],
        operator_keys: vec![operator.public_key()],
    };
    // A first run over the first half remembers its newest checkpoint.
    let mut half = export.clone();
    half.entries.truncate((n / 2) as usize);
    half.checkpoints.truncate((n / 2) as usize);
    let (_, state) =
        verify_namespace_with_state(&half, &pins, &mut proofs_from_entries(&half), None).unwrap();
    let start = Instant::now();
    let (report, _) = verify_namespace_with_state(
        &export,
        &pins,
        &mut proofs_from_entries(&export),
        Some(&state),
    )
    .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(report.log_size, n);
    assert_eq!(report.consistent_pairs as u64, n - 1 + 1);
    assert_eq!(report.remembered_size, Some(n / 2));
    elapsed
}

#[test]
fn a_long_log_is_verified_pair_by_consecutive_pair() {
    verify(300);
}

#[test]
#[ignore = "timing: run with --release --ignored --nocapture"]
fn ten_thousand_epochs() {
    let elapsed = verify(10_000);
    println!("verify-namespace, 10,000 epochs, with a state: {elapsed:?}");
}
