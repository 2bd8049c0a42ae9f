//! The public audit trail of backup-key-vault fleet deployments (SPEC.md
//! §30–§36).
//!
//! For every new HSM fleet the operator publishes evidence that it was
//! deployed securely, so that anyone can check that the operator itself
//! cannot read backups:
//!
//! - [`measure`]: the code measurement, a reproducible SHA-256 of the
//!   vault's release build (§30);
//! - [`ceremony`] (feature `simulation`): the key ceremony that creates a
//!   fleet inside (simulated) HSMs and writes its transcript (§31);
//! - [`attestation`]: each HSM's X.509 chain to its vendor root and its
//!   signed statement, behind a trait for vendor formats (§32);
//! - [`evidence`]: the evidence package, strictly decoded (§33);
//! - [`verify`]: the verifier, a list of named steps (§34).
//!
//! The fleet secrets appear in clear only inside the HSMs; the ceremony
//! hands them out only sealed to an HSM's import key ([`seal`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod attestation;
#[cfg(feature = "simulation")]
pub mod ceremony;
pub mod evidence;
pub mod measure;
pub mod seal;
#[cfg(feature = "simulation")]
pub mod sim;
pub mod verify;

pub use attestation::{AttestationVerifier, X509StatementVerifier};
pub use evidence::{Evidence, EvidenceError};
pub use verify::{ExportLog, LogSource, Outcome, Report, StepId, Verifier};

/// Milliseconds since the Unix epoch, by the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
