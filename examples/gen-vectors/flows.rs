//! The conformance flows of `vectors/` (SPEC.md §12): each one runs a real
//! vault and real clients from fixed seeds and records every input, every
//! random draw, every message, every committed command and every derived
//! value the SPEC names.
//!
//! Used by the generator (`cargo run -p backup-key-vault --example
//! gen-vectors`, which writes the files) and by `tests/vectors.rs` (which
//! regenerates them and demands byte equality, then checks the values
//! independently).
#![allow(dead_code)]

use std::collections::VecDeque;

use backup_key_vault::bundle::{EncodedBundle, ValidationBundle, MAX_BUNDLE_LEN};
use backup_key_vault::client::{
    AwaitingKeyRelease, AwaitingRecoveryResponse, ClientConfig, Recovery, Registration,
};
use backup_key_vault::derive;
use backup_key_vault::suite::{KeyStretching, Suite};
use backup_key_vault::vault::{
    Applied, Command, MemoryStore, RecordSlot, RecordStore, Vault, VaultPolicy,
};
use backup_key_vault::wire::{
    self, BundleRequest, BundleResponse, KeyRelease, RecoveryFinish, RecoveryResponse,
    RecoveryResponseContents, RecoveryResponseWithBundle, RecoveryStart, RegistrationConfirmation,
    RegistrationRequest, RegistrationResponse, RegistrationUpload, Rejection,
};
use backup_key_vault::{
    BackupKey, BundleError, ClientError, FleetSecrets, RecordId, RecordRange, RecoveryCode,
    StoreError, StretchingParams, VaultError, WireError,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, Identifiers,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use serde_json::{json, Map, Value};

/// How every RNG of the vectors is made.
pub const RNG: &str = "rand_chacha 0.3 ChaCha20Rng::seed_from_u64(seed); every draw is listed";

/// The command that rewrites the vectors.
pub const GENERATOR: &str = "cargo run -p backup-key-vault --example gen-vectors";

/// The files this module produces, by name (without `.json`).
pub const FLOWS: &[&str] = &[
    "registration",
    "recovery-success",
    "recovery-wrong-code",
    "lockout",
    "negative",
    "bundle",
    "record-tree",
];

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ----- Deterministic randomness, recorded --------------------------------

/// Forwards to a seeded RNG and records every draw, in order.
pub struct Recorder {
    inner: ChaCha20Rng,
    draws: Vec<Vec<u8>>,
}

impl Recorder {
    pub fn new(seed: u64) -> Self {
        Self {
            inner: ChaCha20Rng::seed_from_u64(seed),
            draws: Vec::new(),
        }
    }

    /// The draws since the last call.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.draws)
    }
}

impl RngCore for Recorder {
    fn next_u32(&mut self) -> u32 {
        let v = self.inner.next_u32();
        self.draws.push(v.to_le_bytes().to_vec());
        v
    }
    fn next_u64(&mut self) -> u64 {
        let v = self.inner.next_u64();
        self.draws.push(v.to_le_bytes().to_vec());
        v
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest);
        self.draws.push(dest.to_vec());
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Recorder {}

/// Hands out recorded draws again, in order, checking each length: used to
/// recompute OPAQUE values with opaque-ke directly.
pub struct Replay(VecDeque<Vec<u8>>);

impl Replay {
    pub fn new(draws: &[Vec<u8>]) -> Self {
        Self(draws.iter().cloned().collect())
    }
}

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let draw = self.0.pop_front().expect("a recorded draw is left");
        assert_eq!(
            draw.len(),
            dest.len(),
            "draws replayed in the recorded order"
        );
        dest.copy_from_slice(&draw);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Replay {}

/// Names each draw of one call by its position (SPEC.md §12 lists them);
/// panics if the implementation drew something else.
fn draws_json(call: &str, draws: &[Vec<u8>]) -> Value {
    let purposes: &[(&str, usize)] = match call {
        "FleetSecrets::generate" => &[
            ("oprf_seed", 64),
            ("ke_sk: 64 bytes reduced mod l (little-endian)", 64),
            ("tr_sk", 32),
        ],
        "Registration::start" => &[
            (
                "OPRF blind: 64 bytes reduced mod l (little-endian); redrawn if zero",
                64,
            ),
            (
                "HPKE X-Wing encapsulation seed (ML-KEM-768 m, then the X25519 ephemeral scalar; §4.4)",
                64,
            ),
        ],
        "AwaitingRegistrationResponse::finish" => &[("OPAQUE envelope_nonce", 32)],
        "Vault::registration_request" => &[("oprf_nonce (§4.3)", 32), ("session_id", 16)],
        "Recovery::start" => &[
            (
                "OPRF blind: 64 bytes reduced mod l (little-endian); redrawn if zero",
                64,
            ),
            (
                "client_keyshare_seed (RFC 9807 DeriveDiffieHellmanKeyPair)",
                32,
            ),
            ("client_nonce", 32),
            (
                "HPKE X-Wing encapsulation seed (ML-KEM-768 m, then the X25519 ephemeral scalar; §4.4)",
                64,
            ),
        ],
        "Vault::recovery_start" => &[
            (
                "fake-record masking_key (drawn on every KE2, used only on the fake path)",
                64,
            ),
            ("masking_nonce", 32),
            (
                "server_keyshare_seed (RFC 9807 DeriveDiffieHellmanKeyPair)",
                32,
            ),
            ("server_nonce", 32),
            ("session_id", 16),
        ],
        _ => &[],
    };
    if draws.is_empty() {
        return json!([]);
    }
    assert_eq!(
        draws.iter().map(Vec::len).collect::<Vec<_>>(),
        purposes.iter().map(|p| p.1).collect::<Vec<_>>(),
        "{call} drew other randomness than SPEC.md §12 lists"
    );
    Value::Array(
        draws
            .iter()
            .zip(purposes)
            .map(|(d, (purpose, _))| json!({ "purpose": purpose, "hex": hex(d) }))
            .collect(),
    )
}

// ----- Errors and results as data -----------------------------------------

pub fn wire_error(e: &WireError) -> Value {
    match e {
        WireError::Empty => json!({ "error": "Empty" }),
        WireError::UnknownType(t) => json!({ "error": "UnknownType", "type": t }),
        WireError::WrongType { expected, found } => {
            json!({ "error": "WrongType", "expected": expected, "found": found })
        }
        WireError::UnsupportedVersion(v) => json!({ "error": "UnsupportedVersion", "version": v }),
        WireError::Length { expected, found } => {
            json!({ "error": "Length", "expected": expected, "found": found })
        }
        WireError::InvalidField(f) => json!({ "error": "InvalidField", "field": f }),
        other => json!({ "error": format!("{other:?}") }),
    }
}

/// A bundle error as data: the variant's name and its fields.
pub fn bundle_error(e: &BundleError) -> Value {
    match e {
        BundleError::Malformed(w) => json!({ "error": "Malformed", "wire": wire_error(w) }),
        BundleError::ArtifactMalformed(r) => json!({ "error": "ArtifactMalformed", "reason": r }),
        BundleError::CheckpointMalformed(r) => {
            json!({ "error": "CheckpointMalformed", "reason": r })
        }
        BundleError::Rollback { stored, presented } => {
            json!({ "error": "Rollback", "stored": stored, "presented": presented })
        }
        BundleError::MissingRole(r) => json!({ "error": "MissingRole", "role": r.name() }),
        BundleError::KeyNotListed(r) => json!({ "error": "KeyNotListed", "role": r.name() }),
        BundleError::RecordNotOwned { first, last } => json!({
            "error": "RecordNotOwned",
            "first": hex(&first.to_be_bytes()),
            "last": hex(&last.to_be_bytes()),
        }),
        other => json!({ "error": format!("{other:?}") }),
    }
}

pub fn vault_error(e: &VaultError) -> Value {
    let mut v = match e {
        VaultError::Wire(w) => json!({ "error": "Wire", "wire": wire_error(w) }),
        other => json!({ "error": format!("{other:?}") }),
    };
    let code = wire::RejectionCode::from(*e);
    v["rejection"] = json!(hex(&Rejection { code }.to_bytes()));
    v
}

pub fn client_error(e: &ClientError) -> Value {
    match e {
        ClientError::Wire(w) => json!({ "error": "Wire", "wire": wire_error(w) }),
        other => json!({ "error": format!("{other:?}") }),
    }
}

fn applied(a: &Result<Applied, StoreError>) -> Value {
    match a {
        Ok(Applied::Registered { generation }) => {
            json!({ "result": "Registered", "generation": generation })
        }
        Ok(Applied::Charged {
            attempts_remaining,
            charge,
        }) => {
            json!({ "result": "Charged", "attempts_remaining": attempts_remaining, "charge": charge })
        }
        Ok(Applied::Reset {
            unforgiven_attempts,
        }) => json!({ "result": "Reset", "unforgiven_attempts": unforgiven_attempts }),
        Ok(Applied::Refused(r)) => json!({ "result": "Refused", "refusal": format!("{r:?}") }),
        Ok(other) => json!({ "result": format!("{other:?}") }),
        Err(_) => json!({ "result": "StoreError" }),
    }
}

fn slot(s: Option<RecordSlot>) -> Value {
    match s {
        None => json!({ "state": "absent" }),
        Some(s) => {
            let (state, used, charges, forgiven, last) = match &s {
                RecordSlot::Live(r) => (
                    "live",
                    json!(r.attempts_used()),
                    json!(r.charges),
                    json!(r.forgiven_through),
                    json!(r.last_unforgiven),
                ),
                RecordSlot::Erased { .. } => {
                    ("erased", Value::Null, Value::Null, Value::Null, Value::Null)
                }
            };
            json!({
                "state": state,
                "generation": s.generation(),
                "attempts_used": used,
                "charges": charges,
                "forgiven_through": forgiven,
                "last_unforgiven": last,
                "encoding": hex(&s.to_bytes()),
            })
        }
    }
}

// ----- A store that records what is committed ------------------------------

#[derive(Default)]
pub struct RecordingStore {
    inner: MemoryStore,
    log: Vec<Value>,
}

impl RecordStore for RecordingStore {
    fn load(&self, record_id: &RecordId) -> Result<Option<RecordSlot>, StoreError> {
        self.inner.load(record_id)
    }
    fn commit(&mut self, command: &Command) -> Result<Applied, StoreError> {
        let result = self.inner.commit(command);
        self.log.push(json!({
            "command": hex(&command.to_bytes()),
            "applied": applied(&result),
        }));
        result
    }
}

// ----- One flow -------------------------------------------------------------

/// Opens a ChaCha20-Poly1305 box with a zero nonce (SPEC.md notation `Open`).
/// ChaCha20-Poly1305 under a single-use key (nonce zero), as the protocol
/// seals with exported and derived keys.
pub fn seal(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    ChaCha20Poly1305::new_from_slice(key)
        .unwrap()
        .encrypt(
            &[0u8; 12].into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap()
}

pub fn open(key: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    ChaCha20Poly1305::new_from_slice(key)
        .ok()?
        .decrypt(&[0u8; 12].into(), Payload { msg: sealed, aad })
        .ok()
}

pub struct Flow {
    name: &'static str,
    description: &'static str,
    seeds: Map<String, Value>,
    fleet: FleetSecrets,
    fleet_json: Value,
    policy: VaultPolicy,
    vault: Vault<RecordingStore>,
    vault_rng: Recorder,
    config: ClientConfig,
    record_id: RecordId,
    now: u64,
    steps: Vec<Value>,
    negative: Vec<Value>,
}

pub struct RegisteredClient {
    pub export_key: Vec<u8>,
    pub backup_key: [u8; 32],
}

pub struct RecoveryOutcome {
    pub release: Option<KeyRelease>,
    pub ke2: Option<RecoveryResponse>,
}

impl Flow {
    pub fn new(
        name: &'static str,
        description: &'static str,
        fleet_seed: u64,
        vault_seed: u64,
        policy: VaultPolicy,
    ) -> Self {
        let mut rng = Recorder::new(fleet_seed);
        let fleet = FleetSecrets::generate(&mut rng);
        let draws = rng.take();
        let bytes = fleet.to_bytes();
        let oprf_seed: [u8; 64] = bytes[1..65].try_into().unwrap();
        let public = fleet.public_keys();
        let record_id = RecordId([0x42; 32]);
        let dummy_pk = derive::dummy_public_key(&oprf_seed);
        let fleet_json = json!({
            "rng_draws": draws_json("FleetSecrets::generate", &draws),
            "secrets": hex(&bytes[..]),
            "oprf_seed": hex(&oprf_seed),
            "ke_sk": hex(&bytes[65..97]),
            "tr_sk": hex(&bytes[97..129]),
            "ke_pk": hex(&public.key_exchange),
            "tr_pk": hex(public.transport.as_bytes()),
            "dummy_key_wide": hex(&derive::dummy_key_wide(&oprf_seed)[..]),
            "dummy_pk": hex(&dummy_pk),
            "server_setup": hex(&[&bytes[1..97], &dummy_pk[..]].concat()),
            "K_unknown": hex(&derive::unknown_record_nonce_key(&oprf_seed)[..]),
        });
        let config = ClientConfig::insecure_test_only(public);
        let vault = Vault::new(&fleet, policy.clone(), RecordingStore::default()).unwrap();
        let mut seeds = Map::new();
        seeds.insert("fleet".into(), json!(fleet_seed));
        seeds.insert("vault".into(), json!(vault_seed));
        Self {
            name,
            description,
            seeds,
            fleet,
            fleet_json,
            policy,
            vault,
            vault_rng: Recorder::new(vault_seed),
            config,
            record_id,
            now: 1_700_000_000_000,
            steps: Vec::new(),
            negative: Vec::new(),
        }
    }

    fn oprf_seed(&self) -> [u8; 64] {
        self.fleet.to_bytes()[1..65].try_into().unwrap()
    }

    fn tr_sk(&self) -> [u8; 32] {
        self.fleet.to_bytes()[97..129].try_into().unwrap()
    }

    fn commits(&mut self) -> Value {
        Value::Array(std::mem::take(&mut self.vault.store_mut().log))
    }

    fn slot(&self) -> Value {
        slot(self.vault.store().load(&self.record_id).unwrap())
    }

    fn client_seed(&mut self, role: &str, seed: u64) -> Recorder {
        self.seeds.insert(role.into(), json!(seed));
        Recorder::new(seed)
    }

    fn push(&mut self, step: Value) {
        let mut step = step;
        step["step"] = json!(self.steps.len() + 1);
        self.steps.push(step);
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.push(json!({ "actor": "relay", "call": "time passes", "now_ms": self.now }));
    }

    /// §6.1 and §7.1: the four registration messages.
    pub fn register(
        &mut self,
        role: &str,
        seed: u64,
        code: &[u8],
        key: [u8; 32],
    ) -> RegisteredClient {
        let record_id = self.record_id;
        let mut rng = self.client_seed(role, seed);
        let code_value = RecoveryCode::new(code).unwrap();
        let (state, request) =
            Registration::start(&mut rng, &self.config, record_id, &code_value, None).unwrap();
        let start_draws = rng.take();
        let exports =
            derive::registration_exports(&self.tr_sk(), &request.encapsulated_key, &record_id)
                .unwrap();
        let opaque_request =
            ClientRegistration::<Suite>::start(&mut Replay::new(&start_draws[..1]), code).unwrap();
        let plaintext = [&opaque_request.message.serialize()[..], &[0u8], &[0u8; 32]].concat();
        self.push(json!({
            "actor": "client", "rng": role, "call": "Registration::start",
            "inputs": {
                "record_id": hex(record_id.as_bytes()),
                "recovery_code": hex(code),
                "stretching": params(&StretchingParams::INSECURE_TEST_ONLY),
                "rekey": null,
            },
            "rng_draws": draws_json("Registration::start", &start_draws),
            "output": { "message": "RegistrationRequest", "hex": hex(&request.to_bytes()) },
            "values": {
                "opaque_registration_request": hex(&opaque_request.message.serialize()),
                "sealed_plaintext": hex(&plaintext),
                "hpke_info": hex(&derive::hpke_info(&record_id)),
                "hpke_aad": hex(&derive::registration_request_aad(&record_id, &request.encapsulated_key)),
                "X_resp": hex(&exports.response[..]),
                "X_upload": hex(&exports.upload[..]),
                "X_confirm": hex(&exports.confirm[..]),
            },
        }));

        let response = self
            .vault
            .registration_request(&mut self.vault_rng, self.now, &request)
            .unwrap();
        let draws = self.vault_rng.take();
        let oprf_nonce: [u8; 32] = draws[0].clone().try_into().unwrap();
        let cid = derive::credential_identifier(&record_id, &oprf_nonce);
        let oprf_key_seed = derive::oprf_key_seed(&self.oprf_seed(), &cid);
        let keys = derive::registration_keys(
            &self.tr_sk(),
            &request.encapsulated_key,
            &record_id,
            &response.session_id,
        )
        .unwrap();
        let response_aad = derive::response_aad(&record_id, &response.session_id);
        let opaque_response = open(&keys.response[..], &response_aad, &response.sealed).unwrap();
        let commits = self.commits();
        self.push(json!({
            "actor": "vault", "rng": "vault", "call": "Vault::registration_request",
            "now_ms": self.now,
            "input": hex(&request.to_bytes()),
            "rng_draws": draws_json("Vault::registration_request", &draws),
            "commits": commits,
            "output": { "message": "RegistrationResponse", "hex": hex(&response.to_bytes()) },
            "values": {
                "credential_identifier": hex(&cid),
                "oprf_key_seed": hex(&oprf_key_seed[..]),
                "oprf_key": hex(&oprf_key(&oprf_key_seed[..])),
                "opaque_registration_response": hex(&opaque_response),
                "response_aad": hex(&response_aad),
                "K_resp": hex(&keys.response[..]),
                "K_upload": hex(&keys.upload[..]),
                "K_confirm": hex(&keys.confirm[..]),
            },
        }));

        let (state, upload) = state
            .finish(&mut rng, &response, Some(BackupKey::from_bytes(key)))
            .unwrap();
        let finish_draws = rng.take();
        // Recompute with opaque-ke directly, from the recorded draws.
        let ksf = KeyStretching::new(StretchingParams::INSECURE_TEST_ONLY);
        let opaque = ClientRegistration::<Suite>::start(&mut Replay::new(&start_draws[..1]), code)
            .unwrap()
            .state
            .finish(
                &mut Replay::new(&finish_draws),
                code,
                opaque_ke::RegistrationResponse::deserialize(&opaque_response).unwrap(),
                ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf)),
            )
            .unwrap();
        let export_key = opaque.export_key.to_vec();
        let wrapped = derive::wrapped_key(&export_key, &record_id, &key);
        let upload_plaintext = [
            &opaque.message.serialize()[..],
            &StretchingParams::INSECURE_TEST_ONLY.to_bytes(),
            &wrapped,
        ]
        .concat();
        let upload_aad = derive::upload_aad(&record_id, &upload.session_id);
        assert_eq!(
            open(&keys.upload[..], &upload_aad, &upload.sealed).unwrap(),
            upload_plaintext,
            "the client's upload is what the SPEC says"
        );
        self.push(json!({
            "actor": "client", "rng": role, "call": "AwaitingRegistrationResponse::finish",
            "inputs": { "message": hex(&response.to_bytes()), "backup_key": hex(&key) },
            "rng_draws": draws_json("AwaitingRegistrationResponse::finish", &finish_draws),
            "output": { "message": "RegistrationUpload", "hex": hex(&upload.to_bytes()) },
            "values": {
                "export_key": hex(&export_key),
                "K_wrap": hex(&derive::wrap_key(&export_key, &record_id)[..]),
                "wrap_aad": hex(&derive::wrap_aad(&record_id)),
                "wrapped_key": hex(&wrapped),
                "registration_record": hex(&opaque.message.serialize()),
                "upload_plaintext": hex(&upload_plaintext),
                "upload_aad": hex(&upload_aad),
            },
        }));

        let confirmation = self.vault.registration_upload(self.now, &upload).unwrap();
        let commits = self.commits();
        let confirm_aad = derive::confirm_aad(&record_id, &confirmation.session_id);
        let generation = open(&keys.confirm[..], &confirm_aad, &confirmation.sealed).unwrap();
        let slot = self.slot();
        self.push(json!({
            "actor": "vault", "rng": "vault", "call": "Vault::registration_upload",
            "now_ms": self.now,
            "input": hex(&upload.to_bytes()),
            "rng_draws": [],
            "commits": commits,
            "output": { "message": "RegistrationConfirmation", "hex": hex(&confirmation.to_bytes()) },
            "values": { "confirm_plaintext": hex(&generation), "confirm_aad": hex(&confirm_aad) },
            "slot_after": slot,
        }));

        // Negative: what the client refuses instead of this confirmation.
        let mut other = confirmation.clone();
        other.session_id.0[0] ^= 1;
        let mut flipped = confirmation.clone();
        flipped.sealed[0] ^= 1;
        let registered = state.finish(&confirmation).unwrap();
        self.push(json!({
            "actor": "client", "rng": role, "call": "AwaitingRegistrationConfirmation::finish",
            "inputs": { "message": hex(&confirmation.to_bytes()) },
            "output": {
                "generation": registered.generation,
                "backup_key": hex(registered.backup_key.expose_secret()),
            },
        }));
        for (what, msg) in [
            ("session id changed", other),
            ("ciphertext bit flipped", flipped),
        ] {
            let err = self
                .registration_client_at_confirmation(seed, code, &response, key)
                .finish(&msg);
            let err = refused(err);
            self.negative.push(json!({
                "actor": "client", "rng": role,
                "call": "AwaitingRegistrationConfirmation::finish",
                "state": "the client of this flow's registration, after its upload",
                "case": what,
                "input": hex(&msg.to_bytes()),
                "error": client_error(&err),
            }));
        }
        // The identity in each point of the OPAQUE RegistrationResponse,
        // sealed properly under K_resp (§5.10).
        let opened = open(&keys.response[..], &response_aad, &response.sealed).unwrap();
        let mut resealed = Vec::new();
        for (what, at) in [
            ("evaluated element is the identity (resealed)", 0),
            ("server public key is the identity (resealed)", 32),
        ] {
            let mut pt = opened.clone();
            pt[at..at + 32].fill(0);
            let sealed = ChaCha20Poly1305::new_from_slice(&keys.response[..])
                .unwrap()
                .encrypt(
                    &[0u8; 12].into(),
                    Payload {
                        msg: &pt,
                        aad: &response_aad,
                    },
                )
                .unwrap();
            resealed.push((
                what,
                RegistrationResponse {
                    session_id: response.session_id,
                    sealed: sealed.try_into().unwrap(),
                },
            ));
        }
        for (what, msg) in tampered_responses(&response).into_iter().chain(resealed) {
            let (mut rng, state) = self.registration_client(seed, code);
            let err = refused(state.finish(&mut rng, &msg, Some(BackupKey::from_bytes(key))));
            self.negative.push(json!({
                "actor": "client", "rng": role,
                "call": "AwaitingRegistrationResponse::finish",
                "state": "the client of this flow's registration, after its request",
                "case": what,
                "input": hex(&msg.to_bytes()),
                "error": client_error(&err),
            }));
        }
        RegisteredClient {
            export_key,
            backup_key: key,
        }
    }

    fn registration_client(
        &self,
        seed: u64,
        code: &[u8],
    ) -> (
        ChaCha20Rng,
        backup_key_vault::client::AwaitingRegistrationResponse,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let code = RecoveryCode::new(code).unwrap();
        let (state, _) =
            Registration::start(&mut rng, &self.config, self.record_id, &code, None).unwrap();
        (rng, state)
    }

    fn registration_client_at_confirmation(
        &self,
        seed: u64,
        code: &[u8],
        response: &RegistrationResponse,
        key: [u8; 32],
    ) -> backup_key_vault::client::AwaitingRegistrationConfirmation {
        let (mut rng, state) = self.registration_client(seed, code);
        state
            .finish(&mut rng, response, Some(BackupKey::from_bytes(key)))
            .unwrap()
            .0
    }

    fn recovery_client(&self, seed: u64, code: &[u8]) -> (ChaCha20Rng, AwaitingRecoveryResponse) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let code = RecoveryCode::new(code).unwrap();
        let (state, _) = Recovery::start(&mut rng, &self.config, self.record_id, &code).unwrap();
        (rng, state)
    }

    /// §6.2 and §7.2–7.3: KE1 to key release, as far as it goes. With
    /// `attacker_ke3`, a relay that holds the KE2 sends a garbage KE3.
    pub fn recover(
        &mut self,
        role: &str,
        seed: u64,
        code: &[u8],
        attacker_ke3: bool,
    ) -> RecoveryOutcome {
        let record_id = self.record_id;
        let mut rng = self.client_seed(role, seed);
        let code_value = RecoveryCode::new(code).unwrap();
        let (state, ke1) = Recovery::start(&mut rng, &self.config, record_id, &code_value).unwrap();
        let start_draws = rng.take();
        // The channel (§4.4): what the vault decapsulates and exports.
        let exports =
            derive::recovery_exports(&self.tr_sk(), &ke1.encapsulated_key, &record_id).unwrap();
        let ke1_aad = derive::recovery_start_aad(&record_id, &ke1.encapsulated_key);
        let opaque_ke1 = ClientLogin::<Suite>::start(&mut Replay::new(&start_draws[..]), code)
            .unwrap()
            .message
            .serialize()
            .to_vec();
        self.push(json!({
            "actor": "client", "rng": role, "call": "Recovery::start",
            "inputs": { "record_id": hex(record_id.as_bytes()), "recovery_code": hex(code) },
            "rng_draws": draws_json("Recovery::start", &start_draws),
            "output": { "message": "RecoveryStart", "hex": hex(&ke1.to_bytes()) },
            "values": {
                "ke1": hex(&opaque_ke1),
                "hpke_info": hex(&derive::recovery_hpke_info(&record_id)),
                "hpke_aad": hex(&ke1_aad),
                "Y_resp": hex(&exports.response[..]),
                "Y_finish": hex(&exports.finish[..]),
                "Y_release": hex(&exports.release[..]),
            },
        }));

        // The OPRF nonce the vault will use: the live record's, else the
        // unknown-record nonce of the fake path (SPEC.md §4.3).
        let live_nonce = match self.vault.store().load(&record_id).unwrap() {
            Some(RecordSlot::Live(r)) => Some(r.payload.oprf_nonce),
            _ => None,
        };
        let answer = self
            .vault
            .recovery_start(&mut self.vault_rng, self.now, &ke1);
        let draws = self.vault_rng.take();
        let commits = self.commits();
        let slot = self.slot();
        let ke2 = match answer {
            Ok(ke2) => ke2,
            Err(e) => {
                self.push(json!({
                    "actor": "vault", "rng": "vault", "call": "Vault::recovery_start",
                    "now_ms": self.now,
                    "input": hex(&ke1.to_bytes()),
                    "rng_draws": draws_json("Vault::recovery_start", &draws),
                    "commits": commits,
                    "output": vault_error(&e),
                    "slot_after": slot,
                }));
                return RecoveryOutcome {
                    release: None,
                    ke2: None,
                };
            }
        };
        let oprf_seed = self.oprf_seed();
        let sid = ke2.session_id;
        let channel =
            derive::recovery_keys(&self.tr_sk(), &ke1.encapsulated_key, &record_id, &sid).unwrap();
        let response_aad = derive::recovery_response_aad(&record_id, &sid);
        let response_plaintext: [u8; wire::RECOVERY_RESPONSE_PLAINTEXT_LEN] =
            open(&channel.response[..], &response_aad, &ke2.sealed)
                .unwrap()
                .try_into()
                .unwrap();
        let contents = RecoveryResponseContents::from_bytes(&response_plaintext).unwrap();
        let mut values = recovery_start_values(&oprf_seed, &record_id, live_nonce);
        values["K_chan_resp"] = json!(hex(&channel.response[..]));
        values["K_chan_finish"] = json!(hex(&channel.finish[..]));
        values["K_chan_release"] = json!(hex(&channel.release[..]));
        values["response_aad"] = json!(hex(&response_aad));
        values["response_plaintext"] = json!(hex(&response_plaintext));
        self.push(json!({
            "actor": "vault", "rng": "vault", "call": "Vault::recovery_start",
            "now_ms": self.now,
            "input": hex(&ke1.to_bytes()),
            "rng_draws": draws_json("Vault::recovery_start", &draws),
            "commits": commits,
            "output": { "message": "RecoveryResponse", "hex": hex(&ke2.to_bytes()) },
            "values": values,
            "slot_after": slot,
        }));

        let finished = state.finish(&mut rng, &ke2);
        let finish_draws = rng.take();
        let (state, ke3) = match finished {
            Ok(ok) => ok,
            Err(e) => {
                self.push(json!({
                    "actor": "client", "rng": role, "call": "AwaitingRecoveryResponse::finish",
                    "inputs": { "message": hex(&ke2.to_bytes()) },
                    "rng_draws": draws_json("AwaitingRecoveryResponse::finish", &finish_draws),
                    "output": client_error(&e),
                }));
                if attacker_ke3 {
                    self.attacker_ke3(seed, code, &ke2);
                }
                return RecoveryOutcome {
                    release: None,
                    ke2: Some(ke2),
                };
            }
        };
        // Recompute the OPAQUE keys with opaque-ke directly.
        let ksf = KeyStretching::new(contents.stretching);
        let context = derive::opaque_context(&record_id);
        let login = ClientLogin::<Suite>::start(&mut Replay::new(&start_draws), code)
            .unwrap()
            .state
            .finish(
                &mut Replay::new(&finish_draws),
                code,
                CredentialResponse::deserialize(&contents.ke2).unwrap(),
                ClientLoginFinishParameters::new(
                    Some(&context),
                    Identifiers::default(),
                    Some(&ksf),
                ),
            )
            .unwrap();
        let finish_aad = derive::recovery_finish_aad(&record_id, &sid);
        assert_eq!(
            &login.message.serialize()[..],
            &open(&channel.finish[..], &finish_aad, &ke3.sealed).unwrap()[..]
        );
        let session_key = login.session_key.to_vec();
        let export_key = login.export_key.to_vec();
        let release_key = derive::release_key(&session_key, &channel.release, &record_id, &sid);
        self.push(json!({
            "actor": "client", "rng": role, "call": "AwaitingRecoveryResponse::finish",
            "inputs": { "message": hex(&ke2.to_bytes()) },
            "rng_draws": draws_json("AwaitingRecoveryResponse::finish", &finish_draws),
            "output": { "message": "RecoveryFinish", "hex": hex(&ke3.to_bytes()) },
            "values": {
                "ke3": hex(&login.message.serialize()),
                "finish_aad": hex(&finish_aad),
                "session_key": hex(&session_key),
                "export_key": hex(&export_key),
                "K_release": hex(&release_key[..]),
                "K_wrap": hex(&derive::wrap_key(&export_key, &record_id)[..]),
                "rekey_token": hex(&derive::rekey_token(&session_key, &record_id, &sid)[..]),
                "release_aad": hex(&derive::release_aad(&record_id, &sid)),
            },
        }));

        let answer = self.vault.recovery_finish(self.now, &ke3);
        let commits = self.commits();
        let slot = self.slot();
        let release = match answer {
            Ok(release) => release,
            Err(e) => {
                self.push(json!({
                    "actor": "vault", "call": "Vault::recovery_finish", "now_ms": self.now,
                    "input": hex(&ke3.to_bytes()), "commits": commits,
                    "output": vault_error(&e), "slot_after": slot,
                }));
                return RecoveryOutcome {
                    release: None,
                    ke2: Some(ke2),
                };
            }
        };
        // §5.8: what K_release seals, the stored wrapped key and the count
        // the reset computed.
        let unforgiven = match &commits[0]["applied"] {
            a if a["result"] == "Reset" => a["unforgiven_attempts"].as_u64().unwrap() as u8,
            other => panic!("the release follows a Reset, not {other}"),
        };
        let wrapped = match self.vault.store().load(&record_id).unwrap() {
            Some(RecordSlot::Live(r)) => r.payload.wrapped_key,
            other => panic!("a released record is live, not {other:?}"),
        };
        let plaintext = [&wrapped[..], &[unforgiven]].concat();
        self.push(json!({
            "actor": "vault", "call": "Vault::recovery_finish", "now_ms": self.now,
            "input": hex(&ke3.to_bytes()),
            "commits": commits,
            "output": { "message": "KeyRelease", "hex": hex(&release.to_bytes()) },
            "values": {
                "session_key": hex(&session_key),
                "K_chan_release": hex(&channel.release[..]),
                "K_release": hex(&release_key[..]),
                "release_aad": hex(&derive::release_aad(&record_id, &sid)),
                "release_plaintext": hex(&plaintext),
            },
            "slot_after": slot,
        }));
        let recovered = state.finish(&release).unwrap();
        assert_eq!(recovered.unforgiven_attempts, unforgiven);
        self.push(json!({
            "actor": "client", "rng": role, "call": "AwaitingKeyRelease::finish",
            "inputs": { "message": hex(&release.to_bytes()) },
            "output": {
                "backup_key": hex(recovered.backup_key.expose_secret()),
                "unforgiven_attempts": recovered.unforgiven_attempts,
            },
        }));

        // Negative: what this client refuses instead of the genuine answers.
        for (what, msg) in tampered_ke2s(&ke2, &contents, &channel.response[..], &response_aad) {
            let (mut rng, state) = self.recovery_client(seed, code);
            let err = refused(state.finish(&mut rng, &msg));
            self.negative.push(json!({
                "actor": "client", "rng": role, "call": "AwaitingRecoveryResponse::finish",
                "state": "this recovery's client, after its KE1",
                "case": what, "input": hex(&msg.to_bytes()), "error": client_error(&err),
            }));
        }
        let mut other = release.clone();
        other.session_id.0[0] ^= 1;
        let mut flipped = release.clone();
        flipped.sealed[63] ^= 1;
        // The count is the plaintext's last byte: ChaCha20 maps its bits to
        // the same ciphertext bits, and the tag catches the change.
        let mut recounted = release.clone();
        recounted.sealed[wire::WRAPPED_KEY_LEN] ^= 1;
        for (what, msg) in [
            ("session id changed", other),
            ("tag bit flipped", flipped),
            ("unforgiven-attempts bit flipped", recounted),
        ] {
            let err = self.release_client(seed, code, &ke2).finish(&msg);
            let err = refused(err);
            self.negative.push(json!({
                "actor": "client", "rng": role, "call": "AwaitingKeyRelease::finish",
                "state": "this recovery's client, after its KE3",
                "case": what, "input": hex(&msg.to_bytes()), "error": client_error(&err),
            }));
        }
        RecoveryOutcome {
            release: Some(release),
            ke2: Some(ke2),
        }
    }

    fn release_client(&self, seed: u64, code: &[u8], ke2: &RecoveryResponse) -> AwaitingKeyRelease {
        let (mut rng, state) = self.recovery_client(seed, code);
        state.finish(&mut rng, ke2).unwrap().0
    }

    /// A KE3 that fails the vault's OPAQUE check, sealed in the session's
    /// channel (an app that sends one anyway, or anyone holding the
    /// client's channel keys).
    pub fn attacker_ke3(&mut self, seed: u64, code: &[u8], ke2: &RecoveryResponse) {
        let (_, state) = self.recovery_client(seed, code);
        let ke3 = state.seal_finish(ke2, &[0x5A; wire::KE3_LEN]);
        let err = self.vault.recovery_finish(self.now, &ke3).unwrap_err();
        let commits = self.commits();
        let slot = self.slot();
        self.push(json!({
            "actor": "relay", "call": "Vault::recovery_finish", "now_ms": self.now,
            "input": hex(&ke3.to_bytes()),
            "commits": commits,
            "output": vault_error(&err),
            "slot_after": slot,
        }));
    }

    pub fn finish(mut self) -> Value {
        let policy = &self.policy;
        let slot = self.slot();
        let mut out = json!({
            "flow": self.name,
            "description": self.description,
            "spec": "SPEC.md §12",
            "generator": GENERATOR,
            "rng": RNG,
            "seeds": Value::Object(std::mem::take(&mut self.seeds)),
            "vault_policy": {
                "max_attempts": policy.max_attempts,
                "session_ttl_ms": policy.session_ttl_ms,
                "max_pending_recoveries": policy.max_pending_recoveries,
                "max_pending_registrations": policy.max_pending_registrations,
                "stretching_floor": params(&policy.stretching_floor),
                "unknown_record_stretching": params(&policy.unknown_record_stretching),
            },
            "client_config": {
                "constructor": "ClientConfig::insecure_test_only",
                "stretching": params(&StretchingParams::INSECURE_TEST_ONLY),
                "floor": params(&StretchingParams::INSECURE_TEST_ONLY),
                "ceiling": params(&StretchingParams::DEFAULT_CEILING),
            },
            "record_id": hex(self.record_id.as_bytes()),
            "fleet": self.fleet_json.clone(),
            "steps": Value::Array(std::mem::take(&mut self.steps)),
            "final_slot": slot,
        });
        if !self.negative.is_empty() {
            out["negative"] = Value::Array(std::mem::take(&mut self.negative));
        }
        out
    }
}

/// The error of a call that must fail (client states have no `Debug`).
/// The values of a `Vault::recovery_start` step: the OPAQUE context, and the
/// credential identifier and OPRF key of the record's nonce, or of the
/// unknown-record nonce (listed then) when the record is not live.
fn recovery_start_values(
    oprf_seed: &[u8; 64],
    record_id: &RecordId,
    live_nonce: Option<[u8; 32]>,
) -> Value {
    let mut values = json!({ "opaque_context": hex(&derive::opaque_context(record_id)) });
    let nonce = match live_nonce {
        Some(nonce) => nonce,
        None => {
            let nonce = derive::unknown_record_nonce(oprf_seed, record_id);
            values["unknown_record_nonce"] = json!(hex(&nonce));
            nonce
        }
    };
    let cid = derive::credential_identifier(record_id, &nonce);
    let seed = derive::oprf_key_seed(oprf_seed, &cid);
    values["credential_identifier"] = json!(hex(&cid));
    values["oprf_key_seed"] = json!(hex(&seed[..]));
    values["oprf_key"] = json!(hex(&oprf_key(&seed[..])));
    values
}

fn refused<T, E>(result: Result<T, E>) -> E {
    match result {
        Ok(_) => panic!("a tampered answer was accepted"),
        Err(e) => e,
    }
}

fn params(p: &StretchingParams) -> Value {
    json!({ "m_cost": p.m_cost, "t_cost": p.t_cost, "p_cost": p.p_cost, "encoding": hex(&p.to_bytes()) })
}

/// RFC 9497 `DeriveKeyPair(seed, "OPAQUE-DeriveKeyPair")`, mode OPRF, for
/// ristretto255-SHA512: the record's OPRF private key (little-endian).
pub fn oprf_key(seed: &[u8]) -> [u8; 32] {
    voprf::derive_key::<voprf::Ristretto255>(seed, b"OPAQUE-DeriveKeyPair", voprf::Mode::Oprf)
        .unwrap()
        .to_bytes()
}

fn tampered_responses(r: &RegistrationResponse) -> Vec<(&'static str, RegistrationResponse)> {
    let mut sid = r.clone();
    sid.session_id.0[15] ^= 0x80;
    let mut body = r.clone();
    body.sealed[0] ^= 1;
    let mut tag = r.clone();
    tag.sealed[79] ^= 1;
    vec![
        ("session id changed (replayed into another session)", sid),
        ("ciphertext bit flipped", body),
        ("tag bit flipped", tag),
    ]
}

/// What a client refuses instead of the genuine KE2: the sealed message
/// changed in transit (the channel refuses it), and contents changed and
/// then sealed properly under `K_chan_resp` (what only the fleet, or a
/// party holding the channel's keys, could send), so each check behind the
/// channel has a vector too.
fn tampered_ke2s(
    r: &RecoveryResponse,
    contents: &RecoveryResponseContents,
    key: &[u8],
    aad: &[u8],
) -> Vec<(&'static str, RecoveryResponse)> {
    let mut sid = r.clone();
    sid.session_id.0[0] ^= 1;
    let mut body = r.clone();
    body.sealed[0] ^= 1;
    let mut tag = r.clone();
    let last = tag.sealed.len() - 1;
    tag.sealed[last] ^= 1;
    let reseal = |c: RecoveryResponseContents| RecoveryResponse {
        session_id: r.session_id,
        sealed: seal(key, aad, &c.to_bytes()).try_into().unwrap(),
    };
    let mut evaluated = contents.clone();
    evaluated.ke2[0] ^= 1;
    let mut mac = contents.clone();
    mac.ke2[319] ^= 1;
    let mut masked = contents.clone();
    masked.ke2[64] ^= 1;
    let mut invalid_point = contents.clone();
    invalid_point.ke2[..32].fill(0xFF);
    // The identity's encoding is all zeros (§5.10).
    let mut identity_element = contents.clone();
    identity_element.ke2[..32].fill(0);
    let mut identity_share = contents.clone();
    identity_share.ke2[32 + 32 + 128 + 32..32 + 32 + 128 + 64].fill(0);
    let mut above = contents.clone();
    above.stretching = StretchingParams {
        m_cost: StretchingParams::DEFAULT_CEILING.m_cost + 8,
        ..StretchingParams::INSECURE_TEST_ONLY
    };
    let mut other_params = contents.clone();
    other_params.stretching = StretchingParams {
        m_cost: 16,
        ..StretchingParams::INSECURE_TEST_ONLY
    };
    let [evaluated, mac, masked, invalid_point, identity_element, identity_share, above, other_params] =
        [
            evaluated,
            mac,
            masked,
            invalid_point,
            identity_element,
            identity_share,
            above,
            other_params,
        ]
        .map(reseal);
    vec![
        (
            "session id changed (the channel's keys are bound to it)",
            sid,
        ),
        ("sealed ciphertext bit flipped", body),
        ("sealed tag bit flipped", tag),
        ("evaluated element bit flipped", evaluated),
        ("masked response bit flipped", masked),
        ("server MAC bit flipped", mac),
        ("evaluated element not a valid encoding", invalid_point),
        ("evaluated element is the identity", identity_element),
        ("server key share is the identity", identity_share),
        ("Argon2 memory above the client's ceiling", above),
        (
            "other (valid) Argon2 parameters than the record's",
            other_params,
        ),
    ]
}

// ----- The flows ----------------------------------------------------------

const CODE: &[u8] = b"4F7K-9QXD";
const WRONG: &[u8] = b"4F7K-9QXE";
const KEY: [u8; 32] = [0xB7; 32];

// The seeds: ASCII tags, so every flow's streams differ.
const FLEET: u64 = 0x6276_6b2d_666c_6565; // "bvk-flee"
const VAULT: u64 = 0x6276_6b2d_7661_756c; // "bvk-vaul"
const REG_CLIENT: u64 = 0x6276_6b2d_7265_6731; // "bvk-reg1"
const REC_CLIENT: u64 = 0x6276_6b2d_7265_6331; // "bvk-rec1"

pub fn registration() -> Value {
    let mut f = Flow::new(
        "registration",
        "A first registration (mode 0) of a record: request sealed with HPKE, sealed response, sealed upload, sealed confirmation; the Register command committed.",
        FLEET,
        VAULT,
        VaultPolicy::insecure_test_only(),
    );
    f.register("registration client", REG_CLIENT, CODE, KEY);
    f.finish()
}

pub fn recovery_success() -> Value {
    let mut f = Flow::new(
        "recovery-success",
        "Registration, then a recovery with the right code: the charge committed before KE2, the reset committed before the key release; the backup key comes back, and the release reports 0 unforgiven attempts.",
        FLEET,
        VAULT,
        VaultPolicy::insecure_test_only(),
    );
    f.register("registration client", REG_CLIENT, CODE, KEY);
    f.recover("recovery client", REC_CLIENT, CODE, false);
    f.finish()
}

pub fn recovery_wrong_code() -> Value {
    let mut f = Flow::new(
        "recovery-wrong-code",
        "Registration, then a recovery with a wrong code: the attempt is charged, the client fails at KE2 (RecoveryFailed) and sends no KE3; then the right code recovers and resets the count, and its release reports the wrong code's attempt (1 unforgiven attempt).",
        FLEET,
        0x6276_6b2d_7661_7532,
        VaultPolicy::insecure_test_only(),
    );
    f.register("registration client", REG_CLIENT, CODE, KEY);
    f.recover("wrong-code client", 0x6276_6b2d_7772_6f31, WRONG, false);
    f.recover("recovery client", REC_CLIENT, CODE, false);
    f.finish()
}

pub fn lockout() -> Value {
    let mut f = Flow::new(
        "lockout",
        "max_attempts = 3. Three wrong-code KE1s count the attempts down to 0; a fourth KE1 while the last session is pending is refused (AttemptsExhausted); the relay's KE3 for that last session fails and erases the record; the right code then gets a fake-path KE2 and fails (RecoveryFailed); the slot stays a tombstone.",
        FLEET,
        0x6276_6b2d_7661_7533,
        VaultPolicy {
            max_attempts: 3,
            ..VaultPolicy::insecure_test_only()
        },
    );
    f.register("registration client", REG_CLIENT, CODE, KEY);
    f.recover("wrong-code client 1", 0x6276_6b2d_7772_6f31, WRONG, false);
    f.recover("wrong-code client 2", 0x6276_6b2d_7772_6f32, WRONG, false);
    let last = f.recover("wrong-code client 3", 0x6276_6b2d_7772_6f33, WRONG, false);
    f.recover("wrong-code client 4", 0x6276_6b2d_7772_6f34, WRONG, false);
    let last_ke2 = last.ke2.expect("a KE2 for the last attempt");
    f.attacker_ke3(0x6276_6b2d_7772_6f33, WRONG, &last_ke2);
    f.recover("recovery client", REC_CLIENT, CODE, false);
    f.finish()
}

// ----- Negative vectors: decoders and the vault's byte entry point --------

fn decode_case<T>(
    decoder: &str,
    case: &str,
    input: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, WireError>,
) -> Value {
    let err = decode(input)
        .err()
        .unwrap_or_else(|| panic!("{decoder}: {case} must fail"));
    json!({ "decoder": decoder, "case": case, "input": hex(input), "error": wire_error(&err) })
}

fn header_cases<T>(
    decoder: &str,
    valid: &[u8],
    other_type: u8,
    decode: impl Fn(&[u8]) -> Result<T, WireError> + Copy,
) -> Vec<Value> {
    assert!(
        decode(valid).is_ok(),
        "{decoder}: the base message is valid"
    );
    let with = |i: usize, b: u8| {
        let mut v = valid.to_vec();
        v[i] = b;
        v
    };
    let mut long = valid.to_vec();
    long.push(0);
    // The type's own version (§5): 2 for a KeyRelease, 1 for the others.
    let version = valid[1];
    let mut retired = Vec::new();
    if version > 1 {
        retired.push(decode_case(
            decoder,
            "version 1 (retired)",
            &with(1, 1),
            decode,
        ));
    }
    let newer = format!("version {}", version + 1);
    retired.extend([
        decode_case(decoder, "empty", &[], decode),
        decode_case(decoder, "type byte only", &valid[..1], decode),
        decode_case(decoder, "type 0x00", &with(0, 0), decode),
        decode_case(decoder, "type 0xee (unknown)", &with(0, 0xEE), decode),
        decode_case(decoder, "version 0", &with(1, 0), decode),
        decode_case(decoder, &newer, &with(1, version + 1), decode),
        decode_case(
            decoder,
            "another message's type",
            &with(0, other_type),
            decode,
        ),
        decode_case(decoder, "one byte short", &valid[..valid.len() - 1], decode),
        decode_case(decoder, "one trailing byte", &long, decode),
    ]);
    retired
}

pub fn negative() -> Value {
    // Valid messages to corrupt: those of the recovery-success flow.
    let flow = recovery_success();
    let msg = |call: &str| -> Vec<u8> {
        let step = flow["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["call"] == call && s["output"]["hex"].is_string())
            .unwrap();
        from_hex(step["output"]["hex"].as_str().unwrap())
    };
    let mut decoders = Vec::new();
    macro_rules! wire {
        ($ty:ident, $bytes:expr, $other:expr) => {
            decoders.extend(header_cases(stringify!($ty), &$bytes, $other, |b| {
                $ty::from_bytes(b)
            }));
        };
    }
    let request = msg("Registration::start");
    let response = msg("Vault::registration_request");
    let upload = msg("AwaitingRegistrationResponse::finish");
    let confirmation = msg("Vault::registration_upload");
    let ke1 = msg("Recovery::start");
    let ke2 = msg("Vault::recovery_start");
    let ke3 = msg("AwaitingRecoveryResponse::finish");
    let release = msg("Vault::recovery_finish");
    let rejection = Rejection {
        code: wire::RejectionCode::Busy,
    }
    .to_bytes();
    wire!(RegistrationRequest, request, 0x03);
    wire!(RegistrationResponse, response, 0x01);
    wire!(RegistrationUpload, upload, 0x01);
    wire!(RegistrationConfirmation, confirmation, 0x08);
    wire!(RecoveryStart, ke1, 0x07);
    wire!(RecoveryResponse, ke2, 0x05);
    wire!(RecoveryFinish, ke3, 0x05);
    wire!(KeyRelease, release, 0x04);
    wire!(Rejection, rejection, 0x08);
    // The sealed plaintext of a KE2 (§5.6), decoded once the channel opened
    // it: the Argon2 parameters are validated there.
    let contents: Vec<u8> = {
        let step = flow["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["call"] == "Vault::recovery_start" && s["output"]["hex"].is_string())
            .unwrap();
        from_hex(step["values"]["response_plaintext"].as_str().unwrap())
    };
    let decode_contents = |b: &[u8]| {
        <&[u8; wire::RECOVERY_RESPONSE_PLAINTEXT_LEN]>::try_from(b)
            .map_err(|_| WireError::Length {
                expected: wire::RECOVERY_RESPONSE_PLAINTEXT_LEN,
                found: b.len(),
            })
            .and_then(RecoveryResponseContents::from_bytes)
    };
    assert!(decode_contents(&contents).is_ok());
    for (case, at, value) in [
        ("p_cost = 0", 1 + 8, 0u32),
        ("t_cost = 0", 1 + 4, 0),
        ("m_cost = 7 (< 8)", 1, 7),
    ] {
        let mut bad = contents.clone();
        bad[at..at + 4].copy_from_slice(&value.to_be_bytes());
        decoders.push(decode_case(
            "RecoveryResponseContents",
            case,
            &bad,
            decode_contents,
        ));
    }
    for code in [0u8, 0xFF] {
        decoders.push(decode_case(
            "Rejection",
            &format!("code {code}"),
            &[0x09, 0x01, code],
            Rejection::from_bytes,
        ));
    }

    // The messages of §16.2 and the ValidationBundle decoder of §16.1, on
    // the bytes of bundle.json.
    let bundle_flow = bundle();
    let encoded_bundle = from_hex(bundle_flow["bundle"].as_str().unwrap());
    let bundle_response = from_hex(bundle_flow["bundle_response"].as_str().unwrap());
    let with_bundle = RecoveryResponseWithBundle {
        response: RecoveryResponse::from_bytes(&ke2).unwrap(),
        bundle: EncodedBundle::from_bytes(&encoded_bundle).unwrap(),
    }
    .to_bytes();
    let bundle_request = BundleRequest {}.to_bytes();
    wire!(BundleRequest, bundle_request, 0x0B);
    wire!(BundleResponse, bundle_response, 0x0A);
    wire!(RecoveryResponseWithBundle, with_bundle, 0x06);
    let set = |base: &[u8], i: usize, b: &[u8]| {
        let mut v = base.to_vec();
        v[i..i + b.len()].copy_from_slice(b);
        v
    };
    let too_long = (MAX_BUNDLE_LEN as u32 + 1).to_be_bytes();
    decoders.extend([
        decode_case(
            "BundleResponse",
            "shorter than its length prefix",
            &bundle_response[..5],
            BundleResponse::from_bytes,
        ),
        decode_case(
            "BundleResponse",
            "length prefix and nothing else",
            &bundle_response[..6],
            BundleResponse::from_bytes,
        ),
        decode_case(
            "BundleResponse",
            "length 0",
            &set(&bundle_response, 2, &[0; 4]),
            BundleResponse::from_bytes,
        ),
        decode_case(
            "BundleResponse",
            "length above the largest bundle",
            &set(&bundle_response, 2, &too_long),
            BundleResponse::from_bytes,
        ),
        decode_case(
            "BundleResponse",
            "bundle of version 1",
            &set(&bundle_response, 6, &[1]),
            BundleResponse::from_bytes,
        ),
        decode_case(
            "RecoveryResponseWithBundle",
            "fixed part cut short",
            &with_bundle[..300],
            RecoveryResponseWithBundle::from_bytes,
        ),
        decode_case(
            "RecoveryResponseWithBundle",
            "KE2 and no length prefix",
            &with_bundle[..367],
            RecoveryResponseWithBundle::from_bytes,
        ),
        decode_case(
            "RecoveryResponseWithBundle",
            "length 0",
            &set(&with_bundle, 367, &[0; 4]),
            RecoveryResponseWithBundle::from_bytes,
        ),
        decode_case(
            "RecoveryResponseWithBundle",
            "length above the largest bundle",
            &set(&with_bundle, 367, &too_long),
            RecoveryResponseWithBundle::from_bytes,
        ),
    ]);
    let vb = ValidationBundle::from_bytes(&encoded_bundle).unwrap();
    let n = vb.namespace.len();
    let flag_at = 2 + n + 8 + 8 + 32 + 32 + 64;
    let artifact_len_at = flag_at
        + 1
        + if vb.counter_signature.is_some() {
            96
        } else {
            0
        };
    let leaf_at = artifact_len_at + 4 + vb.artifact.len();
    let proof_len_at = leaf_at + 8;
    let checkpoint_len_at = proof_len_at + 1 + 32 * vb.inclusion.hashes.len();
    let vb_case = |case: &str, input: &[u8]| {
        decode_case("ValidationBundle", case, input, |b| {
            ValidationBundle::from_bytes(b).map(|_| ())
        })
    };
    let mut spaced = encoded_bundle.clone();
    spaced[2 + 6] = b' ';
    decoders.extend([
        vb_case("empty", &[]),
        vb_case("version 1 (retired)", &set(&encoded_bundle, 0, &[1])),
        vb_case(
            "version 2 (retired: artifacts without a range)",
            &set(&encoded_bundle, 0, &[2]),
        ),
        vb_case("version 4", &set(&encoded_bundle, 0, &[4])),
        vb_case("version only", &encoded_bundle[..1]),
        vb_case("cut inside the namespace", &encoded_bundle[..10]),
        vb_case("namespace length 0", &set(&encoded_bundle, 1, &[0])),
        vb_case("namespace length 129", &set(&encoded_bundle, 1, &[129])),
        vb_case("namespace with a space", &spaced),
        vb_case(
            "cut inside the auditor signature",
            &encoded_bundle[..flag_at - 1],
        ),
        vb_case(
            "counter-signature flag 2",
            &set(&encoded_bundle, flag_at, &[2]),
        ),
        vb_case(
            "artifact length 0",
            &set(&encoded_bundle, artifact_len_at, &[0; 4]),
        ),
        vb_case(
            "artifact length 16385",
            &set(&encoded_bundle, artifact_len_at, &16385u32.to_be_bytes()),
        ),
        vb_case(
            "inclusion proof length 41",
            &set(&encoded_bundle, proof_len_at, &[41]),
        ),
        vb_case(
            "checkpoint length 0",
            &set(&encoded_bundle, checkpoint_len_at, &[0; 4]),
        ),
        vb_case(
            "checkpoint length above 131072",
            &set(&encoded_bundle, checkpoint_len_at, &131073u32.to_be_bytes()),
        ),
        vb_case(
            "one byte short",
            &encoded_bundle[..encoded_bundle.len() - 1],
        ),
        vb_case("one trailing byte", &[&encoded_bundle[..], &[0]].concat()),
        vb_case("longer than the largest bundle", &{
            let mut long = encoded_bundle.clone();
            long.resize(MAX_BUNDLE_LEN + 1, 0);
            long
        }),
    ]);

    // Command (§8.2) and RecordSlot (§8.4), from the flow's Register.
    let register = from_hex(flow["steps"][3]["commits"][0]["command"].as_str().unwrap());
    let charge = from_hex(flow["steps"][6]["commits"][0]["command"].as_str().unwrap());
    let with = |base: &[u8], i: usize, b: &[u8]| {
        let mut v = base.to_vec();
        v[i..i + b.len()].copy_from_slice(b);
        v
    };
    let payload = 51;
    let reset = [&with(&charge, 1, &[3])[..], &[0; 8]].concat();
    let cmd = |case: &str, input: &[u8]| decode_case("Command", case, input, Command::from_bytes);
    decoders.extend([
        cmd("empty", &[]),
        cmd("version 1 (retired)", &with(&charge, 0, &[1])),
        cmd("version 3", &with(&charge, 0, &[3])),
        cmd("version only", &charge[..1]),
        cmd("tag 0", &with(&charge, 1, &[0])),
        cmd("tag 6 (unknown)", &with(&charge, 1, &[6])),
        cmd("ChargeAttempt one byte short", &charge[..charge.len() - 1]),
        cmd("ResetAttempts without its charge", &with(&charge, 1, &[3])),
        cmd("ResetAttempts charge 0", &reset),
        cmd("Erase without its charge", &with(&charge, 1, &[4])),
        cmd("Erase charge 0", &with(&reset, 1, &[4])),
        cmd(
            "Register one trailing byte",
            &[&register[..], &[0]].concat(),
        ),
        cmd(
            "replaces flag 0 with replaced generation 1",
            &with(&register, 35, &1u64.to_be_bytes()),
        ),
        cmd(
            "replaces flag 1 with replaced generation 0",
            &with(&register, 34, &[1]),
        ),
        cmd("replaces flag 2", &with(&register, 34, &[2])),
        cmd(
            "creates generation 0",
            &with(&register, 43, &0u64.to_be_bytes()),
        ),
        cmd(
            "replaces generation 1 but creates 1",
            &with(&with(&register, 34, &[1]), 35, &1u64.to_be_bytes()),
        ),
        cmd(
            "payload p_cost = 0",
            &with(&register, payload + 32 + 192 + 48 + 8, &[0; 4]),
        ),
        cmd(
            "payload max_attempts = 0",
            &with(&register, register.len() - 1, &[0]),
        ),
    ]);
    let live = from_hex(flow["final_slot"]["encoding"].as_str().unwrap());
    let slot_case =
        |case: &str, input: &[u8]| decode_case("RecordSlot", case, input, RecordSlot::from_bytes);
    let counters_at = 2 + 285;
    let counters =
        |charges: u64, forgiven: u64| [charges.to_be_bytes(), forgiven.to_be_bytes()].concat();
    decoders.extend([
        slot_case("empty", &[]),
        slot_case("version 1 (retired)", &with(&live, 0, &[1])),
        slot_case("version 2 (retired)", &with(&live, 0, &[2])),
        slot_case("version 4", &with(&live, 0, &[4])),
        slot_case("tag 3 (unknown)", &with(&live, 1, &[3])),
        slot_case("live, one byte short", &live[..live.len() - 1]),
        slot_case("tombstone, one byte short", &[3, 2, 0, 0, 0, 0, 0, 0, 1]),
        slot_case(
            "attempts used above max",
            &with(&live, counters_at, &counters(11, 0)),
        ),
        slot_case(
            "forgiven beyond the charges",
            &with(&live, counters_at, &counters(3, 4)),
        ),
        slot_case("generation 0", &with(&live, counters_at + 16, &[0; 8])),
        // The flow's success forgave through charge 1: its count is 0.
        slot_case(
            "last unforgiven not below forgiven_through",
            &with(&live, counters_at + 24, &[1]),
        ),
        slot_case(
            "last unforgiven at max_attempts",
            &with(
                &with(&live, counters_at, &counters(20, 19)),
                counters_at + 24,
                &[10],
            ),
        ),
    ]);
    let secrets = from_hex(flow["fleet"]["secrets"].as_str().unwrap());
    let fleet_case = |case: &str, input: &[u8]| {
        decode_case("FleetSecrets", case, input, |b| {
            FleetSecrets::from_bytes(b).map(|_| ())
        })
    };
    decoders.extend([
        fleet_case("empty", &[]),
        fleet_case("one byte short", &secrets[..128]),
        fleet_case(
            "version 1 (retired: an X25519 transport key)",
            &with(&secrets, 0, &[1]),
        ),
        fleet_case("version 3", &with(&secrets, 0, &[3])),
        fleet_case("key-exchange key zero", &with(&secrets, 65, &[0; 32])),
        fleet_case(
            "key-exchange key not canonical (all 0xff)",
            &with(&secrets, 65, &[0xFF; 32]),
        ),
    ]);

    // The vault's byte entry point on a fresh vault (no records).
    let fleet = FleetSecrets::from_bytes(&secrets).unwrap();
    let mut vault = Vault::new(
        &fleet,
        VaultPolicy::insecure_test_only(),
        MemoryStore::new(),
    )
    .unwrap();
    let mut rng = Recorder::new(VAULT);
    let mut vault_cases = Vec::new();
    let mut ask = |case: &str, request: &[u8]| {
        let answer = vault.handle(&mut rng, 1_700_000_000_000, request);
        assert!(
            rng.take().is_empty(),
            "{case}: a rejected request draws nothing"
        );
        let typed = typed_vault_error(&mut vault, request);
        assert_eq!(hex(&answer), typed["rejection"].as_str().unwrap());
        vault_cases.push(json!({ "case": case, "request": hex(request), "error": typed, "answer": hex(&answer) }));
    };
    ask("empty", &[]);
    ask(
        "a vault-to-client message (RegistrationResponse)",
        &response,
    );
    // KE1s with a bad point, sealed properly to the fleet (§4.4), so the
    // check behind the channel is what refuses them.
    let plain_ke1 = ClientLogin::<Suite>::start(&mut ChaCha20Rng::seed_from_u64(0x006b_6531), CODE)
        .unwrap()
        .message
        .serialize()
        .to_vec();
    ask(
        "KE1 whose blinded element is not a valid encoding",
        &recovery_start_with(&fleet, &ke1, &with(&plain_ke1, 0, &[0xFF; 32])),
    );
    // The identity (all-zero encoding) where KE1 carries a point (§5.10):
    // a canonical encoding, refused all the same.
    ask(
        "KE1 whose blinded element is the identity",
        &recovery_start_with(&fleet, &ke1, &with(&plain_ke1, 0, &[0; 32])),
    );
    ask(
        "KE1 whose client key share is the identity",
        &recovery_start_with(&fleet, &ke1, &with(&plain_ke1, 64, &[0; 32])),
    );
    ask(
        "KE1 whose HPKE seal was altered",
        &with(&ke1, 1154, &[ke1[1154] ^ 1]),
    );
    ask(
        "KE1 whose X-Wing ciphertext was altered (ML-KEM part)",
        &with(&ke1, 34, &[ke1[34] ^ 1]),
    );
    ask(
        "KE1 whose X-Wing ciphertext was altered (X25519 part)",
        &with(&ke1, 34 + 1088, &[ke1[34 + 1088] ^ 1]),
    );
    ask(
        "KE1 with another record id (HPKE info and aad differ)",
        &with(&ke1, 2, &[ke1[2] ^ 1]),
    );
    ask(
        "a retired version-1 KE1 (in clear, 130 bytes)",
        &[&[0x05, 0x01][..], &ke1[2..34], &plain_ke1[..]].concat(),
    );
    ask(
        "registration request whose OPAQUE blinded element is the identity",
        &registration_request_with(&fleet, &request, &[0; 32]),
    );
    ask("KE3 for no pending session", &ke3);
    ask("upload for no pending registration", &upload);
    ask(
        "registration request whose HPKE seal was altered",
        &with(&request, 70, &[request[70] ^ 1]),
    );
    ask(
        "registration request with another record id (HPKE info and aad differ)",
        &with(&request, 2, &[0x43]),
    );
    ask(
        "registration request with an all-zero enc",
        &with(&request, 34, &[0; 32]),
    );

    // An upload whose RegistrationRecord carries the identity as the
    // client's public key (§5.10): it needs a pending registration, so the
    // case lists the request that makes one (answered with the draws of
    // `rng_seed`) before the upload.
    let setup_seed = 0x6276_6b2d_7570_6c64; // "bvk-upld"
    let mut upload_vault = Vault::new(
        &fleet,
        VaultPolicy::insecure_test_only(),
        MemoryStore::new(),
    )
    .unwrap();
    let pending = RegistrationRequest::from_bytes(&request).unwrap();
    let answer = upload_vault.handle(&mut Recorder::new(setup_seed), 1_700_000_000_000, &request);
    let session_id = RegistrationResponse::from_bytes(&answer)
        .unwrap()
        .session_id;
    let tr_sk: [u8; 32] = secrets[97..129].try_into().unwrap();
    let k_upload = derive::registration_keys(
        &tr_sk,
        &pending.encapsulated_key,
        &pending.record_id,
        &session_id,
    )
    .unwrap()
    .upload;
    let plaintext = [
        &[0u8; 32][..],        // client_public_key: the identity
        &[0x11; 192 - 32][..], // masking key, envelope
        &StretchingParams::INSECURE_TEST_ONLY.to_bytes()[..],
        &[0x22; 48][..], // wrapped key
    ]
    .concat();
    let sealed = ChaCha20Poly1305::new_from_slice(&k_upload[..])
        .unwrap()
        .encrypt(
            &[0u8; 12].into(),
            Payload {
                msg: &plaintext,
                aad: &derive::upload_aad(&pending.record_id, &session_id),
            },
        )
        .unwrap();
    let upload_identity = RegistrationUpload {
        record_id: pending.record_id,
        session_id,
        sealed: sealed.try_into().unwrap(),
    }
    .to_bytes();
    let answer = upload_vault.handle(&mut Recorder::new(0), 1_700_000_000_000, &upload_identity);
    let err = RegistrationUpload::from_bytes(&upload_identity)
        .map_err(VaultError::from)
        .and_then(|m| {
            let mut again = Vault::new(
                &fleet,
                VaultPolicy::insecure_test_only(),
                MemoryStore::new(),
            )
            .unwrap();
            again.handle(&mut Recorder::new(setup_seed), 1_700_000_000_000, &request);
            again.registration_upload(1_700_000_000_000, &m).map(|_| ())
        })
        .unwrap_err();
    let typed = vault_error(&err);
    assert_eq!(hex(&answer), typed["rejection"].as_str().unwrap());
    let after_request = vec![json!({
        "case": "upload whose client public key is the identity",
        "setup_request": hex(&request),
        "setup_rng_seed": setup_seed,
        "request": hex(&upload_identity),
        "error": typed,
        "answer": hex(&answer),
    })];

    json!({
        "flow": "negative",
        "description": "Malformed inputs and the exact error each produces. `decoders`: each decoder (SPEC.md §5, §8.2, §8.4, §4.1) on corrupted copies of the recovery-success flow's bytes. `vault`: requests to a fresh vault (fleet of the recovery-success flow, no records, policy insecure_test_only) through its byte entry point (§5.9): the typed error and the Rejection bytes. `vault_after_request`: the same, for a request sent to a fresh vault after `setup_request` (answered with the draws of ChaCha20Rng seed `setup_rng_seed`). Client-side rejections are in each flow's `negative` list.",
        "spec": "SPEC.md §12",
        "generator": GENERATOR,
        "decoders": decoders,
        "vault": vault_cases,
        "vault_after_request": after_request,
    })
}

/// A registration request for the record of `like`, sealed with HPKE to the
/// fleet's transport key, whose OPAQUE `RegistrationRequest` (the blinded
/// element) is `blinded` (mode 0, zero token).
fn registration_request_with(fleet: &FleetSecrets, like: &[u8], blinded: &[u8; 32]) -> Vec<u8> {
    use hpke::{Deserializable, OpModeS, Serializable};
    type Kem = backup_key_vault::xwing::XWing;
    let like = RegistrationRequest::from_bytes(like).unwrap();
    let transport =
        <Kem as hpke::Kem>::PublicKey::from_bytes(fleet.public_keys().transport.as_bytes())
            .unwrap();
    let info = derive::hpke_info(&like.record_id);
    // hpke draws through rand_core 0.9.
    struct Rng09(ChaCha20Rng);
    impl rand_core_09::RngCore for Rng09 {
        fn next_u32(&mut self) -> u32 {
            self.0.next_u32()
        }
        fn next_u64(&mut self) -> u64 {
            self.0.next_u64()
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            self.0.fill_bytes(dst)
        }
    }
    impl rand_core_09::CryptoRng for Rng09 {}
    let mut rng = Rng09(ChaCha20Rng::seed_from_u64(0x6964_656e_7469_7479)); // "identity"
    let (enc, mut ctx) = hpke::setup_sender::<
        hpke::aead::ChaCha20Poly1305,
        hpke::kdf::HkdfSha256,
        Kem,
        _,
    >(&OpModeS::Base, &transport, &info, &mut rng)
    .unwrap();
    let enc: [u8; wire::ENCAPSULATED_KEY_LEN] = enc.to_bytes().as_slice().try_into().unwrap();
    let aad = derive::registration_request_aad(&like.record_id, &enc);
    let plaintext = [&blinded[..], &[0u8], &[0u8; 32]].concat();
    let sealed = ctx.seal(&plaintext, &aad).unwrap();
    RegistrationRequest {
        record_id: like.record_id,
        encapsulated_key: enc,
        sealed: sealed.try_into().unwrap(),
    }
    .to_bytes()
}

/// A recovery start for the record of `like`, with `ke1` (any 96 bytes)
/// sealed with HPKE (X-Wing) to the fleet's transport key (§5.5).
fn recovery_start_with(fleet: &FleetSecrets, like: &[u8], ke1: &[u8]) -> Vec<u8> {
    use hpke::{Deserializable, OpModeS, Serializable};
    type Kem = backup_key_vault::xwing::XWing;
    let like = RecoveryStart::from_bytes(like).unwrap();
    let transport =
        <Kem as hpke::Kem>::PublicKey::from_bytes(fleet.public_keys().transport.as_bytes())
            .unwrap();
    let info = derive::recovery_hpke_info(&like.record_id);
    struct Rng09(ChaCha20Rng);
    impl rand_core_09::RngCore for Rng09 {
        fn next_u32(&mut self) -> u32 {
            self.0.next_u32()
        }
        fn next_u64(&mut self) -> u64 {
            self.0.next_u64()
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            self.0.fill_bytes(dst)
        }
    }
    impl rand_core_09::CryptoRng for Rng09 {}
    let mut rng = Rng09(ChaCha20Rng::seed_from_u64(0x6b65_3120_7365_616c)); // "ke1 seal"
    let (enc, mut ctx) = hpke::setup_sender::<
        hpke::aead::ChaCha20Poly1305,
        hpke::kdf::HkdfSha256,
        Kem,
        _,
    >(&OpModeS::Base, &transport, &info, &mut rng)
    .unwrap();
    let enc: [u8; wire::ENCAPSULATED_KEY_LEN] = enc.to_bytes().as_slice().try_into().unwrap();
    let aad = derive::recovery_start_aad(&like.record_id, &enc);
    let sealed = ctx.seal(ke1, &aad).unwrap();
    RecoveryStart {
        record_id: like.record_id,
        encapsulated_key: enc,
        sealed: sealed.try_into().unwrap(),
    }
    .to_bytes()
}

fn typed_vault_error(vault: &mut Vault<MemoryStore>, request: &[u8]) -> Value {
    let mut rng = Recorder::new(0);
    let err = match wire::MessageType::of(request) {
        Err(e) => VaultError::Wire(e),
        Ok(wire::MessageType::RegistrationRequest) => RegistrationRequest::from_bytes(request)
            .map_err(VaultError::from)
            .and_then(|m| {
                vault
                    .registration_request(&mut rng, 1_700_000_000_000, &m)
                    .map(|_| ())
            })
            .unwrap_err(),
        Ok(wire::MessageType::RegistrationUpload) => RegistrationUpload::from_bytes(request)
            .map_err(VaultError::from)
            .and_then(|m| vault.registration_upload(1_700_000_000_000, &m).map(|_| ()))
            .unwrap_err(),
        Ok(wire::MessageType::RecoveryStart) => RecoveryStart::from_bytes(request)
            .map_err(VaultError::from)
            .and_then(|m| {
                vault
                    .recovery_start(&mut rng, 1_700_000_000_000, &m)
                    .map(|_| ())
            })
            .unwrap_err(),
        Ok(wire::MessageType::RecoveryFinish) => RecoveryFinish::from_bytes(request)
            .map_err(VaultError::from)
            .and_then(|m| vault.recovery_finish(1_700_000_000_000, &m).map(|_| ()))
            .unwrap_err(),
        Ok(other) => VaultError::Wire(WireError::WrongType {
            expected: wire::MessageType::RecoveryStart as u8,
            found: other as u8,
        }),
    };
    vault_error(&err)
}

pub fn from_hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "hex of even length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// Every flow, by file name.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("registration", registration()),
        ("recovery-success", recovery_success()),
        ("recovery-wrong-code", recovery_wrong_code()),
        ("lockout", lockout()),
        ("negative", negative()),
        ("bundle", bundle()),
        ("record-tree", record_tree()),
    ]
}

/// A file's text: pretty JSON and a final newline.
pub fn render(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("JSON");
    s.push('\n');
    s
}

// ----- Bundle verification, checkpoints and proofs (SPEC.md §14–§17) -------

/// The auditor's and the operator's Ed25519 seeds in the bundle vectors.
pub const AUDITOR_SEED: [u8; 32] = [0xA7; 32];
pub const OPERATOR_SEED: [u8; 32] = [0x0B; 32];

pub fn bundle() -> Value {
    use backup_key_vault::bundle::{
        artifact_digest, log, AuditorSigningKey, FleetKey, FleetKeyArtifact, KeyRole, MerkleLog,
        OperatorSigningKey, TrustAnchors, ValidationBundle, DEFAULT_NAMESPACE,
    };

    let fleet = FleetSecrets::generate(&mut Recorder::new(FLEET));
    let public = fleet.public_keys();
    // Group 0 of a realm of two (SPEC.md §14.1): record ids whose first
    // byte is below 0x80; the flows' record 0x42… is one of them.
    let records = RecordRange::split(0, 2).expect("two groups");
    let artifact = FleetKeyArtifact {
        namespace: DEFAULT_NAMESPACE.to_string(),
        fleet_id: "vectors".to_string(),
        realm: "vectors-realm".to_string(),
        layout: 1,
        records,
        epoch: 1,
        not_before_ms: 1_700_000_000_000,
        not_after_ms: 1_800_000_000_000,
        keys: vec![
            FleetKey {
                role: KeyRole::OpaqueKeyExchange,
                public_key: public.key_exchange.to_vec(),
            },
            FleetKey {
                role: KeyRole::HpkeTransport,
                public_key: public.transport.as_bytes().to_vec(),
            },
        ],
    };
    let artifact_bytes = artifact.to_bytes().expect("a valid artifact");
    let digest = artifact_digest(&artifact_bytes);
    let auditor = AuditorSigningKey::from_bytes(&AUDITOR_SEED);
    let operator = OperatorSigningKey::from_bytes(&OPERATOR_SEED);

    // The namespace's log: an earlier fleet's entry at epoch 0, this one at
    // epoch 1; later an epoch-2 entry, for a consistency proof.
    let earlier = log::entry(0, &[0x11; 32]);
    let this = log::entry(1, &digest);
    let later = log::entry(2, &[0x22; 32]);
    let mut merkle = MerkleLog::new();
    merkle.push(earlier);
    merkle.push(this);
    let checkpoint = merkle.checkpoint(DEFAULT_NAMESPACE);
    let note = checkpoint.sign(&auditor);
    let inclusion = merkle.prove_inclusion(1).expect("entry 1");
    let mut grown = merkle.clone();
    grown.push(later);
    let checkpoint3 = grown.checkpoint(DEFAULT_NAMESPACE);
    let consistency = grown.prove_consistency(2).expect("size 2 of 3");
    consistency
        .verify(&checkpoint, &checkpoint3)
        .expect("a consistent log");

    let mut bundle = ValidationBundle {
        namespace: DEFAULT_NAMESPACE.to_string(),
        epoch: 1,
        timestamp_ms: 1_700_000_000_000,
        digest,
        auditor_key: auditor.public_key(),
        auditor_signature: [0; 64],
        counter_signature: None,
        artifact: artifact_bytes.clone(),
        inclusion: inclusion.clone(),
        checkpoint: note.clone(),
    };
    let statement = bundle.statement().to_bytes();
    bundle.auditor_signature = auditor.sign_statement(&bundle.statement());
    let uncountersigned = bundle.clone();
    bundle.countersign(&operator);
    let encoded = bundle.to_bytes().expect("a valid bundle");

    let anchors = TrustAnchors::new(&[auditor.public_key()], &[operator.public_key()]);
    let now = 1_750_000_000_000u64;
    let verified = anchors
        .verify_bytes(&encoded, now, None)
        .expect("the bundle verifies");
    assert_eq!(verified.public_keys(), public);
    let owned = RecordId([0x42; 32]);
    let not_owned = RecordId([0x80; 32]);
    verified.check_record(&owned).expect("the fleet owns 0x42…");

    // What a client refuses, each with the error of SPEC.md §17's step.
    let mut negative = Vec::new();
    let pinned_auditor = [auditor.public_key()];
    let pinned_operator = [operator.public_key()];
    let other = [AuditorSigningKey::from_bytes(&[0xC3; 32]).public_key()];
    let mut refuse_record = |case: &str,
                             bundle: &[u8],
                             (auditors, operators, namespace): (&[[u8; 32]], &[[u8; 32]], &str),
                             now_ms: u64,
                             stored_epoch: Option<u64>,
                             record_id: &RecordId| {
        let anchors = TrustAnchors::new(auditors, operators).with_namespace(namespace);
        let err = match anchors
            .verify_bytes(bundle, now_ms, stored_epoch)
            .and_then(|fleet| fleet.check_record(record_id))
        {
            Ok(()) => panic!("{case}: the bundle must be refused"),
            Err(e) => e,
        };
        negative.push(json!({
            "case": case,
            "bundle": hex(bundle),
            "namespace": namespace,
            "auditor_keys": auditors.iter().map(|k| hex(k)).collect::<Vec<_>>(),
            "operator_keys": operators.iter().map(|k| hex(k)).collect::<Vec<_>>(),
            "now_ms": now_ms,
            "stored_epoch": stored_epoch,
            "record_id": hex(&record_id.0),
            "error": bundle_error(&err),
        }));
    };
    let mut refuse = |case: &str,
                      bundle: &[u8],
                      pins: (&[[u8; 32]], &[[u8; 32]], &str),
                      now_ms: u64,
                      stored_epoch: Option<u64>| {
        refuse_record(case, bundle, pins, now_ms, stored_epoch, &owned)
    };
    let pins = (&pinned_auditor[..], &pinned_operator[..], DEFAULT_NAMESPACE);
    let edit = |f: &dyn Fn(&mut ValidationBundle)| {
        let mut b = bundle.clone();
        f(&mut b);
        b.to_bytes().expect("still encodes")
    };
    refuse(
        "auditor key not pinned",
        &encoded,
        (&other, &pinned_operator, DEFAULT_NAMESPACE),
        now,
        None,
    );
    refuse(
        "operator key not pinned",
        &encoded,
        (&pinned_auditor, &other, DEFAULT_NAMESPACE),
        now,
        None,
    );
    refuse(
        "artifact changed after signing",
        &edit(&|b| b.artifact[20] ^= 1),
        pins,
        now,
        None,
    );
    refuse(
        "auditor signature bit flipped",
        &edit(&|b| b.auditor_signature[0] ^= 1),
        pins,
        now,
        None,
    );
    refuse(
        "no counter-signature",
        &uncountersigned.to_bytes().expect("encodes"),
        pins,
        now,
        None,
    );
    refuse(
        "counter-signature bit flipped",
        &edit(&|b| {
            if let Some(c) = b.counter_signature.as_mut() {
                c.signature[0] ^= 1;
            }
        }),
        pins,
        now,
        None,
    );
    refuse(
        "another namespace pinned",
        &encoded,
        (&pinned_auditor, &pinned_operator, "example.org/other"),
        now,
        None,
    );
    refuse(
        "inclusion proof hash changed",
        &edit(&|b| b.inclusion.hashes[0][0] ^= 1),
        pins,
        now,
        None,
    );
    refuse(
        "checkpoint signature bit flipped",
        &edit(&|b| {
            let i = b.checkpoint.len() - 5;
            b.checkpoint[i] = if b.checkpoint[i] == b'A' { b'B' } else { b'A' };
        }),
        pins,
        now,
        None,
    );
    refuse("before not_before", &encoded, pins, 1_600_000_000_000, None);
    refuse("at not_after", &encoded, pins, 1_800_000_000_000, None);
    refuse("rollback to an older epoch", &encoded, pins, now, Some(2));
    // Logged, signed and counter-signed like the bundle, with another
    // artifact: what an older or wrong publisher could have made.
    let resigned = |artifact: Vec<u8>| {
        let mut b = bundle.clone();
        b.digest = artifact_digest(&artifact);
        b.artifact = artifact;
        let mut merkle = MerkleLog::new();
        merkle.push(earlier);
        merkle.push(log::entry(1, &b.digest));
        b.checkpoint = merkle.checkpoint(DEFAULT_NAMESPACE).sign(&auditor);
        b.inclusion = merkle.prove_inclusion(1).expect("entry 1");
        b.auditor_signature = auditor.sign_statement(&b.statement());
        b.countersign(&operator);
        b.to_bytes().expect("encodes")
    };
    let text = String::from_utf8(artifact_bytes.clone()).expect("JSON text");
    let unranged: String = text
        .lines()
        .filter(|l| {
            !["realm", "layout", "first_record", "last_record"]
                .iter()
                .any(|f| l.contains(&format!("\"{f}\"")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    refuse(
        "artifact without realm and range (revision 13 and before)",
        &resigned(unranged.into_bytes()),
        pins,
        now,
        None,
    );
    refuse(
        "artifact range with first_record after last_record",
        &resigned(
            text.replace(
                "\"first_record\": \"0000000000000000\"",
                "\"first_record\": \"ffffffffffffffff\"",
            )
            .into_bytes(),
        ),
        pins,
        now,
        None,
    );
    refuse(
        "artifact range in upper-case hex",
        &resigned(
            text.replace("7fffffffffffffff", "7FFFFFFFFFFFFFFF")
                .into_bytes(),
        ),
        pins,
        now,
        None,
    );
    refuse_record(
        "the fleet does not own the record",
        &encoded,
        pins,
        now,
        None,
        &not_owned,
    );

    json!({
        "flow": "bundle",
        "description": "A fleet-key artifact, its auditor statement, the operator's counter-signature, the namespace's Merkle log with an inclusion proof to a signed checkpoint, and the validation bundle a client verifies (SPEC.md §14-§17); then a consistency proof from that checkpoint to a later one; `negative` lists bundles or pins a client refuses, with the error.",
        "spec": "SPEC.md §12",
        "generator": GENERATOR,
        "inputs": {
            "auditor_seed": hex(&AUDITOR_SEED),
            "operator_seed": hex(&OPERATOR_SEED),
            "fleet_seed": FLEET,
            "namespace": DEFAULT_NAMESPACE,
            "fleet_id": artifact.fleet_id,
            "realm": artifact.realm,
            "layout": artifact.layout,
            "first_record": hex(&artifact.records.first.to_be_bytes()),
            "last_record": hex(&artifact.records.last.to_be_bytes()),
            "record_id": hex(&owned.0),
            "epoch": artifact.epoch,
            "not_before_ms": artifact.not_before_ms,
            "not_after_ms": artifact.not_after_ms,
            "timestamp_ms": bundle.timestamp_ms,
            "now_ms": now,
        },
        "keys": {
            "auditor_public_key": hex(&auditor.public_key()),
            "operator_public_key": hex(&operator.public_key()),
            "ke_pk": hex(&public.key_exchange),
            "tr_pk": hex(public.transport.as_bytes()),
        },
        "artifact": hex(&artifact_bytes),
        "artifact_text": String::from_utf8(artifact_bytes.clone()).expect("JSON text"),
        "digest": hex(&digest),
        "statement": hex(&statement),
        "auditor_signature": hex(&bundle.auditor_signature),
        "counter_signature": hex(&bundle.counter_signature.expect("countersigned").signature),
        "log": {
            "entries": [hex(&earlier), hex(&this)],
            "root_hash": hex(&checkpoint.root_hash),
            "checkpoint_body": checkpoint.body(),
            "checkpoint_note": hex(&note),
            "inclusion": { "leaf_index": inclusion.leaf_index, "hashes": inclusion.hashes.iter().map(|h| hex(h)).collect::<Vec<_>>() },
            "later_entry": hex(&later),
            "later_root_hash": hex(&checkpoint3.root_hash),
            "consistency_2_to_3": consistency.hashes.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        },
        "bundle": hex(&encoded),
        "bundle_response": hex(&wire::BundleResponse {
            bundle: backup_key_vault::bundle::EncodedBundle::from_bytes(&encoded).expect("decodes"),
        }.to_bytes()),
        "verified": {
            "ke_pk": hex(&verified.public_keys().key_exchange),
            "tr_pk": hex(verified.public_keys().transport.as_bytes()),
            "epoch_to_store": verified.epoch_to_store(),
        },
        "negative": negative,
    })
}

// ----- The record tree (SPEC.md §8.5) ---------------------------------------

/// A record id whose first bytes are `head` and whose last byte is `last`.
fn tree_id(head: &[u8], last: u8) -> backup_key_vault::RecordId {
    let mut b = [0u8; 32];
    b[..head.len()].copy_from_slice(head);
    b[31] |= last;
    backup_key_vault::RecordId(b)
}

pub fn proof_error(e: &backup_key_vault::vault::tree::ProofError) -> Value {
    use backup_key_vault::vault::tree::ProofError;
    match e {
        ProofError::Malformed(w) => json!({ "error": "Malformed", "wire": wire_error(w) }),
        other => json!({ "error": format!("{other:?}") }),
    }
}

/// Inserts, updates, lookups and removals on ids chosen for the tree's
/// shapes (a split at the root, a leaf pushed down past a shared prefix,
/// two ids that differ only in their last bit, an absence ending at an
/// empty subtree and one ending at another record's leaf, a leaf rising
/// after a removal, the empty tree again), each with the proof the host
/// hands over, the root before and after and every node row written; then
/// proofs the vault must refuse.
pub fn record_tree() -> Value {
    use backup_key_vault::vault::tree::{self, Lookup, MemoryTree, Proof};

    let a = tree_id(&[0x00], 0);
    let b = tree_id(&[0x80], 0);
    let c = tree_id(&[0x40], 0);
    let d = tree_id(&[0x41], 0);
    let e = tree_id(&[0x00], 1); // differs from `a` in bit 255 only
    let f = tree_id(&[0xC0], 0); // absent: its path ends at `b`'s leaf
    let g = tree_id(&[0x20], 0); // absent: its path ends in an empty subtree
    let slot = |n: u8| vec![n; 40];
    let ops: Vec<(&str, backup_key_vault::RecordId, Option<Vec<u8>>)> = vec![
        ("set", a, Some(slot(1))),
        ("set", b, Some(slot(2))),
        ("set", c, Some(slot(3))),
        ("set", d, Some(slot(4))),
        ("set", e, Some(slot(5))),
        ("set", c, Some(slot(6))),
        ("check", f, None),
        ("check", g, None),
        ("check", e, None),
        ("remove", e, None),
        ("remove", d, None),
        ("remove", g, None),
        ("remove", b, None),
        ("remove", a, None),
        ("remove", c, None),
    ];
    let mut t = MemoryTree::new();
    let mut steps = Vec::new();
    for (n, (op, id, slot)) in ops.iter().enumerate() {
        let root = t.root();
        let proof = t.prove(id).expect("the generator's tree answers");
        let lookup = match proof.check(&root, id).expect("a genuine proof checks") {
            Lookup::Absent => json!("absent"),
            Lookup::Present(v) => json!({ "present": hex(&v) }),
        };
        let mut step = json!({
            "step": n + 1,
            "op": op,
            "record_id": hex(id.as_bytes()),
            "root_before": hex(&root),
            "proof": hex(&proof.to_bytes()),
            "lookup": lookup,
        });
        let update = match (*op, slot) {
            ("set", Some(slot)) => {
                let value = tree::value_hash(slot);
                step["slot"] = json!(hex(slot));
                step["value"] = json!(hex(&value));
                Some(proof.set(&root, id, &value).expect("set"))
            }
            ("remove", _) => Some(proof.remove(&root, id).expect("remove")),
            _ => None,
        };
        if let Some(update) = update {
            let mut writes: Vec<_> = update
                .writes
                .iter()
                .map(|(k, node)| (k.to_bytes(), node.map(|node| node.to_bytes())))
                .collect();
            writes.sort();
            step["root_after"] = json!(hex(&update.root));
            step["writes"] = writes
                .iter()
                .map(|(k, node)| json!({ "key": hex(k), "node": node.map(|b| hex(&b)) }))
                .collect();
            t.apply(&update);
        }
        steps.push(step);
    }
    assert_eq!(t.root(), tree::EMPTY, "every record was removed");

    // Proofs to refuse: each from a genuine one over a tree of a, b, c, d.
    let mut t = MemoryTree::new();
    for (id, n) in [(a, 1), (b, 2), (c, 3), (d, 4)] {
        t.set(&id, &tree::value_hash(&slot(n))).expect("set");
    }
    let root = t.root();
    let genuine = t.prove(&d).expect("prove").to_bytes();
    let absent = t.prove(&f).expect("prove").to_bytes();
    let flip = |bytes: &[u8], at: usize| {
        let mut v = bytes.to_vec();
        v[at] ^= 1;
        v
    };
    let cases: Vec<(&str, backup_key_vault::RecordId, Vec<u8>)> = vec![
        ("version 2", d, {
            let mut v = genuine.clone();
            v[0] = 2;
            v
        }),
        ("end tag 1 (an inner node never ends a path)", d, {
            let mut v = genuine.clone();
            v[1] = 1;
            v
        }),
        (
            "truncated by one byte",
            d,
            genuine[..genuine.len() - 1].to_vec(),
        ),
        ("one trailing byte", d, {
            let mut v = genuine.clone();
            v.push(0);
            v
        }),
        ("the end leaf's value changed", d, flip(&genuine, 40)),
        (
            "a listed sibling changed",
            d,
            flip(&genuine, 2 + 64 + 2 + 1 + 5),
        ),
        (
            "the deepest sibling changed",
            d,
            flip(&genuine, genuine.len() - 1),
        ),
        ("a genuine proof of another id", c, genuine.clone()),
        (
            "an absence proof whose leaf was changed",
            f,
            flip(&absent, 10),
        ),
    ];
    let negative: Vec<Value> = cases
        .into_iter()
        .map(|(what, id, bytes)| {
            let error = match Proof::from_bytes(&bytes) {
                Err(w) => proof_error(&tree::ProofError::Malformed(w)),
                Ok(p) => match p.check(&root, &id) {
                    Err(e) => proof_error(&e),
                    Ok(l) => panic!("the negative case {what:?} checked: {l:?}"),
                },
            };
            json!({ "case": what, "record_id": hex(id.as_bytes()), "proof": hex(&bytes), "error": error })
        })
        .collect();
    json!({
        "description": "The record tree of SPEC.md §8.5: each step's proof (what the host hands the vault), the root before and after, and every node row written (null: the row is deleted); then proofs the vault refuses against `negative_root`, with the error each must produce",
        "generator": GENERATOR,
        "domains": { "value": "bkv-tree-value/v1", "leaf": "bkv-tree-leaf/v1", "inner": "bkv-tree-inner/v1" },
        "steps": steps,
        "negative_root": hex(&root),
        "negative": negative,
    })
}
