//! `bkv`: the command-line tool of backup-key-vault.

#![forbid(unsafe_code)]

mod audit;
mod demo;
mod deploy;
mod exit;
mod fleet_node;
mod operator;
mod ota;
mod secret;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bkv",
    version,
    about = "Backup Key Vault: guess-limited release of a chat-backup key",
    after_help = exit::HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole story in-process: a generated fleet, an in-memory vault,
    /// registration, recovery, wrong codes counting down, and lockout.
    Demo(demo::DemoArgs),
    /// The auditor of fleet keys (SPEC.md §18).
    #[command(subcommand)]
    Auditor(AuditorCommand),
    /// Monitor an auditor's log (SPEC.md §18.3), measure the vault's code
    /// and verify deployment evidence (SPEC.md §30-§35).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fleet deployment: the key ceremony (SPEC.md §31); a local fleet on
    /// loopback (SPEC.md §23).
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Run one fleet member (any address; loopback in `fleet up`): the vault replicated by Raft, its
    /// state in redb, an HTTP API for clients (SPEC.md §23).
    Node(fleet_node::NodeArgs),
    /// The operator's side of fleet keys over the air: publish a
    /// ceremony's artifact through the auditor, counter-sign it, and
    /// install the bundle on the nodes (SPEC.md §18.2, §23).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Register a recovery code with a fleet; prints the backup key.
    #[command(after_help = exit::HELP)]
    Register(fleet_node::ClientArgs),
    /// Recover the backup key from a fleet.
    #[command(after_help = exit::HELP)]
    Recover(fleet_node::ClientArgs),
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Create a fleet in simulated HSMs: secrets and the operator key
    /// sealed to each HSM, attestations, a transcript signed by the
    /// participants, the fleet-key artifact logged by the auditor; writes
    /// the evidence package and verifies it. With --auditor URL, prepares
    /// it for `bkv operator publish` instead. Never prints a secret.
    Ceremony(Box<deploy::CeremonyArgs>),
    /// Start a local fleet of `bkv node` processes on loopback, with a
    /// generated secrets file (for trying the fleet out; the ceremony seals
    /// secrets per HSM instead).
    Up(fleet_node::UpArgs),
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Publish a ceremony's fleet-key artifact: submit it to the auditor,
    /// verify the auditor's signature under the pinned key, counter-sign
    /// it with the operator key, fetch the bundle, verify it, write the
    /// evidence, and install the bundle on the nodes.
    Publish(operator::PublishArgs),
    /// Install a logged, counter-signed bundle (from the auditor or a
    /// file) on nodes, after verifying it under the pinned keys: for a
    /// restarted node with a wiped disk, or a replaced one.
    Install(operator::InstallArgs),
}

#[derive(Subcommand)]
enum AuditorCommand {
    /// Serve the auditor over HTTP on loopback: reads open, publishing
    /// with the bearer token.
    Serve(audit::ServeArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify every epoch of a namespace (digest, auditor signature,
    /// operator counter-signature, the entry against the log), the
    /// consistency of each checkpoint with the next (which proves every
    /// pair, SPEC.md §18.3), and list key changes.
    /// Exits non-zero on any failure, naming the epoch and the reason.
    VerifyNamespace(audit::VerifyArgs),
    /// Rebuild the vault from a checkout by the reproducible recipe
    /// (SPEC.md §30) and print its SHA-256 measurement.
    Measure(deploy::MeasureArgs),
    /// Verify a fleet's deployment evidence (SPEC.md §34): every step with
    /// pass or fail; exits zero only when all pass.
    VerifyDeployment(deploy::VerifyDeploymentArgs),
}

fn main() -> ExitCode {
    // `bkv audit measure` runs cargo with this executable as the rustc
    // wrapper that adds the recipe's path remapping (SPEC.md §30).
    if let Some(code) = bkv_deploy::measure::rustc_wrapper_main() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Node(_)
            | Command::Fleet(FleetCommand::Up(_))
            | Command::Auditor(AuditorCommand::Serve(_))
    ) {
        init_logs();
    }
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Auditor(AuditorCommand::Serve(args)) => audit::serve(&args),
        Command::Audit(AuditCommand::VerifyNamespace(args)) => audit::verify(&args),
        Command::Audit(AuditCommand::Measure(args)) => deploy::measure(&args),
        Command::Audit(AuditCommand::VerifyDeployment(args)) => deploy::verify_deployment(&args),
        Command::Fleet(FleetCommand::Ceremony(args)) => deploy::ceremony(&args),
        Command::Fleet(FleetCommand::Up(args)) => fleet_node::up(&args),
        Command::Node(args) => fleet_node::node(&args),
        Command::Operator(OperatorCommand::Publish(args)) => operator::publish(&args),
        Command::Operator(OperatorCommand::Install(args)) => operator::install(&args),
        Command::Register(args) => fleet_node::register(&args),
        Command::Recover(args) => fleet_node::recover(&args),
    }
}

/// Structured logs to stderr for the long-running commands: `BKV_LOG` is a
/// `tracing` filter (default `info`; `debug` adds one line per HTTP
/// request), `BKV_LOG_FORMAT=json` writes one JSON object per line. A bad
/// filter falls back to `info` and says so.
fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let (filter, bad) = match std::env::var("BKV_LOG") {
        Ok(spec) => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("{spec:?}: {e}"))),
        },
        Err(_) => (EnvFilter::new("info"), None),
    };
    let json = std::env::var("BKV_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    if let Some(bad) = bad {
        tracing::warn!("BKV_LOG {bad}; logging at info");
    }
}
