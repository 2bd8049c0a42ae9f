//! Fleet keys over the air for the command-line client and the nodes
//! (SPEC.md §17, §23): the two pinned keys and the namespace, and the
//! client's state file, where it remembers the newest epoch it accepted.
//!
//! The state file (`bkv-client-state/v2`, JSON) holds the namespace, each
//! fleet the client accepted (its realm, layout, fleet id, range of record
//! ids and the newest epoch accepted for it), and for each record it
//! registered the epoch of the fleet it registered with:
//!
//! ```json
//! {"format":"bkv-client-state/v2","namespace":"…",
//!  "fleets":[{"realm":"r","layout":1,"fleet_id":"g0",
//!             "first_record":"0000000000000000","last_record":"7fffffffffffffff",
//!             "epoch":2}],
//!  "records":{"<record id hex>":1}}
//! ```
//!
//! Registration of a record refuses a bundle older than the newest epoch
//! accepted for any fleet whose range holds the record's id (a rollback to
//! an earlier fleet for those ids; in a realm of one group every fleet
//! holds every id, so this is the newest epoch, as in v1); recovery
//! refuses one older than the epoch the record was registered at, so a
//! record on fleet 1 still recovers from fleet 1 after the client learned
//! fleet 2. A bundle whose range overlaps, without being equal to, the
//! range of an accepted fleet of the same realm and layout is refused
//! (`RangeOverlap`, SPEC.md §14.1). A v1 file is read as one floor over
//! every id and written back as v2. The file is replaced atomically
//! (written to `FILE.tmp`, synced, renamed) before the client relies on a
//! new epoch.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::{FleetKeyArtifact, TrustAnchors, DEFAULT_NAMESPACE};
use backup_key_vault::{BundleError, RecordId, RecordRange};
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
pub const STATE_FORMAT: &str = "bkv-client-state/v2";
/// The format before realms (revision 13 and earlier): read, never written.
const STATE_FORMAT_V1: &str = "bkv-client-state/v1";

/// What a client remembers between runs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    namespace: String,
    fleets: Vec<FleetFloor>,
    records: BTreeMap<String, u64>,
}

/// One accepted fleet: where it sits in its realm, and the newest epoch
/// accepted for it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct FleetFloor {
    realm: String,
    layout: u64,
    fleet_id: String,
    first_record: String,
    last_record: String,
    epoch: u64,
}

impl FleetFloor {
    fn range(&self) -> Option<RecordRange> {
        let prefix = |t: &str| parse_hex::<8>(t).map(u64::from_be_bytes);
        RecordRange::new(prefix(&self.first_record)?, prefix(&self.last_record)?)
    }

    fn same_fleet(&self, other: &FleetFloor) -> bool {
        (
            &self.realm,
            self.layout,
            &self.fleet_id,
            &self.first_record,
            &self.last_record,
        ) == (
            &other.realm,
            other.layout,
            &other.fleet_id,
            &other.first_record,
            &other.last_record,
        )
    }
}

/// The v1 file: one newest epoch for every id.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFileV1 {
    format: String,
    namespace: String,
    newest_epoch: Option<u64>,
    records: BTreeMap<String, u64>,
}

impl From<StateFileV1> for StateFile {
    fn from(v1: StateFileV1) -> Self {
        let fleets = v1
            .newest_epoch
            .map(|epoch| FleetFloor {
                realm: "bkv-client-state/v1".into(),
                layout: 0,
                fleet_id: "bkv-client-state/v1".into(),
                first_record: to_hex(&RecordRange::ALL.first.to_be_bytes()),
                last_record: to_hex(&RecordRange::ALL.last.to_be_bytes()),
                epoch,
            })
            .into_iter()
            .collect();
        let _ = v1.format;
        Self {
            format: STATE_FORMAT.into(),
            namespace: v1.namespace,
            fleets,
            records: v1.records,
        }
    }
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
                let v1 = serde_json::from_slice::<StateFileV1>(&bytes)
                    .ok()
                    .filter(|f| f.format == STATE_FORMAT_V1);
                let parsed = match v1 {
                    Some(v1) => Ok(StateFile::from(v1)),
                    None => serde_json::from_slice::<StateFile>(&bytes),
                };
                let file: StateFile = parsed.map_err(|e| {
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
                if let Some(bad) = file.fleets.iter().find(|f| f.range().is_none()) {
                    return Err(Failure::other(format!(
                        "{}: fleet {:?} has no valid range ({:?}-{:?}: 16 hex digits each, \
                         first not after last); restore the file from a backup rather than \
                         editing it",
                        path.display(),
                        bad.fleet_id,
                        bad.first_record,
                        bad.last_record
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
                fleets: Vec::new(),
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

    /// The epoch a bundle for registering `record` may not be older than:
    /// the newest epoch accepted for a fleet whose range holds the id.
    pub fn registration_floor(&self, record: &RecordId) -> Option<u64> {
        self.file
            .fleets
            .iter()
            .filter(|f| f.range().is_some_and(|r| r.contains(record)))
            .map(|f| f.epoch)
            .max()
    }

    /// The epoch a bundle for recovering `record` may not be older than:
    /// the epoch it was registered at, else the registration floor.
    pub fn floor_for(&self, record: &RecordId) -> Option<u64> {
        self.file
            .records
            .get(&to_hex(record.as_bytes()))
            .copied()
            .or_else(|| self.registration_floor(record))
    }

    /// Checks that `artifact`'s fleet can sit beside every fleet accepted
    /// so far: in one realm and layout, ranges are equal or disjoint
    /// ([`BundleError::RangeOverlap`], SPEC.md §14.1).
    pub fn check_realm(&self, artifact: &FleetKeyArtifact) -> Result<(), BundleError> {
        for f in &self.file.fleets {
            let Some(range) = f.range() else { continue };
            if f.realm == artifact.realm
                && f.layout == artifact.layout
                && range != artifact.records
                && range.overlaps(&artifact.records)
            {
                return Err(BundleError::RangeOverlap);
            }
        }
        Ok(())
    }

    /// Remembers an accepted fleet at its epoch (the newest stays the
    /// newest) and, after a registration, the record's epoch; writes the
    /// file.
    pub fn accept(
        &mut self,
        artifact: &FleetKeyArtifact,
        registered: Option<&RecordId>,
    ) -> Result<(), Failure> {
        let floor = FleetFloor {
            realm: artifact.realm.clone(),
            layout: artifact.layout,
            fleet_id: artifact.fleet_id.clone(),
            first_record: to_hex(&artifact.records.first.to_be_bytes()),
            last_record: to_hex(&artifact.records.last.to_be_bytes()),
            epoch: artifact.epoch,
        };
        merge_floor(&mut self.file.fleets, floor);
        if let Some(record) = registered {
            self.file
                .records
                .insert(to_hex(record.as_bytes()), artifact.epoch);
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
            for floor in current.file.fleets {
                merge_floor(&mut self.file.fleets, floor);
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

/// Adds `floor`, or raises the epoch of the same fleet already listed.
fn merge_floor(fleets: &mut Vec<FleetFloor>, floor: FleetFloor) {
    match fleets.iter_mut().find(|f| f.same_fleet(&floor)) {
        Some(f) => f.epoch = f.epoch.max(floor.epoch),
        None => fleets.push(floor),
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
        B::RangeOverlap => {
            "; its range overlaps the range of a fleet of the same realm and layout this client \
             accepted before (its --state file), so one record would have two fleets"
        }
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
    use backup_key_vault::fleet::TransportPublicKey;
    use backup_key_vault::FleetPublicKeys;

    /// The artifact of fleet `id` at `epoch`: alone in its realm (every
    /// id), or group `range` of realm `r` at `layout`.
    fn fleet(id: &str, epoch: u64, group: Option<(&str, u64, RecordRange)>) -> FleetKeyArtifact {
        let keys = FleetPublicKeys {
            key_exchange: [1; 32],
            transport: TransportPublicKey([2; 1216]),
        };
        let a = FleetKeyArtifact::for_fleet("ns", id, epoch, &keys, 0, 10);
        match group {
            Some((realm, layout, range)) => a.in_realm(realm, layout, range),
            None => a,
        }
    }

    #[test]
    fn the_state_remembers_the_newest_epoch_and_each_records_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (alice, bob) = (RecordId([1; 32]), RecordId([2; 32]));
        let mut state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(
            (state.registration_floor(&alice), state.floor_for(&alice)),
            (None, None)
        );
        state.accept(&fleet("f1", 1, None), Some(&alice)).unwrap();
        state.accept(&fleet("f2", 2, None), None).unwrap();
        // An older epoch accepted later (a recovery on fleet 1) does not
        // lower the newest.
        state.accept(&fleet("f1", 1, None), None).unwrap();
        let state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(state.registration_floor(&bob), Some(2));
        assert_eq!(state.floor_for(&alice), Some(1));
        assert_eq!(state.floor_for(&bob), Some(2));
        assert!(!dir
            .path()
            .join(format!("state.json.tmp.{}", std::process::id()))
            .exists());
    }

    /// SPEC.md §14.1, §17.1: in a realm, the registration floor of a
    /// record is the newest epoch of the fleets whose range holds its id,
    /// so group 0 at epoch 1 still takes new records after group 1 was
    /// accepted at epoch 2; a fleet overlapping another's range in the
    /// same realm and layout is refused; a newer fleet of the same range
    /// raises the floor of its ids only.
    #[test]
    fn realm_floors_are_per_range_and_overlaps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (low, high) = (RecordId([0x10; 32]), RecordId([0x90; 32]));
        let half = |g| RecordRange::split(g, 2).unwrap();
        let mut state = ClientState::open(&path, "ns").unwrap();
        state
            .accept(&fleet("g0", 1, Some(("r", 1, half(0)))), None)
            .unwrap();
        state
            .accept(&fleet("g1", 2, Some(("r", 1, half(1)))), Some(&high))
            .unwrap();
        let mut state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(state.registration_floor(&low), Some(1));
        assert_eq!(state.registration_floor(&high), Some(2));
        let overlapping = fleet(
            "g2",
            3,
            Some((
                "r",
                1,
                RecordRange::new(0x7000_0000_0000_0000, u64::MAX).unwrap(),
            )),
        );
        assert_eq!(
            state.check_realm(&overlapping),
            Err(BundleError::RangeOverlap)
        );
        // The same range at the same layout (a newer fleet of group 0),
        // another layout or another realm are accepted.
        let newer = fleet("g0b", 3, Some(("r", 1, half(0))));
        assert_eq!(state.check_realm(&newer), Ok(()));
        let moved = fleet(
            "g2",
            4,
            Some((
                "r",
                2,
                RecordRange::new(0x7000_0000_0000_0000, u64::MAX).unwrap(),
            )),
        );
        assert_eq!(state.check_realm(&moved), Ok(()));
        state.accept(&newer, None).unwrap();
        assert_eq!(state.registration_floor(&low), Some(3));
        assert_eq!(state.registration_floor(&high), Some(2));
        assert_eq!(state.floor_for(&high), Some(2));
    }

    /// A v1 file (one newest epoch) is read as a floor over every id and
    /// written back as v2.
    #[test]
    fn a_v1_state_keeps_its_floor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let alice = to_hex(&[1; 32]);
        std::fs::write(
            &path,
            format!(
                "{{\"format\":\"bkv-client-state/v1\",\"namespace\":\"ns\",\
                 \"newest_epoch\":5,\"records\":{{\"{alice}\":3}}}}"
            ),
        )
        .unwrap();
        let mut state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(state.registration_floor(&RecordId([0xff; 32])), Some(5));
        assert_eq!(state.floor_for(&RecordId([1; 32])), Some(3));
        state.accept(&fleet("f", 6, None), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(STATE_FORMAT), "{text}");
        let state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(state.registration_floor(&RecordId([0xff; 32])), Some(6));
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
            .accept(&fleet("f", 1, None), None)
            .unwrap();
        let mut first = ClientState::open(&path, "ns").unwrap();
        let mut second = ClientState::open(&path, "ns").unwrap();
        first.accept(&fleet("f", 2, None), Some(&alice)).unwrap();
        second.accept(&fleet("f", 1, None), Some(&bob)).unwrap();
        let state = ClientState::open(&path, "ns").unwrap();
        assert_eq!(state.registration_floor(&alice), Some(2));
        assert_eq!(state.floor_for(&alice), Some(2));
        assert_eq!(state.floor_for(&bob), Some(1));
    }

    #[test]
    fn a_state_of_another_namespace_or_form_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        ClientState::open(&path, "ns")
            .unwrap()
            .accept(&fleet("f", 3, None), None)
            .unwrap();
        let other = ClientState::open(&path, "other").unwrap_err();
        assert_eq!(other.exit, Exit::Usage);
        assert!(other.message.contains("remembers namespace \"ns\""));
        let text = std::fs::read_to_string(&path).unwrap();
        for bad in [
            text.replacen('{', "{\"extra\": 1,", 1),
            text.replace(STATE_FORMAT, "bkv-client-state/v9"),
            text.replace("\"ffffffffffffffff\"", "\"fffffffffffffffg\""),
            text[..text.len() / 2].to_string(),
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = ClientState::open(&path, "ns").unwrap_err();
            assert_eq!(e.exit, Exit::Other, "{}", e.message);
            assert!(e.message.contains("state.json"), "{}", e.message);
        }
    }
}
