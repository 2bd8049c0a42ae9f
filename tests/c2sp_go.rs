//! Our checkpoints, notes and proofs against fixtures made by Go's
//! `golang.org/x/mod/sumdb/note` and `sumdb/tlog` (`vectors/c2sp/`, made by
//! `vectors/c2sp/gen.go`), in both directions (SPEC.md §15.2–§15.4): our
//! verifier reaches Go's verdict on every note, and what we produce (notes,
//! tree hashes, proofs) is byte for byte what Go produces.

use backup_key_vault::bundle::ed25519::PinnedKey;
use backup_key_vault::bundle::log::{empty_root, HASH_LEN, LEAF_LEN};
use backup_key_vault::bundle::{
    AuditorSigningKey, Checkpoint, ConsistencyProof, InclusionProof, MerkleLog,
};
use serde_json::Value;

fn fixtures() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/c2sp/fixtures.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unhex(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hashes(v: &Value) -> Vec<[u8; HASH_LEN]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h).try_into().unwrap())
        .collect()
}

fn log(f: &Value) -> MerkleLog {
    let mut log = MerkleLog::new();
    for e in f["entries"].as_array().unwrap() {
        let e: [u8; LEAF_LEN] = unhex(e).try_into().unwrap();
        log.push(e);
    }
    log
}

fn pinned(f: &Value) -> [PinnedKey; 1] {
    [PinnedKey::new(unhex(&f["auditor_key"]).try_into().unwrap())]
}

#[test]
fn our_verifier_reaches_gos_verdict_on_every_note() {
    let f = fixtures();
    let origin = f["origin"].as_str().unwrap();
    let keys = pinned(&f);
    let notes = f["notes"].as_array().unwrap();
    assert!(notes.len() >= 14);
    for case in notes {
        let name = case["case"].as_str().unwrap();
        let note = case["note"].as_str().unwrap().as_bytes();
        let ours = Checkpoint::verify_note(note, origin, &keys);
        if case["go_open"] == "ok" {
            let cp = ours.unwrap_or_else(|e| panic!("{name}: Go accepts, we refuse: {e:?}"));
            assert_eq!(cp.tree_size, case["tree_size"].as_u64().unwrap(), "{name}");
            assert_eq!(cp.root_hash[..], unhex(&case["root_hash"])[..], "{name}");
            let extensions: Vec<String> = case["extensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(cp.extensions, extensions, "{name}");
        } else {
            assert!(
                ours.is_err(),
                "{name}: Go refuses ({}), we accept",
                case["go_open"]
            );
        }
    }
}

#[test]
fn we_write_the_notes_go_writes() {
    let f = fixtures();
    let origin = f["origin"].as_str().unwrap();
    let seed: [u8; 32] = unhex(&f["auditor_seed"]).try_into().unwrap();
    let key = AuditorSigningKey::from_bytes(&seed);
    assert_eq!(key.public_key()[..], unhex(&f["auditor_key"])[..]);
    let log = log(&f);
    let note = |case: &str| -> String {
        f["notes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case"] == case)
            .unwrap()["note"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (case, size) in [("auditor only, size 13", 13), ("auditor only, size 1", 1)] {
        let ours = log.prefix(size).unwrap().checkpoint(origin).sign(&key);
        assert_eq!(String::from_utf8(ours).unwrap(), note(case), "{case}");
    }
    // With extension lines: Go signs the auditor first, then a witness;
    // our note is Go's up to the end of the auditor's line.
    let go = note("extension lines");
    let mut cp = log.checkpoint(origin);
    cp.extensions = ["extension one", "\u{2014} not a signature line", "ext=3"]
        .map(String::from)
        .to_vec();
    let ours = String::from_utf8(cp.sign(&key)).unwrap();
    assert!(go.starts_with(&ours), "{go}\n{ours}");
    // A cosigned note keeps verifying after we read it.
    let cosigned = note("auditor and two witness cosignatures");
    assert!(cosigned.starts_with(&note("auditor only, size 13")));
}

#[test]
fn tree_hashes_and_proofs_agree_with_gos_tlog() {
    let f = fixtures();
    let origin = f["origin"].as_str().unwrap();
    let full = log(&f);
    let roots = f["roots"].as_array().unwrap();
    let checkpoint = |size: u64| full.prefix(size).unwrap().checkpoint(origin);
    for (size, root) in roots.iter().enumerate().skip(1) {
        assert_eq!(
            checkpoint(size as u64).root_hash[..],
            unhex(root)[..],
            "{size}"
        );
    }
    // The empty tree: Go writes 32 zero bytes, RFC 6962 (and we) SHA-256("").
    assert_eq!(unhex(&f["go_empty_tree"]), [0u8; 32]);
    assert_eq!(unhex(&roots[0]), [0u8; 32]);
    assert_eq!(checkpoint(0).root_hash, empty_root());
    assert_ne!(empty_root(), [0u8; 32]);

    let inclusion = f["inclusion"].as_array().unwrap();
    assert_eq!(inclusion.len(), 13 * 14 / 2);
    for case in inclusion {
        let t = case["tree_size"].as_u64().unwrap();
        let n = case["index"].as_u64().unwrap();
        let go = InclusionProof {
            leaf_index: n,
            hashes: hashes(&case["proof"]),
        };
        go.verify(full.get(n).unwrap(), &checkpoint(t))
            .unwrap_or_else(|e| panic!("Go's proof of {n} in {t}: {e:?}"));
        let ours = full.prefix(t).unwrap().prove_inclusion(n).unwrap();
        assert_eq!(ours, go, "our proof of {n} in {t}");
    }
    let consistency = f["consistency"].as_array().unwrap();
    assert_eq!(consistency.len(), 13 * 14 / 2);
    for case in consistency {
        let t = case["tree_size"].as_u64().unwrap();
        let n = case["index"].as_u64().unwrap();
        let go = ConsistencyProof {
            hashes: hashes(&case["proof"]),
        };
        go.verify(&checkpoint(n), &checkpoint(t))
            .unwrap_or_else(|e| panic!("Go's proof {n} -> {t}: {e:?}"));
        let ours = full.prefix(t).unwrap().prove_consistency(n).unwrap();
        assert_eq!(ours, go, "our proof {n} -> {t}");
        // A proof from Go's empty tree (zero root) is not one from ours.
        if n == t {
            let go_empty = Checkpoint {
                root_hash: [0; 32],
                ..checkpoint(0)
            };
            assert!(ConsistencyProof { hashes: vec![] }
                .verify(&go_empty, &checkpoint(t))
                .is_err());
        }
    }
}
