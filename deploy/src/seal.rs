//! Fleet secrets sealed to one HSM's import key (SPEC.md §31.3).
//!
//! `sealed = 0x01 || enc (32) || ciphertext (129 + 16)`: HPKE base mode
//! (RFC 9180) with the core's suite (DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, ChaCha20-Poly1305) to the HSM's X25519 import key, `info =
//! "bkv-deploy/v1/fleet-secrets" || transcript_digest || hsm_id`, empty
//! aad, plaintext the 129-byte [`FleetSecrets`] encoding. Only the HSM that
//! holds the import private key can open it, and only for the ceremony and
//! HSM id it was sealed for.

use std::fmt;

use backup_key_vault::bundle::OperatorSigningKey;
use backup_key_vault::FleetSecrets;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// Version byte of a sealed file.
pub const SEAL_VERSION: u8 = 1;
/// The HPKE `info` prefix.
pub const SEAL_INFO: &[u8] = b"bkv-deploy/v1/fleet-secrets";
/// Length of a sealed file.
pub const SEALED_LEN: usize = 1 + 32 + backup_key_vault::fleet::FLEET_SECRETS_LEN + 16;
/// The HPKE `info` prefix of a sealed operator key.
pub const OPERATOR_SEAL_INFO: &[u8] = b"bkv-deploy/v1/operator-key";
/// Length of a sealed operator key: the same layout, a 32-byte seed.
pub const SEALED_OPERATOR_LEN: usize = 1 + 32 + 32 + 16;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The file is not a sealed file of this version.
    Malformed,
    /// The import key is not a valid X25519 key.
    BadKey,
    /// It does not open: another HSM, ceremony or a corrupted file.
    DoesNotOpen,
    /// It opened but does not hold valid fleet secrets.
    BadSecrets,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "not a sealed fleet-secrets file",
            Self::BadKey => "invalid import key",
            Self::DoesNotOpen => {
                "the sealed secrets do not open (another HSM or ceremony, or corrupted)"
            }
            Self::BadSecrets => "the sealed file does not hold valid fleet secrets",
        })
    }
}

impl std::error::Error for SealError {}

/// An HSM's X25519 import private key. Zeroized on drop, redacted in
/// `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ImportKey([u8; 32]);

impl fmt::Debug for ImportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportKey")
            .field(
                "public_key",
                &backup_key_vault::bundle::artifact::to_hex(&self.public_key()),
            )
            .finish_non_exhaustive()
    }
}

impl ImportKey {
    /// A fresh key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        Self(key)
    }

    /// The key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(*bytes)
    }

    /// The 32 secret bytes, for the HSM's own storage.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// The public key the ceremony seals to.
    pub fn public_key(&self) -> [u8; 32] {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.0)
            .map(|sk| Kem::sk_to_pk(&sk).to_bytes().into())
            .unwrap_or([0; 32])
    }
}

/// rand 0.8's OS RNG through the rand_core 0.9 traits hpke 0.13 takes.
struct Rng09;

impl rand_core_09::RngCore for Rng09 {
    fn next_u32(&mut self) -> u32 {
        rand::RngCore::next_u32(&mut rand::rngs::OsRng)
    }
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut rand::rngs::OsRng)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, dst)
    }
}

impl rand_core_09::CryptoRng for Rng09 {}

fn info(transcript_digest: &[u8; 32], hsm_id: &str) -> Vec<u8> {
    info_with(SEAL_INFO, transcript_digest, hsm_id)
}

fn info_with(label: &[u8], transcript_digest: &[u8; 32], hsm_id: &str) -> Vec<u8> {
    let mut info = label.to_vec();
    info.extend_from_slice(transcript_digest);
    info.extend_from_slice(hsm_id.as_bytes());
    info
}

/// Seals `secrets` to `import_key` for the ceremony `transcript_digest`
/// and HSM `hsm_id`.
pub fn seal(
    secrets: &FleetSecrets,
    import_key: &[u8; 32],
    transcript_digest: &[u8; 32],
    hsm_id: &str,
) -> Result<Vec<u8>, SealError> {
    let plaintext = secrets.to_bytes();
    seal_bytes(&plaintext[..], import_key, &info(transcript_digest, hsm_id))
}

fn seal_bytes(plaintext: &[u8], import_key: &[u8; 32], info: &[u8]) -> Result<Vec<u8>, SealError> {
    let pk =
        <Kem as hpke::Kem>::PublicKey::from_bytes(import_key).map_err(|_| SealError::BadKey)?;
    let (enc, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        &[],
        &mut Rng09,
    )
    .map_err(|_| SealError::BadKey)?;
    let mut out = Vec::with_capacity(1 + 32 + plaintext.len() + 16);
    out.push(SEAL_VERSION);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Seals the operator's counter-signing key (its 32-byte seed) to
/// `import_key` for the ceremony `transcript_digest` and HSM `hsm_id`:
/// the layout of the fleet secrets' file, `info =
/// "bkv-deploy/v1/operator-key" || transcript_digest || hsm_id` (SPEC.md
/// §31.3).
pub fn seal_operator_key(
    operator: &OperatorSigningKey,
    import_key: &[u8; 32],
    transcript_digest: &[u8; 32],
    hsm_id: &str,
) -> Result<Vec<u8>, SealError> {
    let seed = operator.to_bytes();
    seal_bytes(
        &seed[..],
        import_key,
        &info_with(OPERATOR_SEAL_INFO, transcript_digest, hsm_id),
    )
}

/// Opens a sealed operator key with the HSM's import key.
pub fn open_operator_key(
    sealed: &[u8],
    import_key: &ImportKey,
    transcript_digest: &[u8; 32],
    hsm_id: &str,
) -> Result<OperatorSigningKey, SealError> {
    if sealed.len() != SEALED_OPERATOR_LEN {
        return Err(SealError::Malformed);
    }
    let plaintext = open_bytes(
        sealed,
        import_key,
        &info_with(OPERATOR_SEAL_INFO, transcript_digest, hsm_id),
    )?;
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        plaintext
            .as_slice()
            .try_into()
            .map_err(|_| SealError::BadSecrets)?,
    );
    Ok(OperatorSigningKey::from_bytes(&seed))
}

fn open_bytes(
    sealed: &[u8],
    import_key: &ImportKey,
    info: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let (version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
    if *version != SEAL_VERSION {
        return Err(SealError::Malformed);
    }
    let (enc, ciphertext) = rest.split_first_chunk::<32>().ok_or(SealError::Malformed)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| SealError::Malformed)?;
    let sk =
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&import_key.0).map_err(|_| SealError::BadKey)?;
    Ok(Zeroizing::new(
        hpke::single_shot_open::<Aead, Kdf, Kem>(&OpModeR::Base, &sk, &enc, info, ciphertext, &[])
            .map_err(|_| SealError::DoesNotOpen)?,
    ))
}

/// Opens a sealed file with the HSM's import key.
pub fn open(
    sealed: &[u8],
    import_key: &ImportKey,
    transcript_digest: &[u8; 32],
    hsm_id: &str,
) -> Result<FleetSecrets, SealError> {
    if sealed.len() != SEALED_LEN {
        return Err(SealError::Malformed);
    }
    let plaintext = open_bytes(sealed, import_key, &info(transcript_digest, hsm_id))?;
    FleetSecrets::from_bytes(&plaintext).map_err(|_| SealError::BadSecrets)
}
