//! The vault: the code that runs inside each HSM (SPEC.md §7, §8).
//!
//! [`Vault`] is a sans-I/O state machine. It receives requests as bytes or
//! typed messages, the current time as an argument, and randomness as an
//! argument; it changes state only by committing [`Command`]s through a
//! [`RecordStore`], and it never sends an answer that depends on a state
//! change before that change is committed:
//!
//! * KE2 leaves the vault only after `ChargeAttempt` committed.
//! * The backup key leaves only after `ResetAttempts` committed.
//! * A registration is confirmed only after `Register` committed.
//!
//! If a commit fails, the vault answers [`VaultError::Unavailable`] and
//! releases nothing (fail closed).

mod sessions;
pub mod state;
pub mod store;
pub mod tree;
pub mod verified;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use hpke::{Deserializable, OpModeR};
use opaque_ke::{
    CredentialFinalization, CredentialRequest, Identifiers, RegistrationUpload as OpaqueUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::bundle::{EncodedBundle, KeyRole};
use crate::crypto::{self, label, HpkeAead, HpkeKdf, HpkeKem};
use crate::error::{BundleError, StoreError, VaultError, WireError};
use crate::fleet::{FleetPublicKeys, FleetSecrets};
use crate::suite::{StretchingParams, Suite};
use crate::types::{RecordId, Secret32, SessionId};
use crate::wire::{
    self, BundleRequest, BundleResponse, KeyRelease, MessageType, RecoveryFinish, RecoveryResponse,
    RecoveryResponseContents, RecoveryResponseWithBundle, RecoveryStart, RegistrationConfirmation,
    RegistrationRequest, RegistrationResponse, RegistrationUpload, Rejection, KE1_LEN, KE3_LEN,
    OPAQUE_REGISTRATION_RECORD_LEN, OPAQUE_REGISTRATION_REQUEST_LEN, REKEY_TOKEN_LEN,
    RELEASE_PLAINTEXT_LEN, SEALED_REGISTRATION_PLAINTEXT_LEN, SEALED_UPLOAD_PLAINTEXT_LEN,
    WRAPPED_KEY_LEN,
};

use sessions::Sessions;
pub use state::{
    Applied, Command, RecordPayload, RecordSlot, RecordTable, Refusal, StoredRecord, OPRF_NONCE_LEN,
};
pub use store::{Fault, FaultyStore, MemoryStore, RecordStore};

/// The vault's policy: fixed by the operator for the whole fleet, never
/// chosen by a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultPolicy {
    /// Attempts allowed between successes (1..=255). Default 10.
    pub max_attempts: u8,
    /// How long a pending session lives, in milliseconds. Default 60 s.
    pub session_ttl_ms: u64,
    /// Most pending recovery sessions at once. Default 10,000.
    pub max_pending_recoveries: usize,
    /// Most pending registrations at once. Default 10,000.
    pub max_pending_registrations: usize,
    /// The weakest Argon2 parameters the vault stores. Default RFC 9106's
    /// second option.
    pub stretching_floor: StretchingParams,
    /// The parameters reported for an unknown record (what a fresh record
    /// registered with the default client would report).
    pub unknown_record_stretching: StretchingParams,
    /// The record ids this vault's group owns (SPEC.md §14.1). Default
    /// every id (a realm of one group). A registration request or KE1 for
    /// an id outside it is refused with [`VaultError::RecordNotInRange`]
    /// before anything is opened or charged, and a bundle naming another
    /// range is refused ([`BundleError::RangeMismatch`]).
    pub records: crate::RecordRange,
}

impl Default for VaultPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            session_ttl_ms: 60_000,
            max_pending_recoveries: 10_000,
            max_pending_registrations: 10_000,
            stretching_floor: StretchingParams::RFC9106_SECOND,
            unknown_record_stretching: StretchingParams::RFC9106_SECOND,
            records: crate::RecordRange::ALL,
        }
    }
}

impl VaultPolicy {
    /// Checks that the policy is usable: at least one attempt, room for at
    /// least one session of each kind, valid Argon2 parameters, and
    /// unknown-record parameters that meet the floor (so a fake answer looks
    /// like a real record's).
    pub fn validate(&self) -> Result<(), VaultError> {
        let ok = self.max_attempts > 0
            && self.session_ttl_ms > 0
            && self.max_pending_recoveries > 0
            && self.max_pending_registrations > 0
            && self.stretching_floor.is_valid()
            && self.unknown_record_stretching.is_valid()
            && self
                .unknown_record_stretching
                .meets_floor(&self.stretching_floor);
        if ok {
            Ok(())
        } else {
            Err(VaultError::InvalidPolicy)
        }
    }

    /// The default policy with the floor and the unknown-record parameters
    /// lowered to [`StretchingParams::INSECURE_TEST_ONLY`]. **For tests
    /// only**: never a default.
    pub fn insecure_test_only() -> Self {
        Self {
            stretching_floor: StretchingParams::INSECURE_TEST_ONLY,
            unknown_record_stretching: StretchingParams::INSECURE_TEST_ONLY,
            ..Self::default()
        }
    }
}

/// A recovery session between KE2 and KE3.
struct PendingRecovery {
    server_login: ServerLogin<Suite>,
    /// The channel's exported secrets (SPEC.md §4.4), bound to this
    /// session when KE3 arrives: it opens under the bound `finish`, the
    /// release key takes the bound `release`. (Binding them at KE2 would
    /// put two more HKDFs on the hot path.)
    channel: crypto::RecoveryKeys,
    /// `None` for the fake-record path: KE3 always fails.
    record: Option<PendingRecord>,
}

#[derive(Zeroize, ZeroizeOnDrop)]
struct PendingRecord {
    generation: u64,
    /// The charge this session was built on: its success forgives the
    /// attempts through it (`ResetAttempts` names it).
    charge: u64,
    /// Whether this session holds the record's last attempt: only its
    /// failure may erase the record (every earlier session's attempt was
    /// charged before it, so when it fails none can remain).
    last_attempt: bool,
    wrapped_key: [u8; WRAPPED_KEY_LEN],
}

/// A registration between its response and its upload.
struct PendingRegistration {
    oprf_nonce: [u8; OPRF_NONCE_LEN],
    replaces: Option<u64>,
    /// The generation the `Register` will create (the slot's plus one, as
    /// this vault saw it): a `Register` applied twice is refused.
    creates: u64,
    rekey_token: Option<Secret32>,
    upload_key: Secret32,
    confirm_key: Secret32,
}

/// Permission to replace a record, earned by a successful recovery.
struct RekeyGrant {
    generation: u64,
    token: Secret32,
    expires_at: u64,
}

/// The record fields KE2 needs, copied at `begin` time. A charge names the
/// generation, and a generation's contents never change, so they are still
/// the record's when the charge applies.
#[derive(Zeroize, ZeroizeOnDrop)]
struct LiveRecord {
    generation: u64,
    oprf_nonce: [u8; OPRF_NONCE_LEN],
    registration: [u8; OPAQUE_REGISTRATION_RECORD_LEN],
    wrapped_key: [u8; WRAPPED_KEY_LEN],
    #[zeroize(skip)]
    stretching: StretchingParams,
}

impl From<&StoredRecord> for LiveRecord {
    fn from(record: &StoredRecord) -> Self {
        Self {
            generation: record.generation,
            oprf_nonce: record.payload.oprf_nonce,
            registration: record.payload.registration,
            wrapped_key: record.payload.wrapped_key,
            stretching: record.payload.stretching,
        }
    }
}

/// What a request is waiting for, after [`Vault::begin`].
// One per request in flight, moved, never stored in bulk: boxing would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step {
    /// The answer is ready: nothing had to change first.
    Answered(Answer),
    /// The answer depends on a command: commit it, then [`Vault::resume`].
    Commit(Suspended),
}

/// A request waiting for its command to be committed. Holds the secrets the
/// answer needs (zeroized on drop); the command holds none of the fleet's.
pub struct Suspended {
    command: Command,
    then: Then,
}

impl Suspended {
    /// The command to commit (durably, or through consensus) before
    /// [`Vault::resume`].
    pub fn command(&self) -> &Command {
        &self.command
    }
}

impl core::fmt::Debug for Suspended {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Suspended")
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

/// How a suspended request finishes.
// One per request in flight, moved, never stored in bulk: boxing would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Then {
    /// Build KE2: for the record (after `ChargeAttempt`) or for no record
    /// (after the `Erase` of an exhausted one).
    Ke2 {
        record_id: RecordId,
        ke1: CredentialRequest<Suite>,
        /// The channel's exported secrets, not yet bound to a session.
        channel: crypto::RecoveryKeys,
        live: Option<LiveRecord>,
        with_bundle: bool,
    },
    /// Release the key (after `ResetAttempts`).
    Release {
        record_id: RecordId,
        session_id: SessionId,
        session_key: Zeroizing<[u8; 64]>,
        channel_release: Secret32,
        record: PendingRecord,
    },
    /// Refuse (after the `Erase` that follows a failed last attempt).
    Refuse,
    /// Confirm the registration (after `Register`).
    Confirm {
        record_id: RecordId,
        session_id: SessionId,
        confirm_key: Secret32,
        grant: Option<RekeyGrant>,
    },
    /// Report the deletion (after `Delete`).
    Deleted,
}

/// The vault's answer to one request.
// One per request in flight, moved, never stored in bulk: boxing would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// To a [`RegistrationRequest`].
    RegistrationResponse(RegistrationResponse),
    /// To a [`RegistrationUpload`].
    RegistrationConfirmation(RegistrationConfirmation),
    /// To a [`RecoveryStart`], when the vault has no bundle.
    RecoveryResponse(RecoveryResponse),
    /// To a [`RecoveryStart`], when the vault has a bundle.
    RecoveryResponseWithBundle(RecoveryResponseWithBundle),
    /// To a [`BundleRequest`].
    BundleResponse(BundleResponse),
    /// To a [`RecoveryFinish`].
    KeyRelease(KeyRelease),
    /// To the operator's deletion (no wire message).
    Deleted,
}

impl Answer {
    /// The answer's wire encoding (empty for [`Answer::Deleted`], which is
    /// not a wire message).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::RegistrationResponse(m) => m.to_bytes(),
            Self::RegistrationConfirmation(m) => m.to_bytes(),
            Self::RecoveryResponse(m) => m.to_bytes(),
            Self::RecoveryResponseWithBundle(m) => m.to_bytes(),
            Self::BundleResponse(m) => m.to_bytes(),
            Self::KeyRelease(m) => m.to_bytes(),
            Self::Deleted => Vec::new(),
        }
    }
}

/// The vault state machine over a store `S`.
pub struct Vault<S> {
    setup: ServerSetup<Suite>,
    unknown_record_key: Secret32,
    /// The latest time seen: time never runs backwards for the vault, even
    /// if the host's clock does.
    clock: u64,
    transport_key: <HpkeKem as hpke::Kem>::PrivateKey,
    policy: VaultPolicy,
    store: S,
    recoveries: Sessions<PendingRecovery>,
    registrations: Sessions<PendingRegistration>,
    rekey_grants: BTreeMap<RecordId, RekeyGrant>,
    /// The fleet's public keys (a bundle must list exactly these).
    public_keys: FleetPublicKeys,
    /// The fleet's current validation bundle, set by the operator and
    /// handed out on request and with every KE2 (SPEC.md §16.2).
    bundle: Option<EncodedBundle>,
}

impl<S> core::fmt::Debug for Vault<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vault")
            .field("policy", &self.policy)
            .field("pending_recoveries", &self.recoveries.len())
            .field("pending_registrations", &self.registrations.len())
            .finish_non_exhaustive()
    }
}

impl<S: RecordStore> Vault<S> {
    /// A vault holding the fleet's secrets, with a policy and a store.
    pub fn new(secrets: &FleetSecrets, policy: VaultPolicy, store: S) -> Result<Self, VaultError> {
        policy.validate()?;
        let setup = secrets.server_setup().ok_or(VaultError::Internal)?;
        let transport_key = secrets.transport_key().ok_or(VaultError::Internal)?;
        Ok(Self {
            setup,
            unknown_record_key: secrets.unknown_record_key(),
            clock: 0,
            transport_key,
            recoveries: Sessions::new(policy.max_pending_recoveries),
            registrations: Sessions::new(policy.max_pending_registrations),
            rekey_grants: BTreeMap::new(),
            public_keys: secrets.public_keys(),
            bundle: None,
            policy,
            store,
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (for tests that inject faults).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The policy.
    pub fn policy(&self) -> &VaultPolicy {
        &self.policy
    }

    /// Number of pending recovery sessions.
    pub fn pending_recoveries(&self) -> usize {
        self.recoveries.len()
    }

    /// Answers one request given as bytes, as a relay would call it, with
    /// this vault's own store committing what the answer depends on. Every
    /// failure becomes a [`Rejection`].
    pub fn handle<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        request: &[u8],
    ) -> Vec<u8> {
        let answer = self
            .begin(rng, now, request)
            .and_then(|step| self.drive(rng, now, step));
        match answer {
            Ok(answer) => answer.to_bytes(),
            Err(e) => Rejection { code: e.into() }.to_bytes(),
        }
    }

    /// Starts answering one request given as bytes (SPEC.md §8.3). Either
    /// the answer is ready (nothing had to change), or the vault returns the
    /// [`Command`] its answer depends on: commit it (to durable storage, or
    /// through consensus in a fleet), then call [`Vault::resume`] with the
    /// outcome. Nothing that depends on the command leaves the vault before.
    pub fn begin<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        request: &[u8],
    ) -> Result<Step, VaultError> {
        match MessageType::of(request)? {
            MessageType::RegistrationRequest => {
                let msg = RegistrationRequest::from_bytes(request)?;
                let response = self.registration_request(rng, now, &msg)?;
                Ok(Step::Answered(Answer::RegistrationResponse(response)))
            }
            MessageType::RegistrationUpload => {
                self.begin_registration_upload(now, &RegistrationUpload::from_bytes(request)?)
            }
            MessageType::RecoveryStart => {
                let msg = RecoveryStart::from_bytes(request)?;
                let with_bundle = self.bundle.is_some();
                self.begin_recovery_start(rng, now, &msg, with_bundle)
            }
            MessageType::BundleRequest => {
                BundleRequest::from_bytes(request)?;
                Ok(Step::Answered(Answer::BundleResponse(
                    self.bundle_request()?,
                )))
            }
            MessageType::RecoveryFinish => {
                self.begin_recovery_finish(now, &RecoveryFinish::from_bytes(request)?)
            }
            other => Err(VaultError::Wire(WireError::WrongType {
                expected: MessageType::RecoveryStart as u8,
                found: other as u8,
            })),
        }
    }

    /// Finishes a request after its command was committed (`Ok`, with what
    /// applying it did) or could not be (`Err`: nothing is released).
    pub fn resume<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        suspended: Suspended,
        outcome: Result<Applied, StoreError>,
    ) -> Result<Answer, VaultError> {
        let now = self.tick(now);
        match suspended.then {
            Then::Ke2 {
                record_id,
                ke1,
                channel,
                live,
                with_bundle,
            } => {
                let applied = outcome.map_err(|_| VaultError::Unavailable)?;
                let live = match (live, applied) {
                    (
                        Some(record),
                        Applied::Charged {
                            attempts_remaining,
                            charge,
                        },
                    ) => Some((record, attempts_remaining, charge)),
                    (Some(_), Applied::Refused(Refusal::Exhausted)) => {
                        return Err(VaultError::AttemptsExhausted)
                    }
                    // The exhausted record was erased: answer as for none.
                    (None, Applied::Erased) => None,
                    _ => return Err(VaultError::Unavailable),
                };
                self.make_ke2(rng, now, record_id, ke1, channel, live, with_bundle)
            }
            then => self.resume_without_randomness(now, then, outcome),
        }
    }

    /// Commits through this vault's own store and resumes.
    fn drive<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        step: Step,
    ) -> Result<Answer, VaultError> {
        match step {
            Step::Answered(answer) => Ok(answer),
            Step::Commit(suspended) => {
                let outcome = self.store.commit(&suspended.command);
                self.resume(rng, now, suspended, outcome)
            }
        }
    }

    /// [`Self::drive`] for the steps that need no randomness to finish.
    fn drive_without_randomness(&mut self, now: u64, step: Step) -> Result<Answer, VaultError> {
        match step {
            Step::Answered(answer) => Ok(answer),
            Step::Commit(suspended) => {
                let outcome = self.store.commit(&suspended.command);
                self.resume_without_randomness(now, suspended.then, outcome)
            }
        }
    }

    /// Advances the vault's clock to `now` if it is later, and returns the
    /// vault's time.
    fn tick(&mut self, now: u64) -> u64 {
        self.clock = self.clock.max(now);
        self.clock
    }

    fn load(&self, record_id: &RecordId) -> Result<Option<RecordSlot>, VaultError> {
        self.store
            .load(record_id)
            .map_err(|_| VaultError::Unavailable)
    }

    /// Refuses a record id outside the group's range (SPEC.md §14.1):
    /// public information (the ranges are in the artifacts), so the
    /// refusal tells a relay nothing about the record.
    fn check_range(&self, record_id: &RecordId) -> Result<(), VaultError> {
        if self.policy.records.contains(record_id) {
            Ok(())
        } else {
            Err(VaultError::RecordNotInRange)
        }
    }

    // ----- Validation bundle ----------------------------------------------

    /// Sets the fleet's validation bundle (operator action, SPEC.md §16.2).
    /// Refused unless it is counter-signed, its artifact decodes, and it
    /// lists exactly this fleet's keys for both roles: a vault never hands
    /// out a bundle for other keys than its own. Signatures and proofs are
    /// the client's to verify.
    pub fn set_bundle(&mut self, bundle: EncodedBundle) -> Result<(), BundleError> {
        if bundle.bundle().counter_signature.is_none() {
            return Err(BundleError::CounterSignatureMissing);
        }
        let artifact = crate::bundle::FleetKeyArtifact::from_bytes(&bundle.bundle().artifact)?;
        if artifact.records != self.policy.records {
            return Err(BundleError::RangeMismatch);
        }
        let listed = artifact.fleet_public_keys()?;
        if !bool::from(listed.key_exchange.ct_eq(&self.public_keys.key_exchange)) {
            return Err(BundleError::KeyNotListed(KeyRole::OpaqueKeyExchange));
        }
        if !bool::from(listed.transport.0.ct_eq(&self.public_keys.transport.0)) {
            return Err(BundleError::KeyNotListed(KeyRole::HpkeTransport));
        }
        self.bundle = Some(bundle);
        Ok(())
    }

    /// Checks a bundle as a fleet member does before it installs it
    /// (SPEC.md §16.2): every check of §17 under the member's own
    /// `anchors` (the auditor and operator keys it was started with) at
    /// `now_ms`, not older than the bundle it holds
    /// ([`BundleError::Rollback`]), and listing exactly this vault's keys
    /// ([`BundleError::KeyNotListed`]). Changes nothing: the caller stores
    /// the bundle durably, then calls [`Self::set_bundle`].
    pub fn check_bundle(
        &self,
        anchors: &crate::bundle::TrustAnchors,
        bundle: &EncodedBundle,
        now_ms: u64,
    ) -> Result<crate::bundle::VerifiedFleet, BundleError> {
        let held = self.bundle.as_ref().map(|b| b.bundle().epoch);
        let fleet = anchors.verify(bundle.bundle(), now_ms, held)?;
        let listed = fleet.public_keys();
        if !bool::from(listed.key_exchange.ct_eq(&self.public_keys.key_exchange)) {
            return Err(BundleError::KeyNotListed(KeyRole::OpaqueKeyExchange));
        }
        if !bool::from(listed.transport.0.ct_eq(&self.public_keys.transport.0)) {
            return Err(BundleError::KeyNotListed(KeyRole::HpkeTransport));
        }
        if fleet.artifact().records != self.policy.records {
            return Err(BundleError::RangeMismatch);
        }
        Ok(fleet)
    }

    /// [`Self::check_bundle`], then [`Self::set_bundle`]: for a member that
    /// keeps nothing on disk.
    pub fn install_bundle(
        &mut self,
        anchors: &crate::bundle::TrustAnchors,
        bundle: EncodedBundle,
        now_ms: u64,
    ) -> Result<crate::bundle::VerifiedFleet, BundleError> {
        let fleet = self.check_bundle(anchors, &bundle, now_ms)?;
        self.set_bundle(bundle)?;
        Ok(fleet)
    }

    /// The bundle the vault hands out, if the operator set one.
    pub fn bundle(&self) -> Option<&EncodedBundle> {
        self.bundle.as_ref()
    }

    /// Answers a [`BundleRequest`]: the current bundle, or
    /// [`VaultError::NoBundle`]. Changes nothing.
    pub fn bundle_request(&self) -> Result<BundleResponse, VaultError> {
        let bundle = self.bundle.clone().ok_or(VaultError::NoBundle)?;
        Ok(BundleResponse { bundle })
    }

    /// [`Self::recovery_start`] with the fleet's bundle attached to KE2.
    /// Without a bundle: [`VaultError::NoBundle`], checked before anything
    /// is charged.
    pub fn recovery_start_with_bundle<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        msg: &RecoveryStart,
    ) -> Result<RecoveryResponseWithBundle, VaultError> {
        if self.bundle.is_none() {
            return Err(VaultError::NoBundle);
        }
        let step = self.begin_recovery_start(rng, now, msg, true)?;
        match self.drive(rng, now, step)? {
            Answer::RecoveryResponseWithBundle(response) => Ok(response),
            _ => Err(VaultError::Internal),
        }
    }

    // ----- Registration -------------------------------------------------

    /// Registration step 2: opens the sealed request, checks the right to
    /// register, and answers the OPAQUE registration response encrypted for
    /// the sender of the request only. Changes no record.
    pub fn registration_request<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        msg: &RegistrationRequest,
    ) -> Result<RegistrationResponse, VaultError> {
        let now = self.tick(now);
        let record_id = msg.record_id;
        self.check_range(&record_id)?;
        let encapped = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&msg.encapsulated_key)
            .map_err(|_| VaultError::RequestNotAuthentic)?;
        let info = crypto::bound_to_record(label::HPKE_INFO, &record_id);
        let mut ctx = hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeR::Base,
            &self.transport_key,
            &encapped,
            &info,
        )
        .map_err(|_| VaultError::RequestNotAuthentic)?;
        let plaintext = Zeroizing::new(
            ctx.open(&msg.sealed, &registration_request_aad(msg))
                .map_err(|_| VaultError::RequestNotAuthentic)?,
        );
        let (request, mode, token) = split_registration_plaintext(&plaintext)?;
        let request = opaque_ke::RegistrationRequest::<Suite>::deserialize(request)
            .map_err(|_| WireError::InvalidField("registration request"))?;
        let rekey_token = match mode {
            0 if bool::from(token.ct_eq(&[0u8; REKEY_TOKEN_LEN])) => None,
            1 => {
                let mut t = Secret32([0; 32]);
                t.0.copy_from_slice(token);
                Some(t)
            }
            _ => return Err(WireError::InvalidField("registration mode").into()),
        };

        if !self.registrations.make_room(now, &record_id) {
            return Err(VaultError::Busy);
        }
        let slot = self.load(&record_id)?;
        let replaces = match (&slot, &rekey_token) {
            (Some(RecordSlot::Live(record)), Some(token)) => {
                if !self.grant_matches(&record_id, record.generation, token, now) {
                    return Err(VaultError::RegistrationRefused);
                }
                Some(record.generation)
            }
            (Some(RecordSlot::Live(_)), None) | (_, Some(_)) => {
                return Err(VaultError::RegistrationRefused)
            }
            (_, None) => None,
        };
        let creates = slot
            .as_ref()
            .map_or(0, RecordSlot::generation)
            .checked_add(1)
            .ok_or(VaultError::RegistrationRefused)?;

        let exported = crypto::export_registration_keys(|l, out| ctx.export(l, out))
            .ok_or(VaultError::Internal)?;
        // A fresh OPRF key for this registration: OPRF answers anyone got for
        // this id before (it had no record, or another one) are worthless
        // against the record this registration creates.
        let mut oprf_nonce = [0u8; OPRF_NONCE_LEN];
        rng.fill_bytes(&mut oprf_nonce);
        let response = ServerRegistration::<Suite>::start(
            &self.setup,
            request,
            &credential_identifier(&record_id, &oprf_nonce),
        )
        .map_err(|_| VaultError::Internal)?;
        let mut response_bytes = Zeroizing::new([0u8; wire::OPAQUE_REGISTRATION_RESPONSE_LEN]);
        response_bytes.copy_from_slice(&response.message.serialize());
        let session_id = SessionId::random(rng);
        let keys = exported.for_session(&session_id);
        let sealed = crypto::seal(
            &keys.response,
            &crypto::aad(label::AAD_RESPONSE, &record_id, &session_id),
            &response_bytes,
        );
        self.registrations.insert(
            session_id,
            record_id,
            now.saturating_add(self.policy.session_ttl_ms),
            PendingRegistration {
                oprf_nonce,
                replaces,
                creates,
                rekey_token,
                upload_key: keys.upload,
                confirm_key: keys.confirm,
            },
        );
        Ok(RegistrationResponse { session_id, sealed })
    }

    /// Registration step 4: opens the upload, commits the record, and
    /// confirms.
    pub fn registration_upload(
        &mut self,
        now: u64,
        msg: &RegistrationUpload,
    ) -> Result<RegistrationConfirmation, VaultError> {
        let step = self.begin_registration_upload(now, msg)?;
        match self.drive_without_randomness(now, step)? {
            Answer::RegistrationConfirmation(confirmation) => Ok(confirmation),
            _ => Err(VaultError::Internal),
        }
    }

    /// Registration step 4, first half: authenticates the upload and uses up
    /// the pending registration; the answer waits for the `Register`.
    pub fn begin_registration_upload(
        &mut self,
        now: u64,
        msg: &RegistrationUpload,
    ) -> Result<Step, VaultError> {
        let now = self.tick(now);
        let record_id = msg.record_id;
        let session_id = msg.session_id;
        // Authenticate before consuming, so a relay that garbles an upload
        // cannot use up someone's pending registration with it.
        let pending = self
            .registrations
            .peek(&session_id, &record_id, now)
            .map_err(|_| VaultError::UnknownRegistration)?;
        let plaintext: Zeroizing<[u8; SEALED_UPLOAD_PLAINTEXT_LEN]> = crypto::open(
            &pending.upload_key,
            &crypto::aad(label::AAD_UPLOAD, &record_id, &session_id),
            &msg.sealed,
        )
        .ok_or(VaultError::RequestNotAuthentic)?;
        let pending = self
            .registrations
            .take(&session_id, &record_id, now)
            .map_err(|_| VaultError::UnknownRegistration)?;
        let payload =
            parse_upload_plaintext(&plaintext, pending.oprf_nonce, self.policy.max_attempts)?;
        if !payload
            .stretching
            .meets_floor(&self.policy.stretching_floor)
        {
            return Err(VaultError::StretchingBelowFloor);
        }
        // A replacement spends its grant (single use). If the commit then
        // fails, the grant is restored: the Register names the generation it
        // replaces, so a restored grant can never replace twice.
        let grant = match (pending.replaces, &pending.rekey_token) {
            (Some(generation), Some(token)) => {
                if !self.grant_matches(&record_id, generation, token, now) {
                    return Err(VaultError::RegistrationRefused);
                }
                self.rekey_grants.remove(&record_id)
            }
            _ => None,
        };
        Ok(Step::Commit(Suspended {
            command: Command::Register {
                record_id,
                replaces: pending.replaces,
                generation: pending.creates,
                payload,
            },
            then: Then::Confirm {
                record_id,
                session_id,
                confirm_key: pending.confirm_key.clone(),
                grant,
            },
        }))
    }

    fn grant_matches(
        &self,
        record_id: &RecordId,
        generation: u64,
        token: &Secret32,
        now: u64,
    ) -> bool {
        self.rekey_grants.get(record_id).is_some_and(|g| {
            g.generation == generation && g.expires_at > now && bool::from(g.token.ct_eq(token))
        })
    }

    // ----- Recovery -----------------------------------------------------

    /// Recovery step 2: charges one attempt durably, then answers KE2.
    ///
    /// An unknown or erased record gets a KE2 from OPAQUE's fake-record path,
    /// of the same length and cost, reporting what a fresh record would.
    pub fn recovery_start<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        msg: &RecoveryStart,
    ) -> Result<RecoveryResponse, VaultError> {
        let step = self.begin_recovery_start(rng, now, msg, false)?;
        match self.drive(rng, now, step)? {
            Answer::RecoveryResponse(response) => Ok(response),
            _ => Err(VaultError::Internal),
        }
    }

    /// Recovery step 2, first half: decides what KE1 costs. A live record
    /// with attempts left needs a `ChargeAttempt`; an exhausted one with no
    /// session left that could succeed needs an `Erase`; an unknown id is
    /// answered at once from the fake-record path.
    pub fn begin_recovery_start<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        msg: &RecoveryStart,
        with_bundle: bool,
    ) -> Result<Step, VaultError> {
        let now = self.tick(now);
        let record_id = msg.record_id;
        // The range before anything else: another group's id is refused
        // before the channel is opened or anything is charged (§14.1).
        self.check_range(&record_id)?;
        // The channel first: nothing is charged for a KE1 that does not
        // open under the fleet's transport key.
        let (ke1, channel) = self.open_recovery_start(msg)?;
        let ke1 = CredentialRequest::<Suite>::deserialize(&ke1[..])
            .map_err(|_| WireError::InvalidField("ke1"))?;
        if with_bundle && self.bundle.is_none() {
            return Err(VaultError::NoBundle);
        }
        if !self.recoveries.make_room(now, &record_id) {
            return Err(VaultError::Busy);
        }
        let record = match self.load(&record_id)? {
            Some(RecordSlot::Live(record)) => record,
            _ => {
                let answer = self.make_ke2(rng, now, record_id, ke1, channel, None, with_bundle)?;
                return Ok(Step::Answered(answer));
            }
        };
        let generation = record.generation;
        if record.attempts_used() < record.payload.max_attempts {
            // The charge is durable before KE2 exists.
            return Ok(Step::Commit(Suspended {
                command: Command::ChargeAttempt {
                    record_id,
                    generation,
                },
                then: Then::Ke2 {
                    record_id,
                    ke1,
                    channel,
                    live: Some(LiveRecord::from(&record)),
                    with_bundle,
                },
            }));
        }
        // Exhausted. While its last session may still succeed, refuse; once
        // no session can, erase it and answer as for no record.
        if self.recoveries.has_live(&record_id, now) {
            return Err(VaultError::AttemptsExhausted);
        }
        self.rekey_grants.remove(&record_id);
        Ok(Step::Commit(Suspended {
            command: Command::Erase {
                record_id,
                generation,
                charge: record.charges,
            },
            then: Then::Ke2 {
                record_id,
                ke1,
                channel,
                live: None,
                with_bundle,
            },
        }))
    }

    /// Opens the HPKE (X-Wing) seal of a KE1 (SPEC.md §5.5): the KE1's
    /// bytes and the channel's exported secrets.
    fn open_recovery_start(
        &self,
        msg: &RecoveryStart,
    ) -> Result<(Zeroizing<[u8; KE1_LEN]>, crypto::RecoveryKeys), VaultError> {
        let encapped = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&msg.encapsulated_key)
            .map_err(|_| VaultError::RequestNotAuthentic)?;
        let info = crypto::bound_to_record(label::HPKE_INFO_RECOVERY, &msg.record_id);
        let mut ctx = hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeR::Base,
            &self.transport_key,
            &encapped,
            &info,
        )
        .map_err(|_| VaultError::RequestNotAuthentic)?;
        let opened = Zeroizing::new(
            ctx.open(&msg.sealed, &recovery_start_aad(msg))
                .map_err(|_| VaultError::RequestNotAuthentic)?,
        );
        let mut ke1 = Zeroizing::new([0u8; KE1_LEN]);
        if opened.len() != KE1_LEN {
            return Err(VaultError::RequestNotAuthentic);
        }
        ke1.copy_from_slice(&opened);
        let channel = crypto::export_recovery_keys(|l, out| ctx.export(l, out))
            .ok_or(VaultError::Internal)?;
        Ok((ke1, channel))
    }

    /// Builds KE2, from the record (after its charge) or from the fake-record
    /// path, seals it for the client, and opens the pending session.
    #[allow(clippy::too_many_arguments)]
    fn make_ke2<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: u64,
        record_id: RecordId,
        ke1: CredentialRequest<Suite>,
        channel: crypto::RecoveryKeys,
        live: Option<(LiveRecord, u8, u64)>,
        with_bundle: bool,
    ) -> Result<Answer, VaultError> {
        let (registration, oprf_nonce, pending_record, attempts_remaining, stretching) = match live
        {
            Some((record, remaining, charge)) => {
                let registration = ServerRegistration::<Suite>::deserialize(&record.registration)
                    .map_err(|_| VaultError::Internal)?;
                let pending = PendingRecord {
                    generation: record.generation,
                    charge,
                    last_attempt: remaining == 0,
                    wrapped_key: record.wrapped_key,
                };
                (
                    Some(registration),
                    record.oprf_nonce,
                    Some(pending),
                    remaining,
                    record.stretching,
                )
            }
            None => (
                None,
                self.unknown_record_nonce(&record_id),
                None,
                self.fake_attempts_remaining(),
                self.policy.unknown_record_stretching,
            ),
        };
        let context = crypto::bound_to_record(label::OPAQUE_CONTEXT, &record_id);
        let start = ServerLogin::start(
            rng,
            &self.setup,
            registration,
            ke1,
            &credential_identifier(&record_id, &oprf_nonce),
            ServerLoginParameters {
                context: Some(&context),
                identifiers: Identifiers::default(),
            },
        )
        .map_err(|_| VaultError::Internal)?;
        let mut contents = RecoveryResponseContents {
            attempts_remaining,
            stretching,
            ke2: [0u8; wire::KE2_LEN],
        };
        contents.ke2.copy_from_slice(&start.message.serialize());
        let session_id = SessionId::random(rng);
        let response_key = crypto::RecoveryKeys::bind(&channel.response, &session_id);
        let sealed = crypto::seal(
            &response_key,
            &crypto::aad(label::AAD_RECOVERY_RESPONSE, &record_id, &session_id),
            &contents.to_bytes(),
        );
        // A new KE1 supersedes the record's previous session; its attempt
        // stays spent.
        self.recoveries.insert(
            session_id,
            record_id,
            now.saturating_add(self.policy.session_ttl_ms),
            PendingRecovery {
                server_login: start.state,
                channel,
                record: pending_record,
            },
        );
        let response = RecoveryResponse { session_id, sealed };
        match (with_bundle, &self.bundle) {
            (false, _) => Ok(Answer::RecoveryResponse(response)),
            (true, Some(bundle)) => Ok(Answer::RecoveryResponseWithBundle(
                RecoveryResponseWithBundle {
                    response,
                    bundle: bundle.clone(),
                },
            )),
            (true, None) => Err(VaultError::NoBundle),
        }
    }

    /// Recovery step 4: checks KE3. On success commits the reset, then
    /// releases the wrapped key under a key derived from the session key. On
    /// failure the attempt stays spent, and when it was the record's last,
    /// the record is erased.
    pub fn recovery_finish(
        &mut self,
        now: u64,
        msg: &RecoveryFinish,
    ) -> Result<KeyRelease, VaultError> {
        let step = self.begin_recovery_finish(now, msg)?;
        match self.drive_without_randomness(now, step)? {
            Answer::KeyRelease(release) => Ok(release),
            _ => Err(VaultError::Internal),
        }
    }

    /// Recovery step 4, first half: uses up the session and checks KE3. The
    /// release waits for the `ResetAttempts`; a failed last attempt waits for
    /// the `Erase` (and then fails); any other failure is answered at once.
    pub fn begin_recovery_finish(
        &mut self,
        now: u64,
        msg: &RecoveryFinish,
    ) -> Result<Step, VaultError> {
        let now = self.tick(now);
        let record_id = msg.record_id;
        let session_id = msg.session_id;
        // Open before consuming, so a relay that garbles a KE3 cannot use
        // up the session with it (SPEC.md §7.3).
        let pending = self
            .recoveries
            .peek(&session_id, &record_id, now)
            .map_err(|_| VaultError::AuthenticationFailed)?;
        let finish_key = crypto::RecoveryKeys::bind(&pending.channel.finish, &session_id);
        let ke3: Zeroizing<[u8; KE3_LEN]> = crypto::open(
            &finish_key,
            &crypto::aad(label::AAD_RECOVERY_FINISH, &record_id, &session_id),
            &msg.sealed,
        )
        .ok_or(VaultError::RequestNotAuthentic)?;
        let ke3 = CredentialFinalization::<Suite>::deserialize(&ke3[..])
            .map_err(|_| WireError::InvalidField("ke3"))?;
        let pending = self
            .recoveries
            .take(&session_id, &record_id, now)
            .map_err(|_| VaultError::AuthenticationFailed)?;
        let context = crypto::bound_to_record(label::OPAQUE_CONTEXT, &record_id);
        let params = ServerLoginParameters {
            context: Some(&context),
            identifiers: Identifiers::default(),
        };
        match (pending.record, pending.server_login.finish(ke3, params)) {
            (Some(record), Ok(finished)) => {
                let mut session_key = Zeroizing::new([0u8; 64]);
                session_key.copy_from_slice(&finished.session_key);
                Ok(Step::Commit(Suspended {
                    command: Command::ResetAttempts {
                        record_id,
                        generation: record.generation,
                        charge: record.charge,
                    },
                    then: Then::Release {
                        record_id,
                        session_id,
                        session_key,
                        channel_release: crypto::RecoveryKeys::bind(
                            &pending.channel.release,
                            &session_id,
                        ),
                        record,
                    },
                }))
            }
            (Some(record), Err(_)) if record.last_attempt => {
                self.rekey_grants.remove(&record_id);
                Ok(Step::Commit(Suspended {
                    command: Command::Erase {
                        record_id,
                        generation: record.generation,
                        charge: record.charge,
                    },
                    then: Then::Refuse,
                }))
            }
            _ => Err(VaultError::AuthenticationFailed),
        }
    }

    /// Deletes a record whatever its state (account removal by the
    /// operator). Destroys only; reveals nothing.
    pub fn delete_record(&mut self, record_id: &RecordId) -> Result<(), VaultError> {
        let now = self.clock;
        let step = self.begin_delete(record_id);
        self.drive_without_randomness(now, step).map(|_| ())
    }

    /// [`Self::delete_record`], first half: the `Delete` to commit.
    pub fn begin_delete(&mut self, record_id: &RecordId) -> Step {
        self.rekey_grants.remove(record_id);
        Step::Commit(Suspended {
            command: Command::Delete {
                record_id: *record_id,
            },
            then: Then::Deleted,
        })
    }

    /// Finishes every suspended request but KE2 (which needs randomness).
    fn resume_without_randomness(
        &mut self,
        now: u64,
        then: Then,
        outcome: Result<Applied, StoreError>,
    ) -> Result<Answer, VaultError> {
        match then {
            Then::Ke2 { .. } => Err(VaultError::Internal),
            Then::Release {
                record_id,
                session_id,
                session_key,
                channel_release,
                record,
            } => {
                let unforgiven_attempts = match outcome.map_err(|_| VaultError::Unavailable)? {
                    Applied::Reset {
                        unforgiven_attempts,
                    } => unforgiven_attempts,
                    // The record was replaced or deleted meanwhile.
                    _ => return Err(VaultError::AuthenticationFailed),
                };
                let ids: [&[u8]; 2] = [record_id.as_bytes(), session_id.as_bytes()];
                let release_key = crypto::release_key(
                    &session_key[..],
                    &channel_release,
                    &record_id,
                    &session_id,
                );
                let token = crypto::derive_key(&session_key[..], label::REKEY_TOKEN, &ids);
                self.grant_rekey(record_id, record.generation, token, now);
                // SPEC.md §5.8: the wrapped key, then the count the reset
                // computed, both under the session's release key.
                let mut plaintext = Zeroizing::new([0u8; RELEASE_PLAINTEXT_LEN]);
                if !crypto::fill(
                    &mut plaintext[..],
                    &[&record.wrapped_key, &[unforgiven_attempts]],
                ) {
                    return Err(VaultError::Internal);
                }
                let sealed = crypto::seal(
                    &release_key,
                    &crypto::aad(label::AAD_RELEASE, &record_id, &session_id),
                    &plaintext,
                );
                Ok(Answer::KeyRelease(KeyRelease { session_id, sealed }))
            }
            // The last attempt failed. Whether or not the erase committed
            // (if not, the next KE1 erases), the answer is the same.
            Then::Refuse => Err(VaultError::AuthenticationFailed),
            Then::Confirm {
                record_id,
                session_id,
                confirm_key,
                grant,
            } => {
                let generation = match outcome {
                    Ok(Applied::Registered { generation }) => generation,
                    Ok(_) => return Err(VaultError::RegistrationRefused),
                    Err(_) => {
                        if let Some(grant) = grant {
                            // Never over a grant earned since (a newer
                            // recovery's): restoring is only a retry aid.
                            self.rekey_grants.entry(record_id).or_insert(grant);
                        }
                        return Err(VaultError::Unavailable);
                    }
                };
                let sealed = crypto::seal(
                    &confirm_key,
                    &crypto::aad(label::AAD_CONFIRM, &record_id, &session_id),
                    &generation.to_be_bytes(),
                );
                Ok(Answer::RegistrationConfirmation(RegistrationConfirmation {
                    session_id,
                    sealed,
                }))
            }
            Then::Deleted => match outcome.map_err(|_| VaultError::Unavailable)? {
                Applied::Deleted => Ok(Answer::Deleted),
                _ => Err(VaultError::Unavailable),
            },
        }
    }

    fn fake_attempts_remaining(&self) -> u8 {
        self.policy.max_attempts.saturating_sub(1)
    }

    /// The OPRF nonce used for an id with no record: fixed per id (so
    /// repeated queries look like one record's), never a real record's (those
    /// are random).
    fn unknown_record_nonce(&self, record_id: &RecordId) -> [u8; OPRF_NONCE_LEN] {
        crypto::derive_key(
            &self.unknown_record_key.0,
            label::UNKNOWN_NONCE,
            &[record_id.as_bytes()],
        )
        .0
    }

    fn grant_rekey(&mut self, record_id: RecordId, generation: u64, token: Secret32, now: u64) {
        let capacity = self.policy.max_pending_registrations;
        if self.rekey_grants.len() >= capacity && !self.rekey_grants.contains_key(&record_id) {
            self.rekey_grants.retain(|_, g| g.expires_at > now);
            // Still full: each grant was earned by a successful recovery, so
            // evict the one that expires first rather than refuse this one.
            if self.rekey_grants.len() >= capacity {
                let oldest = self
                    .rekey_grants
                    .iter()
                    .min_by_key(|(_, g)| g.expires_at)
                    .map(|(id, _)| *id);
                if let Some(oldest) = oldest {
                    self.rekey_grants.remove(&oldest);
                }
            }
        }
        self.rekey_grants.insert(
            record_id,
            RekeyGrant {
                generation,
                token,
                expires_at: now.saturating_add(self.policy.session_ttl_ms),
            },
        );
    }
}

/// OPAQUE's credential identifier for a record: `record_id || oprf_nonce`.
/// opaque-ke derives the record's OPRF key from the fleet's OPRF seed and
/// this identifier (RFC 9807 §4.1.2: `DeriveKeyPair(Expand(seed,
/// credential_identifier || "OprfKey"), "OPAQUE-DeriveKeyPair")`).
fn credential_identifier(record_id: &RecordId, oprf_nonce: &[u8; OPRF_NONCE_LEN]) -> [u8; 64] {
    let mut id = [0u8; 64];
    id[..32].copy_from_slice(record_id.as_bytes());
    id[32..].copy_from_slice(oprf_nonce);
    id
}

/// The associated data of the HPKE seal: the request's header and clear
/// fields (type, version, record id, encapsulated key).
pub(crate) fn registration_request_aad(msg: &RegistrationRequest) -> Vec<u8> {
    sealed_request_aad(
        MessageType::RegistrationRequest,
        &msg.record_id,
        &msg.encapsulated_key,
    )
}

/// The associated data of a KE1's HPKE seal, as for registration: every
/// byte of the message before the sealed field.
pub(crate) fn recovery_start_aad(msg: &RecoveryStart) -> Vec<u8> {
    sealed_request_aad(
        MessageType::RecoveryStart,
        &msg.record_id,
        &msg.encapsulated_key,
    )
}

fn sealed_request_aad(ty: MessageType, record_id: &RecordId, encapsulated_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(wire::HEADER_LEN + 32 + encapsulated_key.len());
    aad.push(ty as u8);
    aad.push(ty.version());
    aad.extend_from_slice(record_id.as_bytes());
    aad.extend_from_slice(encapsulated_key);
    aad
}

fn split_registration_plaintext(plaintext: &[u8]) -> Result<(&[u8], u8, &[u8]), VaultError> {
    if plaintext.len() != SEALED_REGISTRATION_PLAINTEXT_LEN {
        return Err(WireError::InvalidField("sealed registration request").into());
    }
    let (request, rest) = plaintext.split_at(OPAQUE_REGISTRATION_REQUEST_LEN);
    let (mode, token) = rest
        .split_first()
        .ok_or(WireError::InvalidField("registration mode"))?;
    Ok((request, *mode, token))
}

fn parse_upload_plaintext(
    plaintext: &[u8; SEALED_UPLOAD_PLAINTEXT_LEN],
    oprf_nonce: [u8; OPRF_NONCE_LEN],
    max_attempts: u8,
) -> Result<RecordPayload, VaultError> {
    let (registration, rest) = plaintext.split_at(OPAQUE_REGISTRATION_RECORD_LEN);
    let (stretching, wrapped) = rest.split_at(StretchingParams::ENCODED_LEN);
    // Validates the client's public key (a valid, non-identity point).
    OpaqueUpload::<Suite>::deserialize(registration)
        .map_err(|_| WireError::InvalidField("registration record"))?;
    let stretching = <&[u8; StretchingParams::ENCODED_LEN]>::try_from(stretching)
        .ok()
        .and_then(StretchingParams::from_bytes)
        .ok_or(WireError::InvalidField("stretching parameters"))?;
    let mut payload = RecordPayload {
        oprf_nonce,
        registration: [0; OPAQUE_REGISTRATION_RECORD_LEN],
        wrapped_key: [0; WRAPPED_KEY_LEN],
        stretching,
        max_attempts,
    };
    payload.registration.copy_from_slice(registration);
    payload.wrapped_key.copy_from_slice(wrapped);
    Ok(payload)
}
