//! The deterministic simulation (SPEC.md §24): seeds in parallel, each a
//! whole run with faults, checked by the oracle after every step.
//!
//! * `BKV_SIM_SEEDS=N` runs N seeds (default 500 in `cargo test`; .ci/run
//!   runs 2,000; the long mode is `BKV_SIM_SEEDS=10000`).
//! * `BKV_SIM_SEED=S` replays one seed exactly (a failing seed prints it).
//! * `BKV_SIM_FIRST=F` starts the range at F.
//! * `BKV_SIM_NVRAM=on|off` gives every node NVRAM, or none (default: NVRAM
//!   on even seeds).

use bkv_fleet::sim::{run_seed, Sim, SimConfig};

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_range(first: u64, count: u64) -> (Vec<String>, bkv_fleet::sim::SimReport) {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4) as u64;
    let results: Vec<(Vec<String>, bkv_fleet::sim::SimReport)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut failures = Vec::new();
                    let mut total = bkv_fleet::sim::SimReport::default();
                    let mut seed = first + t;
                    while seed < first + count {
                        match run_seed(seed) {
                            Ok(r) => total.absorb(&r),
                            Err(e) => failures.push(e),
                        }
                        seed += threads;
                    }
                    (failures, total)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    let mut total = bkv_fleet::sim::SimReport::default();
    for (f, r) in results {
        failures.extend(f);
        total.absorb(&r);
    }
    (failures, total)
}

#[test]
fn simulation_seeds_hold_every_invariant() {
    if let Some(seed) = env("BKV_SIM_SEED") {
        match run_seed(seed) {
            Ok(r) => {
                println!("seed {seed} passed: {r:?}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let count = env("BKV_SIM_SEEDS").unwrap_or(500);
    let first = env("BKV_SIM_FIRST").unwrap_or(0);
    let start = std::time::Instant::now();
    let (failures, total) = run_range(first, count);
    println!(
        "{count} seeds from {first} in {:.1} s: {} KE2s, {} keys released, {} registrations, {} erasures, {} crashes, {} wipes, {} rollbacks, {} disk edits detected, {} starts on changed record rows, {} record resets, {} late replays, {} forged and {} replayed messages dropped, {} snapshots ({} sent from a host), {:.2} commands per entry on average",
        start.elapsed().as_secs_f64(),
        total.ke2s,
        total.releases,
        total.registrations,
        total.erasures,
        total.crashes,
        total.wipes,
        total.rollbacks,
        total.edits_detected,
        total.record_edits,
        total.record_resets,
        total.late_replays,
        total.forgeries_dropped,
        total.replays_dropped,
        total.snapshots,
        total.snapshots_sent,
        total.commands_per_entry / count.max(1) as f64,
    );
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed",
        failures.len()
    );
    // The runs exercised what they claim to.
    assert!(total.ke2s > 0 && total.releases > 0 && total.erasures > 0);
    assert!(total.crashes > 0 && total.wipes > 0 && total.rollbacks > 0);
    assert!(total.forgeries_dropped > 0 && total.replays_dropped > 0);
    assert!(total.edits_detected > 0 && total.late_replays > 0);
    assert!(total.record_edits > 0 && total.record_resets > 0 && total.snapshots_sent > 0);
}

#[test]
fn a_seed_replays_exactly() {
    let a = run_seed(7).unwrap();
    let b = run_seed(7).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

/// Seeds the long run found failing, once fixed, run in every `cargo test`.
///
/// * 2475: the host made up a log row on a stopped node whose log was
///   empty, then deleted it. The node started on what was again its own
///   disk, and the oracle called that an unnoticed edit: it told "no log
///   table" from "an empty log table", which no node can see.
#[test]
fn seeds_the_long_run_found_pass() {
    for seed in [2475] {
        if let Err(e) = run_seed(seed) {
            panic!("{e}");
        }
    }
}

/// The simulation can fail: with the rule broken (KE2 answered before the
/// charge commits), some seed of the CI range breaks the guess limit, and
/// the oracle names it.
#[test]
fn the_simulation_catches_a_broken_guess_rule() {
    let mut caught = None;
    for seed in 0..2_000 {
        let cfg = SimConfig {
            broken_rule: true,
            ..SimConfig::for_seed(seed)
        };
        if let Err(e) = Sim::new(seed, cfg).and_then(Sim::run) {
            caught = Some((seed, e));
            break;
        }
    }
    let (seed, e) = caught.expect("the broken rule went unnoticed for 2,000 seeds");
    println!("broken rule caught at seed {seed}: {e}");
    assert!(e.contains("guess limit broken"), "{e}");
}

/// The freshness oracle can fail: without the read barrier, a follower
/// that has not yet applied a confirmed registration answers its owner's
/// KE1 from the fake-record path, and the right code fails; some seed of
/// the CI range shows it, and the oracle names it.
#[test]
fn the_simulation_catches_a_stale_fake_record_answer() {
    let mut caught = None;
    for seed in 0..2_000 {
        let cfg = SimConfig {
            no_read_barrier: true,
            ..SimConfig::for_seed(seed)
        };
        if let Err(e) = Sim::new(seed, cfg).and_then(Sim::run) {
            caught = Some((seed, e));
            break;
        }
    }
    let (seed, e) = caught.expect("stale fake-record answers went unnoticed for 2,000 seeds");
    println!("stale answer caught at seed {seed}: {e}");
    assert!(e.contains("from the fake-record path"), "{e}");
}

/// A script makes the host's decisions (the fuzz target `fleet_sim` drives
/// the fleet this way): a script that only ever picks the tick step starts
/// no client, whatever the seed's RNG would have done; a script replays
/// exactly; and a script that runs out hands over to the seed's RNG.
#[test]
fn a_script_makes_the_hosts_decisions() {
    let seed = 7;
    let cfg = || SimConfig {
        steps: 60,
        ..SimConfig::for_seed(seed)
    };
    // Step roll 50..=74 is "tick every node": 60 steps of ticks only, then
    // the heal (whose delivery picks also read the script: 0, the first).
    let ticks = Sim::new(seed, cfg())
        .unwrap()
        .with_script(vec![50; 4_000])
        .run()
        .unwrap();
    assert_eq!(ticks.registrations, 0);
    assert_eq!(ticks.ke2s, 0);
    let unscripted = Sim::new(seed, cfg()).unwrap().run().unwrap();
    assert!(unscripted.registrations > 0 || unscripted.ke2s > 0);
    let script: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
    let a = Sim::new(seed, cfg())
        .unwrap()
        .with_script(script.clone())
        .run()
        .unwrap();
    let b = Sim::new(seed, cfg())
        .unwrap()
        .with_script(script)
        .run()
        .unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

/// SPEC.md §14.1, §24.2: a realm of two groups, each a simulated fleet
/// with its own range, secrets, faults and guess-limit oracle; the realm
/// routes each honest client to the group that owns its record id and
/// misroutes some requests to the other group, which must refuse them
/// at once. Every group keeps the guess limit, no node commits or answers
/// for another group's id, and every honest client recovers from its own
/// group. `BKV_SIM_REALM_SEEDS=N` runs N seeds (default 12).
#[test]
fn a_two_group_realm_keeps_the_guess_limit_per_group_and_refuses_other_groups_records() {
    use bkv_fleet::realm_sim::run_realm_seed;
    let seeds = env("BKV_SIM_REALM_SEEDS").unwrap_or(12);
    let first = env("BKV_SIM_FIRST").unwrap_or(0);
    let mut per_group = [(0u64, 0u64); 2];
    let mut foreign = 0;
    for seed in first..first + seeds {
        let reports = run_realm_seed(seed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reports.len(), 2);
        for (g, r) in reports.iter().enumerate() {
            per_group[g].0 += r.registrations;
            per_group[g].1 += r.ke2s;
            foreign += r.foreign_refused;
        }
    }
    println!("realm: per group (registrations, KE2s) {per_group:?}, foreign refused {foreign}");
    assert!(per_group.iter().all(|&(reg, ke2)| reg > 0 && ke2 > 0));
    assert!(foreign > 0);
}

/// The realm's range check can fail: with nodes that serve every id
/// whatever their group's range (feature `broken-rule`), a request for the
/// other group's record is answered instead of refused, and the realm run
/// names it.
#[test]
fn the_realm_simulation_catches_a_group_that_serves_another_groups_records() {
    use bkv_fleet::realm_sim::RealmSim;
    let mut caught = None;
    for seed in 0..50 {
        let cfg = SimConfig {
            ignore_range: true,
            ..SimConfig::for_seed(seed)
        };
        if let Err(e) = RealmSim::new(seed, 2, cfg).and_then(RealmSim::run) {
            caught = Some((seed, e));
            break;
        }
    }
    let (seed, e) = caught.expect("a group serving foreign ids went unnoticed for 50 seeds");
    println!("range ignored, caught at seed {seed}: {e}");
    assert!(e.contains("did not refuse another group's record"), "{e}");
}
