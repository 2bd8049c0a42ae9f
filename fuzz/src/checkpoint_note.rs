//! Checkpoint notes as a log and its witnesses write them (SPEC.md §15.3,
//! C2SP signed-note and tlog-checkpoint), built by the fuzzer: any origin,
//! size and root, extension lines, and up to 120 signature lines by the
//! auditor's keys, by witnesses (any name, any key id, any signature
//! length, lenient base64) and lines of the fuzzer's own, in any order;
//! then the note may be altered. Verified under a fuzzer-chosen set of
//! pinned keys. The oracle:
//!
//! * a note that verifies carries exactly the checkpoint that was signed,
//!   and a pinned key really signed it (an altered body never verifies);
//! * an unaltered note that C2SP says must verify does: at least one line
//!   by a pinned key, well-formed extension lines, at most 100 signature
//!   lines, no witness under the log's own name;
//! * parsing agrees with verification on the checkpoint it returns.

use arbitrary::{Arbitrary, Unstructured};
use backup_key_vault::bundle::ed25519::PinnedKey;
use backup_key_vault::bundle::log::{note_key_id, MAX_NOTE_SIGNATURES};
use backup_key_vault::bundle::{AuditorSigningKey, Checkpoint};
use base64ct::{Base64, Encoding};

#[derive(Arbitrary, Debug)]
enum Line {
    /// A line by auditor key `key % 3`, over the body.
    Auditor { key: u8 },
    /// A witness's cosignature: its own name, key id and bytes.
    Witness {
        name: String,
        key_id: [u8; 4],
        signature: Vec<u8>,
    },
    /// A line of the fuzzer's own.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    origin: Option<String>,
    tree_size: u64,
    root_hash: [u8; 32],
    extensions: Vec<String>,
    lines: Vec<Line>,
    /// Which of the three keys the verifier pins (bits 0..3).
    pinned: u8,
    /// Bytes XORed into the note.
    alter: Vec<(u32, u8)>,
}

fn keys() -> [AuditorSigningKey; 3] {
    [1u8, 2, 3].map(|seed| AuditorSigningKey::from_bytes(&[seed; 32]))
}

/// The target.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    let keys = keys();
    let origin = input
        .origin
        .unwrap_or_else(|| String::from("backup-key-vault.fleet_keys.v1"));
    let checkpoint = Checkpoint {
        origin: origin.clone(),
        tree_size: input.tree_size,
        root_hash: input.root_hash,
        extensions: input.extensions.into_iter().take(8).collect(),
    };
    let body = checkpoint.body();
    let mut note = body.clone().into_bytes();
    note.push(b'\n');
    let lines: Vec<Line> = input.lines.into_iter().take(120).collect();
    let mut signed_by = [false; 3];
    let mut witness_as_origin = false;
    let mut witness_malformed = false;
    let mut raw = false;
    for line in &lines {
        match line {
            Line::Auditor { key } => {
                let i = usize::from(*key) % keys.len();
                signed_by[i] = true;
                let key = &keys[i];
                let mut blob = note_key_id(&origin, &key.public_key()).to_vec();
                blob.extend_from_slice(&key.sign_note_text(body.as_bytes()));
                note.extend_from_slice(
                    format!("\u{2014} {origin} {}\n", Base64::encode_string(&blob)).as_bytes(),
                );
            }
            Line::Witness {
                name,
                key_id,
                signature,
            } => {
                witness_as_origin |= *name == origin;
                witness_malformed |= name.is_empty()
                    || signature.is_empty()
                    || name
                        .chars()
                        .any(|c| c == '+' || c < ' ' || c.is_whitespace());
                let mut blob = key_id.to_vec();
                blob.extend_from_slice(signature);
                note.extend_from_slice(
                    format!("\u{2014} {name} {}\n", Base64::encode_string(&blob)).as_bytes(),
                );
            }
            Line::Raw(text) => {
                raw = true;
                note.extend_from_slice(text.as_bytes());
                note.push(b'\n');
            }
        }
    }
    let mut altered = false;
    let len = note.len();
    for (at, mask) in input.alter.into_iter().take(4) {
        if let Some(b) = note.get_mut(at as usize % len.max(1)) {
            *b ^= mask;
            altered |= mask != 0;
        }
    }
    let pinned: Vec<PinnedKey> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| input.pinned & (1 << i) != 0)
        .map(|(_, k)| PinnedKey::new(k.public_key()))
        .collect();
    let verified = Checkpoint::verify_note(&note, &origin, &pinned);
    let parsed = Checkpoint::parse_note(&note);
    if let Ok(c) = &verified {
        assert_eq!(
            c, &checkpoint,
            "a note verified with a checkpoint nobody signed"
        );
        assert!(
            (0..3).any(|i| signed_by[i] && input.pinned & (1 << i) != 0),
            "a note verified without a line by a pinned key"
        );
        assert_eq!(
            parsed.as_ref().map(|(c, _)| c),
            Ok(c),
            "parse and verify disagree"
        );
    }
    // Does the body parse back as itself (a well-formed checkpoint)?
    let well_formed =
        Checkpoint::parse_note(&[body.as_bytes(), "\n\u{2014} x AAAAAAA=\n".as_bytes()].concat())
            .is_ok_and(|(c, _)| c == checkpoint);
    let must_verify = !altered
        && !raw
        && !witness_as_origin
        && !witness_malformed
        && well_formed
        && !lines.is_empty()
        && lines.len() <= MAX_NOTE_SIGNATURES
        && note.len() <= backup_key_vault::bundle::log::MAX_CHECKPOINT_LEN
        && (0..3).any(|i| signed_by[i] && input.pinned & (1 << i) != 0);
    if must_verify {
        assert_eq!(
            verified,
            Ok(checkpoint),
            "a well-formed note signed by a pinned key was refused"
        );
    }
}
