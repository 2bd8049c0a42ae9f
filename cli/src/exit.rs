//! `bkv`'s exit codes: one per thing a script can act on differently.
//!
//! A wrong recovery code, a locked record and an unavailable fleet call
//! for different next steps (ask again, stop, retry later), so they exit
//! differently. The table is printed by `bkv --help` ([`HELP`]) and the
//! README.

use std::fmt;
use std::process::ExitCode;

/// The exit codes, as `bkv --help` prints them.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  any other failure (a file, a refusal not listed here, an internal error)
  2  usage error: bad arguments or options
  3  wrong recovery code (or no such record: the fleet does not tell them apart)
  4  record locked (no attempts left) or gone; registration refused over a live record
  5  unavailable: no node answered, no quorum, busy, or the auditor is unreachable or failing; safe to retry later
  6  verification failed: evidence, a log or an answer did not verify, or the fleet does not own the record";

/// What kind of failure ended a command; each has its own exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything not listed below.
    Other = 1,
    /// 2: bad arguments (clap uses 2 for its own usage errors too).
    Usage = 2,
    /// 3: the recovery code is wrong (or the record does not exist).
    WrongCode = 3,
    /// 4: the record is locked or gone, or a live record refused
    /// re-registration.
    Locked = 4,
    /// 5: no node could answer; nothing happened that a retry would
    /// repeat wrongly.
    Unavailable = 5,
    /// 6: something did not verify.
    Verification = 6,
}

/// A failed command: its exit code and the message for stderr.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong and, where there is one, the next step.
    pub message: String,
}

impl Failure {
    /// A failure of kind `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    /// Exit 1.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Exit::Other, message)
    }

    /// Exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::other(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Self::other(message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Prints `command: message` on stderr for a failure and returns the exit
/// code.
pub fn finish(command: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{command}: {failure}");
            failure.exit.into()
        }
    }
}
