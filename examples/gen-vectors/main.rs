//! Rewrites the conformance vectors in `vectors/` and the fuzz seed corpora
//! built from them (`fuzz/corpus/`). SPEC.md §12 describes the files.
//!
//! ```sh
//! cargo run -p backup-key-vault --example gen-vectors
//! ```
//!
//! `tests/vectors.rs` fails when the committed files and the code disagree.

mod flows;

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vectors = root.join("vectors");
    fs::create_dir_all(&vectors)?;
    let all = flows::all();
    for (name, value) in &all {
        let path = vectors.join(format!("{name}.json"));
        fs::write(&path, flows::render(value))?;
        println!("wrote {}", path.display());
    }
    for (target, name, bytes) in corpus(&all) {
        let dir = root.join("fuzz").join("corpus").join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(&name), bytes)?;
    }
    println!("wrote fuzz/corpus/*/ seeds");
    Ok(())
}

/// Seeds for every fuzz target, from the vectors' messages.
fn corpus(all: &[(&str, serde_json::Value)]) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let target_of = |message: &str| -> Option<&'static str> {
        Some(match message {
            "RegistrationRequest" => "decode_registration_request",
            "RegistrationResponse" => "decode_registration_response",
            "RegistrationUpload" => "decode_registration_upload",
            "RegistrationConfirmation" => "decode_registration_confirmation",
            "RecoveryStart" => "decode_recovery_start",
            "RecoveryResponse" => "decode_recovery_response",
            "RecoveryFinish" => "decode_recovery_finish",
            "KeyRelease" => "decode_key_release",
            _ => return None,
        })
    };
    for (flow, value) in all {
        let Some(steps) = value["steps"].as_array() else {
            continue;
        };
        for step in steps {
            let n = step["step"].as_u64().unwrap_or(0);
            let output = &step["output"];
            if let (Some(message), Some(hex)) = (output["message"].as_str(), output["hex"].as_str())
            {
                let bytes = flows::from_hex(hex);
                if let Some(target) = target_of(message) {
                    out.push((target, format!("{flow}-{n:02}"), bytes.clone()));
                }
                if step["actor"] == "client" {
                    out.push(("vault_handle", format!("{flow}-{n:02}"), bytes));
                }
            }
            if let Some(hex) = output["rejection"].as_str() {
                out.push((
                    "decode_rejection",
                    format!("{flow}-{n:02}"),
                    flows::from_hex(hex),
                ));
            }
            for commit in step["commits"].as_array().into_iter().flatten() {
                let bytes = flows::from_hex(commit["command"].as_str().unwrap_or_default());
                out.push(("decode_command", format!("{flow}-{n:02}"), bytes));
            }
            if let Some(hex) = step["proof"].as_str() {
                out.push((
                    "decode_record_proof",
                    format!("{flow}-{n:02}"),
                    flows::from_hex(hex),
                ));
            }
            if let Some(hex) = step["slot_after"]["encoding"].as_str() {
                out.push((
                    "decode_record_slot",
                    format!("{flow}-{n:02}"),
                    flows::from_hex(hex),
                ));
            }
        }
        if let Some(hex) = value["fleet"]["secrets"].as_str() {
            out.push((
                "decode_fleet_secrets",
                flow.to_string(),
                flows::from_hex(hex),
            ));
        }
    }
    // The client target: a mode byte, then the answer it replaces (the
    // genuine answers of the recovery-success flow).
    let success = &all
        .iter()
        .find(|(n, _)| *n == "recovery-success")
        .expect("flow")
        .1;
    let answer = |call: &str| -> Vec<u8> {
        let step = success["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["call"] == call))
            .expect("step");
        flows::from_hex(step["output"]["hex"].as_str().expect("message"))
    };
    out.extend(bundle_seeds(success));
    let ke2 = answer("Vault::recovery_start");
    let release = answer("Vault::recovery_finish");
    for (mode, bytes) in [
        (0u8, answer("Vault::registration_request")),
        (1, answer("Vault::registration_upload")),
        (2, ke2.clone()),
        (3, release.clone()),
        (4, [ke2, release].concat()),
    ] {
        out.push((
            "client_responses",
            format!("recovery-success-mode-{mode}"),
            [&[mode][..], &bytes].concat(),
        ));
    }
    // Record-tree proofs (SPEC.md §8.5): of a present id, of an absent id
    // ending at an empty subtree and at another leaf, and of the empty tree.
    let mut tree = backup_key_vault::vault::tree::MemoryTree::new();
    let id = |i: u32| {
        backup_key_vault::RecordId(backup_key_vault::vault::tree::value_hash(&i.to_be_bytes()))
    };
    out.push((
        "decode_record_proof",
        "empty-tree".to_string(),
        tree.prove(&id(0)).expect("proof").to_bytes(),
    ));
    for i in 0..64 {
        tree.set(
            &id(i),
            &backup_key_vault::vault::tree::value_hash(&[i as u8]),
        )
        .expect("set");
    }
    out.push((
        "decode_record_proof",
        "present".to_string(),
        tree.prove(&id(5)).expect("proof").to_bytes(),
    ));
    let mut ends = [false, false];
    for i in 64..4096 {
        let proof = tree.prove(&id(i)).expect("proof").to_bytes();
        // Byte 1 is the end's tag: 0 empty, 2 a leaf (another record's).
        let at_leaf = proof.get(1) == Some(&2);
        if !ends[usize::from(at_leaf)] {
            ends[usize::from(at_leaf)] = true;
            let name = if at_leaf {
                "absent-at-leaf"
            } else {
                "absent-at-empty"
            };
            out.push(("decode_record_proof", name.to_string(), proof));
        }
    }
    // The structured target reads a seed and operations through
    // `arbitrary`; a few byte strings that decode to short scenarios.
    for (i, seed) in [
        &b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\x00\x09\x00"[..],
        &b"\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x05\x02\x00\x00\x01\x00\x01\x00\x04\x00\x08\x01"[..],
        &b"\x03\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x01\x00\x00\x01\x00\x00\x07\x06\x01\x08\x00\x09\x00"[..],
    ]
    .iter()
    .enumerate()
    {
        out.push(("vault_guess_limit", format!("scenario-{i}"), seed.to_vec()));
    }
    out
}

/// Seeds for the bundle formats (SPEC.md §14–§16): one real validation
/// bundle for the recovery-success flow's fleet, signed by fixed test keys,
/// and the messages and parts it is made of.
fn bundle_seeds(flow: &serde_json::Value) -> Vec<(&'static str, String, Vec<u8>)> {
    use backup_key_vault::bundle::EncodedBundle;
    use backup_key_vault::bundle::{
        artifact_digest, log, AuditorSigningKey, FleetKey, FleetKeyArtifact, KeyRole, MerkleLog,
        OperatorSigningKey, ValidationBundle, DEFAULT_NAMESPACE,
    };
    use backup_key_vault::wire::{
        BundleRequest, BundleResponse, RecoveryResponse, RecoveryResponseWithBundle,
    };

    let key =
        |name: &str| -> Vec<u8> { flows::from_hex(flow["fleet"][name].as_str().expect("key")) };
    let artifact = FleetKeyArtifact {
        namespace: DEFAULT_NAMESPACE.to_string(),
        fleet_id: "vectors".to_string(),
        realm: "vectors-realm".to_string(),
        layout: 1,
        records: backup_key_vault::RecordRange::split(0, 2).expect("two groups"),
        epoch: 1,
        not_before_ms: 1_700_000_000_000,
        not_after_ms: 1_800_000_000_000,
        keys: vec![
            FleetKey {
                role: KeyRole::OpaqueKeyExchange,
                public_key: key("ke_pk"),
            },
            FleetKey {
                role: KeyRole::HpkeTransport,
                public_key: key("tr_pk"),
            },
        ],
    }
    .to_bytes()
    .expect("a valid artifact");
    let digest = artifact_digest(&artifact);
    let auditor = AuditorSigningKey::from_bytes(&[0xA7; 32]);
    let operator = OperatorSigningKey::from_bytes(&[0x0B; 32]);
    let mut merkle = MerkleLog::new();
    merkle.push(log::entry(0, &[0x11; 32]));
    merkle.push(log::entry(1, &digest));
    let checkpoint = merkle.checkpoint(DEFAULT_NAMESPACE).sign(&auditor);
    let mut bundle = ValidationBundle {
        namespace: DEFAULT_NAMESPACE.to_string(),
        epoch: 1,
        timestamp_ms: 1_700_000_000_000,
        digest,
        auditor_key: auditor.public_key(),
        auditor_signature: [0; 64],
        counter_signature: None,
        artifact: artifact.clone(),
        inclusion: merkle.prove_inclusion(1).expect("entry 1"),
        checkpoint: checkpoint.clone(),
    };
    bundle.auditor_signature = auditor.sign_statement(&bundle.statement());
    let uncountersigned = bundle.to_bytes().expect("a valid bundle");
    bundle.countersign(&operator);
    let encoded = EncodedBundle::new(bundle).expect("a valid bundle");
    let ke2 = flows::from_hex(
        flow["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["call"] == "Vault::recovery_start"))
            .and_then(|s| s["output"]["hex"].as_str())
            .expect("KE2"),
    );
    let with_bundle = RecoveryResponseWithBundle {
        response: RecoveryResponse::from_bytes(&ke2).expect("KE2"),
        bundle: encoded.clone(),
    };
    vec![
        (
            "decode_fleet_key_artifact",
            "vectors-fleet".to_string(),
            artifact,
        ),
        ("decode_checkpoint", "two-entries".to_string(), checkpoint),
        (
            "decode_validation_bundle",
            "countersigned".to_string(),
            encoded.as_bytes().to_vec(),
        ),
        (
            "decode_validation_bundle",
            "auditor-only".to_string(),
            uncountersigned,
        ),
        (
            "decode_bundle_request",
            "request".to_string(),
            BundleRequest {}.to_bytes(),
        ),
        (
            "decode_bundle_response",
            "countersigned".to_string(),
            BundleResponse { bundle: encoded }.to_bytes(),
        ),
        (
            "decode_recovery_response_with_bundle",
            "recovery-success-ke2".to_string(),
            with_bundle.to_bytes(),
        ),
    ]
}
