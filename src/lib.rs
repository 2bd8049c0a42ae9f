#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod bundle;
pub mod client;
mod crypto;
pub mod derive;
pub mod error;
pub mod fleet;
pub mod suite;
pub mod types;
pub mod vault;
pub mod wire;

pub use error::{BundleError, ClientError, StoreError, VaultError, WireError};
pub use fleet::{FleetPublicKeys, FleetSecrets};
pub use suite::StretchingParams;
pub use types::{BackupKey, RecordId, RecoveryCode, SessionId};

/// The operating system's CSPRNG, for apps and tools on std platforms. The
/// crate itself never reaches for randomness: every operation that needs it
/// takes an RNG argument (an HSM passes its own).
#[cfg(feature = "std")]
pub use rand_core::OsRng;
