//! The backup-key-vault fleet (SPEC.md §20–§24): the vault of the core
//! crate replicated by majority consensus on tikv's raft-rs, with durable
//! per-node state in redb and authenticated, encrypted messages between
//! members.
//!
//! * [`node::Node`] is one member as a pure, deterministic core: no threads,
//!   no clock, no randomness of its own. The simulation ([`sim`]) and the
//!   loopback network front ([`net`]) drive the same code.
//! * [`transport`]: every inter-node message is sealed under a key derived
//!   from the fleet secrets, with sender, receiver, incarnation and sequence
//!   number bound in; forged, altered and replayed messages are dropped and
//!   counted.
//! * [`platform`]: what the node needs from its platform, as two small
//!   traits: a host that keeps opaque rows ([`platform::HostStore`]) and,
//!   optionally, tamper-proof NVRAM ([`platform::Nvram`]). The node does no
//!   storage I/O of its own.
//! * [`sealed`]: everything the host keeps for a node is encrypted and
//!   authenticated by the node, under one manifest that commits to every
//!   row; an edited, dropped, duplicated, reordered or spliced row, or a
//!   row from another node, is detected when the node loads (SPEC.md §22).
//! * [`disk`]: the host's side on a real disk: the rows in redb.
//!
//! The guess rule holds across the fleet: KE2 only after the charge is
//! committed by a majority and applied on the answering node; the key only
//! after the reset is committed; without a majority, `Unavailable` and
//! nothing released.
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

pub mod codec;
pub mod disk;
pub mod error;
pub mod log;
pub mod net;
pub mod node;
pub mod platform;
pub mod realm_sim;
pub mod records;
pub mod sealed;
pub mod sim;
pub mod transport;

pub use error::FleetError;
pub use node::{Node, NodeConfig};
