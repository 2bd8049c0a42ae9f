//! Identifiers and secrets shared by the client and the vault.
//!
//! Every secret type here zeroizes itself on drop, prints as `[redacted]`
//! under `Debug`, and compares in constant time.

use alloc::vec::Vec;
use core::fmt;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a [`RecordId`] in bytes.
pub const RECORD_ID_LEN: usize = 32;
/// Length of a [`SessionId`] in bytes.
pub const SESSION_ID_LEN: usize = 16;
/// Length of a [`BackupKey`] in bytes.
pub const BACKUP_KEY_LEN: usize = 32;
/// Longest accepted recovery code, in bytes.
pub const MAX_RECOVERY_CODE_LEN: usize = 256;

/// Names one stored record. Chosen by the app (for example a hash of the
/// account identifier); not secret, sent in the clear so a relay can route.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RecordId(pub [u8; RECORD_ID_LEN]);

impl RecordId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; RECORD_ID_LEN] {
        &self.0
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The contiguous range of record ids one group of a realm owns (SPEC.md
/// §14.1): every id whose first 8 bytes, read as a big-endian `u64`, lie
/// in `first..=last`. Not secret: it is published in the group's
/// fleet-key artifact, and record ids travel in the clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordRange {
    /// The lowest prefix owned (inclusive).
    pub first: u64,
    /// The highest prefix owned (inclusive).
    pub last: u64,
}

impl RecordRange {
    /// Every record id: the range of a realm of one group.
    pub const ALL: RecordRange = RecordRange {
        first: 0,
        last: u64::MAX,
    };

    /// The range `first..=last`, or `None` if `first > last`.
    pub fn new(first: u64, last: u64) -> Option<Self> {
        (first <= last).then_some(Self { first, last })
    }

    /// The prefix ranges are ordered by: the id's first 8 bytes, big-endian.
    pub fn prefix(record_id: &RecordId) -> u64 {
        let [a, b, c, d, e, f, g, h, ..] = record_id.0;
        u64::from_be_bytes([a, b, c, d, e, f, g, h])
    }

    /// Whether the range holds `record_id`.
    pub fn contains(&self, record_id: &RecordId) -> bool {
        let p = Self::prefix(record_id);
        self.first <= p && p <= self.last
    }

    /// Whether the two ranges share an id.
    pub fn overlaps(&self, other: &RecordRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// The `i`-th of `n` ranges that split the id space into equal parts
    /// (the last part takes the remainder): `None` unless `i < n`. What
    /// `bkv fleet up --groups n` assigns.
    pub fn split(i: u64, n: u64) -> Option<Self> {
        if i >= n {
            return None;
        }
        let width = (u128::from(u64::MAX) + 1) / u128::from(n);
        let first = u64::try_from(width * u128::from(i)).ok()?;
        let last = if i + 1 == n {
            u64::MAX
        } else {
            u64::try_from(width * u128::from(i + 1) - 1).ok()?
        };
        Self::new(first, last)
    }
}

/// Names one pending vault session (a recovery or a registration). Made by
/// the vault from its randomness, so a relay cannot predict it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SessionId(pub [u8; SESSION_ID_LEN]);

impl SessionId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; SESSION_ID_LEN] {
        &self.0
    }

    pub(crate) fn random<R: rand_core::RngCore + rand_core::CryptoRng>(rng: &mut R) -> Self {
        let mut id = [0u8; SESSION_ID_LEN];
        rng.fill_bytes(&mut id);
        Self(id)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The short, human-held recovery code. Never leaves the client.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RecoveryCode(Vec<u8>);

impl RecoveryCode {
    /// Wraps a code. Fails if it is empty or longer than
    /// [`MAX_RECOVERY_CODE_LEN`] bytes. The app normalises it (case, spaces,
    /// Unicode) before calling this: the bytes are what is stretched.
    pub fn new(code: &[u8]) -> Result<Self, crate::ClientError> {
        if code.is_empty() || code.len() > MAX_RECOVERY_CODE_LEN {
            return Err(crate::ClientError::InvalidRecoveryCode);
        }
        Ok(Self(code.to_vec()))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

impl ConstantTimeEq for RecoveryCode {
    fn ct_eq(&self, other: &Self) -> Choice {
        // Lengths are not secret-dependent in a way worth hiding; contents are.
        self.0.ct_eq(&other.0)
    }
}

/// The 256-bit key that encrypts the chat backup. What the vault protects.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BackupKey([u8; BACKUP_KEY_LEN]);

impl BackupKey {
    /// A fresh random key.
    pub fn generate<R: rand_core::RngCore + rand_core::CryptoRng>(rng: &mut R) -> Self {
        let mut key = [0u8; BACKUP_KEY_LEN];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    /// Wraps key bytes the app already has.
    pub fn from_bytes(bytes: [u8; BACKUP_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key's bytes. Handle with care: copies are the caller's to zeroize.
    pub fn expose_secret(&self) -> &[u8; BACKUP_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupKey([redacted])")
    }
}

impl ConstantTimeEq for BackupKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for BackupKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for BackupKey {}

/// A 32-byte symmetric secret (derived keys, tokens). Zeroized on drop,
/// redacted in `Debug`, compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret32(pub(crate) [u8; 32]);

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl ConstantTimeEq for Secret32 {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    /// SPEC.md §14.1: a range holds exactly the ids whose 8-byte prefix
    /// lies in it, ends included; `split` tiles the space without gap or
    /// overlap.
    #[test]
    fn record_ranges_contain_by_prefix_and_split_tiles_the_space() {
        let id = |prefix: u64| {
            let mut b = [0xff; 32];
            b[..8].copy_from_slice(&prefix.to_be_bytes());
            RecordId(b)
        };
        let r = RecordRange::new(10, 20).unwrap();
        assert!(!r.contains(&id(9)) && r.contains(&id(10)) && r.contains(&id(20)));
        assert!(!r.contains(&id(21)));
        assert_eq!(RecordRange::new(21, 20), None);
        assert!(r.overlaps(&RecordRange::new(20, 30).unwrap()));
        assert!(!r.overlaps(&RecordRange::new(21, 30).unwrap()));
        assert!(RecordRange::ALL.contains(&id(0)) && RecordRange::ALL.contains(&id(u64::MAX)));
        for n in [1u64, 2, 3, 7] {
            let parts: Vec<_> = (0..n).map(|i| RecordRange::split(i, n).unwrap()).collect();
            assert_eq!(parts[0].first, 0);
            assert_eq!(parts[parts.len() - 1].last, u64::MAX);
            for w in parts.windows(2) {
                assert_eq!(w[0].last + 1, w[1].first);
            }
            assert_eq!(RecordRange::split(n, n), None);
        }
        assert_eq!(RecordRange::split(0, 1), Some(RecordRange::ALL));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let code = RecoveryCode::new(b"hunter2").unwrap();
        let key = BackupKey::from_bytes([0xAB; 32]);
        assert!(!format!("{code:?}").contains("hunter2"));
        let shown = format!("{key:?}");
        assert!(!shown.contains("ab") && !shown.contains("AB") && !shown.contains("171"));
        assert!(!format!("{:?}", Secret32([0xCD; 32])).contains("205"));
    }

    #[test]
    fn recovery_code_length_bounds() {
        assert!(RecoveryCode::new(b"").is_err());
        assert!(RecoveryCode::new(&[b'a'; MAX_RECOVERY_CODE_LEN]).is_ok());
        assert!(RecoveryCode::new(&[b'a'; MAX_RECOVERY_CODE_LEN + 1]).is_err());
    }

    #[test]
    fn backup_key_zeroizes() {
        let mut key = BackupKey::from_bytes([0x55; 32]);
        key.zeroize();
        assert_eq!(key.expose_secret(), &[0u8; 32]);
    }

    #[test]
    fn backup_key_equality() {
        assert_eq!(
            BackupKey::from_bytes([1; 32]),
            BackupKey::from_bytes([1; 32])
        );
        assert_ne!(
            BackupKey::from_bytes([1; 32]),
            BackupKey::from_bytes([2; 32])
        );
    }
}
