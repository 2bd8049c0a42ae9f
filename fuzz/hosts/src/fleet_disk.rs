//! A node loading what the host hands it as its stored state (SPEC.md
//! §22.1). The host's rows are authenticated under a key only the node
//! derives, and one sealed manifest commits to all of them, so:
//!
//! * rows the fuzzer made up never load (the node refuses the disk and
//!   starts as if wiped), whatever tables, keys and values they have;
//! * a genuine disk (a manifest, log entries with fuzzer-chosen data, hard
//!   state) that the fuzzer then edits (bits of values or keys flipped,
//!   rows dropped, added, copied under other keys, swapped) loads only if
//!   the edits left its manifest and log exactly as written, and then
//!   loads what was written. The record tree's rows are not read when a
//!   node loads (SPEC.md §8.5: they are checked against the manifest's
//!   root as they are used, which the `host_records` target fuzzes); but
//!   on a disk without a manifest any row there is refused.

use arbitrary::{Arbitrary, Unstructured};
use backup_key_vault::FleetSecrets;
use bkv_fleet::platform::{MemHost, MemImage, Table};
use bkv_fleet::sealed::{Boot, SealedStore, Write};
use raft::prelude::{Entry, HardState};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::rows;

/// One change the host makes to the rows.
#[derive(Arbitrary, Debug)]
enum Edit {
    FlipValue {
        table: u8,
        row: u8,
        at: u16,
        mask: u8,
    },
    FlipKey {
        table: u8,
        row: u8,
        at: u8,
        mask: u8,
    },
    Drop {
        table: u8,
        row: u8,
    },
    Put {
        table: u8,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    CopyTo {
        table: u8,
        row: u8,
        to_table: u8,
        key: Vec<u8>,
    },
    Swap {
        table: u8,
        a: u8,
        b: u8,
    },
    Clear {
        table: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Start from an empty disk instead of a genuine one.
    from_scratch: bool,
    /// Log entries' data on the genuine disk (at most 6).
    entries: Vec<Vec<u8>>,
    term: u8,
    edits: Vec<Edit>,
}

fn table(t: u8) -> Table {
    Table::ALL[usize::from(t) % Table::ALL.len()]
}

fn edit(image: &mut MemImage, e: Edit) {
    match e {
        Edit::FlipValue {
            table: t,
            row: i,
            at,
            mask,
        } => rows::flip_value(image, table(t), i, usize::from(at), mask),
        Edit::FlipKey {
            table: t,
            row: i,
            at,
            mask,
        } => rows::flip_key(image, table(t), i, usize::from(at), mask),
        Edit::Drop { table: t, row: i } => rows::drop_row(image, table(t), i),
        Edit::Put {
            table: t,
            key,
            value,
        } => {
            image.entry(table(t)).or_default().insert(key, value);
        }
        Edit::CopyTo {
            table: t,
            row: i,
            to_table,
            key,
        } => {
            if let Some((_, v)) = rows::row(image, table(t), i) {
                image.entry(table(to_table)).or_default().insert(key, v);
            }
        }
        Edit::Swap { table: t, a, b } => rows::swap(image, table(t), a, b),
        Edit::Clear { table: t } => {
            image.remove(&table(t));
        }
    }
}

fn is_empty(image: &MemImage) -> bool {
    image.values().all(|rows| rows.is_empty())
}

/// The rows a node checks when it loads (the manifest, the log and the
/// version-2 record table), without the empty tables (a table with no rows
/// and no table are the same disk).
fn rows(image: &MemImage) -> MemImage {
    image
        .iter()
        .filter(|(t, rows)| !rows.is_empty() && !matches!(t, Table::Tree | Table::Slots))
        .map(|(t, rows)| (*t, rows.clone()))
        .collect()
}

/// The target.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let key = FleetSecrets::generate(&mut rng).fleet_transport_key();
    let node = 1;
    let host = MemHost::new();
    let term = u64::from(input.term);
    let entries: Vec<Entry> = input
        .entries
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, data)| Entry {
            index: i as u64 + 1,
            term,
            data: data.clone().into(),
            ..Entry::default()
        })
        .collect();
    let hard_state = HardState {
        term,
        vote: 2,
        commit: entries.len() as u64,
        ..HardState::default()
    };
    if !input.from_scratch {
        let (mut store, _, _) = SealedStore::open(&key, node, Box::new(host.clone()), None, true)
            .expect("an empty memory disk opens");
        store
            .set_incarnation(&mut rng, 1)
            .expect("a memory disk takes writes");
        store
            .write(
                &mut rng,
                Write {
                    entries: &entries,
                    hard_state: Some(&hard_state),
                    ..Write::default()
                },
            )
            .expect("a memory disk takes writes");
    }
    let genuine = host.image();
    let mut image = genuine.clone();
    for e in input.edits.into_iter().take(16) {
        edit(&mut image, e);
    }
    host.restore(image.clone());
    let (_, loaded, boot) = SealedStore::open(&key, node, Box::new(host), None, true)
        .expect("a memory disk never fails to read");
    if is_empty(&image) {
        assert_eq!(boot, Boot::Unvouched, "an empty disk is a first start");
        assert!(loaded.entries.is_empty() && loaded.incarnation == 0);
    } else if rows(&image) == rows(&genuine) && !is_empty(&genuine) {
        assert_eq!(boot, Boot::Unvouched, "the genuine disk was refused");
        assert_eq!(loaded.entries, entries);
        assert_eq!(loaded.hard_state, hard_state);
        assert_eq!(loaded.incarnation, 1);
    } else {
        assert!(
            matches!(boot, Boot::Rejected(_)),
            "a disk the host made or edited was loaded ({boot:?})"
        );
        assert!(loaded.entries.is_empty() && loaded.incarnation == 0);
    }
}
