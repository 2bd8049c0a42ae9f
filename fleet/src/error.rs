//! The fleet's errors.

use core::fmt;

/// What can go wrong in a fleet node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetError {
    /// The node's database failed (I/O, corruption, unknown layout).
    Disk(String),
    /// Bytes from a peer or from the disk did not decode.
    Malformed(&'static str),
    /// The Raft engine refused the configuration or failed.
    Raft(String),
    /// The vault could not be made (invalid policy or fleet secrets).
    Vault(backup_key_vault::VaultError),
    /// The node stopped after an internal invariant failed (for example
    /// the Raft engine found its log inconsistent): restart it from its disk.
    Faulted,
    /// A network or configuration problem of the std front.
    Io(String),
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disk(e) => write!(f, "node storage: {e}"),
            Self::Malformed(what) => write!(f, "malformed {what}"),
            Self::Raft(e) => write!(f, "consensus: {e}"),
            Self::Vault(e) => write!(f, "vault: {e:?}"),
            Self::Faulted => f.write_str("node faulted; restart it from its disk"),
            Self::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl std::error::Error for FleetError {}

impl From<raft::Error> for FleetError {
    fn from(e: raft::Error) -> Self {
        Self::Raft(e.to_string())
    }
}
