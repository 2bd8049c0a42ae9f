//! Fleet keys over the air for the command-line client and the nodes
//! (SPEC.md §17, §23): the two pinned keys and the namespace, and the
//! client's state file, where it remembers the newest epoch it accepted.
//!
//! The state file (`bkv-client-state/v1`, JSON) holds the namespace, the
//! newest epoch the client accepted, and for each record it registered the
//! epoch of the fleet it registered with:
//!
//! ```json
//! {"format":"bkv-client-state/v1","namespace":"…","newest_epoch":2,
//!  "records":{"<record id hex>":1}}
//! ```
//!
//! Registration refuses a bundle older than `newest_epoch` (a rollback to
//! an earlier fleet); recovery refuses one older than the epoch the record
//! was registered at (the newest epoch if the file does not know the
//! record), so a record on fleet 1 still recovers from fleet 1 after the
//! client learned fleet 2. The file is replaced atomically (written to
//! `FILE.tmp`, synced, renamed) before the client relies on a new epoch.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::{TrustAnchors, DEFAULT_NAMESPACE};
use backup_key_vault::RecordId;
use bkv_deploy::evidence::parse_hex;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::exit::{Exit, Failure};

/// The keys a client or a node pins, and the namespace.
#[derive(Args, Debug, Clone, Default)]
pub struct PinArgs {
    /// The auditor's Ed25519 public key (hex); repeat for several. With
    /// --operator-key: learn the fleet's keys from its validation bundle.
    #[arg(long = "auditor-key", value_name = "HEX")]
    pub auditor_keys: Vec<String>,
    /// The operator's counter-signing public key (hex); repeat for several.
    #[arg(long = "operator-key", value_name = "HEX")]
    pub operator_keys: Vec<String>,
    /// The namespace of the fleet keys.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// A 32-byte key in hex, or a usage error naming the option.
pub fn key32(text: &str, option: &str) -> Result<[u8; 32], Failure> {
    parse_hex::<32>(&text.trim().to_ascii_lowercase()).ok_or_else(|| {
        Failure::usage(format!(
            "{option} {text:?}: expected an Ed25519 public key, 64 hex digits"
        ))
    })
}

impl PinArgs {
    /// The anchors, if both kinds of key are given; `None` if neither; a
    /// usage error if only one kind is.
    pub fn anchors(&self) -> Result<Option<TrustAnchors>, Failure> {
        match (self.auditor_keys.is_empty(), self.operator_keys.is_empty()) {
            (true, true) => return Ok(None),
            (false, true) => {
                return Err(Failure::usage(
                    "--auditor-key needs --operator-key too: a bundle is trusted only when the \
                     auditor signed it and the operator counter-signed it",
                ))
            }
            (true, false) => {
                return Err(Failure::usage(
                    "--operator-key needs --auditor-key too: a bundle is trusted only when the \
                     auditor signed it and the operator counter-signed it",
                ))
            }
            (false, false) => {}
        }
        if !backup_key_vault::bundle::artifact::is_valid_name(&self.namespace) {
            return Err(Failure::usage(format!(
                "--namespace {:?}: use 1 to 128 characters of A-Z a-z 0-9 . _ - / :",
                self.namespace
            )));
        }
        let auditors = self
            .auditor_keys
            .iter()
            .map(|k| key32(k, "--auditor-key"))
            .collect::<Result<Vec<_>, _>>()?;
        let operators = self
            .operator_keys
            .iter()
            .map(|k| key32(k, "--operator-key"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(
            TrustAnchors::new(&auditors, &operators).with_namespace(&self.namespace),
        ))
    }
}

/// The name and version of the state file's format.
pub const STATE_FORMAT: &str = "bkv-client-state/v1";

/// What a client remembers between runs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    namespace: String,
    newest_epoch: Option<u64>,
    records: BTreeMap<String, u64>,
}

/// The client's memory: the newest epoch it accepted, and the epoch each
/// record it registered was registered at.
#[derive(Debug)]
pub struct ClientState {
    path: PathBuf,
    file: StateFile,
}

impl ClientState {
    /// Reads `path`, or starts empty if it does not exist. Refuses a file
    /// of another format or namespace.
    pub fn open(path: &Path, namespace: &str) -> Result<Self, Failure> {
        let file = match std::fs::read(path) {
            Ok(bytes) => {
                let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Failure::other(format!(
                        "{}: not a client state file ({e}); it is written by `bkv register` and \
                         `bkv recover` with --state: restore it from a backup rather than \
                         deleting it (a deleted file forgets the newest epoch)",
                        path.display()
                    ))
                })?;
                if file.format != STATE_FORMAT {
                    return Err(Failure::other(format!(
                        "{}: format {:?}, this client reads {STATE_FORMAT:?}",
                        path.display(),
                        file.format
                    )));
                }
                if file.namespace != namespace {
                    return Err(Failure::usage(format!(
                        "{}: remembers namespace {:?}, not --namespace {namespace:?}; use one \
                         state file per namespace",
                        path.display(),
                        file.namespace
                    )));
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile {
                format: STATE_FORMAT.into(),
                namespace: namespace.into(),
                newest_epoch: None,
                records: BTreeMap::new(),
            },
            Err(e) => {
                return Err(Failure::other(format!(
                    "cannot read the client state {}: {e}",
                    path.display()
                )))
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The newest epoch accepted so far.
    pub fn newest_epoch(&self) -> Option<u64> {
        self.file.newest_epoch
    }

    /// The epoch a bundle for recovering `record` may not be older than:
    /// the epoch it was registered at, else the newest epoch.
    pub fn floor_for(&self, record: &RecordId) -> Option<u64> {
        self.file
            .records
            .get(&to_hex(record.as_bytes()))
            .copied()
            .or(self.file.newest_epoch)
    }

    /// Remembers an accepted epoch (the newest stays the newest) and,
    /// after a registration, the record's epoch; writes the file.
    pub fn accept(&mut self, epoch: u64, registered: Option<&RecordId>) -> Result<(), Failure> {
        self.file.newest_epoch = Some(self.file.newest_epoch.map_or(epoch, |e| e.max(epoch)));
        if let Some(record) = registered {
            self.file.records.insert(to_hex(record.as_bytes()), epoch);
        }
        self.save()
    }

    /// Writes the file, merged with what is on disk now: under an
    /// exclusive lock on `FILE.lock`, the file is read again and every
    /// epoch kept at the larger of the two values, so two clients running
    /// at once can only raise what is remembered, never lower it. The new
    /// contents go to a temporary file of this process, synced, renamed
    /// over the file, and the directory synced, so a crash leaves the old
    /// file or the new one.
    fn save(&mut self) -> Result<(), Failure> {
        let path = self.path.clone();
        let fail = |e: std::io::Error| {
            Failure::other(format!(
                "cannot write the client state {}: {e}; check that its directory is writable                  by this user, then run the command again",
                path.display()
            ))
        };
        let sibling = |suffix: &str| {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            PathBuf::from(p)
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(sibling(".lock"))
            .map_err(fail)?;
        lock.lock().map_err(fail)?;
        if let Ok(current) = Self::open(&path, &self.file.namespace) {
            if let Some(e) = current.file.newest_epoch {
                self.file.newest_epoch = Some(self.file.newest_epoch.map_or(e, |n| n.max(e)));
            }
            for (record, e) in current.file.records {
                let kept = self.file.records.entry(record).or_insert(e);
                *kept = (*kept).max(e);
            }
        }
        let json = serde_json::to_vec_pretty(&self.file)
            .map_err(|e| Failure::other(format!("client state: {e}")))?;
        let tmp = sibling(&format!(".tmp.{}", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp).map_err(fail)?;
            f.write_all(&json).map_err(fail)?;
            f.write_all(b"\n").map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, &path).map_err(fail)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)?;
        Ok(())
    }
}

/// A bundle that did not verify, as the user sees it: what failed, and
/// exit 6.
pub fn bundle_refused(from: &str, e: &backup_key_vault::BundleError, consequence: &str) -> Failure {
    use backup_key_vault::BundleError as B;
    let hint = match e {
        B::UnknownAuditorKey => {
            "; it was signed by an auditor this client does not pin (--auditor-key)"
        }
        B::UnknownOperatorKey => {
            "; it was counter-signed by an operator key this client does not pin (--operator-key)"
        }
        B::Rollback { .. } => {
            "; the client has already accepted a newer fleet (its --state file), so it refuses \
             to go back"
        }
        B::WrongNamespace | B::CheckpointOriginMismatch => "; check --namespace",
        B::RecordNotOwned { .. } => {
            "; the node belongs to a group of the realm that does not own this record id \
             (SPEC.md §14.1): give the realm's directory with --fleet DIR, which routes by id, \
             instead of --endpoint"
        }
        _ => "",
    };
    Failure::new(
        Exit::Verification,
        format!("the validation bundle from {from} does not verify: {e}{hint}; {consequence}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_remembers_the_newest_epoch_and_each_records_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (alice, bob) = (RecordId([1; 32]), RecordId([2; 32]));
        let mut state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(
            (state.newest_epoch(), state.floor_for(&alice)),
            (None, None)
        );
        state.accept(1, Some(&alice)).unwrap();
        state.accept(2, None).unwrap();
        // An older epoch accepted later (a recovery on fleet 1) does not
        // lower the newest.
        state.accept(1, None).unwrap();
        let state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(state.newest_epoch(), Some(2));
        assert_eq!(state.floor_for(&alice), Some(1));
        assert_eq!(state.floor_for(&bob), Some(2));
        assert!(!dir
            .path()
            .join(format!("state.json.tmp.{}", std::process::id()))
            .exists());
    }

    /// Two clients that opened the same file before either wrote: the one
    /// that writes last, having seen only epoch 1, does not lower the
    /// newest epoch the other wrote, nor forget its record.
    #[test]
    fn concurrent_clients_only_raise_what_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (alice, bob) = (RecordId([1; 32]), RecordId([2; 32]));
        ClientState::open(&path, "ns")
            .unwrap()
            .accept(1, None)
            .unwrap();
        let mut first = ClientState::open(&path, "ns").unwrap();
        let mut second = ClientState::open(&path, "ns").unwrap();
        first.accept(2, Some(&alice)).unwrap();
        second.accept(1, Some(&bob)).unwrap();
        let state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(state.newest_epoch(), Some(2));
        assert_eq!(state.floor_for(&alice), Some(2));
        assert_eq!(state.floor_for(&bob), Some(1));
    }

    #[test]
    fn a_state_of_another_namespace_or_form_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        ClientState::open(&path, "ns")
            .unwrap()
            .accept(3, None)
            .unwrap();
        let other = ClientState::open(&path, "other").unwrap_err();
        assert_eq!(other.exit, Exit::Usage);
        assert!(other.message.contains("remembers namespace \"ns\""));
        let text = std::fs::read_to_string(&path).unwrap();
        for bad in [
            text.replacen('{', "{\"extra\": 1,", 1),
            text.replace(STATE_FORMAT, "bkv-client-state/v9"),
            text[..text.len() / 2].to_string(),
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = ClientState::open(&path, "ns").unwrap_err();
            assert_eq!(e.exit, Exit::Other, "{}", e.message);
            assert!(e.message.contains("state.json"), "{}", e.message);
        }
    }
}
