//! The vault's replicated state: records, commands, and the one function
//! that applies a command (SPEC.md §8).
//!
//! [`RecordTable::apply`] is the only place that changes a record. It is
//! deterministic (no clock, no randomness, no secrets of the fleet), so a
//! consensus engine can replicate the [`Command`] log and every replica
//! reaches the same table. Every precondition a command depends on is checked
//! here, at apply time, not by whoever proposed it: two proposers racing for
//! the last attempt cannot both win.

use alloc::collections::BTreeMap;
use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::WireError;
use crate::suite::StretchingParams;
use crate::types::{RecordId, RECORD_ID_LEN};
use crate::wire::{OPAQUE_REGISTRATION_RECORD_LEN, WRAPPED_KEY_LEN};

/// Length of a record's OPRF nonce.
pub const OPRF_NONCE_LEN: usize = 32;

/// What the client uploads and the vault keeps: the OPAQUE registration
/// record, the wrapped backup key, and the Argon2 parameters, plus what the
/// vault adds: the record's OPRF nonce and its attempt limit.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct RecordPayload {
    /// Random per registration, chosen by the vault; with the record id it is
    /// OPAQUE's credential identifier, so each registration has its own OPRF
    /// key (SPEC.md §4.3). Not secret: the OPRF key needs the fleet's seed.
    pub oprf_nonce: [u8; OPRF_NONCE_LEN],
    /// OPAQUE `RegistrationRecord` (client public key, masking key, envelope).
    pub registration: [u8; OPAQUE_REGISTRATION_RECORD_LEN],
    /// The backup key wrapped under the client's export key.
    pub wrapped_key: [u8; WRAPPED_KEY_LEN],
    /// The Argon2 parameters the client stretched with.
    #[zeroize(skip)]
    pub stretching: StretchingParams,
    /// Attempts allowed between successes (vault policy, never the client's).
    pub max_attempts: u8,
}

impl fmt::Debug for RecordPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordPayload")
            .field("stretching", &self.stretching)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// A live record as stored.
///
/// The attempt counter is two monotone counters: `charges` counts every
/// attempt ever charged to this generation (charge `n` is the `n`-th), and a
/// success forgives the charges up to and including its own
/// (`forgiven_through`). The attempts in use are the difference. Because
/// both only rise, and a reset names the charge it forgives through, applying
/// a reset twice, or late, forgives nothing more (SPEC.md §8.1).
///
/// A success also learns how many charges before its own no earlier success
/// had forgiven ([`Applied::Reset`]); the latest success's count is kept
/// (`last_unforgiven`) so that its reset, applied again, reports it again.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct StoredRecord {
    /// What was registered.
    pub payload: RecordPayload,
    /// Attempts ever charged to this generation.
    pub charges: u64,
    /// The last charge a success forgave (0: none). At most `charges`, and
    /// `charges - forgiven_through` is at most `payload.max_attempts`.
    pub forgiven_through: u64,
    /// What the success of charge `forgiven_through` reported as
    /// `unforgiven_attempts` (0 before the first success). Below
    /// `payload.max_attempts`, and below `forgiven_through` when that is not 0.
    pub last_unforgiven: u8,
    /// Starts at 1 and rises with every registration under this id, across
    /// erasures, so a stale command can never act on a newer record.
    pub generation: u64,
}

impl fmt::Debug for StoredRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredRecord")
            .field("payload", &self.payload)
            .field("charges", &self.charges)
            .field("forgiven_through", &self.forgiven_through)
            .field("last_unforgiven", &self.last_unforgiven)
            .field("generation", &self.generation)
            .finish()
    }
}

impl StoredRecord {
    /// A record as registered: no attempt charged.
    pub fn new(payload: RecordPayload, generation: u64) -> Self {
        Self {
            payload,
            charges: 0,
            forgiven_through: 0,
            last_unforgiven: 0,
            generation,
        }
    }

    /// Attempts charged since the last success (saturating at 255; the
    /// decoder and [`RecordTable::apply`] keep it at most `max_attempts`).
    pub fn attempts_used(&self) -> u8 {
        u8::try_from(self.charges.saturating_sub(self.forgiven_through)).unwrap_or(u8::MAX)
    }

    /// Attempts left before the record is erased.
    pub fn attempts_remaining(&self) -> u8 {
        self.payload
            .max_attempts
            .saturating_sub(self.attempts_used())
    }

    /// Forgives the charges through `charge` (a charge that was made, at
    /// least 1) and returns how many charges before it were not forgiven
    /// yet: those numbered above `forgiven_through` and below `charge`.
    fn forgive_through(&mut self, charge: u64) -> u8 {
        match charge.cmp(&self.forgiven_through) {
            core::cmp::Ordering::Greater => {
                // At most `charges - 1 - forgiven_through`, which is below
                // `max_attempts`: the conversion cannot fail.
                let unforgiven = charge
                    .saturating_sub(1)
                    .saturating_sub(self.forgiven_through);
                self.forgiven_through = charge;
                self.last_unforgiven = u8::try_from(unforgiven).unwrap_or(u8::MAX);
                self.last_unforgiven
            }
            // Only the session of charge `charge` names it: this is the
            // latest success's reset, applied again.
            core::cmp::Ordering::Equal => self.last_unforgiven,
            // A later success forgave this charge and reported the charges
            // before it.
            core::cmp::Ordering::Less => 0,
        }
    }
}

/// What the table holds for one id.
// Tombstones are few and small; boxing the live record would cost an
// allocation per record on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq)]
pub enum RecordSlot {
    /// A record that can be recovered.
    Live(StoredRecord),
    /// A record that was erased (guesses exhausted) or deleted by the
    /// operator. Holds no secret: the record's bytes were zeroized when it
    /// was replaced by this tombstone. Keeps the generation so a later
    /// registration continues from it.
    Erased {
        /// The generation of the erased record.
        generation: u64,
    },
}

impl fmt::Debug for RecordSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Live(r) => f.debug_tuple("Live").field(r).finish(),
            Self::Erased { generation } => f
                .debug_struct("Erased")
                .field("generation", generation)
                .finish(),
        }
    }
}

impl RecordSlot {
    /// The slot's generation.
    pub fn generation(&self) -> u64 {
        match self {
            Self::Live(r) => r.generation,
            Self::Erased { generation } => *generation,
        }
    }
}

/// A state change, as proposed to the store (and, in a fleet, to consensus).
// Commands are short-lived values on their way to the log; boxing the
// payload would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// Store a new record as `generation`. Applies only if the slot's state
    /// matches `replaces`: `None` means no live record may exist; `Some(g)`
    /// means the live record of generation `g` is replaced (re-registration
    /// after a proven recovery). And only if `generation` is the slot's
    /// generation plus one, so a `Register` applied a second time (after the
    /// record it created was erased or deleted) is refused instead of
    /// bringing the record back with fresh attempts.
    Register {
        /// The record id.
        record_id: RecordId,
        /// The generation this registration replaces, if any.
        replaces: Option<u64>,
        /// The generation it creates: one more than the slot's.
        generation: u64,
        /// What to store.
        payload: RecordPayload,
    },
    /// Charge one attempt to the live record of this generation, if it has
    /// one left.
    ChargeAttempt {
        /// The record id.
        record_id: RecordId,
        /// The generation charged.
        generation: u64,
    },
    /// Forgive the attempts of the live record of this generation up to and
    /// including `charge`, the charge of the session that succeeded. Charges
    /// made after it stay counted; applied again, or after a later success,
    /// it forgives nothing more.
    ResetAttempts {
        /// The record id.
        record_id: RecordId,
        /// The generation reset.
        generation: u64,
        /// The charge (as [`Applied::Charged`] numbered it) of the session
        /// whose success this is.
        charge: u64,
    },
    /// Erase the live record of this generation, if all its attempts are
    /// spent and `charge` is its latest charge: the session of a later
    /// charge, which holds the last attempt now, may still succeed.
    Erase {
        /// The record id.
        record_id: RecordId,
        /// The generation erased.
        generation: u64,
        /// The latest charge as the proposer saw it: the charge of the
        /// session that failed on the last attempt, or the record's
        /// `charges` when no session of it is pending.
        charge: u64,
    },
    /// Delete the record whatever its state (the operator's account removal).
    Delete {
        /// The record id.
        record_id: RecordId,
    },
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Register {
                record_id,
                replaces,
                generation,
                ..
            } => f
                .debug_struct("Register")
                .field("record_id", record_id)
                .field("replaces", replaces)
                .field("generation", generation)
                .finish_non_exhaustive(),
            Self::ChargeAttempt {
                record_id,
                generation,
            } => f
                .debug_struct("ChargeAttempt")
                .field("record_id", record_id)
                .field("generation", generation)
                .finish(),
            Self::ResetAttempts {
                record_id,
                generation,
                charge,
            } => f
                .debug_struct("ResetAttempts")
                .field("record_id", record_id)
                .field("generation", generation)
                .field("charge", charge)
                .finish(),
            Self::Erase {
                record_id,
                generation,
                charge,
            } => f
                .debug_struct("Erase")
                .field("record_id", record_id)
                .field("generation", generation)
                .field("charge", charge)
                .finish(),
            Self::Delete { record_id } => f
                .debug_struct("Delete")
                .field("record_id", record_id)
                .finish(),
        }
    }
}

/// What applying a command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record was stored with this generation.
    Registered {
        /// The new record's generation.
        generation: u64,
    },
    /// One attempt was charged; this many remain.
    Charged {
        /// Attempts left after the charge.
        attempts_remaining: u8,
        /// The charge's number in its generation (1 for the first): what a
        /// `ResetAttempts` after this session's success names.
        charge: u64,
    },
    /// The attempts up to the named charge are forgiven (if a later success
    /// had not forgiven them already).
    Reset {
        /// How many charges before the named one no earlier success had
        /// forgiven: wrong codes, and sessions that never finished (SPEC.md
        /// §8.1). The session's own charge is not counted. 0 if a later
        /// success already forgave the named charge; the same count again if
        /// this reset was already applied and no later success came since.
        unforgiven_attempts: u8,
    },
    /// The record was erased.
    Erased,
    /// The record was deleted (or there was nothing to delete).
    Deleted,
    /// A precondition failed; nothing changed.
    Refused(Refusal),
}

/// Why a command changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No live record with that id.
    NoLiveRecord,
    /// The live record has another generation.
    GenerationMismatch,
    /// A live record exists and the registration did not name it.
    RecordExists,
    /// Every attempt is already spent.
    Exhausted,
    /// Attempts remain, or a charge later than the one the `Erase` named
    /// holds the last attempt, so the record may not be erased.
    NotExhausted,
    /// The payload is invalid (zero attempts, invalid parameters).
    InvalidPayload,
    /// The id has used every generation number (2^64 registrations).
    GenerationExhausted,
    /// A reset names a charge that was never made.
    UnknownCharge,
}

/// All records, keyed by id. The deterministic state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordTable {
    slots: BTreeMap<RecordId, RecordSlot>,
}

impl RecordTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot for an id.
    pub fn get(&self, record_id: &RecordId) -> Option<&RecordSlot> {
        self.slots.get(record_id)
    }

    /// Puts a slot back as a snapshot recorded it. For a replica restoring
    /// the table of one log position from its snapshot (SPEC.md §22), never a
    /// state change of its own: every change still goes through
    /// [`RecordTable::apply`].
    pub fn restore(&mut self, record_id: RecordId, slot: RecordSlot) {
        self.slots.insert(record_id, slot);
    }

    /// Every slot, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordId, &RecordSlot)> {
        self.slots.iter()
    }

    /// Number of slots (live and erased).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table has no slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Applies one command. Deterministic: the same table and command give
    /// the same result on every replica.
    pub fn apply(&mut self, command: &Command) -> Applied {
        match command {
            Command::Register {
                record_id,
                replaces,
                generation,
                payload,
            } => {
                if payload.max_attempts == 0 || !payload.stretching.is_valid() {
                    return Applied::Refused(Refusal::InvalidPayload);
                }
                let previous = self.slots.get(record_id);
                let base = match (previous, replaces) {
                    (None, None) => 0,
                    (Some(RecordSlot::Erased { generation }), None) => *generation,
                    (Some(RecordSlot::Live(_)), None) => {
                        return Applied::Refused(Refusal::RecordExists)
                    }
                    (Some(RecordSlot::Live(r)), Some(g)) if r.generation == *g => r.generation,
                    (Some(RecordSlot::Live(_)), Some(_)) => {
                        return Applied::Refused(Refusal::GenerationMismatch)
                    }
                    (_, Some(_)) => return Applied::Refused(Refusal::NoLiveRecord),
                };
                let Some(next) = base.checked_add(1) else {
                    return Applied::Refused(Refusal::GenerationExhausted);
                };
                if *generation != next {
                    // Applied a second time, or proposed on a stale view.
                    return Applied::Refused(Refusal::GenerationMismatch);
                }
                // Inserting drops (and so zeroizes) any replaced record.
                self.slots.insert(
                    *record_id,
                    RecordSlot::Live(StoredRecord::new(payload.clone(), next)),
                );
                Applied::Registered { generation: next }
            }
            Command::ChargeAttempt {
                record_id,
                generation,
            } => match self.live_mut(record_id, *generation) {
                Err(refusal) => Applied::Refused(refusal),
                Ok(record) if record.attempts_used() >= record.payload.max_attempts => {
                    Applied::Refused(Refusal::Exhausted)
                }
                Ok(record) => match record.charges.checked_add(1) {
                    // 2^64 charges cannot be made; refuse rather than wrap.
                    None => Applied::Refused(Refusal::Exhausted),
                    Some(charge) => {
                        record.charges = charge;
                        Applied::Charged {
                            attempts_remaining: record.attempts_remaining(),
                            charge,
                        }
                    }
                },
            },
            Command::ResetAttempts {
                record_id,
                generation,
                charge,
            } => match self.live_mut(record_id, *generation) {
                Err(refusal) => Applied::Refused(refusal),
                Ok(record) if *charge == 0 || *charge > record.charges => {
                    Applied::Refused(Refusal::UnknownCharge)
                }
                Ok(record) => Applied::Reset {
                    unforgiven_attempts: record.forgive_through(*charge),
                },
            },
            Command::Erase {
                record_id,
                generation,
                charge,
            } => match self.live_mut(record_id, *generation) {
                Err(refusal) => Applied::Refused(refusal),
                Ok(record) if *charge == 0 || *charge > record.charges => {
                    Applied::Refused(Refusal::UnknownCharge)
                }
                // Attempts remain, or a later charge's session holds the
                // last one now.
                Ok(record)
                    if record.attempts_used() < record.payload.max_attempts
                        || *charge < record.charges =>
                {
                    Applied::Refused(Refusal::NotExhausted)
                }
                Ok(_) => {
                    self.tombstone(record_id);
                    Applied::Erased
                }
            },
            Command::Delete { record_id } => {
                self.tombstone(record_id);
                Applied::Deleted
            }
        }
    }

    fn live_mut(
        &mut self,
        record_id: &RecordId,
        generation: u64,
    ) -> Result<&mut StoredRecord, Refusal> {
        match self.slots.get_mut(record_id) {
            Some(RecordSlot::Live(r)) if r.generation == generation => Ok(r),
            Some(RecordSlot::Live(_)) => Err(Refusal::GenerationMismatch),
            _ => Err(Refusal::NoLiveRecord),
        }
    }

    /// Replaces a live record by a tombstone, zeroizing its bytes first.
    fn tombstone(&mut self, record_id: &RecordId) {
        if let Some(slot) = self.slots.get_mut(record_id) {
            let generation = slot.generation();
            if let RecordSlot::Live(record) = slot {
                record.zeroize();
            }
            *slot = RecordSlot::Erased { generation };
        }
    }
}

/// Version byte of the [`Command`] encoding. Version 2: `Register` names
/// the generation it creates, `ResetAttempts` the charge it forgives through.
pub const COMMAND_VERSION: u8 = 2;

const TAG_REGISTER: u8 = 1;
const TAG_CHARGE: u8 = 2;
const TAG_RESET: u8 = 3;
const TAG_ERASE: u8 = 4;
const TAG_DELETE: u8 = 5;

/// Encoded length of a [`RecordPayload`].
pub const PAYLOAD_LEN: usize = OPRF_NONCE_LEN
    + OPAQUE_REGISTRATION_RECORD_LEN
    + WRAPPED_KEY_LEN
    + StretchingParams::ENCODED_LEN
    + 1;
/// Encoded length of a [`StoredRecord`]: payload, charges, forgiven
/// through, generation, last unforgiven.
pub const STORED_RECORD_LEN: usize = PAYLOAD_LEN + 8 + 8 + 8 + 1;

// The size budget (issue 7, BENCHMARKS.md): a persisted live slot, version
// and tag included, takes at most 320 bytes. Checked at compile time.
const _: () = assert!(2 + STORED_RECORD_LEN <= 320);

impl RecordPayload {
    fn encode_into(&self, out: &mut alloc::vec::Vec<u8>) {
        out.extend_from_slice(&self.oprf_nonce);
        out.extend_from_slice(&self.registration);
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.stretching.to_bytes());
        out.push(self.max_attempts);
    }

    fn decode(bytes: &[u8; PAYLOAD_LEN]) -> Result<Self, WireError> {
        let mut r = Fields(bytes);
        let oprf_nonce = r.take()?;
        let registration = r.take()?;
        let wrapped_key = r.take()?;
        let stretching = StretchingParams::from_bytes(&r.take()?)
            .ok_or(WireError::InvalidField("stretching parameters"))?;
        let [max_attempts] = r.take()?;
        if max_attempts == 0 {
            return Err(WireError::InvalidField("max attempts"));
        }
        Ok(Self {
            oprf_nonce,
            registration,
            wrapped_key,
            stretching,
            max_attempts,
        })
    }
}

/// Version byte of the [`RecordSlot`] encoding. Version 2: a live record
/// keeps two monotone counters instead of the attempts used. Version 3: and
/// the count its latest success reported (`last_unforgiven`, one byte at
/// the end).
pub const SLOT_VERSION: u8 = 3;
const SLOT_LIVE: u8 = 1;
const SLOT_ERASED: u8 = 2;

impl RecordSlot {
    /// Encodes the slot as a store persists it (SPEC.md §8.4):
    /// `version || 1 || payload || charges || forgiven_through || generation
    /// || last_unforgiven` for a live record, `version || 2 || generation`
    /// for a tombstone.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<alloc::vec::Vec<u8>> {
        let mut out =
            zeroize::Zeroizing::new(alloc::vec::Vec::with_capacity(2 + STORED_RECORD_LEN));
        out.push(SLOT_VERSION);
        match self {
            Self::Live(record) => {
                out.push(SLOT_LIVE);
                record.payload.encode_into(&mut out);
                out.extend_from_slice(&record.charges.to_be_bytes());
                out.extend_from_slice(&record.forgiven_through.to_be_bytes());
                out.extend_from_slice(&record.generation.to_be_bytes());
                out.push(record.last_unforgiven);
            }
            Self::Erased { generation } => {
                out.push(SLOT_ERASED);
                out.extend_from_slice(&generation.to_be_bytes());
            }
        }
        out
    }

    /// Decodes a slot, strictly: known version and tag, exact length, and a
    /// live record's counters consistent with its limit.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let (&version, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        if version != SLOT_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let (&tag, body) = rest.split_first().ok_or(WireError::Empty)?;
        let exact = |len: usize| -> Result<(), WireError> {
            if body.len() == len {
                Ok(())
            } else {
                Err(WireError::Length {
                    expected: 2 + len,
                    found: bytes.len(),
                })
            }
        };
        let mut r = Fields(body);
        let slot = match tag {
            SLOT_LIVE => {
                exact(STORED_RECORD_LEN)?;
                let payload = RecordPayload::decode(&r.take()?)?;
                let charges = u64::from_be_bytes(r.take()?);
                let forgiven_through = u64::from_be_bytes(r.take()?);
                let generation = u64::from_be_bytes(r.take()?);
                let [last_unforgiven] = r.take()?;
                match charges.checked_sub(forgiven_through) {
                    Some(used) if used <= u64::from(payload.max_attempts) => {}
                    _ => return Err(WireError::InvalidField("attempts used")),
                }
                if generation == 0 {
                    return Err(WireError::InvalidField("generation"));
                }
                // The latest success counted charges below its own, and
                // fewer than the limit (SPEC.md §8.4).
                if last_unforgiven >= payload.max_attempts
                    || u64::from(last_unforgiven) >= forgiven_through.max(1)
                {
                    return Err(WireError::InvalidField("last unforgiven"));
                }
                Self::Live(StoredRecord {
                    payload,
                    charges,
                    forgiven_through,
                    last_unforgiven,
                    generation,
                })
            }
            SLOT_ERASED => {
                exact(8)?;
                Self::Erased {
                    generation: u64::from_be_bytes(r.take()?),
                }
            }
            other => return Err(WireError::UnknownType(other)),
        };
        Ok(slot)
    }
}

impl Command {
    /// The record this command acts on.
    pub fn record_id(&self) -> &RecordId {
        match self {
            Self::Register { record_id, .. }
            | Self::ChargeAttempt { record_id, .. }
            | Self::ResetAttempts { record_id, .. }
            | Self::Erase { record_id, .. }
            | Self::Delete { record_id } => record_id,
        }
    }

    /// Encodes the command (SPEC.md §8.2): `version || tag || record_id ||
    /// fields`. The encoding of a `Register` carries the user's record and is
    /// to be protected like it (the fleet encrypts it between members).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<alloc::vec::Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(alloc::vec::Vec::new());
        out.push(COMMAND_VERSION);
        match self {
            Self::Register {
                record_id,
                replaces,
                generation,
                payload,
            } => {
                out.push(TAG_REGISTER);
                out.extend_from_slice(record_id.as_bytes());
                match replaces {
                    None => out.extend_from_slice(&[0; 9]),
                    Some(g) => {
                        out.push(1);
                        out.extend_from_slice(&g.to_be_bytes());
                    }
                }
                out.extend_from_slice(&generation.to_be_bytes());
                payload.encode_into(&mut out);
            }
            Self::ResetAttempts {
                record_id,
                generation,
                charge,
            }
            | Self::Erase {
                record_id,
                generation,
                charge,
            } => {
                out.push(match self {
                    Self::ResetAttempts { .. } => TAG_RESET,
                    _ => TAG_ERASE,
                });
                out.extend_from_slice(record_id.as_bytes());
                out.extend_from_slice(&generation.to_be_bytes());
                out.extend_from_slice(&charge.to_be_bytes());
            }
            Self::ChargeAttempt {
                record_id,
                generation,
            } => {
                out.push(TAG_CHARGE);
                out.extend_from_slice(record_id.as_bytes());
                out.extend_from_slice(&generation.to_be_bytes());
            }
            Self::Delete { record_id } => {
                out.push(TAG_DELETE);
                out.extend_from_slice(record_id.as_bytes());
            }
        }
        out
    }

    /// Decodes a command, strictly: known version and tag, exact length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let (&version, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        if version != COMMAND_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let (&tag, body) = rest.split_first().ok_or(WireError::Empty)?;
        let expect = |len: usize| {
            if body.len() == len {
                Ok(())
            } else {
                Err(WireError::Length {
                    expected: 2 + len,
                    found: bytes.len(),
                })
            }
        };
        let mut r = Fields(body);
        let command = match tag {
            TAG_REGISTER => {
                expect(RECORD_ID_LEN + 17 + PAYLOAD_LEN)?;
                let record_id = RecordId(r.take()?);
                let [flag] = r.take()?;
                let replaced = u64::from_be_bytes(r.take()?);
                let replaces = match (flag, replaced) {
                    (0, 0) => None,
                    // Generations start at 1: `Some(0)` names no record.
                    (1, g) if g >= 1 => Some(g),
                    _ => return Err(WireError::InvalidField("replaces")),
                };
                let generation = u64::from_be_bytes(r.take()?);
                // The created generation follows the replaced one; a fresh
                // registration creates at least generation 1.
                let follows = match replaces {
                    Some(g) => g.checked_add(1) == Some(generation),
                    None => generation >= 1,
                };
                if !follows {
                    return Err(WireError::InvalidField("generation"));
                }
                let payload = RecordPayload::decode(&r.take()?)?;
                Self::Register {
                    record_id,
                    replaces,
                    generation,
                    payload,
                }
            }
            TAG_RESET | TAG_ERASE => {
                expect(RECORD_ID_LEN + 16)?;
                let record_id = RecordId(r.take()?);
                let generation = u64::from_be_bytes(r.take()?);
                let charge = u64::from_be_bytes(r.take()?);
                if charge == 0 {
                    return Err(WireError::InvalidField("charge"));
                }
                if tag == TAG_RESET {
                    Self::ResetAttempts {
                        record_id,
                        generation,
                        charge,
                    }
                } else {
                    Self::Erase {
                        record_id,
                        generation,
                        charge,
                    }
                }
            }
            TAG_CHARGE => {
                expect(RECORD_ID_LEN + 8)?;
                Self::ChargeAttempt {
                    record_id: RecordId(r.take()?),
                    generation: u64::from_be_bytes(r.take()?),
                }
            }
            TAG_DELETE => {
                expect(RECORD_ID_LEN)?;
                Self::Delete {
                    record_id: RecordId(r.take()?),
                }
            }
            other => return Err(WireError::UnknownType(other)),
        };
        if r.0.is_empty() {
            Ok(command)
        } else {
            Err(WireError::InvalidField("trailing bytes"))
        }
    }
}

/// Takes fixed-size fields off the front of a slice whose length was
/// checked; a short slice is an error, never a panic.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, tail) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(WireError::InvalidField("length"))?;
        self.0 = tail;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(max: u8) -> RecordPayload {
        RecordPayload {
            oprf_nonce: [0x33; OPRF_NONCE_LEN],
            registration: [0x11; OPAQUE_REGISTRATION_RECORD_LEN],
            wrapped_key: [0x22; WRAPPED_KEY_LEN],
            stretching: StretchingParams::INSECURE_TEST_ONLY,
            max_attempts: max,
        }
    }

    const ID: RecordId = RecordId([5; 32]);

    fn register_command(replaces: Option<u64>, generation: u64, max: u8) -> Command {
        Command::Register {
            record_id: ID,
            replaces,
            generation,
            payload: payload(max),
        }
    }

    fn register(
        table: &mut RecordTable,
        replaces: Option<u64>,
        generation: u64,
        max: u8,
    ) -> Applied {
        table.apply(&register_command(replaces, generation, max))
    }

    fn charge(table: &mut RecordTable, generation: u64) -> Applied {
        table.apply(&Command::ChargeAttempt {
            record_id: ID,
            generation,
        })
    }

    fn reset(table: &mut RecordTable, generation: u64, charge: u64) -> Applied {
        table.apply(&Command::ResetAttempts {
            record_id: ID,
            generation,
            charge,
        })
    }

    fn used(table: &RecordTable) -> Option<u8> {
        match table.get(&ID) {
            Some(RecordSlot::Live(r)) => Some(r.attempts_used()),
            _ => None,
        }
    }

    fn reported(unforgiven_attempts: u8) -> Applied {
        Applied::Reset {
            unforgiven_attempts,
        }
    }

    fn charged(attempts_remaining: u8, charge: u64) -> Applied {
        Applied::Charged {
            attempts_remaining,
            charge,
        }
    }

    #[test]
    fn charge_counts_down_numbers_charges_and_stops_at_zero() {
        let mut t = RecordTable::new();
        assert_eq!(
            register(&mut t, None, 1, 3),
            Applied::Registered { generation: 1 }
        );
        assert_eq!(charge(&mut t, 1), charged(2, 1));
        assert_eq!(charge(&mut t, 1), charged(1, 2));
        assert_eq!(charge(&mut t, 1), charged(0, 3));
        assert_eq!(charge(&mut t, 1), Applied::Refused(Refusal::Exhausted));
        assert_eq!(
            charge(&mut t, 2),
            Applied::Refused(Refusal::GenerationMismatch)
        );
    }

    #[test]
    fn reset_forgives_through_its_own_charge_only() {
        let mut t = RecordTable::new();
        register(&mut t, None, 1, 3);
        charge(&mut t, 1);
        charge(&mut t, 1);
        charge(&mut t, 1);
        // The session of charge 2 succeeded; charge 3 (another session,
        // perhaps a guesser's) stays counted.
        // Charge 1 (a guess, or a session never finished) was not forgiven
        // before this success: it is reported.
        assert_eq!(reset(&mut t, 1, 2), reported(1));
        assert_eq!(used(&t), Some(1));
        assert_eq!(charge(&mut t, 1), charged(1, 4));
        // The success of charge 4 forgives everything so far.
        assert_eq!(reset(&mut t, 1, 4), reported(1));
        assert_eq!(used(&t), Some(0));
        // A reset for a charge not made, or charge 0, is refused.
        assert_eq!(
            reset(&mut t, 1, 5),
            Applied::Refused(Refusal::UnknownCharge)
        );
        assert_eq!(
            reset(&mut t, 1, 0),
            Applied::Refused(Refusal::UnknownCharge)
        );
        assert_eq!(
            reset(&mut t, 2, 1),
            Applied::Refused(Refusal::GenerationMismatch)
        );
    }

    #[test]
    fn a_reset_reports_the_charges_before_its_own_that_no_success_forgave() {
        let mut t = RecordTable::new();
        register(&mut t, None, 1, 5);
        // Charges 1 and 2 (a relay's guesses), then the user's charge 3,
        // then charge 4 (a guess made while the user's session is pending).
        for n in 1..=4 {
            assert_eq!(charge(&mut t, 1), charged(5 - n as u8, n));
        }
        // The user's success: charges 1 and 2, not its own, not the later 4.
        assert_eq!(reset(&mut t, 1, 3), reported(2));
        // The same reset applied again (a store that retried a commit)
        // reports the same; the slot remembers it.
        assert_eq!(reset(&mut t, 1, 3), reported(2));
        match t.get(&ID) {
            Some(RecordSlot::Live(r)) => assert_eq!(r.last_unforgiven, 2),
            other => panic!("{other:?}"),
        }
        // The next success reports charge 4 only.
        assert_eq!(charge(&mut t, 1), charged(3, 5));
        assert_eq!(reset(&mut t, 1, 5), reported(1));
        // A slower success of an earlier charge (or an old reset applied
        // late): everything before it was reported already.
        assert_eq!(reset(&mut t, 1, 3), reported(0));
        assert_eq!(reset(&mut t, 1, 5), reported(1));
        // Nothing charged in between: 0.
        assert_eq!(charge(&mut t, 1), charged(4, 6));
        assert_eq!(reset(&mut t, 1, 6), reported(0));
        // Every concurrent session's charge counts for the one that
        // succeeds first (by charge order): the user's own two devices
        // included (SPEC.md §8.1).
        for n in 7..=9 {
            assert_eq!(charge(&mut t, 1), charged(9 - n as u8 + 2, n));
        }
        assert_eq!(reset(&mut t, 1, 9), reported(2));
        assert_eq!(reset(&mut t, 1, 8), reported(0));
        // At most max_attempts - 1: a success after every other attempt.
        for n in 10..=14 {
            assert_eq!(charge(&mut t, 1), charged(14 - n as u8, n));
        }
        assert_eq!(reset(&mut t, 1, 14), reported(4));
        // A new generation starts from nothing.
        assert_eq!(
            register(&mut t, Some(1), 2, 5),
            Applied::Registered { generation: 2 }
        );
        assert_eq!(charge(&mut t, 2), charged(4, 1));
        assert_eq!(reset(&mut t, 2, 1), reported(0));
    }

    #[test]
    fn a_reset_applied_twice_or_late_gives_no_fresh_attempts() {
        // SPEC.md §8.3: a duplicated ResetAttempts once zeroed the counter
        // with no success behind it. Now it forgives nothing more.
        let mut t = RecordTable::new();
        register(&mut t, None, 1, 3);
        assert_eq!(charge(&mut t, 1), charged(2, 1));
        assert_eq!(reset(&mut t, 1, 1), reported(0));
        // A guesser spends every attempt.
        for _ in 0..3 {
            assert!(matches!(charge(&mut t, 1), Applied::Charged { .. }));
        }
        assert_eq!(charge(&mut t, 1), Applied::Refused(Refusal::Exhausted));
        // The earlier reset, applied again: acknowledged, but no attempt
        // comes back.
        assert_eq!(reset(&mut t, 1, 1), reported(0));
        assert_eq!(used(&t), Some(3));
        assert_eq!(charge(&mut t, 1), Applied::Refused(Refusal::Exhausted));
    }

    #[test]
    fn only_the_latest_charge_may_erase() {
        // The session of charge 3 held the last attempt when it was
        // charged; then the success of charge 1 forgave one attempt and
        // charge 4 took the last one. The failure of charge 3 must not erase
        // the record while charge 4's session may still succeed.
        let mut t = RecordTable::new();
        register(&mut t, None, 1, 3);
        for _ in 0..3 {
            charge(&mut t, 1);
        }
        assert_eq!(reset(&mut t, 1, 1), reported(0));
        assert_eq!(charge(&mut t, 1), charged(0, 4));
        let erase = |charge| Command::Erase {
            record_id: ID,
            generation: 1,
            charge,
        };
        assert_eq!(t.apply(&erase(3)), Applied::Refused(Refusal::NotExhausted));
        assert_eq!(t.apply(&erase(5)), Applied::Refused(Refusal::UnknownCharge));
        assert_eq!(t.apply(&erase(0)), Applied::Refused(Refusal::UnknownCharge));
        assert_eq!(used(&t), Some(3));
        // Attempts left and an unknown charge: UnknownCharge wins (SPEC.md
        // §8.1: the charge is checked first).
        let mut fresh = RecordTable::new();
        register(&mut fresh, None, 1, 3);
        charge(&mut fresh, 1);
        for unknown in [0, 2] {
            assert_eq!(
                fresh.apply(&Command::Erase {
                    record_id: ID,
                    generation: 1,
                    charge: unknown,
                }),
                Applied::Refused(Refusal::UnknownCharge)
            );
        }
        // Charge 4's failure does.
        assert_eq!(t.apply(&erase(4)), Applied::Erased);
    }

    #[test]
    fn a_register_applied_twice_never_revives_an_erased_record() {
        // SPEC.md §8.3: a duplicated Register { replaces: None } applied
        // after erasure once brought the record back with fresh attempts.
        let mut t = RecordTable::new();
        let first = register_command(None, 1, 1);
        assert_eq!(t.apply(&first), Applied::Registered { generation: 1 });
        assert_eq!(t.apply(&first), Applied::Refused(Refusal::RecordExists));
        charge(&mut t, 1);
        let erase = Command::Erase {
            record_id: ID,
            generation: 1,
            charge: 1,
        };
        assert_eq!(t.apply(&erase), Applied::Erased);
        assert_eq!(
            t.apply(&first),
            Applied::Refused(Refusal::GenerationMismatch)
        );
        assert_eq!(t.get(&ID), Some(&RecordSlot::Erased { generation: 1 }));
        // The same after an operator deletion.
        assert_eq!(
            register(&mut t, None, 2, 1),
            Applied::Registered { generation: 2 }
        );
        t.apply(&Command::Delete { record_id: ID });
        assert_eq!(
            register(&mut t, None, 2, 1),
            Applied::Refused(Refusal::GenerationMismatch)
        );
        assert_eq!(t.get(&ID), Some(&RecordSlot::Erased { generation: 2 }));
        // A registration proposed for the next generation applies; one
        // that skips ahead does not.
        assert_eq!(
            register(&mut t, None, 4, 1),
            Applied::Refused(Refusal::GenerationMismatch)
        );
        assert_eq!(
            register(&mut t, None, 3, 1),
            Applied::Registered { generation: 3 }
        );
    }

    #[test]
    fn erase_only_when_exhausted_and_leaves_no_secret() {
        let mut t = RecordTable::new();
        register(&mut t, None, 1, 1);
        let erase = Command::Erase {
            record_id: ID,
            generation: 1,
            charge: 1,
        };
        assert_eq!(t.apply(&erase), Applied::Refused(Refusal::UnknownCharge));
        charge(&mut t, 1);
        assert_eq!(t.apply(&erase), Applied::Erased);
        assert_eq!(t.get(&ID), Some(&RecordSlot::Erased { generation: 1 }));
        // Erased records never come back: every command on the old
        // generation is refused.
        assert_eq!(charge(&mut t, 1), Applied::Refused(Refusal::NoLiveRecord));
        assert_eq!(reset(&mut t, 1, 1), Applied::Refused(Refusal::NoLiveRecord));
        // A new registration continues the generation count.
        assert_eq!(
            register(&mut t, None, 2, 1),
            Applied::Registered { generation: 2 }
        );
    }

    #[test]
    fn register_over_live_record_needs_its_generation() {
        let mut t = RecordTable::new();
        register(&mut t, None, 1, 3);
        assert_eq!(
            register(&mut t, None, 2, 3),
            Applied::Refused(Refusal::RecordExists)
        );
        assert_eq!(
            register(&mut t, Some(7), 8, 3),
            Applied::Refused(Refusal::GenerationMismatch)
        );
        let replace = register_command(Some(1), 2, 3);
        assert_eq!(t.apply(&replace), Applied::Registered { generation: 2 });
        assert_eq!(
            t.apply(&replace),
            Applied::Refused(Refusal::GenerationMismatch)
        );
        let mut empty = RecordTable::new();
        assert_eq!(
            register(&mut empty, Some(1), 2, 3),
            Applied::Refused(Refusal::NoLiveRecord)
        );
        assert_eq!(
            register(&mut empty, None, 1, 0),
            Applied::Refused(Refusal::InvalidPayload)
        );
    }

    #[test]
    fn stored_record_zeroize_clears_secrets() {
        let mut r = StoredRecord::new(payload(3), 1);
        r.zeroize();
        assert_eq!(r.payload.registration, [0; OPAQUE_REGISTRATION_RECORD_LEN]);
        assert_eq!(r.payload.wrapped_key, [0; WRAPPED_KEY_LEN]);
        assert_eq!(r.payload.oprf_nonce, [0; OPRF_NONCE_LEN]);
    }

    #[test]
    fn command_codec_round_trips_and_is_strict() {
        let commands = [
            register_command(None, 1, 10),
            register_command(None, 6, 10),
            register_command(Some(4), 5, 10),
            Command::ChargeAttempt {
                record_id: ID,
                generation: 9,
            },
            Command::ResetAttempts {
                record_id: ID,
                generation: 9,
                charge: 3,
            },
            Command::Erase {
                record_id: ID,
                generation: 9,
                charge: 12,
            },
            Command::Delete { record_id: ID },
        ];
        for c in &commands {
            let bytes = c.to_bytes();
            assert_eq!(Command::from_bytes(&bytes).as_ref(), Ok(c));
            assert!(Command::from_bytes(&bytes[..bytes.len() - 1]).is_err());
            let mut long = bytes.to_vec();
            long.push(0);
            assert!(Command::from_bytes(&long).is_err());
        }
        assert_eq!(
            Command::from_bytes(&[1, 2]),
            Err(WireError::UnsupportedVersion(1))
        );
        assert_eq!(Command::from_bytes(&[2, 9]), Err(WireError::UnknownType(9)));
        // SPEC.md §8.2: the replaced generation is 0 with flag 0, >= 1 with
        // flag 1; the created one is >= 1, and the replaced one plus one.
        for (replaces, generation, field) in [
            (Some(0), 1, "replaces"),
            (None, 0, "generation"),
            (Some(4), 4, "generation"),
            (Some(4), 6, "generation"),
            (Some(u64::MAX), 0, "generation"),
        ] {
            assert_eq!(
                Command::from_bytes(&register_command(replaces, generation, 10).to_bytes()),
                Err(WireError::InvalidField(field)),
                "{replaces:?} -> {generation}"
            );
        }
        for zero in [
            Command::ResetAttempts {
                record_id: ID,
                generation: 1,
                charge: 0,
            },
            Command::Erase {
                record_id: ID,
                generation: 1,
                charge: 0,
            },
        ] {
            assert_eq!(
                Command::from_bytes(&zero.to_bytes()),
                Err(WireError::InvalidField("charge"))
            );
        }
    }

    #[test]
    fn slot_codec_round_trips_and_is_strict() {
        let mut record = StoredRecord::new(payload(10), 2);
        record.charges = 40;
        record.forgiven_through = 33;
        record.last_unforgiven = 9;
        let live = RecordSlot::Live(record);
        let bytes = live.to_bytes();
        assert_eq!(bytes.len(), 2 + STORED_RECORD_LEN);
        assert_eq!(bytes.len(), 312);
        assert_eq!(bytes[311], 9, "last_unforgiven is the last byte");
        assert_eq!(RecordSlot::from_bytes(&bytes), Ok(live.clone()));
        let counters = 2 + PAYLOAD_LEN;
        // More attempts in use than allowed, or more forgiven than charged.
        for (charges, forgiven) in [(44u64, 33u64), (33, 40)] {
            let mut bad = bytes.to_vec();
            bad[counters..counters + 8].copy_from_slice(&charges.to_be_bytes());
            bad[counters + 8..counters + 16].copy_from_slice(&forgiven.to_be_bytes());
            assert_eq!(
                RecordSlot::from_bytes(&bad),
                Err(WireError::InvalidField("attempts used"))
            );
        }
        // The latest success's count: below the limit, and below its own
        // charge (none before the first success).
        let last = 2 + STORED_RECORD_LEN - 1;
        let mut bad = bytes.to_vec();
        bad[last] = 10;
        assert_eq!(
            RecordSlot::from_bytes(&bad),
            Err(WireError::InvalidField("last unforgiven"))
        );
        let mut fresh = StoredRecord::new(payload(10), 2);
        fresh.charges = 3;
        let fresh = RecordSlot::Live(fresh).to_bytes();
        assert!(RecordSlot::from_bytes(&fresh).is_ok());
        let mut bad = fresh.to_vec();
        bad[last] = 1;
        assert_eq!(
            RecordSlot::from_bytes(&bad),
            Err(WireError::InvalidField("last unforgiven"))
        );
        let erased = RecordSlot::Erased { generation: 7 };
        let bytes = erased.to_bytes();
        assert_eq!(bytes.len(), 10);
        assert_eq!(RecordSlot::from_bytes(&bytes), Ok(erased));
        assert!(RecordSlot::from_bytes(&bytes[..9]).is_err());
        for old in [1, 2] {
            let mut v = bytes.to_vec();
            v[0] = old;
            assert_eq!(
                RecordSlot::from_bytes(&v),
                Err(WireError::UnsupportedVersion(old))
            );
        }
    }

    /// A slot or command of the wrong length is refused with the length
    /// its tag requires (version and tag bytes included) and the length
    /// found, so a host's truncated row is named exactly.
    #[test]
    fn wrong_lengths_name_the_expected_and_found_lengths() {
        let live = RecordSlot::Live(StoredRecord::new(payload(10), 2)).to_bytes();
        for cut in [live.len() - 1, 3] {
            assert_eq!(
                RecordSlot::from_bytes(&live[..cut]),
                Err(WireError::Length {
                    expected: 2 + STORED_RECORD_LEN,
                    found: cut,
                })
            );
        }
        let mut long = live.to_vec();
        long.push(0);
        assert_eq!(
            RecordSlot::from_bytes(&long),
            Err(WireError::Length {
                expected: 2 + STORED_RECORD_LEN,
                found: 2 + STORED_RECORD_LEN + 1,
            })
        );
        let erased = RecordSlot::Erased { generation: 7 }.to_bytes();
        assert_eq!(
            RecordSlot::from_bytes(&erased[..9]),
            Err(WireError::Length {
                expected: 10,
                found: 9
            })
        );
        let register = Command::Register {
            record_id: RecordId([7; 32]),
            replaces: None,
            generation: 3,
            payload: payload(5),
        }
        .to_bytes();
        assert_eq!(
            Command::from_bytes(&register[..register.len() - 1]),
            Err(WireError::Length {
                expected: register.len(),
                found: register.len() - 1,
            })
        );
    }

    /// `Debug` names each type and its counters, and never prints the
    /// registration record, the wrapped key or the OPRF nonce.
    #[test]
    fn debug_shows_counters_and_hides_the_payload() {
        use alloc::format;
        let record = StoredRecord::new(payload(5), 3);
        let slot = RecordSlot::Live(record.clone());
        let command = Command::Register {
            record_id: RecordId([7; 32]),
            replaces: None,
            generation: 3,
            payload: payload(5),
        };
        for (text, name) in [
            (format!("{:?}", record.payload), "RecordPayload"),
            (format!("{record:?}"), "StoredRecord"),
            (format!("{slot:?}"), "Live"),
            (format!("{command:?}"), "Register"),
        ] {
            assert!(text.contains(name), "{text}");
            assert!(
                text.contains("max_attempts") || text.contains("generation"),
                "{text}"
            );
            for secret in ["17, 17, 17", "34, 34, 34", "51, 51, 51"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
        let erased = format!("{:?}", RecordSlot::Erased { generation: 9 });
        assert!(
            erased.contains("Erased") && erased.contains('9'),
            "{erased}"
        );
    }

    /// A replica restores a snapshot's slots one by one and reads them back
    /// in id order.
    #[test]
    fn restore_iter_len_is_empty() {
        let mut t = RecordTable::new();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        t.restore(RecordId([2; 32]), RecordSlot::Erased { generation: 4 });
        t.restore(
            RecordId([1; 32]),
            RecordSlot::Live(StoredRecord::new(payload(3), 1)),
        );
        assert!(!t.is_empty());
        assert_eq!(t.len(), 2);
        let ids: alloc::vec::Vec<RecordId> = t.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [RecordId([1; 32]), RecordId([2; 32])]);
        assert_eq!(
            t.get(&RecordId([2; 32])),
            Some(&RecordSlot::Erased { generation: 4 })
        );
    }

    /// A registration naming another generation than the live one is
    /// refused; erasing is refused while a later charge holds the last
    /// attempt.
    #[test]
    fn replaces_must_name_the_live_generation_and_a_later_charge_blocks_erase() {
        let id = RecordId([5; 32]);
        let mut t = RecordTable::new();
        let register = |replaces, generation| Command::Register {
            record_id: id,
            replaces,
            generation,
            payload: payload(2),
        };
        assert!(!matches!(t.apply(&register(None, 1)), Applied::Refused(_)));
        assert_eq!(
            t.apply(&register(Some(2), 2)),
            Applied::Refused(Refusal::GenerationMismatch)
        );
        let generation = t.get(&id).map(RecordSlot::generation).unwrap();
        for _ in 0..2 {
            t.apply(&Command::ChargeAttempt {
                record_id: id,
                generation,
            });
        }
        assert_eq!(
            t.apply(&Command::Erase {
                record_id: id,
                generation,
                charge: 1,
            }),
            Applied::Refused(Refusal::NotExhausted),
            "charge 2 holds the last attempt"
        );
    }

    /// An `Erase` for the latest charge is refused while attempts remain:
    /// only the failure that spent the last attempt destroys the record
    /// (SPEC.md §8.2). cargo-mutants turned `attempts_used() <
    /// max_attempts` into `>` unnoticed before this test.
    #[test]
    fn erase_is_refused_while_attempts_remain() {
        let id = RecordId([6; 32]);
        let mut t = RecordTable::new();
        t.apply(&Command::Register {
            record_id: id,
            replaces: None,
            generation: 1,
            payload: payload(3),
        });
        let generation = t.get(&id).map(RecordSlot::generation).unwrap();
        let erase = |charge| Command::Erase {
            record_id: id,
            generation,
            charge,
        };
        for charge in 1..=2 {
            t.apply(&Command::ChargeAttempt {
                record_id: id,
                generation,
            });
            assert_eq!(
                t.apply(&erase(charge)),
                Applied::Refused(Refusal::NotExhausted),
                "{charge} of 3 attempts used"
            );
            assert!(matches!(t.get(&id), Some(RecordSlot::Live(_))));
        }
        t.apply(&Command::ChargeAttempt {
            record_id: id,
            generation,
        });
        assert!(!matches!(t.apply(&erase(3)), Applied::Refused(_)));
        assert!(matches!(t.get(&id), Some(RecordSlot::Erased { .. })));
    }
}
