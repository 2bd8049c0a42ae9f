//! Deployment evidence (SPEC.md §33–§34): decoding and the whole
//! verification, on the fuzzer's bytes.
//!
//! The verifier pins the vendor root of a real ceremony (`data/`, made by
//! `bkv fleet ceremony`, whose `evidence.json` is also the first seed) and
//! the time just after it. The oracle:
//!
//! * decoding never panics, and what decodes re-encodes to a file that
//!   decodes to the same evidence;
//! * verification never panics and reports every step;
//! * only the ceremony's own evidence passes: whatever passes is, decoded,
//!   exactly that evidence (a file may still differ in JSON whitespace or
//!   key order, which carry no meaning).

use std::sync::OnceLock;

use bkv_deploy::{Evidence, StepId, Verifier, X509StatementVerifier};

/// The vendor root the ceremony's HSMs chain to.
const VENDOR_ROOT: &[u8] = include_bytes!("../data/vendor-root.pem");
/// The ceremony's evidence.
const GENUINE: &[u8] = include_bytes!("../data/evidence.json");
/// One hour after the ceremony (its `time_ms`), in ms since the epoch.
const NOW_MS: u64 = 1_795_952_968_823 + 3_600_000;

/// The pinned verifier (made afresh each time: `Verifier` is not `Sync`,
/// and reading one small certificate is cheap).
fn verifier() -> Verifier {
    let root = X509StatementVerifier::from_pem(VENDOR_ROOT).expect("the committed vendor root");
    Verifier::new(root, NOW_MS)
}

fn genuine() -> &'static Vec<u8> {
    static GENUINE_JSON: OnceLock<Vec<u8>> = OnceLock::new();
    GENUINE_JSON.get_or_init(|| {
        let evidence = Evidence::from_json(GENUINE).expect("the committed evidence decodes");
        let report = verifier().verify(&evidence, None);
        assert!(
            report.passed(),
            "the committed evidence verifies: {}",
            report.to_text()
        );
        evidence.to_json()
    })
}

/// The target.
pub fn fuzz(data: &[u8]) {
    check(data);
}

/// The target's checks; whether `data` passed verification.
pub fn check(data: &[u8]) -> bool {
    let genuine = genuine();
    let decoded = Evidence::from_json(data);
    if let Ok(evidence) = &decoded {
        let again = evidence.to_json();
        let redecoded = Evidence::from_json(&again).expect("re-encoded evidence decodes");
        assert_eq!(redecoded.to_json(), again, "evidence round trip");
    }
    let report = verifier().verify_bytes(data, None);
    let _ = report.to_text();
    if report.passed() {
        assert_eq!(report.steps.len(), StepId::ALL.len(), "every step reported");
        let evidence = decoded.expect("evidence that passes decodes");
        assert_eq!(
            &evidence.to_json(),
            genuine,
            "evidence other than the ceremony's passed verification"
        );
        true
    } else {
        assert!(report.first_failure().is_some() || decoded.is_err());
        false
    }
}
