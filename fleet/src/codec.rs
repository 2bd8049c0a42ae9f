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

/// How deep raft-rs's messages nest below the top-level message: `Message`
/// → `Snapshot` → `SnapshotMetadata` → `ConfState` (`eraftpb.proto` is not
/// recursive). The bound the parser runs under (SPEC.md §20.1).
pub const MAX_RAFT_NESTING: u32 = 3;

/// The `eraftpb` message types whose bytes the node parses, with the fields
/// that hold another message (every other length-delimited field is bytes,
/// a string or a packed scalar list, which the parser does not descend into).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RaftSchema {
    Message,
    Entry,
    Snapshot,
    SnapshotMetadata,
    ConfState,
}

/// What one `eraftpb` field holds, as far as the wire shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RaftField {
    /// A varint (integers, enums, bools).
    Varint,
    /// Length-delimited bytes the parser does not descend into.
    Bytes,
    /// A repeated `uint64`: packed (length-delimited) or one varint each.
    Scalars,
    /// Another message.
    Message(RaftSchema),
}

impl RaftSchema {
    /// The fields `eraftpb.proto` (raft-proto 0.7) declares; any other
    /// field number is refused.
    fn field(self, number: u64) -> Option<RaftField> {
        use RaftField::*;
        Some(match (self, number) {
            (Self::Message, 1..=6 | 8 | 10 | 11 | 13..=16) => Varint,
            (Self::Message, 7) => Message(Self::Entry),
            (Self::Message, 9) => Message(Self::Snapshot),
            (Self::Message, 12) => Bytes,
            (Self::Entry, 1..=3 | 5) => Varint,
            (Self::Entry, 4 | 6) => Bytes,
            (Self::Snapshot, 1) => Bytes,
            (Self::Snapshot, 2) => Message(Self::SnapshotMetadata),
            (Self::SnapshotMetadata, 1) => Message(Self::ConfState),
            (Self::SnapshotMetadata, 2 | 3) => Varint,
            (Self::ConfState, 1..=4) => Scalars,
            (Self::ConfState, 5) => Varint,
            _ => return None,
        })
    }
}

/// Reads a protobuf varint at `*pos`, never past `end`.
fn read_varint(bytes: &[u8], pos: &mut usize, end: usize) -> Result<u64, FleetError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        if *pos >= end {
            return Err(FleetError::Malformed("raft protobuf: truncated varint"));
        }
        let byte = *bytes
            .get(*pos)
            .ok_or(FleetError::Malformed("raft protobuf: truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(FleetError::Malformed("raft protobuf: varint too long"))
}

/// Walks protobuf bytes as the parser would, without recursion and before
/// the parser sees them (RUSTSEC-2024-0437: protobuf 2 can recurse without
/// bound on crafted input). Refuses groups (wire types 3 and 4, which
/// proto3's `eraftpb` never uses), fields the schema does not declare or
/// with another wire type, lengths past the enclosing message, and nesting
/// deeper than the schema.
fn check_raft_wire(bytes: &[u8], root: RaftSchema) -> Result<(), FleetError> {
    let mut stack: Vec<(RaftSchema, usize)> = vec![(root, bytes.len())];
    let mut pos = 0usize;
    while let Some(&(kind, end)) = stack.last() {
        if pos >= end {
            stack.pop();
            continue;
        }
        let tag = read_varint(bytes, &mut pos, end)?;
        let wire = tag & 7;
        if wire == 3 || wire == 4 {
            return Err(FleetError::Malformed("raft protobuf: group"));
        }
        let field = kind
            .field(tag >> 3)
            .ok_or(FleetError::Malformed("raft protobuf: unknown field"))?;
        match (field, wire) {
            (RaftField::Varint | RaftField::Scalars, 0) => {
                read_varint(bytes, &mut pos, end)?;
            }
            (RaftField::Bytes | RaftField::Scalars | RaftField::Message(_), 2) => {
                let len = usize::try_from(read_varint(bytes, &mut pos, end)?)
                    .map_err(|_| FleetError::Malformed("raft protobuf: truncated field"))?;
                let stop = match pos.checked_add(len) {
                    Some(stop) if stop <= end => stop,
                    _ => return Err(FleetError::Malformed("raft protobuf: truncated field")),
                };
                if let RaftField::Message(sub) = field {
                    // The schema bounds the depth; the check keeps the
                    // bound explicit.
                    if stack.len() > MAX_RAFT_NESTING as usize {
                        return Err(FleetError::Malformed("raft protobuf: nested too deep"));
                    }
                    stack.push((sub, stop));
                } else {
                    pos = stop;
                }
            }
            _ => return Err(FleetError::Malformed("raft protobuf: wire type")),
        }
    }
    Ok(())
}

/// Parses protobuf bytes into `M` strictly: the walk above first, then
/// protobuf 2's parser with its recursion limit at the schema's depth, no
/// trailing bytes, and the bytes must be exactly what encoding the result
/// gives (no unknown fields, no repeated scalar fields, no over-long
/// varints, no other field order). Every member encodes with that encoder,
/// so genuine bytes always pass.
fn decode_raft<M: protobuf::Message>(bytes: &[u8], root: RaftSchema) -> Result<M, FleetError> {
    check_raft_wire(bytes, root)?;
    let mut input = protobuf::CodedInputStream::from_bytes(bytes);
    input.set_recursion_limit(MAX_RAFT_NESTING);
    let mut message = M::new();
    message
        .merge_from(&mut input)
        .map_err(|_| FleetError::Malformed("raft protobuf: does not parse"))?;
    input
        .check_eof()
        .map_err(|_| FleetError::Malformed("raft protobuf: trailing bytes"))?;
    let again = message
        .write_to_bytes()
        .map_err(|_| FleetError::Malformed("raft protobuf: does not encode"))?;
    if again != bytes {
        return Err(FleetError::Malformed("raft protobuf: not canonical"));
    }
    Ok(message)
}

/// Decodes a raft-rs message from a peer (SPEC.md §21.2) strictly and with
/// bounded recursion (SPEC.md §20.1).
pub fn decode_raft_message(bytes: &[u8]) -> Result<raft::prelude::Message, FleetError> {
    decode_raft(bytes, RaftSchema::Message)
}

/// Decodes a raft-rs log entry from the node's disk (SPEC.md §22.1)
/// strictly and with bounded recursion (SPEC.md §20.1).
pub fn decode_raft_entry(bytes: &[u8]) -> Result<raft::prelude::Entry, FleetError> {
    decode_raft(bytes, RaftSchema::Entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    use protobuf::Message as _;
    use raft::prelude::{ConfState, Entry, Message, MessageType, Snapshot};

    fn genuine_message() -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        m.index = 40;
        m.log_term = 6;
        m.commit = 39;
        m.priority = -3;
        m.mut_entries().push(Entry {
            term: 7,
            index: 41,
            data: vec![1, 2, 3].into(),
            ..Entry::default()
        });
        let mut s = Snapshot {
            data: vec![9; 5].into(),
            ..Snapshot::default()
        };
        s.mut_metadata().set_conf_state(ConfState {
            voters: vec![1, 2, 3],
            ..ConfState::default()
        });
        s.mut_metadata().index = 30;
        m.set_snapshot(s);
        m
    }

    #[test]
    fn genuine_raft_bytes_decode() {
        let m = genuine_message();
        let bytes = m.write_to_bytes().unwrap();
        assert_eq!(decode_raft_message(&bytes).unwrap(), m);
        let e = m.get_entries()[0].clone();
        assert_eq!(decode_raft_entry(&e.write_to_bytes().unwrap()).unwrap(), e);
        assert_eq!(decode_raft_message(&[]).unwrap(), Message::default());
    }

    #[test]
    fn deeply_nested_raft_bytes_are_refused_before_parsing() {
        // 100,000 nested groups in an unknown field (RUSTSEC-2024-0437's
        // shape), at the top and inside the deepest submessage.
        let groups = vec![0x0b_u8; 100_000];
        assert_eq!(
            decode_raft_message(&groups),
            Err(FleetError::Malformed("raft protobuf: group"))
        );
        assert_eq!(
            decode_raft_entry(&groups),
            Err(FleetError::Malformed("raft protobuf: group"))
        );
        // Message.snapshot → metadata → conf_state → a group.
        let inner = [0x0b_u8, 0x0c];
        let cs = [&[0x0a, inner.len() as u8][..], &inner].concat();
        let meta = [&[0x12, cs.len() as u8][..], &cs].concat();
        let msg = [&[0x4a, meta.len() as u8][..], &meta].concat();
        assert_eq!(
            decode_raft_message(&msg),
            Err(FleetError::Malformed("raft protobuf: group"))
        );
        // 100,000 levels of length-delimited nesting in field 9 (snapshot),
        // which is a message only at the top: refused, never descended past
        // the schema's depth.
        let mut deep: Vec<u8> = Vec::new();
        for _ in 0..100_000 {
            let mut len = Vec::new();
            let mut n = deep.len();
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    len.push(b);
                    break;
                }
                len.push(b | 0x80);
            }
            deep = [&[0x4a_u8][..], &len, &deep].concat();
        }
        assert!(decode_raft_message(&deep).is_err());
        assert!(decode_raft_entry(&deep).is_err());
    }

    #[test]
    fn non_canonical_raft_bytes_are_refused() {
        let bytes = genuine_message().write_to_bytes().unwrap();
        // An unknown field appended.
        let mut unknown = bytes.clone();
        unknown.extend_from_slice(&[0xf8, 0x01, 0x01]);
        assert!(decode_raft_message(&unknown).is_err());
        // A field repeated (the last would win in protobuf).
        let mut twice = bytes.clone();
        twice.extend_from_slice(&[0x10, 0x05]);
        assert!(decode_raft_message(&twice).is_err());
        // An over-long varint for `to` (canonically `10 02`).
        let to = Message {
            to: 2,
            ..Message::default()
        };
        assert_eq!(to.write_to_bytes().unwrap(), [0x10, 0x02]);
        assert_eq!(decode_raft_message(&[0x10, 0x02]).unwrap(), to);
        assert!(decode_raft_message(&[0x10, 0x82, 0x00]).is_err());
        // Field number 0, a truncated length, and wire types 6 and 7.
        for bad in [&[0x00_u8, 0x00][..], &[0x62, 0x05, 0x01], &[0x0e], &[0x0f]] {
            assert!(decode_raft_message(bad).is_err(), "{bad:?}");
        }
        // Cut inside the last field (the entry), the bytes are refused.
        assert!(decode_raft_message(&bytes[..bytes.len() - 1]).is_err());
    }

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
