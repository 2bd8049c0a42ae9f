//! `bkv node`, `bkv fleet up`, `bkv register`, `bkv recover`: a fleet on
//! loopback (SPEC.md §23).
//!
//! A local fleet directory (mode 0700) holds `fleet.secrets` (the fleet
//! secrets, hex, mode 0600: a stand-in for the sealed per-HSM secrets of
//! the key ceremony, for trying the fleet out only), `fleet.public` (the
//! public keys clients pin, hex) and `endpoints` (one client URL per node,
//! in node order).
//!
//! The client commands move to another node only when a node is
//! unavailable (no connection, a timeout, an `Unavailable` rejection); any
//! other refusal ends the command with its own exit code ([`crate::exit`]).
//! Asking another node after `AttemptsExhausted` would make that node,
//! which holds no pending session, erase the record early.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_key_vault::bundle::{FleetKeyArtifact, TrustAnchors, VerifiedFleet};
use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::vault::VaultPolicy;
use backup_key_vault::wire::{
    BundleRequest, BundleResponse, KeyRelease, RecoveryResponse, RecoveryResponseWithBundle,
    RegistrationConfirmation, RegistrationResponse, Rejection, RejectionCode,
};
use backup_key_vault::{
    ClientError, FleetPublicKeys, FleetSecrets, OsRng, RecordId, RecordRange, RecoveryCode,
};
use bkv_fleet::net::{run_node, unix_ms, FleetClient, NodeOptions};
use bkv_fleet::FleetError;
use clap::Args;
use sha2::{Digest, Sha256};

use crate::exit::{self, Exit, Failure};
use crate::ota::{bundle_refused, ClientState, PinArgs};
use crate::secret::{self, SecretSource};

/// `bkv node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// This node's id (1-based); it must be listed in --peers.
    #[arg(long)]
    id: u64,
    /// Every member's peer address, this node's included: `1=127.0.0.1:7101,2=...`.
    /// Any addresses (one host or many): peer messages are authenticated
    /// and encrypted (SPEC.md §21). This node listens on its own entry.
    #[arg(long)]
    peers: String,
    /// Directory of the node's database (created, mode 0700).
    #[arg(long)]
    data: PathBuf,
    /// Client HTTP address, any address this host has (e.g. 127.0.0.1:7201
    /// or 192.0.2.10:7201). The client API is plain HTTP carrying
    /// end-to-end encrypted OPAQUE messages.
    #[arg(long)]
    listen: SocketAddr,
    /// The fleet secrets file (hex; refused unless only its owner can read
    /// it: `chmod 600 FILE`), as `bkv fleet up` writes it. Or --ceremony.
    #[arg(
        long,
        required_unless_present = "ceremony",
        conflicts_with = "ceremony"
    )]
    secrets: Option<PathBuf>,
    /// Run on a simulated HSM of a key ceremony (`bkv fleet ceremony
    /// --out DIR`): the HSM of --hsm opens its sealed secrets there.
    #[arg(long, value_name = "DIR", requires = "hsm")]
    ceremony: Option<PathBuf>,
    /// With --ceremony: the id of the HSM this node runs on.
    #[arg(long, value_name = "ID", requires = "ceremony")]
    hsm: Option<String>,
    /// The keys a validation bundle must verify under to be installed
    /// (`POST /v1/bundle`) and handed out (SPEC.md §16.2, §23). Without
    /// them the node hands out no bundle.
    #[command(flatten)]
    pins: PinArgs,
    /// Tiny Argon2 parameters (tests and demos only).
    #[arg(long)]
    insecure_fast: bool,
    /// Milliseconds per tick.
    #[arg(long, default_value_t = 20)]
    tick_ms: u64,
    /// The record ids this node's group owns, as `FIRST-LAST`: two 16-digit
    /// hex prefixes (the ids' first 8 bytes), inclusive (SPEC.md §14.1).
    /// Requests for other ids are refused (Rejection code 12), and a
    /// bundle naming another range is not installed. Default: every id.
    #[arg(long, value_name = "FIRST-LAST")]
    records: Option<String>,
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
    /// Number of nodes per group: odd, from 3 to 99 (SPEC.md §20).
    #[arg(long, default_value_t = 5)]
    nodes: u64,
    /// Number of groups (Raft fleets) of the realm, 1 to 16, each owning an
    /// equal range of record ids (SPEC.md §14.1). With 1 (the default) the
    /// directory is one fleet's, as before; with more, group g's fleet is
    /// in DIR/group-g (its ports start at base + 200·g) and DIR/realm
    /// lists each group's range, for `bkv register`/`recover` to route by.
    #[arg(long, default_value_t = 1)]
    groups: u64,
    /// The fleet directory (created mode 0700; secrets generated if absent).
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
    /// The fleet directory: its `endpoints` (one node URL a line) and,
    /// unless the keys are learned over the air (--auditor-key and
    /// --operator-key), its `fleet.public`. A realm's directory (one with
    /// a `realm` file, from `bkv fleet up --groups G`): the group that
    /// owns the record's id is used.
    #[arg(long, default_value = "bkv-fleet")]
    fleet: PathBuf,
    /// A node's URL (http://HOST:PORT); repeat. Replaces the fleet
    /// directory's `endpoints`.
    #[arg(long = "endpoint", value_name = "URL")]
    endpoints: Vec<String>,
    /// Learn the fleet's keys from its validation bundle, verified under
    /// these keys (SPEC.md §17), instead of reading `fleet.public`.
    #[command(flatten)]
    pins: PinArgs,
    /// With --auditor-key/--operator-key: the file where the client
    /// remembers the newest epoch it accepted (created if missing). A
    /// bundle older than it is refused. Only with the pins: a client
    /// that reads `fleet.public` learns no epoch.
    #[arg(long, value_name = "FILE", requires = "auditor_keys")]
    state: Option<PathBuf>,
    /// The record's name (its id is SHA-256 of it).
    #[arg(long)]
    record: String,
    /// The recovery code. Visible to every local user in the process list:
    /// prefer --code-file, BKV_RECOVERY_CODE or the prompt.
    #[arg(long, conflicts_with = "code_file")]
    code: Option<String>,
    /// Read the recovery code from FILE (its first line). Without --code or
    /// --code-file: the environment variable BKV_RECOVERY_CODE, else a
    /// prompt on a terminal.
    #[arg(long, value_name = "FILE")]
    code_file: Option<PathBuf>,
    /// Talk to this node (1-based); default: the first that is available.
    #[arg(long)]
    node: Option<usize>,
    /// Accept tiny Argon2 parameters (tests and demos only).
    #[arg(long)]
    insecure_fast: bool,
    /// Write the backup key (hex) to FILE, created new with mode 0600
    /// (an existing file is never overwritten); stdout then shows only the
    /// file's name.
    #[arg(long, value_name = "FILE")]
    key_out: Option<PathBuf>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if let Some((i, c)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("not hex: {c:?} at character {}", i + 1));
    }
    if !s.len().is_multiple_of(2) {
        return Err(format!("an odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("not hex at character {}", i + 1))
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

/// The name of a realm directory's list of groups.
pub const REALM_FILE: &str = "realm";

/// `FIRST-LAST`, two 16-digit hex prefixes, inclusive.
pub fn parse_range(text: &str) -> Result<RecordRange, String> {
    let prefix = |t: &str| {
        (t.len() == 16)
            .then(|| u64::from_str_radix(t, 16).ok())
            .flatten()
            .ok_or_else(|| format!("{t:?} is not 16 hex digits"))
    };
    let (first, last) = text.trim().split_once('-').ok_or_else(|| {
        format!("{text:?}: want FIRST-LAST, e.g. 0000000000000000-7fffffffffffffff")
    })?;
    let (first, last) = (prefix(first)?, prefix(last)?);
    RecordRange::new(first, last).ok_or_else(|| format!("{text:?}: FIRST is after LAST"))
}

fn format_range(r: RecordRange) -> String {
    format!("{:016x}-{:016x}", r.first, r.last)
}

/// The group of a realm directory that owns `record_id`: its directory
/// and range. `None` for a directory without a `realm` file (one fleet,
/// every id). The file lists `group-NAME FIRST-LAST` a line; it is read
/// as strictly as it is written (ranges that overlap, or no group owning
/// the id, are refused), but it is only routing: a pinned client trusts
/// it like `fleet.public`, an over-the-air client checks the range in the
/// group's verified bundle (SPEC.md §17 step 16).
fn route(fleet: &Path, record_id: &RecordId) -> Result<Option<(PathBuf, RecordRange)>, Failure> {
    let path = fleet.join(REALM_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::other(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let bad = |line: usize, why: String| {
        Failure::other(format!(
            "{} line {line}: {why}; `bkv fleet up --groups G --dir {}` writes this file",
            path.display(),
            fleet.display()
        ))
    };
    let mut groups: Vec<(String, RecordRange)> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (name, range) = line
            .split_once(' ')
            .ok_or_else(|| bad(i + 1, "want `group-N FIRST-LAST`".into()))?;
        if !name.starts_with("group-") || name.contains(['/', '.']) {
            return Err(bad(
                i + 1,
                format!("{name:?} is not a group directory name"),
            ));
        }
        let range = parse_range(range).map_err(|e| bad(i + 1, e))?;
        if let Some((other, _)) = groups.iter().find(|(_, r)| r.overlaps(&range)) {
            return Err(bad(i + 1, format!("its range overlaps {other}'s")));
        }
        groups.push((name.to_string(), range));
    }
    let (name, range) = groups
        .into_iter()
        .find(|(_, r)| r.contains(record_id))
        .ok_or_else(|| {
            Failure::other(format!(
                "{}: no group owns record id {}…; the realm's ranges must cover every id",
                path.display(),
                hex(&record_id.0[..8])
            ))
        })?;
    Ok(Some((fleet.join(name), range)))
}

fn parse_peers(s: &str) -> Result<BTreeMap<u64, SocketAddr>, String> {
    let mut peers = BTreeMap::new();
    for p in s.split(',').filter(|p| !p.is_empty()) {
        let (id, addr) = p
            .split_once('=')
            .ok_or(format!("--peers {p:?}: want id=host:port"))?;
        let id: u64 = id
            .parse()
            .map_err(|_| format!("--peers: peer id {id:?} is not a number"))?;
        let addr: SocketAddr = addr.parse().map_err(|_| {
            format!("--peers: {addr:?} is not an address (want HOST:PORT, e.g. 127.0.0.1:7101)")
        })?;
        if id == 0 {
            return Err("--peers: ids start at 1".into());
        }
        if peers.insert(id, addr).is_some() {
            return Err(format!("--peers: id {id} is listed twice"));
        }
    }
    if peers.is_empty() {
        return Err("--peers: no peers".into());
    }
    Ok(peers)
}

/// Reads the fleet secrets file, refusing one that others may read.
fn read_secrets(path: &Path) -> Result<FleetSecrets, Failure> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; `bkv fleet up --dir DIR` writes DIR/fleet.secrets for a local fleet"
        } else {
            ""
        };
        Failure::other(format!(
            "cannot read the fleet secrets file {}: {e}{hint}",
            path.display()
        ))
    })?);
    secret::check_private_file(path, "the fleet secrets file")?;
    let bytes = zeroize::Zeroizing::new(unhex(&text).map_err(|e| {
        Failure::other(format!(
            "{}: {e} (the fleet secrets, written by `bkv fleet up`)",
            path.display()
        ))
    })?);
    FleetSecrets::from_bytes(&bytes).map_err(|e| Failure::other(format!("{}: {e}", path.display())))
}

/// Checks that `addr` can be listened on now, so that a busy port is
/// reported with its address before anything starts.
fn can_listen(addr: SocketAddr, what: &str) -> Result<(), Failure> {
    TcpListener::bind(addr).map(drop).map_err(|e| {
        Failure::other(format!(
            "cannot listen on {addr} ({what}): {e}; is another node or `bkv fleet up` using it?"
        ))
    })
}

/// Checks every argument, then runs one member until it is killed, stopped
/// by a signal (SIGTERM, SIGINT or SIGHUP: exit 0 once the record rows
/// that wait are written) or faults (exit 1).
pub fn node(args: &NodeArgs) -> ExitCode {
    exit::finish("bkv node", run_one_node(args))
}

fn run_one_node(args: &NodeArgs) -> Result<(), Failure> {
    let peers = parse_peers(&args.peers).map_err(Failure::usage)?;
    let Some(own) = peers.get(&args.id).copied() else {
        return Err(Failure::usage(format!(
            "--id {} is not in --peers (ids {})",
            args.id,
            peers
                .keys()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    if peers.values().any(|a| *a == args.listen) {
        return Err(Failure::usage(format!(
            "--listen {} is also a peer address",
            args.listen
        )));
    }
    let anchors = args.pins.anchors()?;
    let records = match &args.records {
        Some(text) => parse_range(text).map_err(|e| Failure::usage(format!("--records {e}")))?,
        None => RecordRange::ALL,
    };
    let secrets = match (&args.secrets, &args.ceremony, &args.hsm) {
        (Some(path), _, _) => read_secrets(path)?,
        (None, Some(dir), Some(hsm)) => crate::deploy::open_ceremony_secrets(dir, hsm)?,
        _ => {
            return Err(Failure::usage(
                "give --secrets FILE, or --ceremony DIR and --hsm ID",
            ))
        }
    };
    can_listen(own, "this node's peer address")?;
    can_listen(args.listen, "this node's client address")?;
    secret::create_private_dir(&args.data)?;
    // SIGTERM, SIGINT or SIGHUP (ctrlc's "termination" set, as for `fleet
    // up` and `auditor serve`) is a planned stop: the node writes the
    // record rows that wait in its memory before it exits (SPEC.md §22.2).
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| Failure::other(format!("cannot handle SIGTERM/SIGINT: {e}")))?;
    let options = NodeOptions {
        id: args.id,
        peers,
        listen: args.listen,
        data_dir: args.data.clone(),
        policy: VaultPolicy {
            records,
            ..policy(args.insecure_fast)
        },
        tick: Duration::from_millis(args.tick_ms.max(1)),
        nvram: args.nvram.clone(),
        anchors,
        stop: Some(stop.clone()),
    };
    if let Some(path) = &args.nvram {
        eprintln!(
            "node {}: NVRAM stand-in {} is an ordinary file, NOT tamper-proof (SPEC.md §22.4)",
            args.id,
            path.display()
        );
    }
    eprintln!(
        "node {} serving clients on http://{} (peers on {own}; record ids {})",
        args.id,
        args.listen,
        format_range(records)
    );
    run_node(options, &secrets)
        .map(|()| {
            if stop.load(Ordering::SeqCst) {
                eprintln!(
                    "node {} stopped on a signal, its waiting record rows written to {}",
                    args.id,
                    args.data.join("node.redb").display()
                );
            }
        })
        .map_err(|e| {
            let text = fleet_error(&e);
            if text.contains("in use") {
                Failure::other(format!(
                    "{text} (peer address {own}, client address {})",
                    args.listen
                ))
            } else {
                Failure::other(text)
            }
        })
}

/// A fleet error's text without the doubled prefixes of the layers
/// ("i/o: io: ...").
fn fleet_error(e: &FleetError) -> String {
    match e {
        FleetError::Io(text) => text.strip_prefix("io: ").unwrap_or(text).to_string(),
        other => other.to_string(),
    }
}

/// Writes a fleet directory for `n` nodes (secrets generated if absent) and
/// returns each node's `bkv node` arguments.
pub fn prepare_fleet(
    dir: &Path,
    n: u64,
    base_port: u16,
    insecure_fast: bool,
    records: RecordRange,
) -> Result<Vec<Vec<String>>, Failure> {
    secret::create_private_dir(dir)?;
    let secrets_path = dir.join("fleet.secrets");
    let secrets = if secrets_path.exists() {
        read_secrets(&secrets_path)?
    } else {
        let s = FleetSecrets::generate(&mut OsRng);
        secret::write_new_private(&secrets_path, hex(&s.to_bytes()[..]).as_bytes())?;
        s
    };
    let keys = secrets.public_keys();
    let mut public = keys.key_exchange.to_vec();
    public.extend_from_slice(keys.transport.as_bytes());
    let write = |name: &str, text: String| -> Result<(), Failure> {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Failure::other(format!("cannot write {}: {e}", path.display())))
    };
    write("fleet.public", hex(&public))?;
    let port = |offset: u64| -> Result<u16, Failure> {
        u16::try_from(u64::from(base_port) + offset).map_err(|_| {
            Failure::usage(format!(
                "--base-port {base_port}: port {} is out of range",
                u64::from(base_port) + offset
            ))
        })
    };
    let mut peers = Vec::new();
    let mut endpoints = String::new();
    for id in 1..=n {
        peers.push(format!("{id}=127.0.0.1:{}", port(id)?));
        endpoints.push_str(&format!("http://127.0.0.1:{}\n", port(100 + id)?));
    }
    write("endpoints", endpoints)?;
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
            if records != RecordRange::ALL {
                a.extend(["--records".into(), format_range(records)]);
            }
            Ok(a)
        })
        .collect()
}

/// The node processes of `fleet up`; dropping them stops them all.
struct Nodes(Vec<(String, String, Child)>);

/// How long `fleet up` gives its nodes to stop on SIGTERM (a node answers
/// what it has queued `Unavailable`, waits up to 5 s for its client
/// front's connections in flight, and writes the record rows that wait)
/// before it kills them.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Drop for Nodes {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        // A planned stop first, for the children still running: one not
        // yet reaped keeps its pid, so the signal cannot reach another
        // process (a reaped child's status is remembered by `try_wait`).
        for (_, _, child) in &mut self.0 {
            if !matches!(child.try_wait(), Ok(None)) {
                continue;
            }
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline
            && self
                .0
                .iter_mut()
                .any(|(_, _, child)| matches!(child.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for (_, _, child) in &mut self.0 {
            let _ = child.kill();
        }
        for (_, _, child) in &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// How long `fleet up` waits for every node to answer before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a local fleet of processes and watches them until SIGTERM or
/// SIGINT, then stops them.
pub fn up(args: &UpArgs) -> ExitCode {
    exit::finish("bkv fleet up", run_up(args))
}

fn run_up(args: &UpArgs) -> Result<(), Failure> {
    let n = args.nodes;
    if n < 3 || n.is_multiple_of(2) || n > 99 {
        return Err(Failure::usage(format!(
            "--nodes {n}: a fleet has an odd number of members, from 3 to 99 \
             (SPEC.md §20: a majority must survive a failure)"
        )));
    }
    let g_count = args.groups;
    if !(1..=MAX_GROUPS).contains(&g_count) {
        return Err(Failure::usage(format!(
            "--groups {g_count}: a local realm has 1 to {MAX_GROUPS} groups"
        )));
    }
    // Group g's ports start at base + 200·g: peers +1..=+99, clients
    // +101..=+199.
    let group_base = |g: u64| -> Result<u16, Failure> {
        u16::try_from(u64::from(args.base_port) + GROUP_PORT_STRIDE * g).map_err(|_| {
            Failure::usage(format!(
                "--base-port {}: group {g}'s ports are out of range",
                args.base_port
            ))
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| Failure::other(format!("cannot handle SIGTERM/SIGINT: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::other(format!("cannot find this executable: {e}")))?;
    // Every port must be free before anything starts: a node of another
    // fleet on a client port would otherwise answer for ours.
    for g in 0..g_count {
        let base = group_base(g)?;
        for id in 1..=n {
            for (offset, what) in [(id, "peer"), (100 + id, "client")] {
                let port = u16::try_from(u64::from(base) + offset).map_err(|_| {
                    Failure::usage(format!(
                        "--base-port {}: node {id}'s {what} port is out of range",
                        args.base_port
                    ))
                })?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let whose = if g_count == 1 {
                    format!("node {id}'s {what} address")
                } else {
                    format!("group {g} node {id}'s {what} address")
                };
                can_listen(addr, &whose)?;
            }
        }
    }
    let mut planned = Vec::new();
    if g_count == 1 {
        let node_args = prepare_fleet(
            &args.dir,
            n,
            args.base_port,
            args.insecure_fast,
            RecordRange::ALL,
        )?;
        planned.push((String::new(), args.base_port, node_args));
    } else {
        secret::create_private_dir(&args.dir)?;
        let mut realm = String::new();
        for g in 0..g_count {
            let records = RecordRange::split(g, g_count)
                .ok_or_else(|| Failure::other(format!("no range for group {g}")))?;
            let name = format!("group-{g}");
            let base = group_base(g)?;
            let node_args =
                prepare_fleet(&args.dir.join(&name), n, base, args.insecure_fast, records)?;
            realm.push_str(&format!("{name} {}\n", format_range(records)));
            planned.push((format!("group {g} "), base, node_args));
        }
        let path = args.dir.join(REALM_FILE);
        std::fs::write(&path, realm)
            .map_err(|e| Failure::other(format!("cannot write {}: {e}", path.display())))?;
    }
    let mut nodes = Nodes(Vec::new());
    for (label, base, node_args) in &planned {
        for (id, a) in (1..=n).zip(node_args) {
            let endpoint = format!("http://127.0.0.1:{}", u64::from(*base) + 100 + id);
            let child = Process::new(&exe)
                .args(a)
                .spawn()
                .map_err(|e| Failure::other(format!("cannot start {label}node {id}: {e}")))?;
            nodes.0.push((format!("{label}node {id}"), endpoint, child));
        }
    }

    // Every node must come up and answer; one that exits fails the command.
    let client = FleetClient::new();
    let started = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            eprintln!("bkv fleet up: stopping the fleet");
            return Ok(());
        }
        for (name, _, child) in &mut nodes.0 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Failure::other(format!(
                    "{name} failed to start ({status}); its error is above. \
                     Stopping the other nodes."
                )));
            }
        }
        // Answers count only while every node process still runs.
        if nodes.0.iter().all(|(_, e, _)| client.status(e).is_ok())
            && nodes
                .0
                .iter_mut()
                .all(|(_, _, c)| matches!(c.try_wait(), Ok(None)))
        {
            break;
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(Failure::new(
                Exit::Unavailable,
                format!(
                    "the nodes did not all answer within {} s; stopping them",
                    START_TIMEOUT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A closed stdout does not stop the fleet.
    let what = if g_count == 1 {
        format!("fleet of {n} nodes up")
    } else {
        format!("realm of {g_count} groups of {n} nodes up")
    };
    let _ = secret::print(&format!(
        "{what}; clients: bkv register --fleet {} --record NAME{}",
        args.dir.display(),
        if args.insecure_fast {
            " --insecure-fast"
        } else {
            ""
        }
    ));

    // Watch: report a node that dies; stop on a signal.
    let majority = n / 2 + 1;
    loop {
        if stop.load(Ordering::SeqCst) {
            eprintln!("bkv fleet up: stopping the fleet");
            return Ok(());
        }
        let mut exited = Vec::new();
        for (i, (name, _, child)) in nodes.0.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                exited.push((i, name.clone(), status));
            }
        }
        for (i, name, status) in exited.into_iter().rev() {
            nodes.0.remove(i);
            // The nodes still running in the dead node's group.
            let group = name.rsplit_once("node ").map_or("", |(g, _)| g).to_string();
            let live = nodes
                .0
                .iter()
                .filter(|(other, _, _)| other.rsplit_once("node ").map_or("", |(g, _)| g) == group)
                .count() as u64;
            eprintln!(
                "bkv fleet up: {name} exited ({status}); {live} of {n} {group}nodes running{}",
                if live < majority {
                    ": no majority, the fleet cannot answer"
                } else {
                    ""
                }
            );
        }
        if nodes.0.is_empty() {
            return Err(Failure::other("every node has exited"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Most groups `fleet up` starts.
const MAX_GROUPS: u64 = 16;
/// Ports between one group's base and the next's.
const GROUP_PORT_STRIDE: u64 = 200;

/// Where the client's trust in the fleet's keys comes from.
enum Trust {
    /// `fleet.public`, pinned.
    Pinned(Box<ClientConfig>),
    /// A validation bundle verified under the anchors; the state file
    /// remembers the newest epoch.
    OverTheAir {
        anchors: TrustAnchors,
        state: ClientState,
    },
}

struct Target {
    trust: Trust,
    insecure_fast: bool,
    endpoints: Vec<String>,
    record_id: RecordId,
    code: RecoveryCode,
}

/// Reads a file of the fleet directory, saying what to do if it is missing.
fn fleet_file(fleet: &Path, name: &str) -> Result<String, Failure> {
    if !fleet.is_dir() {
        return Err(Failure::other(format!(
            "no fleet directory {dir}: start a local fleet with `bkv fleet up --dir {dir}`, \
             or give the fleet's directory with --fleet DIR",
            dir = fleet.display()
        )));
    }
    let path = fleet.join(name);
    std::fs::read_to_string(&path).map_err(|e| {
        Failure::other(format!(
            "cannot read {}: {e}; `bkv fleet up --dir {}` writes it",
            path.display(),
            fleet.display()
        ))
    })
}

fn parse_public(text: &str, path: &Path) -> Result<FleetPublicKeys, Failure> {
    let bad = |problem: String| {
        Failure::other(format!(
            "{}: {problem}; expected 2496 hex digits (the 32-byte key-exchange key, then the 1216-byte X-Wing transport key)",
            path.display()
        ))
    };
    let bytes = unhex(text).map_err(bad)?;
    let (ke, tr) = bytes
        .split_at_checked(32)
        .filter(|(_, tr)| tr.len() == backup_key_vault::fleet::TRANSPORT_PUBLIC_KEY_LEN)
        .ok_or_else(|| bad(format!("{} bytes", bytes.len())))?;
    Ok(FleetPublicKeys {
        key_exchange: ke.try_into().map_err(|_| bad("32 bytes".into()))?,
        transport: backup_key_vault::fleet::TransportPublicKey::from_slice(tr)
            .ok_or_else(|| bad("1216 bytes".into()))?,
    })
}

/// The node URLs: `--endpoint`s, else the fleet directory's `endpoints`.
pub fn endpoints(fleet: &Path, given: &[String]) -> Result<Vec<String>, Failure> {
    if !given.is_empty() {
        for e in given {
            if !e.starts_with("http://") {
                return Err(Failure::usage(format!(
                    "--endpoint {e:?}: expected http://HOST:PORT"
                )));
            }
        }
        return Ok(given.to_vec());
    }
    let endpoints: Vec<String> = fleet_file(fleet, "endpoints")?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if endpoints.is_empty() {
        return Err(Failure::other(format!(
            "{}: lists no node",
            fleet.join("endpoints").display()
        )));
    }
    Ok(endpoints)
}

fn target(args: &ClientArgs) -> Result<Target, Failure> {
    let record_id = RecordId(Sha256::digest(args.record.as_bytes()).into());
    // A realm: the group that owns the id (SPEC.md §14.1).
    let (fleet, records) = match route(&args.fleet, &record_id)? {
        Some((dir, records)) => (dir, records),
        None => (args.fleet.clone(), RecordRange::ALL),
    };
    let trust = match args.pins.anchors()? {
        Some(anchors) => {
            let path = args.state.as_deref().ok_or_else(|| {
                Failure::usage(
                    "--auditor-key and --operator-key need --state FILE: the file where the \
                     client remembers the newest epoch it accepted (created if missing)",
                )
            })?;
            let state = ClientState::open(path, anchors.namespace())?;
            Trust::OverTheAir { anchors, state }
        }
        None => {
            let keys = parse_public(
                &fleet_file(&fleet, "fleet.public")?,
                &fleet.join("fleet.public"),
            )?;
            let config = if args.insecure_fast {
                ClientConfig::insecure_test_only(keys)
            } else {
                ClientConfig::new(keys)
            };
            Trust::Pinned(Box::new(config.with_records(records)))
        }
    };
    let endpoints = endpoints(&fleet, &args.endpoints)?;
    let endpoints = match args.node {
        Some(k) => vec![endpoints
            .get(k.wrapping_sub(1))
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--node {k}: the fleet has nodes 1 to {}",
                    endpoints.len()
                ))
            })?
            .clone()],
        None => endpoints,
    };
    let code = secret::read(&SecretSource {
        flag: args.code.as_deref(),
        file: args.code_file.as_deref(),
        env: "BKV_RECOVERY_CODE",
        what: "recovery code",
        options: "--code-file FILE",
    })?;
    let code = RecoveryCode::new(code.as_bytes())
        .map_err(|e| Failure::usage(format!("the recovery code: {e}")))?;
    Ok(Target {
        trust,
        insecure_fast: args.insecure_fast,
        endpoints,
        record_id,
        code,
    })
}

/// What a refusal means for the user, and its exit code.
fn refused(node: &str, code: RejectionCode) -> Failure {
    match code {
        RejectionCode::AuthenticationFailed => {
            Failure::new(Exit::WrongCode, "wrong recovery code (or no such record)")
        }
        RejectionCode::AttemptsExhausted => Failure::new(
            Exit::Locked,
            "the record is locked: no attempts left. Its last exchange may still finish; \
             after that the record is erased",
        ),
        RejectionCode::RegistrationRefused => Failure::new(
            Exit::Locked,
            "registration refused: the record exists and re-registering it needs a \
             recovery first",
        ),
        RejectionCode::Unavailable => Failure::new(
            Exit::Unavailable,
            format!("{node}: unavailable (no quorum, or a commit failed); nothing was released"),
        ),
        RejectionCode::Busy => Failure::new(
            Exit::Unavailable,
            format!("{node}: busy (too many pending exchanges); nothing was charged, try again"),
        ),
        RejectionCode::RequestNotAuthentic => Failure::other(format!(
            "{node} refused the request as not authentic: does fleet.public belong to this fleet?"
        )),
        RejectionCode::RecordNotInRange => Failure::other(format!(
            "{node} does not serve this record: its group of the realm owns another range of \
             record ids (SPEC.md §14.1), and nothing was charged. Use a node of the group that \
             owns the id: drop --endpoint and give the realm's directory with --fleet DIR"
        )),
        RejectionCode::NoBundle => Failure::other(format!(
            "{node} holds no validation bundle: the operator installs one with `bkv operator \
             install` (or, to pin the fleet's keys instead, drop --auditor-key/--operator-key \
             and use the fleet directory's fleet.public)"
        )),
        other => Failure::other(format!("{node} refused: {other:?}")),
    }
}

/// The failure for an answer that is not the message expected.
fn unexpected(node: &str, answer: &[u8]) -> Failure {
    match Rejection::from_bytes(answer) {
        Ok(r) => refused(node, r.code),
        Err(e) => Failure::new(
            Exit::Verification,
            format!("{node}: unexpected answer: {e}"),
        ),
    }
}

/// The failure for a client-side error.
fn client_failure(e: ClientError) -> Failure {
    match e {
        ClientError::RecoveryFailed => {
            Failure::new(Exit::WrongCode, "wrong recovery code (or no such record)")
        }
        ClientError::InvalidRecoveryCode => Failure::usage(format!("the recovery code: {e}")),
        ClientError::Internal => Failure::other(e.to_string()),
        _ => Failure::new(Exit::Verification, e.to_string()),
    }
}

/// Sends the first message of an exchange to the nodes in turn, moving on
/// only while a node is unavailable (no connection, a timeout, an
/// `Unavailable` rejection): any other refusal ends the exchange. Returns
/// the node that answered and its answer.
fn first_answer(
    client: &FleetClient,
    endpoints: &[String],
    request: &[u8],
) -> Result<(String, Vec<u8>), Failure> {
    let mut failures = Vec::new();
    for e in endpoints {
        match client.call(e, request) {
            Ok(a) => match Rejection::from_bytes(&a) {
                Ok(r) if r.code == RejectionCode::Unavailable => {
                    failures.push(format!("{e}: unavailable (no quorum, or a commit failed)"));
                }
                Ok(r) => return Err(refused(e, r.code)),
                Err(_) => return Ok((e.clone(), a)),
            },
            Err(err) => failures.push(format!("{e}: {}", fleet_error(&err))),
        }
    }
    Err(Failure::new(
        Exit::Unavailable,
        format!(
            "no node is available; nothing was released:\n  {}",
            failures.join("\n  ")
        ),
    ))
}

/// Sends the second message to the node that holds the exchange.
fn second_answer(client: &FleetClient, node: &str, request: &[u8]) -> Result<Vec<u8>, Failure> {
    client.call(node, request).map_err(|e| {
        Failure::new(
            Exit::Unavailable,
            format!("{node}: {}; try again", fleet_error(&e)),
        )
    })
}

/// Where the backup key goes: stdout, and with `--key-out` a new 0600 file,
/// created before anything is sent so that a refusal to overwrite comes
/// first.
struct KeyOut {
    file: Option<(PathBuf, std::fs::File)>,
    /// Lines stdout could not take (a closed pipe).
    lost: bool,
}

impl KeyOut {
    fn create(path: Option<&Path>) -> Result<Self, Failure> {
        let file = match path {
            Some(p) => Some((p.to_path_buf(), secret::create_new_private(p)?)),
            None => None,
        };
        Ok(Self { file, lost: false })
    }

    /// A line for stdout; a closed stdout is noted, not fatal.
    fn say(&mut self, line: &str) {
        if secret::print(line).is_err() {
            self.lost = true;
        }
    }

    /// Hands over the key: to the file if there is one, else to stdout.
    /// Fails if the key reached neither.
    fn key(&mut self, key: &[u8], how_to_get_it_again: &str) -> Result<(), Failure> {
        let text = zeroize::Zeroizing::new(hex(key));
        if let Some((path, file)) = self.file.as_mut() {
            file.write_all(text.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .map_err(|e| {
                    Failure::other(format!(
                        "cannot write the backup key to {}: {e}; {how_to_get_it_again}",
                        path.display()
                    ))
                })?;
            let line = format!("backup key written to {}", path.display());
            self.say(&line);
            return Ok(());
        }
        self.say(&format!("backup key {}", text.as_str()));
        if self.lost {
            return Err(Failure::other(format!(
                "stdout is closed, so the backup key was not shown; {how_to_get_it_again}, \
                 and use --key-out FILE to keep it in a file"
            )));
        }
        Ok(())
    }

    /// Removes the file if the command failed before writing the key.
    fn discard(self) {
        if let Some((path, _)) = self.file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `bkv register`.
pub fn register(args: &ClientArgs) -> ExitCode {
    exit::finish("bkv register", with_key_out(args, run_register))
}

/// `bkv recover`: KE1 to a node, KE3 to the same node (its pending session
/// lives there, SPEC.md §20.2).
pub fn recover(args: &ClientArgs) -> ExitCode {
    exit::finish("bkv recover", with_key_out(args, run_recover))
}

fn with_key_out(
    args: &ClientArgs,
    flow: fn(&mut Target, &mut KeyOut) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut t = target(args)?;
    let mut out = KeyOut::create(args.key_out.as_deref())?;
    match flow(&mut t, &mut out) {
        Ok(()) => Ok(()),
        Err(e) => {
            out.discard();
            Err(e)
        }
    }
}

/// Asks the nodes for the fleet's bundle and verifies it under `anchors`,
/// refusing one older than `floor`.
fn learn_fleet(
    client: &FleetClient,
    t: &Target,
    anchors: &TrustAnchors,
    floor: Option<u64>,
    out: &mut KeyOut,
) -> Result<(VerifiedFleet, ClientConfig), Failure> {
    let (node, answer) = first_answer(client, &t.endpoints, &BundleRequest {}.to_bytes())?;
    let response = BundleResponse::from_bytes(&answer).map_err(|_| unexpected(&node, &answer))?;
    let fleet = anchors
        .verify(response.bundle.bundle(), unix_ms(), floor)
        .and_then(|fleet| fleet.check_record(&t.record_id).map(|()| fleet))
        .map_err(|e| bundle_refused(&node, &e, "nothing was sent"))?;
    out.say(&format!(
        "fleet {} learned from {node}: epoch {} of {}, signed by the pinned auditor and operator",
        fleet.artifact().fleet_id,
        fleet.epoch_to_store(),
        anchors.namespace()
    ));
    let config = if t.insecure_fast {
        ClientConfig::insecure_test_only_from_verified_fleet(&fleet)
    } else {
        ClientConfig::from_verified_fleet(&fleet)
    };
    Ok((fleet, config))
}

/// The configuration to talk to the fleet with: the pinned one, or one
/// learned from the fleet's verified bundle (its epoch remembered first,
/// SPEC.md §17). Also returns the verified artifact, when learned. A
/// fleet whose range overlaps an accepted fleet's of the same realm and
/// layout is refused (SPEC.md §14.1).
fn fleet_config(
    client: &FleetClient,
    t: &mut Target,
    floor: impl Fn(&ClientState) -> Option<u64>,
    out: &mut KeyOut,
) -> Result<(ClientConfig, Option<FleetKeyArtifact>), Failure> {
    match &t.trust {
        Trust::Pinned(config) => Ok((config.as_ref().clone(), None)),
        Trust::OverTheAir { anchors, state } => {
            let (fleet, config) = learn_fleet(client, t, anchors, floor(state), out)?;
            let artifact = fleet.artifact().clone();
            if let Trust::OverTheAir { state, .. } = &mut t.trust {
                state
                    .check_realm(&artifact)
                    .map_err(|e| bundle_refused("the node", &e, "nothing was sent"))?;
                state.accept(&artifact, None)?;
            }
            Ok((config, Some(artifact)))
        }
    }
}

fn run_register(t: &mut Target, out: &mut KeyOut) -> Result<(), Failure> {
    let client = FleetClient::new();
    // A new registration goes only to a fleet at least as new as the newest
    // one the client accepted for this record's id.
    let record_id = t.record_id;
    let floor = move |s: &ClientState| s.registration_floor(&record_id);
    let (config, learned) = fleet_config(&client, t, floor, out)?;
    let (state, request) = Registration::start(&mut OsRng, &config, t.record_id, &t.code, None)
        .map_err(client_failure)?;
    let (node, answer) = first_answer(&client, &t.endpoints, &request.to_bytes())?;
    let response =
        RegistrationResponse::from_bytes(&answer).map_err(|_| unexpected(&node, &answer))?;
    let (state, upload) = state
        .finish(&mut OsRng, &response, None)
        .map_err(client_failure)?;
    let answer = second_answer(&client, &node, &upload.to_bytes())?;
    let confirmation =
        RegistrationConfirmation::from_bytes(&answer).map_err(|_| unexpected(&node, &answer))?;
    let registered = state.finish(&confirmation).map_err(client_failure)?;
    out.say(&format!(
        "registered via {node}: generation {}",
        registered.generation
    ));
    // The registration is committed: the key goes out first, so a state
    // file that cannot be written loses no key (the epoch it would record
    // was already remembered before anything was sent).
    out.key(
        registered.backup_key.expose_secret(),
        "the registration is committed: `bkv recover` gets the key back",
    )?;
    if let (Some(artifact), Trust::OverTheAir { state, .. }) = (learned, &mut t.trust) {
        state.accept(&artifact, Some(&t.record_id))?;
    }
    Ok(())
}

fn run_recover(t: &mut Target, out: &mut KeyOut) -> Result<(), Failure> {
    let client = FleetClient::new();
    // A record recovers from the fleet it was registered with: the bundle
    // may not be older than the epoch the state file remembers for it.
    let record_id = t.record_id;
    let floor = move |s: &ClientState| s.floor_for(&record_id);
    let (config, _) = fleet_config(&client, t, floor, out)?;
    let (state, ke1) =
        Recovery::start(&mut OsRng, &config, t.record_id, &t.code).map_err(client_failure)?;
    let (node, answer) = first_answer(&client, &t.endpoints, &ke1.to_bytes())?;
    // A node that holds a bundle attaches it to KE2 (SPEC.md §16.2): a
    // client that learned its keys over the air verifies it again (the KE2
    // must come from the fleet the bundle names); a pinned client uses
    // its pinned keys.
    let with_bundle = RecoveryResponseWithBundle::from_bytes(&answer).ok();
    let ke2 = match &with_bundle {
        Some(w) => w.response.clone(),
        None => RecoveryResponse::from_bytes(&answer).map_err(|_| unexpected(&node, &answer))?,
    };
    // Sealed in the channel (SPEC.md §4.4): only this client reads it.
    let attempts_remaining = state.open(&ke2).map_err(client_failure)?.attempts_remaining;
    out.say(&format!(
        "attempts remaining {attempts_remaining} (via {node})"
    ));
    let finished = match (&t.trust, &with_bundle) {
        (Trust::OverTheAir { anchors, state: s }, Some(w)) => state
            .finish_with_bundle(&mut OsRng, w, anchors, unix_ms(), s.floor_for(&t.record_id))
            .map(|(state, ke3, _)| (state, ke3))
            .map_err(|e| match e {
                ClientError::Bundle(e) => bundle_refused(&node, &e, "KE3 was not sent"),
                e => client_failure(e),
            }),
        _ => state.finish(&mut OsRng, &ke2).map_err(client_failure),
    };
    let (state, ke3) = finished.map_err(|mut failure| {
        if failure.exit == Exit::WrongCode && attempts_remaining == 0 {
            failure
                .message
                .push_str("; no attempts remain: the record is locked and will be erased");
        }
        failure
    })?;
    let answer = second_answer(&client, &node, &ke3.to_bytes())?;
    let release = KeyRelease::from_bytes(&answer).map_err(|_| unexpected(&node, &answer))?;
    let recovered = state.finish(&release).map_err(client_failure)?;
    out.key(
        recovered.backup_key.expose_secret(),
        "the attempt counter is reset: recover again",
    )?;
    // Sealed in the release: unlike "attempts remaining" above, no relay
    // can change it (SPEC.md §6.2).
    out.say(&crate::demo::tried_since_last_recovery(
        recovered.unforgiven_attempts,
    ));
    Ok(())
}
