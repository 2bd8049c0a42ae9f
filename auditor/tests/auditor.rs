//! The auditor: plexi's rules, durability across restarts, bundles a client
//! accepts, checkpoints that other implementations accept, and the monitor.

use std::sync::Mutex;

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::ed25519::PinnedKey;
use backup_key_vault::bundle::log::entry;
use backup_key_vault::bundle::{
    artifact_digest, AuditorSigningKey, Checkpoint, FleetKeyArtifact, MerkleLog,
    OperatorSigningKey, TrustAnchors, DEFAULT_NAMESPACE,
};
use backup_key_vault::{BundleError, FleetPublicKeys};
use bkv_auditor::export::{proofs_from_entries, verify_namespace, KeyChange, Pins};
use bkv_auditor::http::route;
use bkv_auditor::{Auditor, AuditorError};

const NS: &str = DEFAULT_NAMESPACE;

fn keys(n: u8) -> FleetPublicKeys {
    FleetPublicKeys {
        key_exchange: [n; 32],
        transport: backup_key_vault::fleet::TransportPublicKey([n.wrapping_add(100); 1216]),
    }
}

fn artifact(epoch: u64, k: &FleetPublicKeys) -> Vec<u8> {
    FleetKeyArtifact::for_fleet(NS, "fleet", epoch, k, 0, u64::MAX)
        .to_bytes()
        .unwrap()
}

/// An auditor with `n` epochs published (1..=n), each counter-signed.
fn auditor_with(dir: &std::path::Path, n: u64, operator: &OperatorSigningKey) -> Auditor {
    let mut a = Auditor::open(dir).unwrap();
    a.register_namespace(NS, 1, artifact_digest(&artifact(1, &keys(1))))
        .unwrap();
    for e in 1..=n {
        let mut b = a
            .publish(NS, e, &artifact(e, &keys(e as u8)), None, 10 * e)
            .unwrap();
        b.countersign(operator);
        a.add_counter_signature(NS, e, b.counter_signature.unwrap())
            .unwrap();
    }
    a
}

#[test]
fn the_auditor_enforces_plexis_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Auditor::open(dir.path()).unwrap();
    let first = artifact(1, &keys(1));
    a.register_namespace(NS, 1, artifact_digest(&first))
        .unwrap();
    assert_eq!(
        a.register_namespace(NS, 1, [0; 32]),
        Err(AuditorError::NamespaceExists)
    );
    assert_eq!(
        a.register_namespace("bad name", 1, [0; 32]),
        Err(AuditorError::InvalidNamespace)
    );
    // The first epoch must be the registered root.
    assert_eq!(
        a.publish(NS, 1, &artifact(1, &keys(9)), None, 1),
        Err(AuditorError::RootMismatch)
    );
    assert_eq!(
        a.publish(NS, 2, &artifact(2, &keys(1)), None, 1),
        Err(AuditorError::RootMismatch)
    );
    a.publish(NS, 1, &first, Some(&artifact_digest(&first)), 1)
        .unwrap();
    // A skipped epoch.
    assert_eq!(
        a.publish(NS, 3, &artifact(3, &keys(3)), None, 2),
        Err(AuditorError::EpochSkipped {
            expected: 2,
            found: 3
        })
    );
    // A republished epoch.
    assert_eq!(
        a.publish(NS, 1, &artifact(1, &keys(4)), None, 2),
        Err(AuditorError::EpochRepublished(1))
    );
    // A digest that is not 32 bytes, or not the artifact's.
    assert_eq!(
        a.publish(NS, 2, &artifact(2, &keys(2)), Some(&[1; 31]), 2),
        Err(AuditorError::BadDigest)
    );
    // An artifact that names another epoch.
    assert!(matches!(
        a.publish(NS, 2, &artifact(5, &keys(2)), None, 2),
        Err(AuditorError::BadArtifact(BundleError::EpochMismatch))
    ));
    a.publish(NS, 2, &artifact(2, &keys(2)), None, 2).unwrap();
    assert_eq!(a.entries(NS).unwrap().len(), 2);
    assert_eq!(
        a.publish("unknown.ns", 1, &first, None, 1),
        Err(AuditorError::UnknownNamespace)
    );
}

#[test]
fn the_log_refuses_a_group_whose_range_overlaps_another_of_its_realm_and_layout() {
    use backup_key_vault::RecordRange;
    let group = |epoch: u64, n: u8, realm: &str, layout: u64, first: u64, last: u64| {
        let mut a = FleetKeyArtifact::for_fleet(NS, "fleet", epoch, &keys(n), 0, u64::MAX);
        a.realm = realm.to_string();
        a.layout = layout;
        a.records = RecordRange { first, last };
        a.to_bytes().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut a = Auditor::open(dir.path()).unwrap();
    let first = group(1, 1, "r", 1, 0, 99);
    a.register_namespace(NS, 1, artifact_digest(&first))
        .unwrap();
    a.publish(NS, 1, &first, None, 1).unwrap();
    // A second group beside the first.
    a.publish(NS, 2, &group(2, 2, "r", 1, 100, 199), None, 2)
        .unwrap();
    // A third whose range straddles both is refused, before anything is
    // logged, and so is one inside the first's range but not equal to it.
    for (lo, hi) in [(50, 150), (0, 9), (199, 250)] {
        assert_eq!(
            a.publish(NS, 3, &group(3, 3, "r", 1, lo, hi), None, 3),
            Err(AuditorError::BadArtifact(BundleError::RangeOverlap)),
            "{lo}-{hi}"
        );
    }
    assert_eq!(a.entries(NS).unwrap().len(), 2);
    // A newer fleet of the first group (the same range), a range of a new
    // layout (a range moving), another realm and a disjoint range are all
    // logged.
    a.publish(NS, 3, &group(3, 4, "r", 1, 0, 99), None, 3)
        .unwrap();
    a.publish(NS, 4, &group(4, 5, "r", 2, 50, 150), None, 4)
        .unwrap();
    a.publish(NS, 5, &group(5, 6, "other", 1, 50, 150), None, 5)
        .unwrap();
    a.publish(NS, 6, &group(6, 7, "r", 1, 200, u64::MAX), None, 6)
        .unwrap();
    assert_eq!(a.entries(NS).unwrap().len(), 6);
}

#[test]
fn a_reused_digest_is_refused() {
    // Digests are unique: the same artifact bytes cannot be logged twice.
    // (A canonical artifact names its epoch, so a reuse can only come from a
    // log whose root is registered again; the rule is checked regardless.)
    let dir = tempfile::tempdir().unwrap();
    let mut a = Auditor::open(dir.path()).unwrap();
    let first = artifact(1, &keys(1));
    a.register_namespace(NS, 1, artifact_digest(&first))
        .unwrap();
    a.publish(NS, 1, &first, None, 1).unwrap();
    // Epoch 2 with epoch 1's bytes: the digest is refused before anything
    // else about the artifact.
    assert_eq!(
        a.publish(NS, 2, &first, None, 2),
        Err(AuditorError::DigestReused)
    );
}

#[test]
fn an_unauthenticated_publish_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Mutex::new(Auditor::open(dir.path()).unwrap());
    let first = artifact(1, &keys(1));
    let body = format!(
        r#"{{"name":"{NS}","root_epoch":1,"root_digest":"{}"}}"#,
        to_hex(&artifact_digest(&first))
    );
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer secret-token-x"),
        Some("Basic secret-token"),
        Some("Bearersecret-token"),
        Some("secret-token"),
    ] {
        let answer = route(
            &a,
            "secret-token",
            "POST",
            "/namespaces",
            auth,
            body.as_bytes(),
        );
        assert_eq!(answer.status, 401, "{auth:?}");
    }
    assert!(a.lock().unwrap().namespaces().is_empty());
    let answer = route(
        &a,
        "secret-token",
        "POST",
        "/namespaces",
        Some("Bearer secret-token"),
        body.as_bytes(),
    );
    assert_eq!(answer.status, 201);
    let publish = serde_json::json!({ "epoch": 1, "artifact": String::from_utf8(first).unwrap() })
        .to_string();
    let url = format!("/namespaces/{NS}/audits");
    assert_eq!(
        route(&a, "secret-token", "POST", &url, None, publish.as_bytes()).status,
        401
    );
    assert_eq!(a.lock().unwrap().entries(NS).unwrap().len(), 0);
    let ok = route(
        &a,
        "secret-token",
        "POST",
        &url,
        Some("Bearer secret-token"),
        publish.as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    // The scheme is case-insensitive (RFC 7235).
    for auth in ["bearer secret-token", "BEARER  secret-token"] {
        let counter = route(
            &a,
            "secret-token",
            "POST",
            &format!("/namespaces/{NS}/audits/1/counter-signature"),
            Some(auth),
            br#"{"operator_key":"00","signature":"00"}"#,
        );
        assert_ne!(counter.status, 401, "{auth}");
    }
    // Reads are open.
    let info = route(&a, "secret-token", "GET", "/info", None, b"");
    assert_eq!(info.status, 200);
    let cp = route(
        &a,
        "secret-token",
        "GET",
        &format!("/namespaces/{NS}/checkpoint"),
        None,
        b"",
    );
    assert_eq!(cp.status, 200);
}

#[test]
fn after_a_restart_the_auditor_still_has_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let (key, entries, checkpoint) = {
        let a = auditor_with(dir.path(), 3, &operator);
        (
            a.public_key(),
            a.entries(NS).unwrap(),
            a.checkpoint(NS).unwrap(),
        )
    };
    let mut a = Auditor::open(dir.path()).unwrap();
    assert_eq!(a.public_key(), key);
    assert_eq!(a.entries(NS).unwrap(), entries);
    assert_eq!(a.checkpoint(NS).unwrap(), checkpoint);
    for size in 1..=3 {
        a.checkpoint_at(NS, size).unwrap();
    }
    // The rules still hold after the restart, and the log goes on.
    assert_eq!(
        a.publish(NS, 3, &artifact(3, &keys(30)), None, 1),
        Err(AuditorError::EpochRepublished(3))
    );
    a.publish(NS, 4, &artifact(4, &keys(4)), None, 40).unwrap();
    let proof = a.consistency(NS, 3, 4).unwrap();
    let old = Checkpoint::parse_note(&checkpoint).unwrap().0;
    let new = Checkpoint::parse_note(&a.checkpoint(NS).unwrap())
        .unwrap()
        .0;
    proof.verify(&old, &new).unwrap();
}

#[test]
fn the_auditors_bundles_verify_at_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let a = auditor_with(dir.path(), 3, &operator);
    let anchors = TrustAnchors::new(&[a.public_key()], &[operator.public_key()]);
    for e in 1..=3 {
        let bundle = a.bundle(NS, e).unwrap();
        let fleet = anchors.verify(&bundle, 5, Some(1)).unwrap();
        assert_eq!(fleet.public_keys(), keys(e as u8));
    }
}

#[test]
fn checkpoints_interoperate_with_signed_note_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let a = auditor_with(dir.path(), 2, &operator);
    // The auditor's note (made with signed_note) verifies with ours...
    let note = a.checkpoint(NS).unwrap();
    let ours = Checkpoint::verify_note(&note, NS, &[PinnedKey::new(a.public_key())]).unwrap();
    // ...and ours, made by the core, is the same bytes and verifies with
    // signed_note's verifier.
    let key = AuditorSigningKey::from_bytes(&[9; 32]);
    let mine = ours.sign(&key);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key()).unwrap();
    let verifier =
        signed_note::StandardVerifier::new(&signed_note::new_ed25519_verifier_key(NS, &vk))
            .unwrap();
    let parsed = signed_note::Note::from_bytes(&mine).unwrap();
    let verifiers = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let (verified, _) = parsed.verify(&verifiers).unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(parsed.text(), ours.body().as_bytes());
}

#[test]
fn proofs_agree_with_an_independent_rfc6962_implementation() {
    // tlog_tiles (Go's tlog, ported) checks ct-merkle's proofs.
    let mut log = MerkleLog::new();
    for e in 1..=13u64 {
        log.push(entry(e, &[e as u8; 32]));
    }
    let cp = log.checkpoint(NS);
    let th = tlog_tiles::Hash(cp.root_hash);
    for i in 0..13 {
        let proof = log.prove_inclusion(i).unwrap();
        let p: Vec<_> = proof.hashes.iter().map(|h| tlog_tiles::Hash(*h)).collect();
        let leaf = tlog_tiles::record_hash(log.get(i).unwrap());
        tlog_tiles::check_record(&p, 13, th, i, leaf).unwrap();
    }
    for old in 1..13 {
        let proof = log.prove_consistency(old).unwrap();
        let p: Vec<_> = proof.hashes.iter().map(|h| tlog_tiles::Hash(*h)).collect();
        let oh = tlog_tiles::Hash(log.prefix(old).unwrap().checkpoint(NS).root_hash);
        tlog_tiles::check_tree(&p, 13, th, old, oh).unwrap();
    }
}

#[test]
fn plexi_core_signatures_verify_with_ours() {
    use plexi_core::{Ciphersuite, Epoch, SignatureMessage as PlexiMessage, SignatureResponse};
    let digest = artifact_digest(b"fleet keys");
    for (epoch, ts) in [(0u64, 0u64), (1, 1_700_000_000_000), (u64::MAX, u64::MAX)] {
        let message = PlexiMessage::new(
            &Ciphersuite::ProtobufEd25519,
            NS.to_string(),
            ts,
            &Epoch::from(epoch),
            digest.to_vec(),
        )
        .unwrap();
        let plexi_bytes = message.to_vec().unwrap();
        let ours = backup_key_vault::bundle::SignatureMessage {
            namespace: NS,
            timestamp_ms: ts,
            epoch,
            digest,
        };
        // The same bytes on the wire.
        assert_eq!(ours.to_bytes(), plexi_bytes);

        // plexi -> ours: a signature made over plexi's encoding.
        let sk = ed25519_dalek::SigningKey::from_bytes(&[epoch as u8 ^ 0x5a; 32]);
        use ed25519_dalek::Signer;
        let sig = sk.sign(&plexi_bytes).to_bytes();
        assert!(backup_key_vault::bundle::statement::verify_strict(
            &sk.verifying_key().to_bytes(),
            &ours.to_bytes(),
            &sig
        ));

        // ours -> plexi: plexi's SignatureResponse::verify accepts our
        // auditor's signature.
        let auditor = AuditorSigningKey::from_bytes(&[7; 32]);
        let our_sig = auditor.sign_statement(&ours);
        let response = SignatureResponse::new(
            &Ciphersuite::ProtobufEd25519,
            &Ciphersuite::ProtobufEd25519,
            NS.to_string(),
            ts,
            &Epoch::from(epoch),
            digest.to_vec(),
            our_sig.to_vec(),
            None,
            None,
        );
        response.verify(&auditor.public_key()).unwrap();
        // And refuses it for another epoch.
        let other = SignatureResponse::new(
            &Ciphersuite::ProtobufEd25519,
            &Ciphersuite::ProtobufEd25519,
            NS.to_string(),
            ts,
            &Epoch::from(epoch.wrapping_add(1)),
            digest.to_vec(),
            our_sig.to_vec(),
            None,
            None,
        );
        assert!(other.verify(&auditor.public_key()).is_err());
    }
}

#[test]
fn the_monitor_verifies_a_log_and_lists_key_changes() {
    let dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let mut a = auditor_with(dir.path(), 2, &operator);
    // Epoch 3 rotates the transport key only. (Since revision 11 the two
    // roles' keys differ in length, so a key cannot move between them.)
    let swapped = FleetPublicKeys {
        key_exchange: keys(2).key_exchange,
        transport: keys(3).transport,
    };
    let mut b = a.publish(NS, 3, &artifact(3, &swapped), None, 30).unwrap();
    b.countersign(&operator);
    a.add_counter_signature(NS, 3, b.counter_signature.unwrap())
        .unwrap();
    let export = a.export(NS).unwrap();
    let pins = Pins {
        auditor_keys: vec![a.public_key()],
        operator_keys: vec![operator.public_key()],
    };
    let report = verify_namespace(&export, &pins, &mut proofs_from_entries(&export)).unwrap();
    assert_eq!(report.log_size, 3);
    assert_eq!(report.checkpoints, 3);
    assert_eq!(report.consistent_pairs, 2, "consecutive pairs only");
    assert_eq!(report.epochs[0].changes.len(), 2);
    assert!(report.epochs[1]
        .changes
        .iter()
        .any(|c| matches!(c, KeyChange::Removed { .. })));
    assert_eq!(report.epochs[2].changes.len(), 2);
    assert!(report.epochs[2]
        .changes
        .iter()
        .any(|c| matches!(c, KeyChange::Added { role, .. } if role == "xwing_transport")));
    assert!(report.epochs[2]
        .changes
        .iter()
        .any(|c| matches!(c, KeyChange::Removed { role, .. } if role == "xwing_transport")));
    // A pin the log does not match.
    let wrong = Pins {
        auditor_keys: vec![[1; 32]],
        ..Pins::default()
    };
    assert!(verify_namespace(&export, &wrong, &mut proofs_from_entries(&export)).is_err());
}

#[test]
fn the_monitor_catches_a_forked_log() {
    // The auditor (its key) signs two checkpoints that are not consistent:
    // the real log at size 3, and a fork at size 2 whose second entry is
    // another digest.
    let dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let a = auditor_with(dir.path(), 3, &operator);
    let mut export = a.export(NS).unwrap();
    // The auditor's key, read back from its database for this test.
    let seed = seed_of(a, dir.path());
    let key = AuditorSigningKey::from_bytes(&seed);
    let mut fork = MerkleLog::new();
    fork.push(entry(1, &artifact_digest(&artifact(1, &keys(1)))));
    fork.push(entry(2, &[0xee; 32]));
    export.checkpoints[1] = String::from_utf8(fork.checkpoint(NS).sign(&key)).unwrap();
    let failure =
        verify_namespace(&export, &Pins::default(), &mut proofs_from_entries(&export)).unwrap_err();
    assert!(failure.reason.contains("not consistent"), "{failure}");
}

#[test]
fn the_monitor_catches_a_rewritten_entry() {
    let dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let a = auditor_with(dir.path(), 3, &operator);
    let export = a.export(NS).unwrap();

    // The artifact of epoch 2 changed: its digest no longer matches.
    let mut changed = export.clone();
    changed.entries[1].artifact = changed.entries[1]
        .artifact
        .replace("\"fleet\"", "\"fleeT\"");
    let failure = verify_namespace(
        &changed,
        &Pins::default(),
        &mut proofs_from_entries(&changed),
    )
    .unwrap_err();
    assert_eq!(failure.epoch, Some(2));

    // A rewritten entry with a fresh, valid signature from the auditor's
    // key: the signatures check out, but the signed checkpoints do not
    // contain it. The proofs come from the auditor, which kept the original.
    let mut rewritten = export.clone();
    let other = artifact(2, &keys(77));
    rewritten.entries[1].artifact = String::from_utf8(other.clone()).unwrap();
    rewritten.entries[1].digest = to_hex(&artifact_digest(&other));
    let seed = seed_of(a, dir.path());
    let key = AuditorSigningKey::from_bytes(&seed);
    let statement = backup_key_vault::bundle::SignatureMessage {
        namespace: NS,
        timestamp_ms: rewritten.entries[1].timestamp_ms,
        epoch: 2,
        digest: artifact_digest(&other),
    };
    let sig = key.sign_statement(&statement);
    rewritten.entries[1].signature = to_hex(&sig);
    rewritten.entries[1].counter_signature = Some(to_hex(&operator.countersign(&sig)));
    let auditor = Auditor::open(dir.path()).unwrap();
    let mut from_auditor = |old, new| auditor.consistency(NS, old, new).map_err(|e| e.to_string());
    let failure = verify_namespace(&rewritten, &Pins::default(), &mut from_auditor).unwrap_err();
    assert_eq!(failure.epoch, Some(2), "{failure}");
    assert!(failure.reason.contains("rewritten"), "{failure}");

    // A missing counter-signature.
    let mut unsigned = export.clone();
    unsigned.entries[2].counter_signature = None;
    let failure = verify_namespace(
        &unsigned,
        &Pins::default(),
        &mut proofs_from_entries(&unsigned),
    )
    .unwrap_err();
    assert_eq!(failure.epoch, Some(3));
}

fn seed_of(a: Auditor, dir: &std::path::Path) -> [u8; 32] {
    drop(a);
    // The signing key lives in its own file, not in the database.
    let hex = std::fs::read_to_string(dir.join(bkv_auditor::KEY_FILE)).unwrap();
    bkv_auditor::export::parse_hex(hex.trim()).unwrap()
}

#[test]
fn the_database_holding_the_signing_key_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("auditor-data");
    let key = Auditor::open(&dir).unwrap().public_key();
    let db = dir.join("auditor.redb");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&db), 0o600);

    // A database others can read is refused, naming the file and the fix.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let Err(AuditorError::InsecurePermissions(text)) = Auditor::open(&dir) else {
        panic!("opened a world-readable key database");
    };
    assert!(
        text.contains(&format!("chmod 600 {}", db.display())),
        "{text}"
    );
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();

    // So is a directory others can write (they could swap the database).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let Err(AuditorError::InsecurePermissions(text)) = Auditor::open(&dir) else {
        panic!("opened a database in a world-writable directory");
    };
    assert!(
        text.contains(&format!("chmod 700 {}", dir.display())),
        "{text}"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(Auditor::open(&dir).unwrap().public_key(), key);
}

#[test]
fn the_signing_key_lives_in_a_private_key_file_not_in_the_database() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("auditor-data");
    let auditor = Auditor::open(&dir).unwrap();
    let public = auditor.public_key();
    drop(auditor);
    let key_file = dir.join(bkv_auditor::KEY_FILE);
    assert_eq!(mode(&key_file), 0o600);
    let seed_hex = std::fs::read_to_string(&key_file).unwrap();
    let seed: [u8; 32] = bkv_auditor::export::parse_hex(seed_hex.trim()).unwrap();
    assert_eq!(AuditorSigningKey::from_bytes(&seed).public_key(), public);
    // The database does not hold the seed.
    let db = std::fs::read(dir.join("auditor.redb")).unwrap();
    assert!(!db.windows(32).any(|w| w == seed), "seed in auditor.redb");

    // A key file others can read is refused, naming it and the fix.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let Err(AuditorError::InsecurePermissions(text)) = Auditor::open(&dir) else {
        panic!("opened a group-readable key file");
    };
    assert!(
        text.contains(&format!("chmod 600 {}", key_file.display())),
        "{text}"
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Another key, or none, is refused: the log would not verify.
    let other = AuditorSigningKey::from_bytes(&[7; 32]);
    std::fs::write(&key_file, to_hex(&other.to_bytes()[..])).unwrap();
    let err = Auditor::open(&dir).unwrap_err().to_string();
    assert!(err.contains(&key_file.display().to_string()), "{err}");
    std::fs::remove_file(&key_file).unwrap();
    let err = Auditor::open(&dir).unwrap_err().to_string();
    assert!(err.contains("restore"), "{err}");
    std::fs::write(&key_file, seed_hex).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(Auditor::open(&dir).unwrap().public_key(), public);
}

#[test]
fn a_database_holding_the_key_in_clear_is_migrated_to_the_key_file() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("auditor-data");
    std::fs::create_dir(&dir).unwrap();
    let db_path = dir.join("auditor.redb");
    let seed = [9u8; 32];
    {
        let db = redb::Database::create(&db_path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut t = txn.open_table(meta).unwrap();
            t.insert("signing_key", &seed[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&db_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = AuditorSigningKey::from_bytes(&seed).public_key();
    assert_eq!(Auditor::open(&dir).unwrap().public_key(), public);
    let file = std::fs::read_to_string(dir.join(bkv_auditor::KEY_FILE)).unwrap();
    assert_eq!(file.trim(), to_hex(&seed));
    assert_eq!(Auditor::open(&dir).unwrap().public_key(), public);
}

/// One raw HTTP/1.1 exchange on loopback: the whole answer as text.
fn http_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_stalled_upload_does_not_block_the_auditor_and_metrics_count_requests() {
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let auditor = Arc::new(Mutex::new(Auditor::open(dir.path()).unwrap()));
    let server = bkv_auditor::http::Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let stop = server.shutdown_handle();
    let runner = std::thread::spawn(move || server.run(&auditor, "secret-token-0123456789"));

    // An unauthenticated POST announcing 100,000 bytes and sending one.
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled
        .write_all(b"POST /namespaces HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        .unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        let info = http_exchange(
            addr,
            b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(info.starts_with("HTTP/1.1 200"), "{info}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "GET /info waited {:?} behind a stalled upload",
        started.elapsed()
    );
    // An oversized body is refused with 413 without being read.
    let big = http_exchange(
        addr,
        b"POST /namespaces HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
    );
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    // The stalled upload is cut at the body timeout (5 s).
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cut = String::new();
    let _ = stalled.read_to_string(&mut cut);
    assert!(cut.starts_with("HTTP/1.1 408"), "{cut}");
    assert!(started.elapsed() < Duration::from_secs(8));

    let unauthorized = http_exchange(
        addr,
        b"POST /namespaces HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    let metrics = http_exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for line in [
        "bkv_auditor_requests_total{endpoint=\"info\",status=\"200\"} 3",
        "bkv_auditor_requests_total{endpoint=\"register_namespace\",status=\"401\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // Graceful shutdown: the server returns and stops listening.
    stop.shutdown();
    runner.join().unwrap().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// SPEC.md §18.2: `GET /namespaces/{ns}/checkpoints/0` is the signed
/// checkpoint of the empty tree (root SHA-256("")), before and after
/// anything is published, and it is consistent with every later one.
#[test]
fn checkpoint_zero_is_the_empty_tree() {
    let dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let a = Mutex::new(Auditor::open(dir.path()).unwrap());
    let first = artifact(1, &keys(1));
    a.lock()
        .unwrap()
        .register_namespace(NS, 1, artifact_digest(&first))
        .unwrap();
    let pinned = [PinnedKey::new(a.lock().unwrap().public_key())];
    let get_zero = || {
        let answer = route(
            &a,
            "t",
            "GET",
            &format!("/namespaces/{NS}/checkpoints/0"),
            None,
            b"",
        );
        assert_eq!(answer.status, 200);
        Checkpoint::verify_note(&answer.body, NS, &pinned).unwrap()
    };
    let empty = MerkleLog::new().checkpoint(NS);
    assert_eq!(get_zero(), empty);
    {
        let mut auditor = a.lock().unwrap();
        for e in 1..=3 {
            let mut b = auditor
                .publish(NS, e, &artifact(e, &keys(e as u8)), None, e)
                .unwrap();
            b.countersign(&operator);
        }
    }
    let zero = get_zero();
    assert_eq!(zero, empty, "still the empty tree after publishing");
    assert_eq!(
        zero.root_hash,
        backup_key_vault::bundle::log::empty_root(),
        "RFC 6962's empty root"
    );
    let auditor = a.lock().unwrap();
    let latest = Checkpoint::parse_note(&auditor.checkpoint(NS).unwrap())
        .unwrap()
        .0;
    assert_eq!(latest.tree_size, 3);
    auditor
        .consistency(NS, 0, 3)
        .unwrap()
        .verify(&zero, &latest)
        .unwrap();
    // A size above the log is not found.
    drop(auditor);
    let answer = route(
        &a,
        "t",
        "GET",
        &format!("/namespaces/{NS}/checkpoints/4"),
        None,
        b"",
    );
    assert_eq!(answer.status, 404);
}

/// SPEC.md §18.2: where plexi defines an answer's JSON, ours has its
/// shape: plexi-core's own types read our answers, and plexi-core's
/// verifier accepts our statements.
#[test]
fn plexi_core_reads_and_verifies_our_answers() {
    let dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    let a = Mutex::new(auditor_with(dir.path(), 3, &operator));
    let key = a.lock().unwrap().public_key();
    let get = |url: &str| -> Vec<u8> {
        let answer = route(&a, "t", "GET", url, None, b"");
        assert_eq!(answer.status, 200, "{url}");
        answer.body
    };
    // An epoch's audit: plexi's SignatureResponse, verified by plexi.
    for e in 1..=3u64 {
        let body = get(&format!("/namespaces/{NS}/audits/{e}"));
        let response: plexi_core::SignatureResponse = serde_json::from_slice(&body)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(response.namespace(), NS);
        assert_eq!(response.epoch().to_string(), e.to_string());
        assert_eq!(
            response.digest(),
            artifact_digest(&artifact(e, &keys(e as u8)))
        );
        assert_eq!(response.key_id(), Some(key[31]));
        response.verify(&key).unwrap();
        // A changed digest no longer verifies with plexi.
        let mut forged: serde_json::Value = serde_json::from_slice(&body).unwrap();
        forged["digest"] = serde_json::json!(to_hex(&[0u8; 32]));
        let forged: plexi_core::SignatureResponse = serde_json::from_value(forged).unwrap();
        assert!(forged.verify(&key).is_err());
        // The bundle answer is one too.
        let body = get(&format!("/namespaces/{NS}/audits/{e}/bundle"));
        let response: plexi_core::SignatureResponse = serde_json::from_slice(&body).unwrap();
        response.verify(&key).unwrap();
    }
    // The auditor's configuration: its key and its logs.
    let info: plexi_core::auditor::Configuration = serde_json::from_slice(&get("/info")).unwrap();
    assert_eq!(info.keys().len(), 1);
    assert_eq!(info.keys()[0].public_key(), &to_hex(&key));
    assert_eq!(info.keys()[0].key_id(), key[31]);
    assert_eq!(info.logs(), &vec![NS.to_string()]);
    // A namespace, alone and in the list.
    let ns: plexi_core::namespaces::NamespaceInfo =
        serde_json::from_slice(&get(&format!("/namespaces/{NS}"))).unwrap();
    assert_eq!(ns.name(), NS);
    assert_eq!(
        ns.root(),
        Some(format!("1/{}", to_hex(&artifact_digest(&artifact(1, &keys(1))))).as_str())
    );
    assert_eq!(ns.status(), plexi_core::namespaces::NamespaceStatus::Online);
    assert_eq!(ns.audits_uri(), format!("/namespaces/{NS}/audits"));
    assert_eq!(u32::from(ns.ciphersuite()), 1);
    let list: plexi_core::namespaces::Namespaces =
        serde_json::from_slice(&get("/namespaces")).unwrap();
    assert_eq!(list.iter().map(|n| n.name()).collect::<Vec<_>>(), [NS]);
}

/// SPEC.md §18.3: the monitor's state file remembers the newest verified
/// checkpoint; the next run proves the new one consistent with it, so a
/// log that forks between two runs is caught even though the fork's own
/// export is consistent and no longer shows the old checkpoint.
#[test]
fn the_state_file_catches_a_fork_between_two_runs() {
    use bkv_auditor::export::{verify_namespace_with_state, MonitorState};
    let dir = tempfile::tempdir().unwrap();
    let fork_dir = tempfile::tempdir().unwrap();
    let operator = OperatorSigningKey::from_bytes(&[3; 32]);
    drop(auditor_with(dir.path(), 2, &operator));
    // The same auditor (same key, same two entries), copied: from here on
    // the two copies go separate ways.
    for file in ["auditor.redb", "auditor.key"] {
        std::fs::copy(dir.path().join(file), fork_dir.path().join(file)).unwrap();
    }
    let publish = |a: &mut Auditor, epoch: u64, k: u8| {
        let mut b = a
            .publish(NS, epoch, &artifact(epoch, &keys(k)), None, epoch)
            .unwrap();
        b.countersign(&operator);
        a.add_counter_signature(NS, epoch, b.counter_signature.unwrap())
            .unwrap();
    };
    let mut real = Auditor::open(dir.path()).unwrap();
    let mut fork = Auditor::open(fork_dir.path()).unwrap();
    assert_eq!(real.public_key(), fork.public_key());
    publish(&mut real, 3, 3);
    publish(&mut fork, 3, 33);
    publish(&mut fork, 4, 4);
    let pins = Pins {
        auditor_keys: vec![real.public_key()],
        operator_keys: vec![operator.public_key()],
    };
    let run = |export: &bkv_auditor::export::Export, state: Option<&MonitorState>| {
        verify_namespace_with_state(export, &pins, &mut proofs_from_entries(export), state)
    };

    // First run, on the real log: it remembers the checkpoint of size 3.
    let (report, state) = run(&real.export(NS).unwrap(), None).unwrap();
    assert_eq!(report.remembered_size, None);
    assert_eq!(report.new_operator_keys, [to_hex(&operator.public_key())]);
    // The state goes through a file as JSON.
    let state: MonitorState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(
        Checkpoint::parse_note(state.checkpoint.as_bytes())
            .unwrap()
            .0
            .tree_size,
        3
    );

    // The fork on its own is a consistent log: without memory it passes.
    let forked = fork.export(NS).unwrap();
    run(&forked, None).unwrap();
    // With the state of the first run, it is caught.
    let failure = run(&forked, Some(&state)).unwrap_err();
    assert!(failure.reason.contains("not consistent"), "{failure}");
    assert!(failure.reason.contains("remembered"), "{failure}");

    // The real log going on passes, and moves the state forward.
    publish(&mut real, 4, 4);
    let (report, next) = run(&real.export(NS).unwrap(), Some(&state)).unwrap();
    assert_eq!(report.remembered_size, Some(3));
    assert!(report.new_operator_keys.is_empty());
    assert_eq!(report.consistent_pairs, 3 + 1);
    assert_eq!(
        Checkpoint::parse_note(next.checkpoint.as_bytes())
            .unwrap()
            .0
            .tree_size,
        4
    );

    // A log that shrank (the export cut back to two entries).
    let mut cut = real.export(NS).unwrap();
    cut.entries.truncate(2);
    cut.checkpoints.truncate(2);
    let failure = run(&cut, Some(&next)).unwrap_err();
    assert!(failure.reason.contains("shrank"), "{failure}");

    // Another auditor key than the one remembered.
    let mut other = next.clone();
    other.auditor_key = to_hex(&[9; 32]);
    let failure = run(&real.export(NS).unwrap(), Some(&other)).unwrap_err();
    assert!(failure.reason.contains("auditor key changed"), "{failure}");
}
