//! Memory: the stored record's size, and the vault's peak memory holding
//! 100,000 records (`cargo bench --bench memory`). Peak memory is the
//! process's high-water mark (VmHWM) before and after filling the store, so
//! it counts everything the records cost: map nodes, allocator overhead.

use backup_key_vault::vault::{
    Command, MemoryStore, RecordPayload, RecordStore, Vault, VaultPolicy,
};
use backup_key_vault::{FleetSecrets, RecordId, StretchingParams};
use rand::SeedableRng;

const RECORDS: u32 = 100_000;

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let secrets = FleetSecrets::generate(&mut rng);
    let before = peak_rss_bytes();
    let mut vault =
        Vault::new(&secrets, VaultPolicy::default(), MemoryStore::new()).expect("vault");
    for i in 0..RECORDS {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        let command = Command::Register {
            record_id: RecordId(id),
            replaces: None,
            generation: 1,
            payload: RecordPayload {
                oprf_nonce: [1; 32],
                registration: [2; 192],
                wrapped_key: [3; 48],
                stretching: StretchingParams::default(),
                max_attempts: 10,
            },
        };
        vault.store_mut().commit(&command).expect("commit");
    }
    let after = peak_rss_bytes();
    let slot = vault
        .store()
        .load(&RecordId([0; 32]))
        .expect("load")
        .expect("slot");
    println!(
        "stored record: {} bytes encoded (budget 320)",
        slot.to_bytes().len()
    );
    println!(
        "in memory: {} bytes per StoredRecord value",
        std::mem::size_of_val(&slot)
    );
    let growth = match (before, after) {
        (Some(b), Some(a)) => {
            println!(
                "vault with {RECORDS} records: peak RSS grew by {:.1} MiB ({:.0} bytes per record)",
                (a - b) as f64 / (1024.0 * 1024.0),
                (a - b) as f64 / f64::from(RECORDS)
            );
            Some(a - b)
        }
        _ => {
            println!("peak RSS: not available on this platform (/proc/self/status)");
            None
        }
    };
    // For benches/report.py, beside criterion's own results.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("..")
        .join("criterion")
        .join("memory");
    let json = format!(
        "{{\"record_bytes\": {}, \"value_bytes\": {}, \"records\": {RECORDS}, \"peak_rss_growth_bytes\": {}}}\n",
        slot.to_bytes().len(),
        std::mem::size_of_val(&slot),
        growth.map_or("null".to_string(), |g| g.to_string())
    );
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join("memory.json"), json))
    {
        println!("(could not write {}: {e})", dir.display());
    }
}
