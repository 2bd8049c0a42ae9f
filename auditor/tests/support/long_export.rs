//! A long exported log, shared by the monitor's test
//! (`tests/monitor_scale.rs`) and its benchmark (`benches/monitor.rs`).

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::log::entry;
use backup_key_vault::bundle::{
    artifact_digest, AuditorSigningKey, FleetKeyArtifact, MerkleLog, OperatorSigningKey,
    SignatureMessage, DEFAULT_NAMESPACE,
};
use backup_key_vault::FleetPublicKeys;
use bkv_auditor::export::{
    proofs_from_entries, verify_namespace_with_state, Export, ExportedEntry, MonitorState, Pins,
    EXPORT_FORMAT,
};

const NS: &str = DEFAULT_NAMESPACE;

/// An export of `n` epochs, each counter-signed, with the signed
/// checkpoint of every size, as the auditor writes it.
pub fn export_of(n: u64, auditor: &AuditorSigningKey, operator: &OperatorSigningKey) -> Export {
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

/// The auditor's and the operator's keys the long logs are signed with.
pub fn keys() -> (AuditorSigningKey, OperatorSigningKey) {
    (
        AuditorSigningKey::from_bytes(&[0xA7; 32]),
        OperatorSigningKey::from_bytes(&[3; 32]),
    )
}

/// A monitor's inputs for an `n`-epoch log: the export, the pins, and the
/// state a first run over the first half remembered.
pub fn monitor_inputs(n: u64) -> (Export, Pins, MonitorState) {
    let (auditor, operator) = keys();
    let export = export_of(n, &auditor, &operator);
    let pins = Pins {
        auditor_keys: vec![auditor.public_key()],
        operator_keys: vec![operator.public_key()],
    };
    let mut half = export.clone();
    half.entries.truncate((n / 2) as usize);
    half.checkpoints.truncate((n / 2) as usize);
    let (_, state) =
        verify_namespace_with_state(&half, &pins, &mut proofs_from_entries(&half), None)
            .expect("the first half verifies");
    (export, pins, state)
}
