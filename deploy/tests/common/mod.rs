//! A vendor, HSMs, participants and an auditor for the deployment tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use backup_key_vault::bundle::OperatorSigningKey;
use bkv_auditor::Auditor;
use bkv_deploy::ceremony::{self, CeremonyHsm, CeremonyOutcome, CeremonyPlan, ParticipantKey};
use bkv_deploy::evidence::{Name, QuorumPolicy};
use bkv_deploy::sim::{SimulatedHsm, SimulatedVendor, Validity};
use bkv_deploy::{Verifier, X509StatementVerifier};

pub const DAY_MS: u64 = 86_400_000;
pub const MEASUREMENT: [u8; 32] = [0x4d; 32];

pub fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

pub struct World {
    pub now: u64,
    pub vendor: SimulatedVendor,
    pub hsms: Vec<SimulatedHsm>,
    pub sites: Vec<Name>,
    pub participants: Vec<ParticipantKey>,
    pub auditor: Auditor,
    pub auditor_dir: tempfile::TempDir,
    pub operator: OperatorSigningKey,
    pub plan: CeremonyPlan,
}

/// `sites[i]` is the site of HSM `i`.
pub fn world(sites: &[&str], quorum: QuorumPolicy) -> World {
    let now = bkv_deploy::now_ms();
    let vendor = SimulatedVendor::new(
        "Acme",
        Validity {
            not_before_ms: now - 1000 * DAY_MS,
            not_after_ms: now + 7300 * DAY_MS,
        },
    )
    .unwrap();
    let hsms = (0..sites.len())
        .map(|i| {
            vendor
                .manufacture(&format!("hsm-{}", i + 1), device_validity(now), MEASUREMENT)
                .unwrap()
        })
        .collect();
    let auditor_dir = tempfile::tempdir().unwrap();
    let auditor = Auditor::open(auditor_dir.path()).unwrap();
    World {
        now,
        vendor,
        hsms,
        sites: sites.iter().map(|s| name(s)).collect(),
        participants: ["alice", "bob", "carol"]
            .iter()
            .map(|n| ParticipantKey::generate(name(n)))
            .collect(),
        auditor,
        auditor_dir,
        operator: OperatorSigningKey::generate(&mut rand::rngs::OsRng),
        plan: CeremonyPlan {
            fleet_id: name("fleet-eu-1"),
            namespace: name(backup_key_vault::bundle::DEFAULT_NAMESPACE),
            time_ms: now,
            not_before_ms: now - DAY_MS,
            not_after_ms: now + 365 * DAY_MS,
            measurement: MEASUREMENT,
            quorum,
            group: None,
        },
    }
}

pub fn three_sites() -> World {
    world(
        &["eu-west-a", "eu-west-b", "eu-central"],
        QuorumPolicy {
            min_hsms: 3,
            min_sites: 2,
        },
    )
}

impl World {
    pub fn ceremony(&mut self) -> CeremonyOutcome {
        let root = X509StatementVerifier::new(self.vendor.root_der().to_vec()).unwrap();
        let mut hsms: Vec<CeremonyHsm<'_>> = self
            .hsms
            .iter_mut()
            .zip(&self.sites)
            .map(|(hsm, site)| CeremonyHsm {
                hsm,
                site: site.clone(),
            })
            .collect();
        ceremony::run(
            &self.plan,
            &mut hsms,
            &self.participants,
            &root,
            &mut self.auditor,
            &self.operator,
        )
        .unwrap()
    }

    pub fn verifier(&self) -> Verifier {
        self.verifier_without_operator_pin()
            .pin_operator_key(self.operator.public_key())
    }

    /// [`Self::verifier`] without the operator key pinned.
    pub fn verifier_without_operator_pin(&self) -> Verifier {
        Verifier::new(
            X509StatementVerifier::new(self.vendor.root_der().to_vec()).unwrap(),
            self.now,
        )
        .pin_auditor_key(self.auditor.public_key())
    }
}

/// From a hundred days ago to ten years ahead.
pub fn device_validity(now: u64) -> Validity {
    Validity {
        not_before_ms: now - 100 * DAY_MS,
        not_after_ms: now + 3650 * DAY_MS,
    }
}
