//! HSM attestation (SPEC.md §32): an X.509 certificate chain from the HSM's
//! device key to its vendor's root, and a statement signed with that device
//! key.
//!
//! [`AttestationVerifier`] is the seam for vendor formats: it checks a
//! chain and a statement signature and returns the device it proved. The
//! claims in the statement (fleet keys, measurement, export policy) are then
//! checked the same way for every format by [`crate::verify`].
//! [`X509StatementVerifier`] is this project's format,
//! [`X509_STATEMENT_FORMAT`]: path validation by rustls' `webpki` (ECDSA
//! P-256 or Ed25519, validity at given times, basic constraints, key usage,
//! unknown critical extensions refused, the device certificate must carry
//! [`EKU_HSM_ATTESTATION`]), the HSM's identity read from the device
//! certificate's common name with RustCrypto's `x509-cert`.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::der;
use x509_cert::der::Decode as _;
use x509_cert::der::Encode as _;

use crate::evidence::{sha256, Attestation};

/// This project's attestation format: X.509 chain plus a JSON statement
/// signed by the device key.
pub const X509_STATEMENT_FORMAT: &str = "bkv-x509-statement/v1";

/// Extended key usage every device certificate must carry: "HSM
/// attestation", OID 1.3.6.1.4.1.32473.1.1, under the enterprise number
/// IANA reserves for documentation (RFC 5612): this simulated format's
/// placeholder, which a real vendor format replaces with the vendor's own.
/// These are the DER content bytes of the OID.
pub const EKU_HSM_ATTESTATION: &[u8] =
    &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x81, 0xfd, 0x59, 0x01, 0x01];

/// [`EKU_HSM_ATTESTATION`] as arcs.
pub const EKU_HSM_ATTESTATION_ARCS: [u64; 9] = [1, 3, 6, 1, 4, 1, 32473, 1, 1];

/// Statement signature algorithm names.
pub const ALG_ECDSA_P256_SHA256: &str = "ecdsa-p256-sha256";
/// Ed25519.
pub const ALG_ED25519: &str = "ed25519";

/// Why an attestation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestationError {
    /// No verifier for this format.
    UnknownFormat(String),
    /// A certificate could not be parsed.
    BadCertificate(String),
    /// The chain does not lead to the vendor root: some certificate is
    /// signed by a key the verifier does not trust.
    NotChainedToVendorRoot,
    /// A certificate of the chain has expired at the named time.
    CertificateExpired {
        /// Which time (the ceremony's, or the verification's).
        when: String,
    },
    /// A certificate of the chain is not yet valid at the named time.
    CertificateNotYetValid {
        /// Which time.
        when: String,
    },
    /// The chain is otherwise invalid (signature, constraints, usage).
    InvalidChain(String),
    /// The device certificate names another HSM.
    DeviceMismatch {
        /// The name in the certificate.
        certified: String,
    },
    /// The statement signature algorithm is not allowed.
    UnsupportedAlgorithm(String),
    /// The statement signature does not verify under the device key.
    BadStatementSignature,
}

impl fmt::Display for AttestationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownFormat(x) => write!(f, "unknown attestation format {x:?}"),
            Self::BadCertificate(x) => write!(f, "certificate does not parse: {x}"),
            Self::NotChainedToVendorRoot => f.write_str(
                "certificate chain does not lead to the vendor root (signed by another root or an unknown issuer)",
            ),
            Self::CertificateExpired { when } => {
                write!(f, "a certificate of the chain has expired ({when})")
            }
            Self::CertificateNotYetValid { when } => {
                write!(f, "a certificate of the chain is not yet valid ({when})")
            }
            Self::InvalidChain(x) => write!(f, "certificate chain is invalid: {x}"),
            Self::DeviceMismatch { certified } => {
                write!(f, "the device certificate is for {certified:?}")
            }
            Self::UnsupportedAlgorithm(x) => {
                write!(f, "statement signature algorithm {x:?} is not allowed")
            }
            Self::BadStatementSignature => {
                f.write_str("statement signature does not verify under the certified device key")
            }
        }
    }
}

impl std::error::Error for AttestationError {}

/// A device whose certificate chain verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDevice {
    /// The HSM's identity, from its certificate.
    pub device_id: String,
    /// SHA-256 of the device's public key (SubjectPublicKeyInfo, DER).
    pub key_fingerprint: [u8; 32],
    /// SHA-256 of the device certificate (DER).
    pub certificate_fingerprint: [u8; 32],
    certificate: Vec<u8>,
}

/// A named point in time, in milliseconds since the Unix epoch, at which
/// the chain must be valid.
#[derive(Clone, Copy, Debug)]
pub struct CheckTime<'a> {
    /// What the time is ("the ceremony time", "the verification time").
    pub name: &'a str,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// A vendor attestation format. Implement it to accept a real vendor's
/// attestation; register it with [`crate::verify::Verifier::with_attestation_verifier`].
pub trait AttestationVerifier {
    /// The `format` value this verifier reads.
    fn format(&self) -> &str;

    /// Checks the chain of `attestation` to the vendor root, valid at every
    /// one of `times`, and that it certifies the HSM the attestation names.
    fn verify_chain(
        &self,
        attestation: &Attestation,
        times: &[CheckTime<'_>],
    ) -> Result<VerifiedDevice, AttestationError>;

    /// Checks the statement's signature under the device key.
    fn verify_statement_signature(
        &self,
        device: &VerifiedDevice,
        attestation: &Attestation,
    ) -> Result<(), AttestationError>;
}

/// [`X509_STATEMENT_FORMAT`] against one pinned vendor root.
#[derive(Debug)]
pub struct X509StatementVerifier {
    root: CertificateDer<'static>,
}

const CHAIN_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] =
    &[webpki::ring::ECDSA_P256_SHA256, webpki::ring::ED25519];

impl X509StatementVerifier {
    /// A verifier pinned to the vendor root certificate (DER).
    pub fn new(root_der: Vec<u8>) -> Result<Self, AttestationError> {
        let root = CertificateDer::from(root_der);
        webpki::anchor_from_trusted_cert(&root)
            .map_err(|e| AttestationError::BadCertificate(format!("vendor root: {e}")))?;
        Ok(Self { root })
    }

    /// A verifier pinned to the first certificate of a PEM file.
    pub fn from_pem(pem: &[u8]) -> Result<Self, AttestationError> {
        use rustls_pki_types::pem::PemObject as _;
        let root = CertificateDer::from_pem_slice(pem)
            .map_err(|e| AttestationError::BadCertificate(format!("vendor root PEM: {e}")))?;
        Self::new(root.to_vec())
    }

    fn anchor(&self) -> Result<TrustAnchor<'_>, AttestationError> {
        webpki::anchor_from_trusted_cert(&self.root)
            .map_err(|e| AttestationError::BadCertificate(format!("vendor root: {e}")))
    }
}

fn unix_time(ms: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_millis(ms))
}

/// Reads the common name and the public key of a certificate.
fn subject_and_key(der: &[u8]) -> Result<(String, [u8; 32]), AttestationError> {
    let bad = |e: der::Error| AttestationError::BadCertificate(e.to_string());
    let cert = x509_cert::Certificate::from_der(der).map_err(bad)?;
    let tbs = &cert.tbs_certificate;
    let spki = tbs.subject_public_key_info.to_der().map_err(bad)?;
    let mut names = Vec::new();
    for rdn in tbs.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == der::oid::db::rfc4519::CN {
                let text = atv
                    .value
                    .decode_as::<der::asn1::Utf8StringRef<'_>>()
                    .map(|s| s.as_str().to_string())
                    .or_else(|_| {
                        atv.value
                            .decode_as::<der::asn1::PrintableStringRef<'_>>()
                            .map(|s| s.as_str().to_string())
                    })
                    .map_err(bad)?;
                names.push(text);
            }
        }
    }
    let eku_oid = der::oid::ObjectIdentifier::from_bytes(EKU_HSM_ATTESTATION)
        .map_err(|e| AttestationError::BadCertificate(e.to_string()))?;
    let has_eku = tbs.extensions.iter().flatten().any(|ext| {
        ext.extn_id == der::oid::db::rfc5280::ID_CE_EXT_KEY_USAGE
            && x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
                .is_ok_and(|eku| eku.0.contains(&eku_oid))
    });
    if !has_eku {
        return Err(AttestationError::InvalidChain(
            "the device certificate does not carry the HSM attestation extended key usage".into(),
        ));
    }
    match names.as_slice() {
        [one] => Ok((one.clone(), sha256(&spki))),
        _ => Err(AttestationError::BadCertificate(
            "the device certificate must have exactly one common name".into(),
        )),
    }
}

impl AttestationVerifier for X509StatementVerifier {
    fn format(&self) -> &str {
        X509_STATEMENT_FORMAT
    }

    fn verify_chain(
        &self,
        attestation: &Attestation,
        times: &[CheckTime<'_>],
    ) -> Result<VerifiedDevice, AttestationError> {
        if attestation.format != X509_STATEMENT_FORMAT {
            return Err(AttestationError::UnknownFormat(attestation.format.clone()));
        }
        let (leaf, rest) = attestation
            .chain
            .split_first()
            .ok_or_else(|| AttestationError::BadCertificate("empty chain".into()))?;
        let leaf_der = CertificateDer::from(leaf.0.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.0.as_slice()))
            .collect();
        let ee = EndEntityCert::try_from(&leaf_der)
            .map_err(|e| AttestationError::BadCertificate(e.to_string()))?;
        let anchors = [self.anchor()?];
        for time in times {
            let result = ee.verify_for_usage(
                CHAIN_ALGS,
                &anchors,
                &intermediates,
                unix_time(time.unix_ms),
                // Required on the device certificate (checked below);
                // CA certificates usually carry no EKU at all.
                KeyUsage::required_if_present(EKU_HSM_ATTESTATION),
                None,
                None,
            );
            match result {
                Ok(_) => {}
                Err(webpki::Error::UnknownIssuer) => {
                    return Err(AttestationError::NotChainedToVendorRoot)
                }
                Err(webpki::Error::CertExpired { not_after, .. }) => {
                    return Err(AttestationError::CertificateExpired {
                        when: format!(
                            "not after {} s since the Unix epoch, before {} at {} ms",
                            not_after.as_secs(),
                            time.name,
                            time.unix_ms
                        ),
                    })
                }
                Err(webpki::Error::CertNotValidYet { not_before, .. }) => {
                    return Err(AttestationError::CertificateNotYetValid {
                        when: format!(
                            "not before {} s since the Unix epoch, after {} at {} ms",
                            not_before.as_secs(),
                            time.name,
                            time.unix_ms
                        ),
                    })
                }
                Err(e) => return Err(AttestationError::InvalidChain(format!("{e:?}"))),
            }
        }
        let (device_id, key_fingerprint) = subject_and_key(&leaf.0)?;
        if device_id != attestation.hsm_id.as_str() {
            return Err(AttestationError::DeviceMismatch {
                certified: device_id,
            });
        }
        Ok(VerifiedDevice {
            device_id,
            key_fingerprint,
            certificate_fingerprint: sha256(&leaf.0),
            certificate: leaf.0.clone(),
        })
    }

    fn verify_statement_signature(
        &self,
        device: &VerifiedDevice,
        attestation: &Attestation,
    ) -> Result<(), AttestationError> {
        let alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm =
            match attestation.signature_algorithm.as_str() {
                ALG_ECDSA_P256_SHA256 => webpki::ring::ECDSA_P256_SHA256,
                ALG_ED25519 => webpki::ring::ED25519,
                other => return Err(AttestationError::UnsupportedAlgorithm(other.to_string())),
            };
        let leaf = CertificateDer::from(device.certificate.as_slice());
        let ee = EndEntityCert::try_from(&leaf)
            .map_err(|e| AttestationError::BadCertificate(e.to_string()))?;
        ee.verify_signature(
            alg,
            &attestation.statement.signed_message(),
            &attestation.signature.0,
        )
        .map_err(|_| AttestationError::BadStatementSignature)
    }
}
