//! Issue 4's acceptance: a ceremony's own evidence verifies end to end, and
//! each listed fault makes the verifier fail at the right step with a
//! message that names it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use backup_key_vault::bundle::{FleetKeyArtifact, DEFAULT_NAMESPACE};
use backup_key_vault::FleetSecrets;
use bkv_deploy::evidence::{Evidence, Hex, QuorumPolicy};
use bkv_deploy::sim::{SimulatedVendor, Validity};
use bkv_deploy::verify::{ExportLog, Outcome, Report, StepId};
use bkv_deploy::{Verifier, X509StatementVerifier};
use common::*;

/// The first failure is `step`, its detail contains every one of
/// `needles`, and every step before it passed.
fn assert_fails_at(report: &Report, step: StepId, needles: &[&str]) {
    let text = report.to_text();
    assert!(!report.passed(), "{text}");
    let first = report.first_failure().expect("a failure");
    assert_eq!(first.step, step, "{text}");
    for needle in needles {
        assert!(
            first.detail.contains(needle),
            "{needle:?} not in {:?}",
            first.detail
        );
    }
    for s in report.steps.iter().take_while(|s| s.step != step) {
        assert_eq!(s.result, Outcome::Pass, "{text}");
    }
    assert!(text.contains(&format!("[FAIL] {}", step.name())), "{text}");
}

fn reverify(world: &World, evidence: &Evidence) -> Report {
    // Through the file format, as an outside verifier reads it.
    world.verifier().verify_bytes(&evidence.to_json(), None)
}

#[test]
fn a_ceremonys_own_evidence_verifies_end_to_end() {
    let mut w = three_sites();
    let outcome = w.ceremony();
    let json = outcome.evidence.to_json();
    let report = w
        .verifier()
        .expect_measurement(MEASUREMENT)
        .require_participant(w.participants[0].public_key())
        .verify_bytes(&json, None);
    assert!(report.passed(), "{}", report.to_text());
    assert_eq!(report.steps.len(), StepId::ALL.len());
    assert!(report.warnings.is_empty());
    assert_eq!(
        report.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        StepId::ALL
    );

    // Against the auditor's own export too: the whole log is checked, the
    // entry found, and the evidence's checkpoint is consistent with it.
    let export = w.auditor.export(DEFAULT_NAMESPACE).unwrap();
    let mut log = ExportLog::new(export);
    let report = w.verifier().verify_bytes(&json, Some(&mut log));
    assert!(report.passed(), "{}", report.to_text());
    let detail = &report.step(StepId::AuditorLog).unwrap().detail;
    assert!(detail.contains("export verifies"), "{detail}");

    // A later fleet in the same log: the first fleet's evidence still
    // verifies against the grown log (consistency from size 1 to 2).
    let mut w2 = three_sites();
    std::mem::swap(&mut w2.auditor, &mut w.auditor);
    w2.plan.fleet_id = name("fleet-eu-2");
    let second = w2.ceremony();
    assert_eq!(second.evidence.transcript.epoch, 2);
    std::mem::swap(&mut w2.auditor, &mut w.auditor);
    let mut log = ExportLog::new(w.auditor.export(DEFAULT_NAMESPACE).unwrap());
    let report = w.verifier().verify_bytes(&json, Some(&mut log));
    assert!(report.passed(), "{}", report.to_text());

    // Without a pinned auditor key it still verifies, with a warning.
    let unpinned = Verifier::new(
        X509StatementVerifier::from_pem(w.vendor.root_pem().as_bytes()).unwrap(),
        w.now,
    );
    let report = unpinned.verify_bytes(&json, None);
    assert!(report.passed(), "{}", report.to_text());
    assert!(report.warnings[0].contains("not pinned"));

    // The decoded evidence re-encodes to the same file.
    assert_eq!(Evidence::from_json(&json).unwrap().to_json(), json);
}

#[test]
fn a_certificate_chained_to_another_root_fails_at_the_chains() {
    let mut w = three_sites();
    let mut evidence = w.ceremony().evidence;
    // A device of another vendor, posing as hsm-2, signs hsm-2's statement.
    let rogue_vendor = SimulatedVendor::new("Rogue", Validity::around(w.now, 20)).unwrap();
    let rogue = rogue_vendor
        .manufacture("hsm-2", Validity::around(w.now, 10), MEASUREMENT)
        .unwrap();
    let statement = evidence.attestations[1].statement.clone();
    evidence.attestations[1] = rogue.sign_statement(statement).unwrap();
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::AttestationChains,
        &["hsm-2", "does not lead to the vendor root"],
    );

    // And a verifier pinned to another root refuses every chain.
    let other = X509StatementVerifier::new(rogue_vendor.root_der().to_vec()).unwrap();
    let report = Verifier::new(other, w.now).verify_bytes(&evidence.to_json(), None);
    assert_fails_at(
        &report,
        StepId::AttestationChains,
        &["hsm-1", "hsm-3", "vendor root"],
    );
}

#[test]
fn an_expired_certificate_fails_at_the_chains() {
    let mut w = three_sites();
    // hsm-3's device certificate was valid at the ceremony (ten days ago)
    // but expired yesterday.
    w.plan.time_ms = w.now - 10 * DAY_MS;
    w.hsms[2] = w
        .vendor
        .manufacture(
            "hsm-3",
            Validity {
                not_before_ms: w.now - 20 * DAY_MS,
                not_after_ms: w.now - DAY_MS,
            },
            MEASUREMENT,
        )
        .unwrap();
    let evidence = w.ceremony().evidence;
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::AttestationChains,
        &["hsm-3", "expired", "the verification time"],
    );
}

#[test]
fn an_attestation_over_other_keys_fails_at_the_fleet_keys() {
    let mut w = three_sites();
    let mut evidence = w.ceremony().evidence;
    // hsm-3 ends up holding other secrets than the fleet's, and says so.
    w.hsms[2].generate_fleet_secrets();
    let digest = evidence.transcript.digest();
    evidence.attestations[2] = w.hsms[2].attest(&name("fleet-eu-1"), digest).unwrap();
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::FleetKeys,
        &["attestation over other keys", "hsm-3"],
    );

    // A statement that lists one key twice (and omits the other) fails too.
    let mut evidence = w.ceremony().evidence;
    let mut statement = evidence.attestations[0].statement.clone();
    statement.keys[1] = statement.keys[0].clone();
    evidence.attestations[0] = w.hsms[0].sign_statement(statement).unwrap();
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::FleetKeys,
        &["attestation over other keys", "hsm-1"],
    );
}

#[test]
fn a_wrong_code_measurement_fails_at_the_measurement() {
    let mut w = three_sites();
    w.hsms[1].load_code([0x66; 32]);
    let evidence = w.ceremony().evidence;
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::CodeMeasurement,
        &["wrong code measurement", "hsm-2", &"66".repeat(32)],
    );

    // Every HSM runs what the evidence expects, but the verifier rebuilt
    // the code and measured something else.
    let mut w = three_sites();
    let evidence = w.ceremony().evidence;
    let report = w
        .verifier()
        .expect_measurement([0x77; 32])
        .verify_bytes(&evidence.to_json(), None);
    assert_fails_at(
        &report,
        StepId::CodeMeasurement,
        &["wrong code measurement", &"77".repeat(32)],
    );
}

#[test]
fn an_exportable_key_flag_fails_at_non_exportable() {
    let mut w = three_sites();
    w.hsms[0].set_non_exportable(false);
    let evidence = w.ceremony().evidence;
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::NonExportable,
        &["exportable key", "hsm-1", "opaque_key_exchange"],
    );
}

#[test]
fn too_few_hsms_fails_at_the_hsm_quorum() {
    let mut w = world(
        &["eu-west-a", "eu-central"],
        QuorumPolicy {
            min_hsms: 3,
            min_sites: 2,
        },
    );
    let evidence = w.ceremony().evidence;
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::QuorumHsms,
        &["too few HSMs", "2 distinct", "at least 3"],
    );

    // The verifier may demand more than the evidence's own policy.
    let mut w = three_sites();
    let evidence = w.ceremony().evidence;
    let report = w
        .verifier()
        .require_hsms(5)
        .verify_bytes(&evidence.to_json(), None);
    assert_fails_at(&report, StepId::QuorumHsms, &["too few HSMs", "at least 5"]);
}

#[test]
fn too_few_sites_fails_at_the_site_quorum() {
    let mut w = world(
        &["eu-west-a", "eu-west-a", "eu-west-a"],
        QuorumPolicy {
            min_hsms: 3,
            min_sites: 2,
        },
    );
    let evidence = w.ceremony().evidence;
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::QuorumSites,
        &["too few sites", "1 distinct", "eu-west-a", "at least 2"],
    );
}

#[test]
fn a_missing_participant_signature_fails_at_the_transcript() {
    let mut w = three_sites();
    let mut evidence = w.ceremony().evidence;
    evidence
        .transcript_signatures
        .retain(|s| s.participant.as_str() != "bob");
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::TranscriptSignatures,
        &["missing signature", "bob"],
    );

    // A participant the verifier requires who is not listed.
    let evidence = w.ceremony().evidence;
    let report = w
        .verifier()
        .require_participant([9; 32])
        .verify_bytes(&evidence.to_json(), None);
    assert_fails_at(
        &report,
        StepId::TranscriptSignatures,
        &["missing signature", "0909"],
    );
}

#[test]
fn a_forged_participant_signature_fails_at_the_transcript() {
    let mut w = three_sites();
    let mut evidence = w.ceremony().evidence;
    // Mallory signs in Bob's name.
    let mallory = bkv_deploy::ceremony::ParticipantKey::generate(name("bob"));
    let forged = mallory.sign(&evidence.transcript);
    for s in &mut evidence.transcript_signatures {
        if s.participant.as_str() == "bob" {
            *s = forged.clone();
        }
    }
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::TranscriptSignatures,
        &["forged signature", "bob"],
    );

    // Carol's signature with one bit flipped.
    let mut evidence = w.ceremony().evidence;
    evidence.transcript_signatures[2].signature.0[10] ^= 1;
    assert_fails_at(
        &reverify(&w, &evidence),
        StepId::TranscriptSignatures,
        &["forged signature", "carol"],
    );
}

#[test]
fn a_fleet_key_not_in_the_log_fails_at_the_log() {
    // A split view: a second auditor with the same key (a copy of its
    // database) logs another artifact at the same epoch. The evidence's
    // bundle is genuine, but the log the verifier is shown does not hold it.
    let mut w = three_sites();
    drop(std::mem::replace(
        &mut w.auditor,
        bkv_auditor::Auditor::open(tempfile::tempdir().unwrap().path()).unwrap(),
    ));
    let fork_dir = tempfile::tempdir().unwrap();
    for file in ["auditor.redb", "auditor.key"] {
        std::fs::copy(w.auditor_dir.path().join(file), fork_dir.path().join(file)).unwrap();
    }
    w.auditor = bkv_auditor::Auditor::open(w.auditor_dir.path()).unwrap();
    let evidence = w.ceremony().evidence;
    let mut fork = bkv_auditor::Auditor::open(fork_dir.path()).unwrap();
    assert_eq!(fork.public_key(), w.auditor.public_key());
    let other = FleetSecrets::generate(&mut rand::rngs::OsRng);
    let artifact = FleetKeyArtifact::for_fleet(
        DEFAULT_NAMESPACE,
        "fleet-eu-1",
        1,
        &other.public_keys(),
        w.now - DAY_MS,
        w.now + DAY_MS,
    )
    .to_bytes()
    .unwrap();
    fork.register_namespace(
        DEFAULT_NAMESPACE,
        1,
        backup_key_vault::bundle::artifact_digest(&artifact),
    )
    .unwrap();
    let mut bundle = fork
        .publish(DEFAULT_NAMESPACE, 1, &artifact, None, w.now)
        .unwrap();
    bundle.countersign(&w.operator);
    fork.add_counter_signature(DEFAULT_NAMESPACE, 1, bundle.counter_signature.unwrap())
        .unwrap();
    let mut log = ExportLog::new(fork.export(DEFAULT_NAMESPACE).unwrap());
    let report = w
        .verifier()
        .verify_bytes(&evidence.to_json(), Some(&mut log));
    assert_fails_at(
        &report,
        StepId::AuditorLog,
        &["fleet key not in the log", "epoch 1"],
    );

    // The evidence carries the bundle of another artifact (the fork's).
    let mut swapped = evidence.clone();
    swapped.log.bundle.0 = bundle.to_bytes().unwrap();
    assert_fails_at(
        &reverify(&w, &swapped),
        StepId::AuditorLog,
        &["fleet key not in the log", "another artifact"],
    );

    // An inclusion proof that does not lead to the checkpoint.
    let mut tampered = evidence.clone();
    let mut b = tampered.bundle().unwrap();
    b.inclusion.leaf_index = 1;
    tampered.log.bundle.0 = b.to_bytes().unwrap();
    assert_fails_at(
        &reverify(&w, &tampered),
        StepId::AuditorLog,
        &["fleet key not in the log", "no inclusion"],
    );

    // A checkpoint signed by another key than the pinned auditor's.
    let report = Verifier::new(
        X509StatementVerifier::new(w.vendor.root_der().to_vec()).unwrap(),
        w.now,
    )
    .pin_auditor_key([1; 32])
    .verify_bytes(&evidence.to_json(), None);
    assert_fails_at(&report, StepId::AuditorLog, &["not a pinned auditor key"]);
}

#[test]
fn a_truncated_or_malformed_evidence_file_fails_at_the_evidence_step() {
    let mut w = three_sites();
    let json = w.ceremony().evidence.to_json();
    let verifier = w.verifier();
    // Every truncation (in steps, to keep it quick) is refused cleanly.
    for len in (0..json.len() - 1).step_by(97) {
        let report = verifier.verify_bytes(&json[..len], None);
        assert_fails_at(&report, StepId::Evidence, &["evidence file"]);
        assert!(report
            .steps
            .iter()
            .skip(1)
            .all(|s| s.result == Outcome::Skipped));
    }
    let report = verifier.verify_bytes(&json[..json.len() / 2], None);
    assert_fails_at(&report, StepId::Evidence, &["truncated"]);

    let text = String::from_utf8(json.clone()).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (text.replacen("{", "{\n  \"extra\": 1,", 1), "unknown field"),
        (
            text.replace("bkv-deployment-evidence/v1", "bkv-deployment-evidence/v9"),
            "unknown evidence format",
        ),
        (
            text.replacen("\"version\": 2", "\"version\": 1", 1),
            "unsupported transcript version 1",
        ),
        (
            text.replacen("\"min_hsms\": 3", "\"min_hsms\": 0", 1),
            "quorum",
        ),
        (
            text.replacen("\"site\": \"eu-west-a\"", "\"site\": \"eu west\"", 1),
            "invalid name",
        ),
        (
            text.replacen("\"epoch\": 1,", "\"epoch\": 1,\n    \"epoch\": 1,", 1),
            "duplicate field",
        ),
        (
            text.replacen("\"fleet_id\": \"fleet-eu-1\",", "", 1),
            "missing field",
        ),
        ("[]".into(), "format"),
        ("\u{feff}{}".into(), "malformed"),
    ];
    for (variant, needle) in cases {
        assert_ne!(variant, text, "{needle}");
        let report = verifier.verify_bytes(variant.as_bytes(), None);
        assert_fails_at(&report, StepId::Evidence, &[needle]);
    }
    // Hex that is upper-case or the wrong length, and non-canonical base64.
    let evidence = Evidence::from_json(&json).unwrap();
    let digest = evidence.transcript.artifact_digest.to_string();
    let upper = text.replacen(&digest, &digest.to_uppercase(), 1);
    assert_fails_at(
        &verifier.verify_bytes(upper.as_bytes(), None),
        StepId::Evidence,
        &["hex"],
    );
    let short = text.replacen(&digest, &digest[2..], 1);
    assert_fails_at(
        &verifier.verify_bytes(short.as_bytes(), None),
        StepId::Evidence,
        &["hex"],
    );
    // Garbage and oversized input.
    for garbage in [&b"\xff\xfe\x00"[..], b"null", b"{\"format\": 7}"] {
        assert_fails_at(&verifier.verify_bytes(garbage, None), StepId::Evidence, &[]);
    }
    let huge = vec![b' '; bkv_deploy::evidence::MAX_EVIDENCE_LEN + 1];
    assert_fails_at(
        &verifier.verify_bytes(&huge, None),
        StepId::Evidence,
        &["more than"],
    );
    let _ = Hex([0u8; 1]);
}

#[test]
fn the_counter_signature_must_be_by_the_operator_key_the_transcript_records() {
    let mut w = three_sites();
    let outcome = w.ceremony();
    let evidence = outcome.evidence;
    assert_eq!(evidence.transcript.operator_key.0, w.operator.public_key());

    // A bundle counter-signed by another key than the transcript's.
    let mut bundle = evidence.bundle().unwrap();
    let other = backup_key_vault::bundle::OperatorSigningKey::from_bytes(&[77; 32]);
    bundle.countersign(&other);
    let mut swapped = evidence.clone();
    swapped.log.bundle.0 = bundle.to_bytes().unwrap();
    assert_fails_at(
        &reverify(&w, &swapped),
        StepId::AuditorLog,
        &["not by the key the transcript records"],
    );

    // No counter-signature at all.
    bundle.counter_signature = None;
    let mut unsigned = evidence.clone();
    unsigned.log.bundle.0 = bundle.to_bytes().unwrap();
    assert_fails_at(
        &reverify(&w, &unsigned),
        StepId::AuditorLog,
        &["no operator counter-signature"],
    );

    // A verifier that pins another operator key refuses the transcript's.
    let report = w
        .verifier_without_operator_pin()
        .pin_operator_key(other.public_key())
        .verify_bytes(&evidence.to_json(), None);
    assert_fails_at(
        &report,
        StepId::AuditorLog,
        &["is not a pinned operator key"],
    );
    // Without a pin it passes, with a warning naming the key it used.
    let report = w
        .verifier_without_operator_pin()
        .verify_bytes(&evidence.to_json(), None);
    assert!(report.passed(), "{}", report.to_text());
    assert!(report
        .warnings
        .iter()
        .any(|w| w.contains("the operator key is not pinned")));
}

/// `bkv operator publish` reads a pending ceremony back from disk: it is
/// held to every rule of the evidence that does not involve the log, so an
/// edited file is refused before anything is sent to the auditor.
#[test]
fn a_pending_ceremony_is_held_to_the_evidences_rules() {
    use bkv_deploy::evidence::{EvidenceError, PendingCeremony, PENDING_FORMAT};
    let mut w = three_sites();
    let e = w.ceremony().evidence;
    let good = PendingCeremony {
        format: PENDING_FORMAT.into(),
        transcript: e.transcript.clone(),
        transcript_signatures: e.transcript_signatures.clone(),
        attestations: e.attestations.clone(),
        fleet_key_artifact: e.fleet_key_artifact.clone(),
    };
    assert_eq!(PendingCeremony::from_json(&good.to_json()).unwrap(), good);

    let refused = |edit: &dyn Fn(&mut PendingCeremony)| {
        let mut p = good.clone();
        edit(&mut p);
        PendingCeremony::from_json(&p.to_json()).unwrap_err()
    };
    assert_eq!(
        refused(&|p| p.attestations.clear()),
        EvidenceError::Limit {
            what: "attestations"
        }
    );
    assert_eq!(
        refused(&|p| p.transcript_signatures.clear()),
        EvidenceError::Limit {
            what: "transcript_signatures"
        }
    );
    assert_eq!(
        refused(&|p| p.transcript.quorum.min_sites = 0),
        EvidenceError::Invalid("quorum (minimums must be at least 1)")
    );
    assert_eq!(
        refused(&|p| p.attestations[0].chain.clear()),
        EvidenceError::Limit {
            what: "attestation chain"
        }
    );
    assert_eq!(
        refused(&|p| p.fleet_key_artifact.clear()),
        EvidenceError::Invalid("fleet_key_artifact length")
    );
    assert_eq!(
        refused(&|p| p.fleet_key_artifact =
            "x".repeat(backup_key_vault::bundle::artifact::MAX_ARTIFACT_LEN + 1)),
        EvidenceError::Invalid("fleet_key_artifact length")
    );
    assert!(matches!(
        refused(&|p| p.transcript.version += 1),
        EvidenceError::UnsupportedVersion {
            what: "transcript",
            ..
        }
    ));
}
