//! The record tree and its slots on a node's host (SPEC.md §8.5), read
//! through `HostRecords` and checked by the core's `VerifiedStore` against
//! the root the node keeps. The fuzzer registers and charges a few records,
//! then edits the host's `tree` and `slots` rows (bits flipped in keys and
//! values, rows dropped, made up, copied, swapped, or taken back from the
//! disk as it was before the charges), and the oracle is:
//!
//! * no edit makes a load answer anything but the slot that was committed
//!   (a refusal is fine: the vault then answers `Unavailable`);
//! * a charge through the edited host either is refused or does exactly
//!   what it does on the committed table: no attempt comes back;
//! * rows left as written always load.

use arbitrary::{Arbitrary, Unstructured};
use backup_key_vault::suite::StretchingParams;
use backup_key_vault::vault::tree;
use backup_key_vault::vault::verified::VerifiedStore;
use backup_key_vault::vault::{Command, RecordPayload, RecordStore, RecordTable};
use backup_key_vault::{FleetSecrets, RecordId};
use bkv_fleet::platform::{HostStore, MemHost, MemImage, Table};
use bkv_fleet::records::HostRecords;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::rows;

/// One change the host makes to the record rows.
#[derive(Arbitrary, Debug)]
enum Edit {
    FlipValue {
        slots: bool,
        row: u8,
        at: u8,
        mask: u8,
    },
    FlipKey {
        slots: bool,
        row: u8,
        at: u8,
        mask: u8,
    },
    Drop {
        slots: bool,
        row: u8,
    },
    Put {
        slots: bool,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Swap {
        slots: bool,
        a: u8,
        b: u8,
    },
    /// The row as it was before the charges (a rollback of one row).
    Older {
        slots: bool,
        row: u8,
    },
    /// Every row as it was before the charges.
    OlderAll,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Records registered (1 to 12).
    records: u8,
    /// Records charged, by index (at most 12 charges).
    charges: Vec<u8>,
    edits: Vec<Edit>,
}

fn table(slots: bool) -> Table {
    if slots {
        Table::Slots
    } else {
        Table::Tree
    }
}

/// Ids spread as hashed account ids are.
fn id(n: u8) -> RecordId {
    RecordId(tree::value_hash(&[n]))
}

fn register(n: u8) -> Command {
    Command::Register {
        record_id: id(n),
        replaces: None,
        generation: 1,
        payload: RecordPayload {
            oprf_nonce: [n; 32],
            registration: [2; 192],
            wrapped_key: [3; 48],
            stretching: StretchingParams::default(),
            max_attempts: 3,
        },
    }
}

fn charge(n: u8) -> Command {
    Command::ChargeAttempt {
        record_id: id(n),
        generation: 1,
    }
}

fn edit(image: &mut MemImage, older: &MemImage, e: Edit) {
    match e {
        Edit::FlipValue {
            slots,
            row: i,
            at,
            mask,
        } => rows::flip_value(image, table(slots), i, usize::from(at), mask),
        Edit::FlipKey {
            slots,
            row: i,
            at,
            mask,
        } => rows::flip_key(image, table(slots), i, usize::from(at), mask),
        Edit::Drop { slots, row: i } => rows::drop_row(image, table(slots), i),
        Edit::Put { slots, key, value } => {
            image.entry(table(slots)).or_default().insert(key, value);
        }
        Edit::Swap { slots, a, b } => rows::swap(image, table(slots), a, b),
        Edit::Older { slots, row: i } => {
            let t = table(slots);
            if let Some((k, v)) = rows::row(older, t, i) {
                image.entry(t).or_default().insert(k, v);
            }
        }
        Edit::OlderAll => *image = older.clone(),
    }
}

type Store = VerifiedStore<HostRecords<MemHost>>;

/// Writes what is staged, as the node does with its manifest.
fn flush(s: &mut Store, rng: &mut ChaCha20Rng) {
    let ops = s.host_mut().take_ops(rng).expect("sealing in memory works");
    s.host()
        .host()
        .clone()
        .apply(&ops)
        .expect("a memory host takes writes");
}

/// The target.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let key = FleetSecrets::generate(&mut rng).fleet_transport_key();
    let host = MemHost::new();
    let mut store: Store =
        VerifiedStore::new(HostRecords::new(&key, 1, host.clone()), tree::EMPTY, 0);
    let mut table = RecordTable::new();
    let records = input.records % 12 + 1;
    for n in 0..records {
        let command = register(n);
        assert_eq!(store.commit(&command), Ok(table.apply(&command)));
    }
    flush(&mut store, &mut rng);
    let older = host.image();
    for n in input.charges.iter().take(12) {
        let command = charge(n % records);
        assert_eq!(store.commit(&command), Ok(table.apply(&command)));
    }
    flush(&mut store, &mut rng);
    let genuine = host.image();
    let root = store.root();

    let mut image = genuine.clone();
    for e in input.edits.into_iter().take(16) {
        edit(&mut image, &older, e);
    }
    host.restore(image.clone());
    let unchanged = image == genuine;
    let mut fresh: Store = VerifiedStore::new(HostRecords::new(&key, 1, host), root, 0);
    // One id past the registered ones: an absent record.
    for n in 0..=records {
        match fresh.load(&id(n)) {
            Ok(slot) => assert_eq!(
                slot.as_ref(),
                table.get(&id(n)),
                "record {n} loaded as something never committed"
            ),
            Err(_) => assert!(!unchanged, "record {n} refused from an untouched host"),
        }
    }
    for n in 0..records {
        let command = charge(n);
        match fresh.commit(&command) {
            Ok(applied) => assert_eq!(
                applied,
                table.apply(&command),
                "a charge of record {n} on the edited host did something else"
            ),
            Err(_) => assert!(
                !unchanged,
                "a charge of record {n} refused on an untouched host"
            ),
        }
    }
}
