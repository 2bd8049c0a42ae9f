//! Deterministic simulation of a realm of several fleets (SPEC.md §14.1,
//! §24.2): one [`Sim`] per group, each owning a disjoint range of record
//! ids, each with its own fleet secrets, nodes, host and guess-limit
//! oracle.
//!
//! The realm makes the honest clients: it draws record ids at random and
//! routes each to the group whose range holds it (as `bkv register`
//! routes by the realm file), so every group serves records of its own
//! range only. A seeded scheduler steps the groups in turn (each step is a
//! step of [`Sim::step`], with every fault the host may inject), and now
//! and then sends a group a request for a record of another group, which
//! every node must refuse at once without charging anything
//! ([`Sim::foreign_request`]). Every group's oracle also fails the run if
//! any of its nodes commits or answers for an id outside its range. At the
//! end each group is healed and checked as a single fleet is ([`Sim::finish`]):
//! every honest client recovers its key from its own group, and no record
//! generation got more KE2s than the limit between successes.

// The realm indexes its own vector of groups, sized at construction.
#![allow(clippy::indexing_slicing)]

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use backup_key_vault::{RecordId, RecordRange};

use crate::sim::{Sim, SimConfig, SimReport};

/// A realm of `groups.len()` simulated fleets.
pub struct RealmSim {
    seed: u64,
    rng: ChaCha20Rng,
    steps: usize,
    /// Each group's range, its fleet, and the records of its clients.
    groups: Vec<(RecordRange, Sim, Vec<RecordId>)>,
}

impl RealmSim {
    /// A realm of `groups` fleets (at least 2) splitting the id space
    /// equally (as `bkv fleet up --groups` does), each configured like
    /// `cfg` (its `honest` clients per group) with a seed of its own.
    pub fn new(seed: u64, groups: u64, cfg: SimConfig) -> Result<Self, String> {
        if groups < 2 {
            return Err(format!("a realm has at least 2 groups, not {groups}"));
        }
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x7265_616c_6d00_0000);
        let ranges: Vec<RecordRange> = (0..groups)
            .map(|g| RecordRange::split(g, groups).ok_or(format!("no range for group {g}")))
            .collect::<Result<_, _>>()?;
        // Route record ids drawn at random until every group has its
        // clients: a record goes to the group whose range holds it.
        let mut records: Vec<Vec<RecordId>> = vec![Vec::new(); ranges.len()];
        while records.iter().any(|r| r.len() < cfg.honest) {
            let mut id = [0u8; 32];
            rng.fill_bytes(&mut id);
            let id = RecordId(id);
            let owner = ranges
                .iter()
                .position(|r| r.contains(&id))
                .ok_or("the ranges do not cover the id space")?;
            if records[owner].len() < cfg.honest {
                records[owner].push(id);
            }
        }
        let mut built = Vec::new();
        for (g, (range, ids)) in ranges.into_iter().zip(records).enumerate() {
            let group_seed = seed.wrapping_mul(1_000).wrapping_add(g as u64);
            let sim = Sim::new_group(group_seed, cfg.clone(), range, ids.clone())
                .map_err(|e| format!("realm seed {seed}, group {g}: {e}"))?;
            built.push((range, sim, ids));
        }
        Ok(Self {
            seed,
            rng,
            steps: cfg.steps,
            groups: built,
        })
    }

    /// Runs the realm: `steps` steps per group, interleaved at random, with
    /// misrouted requests between them; then each group's final checks.
    /// Returns each group's report.
    pub fn run(mut self) -> Result<Vec<SimReport>, String> {
        let n = self.groups.len();
        let seed = self.seed;
        let fail = |g: usize, e: String| format!("realm seed {seed}, group {g}: {e}");
        for _ in 0..self.steps * n {
            let g = (self.rng.next_u64() % n as u64) as usize;
            self.groups[g].1.step().map_err(|e| fail(g, e))?;
            if self.rng.next_u64().is_multiple_of(16) {
                // A client of group h, misrouted to group g.
                let h = (g + 1 + (self.rng.next_u64() % (n as u64 - 1)) as usize) % n;
                let ids = &self.groups[h].2;
                if ids.is_empty() {
                    continue;
                }
                let id = ids[(self.rng.next_u64() % ids.len() as u64) as usize];
                self.groups[g]
                    .1
                    .foreign_request(id)
                    .map_err(|e| fail(g, e))?;
            }
        }
        let mut reports = Vec::new();
        for (g, (_, sim, _)) in self.groups.into_iter().enumerate() {
            reports.push(sim.finish().map_err(|e| fail(g, e))?);
        }
        Ok(reports)
    }
}

/// Runs a 2-group realm for `seed`, each group configured as
/// [`SimConfig::for_seed`] says.
pub fn run_realm_seed(seed: u64) -> Result<Vec<SimReport>, String> {
    RealmSim::new(seed, 2, SimConfig::for_seed(seed))?.run()
}
