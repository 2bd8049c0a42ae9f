//! The auditor of backup-key-vault fleet keys (SPEC.md §18).
//!
//! [`Auditor`] holds the auditor's Ed25519 key and one append-only log per
//! namespace. It enforces the public auditor's rules (plexi's): the first
//! epoch is the namespace's registered root, epochs then rise by exactly
//! one, digests are 32 bytes and never reused, no epoch is published twice.
//! For every accepted artifact it signs plexi's `SignatureMessage`, appends
//! the (epoch, digest) entry to an RFC 6962 Merkle tree, and signs a C2SP
//! checkpoint of the new tree (with `signed_note`). It serves inclusion
//! proofs (inside validation bundles) and consistency proofs between any two
//! checkpoints.
//!
//! Everything is stored in one `redb` database and committed in one ACID
//! transaction per publication before the answer is given, so a restart
//! loses nothing that was acknowledged. [`http`] exposes the auditor over
//! HTTP.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod export;
pub mod http;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use backup_key_vault::bundle::artifact::{is_valid_name, to_hex};
use backup_key_vault::bundle::log::{entry, note_key_id};
use backup_key_vault::bundle::statement::verify_strict;
use backup_key_vault::bundle::{
    artifact_digest, AuditorSigningKey, Checkpoint, ConsistencyProof, CounterSignature,
    FleetKeyArtifact, MerkleLog, SignatureMessage, ValidationBundle,
};
use backup_key_vault::{BundleError, OsRng};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use zeroize::Zeroizing;

pub use export::{Export, ExportedEntry};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
const ENTRIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("entries");
const CHECKPOINTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("checkpoints");

/// Why the auditor refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditorError {
    /// No such namespace.
    UnknownNamespace,
    /// The namespace is already registered.
    NamespaceExists,
    /// The name is not a valid namespace (SPEC.md §14).
    InvalidNamespace,
    /// The first publication is not the namespace's registered root.
    RootMismatch,
    /// The epoch skips ahead: epochs rise by exactly one.
    EpochSkipped {
        /// The only epoch that may be published next.
        expected: u64,
        /// The epoch offered.
        found: u64,
    },
    /// The epoch was already published; it can never be published again.
    EpochRepublished(u64),
    /// The digest was already logged in this namespace.
    DigestReused,
    /// The digest is not 32 bytes, or not SHA-256 of the artifact.
    BadDigest,
    /// The artifact is not a canonical fleet-key artifact for this
    /// namespace and epoch.
    BadArtifact(BundleError),
    /// No entry for this epoch.
    UnknownEpoch,
    /// A checkpoint size or consistency range that the log does not have.
    UnknownTreeSize,
    /// The counter-signature does not verify over the epoch's auditor
    /// signature.
    BadCounterSignature,
    /// The database failed; nothing was acknowledged.
    Storage(String),
    /// The data directory or `auditor.redb` (which holds the signing key)
    /// is open to other users; the text names the file and the fix.
    InsecurePermissions(String),
}

impl fmt::Display for AuditorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownNamespace => f.write_str("unknown namespace"),
            Self::NamespaceExists => f.write_str("namespace already registered"),
            Self::InvalidNamespace => f.write_str("invalid namespace name"),
            Self::RootMismatch => f.write_str("first epoch does not match the registered root"),
            Self::EpochSkipped { expected, found } => {
                write!(f, "epoch {found} skips ahead: the next epoch is {expected}")
            }
            Self::EpochRepublished(e) => write!(f, "epoch {e} was already published"),
            Self::DigestReused => f.write_str("digest already logged"),
            Self::BadDigest => f.write_str("digest is not SHA-256 of the artifact"),
            Self::BadArtifact(e) => write!(f, "bad artifact: {e}"),
            Self::UnknownEpoch => f.write_str("no entry for this epoch"),
            Self::UnknownTreeSize => f.write_str("no checkpoint of this size"),
            Self::BadCounterSignature => f.write_str("counter-signature does not verify"),
            Self::Storage(e) => write!(f, "storage failure: {e}"),
            Self::InsecurePermissions(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for AuditorError {}

fn storage(e: impl fmt::Display) -> AuditorError {
    AuditorError::Storage(e.to_string())
}

/// Makes `dir` (0700) and an empty `auditor.redb` (0600) if missing, and
/// checks the permissions of existing ones; returns the database's path.
fn private_database(dir: &Path) -> Result<std::path::PathBuf, AuditorError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| storage(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("auditor.redb");
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o7777)
                .map_err(|e| storage(format!("{}: {e}", p.display())))
        };
        let dir_mode = mode(dir)?;
        if dir_mode & 0o022 != 0 {
            return Err(AuditorError::InsecurePermissions(format!(
                "{d}: the auditor's data directory is writable by others (mode {dir_mode:04o}); \
                 run `chmod 700 {d}`",
                d = dir.display()
            )));
        }
        if path.exists() {
            let file_mode = mode(&path)?;
            if file_mode & 0o077 != 0 {
                return Err(AuditorError::InsecurePermissions(format!(
                    "{p}: the auditor's database holds its signing key and is accessible by \
                     others (mode {file_mode:04o}); run `chmod 600 {p}`",
                    p = path.display()
                )));
            }
        } else {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| storage(format!("cannot create {}: {e}", path.display())))?;
        }
    }
    Ok(path)
}

/// The file, in the data directory, that holds the signing key (hex of its
/// 32-byte seed, mode 0600). The database holds only its public key.
pub const KEY_FILE: &str = "auditor.key";

/// Reads the key file if it exists, refusing one its group or others may
/// access (as ssh does).
fn read_key_file(path: &Path) -> Result<Option<AuditorSigningKey>, AuditorError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(storage(format!("cannot read {}: {e}", path.display()))),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .map_err(|e| storage(format!("{}: {e}", path.display())))?;
        if mode & 0o077 != 0 {
            return Err(AuditorError::InsecurePermissions(format!(
                "{p}: the auditor's signing key is accessible by others (mode {mode:04o}); \
                 run `chmod 600 {p}`",
                p = path.display()
            )));
        }
    }
    let seed = Zeroizing::new(crate::export::parse_hex::<32>(text.trim()).ok_or_else(|| {
        storage(format!(
            "{}: not a signing key (want 64 hex digits)",
            path.display()
        ))
    })?);
    Ok(Some(AuditorSigningKey::from_bytes(&seed)))
}

/// Writes a new key file, mode 0600, durably (never replacing one).
fn write_key_file(path: &Path, key: &AuditorSigningKey) -> Result<(), AuditorError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| storage(format!("cannot create {}: {e}", path.display())))?;
    let hex = Zeroizing::new(to_hex(&key.to_bytes()[..]));
    file.write_all(hex.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| storage(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

/// One logged statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEntry {
    /// The epoch.
    pub epoch: u64,
    /// When the auditor signed, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// SHA-256 of the artifact.
    pub digest: [u8; 32],
    /// The auditor's signature over the statement.
    pub signature: [u8; 64],
    /// The operator's counter-signature, once the operator sent it.
    pub counter_signature: Option<CounterSignature>,
    /// The artifact.
    pub artifact: Vec<u8>,
}

impl LoggedEntry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(200 + self.artifact.len());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.signature);
        match &self.counter_signature {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&c.operator_key);
                out.extend_from_slice(&c.signature);
            }
        }
        out.extend_from_slice(&self.artifact);
        out
    }

    fn decode(epoch: u64, bytes: &[u8]) -> Result<Self, AuditorError> {
        let bad = || AuditorError::Storage("corrupt entry".into());
        let (ts, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
        let (digest, rest) = rest.split_first_chunk::<32>().ok_or_else(bad)?;
        let (signature, rest) = rest.split_first_chunk::<64>().ok_or_else(bad)?;
        let (flag, rest) = rest.split_first().ok_or_else(bad)?;
        let (counter_signature, artifact) = match flag {
            0 => (None, rest),
            1 => {
                let (key, rest) = rest.split_first_chunk::<32>().ok_or_else(bad)?;
                let (sig, rest) = rest.split_first_chunk::<64>().ok_or_else(bad)?;
                (
                    Some(CounterSignature {
                        operator_key: *key,
                        signature: *sig,
                    }),
                    rest,
                )
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            epoch,
            timestamp_ms: u64::from_be_bytes(*ts),
            digest: *digest,
            signature: *signature,
            counter_signature,
            artifact: artifact.to_vec(),
        })
    }
}

/// A namespace's registered root and its log.
struct NamespaceLog {
    root_epoch: u64,
    root_digest: [u8; 32],
    entries: Vec<LoggedEntry>,
    tree: MerkleLog,
}

/// A summary of one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The namespace.
    pub name: String,
    /// The first epoch.
    pub root_epoch: u64,
    /// The first epoch's digest.
    pub root_digest: [u8; 32],
    /// Number of entries.
    pub log_size: u64,
    /// The newest epoch, if any.
    pub latest_epoch: Option<u64>,
}

/// The auditor: key, rules, logs, durable storage.
pub struct Auditor {
    db: Database,
    key: AuditorSigningKey,
    logs: BTreeMap<String, NamespaceLog>,
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor")
            .field("key", &self.key)
            .field("namespaces", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// Opens (or creates) the auditor's database `auditor.redb` in `dir`.
    /// A new database gets a fresh signing key; an existing one keeps its
    /// key and every entry, and the Merkle trees are rebuilt from them.
    ///
    /// The database holds the signing key (SPEC.md §18.1): a new directory
    /// is made 0700 and a new database 0600, and an existing database that
    /// its group or others may access, or a directory they may write, is
    /// refused with [`AuditorError::InsecurePermissions`].
    pub fn open(dir: &Path) -> Result<Self, AuditorError> {
        let path = private_database(dir)?;
        let key_path = dir.join(KEY_FILE);
        let db = Database::create(&path).map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        let key = {
            let mut meta = txn.open_table(META).map_err(storage)?;
            // Before the key moved out: a database holding the key in clear.
            let legacy = meta
                .get("signing_key")
                .map_err(storage)?
                .map(|v| Zeroizing::new(v.value().to_vec()));
            let pinned = meta
                .get("public_key")
                .map_err(storage)?
                .map(|v| v.value().to_vec());
            let key = match (read_key_file(&key_path)?, legacy) {
                (Some(key), None) => key,
                (Some(key), Some(seed)) if key.to_bytes()[..] == seed[..] => key,
                (Some(_), Some(_)) => {
                    return Err(AuditorError::Storage(format!(
                        "{}: not the key {} holds; restore the right key file",
                        key_path.display(),
                        path.display()
                    )))
                }
                (None, Some(seed)) => {
                    let seed: &[u8; 32] = seed.as_slice().try_into().map_err(|_| {
                        AuditorError::Storage(format!("{}: corrupt signing key", path.display()))
                    })?;
                    let key = AuditorSigningKey::from_bytes(seed);
                    write_key_file(&key_path, &key)?;
                    key
                }
                (None, None) if pinned.is_some() => {
                    return Err(AuditorError::Storage(format!(
                        "{}: missing; the log in {} was signed with the key it held: restore it \
                         from your backup (a new key would not verify the log)",
                        key_path.display(),
                        path.display()
                    )))
                }
                (None, None) => {
                    let key = AuditorSigningKey::generate(&mut OsRng);
                    write_key_file(&key_path, &key)?;
                    key
                }
            };
            if pinned.as_deref().is_some_and(|p| p != key.public_key()) {
                return Err(AuditorError::Storage(format!(
                    "{}: not the key that signed the log in {}; restore the right key file",
                    key_path.display(),
                    path.display()
                )));
            }
            meta.insert("public_key", &key.public_key()[..])
                .map_err(storage)?;
            // The key lives in its own file only (SPEC.md §18.1).
            meta.remove("signing_key").map_err(storage)?;
            key
        };
        // Make sure every table exists, so reads never fail for want of one.
        txn.open_table(NAMESPACES).map_err(storage)?;
        txn.open_table(ENTRIES).map_err(storage)?;
        txn.open_table(CHECKPOINTS).map_err(storage)?;
        txn.commit().map_err(storage)?;

        let mut logs = BTreeMap::new();
        let read = db.begin_read().map_err(storage)?;
        let namespaces = read.open_table(NAMESPACES).map_err(storage)?;
        let entries = read.open_table(ENTRIES).map_err(storage)?;
        for item in namespaces.iter().map_err(storage)? {
            let (name, root) = item.map_err(storage)?;
            let name = name.value().to_string();
            let root = root.value();
            let (epoch, digest) = root
                .split_first_chunk::<8>()
                .and_then(|(e, d)| Some((u64::from_be_bytes(*e), <[u8; 32]>::try_from(d).ok()?)))
                .ok_or_else(|| AuditorError::Storage("corrupt namespace".into()))?;
            let mut log = NamespaceLog {
                root_epoch: epoch,
                root_digest: digest,
                entries: Vec::new(),
                tree: MerkleLog::new(),
            };
            for item in entries
                .range((name.as_str(), 0)..=(name.as_str(), u64::MAX))
                .map_err(storage)?
            {
                let (k, v) = item.map_err(storage)?;
                let logged = LoggedEntry::decode(k.value().1, v.value())?;
                log.tree.push(entry(logged.epoch, &logged.digest));
                log.entries.push(logged);
            }
            logs.insert(name, log);
        }
        drop((namespaces, entries, read));
        Ok(Self { db, key, logs })
    }

    /// The auditor's public key (clients and monitors pin it).
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// The namespaces, in order.
    pub fn namespaces(&self) -> Vec<NamespaceInfo> {
        self.logs
            .iter()
            .map(|(name, log)| NamespaceInfo {
                name: name.clone(),
                root_epoch: log.root_epoch,
                root_digest: log.root_digest,
                log_size: log.tree.len(),
                latest_epoch: log.entries.last().map(|e| e.epoch),
            })
            .collect()
    }

    /// One namespace's summary.
    pub fn namespace(&self, name: &str) -> Result<NamespaceInfo, AuditorError> {
        self.namespaces()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or(AuditorError::UnknownNamespace)
    }

    fn log(&self, name: &str) -> Result<&NamespaceLog, AuditorError> {
        self.logs.get(name).ok_or(AuditorError::UnknownNamespace)
    }

    /// Registers a namespace with its root: the first epoch and its digest.
    pub fn register_namespace(
        &mut self,
        name: &str,
        root_epoch: u64,
        root_digest: [u8; 32],
    ) -> Result<(), AuditorError> {
        if !is_valid_name(name) {
            return Err(AuditorError::InvalidNamespace);
        }
        if self.logs.contains_key(name) {
            return Err(AuditorError::NamespaceExists);
        }
        let mut root = root_epoch.to_be_bytes().to_vec();
        root.extend_from_slice(&root_digest);
        let txn = self.db.begin_write().map_err(storage)?;
        txn.open_table(NAMESPACES)
            .map_err(storage)?
            .insert(name, root.as_slice())
            .map_err(storage)?;
        txn.commit().map_err(storage)?;
        self.logs.insert(
            name.to_string(),
            NamespaceLog {
                root_epoch,
                root_digest,
                entries: Vec::new(),
                tree: MerkleLog::new(),
            },
        );
        Ok(())
    }

    /// Publishes `artifact` at `epoch` in namespace `name`, if the rules
    /// allow: signs the statement, appends the entry, signs the new
    /// checkpoint, commits all of it durably, and returns the bundle
    /// (without the operator's counter-signature). `digest`, if given, must
    /// be SHA-256 of the artifact.
    pub fn publish(
        &mut self,
        name: &str,
        epoch: u64,
        artifact: &[u8],
        digest: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<ValidationBundle, AuditorError> {
        let computed = artifact_digest(artifact);
        if let Some(given) = digest {
            if given != computed.as_slice() {
                return Err(AuditorError::BadDigest);
            }
        }
        let log = self.log(name)?;
        match log.entries.last() {
            None => {
                if epoch != log.root_epoch || computed != log.root_digest {
                    return Err(AuditorError::RootMismatch);
                }
            }
            Some(last) => {
                let next = last.epoch.saturating_add(1);
                if epoch <= last.epoch {
                    return Err(AuditorError::EpochRepublished(epoch));
                }
                if epoch != next {
                    return Err(AuditorError::EpochSkipped {
                        expected: next,
                        found: epoch,
                    });
                }
            }
        }
        if log.entries.iter().any(|e| e.digest == computed) {
            return Err(AuditorError::DigestReused);
        }
        let parsed = FleetKeyArtifact::from_bytes(artifact).map_err(AuditorError::BadArtifact)?;
        if parsed.namespace != name {
            return Err(AuditorError::BadArtifact(BundleError::WrongNamespace));
        }
        if parsed.epoch != epoch {
            return Err(AuditorError::BadArtifact(BundleError::EpochMismatch));
        }
        // Groups of one realm and layout own disjoint ranges (SPEC.md
        // §14.1): clients refuse an overlap, and so does the log, before it
        // signs anything. An earlier entry that no longer decodes (an
        // artifact version clients refuse) cannot be a group a client
        // accepts, so it cannot conflict.
        for earlier in &log.entries {
            if let Ok(earlier) = FleetKeyArtifact::from_bytes(&earlier.artifact) {
                parsed
                    .check_realm(&earlier)
                    .map_err(AuditorError::BadArtifact)?;
            }
        }

        let statement = SignatureMessage {
            namespace: name,
            timestamp_ms: now_ms,
            epoch,
            digest: computed,
        };
        let logged = LoggedEntry {
            epoch,
            timestamp_ms: now_ms,
            digest: computed,
            signature: self.key.sign_statement(&statement),
            counter_signature: None,
            artifact: artifact.to_vec(),
        };
        let mut tree = log.tree.clone();
        tree.push(entry(epoch, &computed));
        let note = self.sign_checkpoint(&tree.checkpoint(name))?;

        let txn = self.db.begin_write().map_err(storage)?;
        txn.open_table(ENTRIES)
            .map_err(storage)?
            .insert((name, epoch), logged.encode().as_slice())
            .map_err(storage)?;
        txn.open_table(CHECKPOINTS)
            .map_err(storage)?
            .insert((name, tree.len()), note.as_slice())
            .map_err(storage)?;
        txn.commit().map_err(storage)?;

        let log = self
            .logs
            .get_mut(name)
            .ok_or(AuditorError::UnknownNamespace)?;
        log.tree = tree;
        log.entries.push(logged);
        self.bundle(name, epoch)
    }

    /// Signs a checkpoint as a C2SP signed note, with `signed_note`.
    fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Vec<u8>, AuditorError> {
        let signer = NoteSigner {
            name: checkpoint.origin.clone(),
            key: &self.key,
        };
        let mut note = signed_note::Note::new(checkpoint.body().as_bytes(), &[])
            .map_err(|e| AuditorError::Storage(e.to_string()))?;
        note.add_sigs(&[&signer])
            .map_err(|e| AuditorError::Storage(e.to_string()))?;
        Ok(note.to_bytes())
    }

    /// Stores the operator's counter-signature of an epoch, after checking
    /// it verifies over that epoch's auditor signature.
    pub fn add_counter_signature(
        &mut self,
        name: &str,
        epoch: u64,
        counter: CounterSignature,
    ) -> Result<(), AuditorError> {
        let log = self.log(name)?;
        let index = log
            .entries
            .iter()
            .position(|e| e.epoch == epoch)
            .ok_or(AuditorError::UnknownEpoch)?;
        let mut logged = log
            .entries
            .get(index)
            .ok_or(AuditorError::UnknownEpoch)?
            .clone();
        if !verify_strict(&counter.operator_key, &logged.signature, &counter.signature) {
            return Err(AuditorError::BadCounterSignature);
        }
        logged.counter_signature = Some(counter);
        let txn = self.db.begin_write().map_err(storage)?;
        txn.open_table(ENTRIES)
            .map_err(storage)?
            .insert((name, epoch), logged.encode().as_slice())
            .map_err(storage)?;
        txn.commit().map_err(storage)?;
        if let Some(slot) = self
            .logs
            .get_mut(name)
            .and_then(|l| l.entries.get_mut(index))
        {
            *slot = logged;
        }
        Ok(())
    }

    /// Every entry of a namespace, oldest first.
    pub fn entries(&self, name: &str) -> Result<Vec<LoggedEntry>, AuditorError> {
        Ok(self.log(name)?.entries.clone())
    }

    /// The entry of one epoch.
    pub fn entry(&self, name: &str, epoch: u64) -> Result<LoggedEntry, AuditorError> {
        self.log(name)?
            .entries
            .iter()
            .find(|e| e.epoch == epoch)
            .cloned()
            .ok_or(AuditorError::UnknownEpoch)
    }

    /// The validation bundle of `epoch`, proven against the latest
    /// checkpoint, with the counter-signature if the operator sent it.
    pub fn bundle(&self, name: &str, epoch: u64) -> Result<ValidationBundle, AuditorError> {
        let log = self.log(name)?;
        let index = log
            .entries
            .iter()
            .position(|e| e.epoch == epoch)
            .ok_or(AuditorError::UnknownEpoch)?;
        let logged = log.entries.get(index).ok_or(AuditorError::UnknownEpoch)?;
        let inclusion = log
            .tree
            .prove_inclusion(index as u64)
            .ok_or(AuditorError::UnknownEpoch)?;
        Ok(ValidationBundle {
            namespace: name.to_string(),
            epoch,
            timestamp_ms: logged.timestamp_ms,
            digest: logged.digest,
            auditor_key: self.key.public_key(),
            auditor_signature: logged.signature,
            counter_signature: logged.counter_signature,
            artifact: logged.artifact.clone(),
            inclusion,
            checkpoint: self.checkpoint(name)?,
        })
    }

    /// The latest signed checkpoint note (an empty log's too).
    pub fn checkpoint(&self, name: &str) -> Result<Vec<u8>, AuditorError> {
        let log = self.log(name)?;
        self.checkpoint_at(name, log.tree.len())
    }

    /// The signed checkpoint note of the tree of `size` entries.
    pub fn checkpoint_at(&self, name: &str, size: u64) -> Result<Vec<u8>, AuditorError> {
        let log = self.log(name)?;
        if size > log.tree.len() {
            return Err(AuditorError::UnknownTreeSize);
        }
        if size == 0 {
            // The empty tree (root SHA-256("")), whatever the log holds
            // now: a checkpoint of size 0 names the tree of no entries.
            return self.sign_checkpoint(&MerkleLog::new().checkpoint(name));
        }
        let read = self.db.begin_read().map_err(storage)?;
        let table = read.open_table(CHECKPOINTS).map_err(storage)?;
        let note = table
            .get((name, size))
            .map_err(storage)?
            .ok_or(AuditorError::UnknownTreeSize)?;
        Ok(note.value().to_vec())
    }

    /// A consistency proof from the tree of `old` entries to the tree of
    /// `new` entries.
    pub fn consistency(
        &self,
        name: &str,
        old: u64,
        new: u64,
    ) -> Result<ConsistencyProof, AuditorError> {
        let log = self.log(name)?;
        if old > new || new > log.tree.len() {
            return Err(AuditorError::UnknownTreeSize);
        }
        log.tree
            .prefix(new)
            .and_then(|t| t.prove_consistency(old))
            .ok_or(AuditorError::UnknownTreeSize)
    }

    /// The whole namespace as an [`Export`]: what a monitor verifies.
    pub fn export(&self, name: &str) -> Result<Export, AuditorError> {
        let log = self.log(name)?;
        let mut checkpoints = Vec::new();
        for size in 1..=log.tree.len() {
            let note = self.checkpoint_at(name, size)?;
            checkpoints.push(String::from_utf8(note).map_err(storage)?);
        }
        Ok(Export::new(
            name,
            &self.key.public_key(),
            log.root_epoch,
            &log.root_digest,
            &log.entries,
            checkpoints,
        ))
    }

    /// The signed-note key id of this auditor's key for log `name`.
    pub fn note_key_id(&self, name: &str) -> [u8; 4] {
        note_key_id(name, &self.key.public_key())
    }

    /// Hex of the public key (for `/info`).
    pub fn public_key_hex(&self) -> String {
        to_hex(&self.key.public_key())
    }
}

/// `signed_note`'s signer over the auditor's key: key id per C2SP
/// (`SHA-256(name || "\n" || 0x01 || key)[..4]`), Ed25519 over the text.
struct NoteSigner<'a> {
    name: String,
    key: &'a AuditorSigningKey,
}

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        u32::from_be_bytes(note_key_id(&self.name, &self.key.public_key()))
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.key.sign_note_text(msg).to_vec())
    }
}
