//! Fleet keys over the air across real processes (issue 14): the key
//! ceremony, `bkv auditor serve`, the operator publishing fleet 1, a fleet
//! of three `bkv node` processes, a client that pins only the auditor's and
//! the operator's keys registering and recovering, fleet 2 published at
//! epoch 2 and learned by the same client, and `bkv audit verify-namespace`
//! over both epochs. On the way, every refusal the issue names, each with
//! its own message and nothing changed: a bundle signed by an unknown
//! auditor, a counter-signature by another key, an older epoch offered to
//! a node and to a client, another fleet's bundle, and an artifact the
//! auditor never logged. Loopback only; about ten node-seconds of work.

mod common;

use std::path::Path;

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::{OperatorSigningKey, ValidationBundle, DEFAULT_NAMESPACE};
use bkv_auditor::Auditor;
use bkv_deploy::evidence::PendingCeremony;
use common::*;

const MEASUREMENT: &str = "4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d";

/// `bkv fleet ceremony` prepared for the running auditor.
fn ceremony(out: &Path, fleet_id: &str, auditor: &str, extra: &[&str]) -> PendingCeremony {
    let mut args = vec![
        "fleet",
        "ceremony",
        "--out",
        out.to_str().unwrap(),
        "--fleet-id",
        fleet_id,
        "--participant",
        "alice",
        "--measurement",
        MEASUREMENT,
        "--auditor",
        auditor,
    ];
    for h in ["hsm-1@eu-west-a", "hsm-2@eu-west-b", "hsm-3@eu-central"] {
        args.extend(["--hsm", h]);
    }
    args.extend_from_slice(extra);
    let run = bkv(&args);
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        !out.join("evidence.json").exists(),
        "nothing is published yet"
    );
    PendingCeremony::from_json(&std::fs::read(out.join("ceremony.json")).unwrap()).unwrap()
}

/// Three nodes, each on its HSM of the ceremony in `ceremony`, pinning the
/// auditor's and the operator's keys.
fn nodes(dir: &Path, ceremony: &Path, auditor_key: &str, operator_key: &str) -> NodeFleet {
    NodeFleet::start(dir, 3, |i| {
        [
            "--ceremony",
            ceremony.to_str().unwrap(),
            "--hsm",
            &format!("hsm-{i}"),
            "--auditor-key",
            auditor_key,
            "--operator-key",
            operator_key,
        ]
        .map(str::to_string)
        .to_vec()
    })
}

fn publish(ceremony: &Path, auditor: &AuditorServer, fleet: &NodeFleet) -> std::process::Output {
    let mut args = vec![
        "operator".to_string(),
        "publish".into(),
        "--ceremony".into(),
        ceremony.display().to_string(),
        "--auditor".into(),
        auditor.url.clone(),
        "--auditor-key".into(),
        auditor.key.clone(),
        "--token-file".into(),
        auditor.token_file.display().to_string(),
    ];
    args.extend(fleet.endpoint_args());
    bkv(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `bkv register|recover` against `fleet`, learning its keys over the air.
fn client(
    command: &str,
    fleet: &NodeFleet,
    record: &str,
    code: &str,
    keys: (&str, &str),
    state: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        command.to_string(),
        "--record".into(),
        record.into(),
        "--code".into(),
        code.into(),
        "--insecure-fast".into(),
        "--auditor-key".into(),
        keys.0.into(),
        "--operator-key".into(),
        keys.1.into(),
        "--state".into(),
        state.display().to_string(),
    ];
    args.extend(fleet.endpoint_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    bkv(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn backup_key(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("backup key ").map(str::to_string))
        .unwrap_or_else(|| panic!("no backup key in {}", text(out)))
}

/// The operator key a ceremony sealed to its first HSM, opened as that
/// HSM would (the test plays a misbehaving operator with it).
fn operator_key_of(dir: &Path, pending: &PendingCeremony) -> OperatorSigningKey {
    let hsm = bkv_deploy::sim::SimulatedHsm::load(&dir.join("hsms/hsm-1.json")).unwrap();
    hsm.open_operator_key(
        &std::fs::read(dir.join("sealed/hsm-1.operator")).unwrap(),
        &pending.transcript.digest(),
    )
    .unwrap()
}

fn node_bundle(endpoint: &str) -> Vec<u8> {
    let (status, bytes) = get_bytes(&format!("{endpoint}/v1/bundle"));
    assert_eq!(status, 200, "{endpoint} holds no bundle");
    bytes
}

#[test]
fn a_fleet_published_through_the_auditor_reaches_a_client_that_pins_two_keys() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let auditor = AuditorServer::start(d);

    // Fleet 1: the ceremony prepares it for the auditor's next epoch.
    let c1 = d.join("ceremony-1");
    let pending1 = ceremony(&c1, "fleet-1", &auditor.url, &[]);
    assert_eq!(pending1.transcript.epoch, 1);
    let operator_key = pending1.transcript.operator_key.to_string();
    let keys = (auditor.key.as_str(), operator_key.as_str());
    let fleet1 = nodes(&d.join("fleet-1"), &c1, keys.0, keys.1);
    let state = d.join("client-state.json");

    // Before publication the nodes hand out no bundle, and the client
    // says what is missing.
    let early = client(
        "register",
        &fleet1,
        "alice",
        "alice-code",
        keys,
        &state,
        &[],
    );
    assert_eq!(early.status.code(), Some(1), "{}", text(&early));
    assert!(
        text(&early).contains("holds no validation bundle"),
        "{}",
        text(&early)
    );

    // The operator publishes: logged, verified, counter-signed, evidence
    // written, installed on every node.
    let published = publish(&c1, &auditor, &fleet1);
    assert!(published.status.success(), "{}", text(&published));
    let out = String::from_utf8_lossy(&published.stdout).into_owned();
    assert!(out.contains("the auditor logged epoch 1"), "{out}");
    assert_eq!(out.matches("installed epoch 1").count(), 3, "{out}");
    let bundle1 = std::fs::read(c1.join("bundle")).unwrap();
    for e in &fleet1.endpoints {
        assert_eq!(node_bundle(e), bundle1);
    }
    // The evidence verifies against the live auditor under both pins.
    let verified = bkv(&[
        "audit",
        "verify-deployment",
        c1.join("evidence.json").to_str().unwrap(),
        "--vendor-root",
        c1.join("vendor-root.pem").to_str().unwrap(),
        "--log",
        &auditor.url,
        "--auditor-key",
        keys.0,
        "--operator-key",
        keys.1,
    ]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(!text(&verified).contains("warning"), "{}", text(&verified));

    // The client learns fleet 1 from its bundle, registers, recovers.
    let registered = client(
        "register",
        &fleet1,
        "alice",
        "alice-code",
        keys,
        &state,
        &[],
    );
    assert!(registered.status.success(), "{}", text(&registered));
    assert!(
        text(&registered).contains("fleet fleet-1 learned"),
        "{}",
        text(&registered)
    );
    let alice_key = backup_key(&registered);
    let state_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    // One fleet accepted, alone in its realm (every record id), at epoch 1.
    assert_eq!(state_json["fleets"].as_array().unwrap().len(), 1);
    assert_eq!(state_json["fleets"][0]["epoch"], 1);
    assert_eq!(state_json["fleets"][0]["first_record"], "0000000000000000");

    // One node restarted from its disk still hands out the bundle, and a
    // recovery through it works.
    let mut fleet1 = fleet1;
    fleet1.restart(1);
    assert_eq!(node_bundle(&fleet1.endpoints[1]), bundle1);
    let recovered = client(
        "recover",
        &fleet1,
        "alice",
        "alice-code",
        keys,
        &state,
        &["--node", "2"],
    );
    assert!(recovered.status.success(), "{}", text(&recovered));
    assert_eq!(backup_key(&recovered), alice_key);

    // A client that pins the fleet's keys itself (fleet.public) reads the
    // KE2 inside the nodes' KE2-with-bundle answers.
    let pinned = d.join("pinned");
    std::fs::create_dir(&pinned).unwrap();
    let fleet_keys: Vec<u8> = pending1
        .transcript
        .fleet_keys
        .iter()
        .flat_map(|k| k.public_key.0.clone())
        .collect();
    std::fs::write(pinned.join("fleet.public"), hex(&fleet_keys)).unwrap();
    std::fs::write(pinned.join("endpoints"), fleet1.endpoints.join("\n")).unwrap();
    let old_style = bkv(&[
        "recover",
        "--fleet",
        pinned.to_str().unwrap(),
        "--record",
        "alice",
        "--code",
        "alice-code",
        "--insecure-fast",
    ]);
    assert!(old_style.status.success(), "{}", text(&old_style));
    assert_eq!(backup_key(&old_style), alice_key);

    // Refusals at a node, each with its reason, the node's bundle unchanged.
    let operator = operator_key_of(&c1, &pending1);
    let install = format!("{}/v1/bundle", fleet1.endpoints[0]);
    // (a) Signed by an auditor the node does not pin: the same artifact,
    //     logged by another auditor, counter-signed by the right operator.
    let mut stranger = Auditor::open(&d.join("stranger")).unwrap();
    let artifact = pending1.fleet_key_artifact.as_bytes();
    stranger
        .register_namespace(
            DEFAULT_NAMESPACE,
            1,
            backup_key_vault::bundle::artifact_digest(artifact),
        )
        .unwrap();
    let mut foreign = stranger
        .publish(DEFAULT_NAMESPACE, 1, artifact, None, bkv_deploy::now_ms())
        .unwrap();
    foreign.countersign(&operator);
    let stranger_key = to_hex(&stranger.public_key());
    let (status, why) = post_bytes(&install, &foreign.to_bytes().unwrap());
    assert_eq!(
        (status, why.trim()),
        (422, "refused: auditor key is not pinned")
    );
    // (b) Counter-signed by another operator key.
    let mut other_operator = ValidationBundle::from_bytes(&bundle1).unwrap();
    other_operator.countersign(&OperatorSigningKey::from_bytes(&[9; 32]));
    let (status, why) = post_bytes(&install, &other_operator.to_bytes().unwrap());
    assert_eq!(
        (status, why.trim()),
        (422, "refused: operator key is not pinned")
    );
    // (c) Not a bundle at all.
    let (status, why) = post_bytes(&install, b"not a bundle");
    assert_eq!(status, 422, "{why}");
    assert!(why.contains("not a validation bundle"), "{why}");
    assert_eq!(node_bundle(&fleet1.endpoints[0]), bundle1);
    // All three were refused by the front's own checks: none reached the
    // node's driving loop.
    let (_, metrics) = get_bytes(&format!("{}/metrics", fleet1.endpoints[0]));
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("\nbkv_node_bundles_refused_at_front_total 3\n"),
        "{metrics}"
    );
    // The operator's own command refuses the same before any node sees it.
    let foreign_file = d.join("foreign.bundle");
    std::fs::write(&foreign_file, foreign.to_bytes().unwrap()).unwrap();
    let mut args = vec![
        "operator",
        "install",
        "--bundle",
        foreign_file.to_str().unwrap(),
        "--auditor-key",
        keys.0,
        "--operator-key",
        keys.1,
    ];
    let endpoints = fleet1.endpoint_args();
    args.extend(endpoints.iter().map(String::as_str));
    let refused = bkv(&args);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
    assert!(
        text(&refused).contains("auditor key is not pinned")
            && text(&refused).contains("nothing was installed"),
        "{}",
        text(&refused)
    );
    // `bkv operator install` of the auditor's epoch to fleet 1's nodes
    // and `more` endpoints.
    let install_epoch = |epoch: &str, more: &[&str]| {
        let mut args = vec![
            "operator",
            "install",
            "--auditor",
            &auditor.url,
            "--epoch",
            epoch,
            "--auditor-key",
            keys.0,
            "--operator-key",
            keys.1,
        ];
        args.extend(endpoints.iter().map(String::as_str));
        for e in more {
            args.extend(["--endpoint", e]);
        }
        bkv(&args)
    };
    // (d) An artifact the auditor never logged: nothing to install.
    let never = install_epoch("7", &[]);
    assert_eq!(never.status.code(), Some(1), "{}", text(&never));
    assert!(
        text(&never).contains("has not logged epoch 7")
            && text(&never).contains("nothing was installed"),
        "{}",
        text(&never)
    );
    assert_eq!(node_bundle(&fleet1.endpoints[0]), bundle1);
    // (e) One endpoint is down (a closed port on loopback): the others
    // install, and the command exits 5 (retry) naming the one it missed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let partial = install_epoch("1", &[&closed]);
    assert_eq!(partial.status.code(), Some(5), "{}", text(&partial));
    assert!(
        text(&partial).contains("1 of 4 nodes did not install")
            && text(&partial).contains(&format!("{closed}: unreachable"))
            && text(&partial).contains("the others did"),
        "{}",
        text(&partial)
    );
    assert_eq!(node_bundle(&fleet1.endpoints[2]), bundle1);
    // A node that answers 503 (busy checking another bundle) is one to
    // retry too; a node that refuses is not.
    let busy = format!(
        "http://{}",
        answering_server(
            1,
            "503 Service Unavailable",
            "text/plain",
            b"busy: another bundle is being checked; retry\n",
        )
    );
    let partial = install_epoch("1", &[&busy]);
    assert_eq!(partial.status.code(), Some(5), "{}", text(&partial));
    assert!(
        text(&partial).contains(&format!("{busy}: 503 busy")),
        "{}",
        text(&partial)
    );
    let refusing = format!(
        "http://{}",
        answering_server(
            1,
            "422 Unprocessable Entity",
            "text/plain",
            b"refused: test\n"
        )
    );
    let partial = install_epoch("1", &[&closed, &refusing]);
    assert_eq!(partial.status.code(), Some(1), "{}", text(&partial));
    assert!(
        text(&partial).contains("2 of 5 nodes did not install"),
        "{}",
        text(&partial)
    );

    // Fleet 2, same operator key, at epoch 2.
    let c2 = d.join("ceremony-2");
    let pending2 = ceremony(
        &c2,
        "fleet-2",
        &auditor.url,
        &["--operator-from", c1.to_str().unwrap()],
    );
    assert_eq!(pending2.transcript.epoch, 2);
    assert_eq!(pending2.transcript.operator_key.to_string(), operator_key);
    let mut fleet2 = nodes(&d.join("fleet-2"), &c2, keys.0, keys.1);
    // A third ceremony prepared for the same epoch 2, published first with
    // another auditor key pinned: refused before anything is submitted.
    let c3 = d.join("ceremony-3");
    ceremony(
        &c3,
        "fleet-3",
        &auditor.url,
        &["--operator-from", c1.to_str().unwrap()],
    );
    let no_nodes = NodeFleet {
        args: Vec::new(),
        endpoints: Vec::new(),
        nodes: Vec::new(),
    };
    let mut wrong_pin = AuditorServer {
        process: Process(None),
        url: auditor.url.clone(),
        key: stranger_key.clone(),
        token_file: auditor.token_file.clone(),
    };
    let refused = publish(&c3, &wrong_pin, &no_nodes);
    wrong_pin.process.stop();
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
    assert!(
        text(&refused).contains("not the pinned --auditor-key")
            && text(&refused).contains("nothing was submitted"),
        "{}",
        text(&refused)
    );
    let (status, _) = get_bytes(&format!(
        "{}/namespaces/{DEFAULT_NAMESPACE}/audits/2",
        auditor.url
    ));
    assert_eq!(status, 404, "nothing was logged");
    assert!(!c3.join("evidence.json").exists());
    let published = publish(&c2, &auditor, &fleet2);
    assert!(published.status.success(), "{}", text(&published));
    let bundle2 = std::fs::read(c2.join("bundle")).unwrap();
    // Fleet 3 now comes too late for epoch 2: the auditor holds fleet 2's
    // artifact there; nothing is counter-signed.
    let late = publish(&c3, &auditor, &no_nodes);
    assert_eq!(late.status.code(), Some(6), "{}", text(&late));
    assert!(
        text(&late).contains("the auditor logged another artifact at epoch 2")
            && text(&late).contains("nothing was counter-signed or installed"),
        "{}",
        text(&late)
    );

    // Refusals at nodes: fleet 2's bundle at a fleet-1 node (another
    // fleet's keys); fleet 1's older epoch at a fleet-2 node.
    let (status, why) = post_bytes(&install, &bundle2);
    assert_eq!(status, 422, "{why}");
    assert!(why.contains("another fleet's keys"), "{why}");
    let (status, why) = post_bytes(&format!("{}/v1/bundle", fleet2.endpoints[0]), &bundle1);
    assert_eq!(status, 422, "{why}");
    assert!(
        why.contains("rollback: epoch 1 is older than the stored epoch 2"),
        "{why}"
    );
    assert_eq!(node_bundle(&fleet1.endpoints[0]), bundle1);
    assert_eq!(node_bundle(&fleet2.endpoints[0]), bundle2);
    // The floor survives a restart: the node comes back from its disk,
    // hands out epoch 2 again and still refuses epoch 1 as a rollback
    // (without the stored floor it would be refused only for its keys).
    fleet2.restart(0);
    assert_eq!(node_bundle(&fleet2.endpoints[0]), bundle2);
    let (status, why) = post_bytes(&format!("{}/v1/bundle", fleet2.endpoints[0]), &bundle1);
    assert_eq!(status, 422, "{why}");
    assert!(
        why.contains("rollback: epoch 1 is older than the stored epoch 2"),
        "{why}"
    );
    // The metric operators alert on: each node's bundle epoch.
    let epoch_metric = |endpoint: &str| {
        let (status, body) = get_bytes(&format!("{endpoint}/metrics"));
        assert_eq!(status, 200);
        String::from_utf8(body)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("bkv_node_bundle_epoch ").map(str::to_string))
            .unwrap_or_else(|| panic!("{endpoint}/metrics has no bundle epoch"))
    };
    assert_eq!(epoch_metric(&fleet1.endpoints[0]), "1");
    assert_eq!(epoch_metric(&fleet2.endpoints[0]), "2");

    // A fleet-2 node replaced (a new, empty disk) hands out no bundle until
    // the operator installs the latest one from the auditor.
    fleet2.replace(2);
    let (status, _) = get_bytes(&format!("{}/v1/bundle", fleet2.endpoints[2]));
    assert_eq!(status, 404);
    assert_eq!(epoch_metric(&fleet2.endpoints[2]), "0");
    let installed = bkv(&[
        "operator",
        "install",
        "--auditor",
        &auditor.url,
        "--auditor-key",
        keys.0,
        "--operator-key",
        keys.1,
        "--endpoint",
        &fleet2.endpoints[2],
    ]);
    assert!(installed.status.success(), "{}", text(&installed));
    assert!(
        text(&installed).contains("installed epoch 2"),
        "{}",
        text(&installed)
    );
    let reinstalled = ValidationBundle::from_bytes(&node_bundle(&fleet2.endpoints[2])).unwrap();
    assert_eq!(reinstalled.epoch, 2);

    // The client that knew fleet 1 learns fleet 2 over the air and
    // registers there.
    let bob = client("register", &fleet2, "bob", "bob-code", keys, &state, &[]);
    assert!(bob.status.success(), "{}", text(&bob));
    assert!(
        text(&bob).contains("fleet fleet-2 learned") && text(&bob).contains("epoch 2"),
        "{}",
        text(&bob)
    );
    let bob_key = backup_key(&bob);
    let state_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let newest = state_json["fleets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["epoch"].as_u64().unwrap())
        .max();
    assert_eq!(newest, Some(2));
    let again = client("recover", &fleet2, "bob", "bob-code", keys, &state, &[]);
    assert_eq!(backup_key(&again), bob_key);
    // The record on fleet 1 still recovers from fleet 1.
    let alice = client("recover", &fleet1, "alice", "alice-code", keys, &state, &[]);
    assert!(alice.status.success(), "{}", text(&alice));
    assert_eq!(backup_key(&alice), alice_key);
    // A new registration on the older fleet is a rollback: refused before
    // anything is sent, and the state file is left as it was.
    let state_before = std::fs::read(&state).unwrap();
    let carol = client(
        "register",
        &fleet1,
        "carol",
        "carol-code",
        keys,
        &state,
        &[],
    );
    assert_eq!(carol.status.code(), Some(6), "{}", text(&carol));
    assert!(
        text(&carol).contains("rollback: epoch 1 is older than the stored epoch 2")
            && text(&carol).contains("nothing was sent"),
        "{}",
        text(&carol)
    );
    assert_eq!(std::fs::read(&state).unwrap(), state_before);
    // A client pinning another auditor refuses the bundle.
    let fresh = d.join("fresh-state.json");
    let wrong = client(
        "register",
        &fleet2,
        "dave",
        "dave-code",
        (&stranger_key, keys.1),
        &fresh,
        &[],
    );
    assert_eq!(wrong.status.code(), Some(6), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("auditor key is not pinned"),
        "{}",
        text(&wrong)
    );
    assert!(!fresh.exists(), "no epoch accepted");

    // The monitor verifies both epochs and prints the key change.
    let monitor = bkv(&[
        "audit",
        "verify-namespace",
        &auditor.url,
        "--auditor-key",
        keys.0,
        "--operator-key",
        keys.1,
    ]);
    assert!(monitor.status.success(), "{}", text(&monitor));
    let report = String::from_utf8_lossy(&monitor.stdout).into_owned();
    assert!(report.contains("epoch 2: fleet fleet-2"), "{report}");
    assert!(report.contains("  - opaque_key_exchange"), "{report}");
    assert!(report.contains("  + opaque_key_exchange"), "{report}");
    eprintln!("over-the-air story: {:?}", started.elapsed());
}

/// A record name whose id (SHA-256 of the name) starts at or above 0x80
/// (`upper`) or below it.
fn name_in_half(upper: bool) -> String {
    use sha2::{Digest, Sha256};
    (0..)
        .map(|i| format!("realm-record-{i}"))
        .find(|n| (Sha256::digest(n.as_bytes())[0] >= 0x80) == upper)
        .unwrap()
}

/// SPEC.md §14.1, §17 step 16: a fleet made by the ceremony as group 1 of
/// a realm (record ids from 80…) is published like any fleet, and its
/// nodes serve that range. A client that pins only the auditor's and the
/// operator's keys registers and recovers a record of the range through
/// it, and refuses it for a record of the other half: exit 6, naming the
/// fleet's range and what to do, before anything about the record is
/// sent (the state file remembers no epoch for that record).
#[test]
fn a_client_refuses_a_group_of_a_realm_that_does_not_own_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let auditor = AuditorServer::start(d);
    let c = d.join("ceremony-g1");
    let range = "8000000000000000-ffffffffffffffff";
    let pending = ceremony(
        &c,
        "group-1",
        &auditor.url,
        &["--realm", "realm-t", "--records", range],
    );
    let operator_key = pending.transcript.operator_key.to_string();
    let keys = (auditor.key.as_str(), operator_key.as_str());
    let fleet = NodeFleet::start(&d.join("group-1"), 3, |i| {
        [
            "--ceremony",
            c.to_str().unwrap(),
            "--hsm",
            &format!("hsm-{i}"),
            "--auditor-key",
            keys.0,
            "--operator-key",
            keys.1,
            "--records",
            range,
        ]
        .map(str::to_string)
        .to_vec()
    });
    let published = publish(&c, &auditor, &fleet);
    assert!(published.status.success(), "{}", text(&published));
    let state = d.join("client-state.json");

    let owned = name_in_half(true);
    let registered = client("register", &fleet, &owned, "code", keys, &state, &[]);
    assert!(registered.status.success(), "{}", text(&registered));
    let recovered = client("recover", &fleet, &owned, "code", keys, &state, &[]);
    assert_eq!(backup_key(&recovered), backup_key(&registered));

    let other = name_in_half(false);
    for command in ["register", "recover"] {
        let refused = client(command, &fleet, &other, "code", keys, &state, &[]);
        assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            err.contains("the fleet serves record ids 8000000000000000..=ffffffffffffffff")
                && err.contains("does not own this record id")
                && err.contains("nothing was sent"),
            "{}",
            text(&refused)
        );
    }
    let state_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let records = state_json["records"].as_object().unwrap();
    assert_eq!(records.len(), 1, "{state_json}");
    assert_eq!(state_json["fleets"][0]["realm"], "realm-t");
    assert_eq!(state_json["fleets"][0]["first_record"], "8000000000000000");
}
