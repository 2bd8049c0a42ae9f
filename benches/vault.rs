//! The vault's and the client's paths beside their baselines, in one run.
//!
//! Group names are read by `benches/report.py`, which prints each path's
//! ratio to its baseline and to its floor. Keep them stable.

use std::time::{Duration, Instant};

use backup_key_vault::client::{ClientConfig, Recovery, Registration};
use backup_key_vault::vault::{Command, MemoryStore, RecordSlot, RecordStore, Vault, VaultPolicy};
use backup_key_vault::wire::{RecoveryStart, RegistrationRequest};
use backup_key_vault::{FleetSecrets, RecordId, RecoveryCode, StretchingParams};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, RistrettoPoint, Scalar};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const ID: RecordId = RecordId([7; 32]);

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(7)
}

struct Fixture {
    rng: ChaCha20Rng,
    vault: Vault<MemoryStore>,
    config: ClientConfig,
    code: RecoveryCode,
}

fn fixture(stretching: StretchingParams) -> Fixture {
    let mut rng = rng();
    let secrets = FleetSecrets::generate(&mut rng);
    let policy = VaultPolicy {
        max_attempts: 255,
        ..VaultPolicy::insecure_test_only()
    };
    let vault = Vault::new(&secrets, policy, MemoryStore::new()).unwrap();
    let config = if stretching == StretchingParams::INSECURE_TEST_ONLY {
        ClientConfig::insecure_test_only(secrets.public_keys())
    } else {
        ClientConfig::new(secrets.public_keys()).with_stretching(stretching)
    };
    let code = RecoveryCode::new(b"4F7K-9QXD").unwrap();
    let mut f = Fixture {
        rng,
        vault,
        config,
        code,
    };
    f.register();
    f
}

impl Fixture {
    fn register(&mut self) {
        let (state, request) =
            Registration::start(&mut self.rng, &self.config, ID, &self.code, None).unwrap();
        let response = self
            .vault
            .registration_request(&mut self.rng, 0, &request)
            .unwrap();
        let (state, upload) = state.finish(&mut self.rng, &response, None).unwrap();
        let confirmation = self.vault.registration_upload(0, &upload).unwrap();
        state.finish(&confirmation).unwrap();
    }

    fn reset(&mut self) {
        let (generation, charge) = match self.vault.store().load(&ID).unwrap() {
            Some(RecordSlot::Live(r)) => (r.generation, r.charges),
            _ => panic!("no record"),
        };
        if charge == 0 {
            return;
        }
        self.vault
            .store_mut()
            .commit(&Command::ResetAttempts {
                record_id: ID,
                generation,
                charge,
            })
            .unwrap();
    }

    fn ke1(&mut self) -> RecoveryStart {
        Recovery::start(&mut self.rng, &self.config, ID, &self.code)
            .unwrap()
            .1
    }
}

fn vault_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("vault");

    // KE1 in, attempt charged, KE2 out: bytes to bytes, as a relay calls it.
    let mut f = fixture(StretchingParams::INSECURE_TEST_ONLY);
    let ke1 = f.ke1().to_bytes();
    g.bench_function("recovery_start", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let out = f.vault.handle(&mut f.rng, 0, black_box(&ke1));
                total += t.elapsed();
                black_box(out);
                f.reset();
            }
            total
        })
    });

    // KE3 in, reset committed, key released.
    let mut f = fixture(StretchingParams::INSECURE_TEST_ONLY);
    g.bench_function("recovery_finish", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (state, ke1) = Recovery::start(&mut f.rng, &f.config, ID, &f.code).unwrap();
                let ke2 = f.vault.recovery_start(&mut f.rng, 0, &ke1).unwrap();
                let (_, ke3) = state.finish(&mut f.rng, &ke2).unwrap();
                let ke3 = ke3.to_bytes();
                let t = Instant::now();
                let out = f.vault.handle(&mut f.rng, 0, black_box(&ke3));
                total += t.elapsed();
                black_box(out);
            }
            total
        })
    });

    // Registration response and upload, each bytes to bytes.
    let mut f = fixture(StretchingParams::INSECURE_TEST_ONLY);
    g.bench_function("registration_response", |b| {
        b.iter_batched(
            || {
                let id = RecordId(rand::random());
                Registration::start(&mut f.rng, &f.config, id, &f.code, None)
                    .unwrap()
                    .1
                    .to_bytes()
            },
            |request| f.vault.handle(&mut rng(), 0, black_box(&request)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("registration_upload", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let id = RecordId(rand::random());
                let (state, request) =
                    Registration::start(&mut f.rng, &f.config, id, &f.code, None).unwrap();
                let response = f
                    .vault
                    .registration_request(&mut f.rng, 0, &request)
                    .unwrap();
                let (_, upload) = state.finish(&mut f.rng, &response, None).unwrap();
                let upload = upload.to_bytes();
                let t = Instant::now();
                let out = f.vault.handle(&mut f.rng, 0, black_box(&upload));
                total += t.elapsed();
                black_box(out);
            }
            total
        })
    });
    g.finish();
    let _ = RegistrationRequest::ENCODED_LEN;
}

/// Bare opaque-ke, same ciphersuite, parsed inputs: the engine we build on.
fn baselines(c: &mut Criterion) {
    use opaque_ke::{
        ClientLogin, ClientRegistration, ClientRegistrationFinishParameters,
        CredentialFinalization, ServerLogin, ServerLoginParameters, ServerRegistration,
        ServerSetup,
    };
    struct Bare;
    impl opaque_ke::CipherSuite for Bare {
        type OprfCs = opaque_ke::Ristretto255;
        type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
        type Ksf = opaque_ke::ksf::Identity;
    }
    let mut rng = rng();
    let setup = ServerSetup::<Bare>::new(&mut rng);
    let reg = ClientRegistration::<Bare>::start(&mut rng, b"pw").unwrap();
    let resp = ServerRegistration::<Bare>::start(&setup, reg.message, b"id").unwrap();
    let fin = reg
        .state
        .finish(
            &mut rng,
            b"pw",
            resp.message,
            ClientRegistrationFinishParameters::default(),
        )
        .unwrap();
    let record = ServerRegistration::<Bare>::finish(fin.message);
    let login = ClientLogin::<Bare>::start(&mut rng, b"pw").unwrap();

    let mut g = c.benchmark_group("baseline");
    g.bench_function("server_login_start", |b| {
        b.iter(|| {
            ServerLogin::start(
                &mut rng,
                &setup,
                Some(record.clone()),
                login.message.clone(),
                b"id",
                ServerLoginParameters::default(),
            )
            .unwrap()
        })
    });
    let start = ServerLogin::start(
        &mut rng,
        &setup,
        Some(record.clone()),
        login.message.clone(),
        b"id",
        ServerLoginParameters::default(),
    )
    .unwrap();
    let client_fin = login
        .state
        .clone()
        .finish(&mut rng, b"pw", start.message.clone(), Default::default())
        .unwrap();
    let ke3: CredentialFinalization<Bare> = client_fin.message;
    g.bench_function("server_login_finish", |b| {
        b.iter(|| {
            start
                .state
                .clone()
                .finish(ke3.clone(), ServerLoginParameters::default())
                .unwrap()
        })
    });
    g.finish();
}

/// The vault's recovery start, phase by phase (BENCHMARKS.md, "Where the
/// time goes"): each phase alone, on the inputs the vault benchmark uses.
fn phases(c: &mut Criterion) {
    use backup_key_vault::suite::{KeyStretching, Suite};
    use hkdf::Hkdf;
    use opaque_ke::{
        ClientLogin, ClientRegistration, ClientRegistrationFinishParameters, CredentialRequest,
        Identifiers, ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
    };

    let mut rng = rng();
    let setup = ServerSetup::<Suite>::new(&mut rng);
    let pw = b"4F7K-9QXD";
    let ksf = KeyStretching::new(StretchingParams::INSECURE_TEST_ONLY);
    let reg = ClientRegistration::<Suite>::start(&mut rng, pw).unwrap();
    let id = [7u8; 64];
    let resp = ServerRegistration::<Suite>::start(&setup, reg.message, &id).unwrap();
    let fin = reg
        .state
        .finish(
            &mut rng,
            pw,
            resp.message,
            ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf)),
        )
        .unwrap();
    let record = ServerRegistration::<Suite>::finish(fin.message);
    let record_bytes = record.serialize();
    let login = ClientLogin::<Suite>::start(&mut rng, pw).unwrap();
    let ke1_bytes = login.message.serialize();
    let context = [1u8; 60];

    let mut g = c.benchmark_group("phases");
    // KE1: two decompressions (blinded element, client ephemeral key).
    g.bench_function("ke1_decode", |b| {
        b.iter(|| CredentialRequest::<Suite>::deserialize(black_box(&ke1_bytes)).unwrap())
    });
    // The stored OPAQUE record: one decompression (client static key).
    g.bench_function("record_decode", |b| {
        b.iter(|| ServerRegistration::<Suite>::deserialize(black_box(&record_bytes)).unwrap())
    });
    // opaque-ke's whole server step with our group, parsed inputs: OPRF,
    // masking, 3DH, transcript, HKDFs, MACs.
    g.bench_function("server_login_start", |b| {
        b.iter(|| {
            ServerLogin::start(
                &mut rng,
                &setup,
                Some(record.clone()),
                login.message.clone(),
                &id,
                ServerLoginParameters {
                    context: Some(&context),
                    identifiers: Identifiers::default(),
                },
            )
            .unwrap()
        })
    });
    // The per-record OPRF key: HKDF-Expand of the seed, then RFC 9497
    // DeriveKeyPair (hash to scalar).
    let seed = [3u8; 64];
    g.bench_function("oprf_key_derivation", |b| {
        b.iter(|| {
            let mut ikm = [0u8; 32];
            Hkdf::<sha2::Sha512>::from_prk(black_box(&seed))
                .unwrap()
                .expand_multi_info(&[&id, b"OprfKey"], &mut ikm)
                .unwrap();
            voprf::derive_key::<voprf::Ristretto255>(
                &ikm,
                b"OPAQUE-DeriveKeyPair",
                voprf::Mode::Oprf,
            )
            .unwrap()
        })
    });
    g.finish();
}

/// The group operations the vault's hot path is made of.
fn group_ops(c: &mut Criterion) {
    let mut rng = rng();
    let s = Scalar::random(&mut rng);
    let p = RistrettoPoint::random(&mut rng);
    let compressed = p.compress();
    let mut g = c.benchmark_group("group");
    g.bench_function("variable_base_mul", |b| {
        b.iter(|| black_box(p) * black_box(s))
    });
    g.bench_function("basepoint_table_mul", |b| {
        b.iter(|| RistrettoPoint::mul_base(black_box(&s)))
    });
    g.bench_function("basepoint_variable_mul", |b| {
        b.iter(|| RISTRETTO_BASEPOINT_POINT * black_box(s))
    });
    g.bench_function("compress", |b| b.iter(|| black_box(p).compress()));
    g.bench_function("decompress", |b| {
        b.iter(|| black_box(compressed).decompress())
    });
    g.finish();
}

/// The client's cost: registration and recovery, beside raw Argon2 with the
/// same parameters.
fn client_paths(c: &mut Criterion) {
    for (name, params) in [
        ("test", StretchingParams::INSECURE_TEST_ONLY),
        ("default", StretchingParams::RFC9106_SECOND),
    ] {
        // Built with `--features parallel`, the client stretches on several
        // threads; its group gets its own name so both runs can be compared.
        let suffix = if cfg!(feature = "parallel") {
            "_parallel"
        } else {
            ""
        };
        let mut g = c.benchmark_group(format!("client_{name}{suffix}"));
        if params != StretchingParams::INSECURE_TEST_ONLY {
            g.sample_size(10);
        }
        let mut f = fixture(params);
        g.bench_function("recovery", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Client time only: KE1 creation, and KE2 to KE3, then
                    // opening the release. The vault's work is not counted.
                    let t = Instant::now();
                    let (state, ke1) = Recovery::start(&mut f.rng, &f.config, ID, &f.code).unwrap();
                    total += t.elapsed();
                    let ke2 = f.vault.recovery_start(&mut f.rng, 0, &ke1).unwrap();
                    let t = Instant::now();
                    let (state, ke3) = state.finish(&mut f.rng, &ke2).unwrap();
                    total += t.elapsed();
                    let release = f.vault.recovery_finish(0, &ke3).unwrap();
                    let t = Instant::now();
                    black_box(state.finish(&release).unwrap());
                    total += t.elapsed();
                }
                total
            })
        });
        g.bench_function("registration", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let id = RecordId(rand::random());
                    let t = Instant::now();
                    let (state, request) =
                        Registration::start(&mut f.rng, &f.config, id, &f.code, None).unwrap();
                    total += t.elapsed();
                    let response = f
                        .vault
                        .registration_request(&mut f.rng, 0, &request)
                        .unwrap();
                    let t = Instant::now();
                    let (state, upload) = state.finish(&mut f.rng, &response, None).unwrap();
                    total += t.elapsed();
                    let confirmation = f.vault.registration_upload(0, &upload).unwrap();
                    let t = Instant::now();
                    black_box(state.finish(&confirmation).unwrap());
                    total += t.elapsed();
                }
                total
            })
        });
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(params.m_cost, params.t_cost, params.p_cost, None).unwrap(),
        );
        g.bench_function("raw_argon2", |b| {
            b.iter(|| {
                let mut out = [0u8; 64];
                argon
                    .hash_password_into(black_box(&[1u8; 64]), &[0u8; 16], &mut out)
                    .unwrap();
                out
            })
        });
        g.finish();
    }
}

/// Bundle verification (SPEC.md §17) beside its floor: two strict Ed25519
/// verifications (auditor statement, operator counter-signature) plus the
/// artifact hash and the inclusion proof's hashing. Our path also verifies
/// the checkpoint's signature, a third Ed25519 verification, each with a
/// pinned key (`PinnedKey`, SPEC.md §15.5). The parts are measured too: one
/// pinned verification against ed25519-dalek's `verify_strict`, the
/// checkpoint note, the inclusion proof against its hashes, and the cost of
/// pinning a key.
fn bundle_paths(c: &mut Criterion) {
    use backup_key_vault::bundle::ed25519::PinnedKey;
    use backup_key_vault::bundle::log::entry;
    use backup_key_vault::bundle::{
        artifact_digest, AuditorSigningKey, Checkpoint, FleetKeyArtifact, MerkleLog,
        OperatorSigningKey, TrustAnchors, ValidationBundle, DEFAULT_NAMESPACE,
    };
    use sha2::{Digest, Sha256};

    let mut rng = rng();
    let secrets = FleetSecrets::generate(&mut rng);
    let auditor = AuditorSigningKey::from_bytes(&[1; 32]);
    let operator = OperatorSigningKey::from_bytes(&[2; 32]);
    // A log of 1,000 epochs: the proof has 10 hashes.
    let mut log = MerkleLog::new();
    for e in 1..1000u64 {
        log.push(entry(e, &artifact_digest(&e.to_be_bytes())));
    }
    let epoch = 1000;
    let artifact = FleetKeyArtifact::for_fleet(
        DEFAULT_NAMESPACE,
        "fleet-a",
        epoch,
        &secrets.public_keys(),
        0,
        u64::MAX,
    )
    .to_bytes()
    .unwrap();
    let digest = artifact_digest(&artifact);
    log.push(entry(epoch, &digest));
    let mut bundle = ValidationBundle {
        namespace: DEFAULT_NAMESPACE.into(),
        epoch,
        timestamp_ms: 1,
        digest,
        auditor_key: auditor.public_key(),
        auditor_signature: [0; 64],
        counter_signature: None,
        artifact: artifact.clone(),
        inclusion: log.prove_inclusion(log.len() - 1).unwrap(),
        checkpoint: log.checkpoint(DEFAULT_NAMESPACE).sign(&auditor),
    };
    bundle.auditor_signature = auditor.sign_statement(&bundle.statement());
    bundle.countersign(&operator);
    let bytes = bundle.to_bytes().unwrap();
    let anchors = TrustAnchors::new(&[auditor.public_key()], &[operator.public_key()]);
    assert!(anchors.verify_bytes(&bytes, 10, None).is_ok());

    // The floor's inputs, made independently with ed25519-dalek.
    let statement = bundle.statement().to_bytes();
    let auditor_vk = ed25519_dalek::VerifyingKey::from_bytes(&auditor.public_key()).unwrap();
    let operator_vk = ed25519_dalek::VerifyingKey::from_bytes(&operator.public_key()).unwrap();
    let sig_a = ed25519_dalek::Signature::from_bytes(&bundle.auditor_signature);
    let sig_o =
        ed25519_dalek::Signature::from_bytes(&bundle.counter_signature.as_ref().unwrap().signature);
    let depth = 10;

    let hashes = |artifact: &[u8]| {
        let mut h = Sha256::digest(artifact);
        for _ in 0..=depth {
            h = Sha256::new()
                .chain_update([1u8])
                .chain_update(h)
                .chain_update(h)
                .finalize();
        }
        h
    };
    let pinned_auditor = PinnedKey::new(auditor.public_key());
    let checkpoint = Checkpoint::verify_note(
        &bundle.checkpoint,
        DEFAULT_NAMESPACE,
        core::slice::from_ref(&pinned_auditor),
    )
    .unwrap();
    let leaf = entry(epoch, &digest);

    let mut g = c.benchmark_group("bundle");
    g.bench_function("verify", |b| {
        b.iter(|| anchors.verify_bytes(black_box(&bytes), 10, None).unwrap())
    });
    g.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| {
            auditor_vk
                .verify_strict(black_box(&statement), &sig_a)
                .unwrap()
        })
    });
    g.bench_function("pinned_verify_strict", |b| {
        b.iter(|| {
            assert!(pinned_auditor.verify_strict(black_box(&statement), &bundle.auditor_signature))
        })
    });
    g.bench_function("pin_key", |b| {
        b.iter(|| PinnedKey::new(black_box(auditor.public_key())))
    });
    g.bench_function("checkpoint_note", |b| {
        b.iter(|| {
            Checkpoint::verify_note(
                black_box(&bundle.checkpoint),
                DEFAULT_NAMESPACE,
                core::slice::from_ref(&pinned_auditor),
            )
            .unwrap()
        })
    });
    g.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            bundle
                .inclusion
                .verify(black_box(&leaf), &checkpoint)
                .unwrap()
        })
    });
    g.bench_function("artifact_and_proof_hashes", |b| {
        b.iter(|| hashes(black_box(&artifact)))
    });
    g.bench_function("two_ed25519_verify_strict", |b| {
        b.iter(|| {
            auditor_vk
                .verify_strict(black_box(&statement), &sig_a)
                .unwrap();
            operator_vk
                .verify_strict(black_box(&bundle.auditor_signature), &sig_o)
                .unwrap();
            hashes(black_box(&artifact))
        })
    });
    g.finish();
}

/// The X-Wing channel's own work (SPEC.md §4.4), each piece as the vault
/// and the client do it, with the crate's public building blocks: what
/// revision 11 added to the vault's recovery start (open the KE1, seal the
/// KE2) and to the client's recovery (seal the KE1, open the KE2, seal the
/// KE3, the release key's extra input).
fn channel_ops(c: &mut Criterion) {
    use backup_key_vault::derive;
    use backup_key_vault::xwing::{PrivateKey, XWing};
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::ChaCha20Poly1305;
    use hpke::aead::ChaCha20Poly1305 as HpkeChaCha;
    use hpke::kdf::HkdfSha256;
    use hpke::{Kem, OpModeR, OpModeS};

    struct Rng09(ChaCha20Rng);
    impl hpke::rand_core::RngCore for Rng09 {
        fn next_u32(&mut self) -> u32 {
            rand::RngCore::next_u32(&mut self.0)
        }
        fn next_u64(&mut self) -> u64 {
            rand::RngCore::next_u64(&mut self.0)
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            rand::RngCore::fill_bytes(&mut self.0, dst)
        }
    }
    impl hpke::rand_core::CryptoRng for Rng09 {}

    let label = |name: &str| {
        derive::LABELS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
            .unwrap()
    };
    let bind = |secret: &[u8], sid: &[u8]| {
        let mut k = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha512>::new(None, secret)
            .expand_multi_info(&[label("RECOVERY_SESSION_KEY"), sid], &mut k)
            .unwrap();
        k
    };
    let aead_seal = |key: &[u8; 32], aad: &[u8], pt: &[u8]| {
        ChaCha20Poly1305::new(key.into())
            .encrypt(&[0u8; 12].into(), Payload { msg: pt, aad })
            .unwrap()
    };
    let exports = [
        label("EXPORT_RECOVERY_RESPONSE"),
        label("EXPORT_RECOVERY_FINISH"),
        label("EXPORT_RECOVERY_RELEASE"),
    ];
    let sk = PrivateKey::from_seed(&[9; 32]);
    let pk = XWing::sk_to_pk(&sk);
    let info = derive::recovery_hpke_info(&ID);
    let mut rng = Rng09(rng());
    let (enc, mut sender) = hpke::setup_sender::<HpkeChaCha, HkdfSha256, XWing, _>(
        &OpModeS::Base,
        &pk,
        &info,
        &mut rng,
    )
    .unwrap();
    let aad = derive::recovery_start_aad(&ID, enc.as_bytes());
    let sealed_ke1 = sender.seal(&[5u8; 96], &aad).unwrap();
    let sid = [3u8; 16];
    let mut g = c.benchmark_group("channel");
    g.bench_function("xwing_decapsulate", |b| {
        b.iter(|| XWing::decapsulate(black_box(&sk), black_box(&enc)))
    });
    // Vault: decapsulate, key schedule, open the KE1, export three secrets.
    g.bench_function("vault_open_ke1", |b| {
        b.iter(|| {
            let mut ctx = hpke::setup_receiver::<HpkeChaCha, HkdfSha256, XWing>(
                &OpModeR::Base,
                &sk,
                black_box(&enc),
                &info,
            )
            .unwrap();
            let ke1 = ctx.open(black_box(&sealed_ke1), &aad).unwrap();
            let mut out = [[0u8; 32]; 3];
            for (label, k) in exports.iter().zip(out.iter_mut()) {
                ctx.export(label, k).unwrap();
            }
            (ke1, out)
        })
    });
    // Vault: bind the response secret to the session, seal the KE2's 333
    // bytes (the other two secrets are bound at KE3, off this path).
    let ke2_aad = derive::recovery_response_aad(&ID, &backup_key_vault::SessionId(sid));
    g.bench_function("vault_seal_ke2", |b| {
        b.iter(|| {
            let key = bind(black_box(&[1u8; 32]), &sid);
            aead_seal(&key, &ke2_aad, black_box(&[7u8; 333]))
        })
    });
    // Client: encapsulate, key schedule, seal the KE1, export three secrets.
    g.bench_function("client_seal_ke1", |b| {
        b.iter(|| {
            let (enc, mut ctx) = hpke::setup_sender::<HpkeChaCha, HkdfSha256, XWing, _>(
                &OpModeS::Base,
                black_box(&pk),
                &info,
                &mut rng,
            )
            .unwrap();
            let sealed = ctx.seal(&[5u8; 96], &aad).unwrap();
            let mut out = [[0u8; 32]; 3];
            for (label, k) in exports.iter().zip(out.iter_mut()) {
                ctx.export(label, k).unwrap();
            }
            (enc, sealed, out)
        })
    });
    // Client: bind, open the KE2, seal the KE3 (open costs as seal).
    g.bench_function("client_open_ke2_seal_ke3", |b| {
        b.iter(|| {
            let keys = [[1u8; 32], [2; 32], [3; 32]].map(|y| bind(&y, &sid));
            let ke2 = aead_seal(&keys[0], &ke2_aad, black_box(&[7u8; 333]));
            let ke3 = aead_seal(&keys[1], &ke2_aad, black_box(&[8u8; 64]));
            (ke2, ke3)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = vault_paths, baselines, phases, group_ops, channel_ops, client_paths, bundle_paths
}
criterion_main!(benches);
