//! The client: the app's side of registration and recovery (SPEC.md §6).
//!
//! Typestate: each step consumes the state it finishes, so a state cannot be
//! used twice. Registration is
//! [`Registration::start`] → [`AwaitingRegistrationResponse::finish`] →
//! [`AwaitingRegistrationConfirmation::finish`]; recovery is
//! [`Recovery::start`] → [`AwaitingRecoveryResponse::finish`] →
//! [`AwaitingKeyRelease::finish`].

use core::fmt;

use hpke::{Deserializable, OpModeS};
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, Identifiers,
    RegistrationResponse as OpaqueRegistrationResponse,
};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::bundle::{KeyRole, TrustAnchors, VerifiedFleet};
use crate::crypto::{self, label, HpkeAead, HpkeKdf, HpkeKem};
use crate::error::{BundleError, ClientError, WireError};
use crate::fleet::FleetPublicKeys;
use crate::suite::{KeyStretching, StretchingParams, Suite};
use crate::types::{BackupKey, RecordId, RecoveryCode, Secret32, SessionId, BACKUP_KEY_LEN};
use crate::wire::{
    self, KeyRelease, RecoveryFinish, RecoveryResponse, RecoveryResponseContents,
    RecoveryResponseWithBundle, RecoveryStart, RegistrationConfirmation, RegistrationRequest,
    RegistrationResponse, RegistrationUpload, OPAQUE_REGISTRATION_RECORD_LEN,
    RECOVERY_RESPONSE_PLAINTEXT_LEN, RELEASE_PLAINTEXT_LEN, SEALED_REGISTRATION_PLAINTEXT_LEN,
    SEALED_UPLOAD_PLAINTEXT_LEN, WRAPPED_KEY_LEN,
};

/// What a client trusts and how it stretches: the fleet's public keys and
/// the Argon2 parameters it registers with, accepts at least, and accepts at
/// most.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    fleet: FleetPublicKeys,
    stretching: StretchingParams,
    floor: StretchingParams,
    ceiling: StretchingParams,
    /// Whether the fleet keys were learned from a verified validation
    /// bundle (then a key mismatch is [`BundleError::KeyNotListed`]).
    learned: bool,
    /// The record ids the fleet owns (SPEC.md §14.1): registration and
    /// recovery of any other id are refused before anything is sent.
    records: crate::RecordRange,
}

impl ClientConfig {
    /// A client that trusts `fleet` and stretches with RFC 9106's second
    /// option, which is also its floor.
    pub fn new(fleet: FleetPublicKeys) -> Self {
        Self {
            fleet,
            stretching: StretchingParams::default(),
            floor: StretchingParams::default(),
            ceiling: StretchingParams::DEFAULT_CEILING,
            learned: false,
            records: crate::RecordRange::ALL,
        }
    }

    /// A client that talks to the fleet a verified validation bundle
    /// describes (SPEC.md §17): it seals registrations to the bundle's
    /// `hpke_transport` key and accepts only the bundle's
    /// `opaque_key_exchange` key. Stretching as [`ClientConfig::new`].
    pub fn from_verified_fleet(fleet: &VerifiedFleet) -> Self {
        Self {
            learned: true,
            records: fleet.artifact().records,
            ..Self::new(fleet.public_keys())
        }
    }

    /// [`ClientConfig::from_verified_fleet`] with the stretching and floor
    /// of [`ClientConfig::insecure_test_only`]. **Insecure: for tests only.**
    pub fn insecure_test_only_from_verified_fleet(fleet: &VerifiedFleet) -> Self {
        // One place sets what a bundle teaches (`learned`, `records`), so
        // the tests that use this constructor check `from_verified_fleet`.
        Self {
            stretching: StretchingParams::INSECURE_TEST_ONLY,
            floor: StretchingParams::INSECURE_TEST_ONLY,
            ..Self::from_verified_fleet(fleet)
        }
    }

    /// Registers with stronger parameters than the default. Parameters
    /// below the floor are refused when used.
    pub fn with_stretching(mut self, stretching: StretchingParams) -> Self {
        self.stretching = stretching;
        self
    }

    /// Sets the ceiling: the most memory, passes and lanes the client will
    /// spend on a record's parameters.
    pub fn with_ceiling(mut self, ceiling: StretchingParams) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// A client whose stretching **and floor** are
    /// [`StretchingParams::INSECURE_TEST_ONLY`]. **Insecure: for tests only.**
    /// A production client never calls this; [`ClientConfig::new`] is the only
    /// other constructor and its floor is RFC 9106's.
    pub fn insecure_test_only(fleet: FleetPublicKeys) -> Self {
        Self {
            fleet,
            stretching: StretchingParams::INSECURE_TEST_ONLY,
            floor: StretchingParams::INSECURE_TEST_ONLY,
            ceiling: StretchingParams::DEFAULT_CEILING,
            learned: false,
            records: crate::RecordRange::ALL,
        }
    }

    /// The fleet keys this client trusts.
    pub fn fleet(&self) -> &FleetPublicKeys {
        &self.fleet
    }

    /// A pinned fleet that is one group of a realm: it owns only `records`
    /// (SPEC.md §14.1). A configuration from a verified bundle takes the
    /// bundle's range instead.
    pub fn with_records(mut self, records: crate::RecordRange) -> Self {
        self.records = records;
        self
    }

    /// The record ids the fleet owns.
    pub fn records(&self) -> crate::RecordRange {
        self.records
    }

    /// Refuses a record the fleet does not own:
    /// `Bundle(RecordNotOwned)`, before anything is sent (SPEC.md §17
    /// step 16).
    fn check_record(&self, record_id: &RecordId) -> Result<(), ClientError> {
        if self.records.contains(record_id) {
            Ok(())
        } else {
            Err(ClientError::Bundle(BundleError::RecordNotOwned {
                first: self.records.first,
                last: self.records.last,
            }))
        }
    }

    /// The error for a vault key-exchange key that is not the trusted one.
    fn key_exchange_mismatch(&self) -> ClientError {
        if self.learned {
            ClientError::Bundle(BundleError::KeyNotListed(KeyRole::OpaqueKeyExchange))
        } else {
            ClientError::FleetKeyMismatch
        }
    }

    fn check_stretching(&self, params: &StretchingParams) -> Result<(), ClientError> {
        if !params.meets_floor(&self.floor) {
            return Err(ClientError::StretchingBelowFloor);
        }
        if !params.within_ceiling(&self.ceiling) {
            return Err(ClientError::StretchingAboveCeiling);
        }
        Ok(())
    }
}

/// Proof of a successful recovery that lets the client replace its record
/// (for example with a new recovery code) in a registration that follows
/// soon after. Single-use; expires with the vault's session lifetime.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RekeyAuthorization {
    #[zeroize(skip)]
    record_id: RecordId,
    token: Secret32,
}

impl fmt::Debug for RekeyAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RekeyAuthorization")
            .field("record_id", &self.record_id)
            .finish_non_exhaustive()
    }
}

// ----- Registration -----------------------------------------------------

/// Entry point of registration.
#[derive(Debug)]
pub struct Registration;

/// Waiting for the vault's [`RegistrationResponse`].
pub struct AwaitingRegistrationResponse {
    config: ClientConfig,
    record_id: RecordId,
    code: RecoveryCode,
    opaque: ClientRegistration<Suite>,
    keys: crypto::RegistrationKeys,
}

/// Waiting for the vault's [`RegistrationConfirmation`].
pub struct AwaitingRegistrationConfirmation {
    record_id: RecordId,
    session_id: SessionId,
    confirm_key: Secret32,
    backup_key: BackupKey,
}

/// A registration the vault confirmed.
#[derive(Debug)]
pub struct Registered {
    /// The backup key now protected by the vault.
    pub backup_key: BackupKey,
    /// The record's generation (1 for a first registration).
    pub generation: u64,
}

impl Registration {
    /// Starts registering `code` for `record_id`: an OPAQUE registration
    /// request sealed with HPKE to the fleet's transport key. To replace a
    /// live record, pass the [`RekeyAuthorization`] of a recovery that just
    /// succeeded.
    pub fn start<R: RngCore + CryptoRng>(
        rng: &mut R,
        config: &ClientConfig,
        record_id: RecordId,
        code: &RecoveryCode,
        rekey: Option<&RekeyAuthorization>,
    ) -> Result<(AwaitingRegistrationResponse, RegistrationRequest), ClientError> {
        config.check_record(&record_id)?;
        config.check_stretching(&config.stretching)?;
        let rekey = match rekey {
            Some(r) if r.record_id != record_id => {
                return Err(ClientError::RekeyAuthorizationMismatch)
            }
            other => other,
        };
        let start = ClientRegistration::<Suite>::start(rng, code.as_bytes())
            .map_err(|_| ClientError::Internal)?;

        // OPAQUE request || mode (0 new, 1 replace) || rekey token (or zeros).
        let mut plaintext = Zeroizing::new([0u8; SEALED_REGISTRATION_PLAINTEXT_LEN]);
        let (mode, token): (u8, &[u8]) = match rekey {
            Some(rekey) => (1, &rekey.token.0),
            None => (0, &[0; wire::REKEY_TOKEN_LEN]),
        };
        if !crypto::fill(
            &mut plaintext[..],
            &[&start.message.serialize(), &[mode], token],
        ) {
            return Err(ClientError::Internal);
        }

        let (encapped, mut ctx) = channel_to_fleet(rng, config, label::HPKE_INFO, &record_id)?;
        let mut request = RegistrationRequest {
            record_id,
            encapsulated_key: *encapped.as_bytes(),
            sealed: [0; SEALED_REGISTRATION_PLAINTEXT_LEN + wire::TAG_LEN],
        };
        let sealed = ctx
            .seal(
                &plaintext[..],
                &crate::vault::registration_request_aad(&request),
            )
            .map_err(|_| ClientError::Internal)?;
        request.sealed = sealed
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::Internal)?;
        let keys = crypto::export_registration_keys(|l, out| ctx.export(l, out))
            .ok_or(ClientError::Internal)?;

        Ok((
            AwaitingRegistrationResponse {
                config: config.clone(),
                record_id,
                code: code.clone(),
                opaque: start.state,
                keys,
            },
            request,
        ))
    }
}

impl AwaitingRegistrationResponse {
    /// Checks that the response came from the fleet and names the trusted
    /// key-exchange key, finishes OPAQUE, wraps the backup key (a fresh one,
    /// or `backup_key`) under the export key, and seals the upload.
    pub fn finish<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        response: &RegistrationResponse,
        backup_key: Option<BackupKey>,
    ) -> Result<(AwaitingRegistrationConfirmation, RegistrationUpload), ClientError> {
        let session_id = response.session_id;
        // The exported secrets, bound to the session the vault named.
        let keys = self.keys.for_session(&session_id);
        let opened: Zeroizing<[u8; wire::OPAQUE_REGISTRATION_RESPONSE_LEN]> = crypto::open(
            &keys.response,
            &crypto::aad(label::AAD_RESPONSE, &self.record_id, &session_id),
            &response.sealed,
        )
        .ok_or(ClientError::RegistrationResponseNotAuthentic)?;
        let opaque_response = OpaqueRegistrationResponse::<Suite>::deserialize(&opened[..])
            .map_err(|_| WireError::InvalidField("registration response"))?;
        // The response is the evaluated element, then the server's key.
        let server_key = opened.get(32..).ok_or(ClientError::Internal)?;
        if !self.config.fleet.key_exchange_matches(server_key) {
            return Err(self.config.key_exchange_mismatch());
        }

        let ksf = KeyStretching::new(self.config.stretching);
        let finished = self
            .opaque
            .finish(
                rng,
                self.code.as_bytes(),
                opaque_response,
                ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf)),
            )
            .map_err(|_| ClientError::Internal)?;

        let backup_key = backup_key.unwrap_or_else(|| BackupKey::generate(rng));
        let wrapped = wrap_backup_key(&finished.export_key, &self.record_id, &backup_key);

        let mut plaintext = Zeroizing::new([0u8; SEALED_UPLOAD_PLAINTEXT_LEN]);
        let (record, rest) = plaintext.split_at_mut(OPAQUE_REGISTRATION_RECORD_LEN);
        record.copy_from_slice(&finished.message.serialize());
        let (params, wrapped_out) = rest.split_at_mut(StretchingParams::ENCODED_LEN);
        params.copy_from_slice(&self.config.stretching.to_bytes());
        wrapped_out.copy_from_slice(&wrapped);
        let sealed = crypto::seal(
            &keys.upload,
            &crypto::aad(label::AAD_UPLOAD, &self.record_id, &session_id),
            &plaintext,
        );
        Ok((
            AwaitingRegistrationConfirmation {
                record_id: self.record_id,
                session_id,
                confirm_key: keys.confirm.clone(),
                backup_key,
            },
            RegistrationUpload {
                record_id: self.record_id,
                session_id,
                sealed,
            },
        ))
    }
}

impl AwaitingRegistrationConfirmation {
    /// Checks the vault's confirmation and hands over the backup key. Until
    /// this succeeds the record may not be stored: do not rely on the key.
    pub fn finish(
        self,
        confirmation: &RegistrationConfirmation,
    ) -> Result<Registered, ClientError> {
        if confirmation.session_id != self.session_id {
            return Err(ClientError::RegistrationNotConfirmed);
        }
        let generation: Zeroizing<[u8; 8]> = crypto::open(
            &self.confirm_key,
            &crypto::aad(label::AAD_CONFIRM, &self.record_id, &self.session_id),
            &confirmation.sealed,
        )
        .ok_or(ClientError::RegistrationNotConfirmed)?;
        Ok(Registered {
            backup_key: self.backup_key.clone(),
            generation: u64::from_be_bytes(*generation),
        })
    }
}

// ----- Recovery ---------------------------------------------------------

/// Entry point of recovery.
#[derive(Debug)]
pub struct Recovery;

/// Waiting for the vault's [`RecoveryResponse`] (KE2).
pub struct AwaitingRecoveryResponse {
    config: ClientConfig,
    record_id: RecordId,
    code: RecoveryCode,
    opaque: ClientLogin<Suite>,
    /// The channel's exported secrets, not yet bound to a session.
    channel: crypto::RecoveryKeys,
}

/// Waiting for the vault's [`KeyRelease`].
pub struct AwaitingKeyRelease {
    record_id: RecordId,
    session_id: SessionId,
    release_key: Secret32,
    wrap_key: Secret32,
    rekey_token: Secret32,
}

/// A successful recovery.
#[derive(Debug)]
pub struct Recovered {
    /// The backup key.
    pub backup_key: BackupKey,
    /// Lets the client replace the record right away (new code, new key).
    pub rekey: RekeyAuthorization,
    /// How many attempts were charged to the record since the last
    /// recovery, before this one, and not forgiven by another success:
    /// wrong codes, and sessions never finished (someone's KE1 whose KE3
    /// never came, or another device's recovery running at the same time).
    /// Sealed by the vault with the key, so only this client reads it and
    /// no relay can change it; unlike the KE2's `attempts_remaining`, the
    /// app may rely on it (SPEC.md §6.2). 0 if nobody else tried.
    pub unforgiven_attempts: u8,
}

impl Recovery {
    /// Starts recovering `record_id` with `code`: OPAQUE KE1, sealed with
    /// HPKE (X-Wing) to the fleet's transport key (SPEC.md §5.5).
    pub fn start<R: RngCore + CryptoRng>(
        rng: &mut R,
        config: &ClientConfig,
        record_id: RecordId,
        code: &RecoveryCode,
    ) -> Result<(AwaitingRecoveryResponse, RecoveryStart), ClientError> {
        config.check_record(&record_id)?;
        let start =
            ClientLogin::<Suite>::start(rng, code.as_bytes()).map_err(|_| ClientError::Internal)?;
        let mut ke1 = Zeroizing::new([0u8; wire::KE1_LEN]);
        ke1.copy_from_slice(&start.message.serialize());
        let (encapped, mut ctx) =
            channel_to_fleet(rng, config, label::HPKE_INFO_RECOVERY, &record_id)?;
        let mut request = RecoveryStart {
            record_id,
            encapsulated_key: *encapped.as_bytes(),
            sealed: [0; wire::KE1_LEN + wire::TAG_LEN],
        };
        let sealed = ctx
            .seal(&ke1[..], &crate::vault::recovery_start_aad(&request))
            .map_err(|_| ClientError::Internal)?;
        request.sealed = sealed
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::Internal)?;
        let channel = crypto::export_recovery_keys(|l, out| ctx.export(l, out))
            .ok_or(ClientError::Internal)?;
        Ok((
            AwaitingRecoveryResponse {
                config: config.clone(),
                record_id,
                code: code.clone(),
                opaque: start.state,
                channel,
            },
            request,
        ))
    }
}

/// The client's side of an HPKE context of the channel (SPEC.md §4.4).
type SenderContext = hpke::aead::AeadCtxS<HpkeAead, HpkeKdf, HpkeKem>;

/// Opens an HPKE (X-Wing) context to the fleet's transport key, with `info
/// = label || record_id` (SPEC.md §4.4).
fn channel_to_fleet<R: RngCore + CryptoRng>(
    rng: &mut R,
    config: &ClientConfig,
    info_label: &[u8],
    record_id: &RecordId,
) -> Result<(<HpkeKem as hpke::Kem>::EncappedKey, SenderContext), ClientError> {
    let transport =
        <HpkeKem as hpke::Kem>::PublicKey::from_bytes(config.fleet.transport.as_bytes())
            .map_err(|_| ClientError::InvalidFleetKey)?;
    let info = crypto::bound_to_record(info_label, record_id);
    hpke::setup_sender::<HpkeAead, HpkeKdf, HpkeKem, _>(
        &OpModeS::Base,
        &transport,
        &info,
        &mut crypto::HpkeRng(rng),
    )
    .map_err(|_| ClientError::InvalidFleetKey)
}

impl AwaitingRecoveryResponse {
    /// Finishes on a KE2 that carries the fleet's validation bundle (SPEC.md
    /// §17): verifies the bundle against `anchors` first (before any
    /// stretching), then finishes as [`Self::finish`] but accepts only the
    /// key-exchange key the bundle lists for `opaque_key_exchange`
    /// ([`ClientError::RecoveryFailed`] otherwise, the same error as a wrong
    /// code: see [`Self::finish`]; a bundle that does not verify fails
    /// first, with [`ClientError::Bundle`], which does not depend on the
    /// code). `now_ms` is the app's time;
    /// `stored_epoch` the newest epoch it stored. Returns the verified fleet
    /// too: the app stores its [`VerifiedFleet::epoch_to_store`].
    pub fn finish_with_bundle<R: RngCore + CryptoRng>(
        mut self,
        rng: &mut R,
        response: &RecoveryResponseWithBundle,
        anchors: &TrustAnchors,
        now_ms: u64,
        stored_epoch: Option<u64>,
    ) -> Result<(AwaitingKeyRelease, RecoveryFinish, VerifiedFleet), ClientError> {
        let fleet = anchors.verify(response.bundle.bundle(), now_ms, stored_epoch)?;
        fleet.check_record(&self.record_id)?;
        self.config.fleet = fleet.public_keys();
        self.config.learned = true;
        self.config.records = fleet.artifact().records;
        let (state, ke3) = self.finish(rng, &response.response)?;
        Ok((state, ke3, fleet))
    }

    /// Checks the record's Argon2 parameters against the floor and ceiling,
    /// stretches the code, and finishes OPAQUE: KE3 and the keys that open
    /// the release. A wrong code fails here, as [`ClientError::RecoveryFailed`];
    /// so does a KE2 whose envelope opened but whose key-exchange key is not
    /// the trusted one. The two are one error on purpose: a relay that
    /// answers KE1 with a KE2 of its own, built for a guessed code, would
    /// learn from any difference in the app's reaction whether the guess
    /// was right, without the vault counting it (SPEC.md §6.2, §7.5).
    ///
    /// The sealed response is opened first: one that does not open (altered
    /// by the relay, or for another exchange) is
    /// [`ClientError::RecoveryFailed`] too, before any stretching.
    pub fn finish<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        response: &RecoveryResponse,
    ) -> Result<(AwaitingKeyRelease, RecoveryFinish), ClientError> {
        let session_id = response.session_id;
        let keys = self.channel.for_session(&session_id);
        let contents = self.open_with(&keys, response)?;
        self.config.check_stretching(&contents.stretching)?;
        let ke2 = CredentialResponse::<Suite>::deserialize(&contents.ke2)
            .map_err(|_| WireError::InvalidField("ke2"))?;
        let ksf = KeyStretching::new(contents.stretching);
        let context = crypto::bound_to_record(label::OPAQUE_CONTEXT, &self.record_id);
        let finished = self
            .opaque
            .finish(
                rng,
                self.code.as_bytes(),
                ke2,
                ClientLoginFinishParameters::new(
                    Some(&context),
                    Identifiers::default(),
                    Some(&ksf),
                ),
            )
            .map_err(|_| ClientError::RecoveryFailed)?;
        // An envelope that opened under a key-exchange key we do not trust
        // is the same failure as a wrong code, on purpose (SPEC.md §6.2,
        // §7.5): a relay that answers KE1 with its own KE2, built for a
        // guessed code, would otherwise learn from the app's reaction that
        // its guess opened the envelope, outside the vault's count.
        if !self
            .config
            .fleet
            .key_exchange_matches(&finished.server_s_pk.serialize())
        {
            return Err(ClientError::RecoveryFailed);
        }

        let ids: [&[u8]; 2] = [self.record_id.as_bytes(), session_id.as_bytes()];
        let mut ke3 = Zeroizing::new([0u8; wire::KE3_LEN]);
        ke3.copy_from_slice(&finished.message.serialize());
        let sealed = crypto::seal(
            &keys.finish,
            &crypto::aad(label::AAD_RECOVERY_FINISH, &self.record_id, &session_id),
            &ke3,
        );
        Ok((
            AwaitingKeyRelease {
                record_id: self.record_id,
                session_id,
                release_key: crypto::release_key(
                    &finished.session_key,
                    &keys.release,
                    &self.record_id,
                    &session_id,
                ),
                wrap_key: wrap_key(&finished.export_key, &self.record_id),
                rekey_token: crypto::derive_key(&finished.session_key, label::REKEY_TOKEN, &ids),
            },
            RecoveryFinish {
                record_id: self.record_id,
                session_id,
                sealed,
            },
        ))
    }

    /// Opens the sealed part of the vault's response without finishing:
    /// what the app may show before it stretches the code (attempts
    /// remaining, informational; the record's Argon2 parameters). A response
    /// that does not open is [`ClientError::RecoveryFailed`].
    pub fn open(
        &self,
        response: &RecoveryResponse,
    ) -> Result<RecoveryResponseContents, ClientError> {
        self.open_with(&self.channel.for_session(&response.session_id), response)
    }

    /// Seals `ke3` in this exchange's channel for the session `response`
    /// opened, as [`Self::finish`] does with the real KE3. **For tests and
    /// negative vectors** that play someone holding the channel's keys and
    /// sending a KE3 of their own; an app never needs it.
    #[doc(hidden)]
    pub fn seal_finish(
        &self,
        response: &RecoveryResponse,
        ke3: &[u8; wire::KE3_LEN],
    ) -> RecoveryFinish {
        let session_id = response.session_id;
        let keys = self.channel.for_session(&session_id);
        RecoveryFinish {
            record_id: self.record_id,
            session_id,
            sealed: crypto::seal(
                &keys.finish,
                &crypto::aad(label::AAD_RECOVERY_FINISH, &self.record_id, &session_id),
                ke3,
            ),
        }
    }

    fn open_with(
        &self,
        keys: &crypto::RecoveryKeys,
        response: &RecoveryResponse,
    ) -> Result<RecoveryResponseContents, ClientError> {
        let plaintext: Zeroizing<[u8; RECOVERY_RESPONSE_PLAINTEXT_LEN]> = crypto::open(
            &keys.response,
            &crypto::aad(
                label::AAD_RECOVERY_RESPONSE,
                &self.record_id,
                &response.session_id,
            ),
            &response.sealed,
        )
        .ok_or(ClientError::RecoveryFailed)?;
        Ok(RecoveryResponseContents::from_bytes(&plaintext)?)
    }
}

impl AwaitingKeyRelease {
    /// Opens the release, unwraps the backup key, and reads the count of
    /// unforgiven attempts sealed with it.
    pub fn finish(self, release: &KeyRelease) -> Result<Recovered, ClientError> {
        if release.session_id != self.session_id {
            return Err(ClientError::ReleaseNotAuthentic);
        }
        let plaintext: Zeroizing<[u8; RELEASE_PLAINTEXT_LEN]> = crypto::open(
            &self.release_key,
            &crypto::aad(label::AAD_RELEASE, &self.record_id, &self.session_id),
            &release.sealed,
        )
        .ok_or(ClientError::ReleaseNotAuthentic)?;
        // SPEC.md §5.8: `wrapped_key(48) || unforgiven_attempts(1)`.
        let Some((wrapped, &[unforgiven_attempts])) =
            plaintext.split_first_chunk::<WRAPPED_KEY_LEN>()
        else {
            return Err(ClientError::ReleaseNotAuthentic);
        };
        let key: Zeroizing<[u8; BACKUP_KEY_LEN]> = crypto::open(
            &self.wrap_key,
            &crypto::bound_to_record(label::AAD_WRAP, &self.record_id),
            wrapped,
        )
        .ok_or(ClientError::ReleaseNotAuthentic)?;
        Ok(Recovered {
            backup_key: BackupKey::from_bytes(*key),
            rekey: RekeyAuthorization {
                record_id: self.record_id,
                token: self.rekey_token.clone(),
            },
            unforgiven_attempts,
        })
    }
}

fn wrap_key(export_key: &[u8], record_id: &RecordId) -> Secret32 {
    crypto::derive_key(export_key, label::WRAP_KEY, &[record_id.as_bytes()])
}

fn wrap_backup_key(
    export_key: &[u8],
    record_id: &RecordId,
    key: &BackupKey,
) -> [u8; WRAPPED_KEY_LEN] {
    crypto::seal(
        &wrap_key(export_key, record_id),
        &crypto::bound_to_record(label::AAD_WRAP, record_id),
        key.expose_secret(),
    )
}
