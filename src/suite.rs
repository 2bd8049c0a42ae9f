//! The OPAQUE ciphersuite and the key-stretching function.
//!
//! SPEC.md §3 ("Ciphersuite") is normative. The suite is OPAQUE-3DH with
//! ristretto255 for both the OPRF and the key exchange, SHA-512, and Argon2id
//! as the key-stretching function (KSF). Argon2id's parameters are *data*: they
//! are chosen at registration, stored with the record, returned at recovery and
//! checked by the client against a floor and a ceiling it is configured with.

use opaque_ke::errors::InternalError;
use opaque_ke::generic_array::{ArrayLength, GenericArray};

/// The OPAQUE ciphersuite: OPAQUE-3DH, ristretto255, SHA-512, Argon2id.
///
/// This is RFC 9807's `OPAQUE-3DH` configuration with ristretto255-SHA512
/// (the RFC's first recommended configuration); only the KSF differs from
/// the RFC's test vectors, which use the identity KSF. The OPRF group is
/// opaque-ke's ristretto255; the key-exchange group is
/// [`crate::group::Ristretto255`], the same group computed with less work.
#[derive(Debug, Clone, Copy)]
pub struct Suite;

impl opaque_ke::CipherSuite for Suite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<crate::group::Ristretto255, sha2::Sha512>;
    type Ksf = KeyStretching;
}

/// Argon2id parameters: memory in KiB, passes, and lanes.
///
/// The [`Default`] is RFC 9106's second recommended option (64 MiB, 3 passes,
/// 4 lanes), the production default. Tests use
/// [`StretchingParams::INSECURE_TEST_ONLY`], which is never a default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "UncheckedStretchingParams")
)]
pub struct StretchingParams {
    /// Memory size in KiB (Argon2 `m`).
    pub m_cost: u32,
    /// Number of passes (Argon2 `t`).
    pub t_cost: u32,
    /// Degree of parallelism, the number of lanes (Argon2 `p`).
    pub p_cost: u32,
}

impl StretchingParams {
    /// RFC 9106 §4, second recommended option: m = 64 MiB, t = 3, p = 4.
    pub const RFC9106_SECOND: Self = Self {
        m_cost: 64 * 1024,
        t_cost: 3,
        p_cost: 4,
    };

    /// The largest parameters a client accepts by default: 256 MiB, 10
    /// passes, 16 lanes (four times the default's memory, about three times
    /// its passes). A relay that answers with more is refused rather than
    /// allowed to exhaust the phone's memory or the user's patience.
    pub const DEFAULT_CEILING: Self = Self {
        m_cost: 256 * 1024,
        t_cost: 10,
        p_cost: 16,
    };

    /// Tiny parameters (8 KiB, one pass, one lane) that make tests fast.
    ///
    /// **Insecure.** A recovery code stretched with these falls to a GPU in
    /// seconds. They are accepted only by a client built with
    /// [`crate::client::ClientConfig::insecure_test_only`], which is never a
    /// default and says what it is in its name.
    pub const INSECURE_TEST_ONLY: Self = Self {
        m_cost: 8,
        t_cost: 1,
        p_cost: 1,
    };

    /// Encoded length on the wire: three big-endian `u32`s.
    pub const ENCODED_LEN: usize = 12;

    /// Whether Argon2 accepts these parameters at all.
    pub fn is_valid(&self) -> bool {
        self.to_argon2().is_some()
    }

    /// Whether every component is at least `floor`'s. Lanes are not a
    /// strength measure (the same memory and passes cost an attacker the same
    /// with more lanes), so only memory and passes are compared.
    pub fn meets_floor(&self, floor: &Self) -> bool {
        self.m_cost >= floor.m_cost && self.t_cost >= floor.t_cost
    }

    /// Whether every component is at most `ceiling`'s.
    pub fn within_ceiling(&self, ceiling: &Self) -> bool {
        self.m_cost <= ceiling.m_cost
            && self.t_cost <= ceiling.t_cost
            && self.p_cost <= ceiling.p_cost
    }

    /// The wire encoding: `m_cost || t_cost || p_cost`, big-endian.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let [m0, m1, m2, m3] = self.m_cost.to_be_bytes();
        let [t0, t1, t2, t3] = self.t_cost.to_be_bytes();
        let [p0, p1, p2, p3] = self.p_cost.to_be_bytes();
        [m0, m1, m2, m3, t0, t1, t2, t3, p0, p1, p2, p3]
    }

    /// Decodes and validates (Argon2 must accept the parameters).
    pub fn from_bytes(bytes: &[u8; Self::ENCODED_LEN]) -> Option<Self> {
        let [m0, m1, m2, m3, t0, t1, t2, t3, p0, p1, p2, p3] = *bytes;
        let params = Self {
            m_cost: u32::from_be_bytes([m0, m1, m2, m3]),
            t_cost: u32::from_be_bytes([t0, t1, t2, t3]),
            p_cost: u32::from_be_bytes([p0, p1, p2, p3]),
        };
        params.is_valid().then_some(params)
    }

    fn to_argon2(self) -> Option<argon2::Params> {
        // argon2 0.5.3 computes `p_cost * 8` unchecked before it checks
        // `p_cost`'s upper bound, which panics (debug) or wraps (release) for
        // p_cost >= 2^29. Check its documented ranges first, with no
        // arithmetic that can overflow.
        if self.p_cost == 0 || self.p_cost > argon2::Params::MAX_P_COST {
            return None;
        }
        if u64::from(self.m_cost) < 8 * u64::from(self.p_cost) {
            return None;
        }
        argon2::Params::new(self.m_cost, self.t_cost, self.p_cost, None).ok()
    }
}

/// serde's view of [`StretchingParams`] before validation.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct UncheckedStretchingParams {
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
}

#[cfg(feature = "serde")]
impl TryFrom<UncheckedStretchingParams> for StretchingParams {
    type Error = &'static str;

    fn try_from(u: UncheckedStretchingParams) -> Result<Self, Self::Error> {
        let params = Self {
            m_cost: u.m_cost,
            t_cost: u.t_cost,
            p_cost: u.p_cost,
        };
        if params.is_valid() {
            Ok(params)
        } else {
            Err("invalid Argon2 parameters")
        }
    }
}

impl Default for StretchingParams {
    fn default() -> Self {
        Self::RFC9106_SECOND
    }
}

/// The key-stretching function: Argon2id v1.3 over the OPRF output with a
/// zero 16-byte salt, exactly as opaque-ke's own `Argon2` KSF computes it, but
/// with the parameters carried as data.
///
/// With the `parallel` feature the lanes of each slice run on rayon's
/// threads (argon2 0.6); the output is the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyStretching {
    params: StretchingParams,
}

impl KeyStretching {
    /// A KSF with these parameters.
    pub fn new(params: StretchingParams) -> Self {
        Self { params }
    }

    /// The parameters this KSF runs with.
    pub fn params(&self) -> StretchingParams {
        self.params
    }
}

impl opaque_ke::ksf::Ksf for KeyStretching {
    #[cfg(feature = "parallel")]
    fn hash<L: ArrayLength<u8>>(
        &self,
        input: GenericArray<u8, L>,
    ) -> Result<GenericArray<u8, L>, InternalError> {
        // The same Argon2id computation (RFC 9106 fixes the output for given
        // parameters; lanes are only a schedule), with the lanes of each
        // slice run on rayon's threads.
        use argon2_parallel as a;
        self.params.to_argon2().ok_or(InternalError::KsfError)?;
        let params = a::Params::new(
            self.params.m_cost,
            self.params.t_cost,
            self.params.p_cost,
            None,
        )
        .map_err(|_| InternalError::KsfError)?;
        let argon = a::Argon2::new(a::Algorithm::Argon2id, a::Version::V0x13, params);
        let mut output = GenericArray::default();
        argon
            .hash_password_into(&input, &[0; argon2::RECOMMENDED_SALT_LEN], &mut output)
            .map_err(|_| InternalError::KsfError)?;
        Ok(output)
    }

    #[cfg(not(feature = "parallel"))]
    fn hash<L: ArrayLength<u8>>(
        &self,
        input: GenericArray<u8, L>,
    ) -> Result<GenericArray<u8, L>, InternalError> {
        let params = self.params.to_argon2().ok_or(InternalError::KsfError)?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut output = GenericArray::default();
        argon
            .hash_password_into(&input, &[0; argon2::RECOMMENDED_SALT_LEN], &mut output)
            .map_err(|_| InternalError::KsfError)?;
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opaque_ke::ksf::Ksf;

    #[test]
    fn default_is_rfc9106_second_option() {
        assert_eq!(
            StretchingParams::default(),
            StretchingParams {
                m_cost: 65536,
                t_cost: 3,
                p_cost: 4
            }
        );
    }

    #[test]
    fn params_round_trip_and_reject_invalid() {
        let p = StretchingParams::RFC9106_SECOND;
        assert_eq!(StretchingParams::from_bytes(&p.to_bytes()), Some(p));
        // p = 0 lanes is not an Argon2 parameter set.
        let bad = StretchingParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 0,
        };
        assert_eq!(StretchingParams::from_bytes(&bad.to_bytes()), None);
        // Lanes so many that `8 * p` overflows a u32 (argon2 0.5.3 itself
        // would panic on this in a debug build).
        let bad = StretchingParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1 << 29,
        };
        assert_eq!(StretchingParams::from_bytes(&bad.to_bytes()), None);
        let bad = StretchingParams {
            m_cost: u32::MAX,
            t_cost: 1,
            p_cost: u32::MAX,
        };
        assert_eq!(StretchingParams::from_bytes(&bad.to_bytes()), None);
        // t = 0 passes neither.
        let bad = StretchingParams {
            m_cost: 64,
            t_cost: 0,
            p_cost: 1,
        };
        assert_eq!(StretchingParams::from_bytes(&bad.to_bytes()), None);
    }

    #[test]
    fn floor_and_ceiling() {
        let floor = StretchingParams::RFC9106_SECOND;
        assert!(StretchingParams::RFC9106_SECOND.meets_floor(&floor));
        assert!(!StretchingParams::INSECURE_TEST_ONLY.meets_floor(&floor));
        let weaker_passes = StretchingParams { t_cost: 2, ..floor };
        assert!(!weaker_passes.meets_floor(&floor));
        assert!(floor.within_ceiling(&StretchingParams::DEFAULT_CEILING));
        let huge = StretchingParams {
            m_cost: u32::MAX,
            ..floor
        };
        assert!(!huge.within_ceiling(&StretchingParams::DEFAULT_CEILING));
    }

    #[test]
    fn ksf_output_is_fixed_by_the_parameters() {
        // A known answer, computed with argon2 0.5 (one lane after another):
        // whichever implementation this build uses (with or without the
        // `parallel` feature) must reproduce it.
        let ksf = KeyStretching::new(StretchingParams {
            m_cost: 256,
            t_cost: 2,
            p_cost: 4,
        });
        let input = GenericArray::<u8, opaque_ke::generic_array::typenum::U64>::clone_from_slice(
            &[0x42; 64],
        );
        let sequential = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(256, 2, 4, None).unwrap(),
        );
        let mut expected = [0u8; 64];
        sequential
            .hash_password_into(&[0x42; 64], &[0; 16], &mut expected)
            .unwrap();
        assert_eq!(ksf.hash(input).unwrap().as_slice(), &expected);
    }

    #[test]
    fn ksf_matches_opaque_ke_argon2_configuration() {
        // Our KSF must compute exactly what opaque-ke's built-in Argon2 KSF
        // computes for the same parameters, so records stay interoperable.
        let params = StretchingParams {
            m_cost: 64,
            t_cost: 2,
            p_cost: 2,
        };
        let ours = KeyStretching::new(params);
        let theirs = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64, 2, 2, None).unwrap(),
        );
        let input = GenericArray::<u8, opaque_ke::generic_array::typenum::U64>::clone_from_slice(
            &[7u8; 64],
        );
        assert_eq!(ours.hash(input).unwrap(), theirs.hash(input).unwrap());
    }
}
