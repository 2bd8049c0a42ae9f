#![doc = include_str!("../README.md")]
//!
//! ## Cargo features
//!
//! - **`std`** (default): the operating system's CSPRNG as [`OsRng`], and
//!   `std::error::Error` for the error types. Without it the crate is
//!   `no_std` + `alloc`, for HSMs, which pass their own RNG everywhere.
//! - **`serde`**: `Serialize`/`Deserialize` for the wire messages (as byte
//!   strings, through their own strict codecs), the record and session ids,
//!   [`FleetPublicKeys`] and [`StretchingParams`] (validated on the way in).
//! - **`parallel`** (implies `std`): Argon2id runs its lanes on several
//!   threads (argon2 0.6 with rayon). The output is the same as without it;
//!   only the time differs, where the client has cores. For apps, not HSMs.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
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
pub mod group;
pub mod suite;
pub mod types;
pub mod vault;
pub mod wire;
pub mod xwing;

pub use error::{BundleError, ClientError, StoreError, VaultError, WireError};
pub use fleet::{FleetPublicKeys, FleetSecrets};
pub use suite::StretchingParams;
pub use types::{BackupKey, RecordId, RecordRange, RecoveryCode, SessionId};

/// The operating system's CSPRNG, for apps and tools on std platforms. The
/// crate itself never reaches for randomness: every operation that needs it
/// takes an RNG argument (an HSM passes its own).
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use rand_core::OsRng;
