//! The conformance vectors in `vectors/*.json` (SPEC.md §12).
//!
//! Two kinds of check:
//!
//! 1. **The implementation reproduces every byte.** Each flow is run again
//!    from its seeds (the generator's code, `examples/gen-vectors/flows.rs`,
//!    driving the real client and vault) and must give the committed file
//!    exactly. A difference names the first JSON path that differs and says
//!    to rerun the generator if the change is intended.
//! 2. **The files are right by the SPEC, independently of that code.** From
//!    the files alone, with the primitives (HKDF-SHA512, ChaCha20-Poly1305,
//!    HPKE, ristretto255, RFC 9497's `DeriveKeyPair`) and the labels written
//!    out here as the SPEC spells them: every derived key, every sealed
//!    field and every committed command is what SPEC.md §4–§8 says it is.
//!    This is what another implementation does with the files.

#[path = "../examples/gen-vectors/flows.rs"]
mod flows;

use std::sync::OnceLock;

use backup_key_vault::vault::{Command, MemoryStore, RecordSlot, Vault, VaultPolicy};
use backup_key_vault::wire::{self, RecoveryResponse, RegistrationRequest, Rejection};
use backup_key_vault::{FleetSecrets, WireError};
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::{MontgomeryPoint, RistrettoPoint, Scalar};
use flows::{from_hex, hex, open};
use hkdf::Hkdf;
use serde_json::Value;
use sha2::Sha512;

const REGENERATE: &str = "if the change is intended, rerun `cargo run -p backup-key-vault --example gen-vectors` and review the diff";

fn generated() -> &'static Vec<(&'static str, Value)> {
    static ALL: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    ALL.get_or_init(flows::all)
}

fn path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors")
        .join(format!("{name}.json"))
}

fn file(name: &str) -> Value {
    let p = path(name);
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The first path at which two JSON values differ.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let here = format!("{at}.{key}");
                match (x.get(key), y.get(key)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(u, v, &here) {
                            return Some(d);
                        }
                    }
                    (u, v) => return Some(format!("{here}: file has {u:?}, code gives {v:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(u, v, &format!("{at}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len())
                .then(|| format!("{at}: file has {} entries, code gives {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| format!("{at}: file has {a}, code gives {b}")),
    }
}

#[test]
fn every_flow_file_is_reproduced_byte_for_byte() {
    for (name, value) in generated() {
        let p = path(name);
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", p.display()));
        if text != flows::render(value) {
            let in_file: Value = serde_json::from_str(&text).expect("JSON");
            let at = first_difference(&in_file, value, "$")
                .unwrap_or_else(|| "formatting only".to_string());
            panic!("vectors/{name}.json disagrees with the implementation at {at}; {REGENERATE}");
        }
    }
}

#[test]
fn no_stray_vector_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("vectors/")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = flows::FLOWS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        names, expected,
        "vectors/*.json must be exactly the generator's flows"
    );
}

#[test]
fn the_difference_finder_names_the_path() {
    // The reproduction test relies on this to point at the first mismatch.
    let a: Value = serde_json::json!({ "steps": [{ "hex": "00" }, { "hex": "01" }] });
    let b: Value = serde_json::json!({ "steps": [{ "hex": "00" }, { "hex": "02" }] });
    assert_eq!(
        first_difference(&a, &b, "$").as_deref(),
        Some("$.steps[1].hex: file has \"01\", code gives \"02\"")
    );
    assert_eq!(first_difference(&a, &a, "$"), None);
}

// ----- Independent checks, from the files alone ---------------------------

fn b(v: &Value) -> Vec<u8> {
    from_hex(v.as_str().unwrap_or_else(|| panic!("hex string, got {v}")))
}

fn hkdf(ikm: &[u8], info: &[&[u8]], len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    Hkdf::<Sha512>::new(None, ikm)
        .expand_multi_info(info, &mut out)
        .expect("length");
    out
}

const P: &str = "backup-key-vault/v1/";

fn label(name: &str) -> Vec<u8> {
    format!("{P}{name}").into_bytes()
}

/// The labels revision 11 added or moved for the X-Wing channel (§4.2).
const P2: &str = "backup-key-vault/v2/";

fn label2(name: &str) -> Vec<u8> {
    format!("{P2}{name}").into_bytes()
}

fn step<'a>(flow: &'a Value, call: &str, nth: usize) -> &'a Value {
    flow["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["call"] == call)
        .nth(nth)
        .unwrap_or_else(|| panic!("step {call} #{nth}"))
}

fn draw(step: &Value, i: usize) -> Vec<u8> {
    b(&step["rng_draws"][i]["hex"])
}

/// SPEC.md §4.1: the fleet's keys.
fn check_fleet(flow: &Value) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let f = &flow["fleet"];
    let (seed, ke_sk, tr_sk) = (b(&f["oprf_seed"]), b(&f["ke_sk"]), b(&f["tr_sk"]));
    assert_eq!(
        b(&f["secrets"]),
        [&[2u8][..], &seed, &ke_sk, &tr_sk].concat(),
        "FleetSecrets encoding"
    );
    let sk = Scalar::from_canonical_bytes(ke_sk.clone().try_into().expect("32")).unwrap();
    assert_eq!(
        b(&f["ke_pk"]),
        RistrettoPoint::mul_base(&sk).compress().to_bytes()
    );
    // The X-Wing key expanded from the seed (§4.1, §4.4; the expansion is
    // checked against the draft's own vectors in tests/rfc_vectors.rs).
    let xwing =
        backup_key_vault::xwing::PrivateKey::from_seed(&tr_sk.clone().try_into().expect("32"));
    assert_eq!(
        b(&f["tr_pk"])[..],
        <backup_key_vault::xwing::XWing as hpke::Kem>::sk_to_pk(&xwing).as_bytes()[..]
    );
    assert_eq!(
        b(&f["tr_pk"])[1184..],
        MontgomeryPoint::mul_base_clamped(*xwing.x25519_private_key()).to_bytes(),
        "pk_X is the X25519 half"
    );
    let wide = hkdf(&seed, &[&label("dummy-key")], 64);
    assert_eq!(b(&f["dummy_key_wide"]), wide);
    let d = Scalar::from_bytes_mod_order_wide(&wide.try_into().expect("64"));
    let dummy_pk = RistrettoPoint::mul_base(&d).compress().to_bytes();
    assert_eq!(b(&f["dummy_pk"]), dummy_pk);
    assert_eq!(
        b(&f["server_setup"]),
        [&seed[..], &ke_sk, &dummy_pk].concat()
    );
    assert_eq!(
        b(&f["K_unknown"]),
        hkdf(&seed, &[&label("unknown-record-nonce-key")], 32)
    );
    (seed, tr_sk, b(&f["ke_pk"]))
}

struct Registration {
    tr_sk: Vec<u8>,
    record: Vec<u8>,
    wrapped: Vec<u8>,
    nonce: Vec<u8>,
    backup_key: Vec<u8>,
}

/// SPEC.md §5.1–§5.4, §6.1, §7.1: one registration, from its four steps.
fn check_registration(flow: &Value, seed: &[u8], tr_sk: &[u8], ke_pk: &[u8]) -> Registration {
    let rid = b(&flow["record_id"]);
    let start = step(flow, "Registration::start", 0);
    let request = b(&start["output"]["hex"]);
    assert_eq!(request.len(), 1235);
    assert_eq!(request[..2], [0x01, 0x02]);
    assert_eq!(request[2..34], rid[..]);
    let v = &start["values"];
    let info = [label2("registration"), rid.clone()].concat();
    assert_eq!(b(&v["hpke_info"]), info);
    assert_eq!(b(&v["hpke_aad"]), request[..1154]);

    // HPKE base mode, X-Wing, HKDF-SHA256, ChaCha20-Poly1305, with the
    // transport private key (§4.4).
    use hpke::{Deserializable, Kem as _};
    type Kem = backup_key_vault::xwing::XWing;
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(tr_sk).unwrap();
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&request[34..1154]).unwrap();
    let mut ctx = hpke::setup_receiver::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem>(
        &hpke::OpModeR::Base,
        &sk,
        &enc,
        &info,
    )
    .unwrap();
    let plaintext = ctx.open(&request[1154..], &request[..1154]).unwrap();
    assert_eq!(b(&v["sealed_plaintext"]), plaintext);
    assert_eq!(plaintext[32..], [0u8; 33], "mode 0, zero token");
    assert_eq!(b(&v["opaque_registration_request"]), plaintext[..32]);
    let export = |name: &str| {
        let mut k = [0u8; 32];
        ctx.export(&label(name), &mut k).unwrap();
        k.to_vec()
    };
    let x_resp = export("registration-response");
    let x_upload = export("registration-upload");
    let x_confirm = export("registration-confirm");
    assert_eq!(b(&v["X_resp"]), x_resp);
    assert_eq!(b(&v["X_upload"]), x_upload);
    assert_eq!(b(&v["X_confirm"]), x_confirm);
    let _ = Kem::sk_to_pk(&sk);

    // The vault's response: the OPRF evaluated under the per-registration
    // key of SPEC §4.1/§4.3.
    let vstep = step(flow, "Vault::registration_request", 0);
    let response = b(&vstep["output"]["hex"]);
    let (nonce, sid) = (draw(vstep, 0), draw(vstep, 1));
    assert_eq!(response[..2], [0x02, 0x02]);
    assert_eq!(response[2..18], sid[..], "session id = the vault's draw");
    let v = &vstep["values"];
    let cid = [&rid[..], &nonce].concat();
    assert_eq!(b(&v["credential_identifier"]), cid);
    let mut key_seed = [0u8; 32];
    Hkdf::<Sha512>::from_prk(seed)
        .unwrap()
        .expand_multi_info(&[&cid, b"OprfKey"], &mut key_seed)
        .unwrap();
    assert_eq!(b(&v["oprf_key_seed"]), key_seed);
    let k = voprf::derive_key::<voprf::Ristretto255>(
        &key_seed,
        b"OPAQUE-DeriveKeyPair",
        voprf::Mode::Oprf,
    )
    .unwrap();
    assert_eq!(b(&v["oprf_key"]), k.to_bytes());
    let aad = [label("aad/registration-response"), rid.clone(), sid.clone()].concat();
    assert_eq!(b(&v["response_aad"]), aad);
    // Each exported secret is bound to the session of the vault's answer:
    // HKDF-SHA512(ikm = secret, salt = none, info = label || session_id).
    let bind = |secret: &[u8]| {
        let mut k = [0u8; 32];
        Hkdf::<Sha512>::new(None, secret)
            .expand_multi_info(&[&label("registration-session-key")[..], &sid[..]], &mut k)
            .unwrap();
        k.to_vec()
    };
    let (k_resp, k_upload, k_confirm) = (bind(&x_resp), bind(&x_upload), bind(&x_confirm));
    assert_eq!(b(&v["K_resp"]), k_resp);
    assert_eq!(b(&v["K_upload"]), k_upload);
    assert_eq!(b(&v["K_confirm"]), k_confirm);
    let opaque_response = open(&k_resp, &aad, &response[18..]).expect("K_resp opens §5.2");
    assert_eq!(b(&v["opaque_registration_response"]), opaque_response);
    let blinded = CompressedRistretto::from_slice(&plaintext[..32])
        .unwrap()
        .decompress()
        .unwrap();
    assert_eq!(
        opaque_response[..32],
        (blinded * k).compress().to_bytes(),
        "evaluated element = oprf_key · blinded element"
    );
    assert_eq!(
        opaque_response[32..],
        ke_pk[..],
        "the fleet's key-exchange key"
    );

    // The upload.
    let cstep = step(flow, "AwaitingRegistrationResponse::finish", 0);
    let upload = b(&cstep["output"]["hex"]);
    assert_eq!(upload[..2], [0x03, 0x02]);
    assert_eq!(upload[2..34], rid[..]);
    assert_eq!(upload[34..50], sid[..]);
    let v = &cstep["values"];
    let export_key = b(&v["export_key"]);
    let k_wrap = hkdf(&export_key, &[&label("wrap-key"), &rid], 32);
    assert_eq!(b(&v["K_wrap"]), k_wrap);
    let wrap_aad = [label("aad/wrapped-key"), rid.clone()].concat();
    assert_eq!(b(&v["wrap_aad"]), wrap_aad);
    let wrapped = b(&v["wrapped_key"]);
    let backup_key = b(&cstep["inputs"]["backup_key"]);
    assert_eq!(
        open(&k_wrap, &wrap_aad, &wrapped).expect("K_wrap opens the wrapped key"),
        backup_key
    );
    let aad = [label("aad/registration-upload"), rid.clone(), sid.clone()].concat();
    assert_eq!(b(&v["upload_aad"]), aad);
    let pt = open(&k_upload, &aad, &upload[50..]).expect("K_upload opens §5.3");
    assert_eq!(b(&v["upload_plaintext"]), pt);
    let record = b(&v["registration_record"]);
    assert_eq!(pt[..192], record[..]);
    assert_eq!(pt[192..204], from_hex("000000080000000100000001"));
    assert_eq!(pt[204..], wrapped[..]);
    assert_eq!(
        record[96..128],
        draw(cstep, 0)[..],
        "envelope nonce = the client's draw"
    );

    // The confirmation and the committed Register (§8.2).
    let ustep = step(flow, "Vault::registration_upload", 0);
    let confirmation = b(&ustep["output"]["hex"]);
    let aad = [label("aad/registration-confirm"), rid.clone(), sid.clone()].concat();
    assert_eq!(b(&ustep["values"]["confirm_aad"]), aad);
    let generation = open(&k_confirm, &aad, &confirmation[18..]).expect("K_confirm opens §5.4");
    assert_eq!(b(&ustep["values"]["confirm_plaintext"]), generation);
    let commit = &ustep["commits"][0];
    assert_eq!(commit["applied"]["result"], "Registered");
    assert_eq!(
        u64::from_be_bytes(generation.clone().try_into().unwrap()),
        commit["applied"]["generation"].as_u64().unwrap()
    );
    let max = flow["vault_policy"]["max_attempts"].as_u64().unwrap() as u8;
    // Version 2; a first registration (flag 0, replaced 0) names the
    // generation it creates.
    let command = [
        &[2u8, 1][..],
        &rid,
        &[0; 9],
        &generation,
        &nonce,
        &record,
        &wrapped,
        &from_hex("000000080000000100000001"),
        &[max],
    ]
    .concat();
    assert_eq!(b(&commit["command"]), command, "Register command bytes");
    Registration {
        tr_sk: tr_sk.to_vec(),
        record,
        wrapped,
        nonce,
        backup_key,
    }
}

/// SPEC.md §5.5–§5.8, §6.2, §7.2–§7.3: every complete recovery in a flow.
fn check_recoveries(flow: &Value, reg: &Registration) -> usize {
    let rid = b(&flow["record_id"]);
    let steps = flow["steps"].as_array().unwrap();
    let mut complete = 0;
    let mut last_charge = None;
    for (i, s) in steps.iter().enumerate() {
        if s["call"] != "Vault::recovery_start" || s["output"]["message"].is_null() {
            continue;
        }
        let ke1 = b(&steps[i - 1]["output"]["hex"]);
        assert_eq!(b(&s["input"]), ke1);
        // §4.4, §5.5: the KE1 sealed with HPKE (X-Wing) to the fleet.
        assert_eq!(ke1.len(), 1266);
        assert_eq!(ke1[..2], [0x05, 0x02]);
        let cv = &steps[i - 1]["values"];
        let info = [label2("recovery"), rid.clone()].concat();
        assert_eq!(b(&cv["hpke_info"]), info);
        assert_eq!(b(&cv["hpke_aad"]), ke1[..1154]);
        use hpke::Deserializable;
        type Kem = backup_key_vault::xwing::XWing;
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&reg.tr_sk).unwrap();
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&ke1[34..1154]).unwrap();
        let mut ctx = hpke::setup_receiver::<
            hpke::aead::ChaCha20Poly1305,
            hpke::kdf::HkdfSha256,
            Kem,
        >(&hpke::OpModeR::Base, &sk, &enc, &info)
        .unwrap();
        let opaque_ke1 = ctx.open(&ke1[1154..], &ke1[..1154]).unwrap();
        assert_eq!(b(&cv["ke1"]), opaque_ke1);
        let export = |name: &str| {
            let mut k = [0u8; 32];
            ctx.export(&label2(name), &mut k).unwrap();
            k.to_vec()
        };
        let (y_resp, y_finish, y_release) = (
            export("recovery-response"),
            export("recovery-finish"),
            export("recovery-release"),
        );
        assert_eq!(b(&cv["Y_resp"]), y_resp);
        assert_eq!(b(&cv["Y_finish"]), y_finish);
        assert_eq!(b(&cv["Y_release"]), y_release);
        let ke2 = b(&s["output"]["hex"]);
        assert_eq!(ke2.len(), 367);
        assert_eq!(ke2[..2], [0x06, 0x02]);
        let sealed_msg = RecoveryResponse::from_bytes(&ke2).unwrap();
        let sid = sealed_msg.session_id.0.to_vec();
        let bind = |y: &[u8]| hkdf(y, &[&label2("recovery-session-key"), &sid], 32);
        let (k_chan_resp, k_chan_finish, k_chan_release) =
            (bind(&y_resp), bind(&y_finish), bind(&y_release));
        let sv = &s["values"];
        assert_eq!(b(&sv["K_chan_resp"]), k_chan_resp);
        assert_eq!(b(&sv["K_chan_finish"]), k_chan_finish);
        assert_eq!(b(&sv["K_chan_release"]), k_chan_release);
        let response_aad = [label2("aad/recovery-response"), rid.clone(), sid.clone()].concat();
        assert_eq!(b(&sv["response_aad"]), response_aad);
        let opened =
            open(&k_chan_resp, &response_aad, &sealed_msg.sealed).expect("K_chan_resp opens §5.6");
        assert_eq!(b(&sv["response_plaintext"]), opened);
        let msg = backup_key_vault::wire::RecoveryResponseContents::from_bytes(
            &opened.clone().try_into().unwrap(),
        )
        .unwrap();
        assert_eq!(
            sealed_msg.session_id.0[..],
            draw(s, 4)[..],
            "session id = the vault's draw"
        );
        assert_eq!(
            msg.ke2[32..64],
            draw(s, 1)[..],
            "masking nonce = the vault's draw"
        );
        assert_eq!(
            msg.ke2[192..224],
            draw(s, 3)[..],
            "server nonce = the vault's draw"
        );
        assert_eq!(
            b(&s["values"]["opaque_context"]),
            [label("recovery"), rid.clone()].concat()
        );
        match s["commits"].as_array().unwrap().as_slice() {
            [charge] => {
                assert_eq!(charge["applied"]["result"], "Charged");
                assert_eq!(
                    charge["applied"]["attempts_remaining"].as_u64().unwrap(),
                    u64::from(msg.attempts_remaining)
                );
                assert_eq!(b(&charge["command"])[..2], [2, 2], "ChargeAttempt");
                last_charge = charge["applied"]["charge"].as_u64();
                assert!(
                    last_charge.is_some_and(|c| c >= 1),
                    "charges are numbered from 1"
                );
            }
            [] => {
                // The fake path (§7.2 step 6) commits nothing and reports a
                // fresh record's count and the unknown-record parameters.
                let max = flow["vault_policy"]["max_attempts"].as_u64().unwrap();
                assert_eq!(u64::from(msg.attempts_remaining), max - 1);
            }
            other => panic!("unexpected commits {other:?}"),
        }
        let client = &steps[i + 1];
        if client["output"]["message"] != "RecoveryFinish" {
            continue;
        }
        let v = &client["values"];
        // §5.7: KE3 sealed under K_chan_finish.
        let ke3 = b(&client["output"]["hex"]);
        assert_eq!(ke3.len(), 130);
        assert_eq!(ke3[..2], [0x07, 0x02]);
        assert_eq!(ke3[34..50], sid[..]);
        let finish_aad = [label2("aad/recovery-finish"), rid.clone(), sid.clone()].concat();
        assert_eq!(b(&v["finish_aad"]), finish_aad);
        assert_eq!(
            open(&k_chan_finish, &finish_aad, &ke3[50..]).expect("K_chan_finish opens §5.7"),
            b(&v["ke3"])
        );
        let session_key = b(&v["session_key"]);
        let export_key = b(&v["export_key"]);
        let k_release = hkdf(
            &[&session_key[..], &k_chan_release[..]].concat(),
            &[&label2("release-key"), &rid, &sid],
            32,
        );
        assert_eq!(b(&v["K_release"]), k_release);
        let k_wrap = hkdf(&export_key, &[&label("wrap-key"), &rid], 32);
        assert_eq!(b(&v["K_wrap"]), k_wrap);
        assert_eq!(
            b(&v["rekey_token"]),
            hkdf(&session_key, &[&label("rekey-token"), &rid, &sid], 32)
        );
        let aad = [label("aad/key-release"), rid.clone(), sid.clone()].concat();
        assert_eq!(b(&v["release_aad"]), aad);
        let vault = &steps[i + 2];
        if vault["output"]["message"] != "KeyRelease" {
            continue;
        }
        let reset = b(&vault["commits"][0]["command"]);
        assert_eq!(reset[..2], [2, 3], "ResetAttempts");
        assert_eq!(reset.len(), 50, "ResetAttempts names its charge");
        assert_eq!(
            Some(u64::from_be_bytes(reset[42..50].try_into().unwrap())),
            last_charge,
            "the reset forgives through this session's own charge"
        );
        // §8.1: the reset of charge c reports the charges numbered above
        // forgiven_through (as the KE2's charge left it) and below c.
        let before = &s["slot_after"];
        let forgiven = before["forgiven_through"].as_u64().unwrap();
        let c = last_charge.unwrap();
        let unforgiven = match c.cmp(&forgiven) {
            std::cmp::Ordering::Greater => c - 1 - forgiven,
            std::cmp::Ordering::Equal => before["last_unforgiven"].as_u64().unwrap(),
            std::cmp::Ordering::Less => 0,
        };
        assert_eq!(vault["commits"][0]["applied"]["result"], "Reset");
        assert_eq!(
            vault["commits"][0]["applied"]["unforgiven_attempts"].as_u64(),
            Some(unforgiven)
        );
        let release = b(&vault["output"]["hex"]);
        assert_eq!(release[..2], [0x08, 0x03], "KeyRelease, version 3");
        assert_eq!(release.len(), 83);
        assert_eq!(release[2..18], sid[..]);
        let plaintext = open(&k_release, &aad, &release[18..]).expect("K_release opens §5.8");
        assert_eq!(plaintext, b(&vault["values"]["release_plaintext"]));
        let (wrapped, count) = plaintext.split_at(48);
        assert_eq!(
            wrapped, reg.wrapped,
            "the release carries the stored wrapped key"
        );
        assert_eq!(count, [unforgiven as u8], "then the count");
        assert_eq!(
            steps[i + 3]["output"]["unforgiven_attempts"].as_u64(),
            Some(unforgiven)
        );
        let wrap_aad = [label("aad/wrapped-key"), rid.clone()].concat();
        let key = open(&k_wrap, &wrap_aad, wrapped).expect("K_wrap opens");
        assert_eq!(key, reg.backup_key);
        assert_eq!(b(&steps[i + 3]["output"]["backup_key"]), reg.backup_key);
        complete += 1;
    }
    complete
}

/// §8.4 / the versioned slot encoding: the final slot decodes to what the
/// flow says.
fn check_final_slot(flow: &Value, reg: &Registration) {
    let slot = RecordSlot::from_bytes(&b(&flow["final_slot"]["encoding"])).unwrap();
    match (&slot, flow["final_slot"]["state"].as_str().unwrap()) {
        (RecordSlot::Live(r), "live") => {
            assert_eq!(r.payload.registration[..], reg.record[..]);
            assert_eq!(r.payload.wrapped_key[..], reg.wrapped[..]);
            assert_eq!(r.payload.oprf_nonce[..], reg.nonce[..]);
            assert_eq!(
                u64::from(r.attempts_used()),
                flow["final_slot"]["attempts_used"].as_u64().unwrap()
            );
        }
        (RecordSlot::Erased { .. }, "erased") => {}
        (s, state) => panic!("final slot {s:?} is not {state}"),
    }
}

#[test]
fn registration_vectors_follow_the_spec() {
    let flow = file("registration");
    let (seed, tr_sk, ke_pk) = check_fleet(&flow);
    let reg = check_registration(&flow, &seed, &tr_sk, &ke_pk);
    check_final_slot(&flow, &reg);
    assert!(!flow["negative"].as_array().unwrap().is_empty());
}

#[test]
fn recovery_success_vectors_follow_the_spec() {
    let flow = file("recovery-success");
    let (seed, tr_sk, ke_pk) = check_fleet(&flow);
    let reg = check_registration(&flow, &seed, &tr_sk, &ke_pk);
    assert_eq!(check_recoveries(&flow, &reg), 1);
    check_final_slot(&flow, &reg);
    assert_eq!(flow["final_slot"]["attempts_used"], 0, "the success reset");
    let told = step(&flow, "AwaitingKeyRelease::finish", 0);
    assert_eq!(
        told["output"]["unforgiven_attempts"], 0,
        "nobody else tried"
    );
}

#[test]
fn recovery_wrong_code_vectors_follow_the_spec() {
    let flow = file("recovery-wrong-code");
    let (seed, tr_sk, ke_pk) = check_fleet(&flow);
    let reg = check_registration(&flow, &seed, &tr_sk, &ke_pk);
    let wrong = step(&flow, "AwaitingRecoveryResponse::finish", 0);
    assert_eq!(wrong["output"]["error"], "RecoveryFailed");
    let charged = step(&flow, "Vault::recovery_start", 0);
    assert_eq!(charged["slot_after"]["attempts_used"], 1);
    assert_eq!(
        check_recoveries(&flow, &reg),
        1,
        "the right code still works"
    );
    assert_eq!(flow["final_slot"]["attempts_used"], 0);
    // And the release told the client about the wrong code's attempt.
    let told = step(&flow, "AwaitingKeyRelease::finish", 0);
    assert_eq!(told["output"]["unforgiven_attempts"], 1);
}

#[test]
fn lockout_vectors_follow_the_spec() {
    let flow = file("lockout");
    let (seed, tr_sk, ke_pk) = check_fleet(&flow);
    let reg = check_registration(&flow, &seed, &tr_sk, &ke_pk);
    assert_eq!(check_recoveries(&flow, &reg), 0);
    let remaining: Vec<u64> = (0..3)
        .map(|i| {
            step(&flow, "Vault::recovery_start", i)["commits"][0]["applied"]["attempts_remaining"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(remaining, [2, 1, 0]);
    let refused = step(&flow, "Vault::recovery_start", 3);
    assert_eq!(refused["output"]["error"], "AttemptsExhausted");
    assert_eq!(refused["output"]["rejection"], "090105");
    let relay = step(&flow, "Vault::recovery_finish", 0);
    assert_eq!(relay["actor"], "relay");
    assert_eq!(relay["output"]["error"], "AuthenticationFailed");
    assert_eq!(relay["commits"][0]["applied"]["result"], "Erased");
    let erase = b(&relay["commits"][0]["command"]);
    assert_eq!(erase[..2], [2, 4], "Erase");
    assert_eq!(
        u64::from_be_bytes(erase[42..50].try_into().unwrap()),
        3,
        "the Erase names the failed session's charge, the third"
    );
    let fake = step(&flow, "Vault::recovery_start", 4);
    assert_eq!(
        fake["commits"],
        serde_json::json!([]),
        "the fake path commits nothing"
    );
    assert_eq!(
        b(&fake["values"]["unknown_record_nonce"]),
        hkdf(
            &b(&flow["fleet"]["K_unknown"]),
            &[&label("unknown-record-nonce"), &b(&flow["record_id"])],
            32
        )
    );
    let last = step(&flow, "AwaitingRecoveryResponse::finish", 3);
    assert_eq!(
        last["output"]["error"], "RecoveryFailed",
        "the right code fails after erasure"
    );
    assert_eq!(flow["final_slot"]["state"], "erased");
    check_final_slot(&flow, &reg);
}

/// Negative vectors: each decoder, given the file's input, fails with the
/// file's error; the vault's byte entry point answers the file's bytes.
#[test]
fn negative_vectors_produce_their_errors() {
    let flow = file("negative");
    let cases = flow["decoders"].as_array().unwrap();
    assert!(cases.len() > 80, "every decoder has its cases");
    for case in cases {
        let input = b(&case["input"]);
        let decoder = case["decoder"].as_str().unwrap();
        let err: WireError = match decoder {
            "RegistrationRequest" => RegistrationRequest::from_bytes(&input).err(),
            "RegistrationResponse" => wire::RegistrationResponse::from_bytes(&input).err(),
            "RegistrationUpload" => wire::RegistrationUpload::from_bytes(&input).err(),
            "RegistrationConfirmation" => wire::RegistrationConfirmation::from_bytes(&input).err(),
            "RecoveryStart" => wire::RecoveryStart::from_bytes(&input).err(),
            "RecoveryResponse" => RecoveryResponse::from_bytes(&input).err(),
            "RecoveryResponseContents" => {
                match <&[u8; wire::RECOVERY_RESPONSE_PLAINTEXT_LEN]>::try_from(&input[..]) {
                    Ok(plaintext) => wire::RecoveryResponseContents::from_bytes(plaintext).err(),
                    Err(_) => Some(WireError::Length {
                        expected: wire::RECOVERY_RESPONSE_PLAINTEXT_LEN,
                        found: input.len(),
                    }),
                }
            }
            "RecoveryFinish" => wire::RecoveryFinish::from_bytes(&input).err(),
            "KeyRelease" => wire::KeyRelease::from_bytes(&input).err(),
            "Rejection" => Rejection::from_bytes(&input).err(),
            "Command" => Command::from_bytes(&input).err(),
            "RecordSlot" => RecordSlot::from_bytes(&input).err(),
            "FleetSecrets" => FleetSecrets::from_bytes(&input).err(),
            "BundleRequest" => wire::BundleRequest::from_bytes(&input).err(),
            "BundleResponse" => wire::BundleResponse::from_bytes(&input).err(),
            "RecoveryResponseWithBundle" => {
                wire::RecoveryResponseWithBundle::from_bytes(&input).err()
            }
            "ValidationBundle" => {
                backup_key_vault::bundle::ValidationBundle::from_bytes(&input).err()
            }
            other => panic!("unknown decoder {other}"),
        }
        .unwrap_or_else(|| panic!("{decoder}: {} was accepted", case["case"]));
        assert_eq!(
            flows::wire_error(&err),
            case["error"],
            "{decoder}: {}",
            case["case"]
        );
    }
    let secrets = b(&file("recovery-success")["fleet"]["secrets"]);
    let fleet = FleetSecrets::from_bytes(&secrets).unwrap();
    let mut vault = Vault::new(
        &fleet,
        VaultPolicy::insecure_test_only(),
        MemoryStore::new(),
    )
    .unwrap();
    let mut rng = flows::Recorder::new(0);
    for case in flow["vault"].as_array().unwrap() {
        let answer = vault.handle(&mut rng, 1_700_000_000_000, &b(&case["request"]));
        assert_eq!(hex(&answer), case["answer"], "{}", case["case"]);
        assert_eq!(case["answer"], case["error"]["rejection"]);
    }
    assert!(
        rng.take().is_empty(),
        "rejected requests draw no randomness"
    );
    // Every decoder of §5 and §16 has its cases (SPEC.md §12).
    for decoder in [
        "RegistrationRequest",
        "RegistrationResponse",
        "RegistrationUpload",
        "RegistrationConfirmation",
        "RecoveryStart",
        "RecoveryResponse",
        "RecoveryFinish",
        "KeyRelease",
        "Rejection",
        "BundleRequest",
        "BundleResponse",
        "RecoveryResponseWithBundle",
        "ValidationBundle",
        "Command",
        "RecordSlot",
        "FleetSecrets",
    ] {
        assert!(
            cases.iter().any(|c| c["decoder"] == decoder),
            "{decoder} has negative vectors"
        );
    }
    // Requests that need a pending registration first.
    let cases = flow["vault_after_request"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let mut vault = Vault::new(
            &fleet,
            VaultPolicy::insecure_test_only(),
            MemoryStore::new(),
        )
        .unwrap();
        let seed = case["setup_rng_seed"].as_u64().unwrap();
        let setup = vault.handle(
            &mut flows::Recorder::new(seed),
            1_700_000_000_000,
            &b(&case["setup_request"]),
        );
        assert_eq!(setup[0], 0x02, "the setup request is answered");
        let mut rng = flows::Recorder::new(0);
        let answer = vault.handle(&mut rng, 1_700_000_000_000, &b(&case["request"]));
        assert_eq!(hex(&answer), case["answer"], "{}", case["case"]);
        assert_eq!(case["answer"], case["error"]["rejection"]);
        assert!(rng.take().is_empty());
    }
}

/// Every point a message carries is refused as the identity (SPEC.md
/// §5.10), by the vault (`negative.json`) and by the client (the flows'
/// `negative` lists), with the error SPEC names.
#[test]
fn the_identity_is_refused_in_every_position() {
    let negative = file("negative");
    let vault_error = |case: &str| -> Value {
        negative["vault"]
            .as_array()
            .unwrap()
            .iter()
            .chain(negative["vault_after_request"].as_array().unwrap())
            .find(|c| c["case"] == case)
            .unwrap_or_else(|| panic!("{case} is listed"))["error"]["wire"]
            .clone()
    };
    let field = |f: &str| serde_json::json!({ "error": "InvalidField", "field": f });
    assert_eq!(
        vault_error("KE1 whose blinded element is the identity"),
        field("ke1")
    );
    assert_eq!(
        vault_error("KE1 whose client key share is the identity"),
        field("ke1")
    );
    assert_eq!(
        vault_error("registration request whose OPAQUE blinded element is the identity"),
        field("registration request")
    );
    assert_eq!(
        vault_error("upload whose client public key is the identity"),
        field("registration record")
    );
    let flow = file("recovery-success");
    let client_error = |case: &str| -> Value {
        flow["negative"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case"] == case)
            .unwrap_or_else(|| panic!("{case} is listed"))["error"]
            .clone()
    };
    let wire = |f: &str| serde_json::json!({ "error": "Wire", "wire": field(f) });
    assert_eq!(
        client_error("evaluated element is the identity"),
        wire("ke2")
    );
    assert_eq!(
        client_error("server key share is the identity"),
        wire("ke2")
    );
    assert_eq!(
        client_error("evaluated element is the identity (resealed)"),
        wire("registration response")
    );
    assert_eq!(
        client_error("server public key is the identity (resealed)"),
        wire("registration response")
    );
}

/// SPEC.md §14–§17, from `vectors/bundle.json` alone: the digest, both
/// Ed25519 signatures, the RFC 6962 Merkle hashes of the log, the inclusion
/// and consistency proofs; and a client's verification of the bundle and of
/// each refused variant.
#[test]
fn bundle_vectors_follow_the_spec() {
    use backup_key_vault::bundle::TrustAnchors;
    use ed25519_dalek::{Signature, SigningKey, Verifier};
    use sha2::{Digest, Sha256};

    let v = file("bundle");
    let artifact = b(&v["artifact"]);
    assert_eq!(artifact, v["artifact_text"].as_str().unwrap().as_bytes());
    let digest = Sha256::digest(&artifact).to_vec();
    assert_eq!(b(&v["digest"]), digest, "digest = SHA-256(artifact)");

    let key = |seed: &Value| {
        SigningKey::from_bytes(&b(seed).try_into().expect("32-byte seed")).verifying_key()
    };
    let auditor = key(&v["inputs"]["auditor_seed"]);
    let operator = key(&v["inputs"]["operator_seed"]);
    assert_eq!(b(&v["keys"]["auditor_public_key"]), auditor.to_bytes());
    assert_eq!(b(&v["keys"]["operator_public_key"]), operator.to_bytes());
    let statement = b(&v["statement"]);
    assert!(statement.ends_with(&[&[0x2a, 0x20][..], &digest].concat()));
    let signature = b(&v["auditor_signature"]);
    let sig = Signature::from_slice(&signature).unwrap();
    auditor
        .verify(&statement, &sig)
        .expect("auditor signs the statement");
    let counter = Signature::from_slice(&b(&v["counter_signature"])).unwrap();
    operator
        .verify(&signature, &counter)
        .expect("operator signs the auditor's signature");

    // RFC 6962 hashes.
    let leaf = |e: &[u8]| Sha256::digest([&[0u8][..], e].concat()).to_vec();
    let node = |l: &[u8], r: &[u8]| Sha256::digest([&[1u8][..], l, r].concat()).to_vec();
    let log = &v["log"];
    let entries: Vec<Vec<u8>> = log["entries"].as_array().unwrap().iter().map(b).collect();
    assert_eq!(entries[1][8..], digest[..], "the entry carries the digest");
    assert_eq!(entries[1][..8], 1u64.to_be_bytes(), "and the epoch");
    let root = node(&leaf(&entries[0]), &leaf(&entries[1]));
    assert_eq!(b(&log["root_hash"]), root);
    assert_eq!(log["inclusion"]["leaf_index"], 1);
    assert_eq!(b(&log["inclusion"]["hashes"][0]), leaf(&entries[0]));
    let later = b(&log["later_entry"]);
    assert_eq!(b(&log["later_root_hash"]), node(&root, &leaf(&later)));
    assert_eq!(b(&log["consistency_2_to_3"][0]), leaf(&later));
    let body = log["checkpoint_body"].as_str().unwrap();
    assert!(b(&log["checkpoint_note"]).starts_with(body.as_bytes()));
    assert_eq!(
        body.lines().take(2).collect::<Vec<_>>(),
        [v["inputs"]["namespace"].as_str().unwrap(), "2"]
    );

    // A client's verification (SPEC.md §17) of the bundle and its variants.
    let bundle = b(&v["bundle"]);
    assert_eq!(b(&v["bundle_response"])[6..], bundle[..]);
    let anchors = TrustAnchors::new(&[auditor.to_bytes()], &[operator.to_bytes()]);
    let now = v["inputs"]["now_ms"].as_u64().unwrap();
    let fleet = anchors.verify_bytes(&bundle, now, None).expect("verifies");
    // SPEC.md §14.1: the range is the artifact's, and holds the record.
    let prefix =
        |name: &str| u64::from_be_bytes(b(&v["inputs"][name]).try_into().expect("8 bytes"));
    assert_eq!(
        (
            fleet.artifact().records.first,
            fleet.artifact().records.last
        ),
        (prefix("first_record"), prefix("last_record"))
    );
    let record = backup_key_vault::RecordId(b(&v["inputs"]["record_id"]).try_into().unwrap());
    fleet
        .check_record(&record)
        .expect("the fleet owns the record");
    assert_eq!(
        hex(&fleet.public_keys().key_exchange),
        v["verified"]["ke_pk"]
    );
    assert_eq!(
        hex(fleet.public_keys().transport.as_bytes()),
        v["verified"]["tr_pk"]
    );
    let keys = |k: &Value| -> Vec<[u8; 32]> {
        k.as_array()
            .unwrap()
            .iter()
            .map(|x| b(x).try_into().unwrap())
            .collect()
    };
    let cases = v["negative"].as_array().unwrap();
    assert!(cases.len() >= 12);
    for case in cases {
        let anchors =
            TrustAnchors::new(&keys(&case["auditor_keys"]), &keys(&case["operator_keys"]))
                .with_namespace(case["namespace"].as_str().unwrap());
        let record = backup_key_vault::RecordId(b(&case["record_id"]).try_into().unwrap());
        let err = anchors
            .verify_bytes(
                &b(&case["bundle"]),
                case["now_ms"].as_u64().unwrap(),
                case["stored_epoch"].as_u64(),
            )
            .and_then(|fleet| fleet.check_record(&record))
            .err()
            .unwrap_or_else(|| panic!("{} was accepted", case["case"]));
        assert_eq!(flows::bundle_error(&err), case["error"], "{}", case["case"]);
    }
}

// ----- The record tree (SPEC.md §8.5), from the file and the SPEC alone ----

const TREE_EMPTY: [u8; 32] = [0; 32];

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn tree_leaf(id: &[u8], value: &[u8]) -> [u8; 32] {
    sha256(&[b"bkv-tree-leaf/v1", id, value])
}

fn tree_inner(left: &[u8], right: &[u8]) -> [u8; 32] {
    sha256(&[b"bkv-tree-inner/v1", left, right])
}

/// Bit `i` of an id, most significant bit of byte 0 first.
fn id_bit(id: &[u8; 32], i: usize) -> u8 {
    (id[i / 8] >> (7 - i % 8)) & 1
}

/// Node rows as hex (key → node), so that a difference reads as rows.
type TreeRows = std::collections::BTreeMap<String, String>;

/// The node rows of the subtree at `depth` on `prefix` holding `records`,
/// by SPEC.md §8.5's definition (no record: nothing stored; one: its leaf;
/// more: an inner node over both halves), and that subtree's hash.
fn spec_rows(
    records: &[([u8; 32], [u8; 32])],
    depth: usize,
    prefix: [u8; 32],
    rows: &mut TreeRows,
) -> [u8; 32] {
    let key = hex(&[&(depth as u16).to_be_bytes()[..], &prefix[..]].concat());
    match records {
        [] => TREE_EMPTY,
        [(id, value)] => {
            rows.insert(key, hex(&[&[1u8, 2][..], id, value].concat()));
            tree_leaf(id, value)
        }
        _ => {
            let (left, right): (Vec<_>, Vec<_>) =
                records.iter().partition(|(id, _)| id_bit(id, depth) == 0);
            let mut right_prefix = prefix;
            right_prefix[depth / 8] |= 0x80 >> (depth % 8);
            let l = spec_rows(&left, depth + 1, prefix, rows);
            let r = spec_rows(&right, depth + 1, right_prefix, rows);
            rows.insert(key, hex(&[&[1u8, 1][..], &l, &r].concat()));
            tree_inner(&l, &r)
        }
    }
}

/// A proof read by SPEC.md §8.5's table and folded from its end to the
/// root: the root it implies for `id`, and the id's value if the path ends
/// at the id's own leaf.
fn spec_fold(proof: &[u8], id: &[u8; 32]) -> ([u8; 32], Option<[u8; 32]>) {
    assert_eq!(proof[0], 1, "version");
    let mut at = 2;
    let (mut h, present) = match proof[1] {
        0 => (TREE_EMPTY, None),
        2 => {
            let (end_id, value) = (&proof[2..34], &proof[34..66]);
            at = 66;
            let present = (end_id == id).then(|| value.try_into().unwrap());
            (tree_leaf(end_id, value), present)
        }
        other => panic!("end tag {other}"),
    };
    let depth = usize::from(u16::from_be_bytes([proof[at], proof[at + 1]]));
    at += 2;
    let mut siblings = vec![TREE_EMPTY; depth];
    if depth >= 1 {
        let upper = depth - 1;
        let bitmap = proof[at..at + upper.div_ceil(8)].to_vec();
        at += bitmap.len();
        for (i, s) in siblings.iter_mut().enumerate().take(upper) {
            if bitmap[i / 8] & (0x80 >> (i % 8)) != 0 {
                s.copy_from_slice(&proof[at..at + 32]);
                at += 32;
            }
        }
        let (x, y) = (&proof[at + 1..at + 33], &proof[at + 33..at + 65]);
        siblings[upper] = match proof[at] {
            1 => tree_inner(x, y),
            2 => tree_leaf(x, y),
            other => panic!("deepest tag {other}"),
        };
        at += 65;
    }
    assert_eq!(at, proof.len(), "the proof has bytes past its last field");
    for level in (0..depth).rev() {
        h = if id_bit(id, level) == 0 {
            tree_inner(&h, &siblings[level])
        } else {
            tree_inner(&siblings[level], &h)
        };
    }
    (h, present)
}

fn hex32(v: &Value) -> [u8; 32] {
    from_hex(v.as_str().expect("hex"))
        .try_into()
        .expect("32 bytes")
}

#[test]
fn record_tree_vectors_follow_the_spec() {
    let file = file("record-tree");
    let mut records: std::collections::BTreeMap<[u8; 32], [u8; 32]> = Default::default();
    let mut rows = TreeRows::new();
    let steps = file["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 15);
    for step in steps {
        let n = &step["step"];
        let id = hex32(&step["record_id"]);
        let list: Vec<_> = records.iter().map(|(k, v)| (*k, *v)).collect();
        let mut expected_rows = TreeRows::new();
        let root = spec_rows(&list, 0, [0; 32], &mut expected_rows);
        assert_eq!(rows, expected_rows, "step {n}: the rows so far");
        assert_eq!(hex32(&step["root_before"]), root, "step {n}: root before");

        // What the vault learns from the host's proof.
        let (implied, present) = spec_fold(&from_hex(step["proof"].as_str().unwrap()), &id);
        assert_eq!(implied, root, "step {n}: the proof leads to the root");
        assert_eq!(present, records.get(&id).copied(), "step {n}: lookup");
        match present {
            Some(v) => assert_eq!(hex32(&step["lookup"]["present"]), v, "step {n}"),
            None => assert_eq!(step["lookup"], "absent", "step {n}"),
        }

        match step["op"].as_str().unwrap() {
            "check" => {
                assert!(
                    step.get("writes").is_none(),
                    "step {n}: a lookup writes nothing"
                );
                continue;
            }
            "set" => {
                let slot = from_hex(step["slot"].as_str().unwrap());
                let value = sha256(&[b"bkv-tree-value/v1", &slot]);
                assert_eq!(hex32(&step["value"]), value, "step {n}: value hash");
                records.insert(id, value);
            }
            "remove" => {
                records.remove(&id);
            }
            other => panic!("step {n}: op {other}"),
        }
        // The rows written turn the old tree's rows into the new tree's,
        // and the new root is its root row's hash.
        for w in step["writes"].as_array().expect("writes") {
            let key = w["key"].as_str().unwrap().to_string();
            match w["node"].as_str() {
                Some(node) => rows.insert(key, node.to_string()),
                None => rows.remove(&key),
            };
        }
        let list: Vec<_> = records.iter().map(|(k, v)| (*k, *v)).collect();
        let mut expected_rows = TreeRows::new();
        let root = spec_rows(&list, 0, [0; 32], &mut expected_rows);
        assert_eq!(rows, expected_rows, "step {n}: rows after the writes");
        assert_eq!(hex32(&step["root_after"]), root, "step {n}: root after");
    }
    assert!(
        records.is_empty() && rows.is_empty(),
        "the steps remove every record"
    );
    // Step 5 puts two records that differ only in bit 255 at depth 256.
    assert_eq!(steps[4]["writes"].as_array().unwrap().len(), 258);
}

#[test]
fn record_tree_negative_vectors_produce_their_errors() {
    use backup_key_vault::vault::tree::{Proof, ProofError};
    let file = file("record-tree");
    let root = hex32(&file["negative_root"]);
    let negative = file["negative"].as_array().expect("negative");
    assert_eq!(negative.len(), 9);
    for case in negative {
        let what = &case["case"];
        let id = backup_key_vault::RecordId(hex32(&case["record_id"]));
        let bytes = from_hex(case["proof"].as_str().unwrap());
        let got = match Proof::from_bytes(&bytes) {
            Err(w) => ProofError::Malformed(w),
            Ok(p) => p.check(&root, &id).expect_err("a negative case is refused"),
        };
        assert_eq!(flows::proof_error(&got), case["error"], "{what}");
    }
}
