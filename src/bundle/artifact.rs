//! The fleet-key artifact: the published description of one fleet
//! (SPEC.md §14).
//!
//! An artifact is JSON so that people can read it, and it is identified by
//! the SHA-256 of its exact bytes. To make those bytes unique for a given
//! content, only the **canonical** encoding is accepted: the decoder parses
//! the JSON, rebuilds the canonical bytes from what it read, and refuses the
//! input unless the two are identical. So there is exactly one artifact (one
//! digest) per fleet description: no duplicate or unknown fields, no other
//! key order, spacing or number spelling.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::BundleError;
use crate::fleet::FleetPublicKeys;
use crate::types::RecordRange;

/// The namespace fleet keys are published under unless configured
/// otherwise.
pub const DEFAULT_NAMESPACE: &str = "backup-key-vault.fleet_keys.v1";
/// Longest accepted artifact, in bytes.
pub const MAX_ARTIFACT_LEN: usize = 16 * 1024;
/// Most keys one artifact lists.
pub const MAX_KEYS: usize = 16;
/// Longest namespace or fleet id, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Length of an artifact digest (SHA-256).
pub const DIGEST_LEN: usize = 32;

/// What a fleet key is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KeyRole {
    /// The OPAQUE-3DH key-exchange public key (ristretto255, compressed):
    /// what the vault's KE2 and registration response must name.
    OpaqueKeyExchange,
    /// The HPKE transport public key every client message is sealed to:
    /// X-Wing (ML-KEM-768 + X25519), 1216 bytes, role name
    /// `xwing_transport` (revision 11; the X25519 role `hpke_transport` is
    /// retired and refused as unknown).
    HpkeTransport,
}

impl KeyRole {
    /// Every role this version knows, in canonical order.
    pub const ALL: [KeyRole; 2] = [KeyRole::OpaqueKeyExchange, KeyRole::HpkeTransport];

    /// The role's name in the artifact.
    pub fn name(&self) -> &'static str {
        match self {
            Self::OpaqueKeyExchange => "opaque_key_exchange",
            Self::HpkeTransport => "xwing_transport",
        }
    }

    /// The length of this role's public keys: 32 for the key-exchange key,
    /// 1216 for the X-Wing transport key.
    pub fn key_len(&self) -> usize {
        match self {
            Self::OpaqueKeyExchange => 32,
            Self::HpkeTransport => crate::fleet::TRANSPORT_PUBLIC_KEY_LEN,
        }
    }

    /// The role with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One public key of the fleet, with its role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FleetKey {
    /// What the key is for.
    pub role: KeyRole,
    /// The public key, [`KeyRole::key_len`] bytes.
    pub public_key: Vec<u8>,
}

/// The published description of one fleet (SPEC.md §14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetKeyArtifact {
    /// The namespace the artifact is published under.
    pub namespace: String,
    /// The operator's name for the fleet.
    pub fleet_id: String,
    /// The realm the fleet is a group of (§14.1): the fleet's own id for
    /// a realm of one group.
    pub realm: String,
    /// The realm's layout: which assignment of ranges to groups this
    /// artifact belongs to. Ranges of one realm and layout never overlap;
    /// moving a range makes a new layout (§14.1).
    pub layout: u64,
    /// The record ids this fleet serves, and no other (§14.1).
    pub records: RecordRange,
    /// The epoch the artifact is logged at.
    pub epoch: u64,
    /// Start of validity, milliseconds since the Unix epoch (inclusive).
    pub not_before_ms: u64,
    /// End of validity, milliseconds since the Unix epoch (exclusive).
    pub not_after_ms: u64,
    /// The fleet's public keys, each with its role.
    pub keys: Vec<FleetKey>,
}

/// SHA-256 of an artifact's exact bytes: what the auditor signs and logs.
pub fn artifact_digest(artifact: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::digest(artifact).into()
}

/// Whether `name` may be a namespace or fleet id: 1 to [`MAX_NAME_LEN`]
/// bytes of `A-Z a-z 0-9 . _ - / :`. Such a name needs no JSON escaping and
/// is a valid signed-note key name (no spaces, no `+`).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b))
}

impl FleetKeyArtifact {
    /// The artifact describing `keys` (one key per role), for a realm of
    /// one group: realm = `fleet_id`, layout 1, every record id. See
    /// [`Self::in_realm`] for a group of a larger realm.
    pub fn for_fleet(
        namespace: &str,
        fleet_id: &str,
        epoch: u64,
        keys: &FleetPublicKeys,
        not_before_ms: u64,
        not_after_ms: u64,
    ) -> Self {
        Self {
            namespace: namespace.to_string(),
            fleet_id: fleet_id.to_string(),
            realm: fleet_id.to_string(),
            layout: 1,
            records: RecordRange::ALL,
            epoch,
            not_before_ms,
            not_after_ms,
            keys: alloc::vec![
                FleetKey {
                    role: KeyRole::OpaqueKeyExchange,
                    public_key: keys.key_exchange.to_vec(),
                },
                FleetKey {
                    role: KeyRole::HpkeTransport,
                    public_key: keys.transport.as_bytes().to_vec(),
                },
            ],
        }
    }

    /// The same artifact for the group of `realm` at `layout` that owns
    /// `records`.
    pub fn in_realm(mut self, realm: &str, layout: u64, records: RecordRange) -> Self {
        self.realm = realm.to_string();
        self.layout = layout;
        self.records = records;
        self
    }

    /// Checks the rules of §14 that do not depend on the encoding.
    fn validate(&self) -> Result<(), BundleError> {
        let bad = |what| Err(BundleError::ArtifactMalformed(what));
        if !is_valid_name(&self.namespace) {
            return bad("namespace");
        }
        if !is_valid_name(&self.fleet_id) {
            return bad("fleet_id");
        }
        if !is_valid_name(&self.realm) {
            return bad("realm");
        }
        if self.records.first > self.records.last {
            return bad("record range");
        }
        if self.not_before_ms >= self.not_after_ms {
            return bad("validity window");
        }
        if self.keys.is_empty() || self.keys.len() > MAX_KEYS {
            return bad("number of keys");
        }
        for (i, key) in self.keys.iter().enumerate() {
            if key.public_key.len() != key.role.key_len() {
                return bad("public_key");
            }
            let repeated = self
                .keys
                .iter()
                .take(i)
                .any(|k| k.public_key == key.public_key);
            if repeated {
                return bad("key listed twice");
            }
        }
        Ok(())
    }

    /// The canonical encoding (SPEC.md §14). Fails if the artifact breaks a
    /// rule of §14 (names, window, keys).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        self.validate()?;
        Ok(self.encode())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256 + self.keys.len() * 128);
        out.push_str("{\n");
        out.push_str("  \"namespace\": \"");
        out.push_str(&self.namespace);
        out.push_str("\",\n  \"fleet_id\": \"");
        out.push_str(&self.fleet_id);
        out.push_str("\",\n  \"realm\": \"");
        out.push_str(&self.realm);
        out.push_str("\",\n  \"layout\": ");
        push_u64(&mut out, self.layout);
        out.push_str(",\n  \"first_record\": \"");
        push_hex(&mut out, &self.records.first.to_be_bytes());
        out.push_str("\",\n  \"last_record\": \"");
        push_hex(&mut out, &self.records.last.to_be_bytes());
        out.push_str("\",\n  \"epoch\": ");
        push_u64(&mut out, self.epoch);
        out.push_str(",\n  \"not_before_ms\": ");
        push_u64(&mut out, self.not_before_ms);
        out.push_str(",\n  \"not_after_ms\": ");
        push_u64(&mut out, self.not_after_ms);
        out.push_str(",\n  \"keys\": [");
        for (i, key) in self.keys.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str("    {\n      \"role\": \"");
            out.push_str(key.role.name());
            out.push_str("\",\n      \"public_key\": \"");
            push_hex(&mut out, &key.public_key);
            out.push_str("\"\n    }");
        }
        out.push_str("\n  ]\n}\n");
        out.into_bytes()
    }

    /// Decodes an artifact: at most [`MAX_ARTIFACT_LEN`] bytes of JSON with
    /// exactly the fields of §14, valid values, and in canonical form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let bad = |what| BundleError::ArtifactMalformed(what);
        if bytes.len() > MAX_ARTIFACT_LEN {
            return Err(bad("too long"));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
        let object = value.as_object().ok_or(bad("not an object"))?;
        let string = |name| object.get(name).and_then(Value::as_str).ok_or(bad(name));
        let number = |name| object.get(name).and_then(Value::as_u64).ok_or(bad(name));
        let mut keys = Vec::new();
        let listed = object
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(bad("keys"))?;
        if listed.len() > MAX_KEYS {
            return Err(bad("number of keys"));
        }
        for entry in listed {
            let entry = entry.as_object().ok_or(bad("key entry"))?;
            let role = entry
                .get("role")
                .and_then(Value::as_str)
                .and_then(KeyRole::from_name)
                .ok_or(bad("role"))?;
            let public_key = entry
                .get("public_key")
                .and_then(Value::as_str)
                .and_then(|text| parse_hex(text, role.key_len()))
                .ok_or(bad("public_key"))?;
            keys.push(FleetKey { role, public_key });
        }
        let prefix = |name| {
            string(name)
                .ok()
                .and_then(|text| parse_hex(text, 8))
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(u64::from_be_bytes)
                .ok_or(bad(name))
        };
        let artifact = Self {
            namespace: string("namespace")?.to_string(),
            fleet_id: string("fleet_id")?.to_string(),
            realm: string("realm")?.to_string(),
            layout: number("layout")?,
            records: RecordRange {
                first: prefix("first_record")?,
                last: prefix("last_record")?,
            },
            epoch: number("epoch")?,
            not_before_ms: number("not_before_ms")?,
            not_after_ms: number("not_after_ms")?,
            keys,
        };
        artifact.validate()?;
        // Unknown or repeated fields, another order, spacing or spelling:
        // whatever the JSON said beyond the fields above changes the bytes.
        if artifact.encode() != bytes {
            return Err(bad("not in canonical form"));
        }
        Ok(artifact)
    }

    /// Whether this fleet owns `record_id`: [`BundleError::RecordNotOwned`]
    /// if its range does not hold it (§14.1, §17 step 16).
    pub fn check_record(&self, record_id: &crate::RecordId) -> Result<(), BundleError> {
        if self.records.contains(record_id) {
            Ok(())
        } else {
            Err(BundleError::RecordNotOwned {
                first: self.records.first,
                last: self.records.last,
            })
        }
    }

    /// Whether `self` and `other` can both be groups of one realm: two
    /// artifacts of the same namespace, realm and layout must name the
    /// same range (two fleets of one group, e.g. a newer fleet of it) or
    /// disjoint ranges; overlapping but different ranges are
    /// [`BundleError::RangeOverlap`] (§14.1). Artifacts of different
    /// realms or layouts never conflict.
    pub fn check_realm(&self, other: &FleetKeyArtifact) -> Result<(), BundleError> {
        let same_layout = self.namespace == other.namespace
            && self.realm == other.realm
            && self.layout == other.layout;
        if same_layout && self.records != other.records && self.records.overlaps(&other.records) {
            return Err(BundleError::RangeOverlap);
        }
        Ok(())
    }

    /// The one key listed for `role`; [`BundleError::MissingRole`] if none
    /// or several are.
    pub fn key(&self, role: KeyRole) -> Result<&[u8], BundleError> {
        let mut found = self.keys.iter().filter(|k| k.role == role);
        match (found.next(), found.next()) {
            (Some(key), None) => Ok(&key.public_key),
            _ => Err(BundleError::MissingRole(role)),
        }
    }

    /// The keys a client talks to the fleet with.
    pub fn fleet_public_keys(&self) -> Result<FleetPublicKeys, BundleError> {
        let key_exchange = self.key(KeyRole::OpaqueKeyExchange)?;
        let transport = self.key(KeyRole::HpkeTransport)?;
        Ok(FleetPublicKeys {
            key_exchange: key_exchange
                .try_into()
                .map_err(|_| BundleError::ArtifactMalformed("public_key"))?,
            transport: crate::fleet::TransportPublicKey::from_slice(transport)
                .ok_or(BundleError::ArtifactMalformed("public_key"))?,
        })
    }
}

fn push_u64(out: &mut String, value: u64) {
    use core::fmt::Write;
    let _ = write!(out, "{value}");
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            if let Some(&d) = DIGITS.get(usize::from(nibble)) {
                out.push(char::from(d));
            }
        }
    }
}

/// Lower-case hex of exactly `len` bytes.
fn parse_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() != 2 * len {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = alloc::vec![0u8; len];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (&hi, &lo) = (pair.first()?, pair.get(1)?);
        *byte = (value(hi)? << 4) | value(lo)?;
    }
    Some(out)
}

/// Lower-case hex of `bytes` (for display and tools).
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FleetKeyArtifact {
        FleetKeyArtifact::for_fleet(
            DEFAULT_NAMESPACE,
            "fleet-a",
            1,
            &FleetPublicKeys {
                key_exchange: [1; 32],
                transport: crate::fleet::TransportPublicKey([2; 1216]),
            },
            10,
            20,
        )
    }

    #[test]
    fn hex_is_lower_case_exact_and_round_trips() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(to_hex(&[]), "");
        assert_eq!(
            parse_hex("000fa5ff", 4),
            Some(alloc::vec![0x00, 0x0f, 0xa5, 0xff])
        );
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(parse_hex(&to_hex(&bytes), 256), Some(bytes));
        for bad in ["000FA5FF", "000fa5f", "000fa5fff", "000fa5fg", "000fa5f "] {
            assert_eq!(parse_hex(bad, 4), None, "{bad}");
        }
    }

    #[test]
    fn canonical_round_trip() {
        let a = sample();
        let bytes = a.to_bytes().unwrap();
        assert_eq!(FleetKeyArtifact::from_bytes(&bytes).unwrap(), a);
        let text = core::str::from_utf8(&bytes).unwrap();
        assert!(text.contains("\"role\": \"opaque_key_exchange\""));
        assert_eq!(
            a.fleet_public_keys().unwrap(),
            FleetPublicKeys {
                key_exchange: [1; 32],
                transport: crate::fleet::TransportPublicKey([2; 1216]),
            }
        );
    }

    #[test]
    fn non_canonical_and_invalid_are_refused() {
        let bytes = sample().to_bytes().unwrap();
        let text = core::str::from_utf8(&bytes).unwrap();
        let variants = [
            text.replace("\n", ""),
            text.replace("\"epoch\": 1", "\"epoch\": 1.0"),
            text.replace("\"epoch\": 1,", "\"epoch\": 1, \"epoch\": 1,"),
            text.replace("\"fleet_id\"", "\"extra\": 1,\n  \"fleet_id\""),
            text.replace("opaque_key_exchange", "signing"),
            text.replace("0101", "0G01"),
            text.replace("\"not_before_ms\": 10", "\"not_before_ms\": 20"),
            text.replace("fleet-a", "fleet a"),
        ];
        for v in variants {
            assert!(FleetKeyArtifact::from_bytes(v.as_bytes()).is_err(), "{v}");
        }
        assert!(FleetKeyArtifact::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(FleetKeyArtifact::from_bytes(b"").is_err());
        assert!(FleetKeyArtifact::from_bytes(&[0xff; 40]).is_err());
        let mut dup = sample();
        dup.keys[1].public_key = dup.keys[0].public_key.clone();
        assert!(dup.to_bytes().is_err());
        // A key of the wrong length for its role, and the retired X25519
        // transport role.
        let mut short = sample();
        short.keys[1].public_key.truncate(32);
        assert_eq!(
            short.to_bytes(),
            Err(BundleError::ArtifactMalformed("public_key"))
        );
        let retired = text.replace("xwing_transport", "hpke_transport");
        assert_eq!(
            FleetKeyArtifact::from_bytes(retired.as_bytes()),
            Err(BundleError::ArtifactMalformed("role"))
        );
    }

    /// SPEC.md §14, §17: one public key listed twice (under any roles) is
    /// a malformed artifact, refused at decoding; two different keys for
    /// one role decode, and a client refuses them at §17 step 15 with
    /// `MissingRole(role)`, as if the role had no key.
    #[test]
    fn a_key_twice_and_two_keys_for_one_role_are_typed() {
        let mut twice_keys = sample();
        twice_keys.keys[0].role = KeyRole::HpkeTransport;
        twice_keys.keys[0].public_key = twice_keys.keys[1].public_key.clone();
        let twice = twice_keys.encode();
        let twice = core::str::from_utf8(&twice).unwrap();
        assert_eq!(
            FleetKeyArtifact::from_bytes(twice.as_bytes()),
            Err(BundleError::ArtifactMalformed("key listed twice"))
        );
        let mut two = sample();
        two.keys.push(FleetKey {
            role: KeyRole::OpaqueKeyExchange,
            public_key: alloc::vec![3; 32],
        });
        let decoded = FleetKeyArtifact::from_bytes(&two.to_bytes().unwrap()).unwrap();
        assert_eq!(
            decoded.key(KeyRole::OpaqueKeyExchange),
            Err(BundleError::MissingRole(KeyRole::OpaqueKeyExchange))
        );
        assert_eq!(
            decoded.fleet_public_keys(),
            Err(BundleError::MissingRole(KeyRole::OpaqueKeyExchange))
        );
    }

    #[test]
    fn missing_role_is_typed() {
        let mut a = sample();
        a.keys.truncate(1);
        assert_eq!(
            a.fleet_public_keys(),
            Err(BundleError::MissingRole(KeyRole::HpkeTransport))
        );
    }
}
