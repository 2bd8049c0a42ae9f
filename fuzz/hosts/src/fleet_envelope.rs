//! The envelope between fleet members (SPEC.md §21) and the codecs behind
//! it (§20.1, §20.3, §21.2), with real link keys.
//!
//! A receiver (member 2 of {1, 2, 3}) opens what the fuzzer delivers:
//! genuine envelopes from three sender boots (member 1 at incarnations 1
//! and 2, member 3), envelopes sealed for another member, copies of any of
//! them delivered again, copies altered by the fuzzer (bytes changed, cut,
//! extended), and bytes of its own. The oracle:
//!
//! * only a genuine envelope is ever accepted, byte for byte, and its
//!   plaintext is the one sealed into it: an altered copy never is;
//! * a genuine envelope is accepted at most once (replays are refused);
//! * the codecs never panic, and what they accept re-encodes to the input
//!   (batches and raft-rs messages and entries).

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use backup_key_vault::FleetSecrets;
use bkv_fleet::codec::{self, PeerMessage};
use bkv_fleet::transport::Link;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// What the network does next.
#[derive(Arbitrary, Debug)]
enum Action {
    /// A sender boot seals a plaintext for `to` (member 1, 2 or 3).
    Send {
        sender: u8,
        to: u8,
        plaintext: Vec<u8>,
    },
    /// A genuine peer message, sealed for the receiver.
    SendMessage { sender: u8, message: Message },
    /// Sent envelope `index` is delivered (again).
    Deliver { index: u8 },
    /// A copy of sent envelope `index`, altered, is delivered.
    Alter {
        index: u8,
        flips: Vec<(u16, u8)>,
        cut: Option<u16>,
        extend: Vec<u8>,
    },
    /// Bytes of the fuzzer's own, delivered and given to every decoder.
    Raw(Vec<u8>),
}

/// A plaintext the members really send.
#[derive(Arbitrary, Debug)]
enum Message {
    Probe {
        round: u64,
        nonce: [u8; 16],
    },
    Answer {
        round: u64,
        nonce: [u8; 16],
        term: u64,
        index: u64,
    },
    Nudge,
    Raft {
        to: u64,
        from: u64,
        term: u64,
        entries: Vec<Vec<u8>>,
    },
}

impl Message {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Probe { round, nonce } => PeerMessage::Probe {
                round: *round,
                nonce: *nonce,
            },
            Self::Answer {
                round,
                nonce,
                term,
                index,
            } => PeerMessage::ProbeAnswer {
                round: *round,
                nonce: *nonce,
                last_term: *term,
                last_index: *index,
            },
            Self::Nudge => PeerMessage::Nudge,
            Self::Raft {
                to,
                from,
                term,
                entries,
            } => {
                use protobuf::Message as _;
                let mut m = raft::prelude::Message {
                    to: *to,
                    from: *from,
                    term: *term,
                    ..raft::prelude::Message::default()
                };
                for (i, data) in entries.iter().take(4).enumerate() {
                    m.mut_entries().push(raft::prelude::Entry {
                        index: i as u64 + 1,
                        term: *term,
                        data: data.clone().into(),
                        ..raft::prelude::Entry::default()
                    });
                }
                PeerMessage::Raft(m.write_to_bytes().unwrap_or_default())
            }
        }
        .to_bytes()
    }
}

/// Every decoder of the fleet's bytes on `bytes`: never a panic, and what
/// is accepted re-encodes to the input where the encoding is canonical.
pub fn decoders(bytes: &[u8]) {
    if let Ok(m) = PeerMessage::from_bytes(bytes) {
        assert_eq!(m.to_bytes(), bytes, "peer message round trip");
    }
    if let Ok(batch) = codec::decode_batch(bytes) {
        assert_eq!(codec::encode_batch(&batch), bytes, "batch round trip");
    }
    let _ = codec::decode_table(bytes);
    if let Ok(m) = codec::decode_raft_message(bytes) {
        use protobuf::Message as _;
        assert_eq!(m.write_to_bytes().ok().as_deref(), Some(bytes));
    }
    if let Ok(e) = codec::decode_raft_entry(bytes) {
        use protobuf::Message as _;
        assert_eq!(e.write_to_bytes().ok().as_deref(), Some(bytes));
    }
}

/// The target.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(actions) = Vec::<Action>::arbitrary(&mut u) else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    let key = FleetSecrets::generate(&mut rng).fleet_transport_key();
    let members = vec![1, 2, 3];
    let link = |me: u64, incarnation: u64, boot: u8| {
        Link::new(
            key.clone(),
            me,
            members.clone(),
            incarnation,
            [boot; 16],
            BTreeMap::new(),
        )
    };
    let mut senders = [link(1, 1, 0xa1), link(1, 2, 0xa2), link(3, 1, 0xc1)];
    let mut receiver = link(2, 1, 0xb1);
    // Every envelope sealed, with its plaintext and whether it is for the
    // receiver.
    let mut sent: Vec<(Vec<u8>, Vec<u8>, bool)> = Vec::new();
    let mut accepted: BTreeSet<Vec<u8>> = BTreeSet::new();
    let genuine = |sent: &[(Vec<u8>, Vec<u8>, bool)], bytes: &[u8]| {
        sent.iter()
            .find(|(e, _, _)| e == bytes)
            .map(|(_, p, for_me)| (p.clone(), *for_me))
    };
    for action in actions.into_iter().take(64) {
        let delivered = match action {
            Action::Send {
                sender,
                to,
                plaintext,
            } => {
                let s = &mut senders[usize::from(sender) % senders.len()];
                let to = 1 + u64::from(to % 3);
                let envelope = s.seal(to, &plaintext);
                sent.push((envelope.clone(), plaintext, to == 2));
                envelope
            }
            Action::SendMessage { sender, message } => {
                let s = &mut senders[usize::from(sender) % senders.len()];
                let plaintext = message.to_bytes();
                let envelope = s.seal(2, &plaintext);
                sent.push((envelope.clone(), plaintext, true));
                envelope
            }
            Action::Deliver { index } => match sent.get(usize::from(index) % sent.len().max(1)) {
                Some((e, _, _)) => e.clone(),
                None => continue,
            },
            Action::Alter {
                index,
                flips,
                cut,
                extend,
            } => {
                let Some((e, _, _)) = sent.get(usize::from(index) % sent.len().max(1)) else {
                    continue;
                };
                let mut bytes = e.clone();
                for (at, mask) in flips {
                    if let Some(b) = bytes.get_mut(usize::from(at) % e.len().max(1)) {
                        *b ^= mask;
                    }
                }
                if let Some(cut) = cut {
                    bytes.truncate(usize::from(cut) % (e.len() + 1));
                }
                bytes.extend_from_slice(&extend);
                bytes
            }
            Action::Raw(bytes) => {
                decoders(&bytes);
                bytes
            }
        };
        let outcome = receiver.open(&delivered);
        let Ok(opened) = outcome else {
            continue;
        };
        let Some((plaintext, for_me)) = genuine(&sent, &delivered) else {
            panic!("an envelope no member sealed was accepted: {delivered:02x?}");
        };
        assert!(for_me, "an envelope sealed for another member was accepted");
        assert_eq!(
            &opened.plaintext[..],
            &plaintext[..],
            "the plaintext is not the one sealed"
        );
        assert!(
            accepted.insert(delivered),
            "a genuine envelope was accepted twice"
        );
        decoders(&opened.plaintext);
        if let Ok(PeerMessage::Raft(bytes)) = PeerMessage::from_bytes(&opened.plaintext) {
            decoders(&bytes);
        }
    }
}
