//! X-Wing (ML-KEM-768 + X25519, draft-connolly-cfrg-xwing-kem) as an HPKE
//! KEM (KEM id `0x647a`, draft-ietf-hpke-pq), for the channel between
//! client and vault (SPEC.md §4.4).
//!
//! Built on libcrux's formally verified ML-KEM-768, curve25519-dalek's
//! X25519 (the crate the rest of the core already uses) and libcrux's SHA-3,
//! under hpke 0.13's `Kem` trait, so the whole core keeps one elliptic-curve
//! stack and one RNG trait. The private key is the 32-byte X-Wing seed;
//! decoding it expands it once (SHAKE256, ML-KEM KeyGen, an X25519 base
//! multiplication) and unpacks the ML-KEM key (its matrix sampled once), so
//! the vault's decapsulation does only the ML-KEM decapsulation, one X25519
//! and the SHA3-256 combiner. Checked against the
//! draft's X-Wing vectors and the published HPKE vectors for X-Wing with
//! HKDF-SHA256 and ChaCha20-Poly1305 (`tests/rfc_vectors.rs`). SPEC.md §10
//! says why not hpke 0.15's own X-Wing.

use alloc::boxed::Box;
use core::fmt;

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hpke::generic_array::typenum::{Sum, U1024, U192, U32, U96};
use hpke::kem::SharedSecret;
use hpke::{Deserializable, HpkeError, Kem, Serializable};
use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

/// Length of an X-Wing private key (the seed).
pub const PRIVATE_KEY_LEN: usize = 32;
/// Length of an X-Wing public key: ML-KEM-768's (1184) then X25519's (32).
pub const PUBLIC_KEY_LEN: usize = 1216;
/// Length of an X-Wing ciphertext (HPKE's `enc`): ML-KEM-768's (1088) then
/// X25519's (32).
pub const CIPHERTEXT_LEN: usize = 1120;
/// Randomness one encapsulation draws: 32 bytes for ML-KEM, 32 for X25519.
pub const ENCAPSULATION_SEED_LEN: usize = 64;

const MLKEM_PUBLIC_KEY_LEN: usize = 1184;
const MLKEM_CIPHERTEXT_LEN: usize = 1088;
const MLKEM_PRIVATE_KEY_LEN: usize = 2400;
/// X-Wing's combiner label, `\.//^\`.
const XWING_LABEL: &[u8; 6] = b"\\.//^\\";

/// The X-Wing KEM, HPKE KEM id `0x647a`.
#[derive(Clone, Copy, Debug)]
pub struct XWing;

/// An X-Wing public key: `pk_M (1184) || pk_X (32)`. Decoding checks the
/// ML-KEM part (FIPS 203's modulus check); any 32 bytes are an X25519 key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    fn parts(&self) -> ([u8; MLKEM_PUBLIC_KEY_LEN], [u8; 32]) {
        let mut m = [0u8; MLKEM_PUBLIC_KEY_LEN];
        let mut x = [0u8; 32];
        let (head, tail) = self.0.split_at(MLKEM_PUBLIC_KEY_LEN);
        m.copy_from_slice(head);
        x.copy_from_slice(tail);
        (m, x)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XWingPublicKey({} bytes)", PUBLIC_KEY_LEN)
    }
}

impl Serializable for PublicKey {
    type OutputSize = Sum<U1024, U192>;
    fn write_exact(&self, buf: &mut [u8]) {
        if buf.len() == PUBLIC_KEY_LEN {
            buf.copy_from_slice(&self.0);
        }
    }
}

impl Deserializable for PublicKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        let bytes: [u8; PUBLIC_KEY_LEN] = encoded
            .try_into()
            .map_err(|_| HpkeError::IncorrectInputLength(PUBLIC_KEY_LEN, encoded.len()))?;
        let key = Self(bytes);
        let (m, _) = key.parts();
        if !mlkem768::validate_public_key(&MlKem768PublicKey::from(m)) {
            return Err(HpkeError::ValidationError);
        }
        Ok(key)
    }
}

/// An X-Wing private key: the 32-byte seed, kept with its expansion (the
/// ML-KEM-768 decapsulation key, the X25519 scalar and the public key).
/// Zeroized on drop; `Debug` shows nothing secret.
pub struct PrivateKey {
    seed: Zeroizing<[u8; PRIVATE_KEY_LEN]>,
    sk_m: MlKemPrivate,
    /// The same ML-KEM key unpacked (its matrix sampled, its vectors in NTT
    /// form), which the decapsulation uses: it skips re-sampling the matrix
    /// per call, about a third of the decapsulation (BENCHMARKS.md).
    unpacked: MlKemUnpacked,
    sk_x: Zeroizing<[u8; 32]>,
    public: PublicKey,
}

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        Self {
            seed: self.seed.clone(),
            sk_m: self.sk_m.clone(),
            unpacked: MlKemUnpacked::new(&self.sk_m.0),
            sk_x: self.sk_x.clone(),
            public: self.public.clone(),
        }
    }
}

/// libcrux's ML-KEM private key, wiped when dropped (libcrux's own type is
/// a plain byte array).
#[derive(Clone)]
struct MlKemPrivate(MlKem768PrivateKey);

impl Drop for MlKemPrivate {
    fn drop(&mut self) {
        // `0..` indexes the whole key: it cannot be out of range.
        #[allow(clippy::indexing_slicing)]
        self.0[0..].zeroize();
    }
}

/// libcrux's unpacked ML-KEM-768 key pair, in the form of the code that
/// runs: AVX2 where the CPU has it (checked at run time, as libcrux's own
/// packed API does), the portable code elsewhere (HSM targets). Boxed: it is
/// about 10 KiB. Both forms decapsulate exactly as the packed key does
/// (FIPS 203's `ML-KEM.Decaps`, implicit rejection included); the X-Wing
/// and HPKE vectors check it.
enum MlKemUnpacked {
    #[cfg(target_arch = "x86_64")]
    Avx2(Box<mlkem768::avx2::unpacked::MlKem768KeyPairUnpacked>),
    Portable(Box<mlkem768::portable::unpacked::MlKem768KeyPairUnpacked>),
}

impl MlKemUnpacked {
    fn new(private: &MlKem768PrivateKey) -> Self {
        #[cfg(target_arch = "x86_64")]
        if libcrux_platform::simd256_support() {
            let mut pair = Box::new(mlkem768::avx2::unpacked::init_key_pair());
            mlkem768::avx2::unpacked::key_pair_from_private_mut(private, &mut pair);
            return Self::Avx2(pair);
        }
        Self::portable(private)
    }

    fn portable(private: &MlKem768PrivateKey) -> Self {
        let mut pair = Box::new(mlkem768::portable::unpacked::init_key_pair());
        mlkem768::portable::unpacked::key_pair_from_private_mut(private, &mut pair);
        Self::Portable(pair)
    }

    fn decapsulate(&self, ct: &MlKem768Ciphertext) -> [u8; 32] {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(pair) => mlkem768::avx2::unpacked::decapsulate(pair, ct),
            Self::Portable(pair) => mlkem768::portable::unpacked::decapsulate(pair, ct),
        }
    }
}

impl Drop for MlKemUnpacked {
    /// Wipes the key (see `wipe`).
    fn drop(&mut self) {
        self.wipe();
    }
}

impl MlKemUnpacked {
    /// libcrux's unpacked types have no `Zeroize` and private fields: the
    /// key is overwritten by unpacking the all-zero private key into it,
    /// which rewrites every field (secret vector, implicit-rejection value,
    /// public vector, matrix, hash) from zeros. `black_box` keeps the
    /// compiler from dropping those stores as dead.
    fn wipe(&mut self) {
        let zero = MlKem768PrivateKey::from([0u8; MLKEM_PRIVATE_KEY_LEN]);
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(pair) => {
                mlkem768::avx2::unpacked::key_pair_from_private_mut(&zero, pair);
                core::hint::black_box(&**pair);
            }
            Self::Portable(pair) => {
                mlkem768::portable::unpacked::key_pair_from_private_mut(&zero, pair);
                core::hint::black_box(&**pair);
            }
        }
    }
}

impl PrivateKey {
    /// Expands a seed (X-Wing's `expandDecapsulationKey`): `SHAKE256(seed,
    /// 96)` gives ML-KEM's `d || z` and the X25519 scalar.
    pub fn from_seed(seed: &[u8; PRIVATE_KEY_LEN]) -> Self {
        let expanded = Zeroizing::new(libcrux_sha3::shake256::<96>(seed));
        let mut d_z = Zeroizing::new([0u8; 64]);
        let mut sk_x = Zeroizing::new([0u8; 32]);
        let (head, tail) = expanded.split_at(64);
        d_z.copy_from_slice(head);
        sk_x.copy_from_slice(tail);
        let pair = mlkem768::generate_key_pair(*d_z);
        let (sk_m, pk_m) = pair.into_parts();
        let unpacked = MlKemUnpacked::new(&sk_m);
        let pk_x = x25519_base(&sk_x);
        let mut public = [0u8; PUBLIC_KEY_LEN];
        let (m, x) = public.split_at_mut(MLKEM_PUBLIC_KEY_LEN);
        m.copy_from_slice(pk_m.as_slice());
        x.copy_from_slice(&pk_x);
        Self {
            seed: Zeroizing::new(*seed),
            sk_m: MlKemPrivate(sk_m),
            unpacked,
            sk_x,
            public: PublicKey(public),
        }
    }

    /// The ML-KEM-768 decapsulation key (FIPS 203 encoding), for the test
    /// that plays a relay holding it.
    #[doc(hidden)]
    pub fn mlkem_decapsulation_key(&self) -> &[u8; MLKEM_PRIVATE_KEY_LEN] {
        self.sk_m.0.as_slice()
    }

    /// A key from its expanded parts instead of its seed (which is then
    /// unknown: the key serializes as 32 zero bytes). **Only for the test
    /// that plays a recording relay** handed the ML-KEM decapsulation key
    /// and the X25519 scalar; no protocol path uses it.
    #[doc(hidden)]
    pub fn from_expanded_parts(
        mlkem_decapsulation_key: &[u8; MLKEM_PRIVATE_KEY_LEN],
        x25519_private_key: &[u8; 32],
        public: &PublicKey,
    ) -> Self {
        let sk_m = MlKem768PrivateKey::from(*mlkem_decapsulation_key);
        Self {
            seed: Zeroizing::new([0; PRIVATE_KEY_LEN]),
            unpacked: MlKemUnpacked::new(&sk_m),
            sk_m: MlKemPrivate(sk_m),
            sk_x: Zeroizing::new(*x25519_private_key),
            public: public.clone(),
        }
    }

    /// The X25519 private scalar, for the test that plays a relay that
    /// computes discrete logarithms.
    #[doc(hidden)]
    pub fn x25519_private_key(&self) -> &[u8; 32] {
        &self.sk_x
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XWingPrivateKey(..)")
    }
}

impl ConstantTimeEq for PrivateKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.seed.ct_eq(&*other.seed)
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}
impl Eq for PrivateKey {}

impl Serializable for PrivateKey {
    type OutputSize = U32;
    fn write_exact(&self, buf: &mut [u8]) {
        if buf.len() == PRIVATE_KEY_LEN {
            buf.copy_from_slice(&*self.seed);
        }
    }
}

impl Deserializable for PrivateKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        let seed: Zeroizing<[u8; PRIVATE_KEY_LEN]> = Zeroizing::new(
            encoded
                .try_into()
                .map_err(|_| HpkeError::IncorrectInputLength(PRIVATE_KEY_LEN, encoded.len()))?,
        );
        Ok(Self::from_seed(&seed))
    }
}

/// An X-Wing ciphertext, HPKE's `enc`: `ct_M (1088) || ct_X (32)`.
#[derive(Clone, PartialEq, Eq)]
pub struct EncappedKey([u8; CIPHERTEXT_LEN]);

impl EncappedKey {
    /// The encoded ciphertext.
    pub fn as_bytes(&self) -> &[u8; CIPHERTEXT_LEN] {
        &self.0
    }

    fn parts(&self) -> ([u8; MLKEM_CIPHERTEXT_LEN], [u8; 32]) {
        let mut m = [0u8; MLKEM_CIPHERTEXT_LEN];
        let mut x = [0u8; 32];
        let (head, tail) = self.0.split_at(MLKEM_CIPHERTEXT_LEN);
        m.copy_from_slice(head);
        x.copy_from_slice(tail);
        (m, x)
    }
}

impl Serializable for EncappedKey {
    type OutputSize = Sum<U1024, U96>;
    fn write_exact(&self, buf: &mut [u8]) {
        if buf.len() == CIPHERTEXT_LEN {
            buf.copy_from_slice(&self.0);
        }
    }
}

impl Deserializable for EncappedKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        encoded
            .try_into()
            .map(Self)
            .map_err(|_| HpkeError::IncorrectInputLength(CIPHERTEXT_LEN, encoded.len()))
    }
}

/// X25519 (RFC 7748) of the clamped `scalar` and the u-coordinate `u`.
///
/// A point on the curve is multiplied as its Edwards form, where
/// curve25519-dalek uses its vectorised (AVX2) backend; the u-coordinate of
/// the product is the same, whichever of the two Edwards points with that
/// u is taken, and the clamped integer is used unreduced (a multiple of the
/// cofactor), exactly as the Montgomery ladder does. A u that is not on the
/// curve (the twist), which only a forged ciphertext carries, takes the
/// ladder. Which branch runs depends on the public `u` alone.
fn x25519(scalar: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
    let point = MontgomeryPoint(*u);
    match point.to_edwards(0) {
        Some(edwards) => edwards.mul_clamped(*scalar).to_montgomery().to_bytes(),
        None => point.mul_clamped(*scalar).to_bytes(),
    }
}

/// X25519 of the clamped `scalar` and the base point, from the basepoint
/// table.
fn x25519_base(scalar: &[u8; 32]) -> [u8; 32] {
    EdwardsPoint::mul_base_clamped(*scalar)
        .to_montgomery()
        .to_bytes()
}

/// X-Wing's combiner: `SHA3-256(ss_M || ss_X || ct_X || pk_X || label)`.
fn combine(ss_m: &[u8; 32], ss_x: &[u8; 32], ct_x: &[u8; 32], pk_x: &[u8; 32]) -> [u8; 32] {
    let mut input = Zeroizing::new([0u8; 32 * 4 + 6]);
    let filled = crate::crypto::fill(&mut input[..], &[ss_m, ss_x, ct_x, pk_x, XWING_LABEL]);
    debug_assert!(filled, "the lengths are constants that add up");
    libcrux_sha3::sha256(&input[..])
}

fn shared_secret(bytes: [u8; 32]) -> SharedSecret<XWing> {
    let mut out = SharedSecret::<XWing>::default();
    out.0.copy_from_slice(&bytes);
    out
}

impl XWing {
    /// Encapsulation with explicit randomness (`eseed`: ML-KEM's 32 bytes,
    /// then the X25519 ephemeral scalar): the draft's `EncapsulateDerand`.
    pub fn encapsulate_derand(
        public: &PublicKey,
        eseed: &[u8; ENCAPSULATION_SEED_LEN],
    ) -> (EncappedKey, Zeroizing<[u8; 32]>) {
        let (pk_m, pk_x) = public.parts();
        let mut m_rand = Zeroizing::new([0u8; 32]);
        let mut ek_x = Zeroizing::new([0u8; 32]);
        let (head, tail) = eseed.split_at(32);
        m_rand.copy_from_slice(head);
        ek_x.copy_from_slice(tail);
        let (ct_m, ss_m) = mlkem768::encapsulate(&MlKem768PublicKey::from(pk_m), *m_rand);
        let ss_m = Zeroizing::new(ss_m);
        let ct_x = x25519_base(&ek_x);
        let ss_x = Zeroizing::new(x25519(&ek_x, &pk_x));
        let ss = Zeroizing::new(combine(&ss_m, &ss_x, &ct_x, &pk_x));
        let mut ct = [0u8; CIPHERTEXT_LEN];
        let (m, x) = ct.split_at_mut(MLKEM_CIPHERTEXT_LEN);
        m.copy_from_slice(ct_m.as_slice());
        x.copy_from_slice(&ct_x);
        (EncappedKey(ct), ss)
    }

    /// Decapsulation (the draft's `Decapsulate`). Never fails: ML-KEM
    /// rejects implicitly, so a forged ciphertext gives an unrelated secret
    /// and the AEAD that follows fails.
    pub fn decapsulate(private: &PrivateKey, ct: &EncappedKey) -> Zeroizing<[u8; 32]> {
        let (ct_m, ct_x) = ct.parts();
        let ss_m = Zeroizing::new(
            private
                .unpacked
                .decapsulate(&MlKem768Ciphertext::from(ct_m)),
        );
        let ss_x = Zeroizing::new(x25519(&private.sk_x, &ct_x));
        let (_, pk_x) = private.public.parts();
        Zeroizing::new(combine(&ss_m, &ss_x, &ct_x, &pk_x))
    }
}

impl Kem for XWing {
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;
    type EncappedKey = EncappedKey;
    type NSecret = U32;
    const KEM_ID: u16 = 0x647a;

    fn sk_to_pk(sk: &PrivateKey) -> PublicKey {
        sk.public.clone()
    }

    /// draft-ietf-hpke-pq `DeriveKeyPair`: `seed = SHAKE256.LabeledDerive(
    /// ikm, "DeriveKeyPair", "", 32)`, i.e. `SHAKE256(ikm || "HPKE-v1" ||
    /// "KEM" || u16be(0x647a) || u16be(13) || "DeriveKeyPair" || u16be(32))`.
    fn derive_keypair(ikm: &[u8]) -> (PrivateKey, PublicKey) {
        let mut input = Zeroizing::new(alloc::vec::Vec::with_capacity(ikm.len() + 32));
        input.extend_from_slice(ikm);
        input.extend_from_slice(b"HPKE-v1");
        input.extend_from_slice(b"KEM");
        input.extend_from_slice(&Self::KEM_ID.to_be_bytes());
        input.extend_from_slice(&13u16.to_be_bytes());
        input.extend_from_slice(b"DeriveKeyPair");
        input.extend_from_slice(&32u16.to_be_bytes());
        let seed = Zeroizing::new(libcrux_sha3::shake256::<32>(&input));
        let private = PrivateKey::from_seed(&seed);
        let public = private.public.clone();
        (private, public)
    }

    fn decap(
        sk_recip: &PrivateKey,
        pk_sender_id: Option<&PublicKey>,
        encapped_key: &EncappedKey,
    ) -> Result<SharedSecret<Self>, HpkeError> {
        // X-Wing has no authenticated mode.
        if pk_sender_id.is_some() {
            return Err(HpkeError::DecapError);
        }
        Ok(shared_secret(*Self::decapsulate(sk_recip, encapped_key)))
    }

    fn encap<R: hpke::rand_core::CryptoRng + hpke::rand_core::RngCore>(
        pk_recip: &PublicKey,
        sender_id_keypair: Option<(&PrivateKey, &PublicKey)>,
        csprng: &mut R,
    ) -> Result<(SharedSecret<Self>, EncappedKey), HpkeError> {
        if sender_id_keypair.is_some() {
            return Err(HpkeError::EncapError);
        }
        let mut eseed = Zeroizing::new([0u8; ENCAPSULATION_SEED_LEN]);
        csprng.fill_bytes(&mut eseed[..]);
        let (ct, ss) = Self::encapsulate_derand(pk_recip, &eseed);
        Ok((shared_secret(*ss), ct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encapsulation_round_trips_and_a_changed_ciphertext_gives_another_secret() {
        let private = PrivateKey::from_seed(&[7; 32]);
        let public = XWing::sk_to_pk(&private);
        let (ct, ss) = XWing::encapsulate_derand(&public, &[9; 64]);
        assert_eq!(*XWing::decapsulate(&private, &ct), *ss);
        for at in [0, 1087, 1088, 1119] {
            let mut bad = ct.clone();
            bad.0[at] ^= 1;
            assert_ne!(*XWing::decapsulate(&private, &bad), *ss, "byte {at}");
        }
        let other = PrivateKey::from_seed(&[8; 32]);
        assert_ne!(*XWing::decapsulate(&other, &ct), *ss);
    }

    /// Every form of the unpacked key the machine can run (the portable
    /// one always, AVX2 where the CPU has it) decapsulates exactly as
    /// libcrux's packed key does, FIPS 203's `Decaps`: genuine ciphertexts
    /// and changed ones, whose answer is the implicit rejection's.
    #[test]
    fn the_unpacked_key_decapsulates_as_the_packed_key_in_every_form() {
        let private = PrivateKey::from_seed(&[7; 32]);
        let public = XWing::sk_to_pk(&private);
        let mut forms = alloc::vec![MlKemUnpacked::portable(&private.sk_m.0)];
        #[cfg(target_arch = "x86_64")]
        if libcrux_platform::simd256_support() {
            forms.push(MlKemUnpacked::new(&private.sk_m.0));
            assert!(matches!(forms[1], MlKemUnpacked::Avx2(_)));
        }
        for eseed in [[9u8; 64], [0x5a; 64]] {
            let (ct, _) = XWing::encapsulate_derand(&public, &eseed);
            let (genuine, _) = ct.parts();
            for at in [None, Some(0), Some(500), Some(1087)] {
                let mut ct_m = genuine;
                if let Some(at) = at {
                    ct_m[at] ^= 0x80;
                }
                let ct_m = MlKem768Ciphertext::from(ct_m);
                let reference = mlkem768::portable::decapsulate(&private.sk_m.0, &ct_m);
                for form in &forms {
                    assert_eq!(form.decapsulate(&ct_m), reference, "byte {at:?}");
                }
            }
        }
    }

    /// Wiping the unpacked key replaces all of it: it then answers as the
    /// all-zero key, not as the key it held.
    #[test]
    fn a_wiped_unpacked_key_holds_nothing_of_the_key() {
        let private = PrivateKey::from_seed(&[7; 32]);
        let (ct, _) = XWing::encapsulate_derand(&XWing::sk_to_pk(&private), &[9; 64]);
        let ct_m = MlKem768Ciphertext::from(ct.parts().0);
        let zero = MlKem768PrivateKey::from([0u8; MLKEM_PRIVATE_KEY_LEN]);
        let mut forms = alloc::vec![MlKemUnpacked::portable(&private.sk_m.0)];
        forms.push(MlKemUnpacked::new(&private.sk_m.0));
        for form in &mut forms {
            let before = form.decapsulate(&ct_m);
            form.wipe();
            let after = form.decapsulate(&ct_m);
            assert_ne!(after, before);
            assert_eq!(after, mlkem768::portable::decapsulate(&zero, &ct_m));
        }
    }

    /// The Edwards route gives RFC 7748's X25519 for every u: points of
    /// the prime-order subgroup, points with a torsion component, small-order
    /// points, twist points (the ladder), and u ≥ p.
    #[test]
    fn x25519_matches_the_montgomery_ladder_for_every_kind_of_u() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        let scalars = [[0u8; 32], [0xFF; 32], [7; 32], [0x42; 32]];
        let mut us: alloc::vec::Vec<[u8; 32]> =
            alloc::vec![[0; 32], [1; 32], [9; 32], [0xFF; 32], x25519_base(&[3; 32]),];
        for torsion in EIGHT_TORSION {
            us.push(torsion.to_montgomery().to_bytes());
            let mixed = EdwardsPoint::mul_base_clamped([5; 32]) + torsion;
            us.push(mixed.to_montgomery().to_bytes());
        }
        // Some small u that is not on the curve (on its twist): the ladder.
        let twist = (2u8..64)
            .map(|n| {
                let mut u = [0u8; 32];
                u[0] = n;
                u
            })
            .find(|u| MontgomeryPoint(*u).to_edwards(0).is_none())
            .unwrap();
        us.push(twist);
        for u in us {
            for s in scalars {
                assert_eq!(x25519(&s, &u), MontgomeryPoint(u).mul_clamped(s).to_bytes());
            }
        }
        for s in scalars {
            assert_eq!(
                x25519_base(&s),
                MontgomeryPoint::mul_base_clamped(s).to_bytes()
            );
        }
    }

    #[test]
    fn keys_decode_strictly_and_debug_shows_no_secret() {
        let private = PrivateKey::from_seed(&[7; 32]);
        let bytes = private.to_bytes();
        assert_eq!(PrivateKey::from_bytes(&bytes).unwrap(), private);
        assert!(PrivateKey::from_bytes(&bytes[..31]).is_err());
        let public = XWing::sk_to_pk(&private);
        assert_eq!(PublicKey::from_bytes(public.as_bytes()).unwrap(), public);
        assert!(PublicKey::from_bytes(&public.as_bytes()[..1215]).is_err());
        // A coefficient of 0xFFF is not below q = 3329: FIPS 203's check.
        let mut bad = *public.as_bytes();
        bad[0] = 0xFF;
        bad[1] |= 0x0F;
        assert_eq!(PublicKey::from_bytes(&bad), Err(HpkeError::ValidationError));
        assert!(EncappedKey::from_bytes(&[0; 1119]).is_err());
        assert_eq!(alloc::format!("{private:?}"), "XWingPrivateKey(..)");
    }
}
