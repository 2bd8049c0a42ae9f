//! Recoveries per second: one vault, a 3-node and a 5-node fleet, in one
//! process over a simulated network (no sleeps). Only the servers' work is
//! timed (every node's: Raft, sealing and checking what the host stores,
//! an in-memory host, message sealing, applying, OPAQUE); the clients'
//! work is not. The 5-node fleet also runs with the host's rows in clear
//! and unchecked (as before SPEC revision 6), alternating with the sealed
//! one three times in the same run, so the cost of authenticating the
//! host's storage is printed as a ratio (the median of the three). Times
//! are the thread's CPU time. Run with
//! `cargo bench -p bkv-fleet`; `BKV_BENCH_CLIENTS` and `BKV_BENCH_ROUNDS`
//! change the load.

use std::time::Duration;

// Server time is this thread's CPU time, not wall-clock time: the figures
// and their ratios then hold on a shared, loaded machine too.
use cpu_time::ThreadTime as Instant;

use backup_key_vault::client::{AwaitingKeyRelease, ClientConfig, Recovery, Registration};
use backup_key_vault::vault::{MemoryStore, Vault, VaultPolicy};
use backup_key_vault::wire::{KeyRelease, RecoveryResponse};
use backup_key_vault::{FleetSecrets, RecordId, RecoveryCode};
use bkv_fleet::platform::{MemHost, MemNvram};
use bkv_fleet::{Node, NodeConfig};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Fleet {
    nodes: Vec<Node>,
    rngs: Vec<ChaCha20Rng>,
    server: Duration,
    now: u64,
    entries_before: u64,
    commands_before: u64,
}

impl Fleet {
    fn new(
        n: usize,
        secrets: &FleetSecrets,
        policy: &VaultPolicy,
        sealed: bool,
        nvram: bool,
    ) -> Self {
        let members: Vec<u64> = (1..=n as u64).collect();
        let mut rngs: Vec<ChaCha20Rng> = (0..n)
            .map(|i| ChaCha20Rng::seed_from_u64(100 + i as u64))
            .collect();
        let nodes = (0..n)
            .map(|i| {
                let mut c = NodeConfig::new(i as u64 + 1, members.clone(), policy.clone());
                c.election_tick = 10 + 3 * i;
                c.snapshot_interval = 10_000;
                c.unsealed_disk = !sealed;
                let nvram =
                    nvram.then(|| Box::new(MemNvram::new()) as Box<dyn bkv_fleet::platform::Nvram>);
                Node::open(c, secrets, Box::new(MemHost::new()), nvram, &mut rngs[i]).expect("node")
            })
            .collect();
        let mut fleet = Self {
            nodes,
            rngs,
            server: Duration::ZERO,
            now: 0,
            entries_before: 0,
            commands_before: 0,
        };
        for _ in 0..200 {
            fleet.tick();
            fleet.settle(&mut Vec::new());
            if fleet.nodes.iter().any(Node::is_leader) && fleet.nodes.iter().all(Node::is_serving) {
                break;
            }
        }
        fleet
    }

    fn tick(&mut self) {
        self.now += 10;
        for (node, rng) in self.nodes.iter_mut().zip(&mut self.rngs) {
            node.tick(rng, self.now);
        }
    }

    /// Delivers every message until the fleet is quiet; replies are kept.
    fn settle(&mut self, replies: &mut Vec<(u64, Vec<u8>)>) {
        let start = Instant::now();
        loop {
            let mut messages = Vec::new();
            for (node, rng) in self.nodes.iter_mut().zip(&mut self.rngs) {
                node.drive(rng, self.now);
                let out = node.take_output();
                messages.extend(out.messages);
                replies.extend(out.replies);
            }
            if messages.is_empty() {
                break;
            }
            for (to, bytes) in messages {
                let i = (to - 1) as usize;
                self.nodes[i].receive(&mut self.rngs[i], &bytes);
            }
        }
        self.server += start.elapsed();
    }

    /// Sends one request per client (client i to node i mod n), settles,
    /// and returns the answers in client order.
    fn round(&mut self, requests: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut answers: Vec<Option<Vec<u8>>> = vec![None; requests.len()];
        let start = Instant::now();
        let n = self.nodes.len();
        for (i, r) in requests.iter().enumerate() {
            if let Some(a) =
                self.nodes[i % n].client_request(&mut self.rngs[i % n], self.now, i as u64, r)
            {
                answers[i] = Some(a);
            }
        }
        self.server += start.elapsed();
        let mut replies = Vec::new();
        for _ in 0..100 {
            self.settle(&mut replies);
            for (tag, bytes) in replies.drain(..) {
                answers[tag as usize] = Some(bytes);
            }
            if answers.iter().all(Option::is_some) {
                break;
            }
            self.tick();
        }
        answers.into_iter().map(Option::unwrap_or_default).collect()
    }

    fn batching(&self) -> f64 {
        let (c, e) = self.nodes.iter().fold((0, 0), |(c, e), n| {
            let k = n.counters();
            (c + k.commands_proposed, e + k.entries_proposed)
        });
        (c - self.commands_before) as f64 / (e - self.entries_before).max(1) as f64
    }
}

// One value per benchmark run: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Server {
    Vault(Box<Vault<MemoryStore>>, ChaCha20Rng, Duration),
    Fleet(Fleet),
}

impl Server {
    fn round(&mut self, requests: &[Vec<u8>]) -> Vec<Vec<u8>> {
        match self {
            Self::Vault(v, rng, t) => {
                let start = Instant::now();
                let out = requests.iter().map(|r| v.handle(rng, 0, r)).collect();
                *t += start.elapsed();
                out
            }
            Self::Fleet(f) => f.round(requests),
        }
    }
    fn server_time(&self) -> Duration {
        match self {
            Self::Vault(_, _, t) => *t,
            Self::Fleet(f) => f.server,
        }
    }
    fn reset_time(&mut self) {
        match self {
            Self::Vault(_, _, t) => *t = Duration::ZERO,
            Self::Fleet(f) => {
                f.server = Duration::ZERO;
                let (c, e) = f.nodes.iter().fold((0, 0), |(c, e), n| {
                    let k = n.counters();
                    (c + k.commands_proposed, e + k.entries_proposed)
                });
                f.commands_before = c;
                f.entries_before = e;
            }
        }
    }
}

/// Registers `clients` records, then runs `rounds` rounds in which every
/// client recovers once; returns recoveries per second of server time.
fn measure(
    mut server: Server,
    clients: usize,
    rounds: usize,
    seed: u64,
    secrets: &FleetSecrets,
) -> (f64, f64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let config = ClientConfig::insecure_test_only(secrets.public_keys());
    let code = RecoveryCode::new(b"correct horse").expect("code");
    let ids: Vec<RecordId> = (0..clients)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            RecordId(id)
        })
        .collect();
    let (states, requests): (Vec<_>, Vec<_>) = ids
        .iter()
        .map(|id| {
            let (s, r) = Registration::start(&mut rng, &config, *id, &code, None).expect("start");
            (s, r.to_bytes())
        })
        .unzip();
    let responses = server.round(&requests);
    let (states, uploads): (Vec<_>, Vec<_>) = states
        .into_iter()
        .zip(&responses)
        .map(|(s, r)| {
            let r = backup_key_vault::wire::RegistrationResponse::from_bytes(r).expect("response");
            let (s, u) = s.finish(&mut rng, &r, None).expect("finish");
            (s, u.to_bytes())
        })
        .unzip();
    let confirmations = server.round(&uploads);
    for (s, c) in states.into_iter().zip(&confirmations) {
        let c =
            backup_key_vault::wire::RegistrationConfirmation::from_bytes(c).expect("confirmation");
        s.finish(&c).expect("registered");
    }
    server.reset_time();
    let mut done = 0usize;
    for _ in 0..rounds {
        let (states, ke1s): (Vec<_>, Vec<_>) = ids
            .iter()
            .map(|id| {
                let (s, k) = Recovery::start(&mut rng, &config, *id, &code).expect("ke1");
                (s, k.to_bytes())
            })
            .unzip();
        let ke2s = server.round(&ke1s);
        let (states, ke3s): (Vec<AwaitingKeyRelease>, Vec<_>) = states
            .into_iter()
            .zip(&ke2s)
            .map(|(s, k)| {
                let k = RecoveryResponse::from_bytes(k).expect("ke2");
                let (s, k3) = s.finish(&mut rng, &k).expect("ke3");
                (s, k3.to_bytes())
            })
            .unzip();
        let releases = server.round(&ke3s);
        for (s, r) in states.into_iter().zip(&releases) {
            let r = KeyRelease::from_bytes(r).expect("release");
            s.finish(&r).expect("recovered");
            done += 1;
        }
    }
    let rate = done as f64 / server.server_time().as_secs_f64();
    let batching = match &server {
        Server::Fleet(f) => f.batching(),
        Server::Vault(..) => 1.0,
    };
    (rate, batching)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let clients = env("BKV_BENCH_CLIENTS", 64);
    let rounds = env("BKV_BENCH_ROUNDS", 5);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let secrets = FleetSecrets::generate(&mut rng);
    let policy = VaultPolicy::insecure_test_only();
    let vault = Vault::new(&secrets, policy.clone(), MemoryStore::new()).expect("vault");
    let (single, _) = measure(
        Server::Vault(
            Box::new(vault),
            ChaCha20Rng::seed_from_u64(2),
            Duration::ZERO,
        ),
        clients,
        rounds,
        3,
        &secrets,
    );
    println!("{clients} concurrent clients, {rounds} recoveries each; server time only");
    println!("one vault (memory store):  {single:>8.0} recoveries/s");
    let mut ratios = Vec::new();
    let mut sealed_rate = 0.0;
    let runs = [
        (3, true, false, "sealed disk"),
        (5, true, true, "sealed disk + NVRAM"),
        (5, true, false, "sealed disk"),
        (5, false, false, "disk in clear, unchecked"),
        (5, true, false, "sealed disk"),
        (5, false, false, "disk in clear, unchecked"),
        (5, true, false, "sealed disk"),
        (5, false, false, "disk in clear, unchecked"),
    ];
    for (n, sealed, nvram, label) in runs {
        let fleet = Fleet::new(n, &secrets, &policy, sealed, nvram);
        let (rate, batching) = measure(Server::Fleet(fleet), clients, rounds, 3, &secrets);
        println!(
            "{n}-node fleet, {label} (all nodes' work, one thread): {rate:>8.0} recoveries/s = {:.0}% of one vault; {batching:.1} commands per Raft entry",
            100.0 * rate / single
        );
        if n == 5 && !nvram {
            if sealed {
                sealed_rate = rate;
            } else {
                ratios.push(sealed_rate / rate);
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(median) = ratios.get(ratios.len() / 2) {
        println!(
            "authenticated storage keeps {:.1}% of the 5-node fleet's recoveries per second (median of {} pairs {:?}; target: at least 90%)",
            100.0 * median,
            ratios.len(),
            ratios
                .iter()
                .map(|r| format!("{:.1}%", 100.0 * r))
                .collect::<Vec<_>>()
        );
    }
}
