//! `bkv node`, `bkv fleet up`, `bkv register`, `bkv recover`: a fleet on
//! loopback (SPEC.md §23).
//!
//! A local fleet directory holds `fleet.secrets` (the fleet secrets, hex:
//! a stand-in for the sealed per-HSM secrets of the key ceremony, for trying
//! the fleet out only), `fleet.public` (the public keys clients pin, hex) and
//! `endpoints` (one client URL per node, in node order).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitCode};
use std::time::Duration;

use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::vault::VaultPolicy;
use backup_key_vault::wire::{
    KeyRelease, RecoveryResponse, RegistrationConfirmation, RegistrationResponse, Rejection,
};
use backup_key_vault::{FleetPublicKeys, FleetSecrets, OsRng, RecordId, RecoveryCode};
use bkv_fleet::net::{run_node, FleetClient, NodeOptions};
use clap::Args;
use sha2::{Digest, Sha256};

/// `bkv node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// This node's id (1-based).
    #[arg(long)]
    id: u64,
    /// Every member's peer address, this node's included: `1=127.0.0.1:7101,2=...`.
    #[arg(long)]
    peers: String,
    /// Directory of the node's database.
    #[arg(long)]
    data: PathBuf,
    /// Client HTTP address (loopback).
    #[arg(long)]
    listen: SocketAddr,
    /// The fleet secrets file (hex).
    #[arg(long)]
    secrets: PathBuf,
    /// Tiny Argon2 parameters (tests and demos only).
    #[arg(long)]
    insecure_fast: bool,
    /// Milliseconds per tick.
    #[arg(long, default_value_t = 20)]
    tick_ms: u64,
    /// A file standing in for the HSM's tamper-proof NVRAM (SPEC.md §22.4).
    /// NOT tamper-proof: whoever can write it can roll it back together
    /// with the disk. Without it, every start goes through the recovery
    /// gate of §22.3.
    #[arg(long)]
    nvram: Option<PathBuf>,
}

/// `bkv fleet up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    nodes: u64,
    /// The fleet directory (created; secrets generated if absent).
    #[arg(long, default_value = "bkv-fleet")]
    dir: PathBuf,
    /// Peer ports are base+1.., client ports base+101..
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
    /// Tiny Argon2 parameters (tests and demos only).
    #[arg(long)]
    insecure_fast: bool,
}

/// `bkv register` and `bkv recover`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The fleet directory (`fleet.public`, `endpoints`).
    #[arg(long, default_value = "bkv-fleet")]
    fleet: PathBuf,
    /// The record's name (its id is SHA-256 of it).
    #[arg(long)]
    record: String,
    /// The recovery code.
    #[arg(long)]
    code: String,
    /// Talk to this node (1-based); default: the first that answers.
    #[arg(long)]
    node: Option<usize>,
    /// Accept tiny Argon2 parameters (tests and demos only).
    #[arg(long)]
    insecure_fast: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return Err("odd hex length".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad hex".to_string())
        })
        .collect()
}

fn policy(insecure_fast: bool) -> VaultPolicy {
    if insecure_fast {
        VaultPolicy::insecure_test_only()
    } else {
        VaultPolicy::default()
    }
}

fn parse_peers(s: &str) -> Result<BTreeMap<u64, SocketAddr>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (id, addr) = p
                .split_once('=')
                .ok_or(format!("peer {p}: want id=host:port"))?;
            let id = id.parse().map_err(|_| format!("peer id {id}"))?;
            let addr: SocketAddr = addr.parse().map_err(|_| format!("peer address {addr}"))?;
            if !addr.ip().is_loopback() {
                return Err(format!("{addr}: this front is for loopback only"));
            }
            Ok((id, addr))
        })
        .collect()
}

fn read_secrets(path: &Path) -> Result<FleetSecrets, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = zeroize::Zeroizing::new(unhex(&text)?);
    FleetSecrets::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs one member until killed.
pub fn node(args: &NodeArgs) -> ExitCode {
    let run = || -> Result<(), String> {
        let secrets = read_secrets(&args.secrets)?;
        if !args.listen.ip().is_loopback() {
            return Err("--listen: loopback only".into());
        }
        let options = NodeOptions {
            id: args.id,
            peers: parse_peers(&args.peers)?,
            listen: args.listen,
            data_dir: args.data.clone(),
            policy: policy(args.insecure_fast),
            tick: Duration::from_millis(args.tick_ms.max(1)),
            nvram: args.nvram.clone(),
        };
        if let Some(path) = &args.nvram {
            eprintln!(
                "node {}: NVRAM stand-in {} is an ordinary file, NOT tamper-proof (SPEC.md §22.4)",
                args.id,
                path.display()
            );
        }
        eprintln!("node {} serving clients on http://{}", args.id, args.listen);
        run_node(options, &secrets).map_err(|e| e.to_string())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bkv node: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a fleet directory for `n` nodes (secrets generated if absent) and
/// returns each node's `bkv node` arguments.
pub fn prepare_fleet(
    dir: &Path,
    n: u64,
    base_port: u16,
    insecure_fast: bool,
) -> Result<Vec<Vec<String>>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let secrets_path = dir.join("fleet.secrets");
    let secrets = if secrets_path.exists() {
        read_secrets(&secrets_path)?
    } else {
        let s = FleetSecrets::generate(&mut OsRng);
        std::fs::write(&secrets_path, hex(&s.to_bytes()[..])).map_err(|e| e.to_string())?;
        s
    };
    let keys = secrets.public_keys();
    let mut public = keys.key_exchange.to_vec();
    public.extend_from_slice(&keys.transport);
    std::fs::write(dir.join("fleet.public"), hex(&public)).map_err(|e| e.to_string())?;
    let port = |offset: u64| -> Result<u16, String> {
        u16::try_from(u64::from(base_port) + offset).map_err(|_| "port out of range".to_string())
    };
    let mut peers = Vec::new();
    let mut endpoints = String::new();
    for id in 1..=n {
        peers.push(format!("{id}=127.0.0.1:{}", port(id)?));
        endpoints.push_str(&format!("http://127.0.0.1:{}\n", port(100 + id)?));
    }
    std::fs::write(dir.join("endpoints"), endpoints).map_err(|e| e.to_string())?;
    let peers = peers.join(",");
    (1..=n)
        .map(|id| {
            let mut a = vec![
                "node".to_string(),
                "--id".into(),
                id.to_string(),
                "--peers".into(),
                peers.clone(),
                "--data".into(),
                dir.join(format!("node-{id}")).display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", port(100 + id)?),
                "--secrets".into(),
                secrets_path.display().to_string(),
            ];
            if insecure_fast {
                a.push("--insecure-fast".into());
            }
            Ok(a)
        })
        .collect()
}

/// Starts a local fleet of processes and waits for them.
pub fn up(args: &UpArgs) -> ExitCode {
    let run =
        || -> Result<(), String> {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let nodes = prepare_fleet(&args.dir, args.nodes, args.base_port, args.insecure_fast)?;
            let mut children: Vec<Child> = Vec::new();
            for a in &nodes {
                children.push(
                    Process::new(&exe)
                        .args(a)
                        .spawn()
                        .map_err(|e| e.to_string())?,
                );
            }
            println!(
            "fleet of {} nodes up; clients: bkv register --fleet {} --record NAME --code CODE{}",
            args.nodes,
            args.dir.display(),
            if args.insecure_fast { " --insecure-fast" } else { "" }
        );
            for mut c in children {
                let _ = c.wait();
            }
            Ok(())
        };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bkv fleet up: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Target {
    config: ClientConfig,
    endpoints: Vec<String>,
    record_id: RecordId,
    code: RecoveryCode,
}

fn target(args: &ClientArgs) -> Result<Target, String> {
    let public = unhex(
        &std::fs::read_to_string(args.fleet.join("fleet.public")).map_err(|e| e.to_string())?,
    )?;
    let (ke, tr) = public
        .split_at_checked(32)
        .ok_or("fleet.public: 64 bytes")?;
    let keys = FleetPublicKeys {
        key_exchange: ke.try_into().map_err(|_| "fleet.public: 64 bytes")?,
        transport: tr.try_into().map_err(|_| "fleet.public: 64 bytes")?,
    };
    let config = if args.insecure_fast {
        ClientConfig::insecure_test_only(keys)
    } else {
        ClientConfig::new(keys)
    };
    let endpoints: Vec<String> = std::fs::read_to_string(args.fleet.join("endpoints"))
        .map_err(|e| e.to_string())?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let endpoints = match args.node {
        Some(k) => vec![endpoints
            .get(k.wrapping_sub(1))
            .ok_or(format!("no node {k}"))?
            .clone()],
        None => endpoints,
    };
    let record_id = RecordId(Sha256::digest(args.record.as_bytes()).into());
    let code = RecoveryCode::new(args.code.as_bytes()).map_err(|e| e.to_string())?;
    Ok(Target {
        config,
        endpoints,
        record_id,
        code,
    })
}

/// Sends the first message of an exchange to the first node that answers
/// (not with Unavailable); returns that node and its answer.
fn first_answer(
    client: &FleetClient,
    endpoints: &[String],
    request: &[u8],
) -> Result<(String, Vec<u8>), String> {
    let mut last = String::from("no node answered");
    for e in endpoints {
        match client.call(e, request) {
            Ok(a) => match Rejection::from_bytes(&a) {
                Ok(r) => last = format!("{e}: refused ({:?})", r.code),
                Err(_) => return Ok((e.clone(), a)),
            },
            Err(err) => last = format!("{e}: {err}"),
        }
    }
    Err(last)
}

fn refusal(answer: &[u8]) -> String {
    match Rejection::from_bytes(answer) {
        Ok(r) => format!("refused ({:?})", r.code),
        Err(e) => format!("unexpected answer: {e}"),
    }
}

/// `bkv register`.
pub fn register(args: &ClientArgs) -> ExitCode {
    let run = || -> Result<(), String> {
        let t = target(args)?;
        let client = FleetClient::new();
        let (state, request) =
            Registration::start(&mut OsRng, &t.config, t.record_id, &t.code, None)
                .map_err(|e| e.to_string())?;
        let (node, answer) = first_answer(&client, &t.endpoints, &request.to_bytes())?;
        let response = RegistrationResponse::from_bytes(&answer).map_err(|_| refusal(&answer))?;
        let (state, upload) = state
            .finish(&mut OsRng, &response, None)
            .map_err(|e| e.to_string())?;
        let answer = client
            .call(&node, &upload.to_bytes())
            .map_err(|e| e.to_string())?;
        let confirmation =
            RegistrationConfirmation::from_bytes(&answer).map_err(|_| refusal(&answer))?;
        let registered = state.finish(&confirmation).map_err(|e| e.to_string())?;
        println!(
            "registered via {node}: generation {}",
            registered.generation
        );
        println!("backup key {}", hex(registered.backup_key.expose_secret()));
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bkv register: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `bkv recover`: KE1 to a node, KE3 to the same node (its pending session
/// lives there, SPEC.md §20.2).
pub fn recover(args: &ClientArgs) -> ExitCode {
    let run = || -> Result<(), String> {
        let t = target(args)?;
        let client = FleetClient::new();
        let (state, ke1) = Recovery::start(&mut OsRng, &t.config, t.record_id, &t.code)
            .map_err(|e| e.to_string())?;
        let (node, answer) = first_answer(&client, &t.endpoints, &ke1.to_bytes())?;
        let ke2 = RecoveryResponse::from_bytes(&answer).map_err(|_| refusal(&answer))?;
        println!("attempts remaining {} (via {node})", ke2.attempts_remaining);
        let (state, ke3) = state
            .finish(&mut OsRng, &ke2)
            .map_err(|e| format!("recovery failed: {e}"))?;
        let answer = client
            .call(&node, &ke3.to_bytes())
            .map_err(|e| e.to_string())?;
        let release = KeyRelease::from_bytes(&answer).map_err(|_| refusal(&answer))?;
        let recovered = state.finish(&release).map_err(|e| e.to_string())?;
        println!("backup key {}", hex(recovered.backup_key.expose_secret()));
        // Sealed in the release: unlike "attempts remaining" above, no relay
        // can change it (SPEC.md §6.2).
        println!(
            "{}",
            crate::demo::tried_since_last_recovery(recovered.unforgiven_attempts)
        );
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bkv recover: {e}");
            ExitCode::FAILURE
        }
    }
}
