//! `bkv`: the command-line tool of backup-key-vault.

#![forbid(unsafe_code)]

mod audit;
mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bkv",
    version,
    about = "Backup Key Vault: guess-limited release of a chat-backup key"
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
    /// Monitor an auditor's log (SPEC.md §18.3).
    #[command(subcommand)]
    Audit(AuditCommand),
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
    /// consistency of every pair of checkpoints, and list key changes.
    /// Exits non-zero on any failure, naming the epoch and the reason.
    VerifyNamespace(audit::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Auditor(AuditorCommand::Serve(args)) => audit::serve(&args),
        Command::Audit(AuditCommand::VerifyNamespace(args)) => audit::verify(&args),
    }
}
