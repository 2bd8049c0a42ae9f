//! `bkv demo`: the whole story, step by step, with timings. Exits non-zero
//! if any step does not behave as the protocol requires.

use std::process::ExitCode;
use std::time::Instant;

use backup_key_vault::client::{ClientConfig, Recovered, Recovery, Registered, Registration};
use backup_key_vault::vault::{MemoryStore, RecordSlot, RecordStore, Vault, VaultPolicy};
use backup_key_vault::wire::{self, Rejection};
use backup_key_vault::{ClientError, FleetSecrets, RecordId, RecoveryCode, StretchingParams};
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
        let (state, ke3) = match state.finish(&mut OsRng, &ke2) {
            Ok(next) => next,
            Err(e) => return Ok((ke2.attempts_remaining, Err(e))),
        };
        let release = self.exchange(&ke3.to_bytes(), wire::KeyRelease::from_bytes)?;
        Ok((ke2.attempts_remaining, state.finish(&release)))
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
            Ok(Some(RecordSlot::Live(r))) => Some(r.attempts_used),
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

    let t = Instant::now();
    let secrets = FleetSecrets::generate(&mut OsRng);
    let keys = secrets.public_keys();
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
    let vault = Vault::new(&secrets, policy, MemoryStore::new())
        .map_err(|e| Misbehaved(format!("vault: {e}")))?;
    drop(secrets);
    let mut demo = Demo {
        vault,
        config,
        now: 0,
        step: 0,
    };
    demo.report(
        t,
        format!(
            "fleet created: key-exchange key {}…, transport key {}…",
            &fingerprint(&keys.key_exchange)[..8],
            &fingerprint(&keys.transport)[..8]
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
        Ok(r) if r.backup_key == registered.backup_key => {}
        Ok(_) => return fail("recovery returned a different key"),
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

    for i in 1..=3u8 {
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
    let t = Instant::now();
    let (_, result) = demo.recover(record_id, &right)?;
    if result.is_err() || demo.attempts_used(&record_id) != Some(0) {
        return fail("the right code did not recover and reset the counter");
    }
    demo.report(
        t,
        format!("right code: recovered, counter back to {max}"),
        (),
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
    Ok(())
}
