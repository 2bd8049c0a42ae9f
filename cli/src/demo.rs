//! `bkv demo`: the whole story, step by step, with timings. Exits non-zero
//! if any step does not behave as the protocol requires.

use std::process::ExitCode;
use std::time::Instant;

use std::time::{SystemTime, UNIX_EPOCH};

use backup_key_vault::bundle::{
    artifact, artifact_digest, EncodedBundle, FleetKeyArtifact, OperatorSigningKey, TrustAnchors,
    DEFAULT_NAMESPACE,
};
use backup_key_vault::client::{ClientConfig, Recovered, Recovery, Registered, Registration};
use backup_key_vault::vault::{MemoryStore, RecordSlot, RecordStore, Vault, VaultPolicy};
use backup_key_vault::wire::{self, Rejection};
use backup_key_vault::wire::{BundleRequest, BundleResponse};
use backup_key_vault::{ClientError, FleetSecrets, RecordId, RecoveryCode, StretchingParams};
use bkv_auditor::export::{proofs_from_entries, verify_namespace, Pins};
use bkv_auditor::Auditor;
use clap::Args;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Attempts the vault allows between successes.
    #[arg(long, default_value_t = 10)]
    max_attempts: u8,
    /// Use tiny Argon2 parameters (8 KiB, 1 pass). INSECURE: only to make
    /// the demo instant; the default is RFC 9106's 64 MiB, 3 passes, 4 lanes.
    #[arg(long)]
    insecure_fast: bool,
}

/// A failed expectation: which step, and what happened instead.
struct Misbehaved(String);

type Step<T> = Result<T, Misbehaved>;

fn fail<T>(what: impl Into<String>) -> Step<T> {
    Err(Misbehaved(what.into()))
}

struct Demo {
    vault: Vault<MemoryStore>,
    config: ClientConfig,
    now: u64,
    step: usize,
}

/// A short public fingerprint: the first 8 bytes of SHA-256, in hex.
fn fingerprint(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a client tells its user from the count sealed in the key release
/// (`Recovered::unforgiven_attempts`, SPEC.md §6.2): attempts charged since
/// the last recovery that no success forgave.
pub fn tried_since_last_recovery(unforgiven_attempts: u8) -> String {
    match unforgiven_attempts {
        0 => "no wrong code was tried since your last recovery".into(),
        1 => "1 wrong code was tried since your last recovery".into(),
        n => format!("{n} wrong codes were tried since your last recovery"),
    }
}

fn code(s: &str) -> Step<RecoveryCode> {
    RecoveryCode::new(s.as_bytes()).map_err(|e| Misbehaved(format!("recovery code: {e}")))
}

impl Demo {
    fn report<T>(&mut self, started: Instant, line: impl AsRef<str>, value: T) -> T {
        self.step += 1;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        println!("[{:>2}] {:<72} {:>9.1} ms", self.step, line.as_ref(), ms);
        value
    }

    /// Registration through the byte interface, as a relay would carry it.
    fn register(&mut self, record_id: RecordId, code: &RecoveryCode) -> Step<Registered> {
        let (state, request) = Registration::start(&mut OsRng, &self.config, record_id, code, None)
            .map_err(|e| Misbehaved(format!("registration start: {e}")))?;
        let response =
            self.exchange(&request.to_bytes(), wire::RegistrationResponse::from_bytes)?;
        let (state, upload) = state
            .finish(&mut OsRng, &response, None)
            .map_err(|e| Misbehaved(format!("registration response: {e}")))?;
        let confirmation = self.exchange(
            &upload.to_bytes(),
            wire::RegistrationConfirmation::from_bytes,
        )?;
        state
            .finish(&confirmation)
            .map_err(|e| Misbehaved(format!("registration confirmation: {e}")))
    }

    /// Recovery through the byte interface. Returns the attempts remaining
    /// that the KE2 reported, and the client's result.
    fn recover(
        &mut self,
        record_id: RecordId,
        code: &RecoveryCode,
    ) -> Step<(u8, Result<Recovered, ClientError>)> {
        let (state, ke1) = Recovery::start(&mut OsRng, &self.config, record_id, code)
            .map_err(|e| Misbehaved(format!("recovery start: {e}")))?;
        let ke2 = self.exchange(&ke1.to_bytes(), wire::RecoveryResponse::from_bytes)?;
        // The count is sealed in the channel (SPEC.md §4.4).
        let remaining = state
            .open(&ke2)
            .map_err(|e| Misbehaved(format!("the vault's KE2 does not open: {e}")))?
            .attempts_remaining;
        let (state, ke3) = match state.finish(&mut OsRng, &ke2) {
            Ok(next) => next,
            Err(e) => return Ok((remaining, Err(e))),
        };
        let release = self.exchange(&ke3.to_bytes(), wire::KeyRelease::from_bytes)?;
        Ok((remaining, state.finish(&release)))
    }

    fn exchange<T>(
        &mut self,
        request: &[u8],
        decode: fn(&[u8]) -> Result<T, backup_key_vault::WireError>,
    ) -> Step<T> {
        let answer = self.vault.handle(&mut OsRng, self.now, request);
        match decode(&answer) {
            Ok(message) => Ok(message),
            Err(_) => match Rejection::from_bytes(&answer) {
                Ok(r) => fail(format!("vault rejected the request: {:?}", r.code)),
                Err(e) => fail(format!("undecodable vault answer: {e}")),
            },
        }
    }

    fn attempts_used(&self, record_id: &RecordId) -> Option<u8> {
        match self.vault.store().load(record_id) {
            Ok(Some(RecordSlot::Live(r))) => Some(r.attempts_used()),
            _ => None,
        }
    }
}

pub fn run(args: &DemoArgs) -> ExitCode {
    match story(args) {
        Ok(()) => {
            println!("\nAll steps behaved as specified.");
            ExitCode::SUCCESS
        }
        Err(Misbehaved(what)) => {
            eprintln!("\nFAILED: {what}");
            ExitCode::FAILURE
        }
    }
}

fn story(args: &DemoArgs) -> Step<()> {
    let max = args.max_attempts;
    if max < 2 {
        return fail("--max-attempts must be at least 2 for this demo");
    }
    let stretching = if args.insecure_fast {
        StretchingParams::INSECURE_TEST_ONLY
    } else {
        StretchingParams::default()
    };
    println!(
        "backup-key-vault demo: one fleet, one vault (in memory), one client, a relay in between"
    );
    println!(
        "Argon2id m={} KiB t={} p={}{}, {} attempts between successes\n",
        stretching.m_cost,
        stretching.t_cost,
        stretching.p_cost,
        if args.insecure_fast {
            " (INSECURE test parameters)"
        } else {
            ""
        },
        max
    );

    // The fleet comes from a key ceremony whose evidence is verified before
    // the client trusts its keys (SPEC.md §31-§34).
    let t = Instant::now();
    let fleet =
        crate::deploy::demo_ceremony().map_err(|e| Misbehaved(format!("key ceremony: {e}")))?;
    let keys = fleet.keys;
    let ceremony_ms = t.elapsed();
    let t = Instant::now();
    let mut policy = VaultPolicy {
        max_attempts: max,
        ..VaultPolicy::default()
    };
    let config = if args.insecure_fast {
        policy = VaultPolicy {
            max_attempts: max,
            ..VaultPolicy::insecure_test_only()
        };
        ClientConfig::insecure_test_only(keys)
    } else {
        ClientConfig::new(keys)
    };
    let vault = fleet
        .hsm
        .start_vault(policy)
        .map_err(|e| Misbehaved(format!("vault: {e}")))?;
    let mut demo = Demo {
        vault,
        config,
        now: 0,
        step: 0,
    };
    demo.step += 1;
    println!(
        "[{:>2}] {:<72} {:>9.1} ms",
        demo.step,
        format!(
            "key ceremony: {}; evidence verified ({} steps)",
            fleet.summary,
            fleet.report.steps.len()
        ),
        ceremony_ms.as_secs_f64() * 1e3
    );
    demo.report(
        t,
        format!(
            "vault on hsm-1; client trusts keys {}…/{}… from the evidence",
            &fingerprint(&keys.key_exchange)[..8],
            &fingerprint(keys.transport.as_bytes())[..8]
        ),
        (),
    );

    let record_id = RecordId(Sha256::digest(b"demo account +1 555 0100").into());
    let right = code("correct-horse-battery")?;
    let wrong = code("wrong-guess")?;

    let t = Instant::now();
    let registered = demo.register(record_id, &right)?;
    let key_fp = fingerprint(registered.backup_key.expose_secret());
    demo.report(
        t,
        format!(
            "registered over HPKE; backup key fingerprint {key_fp}, generation {}",
            registered.generation
        ),
        (),
    );

    let t = Instant::now();
    let (remaining, result) = demo.recover(record_id, &right)?;
    match result {
        Ok(r) if r.backup_key == registered.backup_key && r.unforgiven_attempts == 0 => {}
        Ok(_) => return fail("recovery returned a different key, or guesses nobody made"),
        Err(e) => return fail(format!("recovery with the right code failed: {e}")),
    }
    demo.report(
        t,
        format!("recovered with the right code: same key ({remaining} attempts were left)"),
        (),
    );
    if demo.attempts_used(&record_id) != Some(0) {
        return fail("success did not reset the counter");
    }

    // The user recovers again, but the relay holds the KE1 back and spends
    // guesses first. The user's success forgives them all; the count sealed
    // in the release still tells the user (SPEC.md §6.2, issue 19).
    let guesses = 3.min(max - 1);
    let (state, held_ke1) = Recovery::start(&mut OsRng, &demo.config, record_id, &right)
        .map_err(|e| Misbehaved(format!("recovery start: {e}")))?;
    for i in 1..=guesses {
        let t = Instant::now();
        let (remaining, result) = demo.recover(record_id, &wrong)?;
        if !matches!(result, Err(ClientError::RecoveryFailed)) || remaining != max - i {
            return fail(format!(
                "relay's guess #{i}: expected failure with {} left",
                max - i
            ));
        }
        demo.report(
            t,
            format!("relay holds the user's KE1, guesses #{i}: refused, {remaining} left"),
            (),
        );
    }
    let t = Instant::now();
    let ke2 = demo.exchange(&held_ke1.to_bytes(), wire::RecoveryResponse::from_bytes)?;
    // The relay would like to rewrite KE2's count to "nobody tried", but the
    // count is sealed in the channel (SPEC.md §4.4): a flipped byte makes
    // the response not open.
    let mut rewritten = ke2.clone();
    rewritten.sealed[0] ^= 1;
    if state.open(&rewritten).is_ok() {
        return fail("a KE2 the relay rewrote opened");
    }
    let remaining = state
        .open(&ke2)
        .map_err(|e| Misbehaved(format!("the user's KE2 does not open: {e}")))?
        .attempts_remaining;
    let recovered = state
        .finish(&mut OsRng, &ke2)
        .map_err(|e| Misbehaved(format!("the user's KE2: {e}")))
        .and_then(|(state, ke3)| {
            let release = demo.exchange(&ke3.to_bytes(), wire::KeyRelease::from_bytes)?;
            state
                .finish(&release)
                .map_err(|e| Misbehaved(format!("the user's release: {e}")))
        })?;
    if recovered.backup_key != registered.backup_key
        || recovered.unforgiven_attempts != guesses
        || demo.attempts_used(&record_id) != Some(0)
    {
        return fail("the user's recovery did not reset the counter and report the guesses");
    }
    demo.report(
        t,
        format!(
            "user's KE1 let through (sealed KE2 says {remaining} left; the relay cannot rewrite it): recovered, counter at {max}"
        ),
        (),
    );
    println!(
        "     the app, from the sealed release: \"{}\"",
        tried_since_last_recovery(recovered.unforgiven_attempts)
    );

    for i in 1..=max {
        let t = Instant::now();
        let (remaining, result) = demo.recover(record_id, &wrong)?;
        if !matches!(result, Err(ClientError::RecoveryFailed)) || remaining != max - i {
            return fail(format!(
                "wrong code #{i}: expected failure with {} left",
                max - i
            ));
        }
        demo.report(
            t,
            format!("wrong code #{i}: refused, {remaining} attempts left"),
            (),
        );
    }

    // The last session is still pending (the client saw its failure locally):
    // nothing more may start until it has expired.
    let t = Instant::now();
    let answer = {
        let (_, ke1) = Recovery::start(&mut OsRng, &demo.config, record_id, &right)
            .map_err(|e| Misbehaved(format!("recovery start: {e}")))?;
        demo.vault.handle(&mut OsRng, demo.now, &ke1.to_bytes())
    };
    match Rejection::from_bytes(&answer) {
        Ok(r) if r.code == wire::RejectionCode::AttemptsExhausted => {}
        _ => return fail("a KE1 after the last attempt was not refused"),
    }
    demo.report(
        t,
        "right code while the last session is pending: refused, no attempts left",
        (),
    );

    demo.now += demo.vault.policy().session_ttl_ms;
    let t = Instant::now();
    let (_, result) = demo.recover(record_id, &right)?;
    if !matches!(result, Err(ClientError::RecoveryFailed)) {
        return fail("the right code worked after the record should have been erased");
    }
    match demo.vault.store().load(&record_id) {
        Ok(Some(RecordSlot::Erased { .. })) => {}
        _ => return fail("the record was not erased"),
    }
    demo.report(
        t,
        "session expired; record erased (tombstone only); right code now fails",
        (),
    );
    over_the_air(args, &mut demo.step)
}

/// Turns an error into a failed step named `what`.
fn context(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Misbehaved {
    move |e| Misbehaved(format!("{what}: {e}"))
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A new fleet published through the auditor (in-process, temporary
/// directory), counter-signed by the operator, and learned over the air by
/// a client that pins only the auditor's and the operator's keys (SPEC.md
/// §14–§18).
fn over_the_air(args: &DemoArgs, step: &mut usize) -> Step<()> {
    let m = context;
    println!("\nFleet keys over the air: a new fleet, an auditor, and a client that pins only the auditor's and the operator's keys\n");
    let t = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| m("temp dir")(&e))?;
    let mut auditor = Auditor::open(dir.path()).map_err(|e| m("auditor")(&e))?;
    let operator = OperatorSigningKey::generate(&mut OsRng);
    let secrets = FleetSecrets::generate(&mut OsRng);
    let now = unix_ms();
    let artifact = FleetKeyArtifact::for_fleet(
        DEFAULT_NAMESPACE,
        "demo-fleet-2",
        1,
        &secrets.public_keys(),
        now.saturating_sub(60_000),
        now.saturating_add(30 * 24 * 3_600_000),
    )
    .to_bytes()
    .map_err(|e| m("artifact")(&e))?;
    auditor
        .register_namespace(DEFAULT_NAMESPACE, 1, artifact_digest(&artifact))
        .map_err(|e| m("register namespace")(&e))?;
    let mut bundle = auditor
        .publish(DEFAULT_NAMESPACE, 1, &artifact, None, now)
        .map_err(|e| m("publish")(&e))?;
    let mut demo_step = |t: Instant, line: String| {
        *step += 1;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        println!("[{:>2}] {:<72} {:>9.1} ms", *step, line, ms);
    };
    demo_step(
        t,
        format!(
            "auditor signed epoch 1 (digest {}…) and checkpoint 1",
            &artifact::to_hex(&bundle.digest)[..8]
        ),
    );

    let t = Instant::now();
    bundle.countersign(&operator);
    if let Some(counter) = bundle.counter_signature {
        auditor
            .add_counter_signature(DEFAULT_NAMESPACE, 1, counter)
            .map_err(|e| m("counter-signature")(&e))?;
    }
    let (policy, insecure) = if args.insecure_fast {
        (VaultPolicy::insecure_test_only(), true)
    } else {
        (VaultPolicy::default(), false)
    };
    let mut vault = Vault::new(&secrets, policy, MemoryStore::new()).map_err(|e| m("vault")(&e))?;
    drop(secrets);
    let encoded = EncodedBundle::new(bundle).map_err(|e| m("bundle")(&e))?;
    // The vault installs it as a fleet member does (`POST /v1/bundle`):
    // only if it verifies under the keys it pins and names its own keys.
    let anchors = TrustAnchors::new(&[auditor.public_key()], &[operator.public_key()]);
    vault
        .install_bundle(&anchors, encoded, unix_ms())
        .map_err(|e| m("vault refused the bundle")(&e))?;
    demo_step(
        t,
        "operator counter-signed in the HSM; the vault checked and hands it out".into(),
    );

    let t = Instant::now();
    let mut stored_epoch: Option<u64> = None;
    let answer = vault.handle(&mut OsRng, 0, &BundleRequest {}.to_bytes());
    let response = BundleResponse::from_bytes(&answer).map_err(|e| m("bundle response")(&e))?;
    let fleet = anchors
        .verify(response.bundle.bundle(), unix_ms(), stored_epoch)
        .map_err(|e| m("bundle verification")(&e))?;
    stored_epoch = Some(fleet.epoch_to_store());
    let keys = fleet.public_keys();
    demo_step(
        t,
        format!(
            "client verified bundle and log proof; learned keys {}…/{}…",
            &fingerprint(&keys.key_exchange)[..8],
            &fingerprint(keys.transport.as_bytes())[..8]
        ),
    );

    let config = if insecure {
        ClientConfig::insecure_test_only_from_verified_fleet(&fleet)
    } else {
        ClientConfig::from_verified_fleet(&fleet)
    };
    let mut demo = Demo {
        vault,
        config,
        now: 0,
        step: *step,
    };
    let record_id = RecordId(Sha256::digest(b"demo account +1 555 0199").into());
    let right = code("learned-over-the-air")?;
    let t = Instant::now();
    let registered = demo.register(record_id, &right)?;
    demo.report(
        t,
        "registered with the learned fleet (sealed to its transport key)",
        (),
    );

    let t = Instant::now();
    let (state, ke1) = Recovery::start(&mut OsRng, &demo.config, record_id, &right)
        .map_err(|e| m("recovery start")(&e))?;
    let ke2 = demo.exchange(
        &ke1.to_bytes(),
        wire::RecoveryResponseWithBundle::from_bytes,
    )?;
    let (state, ke3, again) = state
        .finish_with_bundle(&mut OsRng, &ke2, &anchors, unix_ms(), stored_epoch)
        .map_err(|e| m("KE2 with bundle")(&e))?;
    let release = demo.exchange(&ke3.to_bytes(), wire::KeyRelease::from_bytes)?;
    let recovered = state.finish(&release).map_err(|e| m("release")(&e))?;
    if recovered.backup_key != registered.backup_key {
        return fail("recovery over the air returned another key");
    }
    demo.report(
        t,
        format!(
            "recovered: KE2 carried the bundle (epoch {}), same backup key",
            again.epoch_to_store()
        ),
        (),
    );

    let t = Instant::now();
    let export = auditor
        .export(DEFAULT_NAMESPACE)
        .map_err(|e| m("export")(&e))?;
    let pins = Pins {
        auditor_keys: vec![auditor.public_key()],
        operator_keys: vec![operator.public_key()],
    };
    let report = verify_namespace(&export, &pins, &mut proofs_from_entries(&export))
        .map_err(|e| m("monitor")(&e))?;
    demo.report(
        t,
        format!(
            "monitor verified the namespace: {} entry, {} checkpoint",
            report.log_size, report.checkpoints
        ),
        (),
    );
    *step = demo.step;
    Ok(())
}
