//! Byte layouts of what the fleet replicates and exchanges (SPEC.md §20.3,
//! §21.2, §22): the batch a Raft entry carries, the record-table snapshot,
//! and the plaintext of a message between members.

use backup_key_vault::vault::{Command, RecordSlot, RecordTable};
use backup_key_vault::RecordId;

use crate::error::FleetError;

/// Version byte of a batch entry.
pub const BATCH_VERSION: u8 = 1;
/// Version byte of a snapshot.
pub const SNAPSHOT_VERSION: u8 = 1;
/// Most commands in one entry.
pub const MAX_BATCH: usize = 4096;

/// Names one proposal: the proposing node's boot nonce (fresh per start, so
/// ids never repeat across restarts or rolled-back disks) and a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    /// The proposer's boot nonce.
    pub boot: [u8; 16],
    /// The proposer's counter in that boot.
    pub seq: u64,
}

/// Encodes a batch: `version || u16be(count) || (boot(16) || u64be(seq) ||
/// u16be(len) || command)*`.
pub fn encode_batch(batch: &[(ProposalId, Command)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + batch.len() * 80);
    out.push(BATCH_VERSION);
    out.extend_from_slice(&(batch.len() as u16).to_be_bytes());
    for (id, command) in batch {
        let bytes = command.to_bytes();
        out.extend_from_slice(&id.boot);
        out.extend_from_slice(&id.seq.to_be_bytes());
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// A cursor over bytes that never panics.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FleetError> {
        let (head, tail) = self
            .0
            .split_at_checked(n)
            .ok_or(FleetError::Malformed("truncated"))?;
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FleetError> {
        self.take(N)?
            .try_into()
            .map_err(|_| FleetError::Malformed("truncated"))
    }
    fn u8(&mut self) -> Result<u8, FleetError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FleetError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FleetError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FleetError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn finish(&self) -> Result<(), FleetError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FleetError::Malformed("trailing bytes"))
        }
    }
}

/// Decodes a batch. Each command is decoded strictly (SPEC.md §8.2).
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<(ProposalId, Command)>, FleetError> {
    let mut r = Reader(bytes);
    if r.u8()? != BATCH_VERSION {
        return Err(FleetError::Malformed("batch version"));
    }
    let count = usize::from(r.u16()?);
    if count == 0 || count > MAX_BATCH {
        return Err(FleetError::Malformed("batch size"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let boot = r.array::<16>()?;
        let seq = r.u64()?;
        let len = usize::from(r.u16()?);
        let command =
            Command::from_bytes(r.take(len)?).map_err(|_| FleetError::Malformed("command"))?;
        out.push((ProposalId { boot, seq }, command));
    }
    r.finish()?;
    Ok(out)
}

/// Encodes the record table for a Raft snapshot: `version || u32be(count) ||
/// (record_id(32) || u16be(len) || RecordSlot::to_bytes)*`, in id order.
pub fn encode_table(table: &RecordTable) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + table.len() * 330);
    out.push(SNAPSHOT_VERSION);
    out.extend_from_slice(&(table.len() as u32).to_be_bytes());
    for (id, slot) in table.iter() {
        let bytes = slot.to_bytes();
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Decodes a snapshot's record table.
pub fn decode_table(bytes: &[u8]) -> Result<RecordTable, FleetError> {
    let mut r = Reader(bytes);
    if r.u8()? != SNAPSHOT_VERSION {
        return Err(FleetError::Malformed("snapshot version"));
    }
    let count = r.u32()?;
    let mut table = RecordTable::new();
    for _ in 0..count {
        let id = RecordId(r.array::<32>()?);
        let len = usize::from(r.u16()?);
        let slot =
            RecordSlot::from_bytes(r.take(len)?).map_err(|_| FleetError::Malformed("slot"))?;
        table.restore(id, slot);
    }
    r.finish()?;
    Ok(table)
}

/// What one member says to another (inside the authenticated envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMessage {
    /// A Raft message (protobuf, raft-rs's `eraftpb.Message`).
    Raft(Vec<u8>),
    /// Carries nothing: sent to a node whose message arrived stale, so that
    /// the envelope shows it the incarnation it already used (§21.3).
    Nudge,
    /// A restarted node asks where the others' logs stand (SPEC.md §22.3).
    Probe {
        /// The round this probe belongs to.
        round: u64,
        /// Fresh from the prober's RNG for this round: the answer must echo
        /// it, which binds the answer to the prober's current boot.
        nonce: [u8; 16],
    },
    /// The answer: the last term and index of the answering node's log.
    ProbeAnswer {
        /// The round answered.
        round: u64,
        /// The probe's nonce, echoed.
        nonce: [u8; 16],
        /// The term of the answering node's last log entry.
        last_term: u64,
        /// The index of the answering node's last log entry.
        last_index: u64,
    },
}

impl PeerMessage {
    /// `kind(1) || body`: 1 Raft (protobuf), 2 Probe (u64be round, nonce
    /// (16)), 3 ProbeAnswer (u64be round, nonce (16), u64be last term, u64be
    /// last index), 4 Nudge (empty).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Raft(bytes) => {
                let mut out = Vec::with_capacity(1 + bytes.len());
                out.push(1);
                out.extend_from_slice(bytes);
                out
            }
            Self::Nudge => vec![4],
            Self::Probe { round, nonce } => {
                let mut out = vec![2];
                out.extend_from_slice(&round.to_be_bytes());
                out.extend_from_slice(nonce);
                out
            }
            Self::ProbeAnswer {
                round,
                nonce,
                last_term,
                last_index,
            } => {
                let mut out = vec![3];
                out.extend_from_slice(&round.to_be_bytes());
                out.extend_from_slice(nonce);
                for v in [last_term, last_index] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                out
            }
        }
    }

    /// Decodes a plaintext.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FleetError> {
        let mut r = Reader(bytes);
        let msg = match r.u8()? {
            1 => return Ok(Self::Raft(r.0.to_vec())),
            2 => Self::Probe {
                round: r.u64()?,
                nonce: r.array()?,
            },
            3 => Self::ProbeAnswer {
                round: r.u64()?,
                nonce: r.array()?,
                last_term: r.u64()?,
                last_index: r.u64()?,
            },
            4 => Self::Nudge,
            _ => return Err(FleetError::Malformed("peer message kind")),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_are_strict() {
        let id = |seq| ProposalId { boot: [3; 16], seq };
        let batch = vec![
            (
                id(1),
                Command::ChargeAttempt {
                    record_id: RecordId([1; 32]),
                    generation: 4,
                },
            ),
            (
                id(2),
                Command::Delete {
                    record_id: RecordId([2; 32]),
                },
            ),
        ];
        let bytes = encode_batch(&batch);
        assert_eq!(decode_batch(&bytes).unwrap(), batch);
        for cut in 0..bytes.len() {
            assert!(decode_batch(&bytes[..cut]).is_err());
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_batch(&long).is_err());
    }

    #[test]
    fn peer_messages_round_trip() {
        for m in [
            PeerMessage::Raft(vec![1, 2, 3]),
            PeerMessage::Probe {
                round: 7,
                nonce: [5; 16],
            },
            PeerMessage::Nudge,
            PeerMessage::ProbeAnswer {
                round: 7,
                nonce: [5; 16],
                last_term: 3,
                last_index: 99,
            },
        ] {
            assert_eq!(PeerMessage::from_bytes(&m.to_bytes()).unwrap(), m);
        }
        assert!(PeerMessage::from_bytes(&[]).is_err());
        assert!(PeerMessage::from_bytes(&[9]).is_err());
        assert!(PeerMessage::from_bytes(&[2, 0]).is_err());
        // A probe without its nonce, or an answer cut short.
        assert!(PeerMessage::from_bytes(&[2, 0, 0, 0, 0, 0, 0, 0, 7]).is_err());
        let answer = PeerMessage::ProbeAnswer {
            round: 1,
            nonce: [1; 16],
            last_term: 2,
            last_index: 3,
        }
        .to_bytes();
        assert!(PeerMessage::from_bytes(&answer[..answer.len() - 1]).is_err());
    }

    #[test]
    fn empty_table_round_trips() {
        let t = RecordTable::new();
        assert_eq!(decode_table(&encode_table(&t)).unwrap(), t);
    }
}
