//! A small fleet driven by the fuzzer (SPEC.md §24.2): the simulation's
//! harness, with every decision of the host taken from the input instead
//! of the seeded RNG (`Sim::with_script`): which messages are delivered,
//! dropped, duplicated, recorded and replayed later; ticks; clients
//! started, honest and attacking; crashes, restarts, partitions, disks
//! wiped, rolled back or edited. The simulation's oracle runs after every
//! step (the guess limit, erased records stay erased), and after the
//! fleet is healed every honest client must recover its key.
//!
//! Input: `u64le seed || flags || script`; flags bit 0 picks 5 nodes
//! instead of 3, bit 1 gives every node NVRAM (§22.4). Steps: one per
//! three script bytes, 10 to 80.

use bkv_fleet::sim::{Sim, SimConfig};

/// The target.
pub fn fuzz(data: &[u8]) {
    let Some((seed, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((&flags, script)) = rest.split_first() else {
        return;
    };
    let seed = u64::from_le_bytes(*seed);
    let cfg = SimConfig {
        nodes: if flags & 1 == 1 { 5 } else { 3 },
        nvram: flags & 2 == 2,
        steps: (script.len() / 3).clamp(10, 80),
        honest: 1,
        faults: true,
        ..SimConfig::for_seed(seed)
    };
    let run = Sim::new(seed, cfg).and_then(|sim| sim.with_script(script.to_vec()).run());
    if let Err(e) = run {
        panic!("fleet simulation: {e}");
    }
}
