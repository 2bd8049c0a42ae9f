//! `bkv`: the command-line tool of backup-key-vault.

#![forbid(unsafe_code)]

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
    }
}
