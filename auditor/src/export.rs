//! The namespace export and the monitor that verifies it (SPEC.md §18.3).
//!
//! An [`Export`] is everything an auditor logged for one namespace: the
//! entries with their artifacts, signatures and counter-signatures, and the
//! signed checkpoint of every tree size. [`verify_namespace`] does what
//! Meta's `eb-verify-namespace` does for each epoch (digest, auditor
//! signature, counter-signature, the entry against the log) and more: it
//! checks that each checkpoint is consistent with the one before (so every
//! pair is: consistency is transitive), that the newest is consistent with
//! the one a previous run remembered ([`MonitorState`]), so the log never
//! forked or rewrote history between runs either, and lists the key changes
//! epoch by epoch.

use std::collections::BTreeMap;

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::ed25519::PinnedKey;
use backup_key_vault::bundle::log::entry;
use backup_key_vault::bundle::statement::verify_strict;
use backup_key_vault::bundle::{
    artifact_digest, Checkpoint, ConsistencyProof, FleetKeyArtifact, KeyRole, MerkleLog,
    SignatureMessage,
};
use serde::{Deserialize, Serialize};

use crate::LoggedEntry;

/// The export format's name.
pub const EXPORT_FORMAT: &str = "bkv-audit-export/v1";

/// A namespace's whole log, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The namespace (also the log's origin).
    pub namespace: String,
    /// The auditor's Ed25519 public key, hex.
    pub auditor_key: String,
    /// The registered root's epoch.
    pub root_epoch: u64,
    /// The registered root's digest, hex.
    pub root_digest: String,
    /// Every entry, oldest first.
    pub entries: Vec<ExportedEntry>,
    /// The signed checkpoint note of every tree size 1..=n, in order.
    pub checkpoints: Vec<String>,
}

/// One entry of an [`Export`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedEntry {
    /// The epoch.
    pub epoch: u64,
    /// The auditor's timestamp, ms.
    pub timestamp_ms: u64,
    /// SHA-256 of the artifact, hex.
    pub digest: String,
    /// The auditor's signature, hex.
    pub signature: String,
    /// The operator's key, hex, if counter-signed.
    pub operator_key: Option<String>,
    /// The counter-signature, hex, if counter-signed.
    pub counter_signature: Option<String>,
    /// The artifact's exact text.
    pub artifact: String,
}

impl Export {
    pub(crate) fn new(
        namespace: &str,
        auditor_key: &[u8; 32],
        root_epoch: u64,
        root_digest: &[u8; 32],
        entries: &[LoggedEntry],
        checkpoints: Vec<String>,
    ) -> Self {
        Self {
            format: EXPORT_FORMAT.into(),
            namespace: namespace.into(),
            auditor_key: to_hex(auditor_key),
            root_epoch,
            root_digest: to_hex(root_digest),
            entries: entries
                .iter()
                .map(|e| ExportedEntry {
                    epoch: e.epoch,
                    timestamp_ms: e.timestamp_ms,
                    digest: to_hex(&e.digest),
                    signature: to_hex(&e.signature),
                    operator_key: e.counter_signature.map(|c| to_hex(&c.operator_key)),
                    counter_signature: e.counter_signature.map(|c| to_hex(&c.signature)),
                    artifact: String::from_utf8_lossy(&e.artifact).into_owned(),
                })
                .collect(),
            checkpoints,
        }
    }
}

/// Lower-case or upper-case hex of exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Keys the monitor trusts. Empty lists mean "whatever the export
/// declares" (the signatures are still checked, under the declared keys).
#[derive(Clone, Debug, Default)]
pub struct Pins {
    /// Pinned auditor keys.
    pub auditor_keys: Vec<[u8; 32]>,
    /// Pinned operator counter-signing keys.
    pub operator_keys: Vec<[u8; 32]>,
}

/// A change of the fleet's keys from one epoch to the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum KeyChange {
    /// A key appeared.
    Added {
        /// Its role.
        role: String,
        /// The key, hex.
        key: String,
    },
    /// A key disappeared.
    Removed {
        /// Its role.
        role: String,
        /// The key, hex.
        key: String,
    },
    /// The same key with another role.
    RoleChanged {
        /// The key, hex.
        key: String,
        /// The old role.
        from: String,
        /// The new role.
        to: String,
    },
}

/// What the monitor found for one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EpochReport {
    /// The epoch.
    pub epoch: u64,
    /// The artifact's digest, hex.
    pub digest: String,
    /// The fleet id.
    pub fleet_id: String,
    /// Key changes against the previous epoch (all keys "added" for the
    /// first).
    pub changes: Vec<KeyChange>,
}

/// The state file's format name.
pub const STATE_FORMAT: &str = "bkv-monitor-state/v1";

/// What a monitor remembers between runs (SPEC.md §18.3): the newest
/// checkpoint it verified, and the keys it verified them under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorState {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// The namespace.
    pub namespace: String,
    /// The auditor key the checkpoint verified under, hex.
    pub auditor_key: String,
    /// Every operator key that counter-signed an epoch so far, hex, sorted.
    pub operator_keys: Vec<String>,
    /// The newest verified checkpoint's signed note.
    pub checkpoint: String,
}

/// A successful verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonitorReport {
    /// The namespace.
    pub namespace: String,
    /// The auditor key the log was verified under, hex.
    pub auditor_key: String,
    /// Number of entries.
    pub log_size: u64,
    /// Number of checkpoints verified.
    pub checkpoints: usize,
    /// Number of checkpoint pairs proven consistent: each with the one
    /// before it, and the newest with the remembered one.
    pub consistent_pairs: usize,
    /// The tree size of the checkpoint a previous run remembered, if one
    /// was given; the newest checkpoint was proven consistent with it.
    pub remembered_size: Option<u64>,
    /// Operator keys not seen by the previous run (all of them without a
    /// state), hex.
    pub new_operator_keys: Vec<String>,
    /// Each epoch's findings.
    pub epochs: Vec<EpochReport>,
}

/// A failed verification: where and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonitorFailure {
    /// The epoch concerned, when there is one.
    pub epoch: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for MonitorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.epoch {
            Some(e) => write!(f, "epoch {e}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

fn fail<T>(epoch: Option<u64>, reason: impl Into<String>) -> Result<T, MonitorFailure> {
    Err(MonitorFailure {
        epoch,
        reason: reason.into(),
    })
}

/// Where consistency proofs come from: the auditor (over HTTP), or computed
/// from the exported entries.
pub type ProofSource<'a> = dyn FnMut(u64, u64) -> Result<ConsistencyProof, String> + 'a;

/// Verifies a namespace export (SPEC.md §18.3), in this order: the auditor
/// key; every checkpoint's signature; consistency of each checkpoint with
/// the one before (proofs from `proofs`); then for each epoch: sequence and
/// root, digest, auditor signature, counter-signature, artifact, and the
/// entry against the log (each checkpoint's root recomputed from the
/// entries); finally the key changes.
pub fn verify_namespace(
    export: &Export,
    pins: &Pins,
    proofs: &mut ProofSource<'_>,
) -> Result<MonitorReport, MonitorFailure> {
    verify_namespace_with_state(export, pins, proofs, None).map(|(report, _)| report)
}

/// [`verify_namespace`], remembering between runs: with the `state` of a
/// previous run, the namespace and auditor key must be the same, and the
/// newest checkpoint must be consistent with the remembered one (a proof
/// from `proofs`), even if the export no longer holds it. Returns the
/// report and the state to keep for the next run (the newest checkpoint,
/// or the remembered one if the export has none newer).
pub fn verify_namespace_with_state(
    export: &Export,
    pins: &Pins,
    proofs: &mut ProofSource<'_>,
    state: Option<&MonitorState>,
) -> Result<(MonitorReport, MonitorState), MonitorFailure> {
    if export.format != EXPORT_FORMAT {
        return fail(None, format!("unknown export format {:?}", export.format));
    }
    let ns = export.namespace.as_str();
    let Some(auditor_key) = parse_hex::<32>(&export.auditor_key) else {
        return fail(None, "auditor key is not 32 bytes of hex");
    };
    if !pins.auditor_keys.is_empty() && !pins.auditor_keys.contains(&auditor_key) {
        return fail(None, "the log's auditor key is not pinned");
    }

    // What the previous run verified.
    let pinned = [PinnedKey::new(auditor_key)];
    let remembered = match state {
        None => None,
        Some(state) => {
            if state.format != STATE_FORMAT {
                return fail(None, format!("unknown state format {:?}", state.format));
            }
            if state.namespace != ns {
                return fail(None, "the state file is for another namespace");
            }
            if parse_hex::<32>(&state.auditor_key) != Some(auditor_key) {
                return fail(
                    None,
                    "the auditor key changed since the last run (the state file remembers another)",
                );
            }
            let cp = Checkpoint::verify_note(state.checkpoint.as_bytes(), ns, &pinned)
                .or_else(|e| fail(None, format!("remembered checkpoint: {e}")))?;
            Some(cp)
        }
    };

    // Checkpoints: signed by the auditor, for this log, sizes rising.
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for note in &export.checkpoints {
        let cp = Checkpoint::verify_note(note.as_bytes(), ns, &pinned)
            .or_else(|e| fail(None, format!("checkpoint: {e}")))?;
        if checkpoints
            .last()
            .is_some_and(|p| p.tree_size >= cp.tree_size)
        {
            return fail(None, "checkpoints out of order");
        }
        checkpoints.push(cp);
    }
    // Each checkpoint against the one before: the older tree is a prefix
    // of the newer. Consistency is transitive, so every pair is then
    // consistent; checking all pairs would cost the square of the log.
    let mut consistent_pairs = 0;
    let mut check = |old: &Checkpoint, new: &Checkpoint, what: &str| {
        let proof = proofs(old.tree_size, new.tree_size).or_else(|e| {
            fail(
                None,
                format!(
                    "no consistency proof from size {} to {}: {e}",
                    old.tree_size, new.tree_size
                ),
            )
        })?;
        if proof.verify(old, new).is_err() {
            return fail(
                None,
                format!(
                    "{what} of sizes {} and {} are not consistent: the log forked or rewrote history",
                    old.tree_size, new.tree_size
                ),
            );
        }
        consistent_pairs += 1;
        Ok(())
    };
    for pair in checkpoints.windows(2) {
        if let [old, new] = pair {
            check(old, new, "checkpoints")?;
        }
    }
    // The newest against the remembered one (last: a proof source that
    // grows its tree serves the consecutive pairs first).
    if let Some(old) = &remembered {
        match checkpoints.last() {
            Some(newest) if newest.tree_size >= old.tree_size => {
                check(old, newest, "the remembered checkpoint and the newest")?;
            }
            newest => {
                return fail(
                    None,
                    format!(
                        "the log shrank: the last run verified size {}, the newest checkpoint now is size {}",
                        old.tree_size,
                        newest.map_or(0, |c| c.tree_size)
                    ),
                );
            }
        }
    }

    // Each epoch.
    let mut operator_keys = std::collections::BTreeSet::new();
    let mut tree = MerkleLog::new();
    let mut previous: Option<FleetKeyArtifact> = None;
    let mut epochs = Vec::new();
    let mut next_checkpoint = checkpoints.iter().peekable();
    for (i, e) in export.entries.iter().enumerate() {
        let at = Some(e.epoch);
        let expected = match &previous {
            None => export.root_epoch,
            Some(p) => p.epoch.saturating_add(1),
        };
        if e.epoch != expected {
            return fail(at, format!("epochs must rise by one: expected {expected}"));
        }
        let Some(digest) = parse_hex::<32>(&e.digest) else {
            return fail(at, "digest is not 32 bytes of hex");
        };
        if i == 0 && to_hex(&digest) != export.root_digest.to_ascii_lowercase() {
            return fail(at, "first entry is not the registered root");
        }
        if artifact_digest(e.artifact.as_bytes()) != digest {
            return fail(at, "artifact's SHA-256 is not the logged digest");
        }
        let Some(signature) = parse_hex::<64>(&e.signature) else {
            return fail(at, "auditor signature is not 64 bytes of hex");
        };
        let statement = SignatureMessage {
            namespace: ns,
            timestamp_ms: e.timestamp_ms,
            epoch: e.epoch,
            digest,
        };
        if !verify_strict(&auditor_key, &statement.to_bytes(), &signature) {
            return fail(at, "auditor signature does not verify");
        }
        let (Some(operator), Some(counter)) = (&e.operator_key, &e.counter_signature) else {
            return fail(at, "operator counter-signature missing");
        };
        let (Some(operator), Some(counter)) = (parse_hex::<32>(operator), parse_hex::<64>(counter))
        else {
            return fail(at, "counter-signature is not hex of the right length");
        };
        if !pins.operator_keys.is_empty() && !pins.operator_keys.contains(&operator) {
            return fail(at, "operator key is not pinned");
        }
        if !verify_strict(&operator, &signature, &counter) {
            return fail(at, "operator counter-signature does not verify");
        }
        operator_keys.insert(to_hex(&operator));
        let artifact = FleetKeyArtifact::from_bytes(e.artifact.as_bytes())
            .or_else(|err| fail(at, format!("artifact: {err}")))?;
        if artifact.namespace != ns || artifact.epoch != e.epoch {
            return fail(at, "artifact names another namespace or epoch");
        }
        tree.push(entry(e.epoch, &digest));
        // The entry against the auditor's log: every checkpoint covering
        // this size must have exactly the root of the entries so far.
        while let Some(cp) = next_checkpoint.next_if(|cp| cp.tree_size <= tree.len()) {
            // The tree as it is (the usual case: one checkpoint per size)
            // needs no copy.
            let ours = if cp.tree_size == tree.len() {
                Some(tree.checkpoint(ns))
            } else {
                tree.prefix(cp.tree_size).map(|t| t.checkpoint(ns))
            };
            let ours = ours.map(|mut c| {
                c.extensions.clone_from(&cp.extensions);
                c
            });
            if ours.as_ref() != Some(cp) {
                let epoch = export
                    .entries
                    .get(
                        usize::try_from(cp.tree_size)
                            .unwrap_or(usize::MAX)
                            .saturating_sub(1),
                    )
                    .map(|e| e.epoch);
                return fail(
                    epoch,
                    format!(
                        "entry not in the auditor's log: the signed checkpoint of size {} has another root (an entry was rewritten)",
                        cp.tree_size
                    ),
                );
            }
        }
        epochs.push(EpochReport {
            epoch: e.epoch,
            digest: e.digest.to_ascii_lowercase(),
            fleet_id: artifact.fleet_id.clone(),
            changes: key_changes(previous.as_ref(), &artifact),
        });
        previous = Some(artifact);
    }
    if let Some(cp) = next_checkpoint.next() {
        return fail(
            None,
            format!(
                "checkpoint of size {} covers entries the export does not have",
                cp.tree_size
            ),
        );
    }
    let known: std::collections::BTreeSet<String> = state
        .map(|s| s.operator_keys.iter().cloned().collect())
        .unwrap_or_default();
    let new_operator_keys = operator_keys.difference(&known).cloned().collect();
    let newest_note = match (export.checkpoints.last(), state) {
        (Some(note), _) => note.clone(),
        (None, Some(s)) => s.checkpoint.clone(),
        (None, None) => String::new(),
    };
    let next_state = MonitorState {
        format: STATE_FORMAT.into(),
        namespace: ns.into(),
        auditor_key: to_hex(&auditor_key),
        operator_keys: operator_keys.union(&known).cloned().collect(),
        checkpoint: newest_note,
    };
    let report = MonitorReport {
        namespace: ns.into(),
        auditor_key: to_hex(&auditor_key),
        log_size: tree.len(),
        checkpoints: checkpoints.len(),
        consistent_pairs,
        remembered_size: remembered.map(|c| c.tree_size),
        new_operator_keys,
        epochs,
    };
    Ok((report, next_state))
}

/// Consistency proofs computed from the export's own entries (for a
/// monitor reading a file). The tree grows as the sizes asked for rise, so
/// proofs asked for in order of their newer size (consecutive pairs) cost
/// a logarithm each, not a copy of the tree.
pub fn proofs_from_entries(
    export: &Export,
) -> impl FnMut(u64, u64) -> Result<ConsistencyProof, String> {
    let mut entries = Vec::new();
    for e in &export.entries {
        if let Some(d) = parse_hex::<32>(&e.digest) {
            entries.push(entry(e.epoch, &d));
        }
    }
    let mut tree = MerkleLog::new();
    move |old, new| {
        let fewer = || "the export has fewer entries".to_string();
        let new_len = usize::try_from(new).map_err(|_| fewer())?;
        if new_len > entries.len() {
            return Err(fewer());
        }
        if new < tree.len() {
            return tree
                .prefix(new)
                .and_then(|t| t.prove_consistency(old))
                .ok_or_else(fewer);
        }
        let from = usize::try_from(tree.len()).map_err(|_| fewer())?;
        for e in entries.get(from..new_len).ok_or_else(fewer)? {
            tree.push(*e);
        }
        tree.prove_consistency(old).ok_or_else(fewer)
    }
}

fn key_changes(old: Option<&FleetKeyArtifact>, new: &FleetKeyArtifact) -> Vec<KeyChange> {
    let roles = |a: Option<&FleetKeyArtifact>| -> BTreeMap<Vec<u8>, KeyRole> {
        a.map(|a| {
            a.keys
                .iter()
                .map(|k| (k.public_key.clone(), k.role))
                .collect()
        })
        .unwrap_or_default()
    };
    let (before, after) = (roles(old), roles(Some(new)));
    let mut changes = Vec::new();
    for (key, role) in &after {
        match before.get(key) {
            None => changes.push(KeyChange::Added {
                role: role.name().into(),
                key: to_hex(key),
            }),
            Some(was) if was != role => changes.push(KeyChange::RoleChanged {
                key: to_hex(key),
                from: was.name().into(),
                to: role.name().into(),
            }),
            Some(_) => {}
        }
    }
    for (key, role) in &before {
        if !after.contains_key(key) {
            changes.push(KeyChange::Removed {
                role: role.name().into(),
                key: to_hex(key),
            });
        }
    }
    changes
}
