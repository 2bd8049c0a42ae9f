//! Authenticated, encrypted messages between fleet members (SPEC.md §21).
//!
//! Every message between two HSMs crosses the untrusted host. A [`Link`]
//! seals each one with ChaCha20-Poly1305 under a key only fleet members can
//! derive (the fleet transport key, from the fleet secrets), binds the
//! sender, the receiver, the sender's incarnation and boot nonce and a
//! sequence number into the associated data, and drops (and counts) every
//! message that is forged, altered, misaddressed, replayed or from an
//! earlier incarnation of its sender.

use std::collections::BTreeMap;

use backup_key_vault::fleet::FleetTransportKey;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

/// Version byte of the envelope.
pub const ENVELOPE_VERSION: u8 = 2;
/// Length of the clear header: version, from, to, incarnation, boot nonce,
/// sequence number, and the receiver's incarnation and boot nonce as the
/// sender last accepted them.
pub const HEADER_LEN: usize = 1 + 8 + 8 + 8 + 16 + 8 + 8 + 16;
/// Length of the AEAD tag.
pub const TAG_LEN: usize = 16;
/// Width of the replay window, in sequence numbers.
pub const REPLAY_WINDOW: u64 = 128;

/// What a receiver did with incoming messages, for operators and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportCounters {
    /// Authentic, fresh messages accepted.
    pub accepted: u64,
    /// Messages that failed authentication (forged, altered, truncated) or
    /// did not parse.
    pub forged: u64,
    /// Authentic messages seen before (a duplicate or replay), or older than
    /// the replay window.
    pub replayed: u64,
    /// Authentic messages from an earlier boot of their sender.
    pub stale: u64,
    /// Messages addressed to another node, or from a sender that is not a
    /// member.
    pub misaddressed: u64,
}

/// Where a sender's messages stand, as seen by this receiver.
#[derive(Clone, Debug)]
struct PeerWindow {
    incarnation: u64,
    boot: [u8; 16],
    /// Highest sequence number accepted in this boot.
    top: u64,
    /// Bit i set: `top - i` was accepted.
    seen: u128,
}

/// An accepted message.
#[derive(Debug)]
pub struct Opened {
    /// The sender.
    pub from: u64,
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Whether this is the first message of a new boot of the sender (the
    /// leader then forgets what it knew about the sender's log).
    pub new_incarnation: bool,
    /// Whether the sender has seen this node at a later incarnation, or at
    /// this incarnation with another boot nonce: the disk this boot started
    /// from was rolled back or wiped.
    pub shows_rollback: bool,
    /// The receiver's incarnation as the sender last accepted it.
    pub acknowledged_incarnation: u64,
    /// The receiver's boot nonce as the sender last accepted it (zero if
    /// the sender knew only the incarnation).
    pub acknowledged_boot: [u8; 16],
}

/// Why a message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Forged, altered, truncated, misaddressed, or a replay.
    Refused,
    /// Authentic, but from an earlier boot of `from` than one already seen
    /// (or an earlier incarnation number reused after a rollback): the
    /// receiver may nudge the sender, whose next message it sees will show
    /// it the incarnation it already used.
    Stale {
        /// The sender.
        from: u64,
    },
}

/// One node's end of every link: seals what it sends, opens what it
/// receives.
pub struct Link {
    key: FleetTransportKey,
    me: u64,
    members: Vec<u64>,
    incarnation: u64,
    boot: [u8; 16],
    next_seq: u64,
    /// Per receiver: the sealing cipher of this boot.
    send_keys: BTreeMap<u64, ChaCha20Poly1305>,
    /// Per sender: the opening cipher of the sender's current boot.
    recv_keys: BTreeMap<(u64, u64, [u8; 16]), ChaCha20Poly1305>,
    windows: BTreeMap<u64, PeerWindow>,
    /// Highest incarnation of each peer ever accepted (also persisted).
    peer_incarnations: BTreeMap<u64, u64>,
    /// The boot nonce of each peer's current boot, as accepted.
    peer_boots: BTreeMap<u64, [u8; 16]>,
    counters: TransportCounters,
}

impl core::fmt::Debug for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("me", &self.me)
            .field("incarnation", &self.incarnation)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A node's link end for one boot: its id, the fleet's members, its
    /// incarnation (persisted, one more than the last boot's), a boot nonce
    /// fresh from the RNG, and the peers' incarnations it remembers.
    pub fn new(
        key: FleetTransportKey,
        me: u64,
        members: Vec<u64>,
        incarnation: u64,
        boot: [u8; 16],
        peer_incarnations: BTreeMap<u64, u64>,
    ) -> Self {
        Self {
            key,
            me,
            members,
            incarnation,
            boot,
            next_seq: 0,
            send_keys: BTreeMap::new(),
            recv_keys: BTreeMap::new(),
            windows: BTreeMap::new(),
            peer_incarnations,
            peer_boots: BTreeMap::new(),
            counters: TransportCounters::default(),
        }
    }

    /// This boot's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The receive counters.
    pub fn counters(&self) -> TransportCounters {
        self.counters
    }

    /// The highest incarnation accepted from each peer.
    pub fn peer_incarnations(&self) -> &BTreeMap<u64, u64> {
        &self.peer_incarnations
    }

    fn cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(key))
    }

    fn nonce(seq: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&seq.to_be_bytes());
        Nonce::from(n)
    }

    /// Seals `plaintext` for `to`. Every call uses a new sequence number.
    pub fn seal(&mut self, to: u64, plaintext: &[u8]) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        // The boot nonce is known only for a boot this link accepted itself;
        // an incarnation remembered from disk comes without one (zero).
        let (ack, ack_boot) = match (self.windows.get(&to), self.peer_boots.get(&to)) {
            (Some(w), Some(boot)) => (w.incarnation, *boot),
            _ => (
                self.peer_incarnations.get(&to).copied().unwrap_or(0),
                [0; 16],
            ),
        };
        let mut header = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        header.push(ENVELOPE_VERSION);
        header.extend_from_slice(&self.me.to_be_bytes());
        header.extend_from_slice(&to.to_be_bytes());
        header.extend_from_slice(&self.incarnation.to_be_bytes());
        header.extend_from_slice(&self.boot);
        header.extend_from_slice(&seq.to_be_bytes());
        header.extend_from_slice(&ack.to_be_bytes());
        header.extend_from_slice(&ack_boot);
        let (me, incarnation, boot) = (self.me, self.incarnation, self.boot);
        let key = &self.key;
        let cipher = self
            .send_keys
            .entry(to)
            .or_insert_with(|| Self::cipher(&key.link_key(me, to, incarnation, &boot)));
        // Encryption fails only past 256 GiB; an empty body would then fail
        // authentication at the receiver, which drops it.
        let body = cipher
            .encrypt(
                &Self::nonce(seq),
                Payload {
                    msg: plaintext,
                    aad: &header,
                },
            )
            .unwrap_or_default();
        header.extend_from_slice(&body);
        header
    }

    /// Opens a message, or drops it and counts why.
    pub fn open(&mut self, bytes: &[u8]) -> Result<Opened, Dropped> {
        let Some(header) = parse_header(bytes) else {
            self.counters.forged += 1;
            return Err(Dropped::Refused);
        };
        if header.to != self.me || header.from == self.me || !self.members.contains(&header.from) {
            self.counters.misaddressed += 1;
            return Err(Dropped::Refused);
        }
        let (aad, body) = bytes.split_at(HEADER_LEN);
        let id = (header.from, header.incarnation, header.boot);
        let key = &self.key;
        let me = self.me;
        let cipher = self.recv_keys.entry(id).or_insert_with(|| {
            Self::cipher(&key.link_key(header.from, me, header.incarnation, &header.boot))
        });
        let opened = cipher.decrypt(&Self::nonce(header.seq), Payload { msg: body, aad });
        let Ok(plaintext) = opened else {
            // Keep only the keys of accepted boots, so forged headers cannot
            // grow the cache.
            let known = self
                .windows
                .get(&header.from)
                .is_some_and(|w| w.incarnation == header.incarnation && w.boot == header.boot);
            if !known {
                self.recv_keys.remove(&id);
            }
            self.counters.forged += 1;
            return Err(Dropped::Refused);
        };
        let plaintext = Zeroizing::new(plaintext);
        let remembered = self
            .peer_incarnations
            .get(&header.from)
            .copied()
            .unwrap_or(0);
        let new_incarnation = match self.windows.get_mut(&header.from) {
            Some(w) if w.incarnation == header.incarnation && w.boot == header.boot => {
                if !accept_seq(w, header.seq) {
                    self.counters.replayed += 1;
                    return Err(Dropped::Refused);
                }
                false
            }
            Some(w) if header.incarnation <= w.incarnation => {
                self.counters.stale += 1;
                return Err(Dropped::Stale { from: header.from });
            }
            _ if header.incarnation < remembered => {
                self.counters.stale += 1;
                return Err(Dropped::Stale { from: header.from });
            }
            _ => {
                // A new boot of the sender: forget the old one's keys.
                self.recv_keys.retain(|(from, inc, boot), _| {
                    *from != header.from || (*inc, *boot) == (header.incarnation, header.boot)
                });
                self.windows.insert(
                    header.from,
                    PeerWindow {
                        incarnation: header.incarnation,
                        boot: header.boot,
                        top: header.seq,
                        seen: 1,
                    },
                );
                self.peer_boots.insert(header.from, header.boot);
                true
            }
        };
        if header.incarnation > remembered {
            self.peer_incarnations
                .insert(header.from, header.incarnation);
        }
        self.counters.accepted += 1;
        let shows_rollback = header.acknowledged > self.incarnation
            || (header.acknowledged == self.incarnation
                && header.acknowledged_boot != [0; 16]
                && header.acknowledged_boot != self.boot);
        Ok(Opened {
            from: header.from,
            plaintext,
            new_incarnation,
            shows_rollback,
            acknowledged_incarnation: header.acknowledged,
            acknowledged_boot: header.acknowledged_boot,
        })
    }
}

/// Slides the window; `false` if `seq` was seen or is too old.
fn accept_seq(w: &mut PeerWindow, seq: u64) -> bool {
    if seq > w.top {
        let shift = seq - w.top;
        w.seen = if shift >= 128 { 0 } else { w.seen << shift };
        w.seen |= 1;
        w.top = seq;
        return true;
    }
    let back = w.top - seq;
    if back >= REPLAY_WINDOW {
        return false;
    }
    let bit = 1u128 << back;
    if w.seen & bit != 0 {
        return false;
    }
    w.seen |= bit;
    true
}

struct Header {
    from: u64,
    to: u64,
    incarnation: u64,
    boot: [u8; 16],
    seq: u64,
    acknowledged: u64,
    acknowledged_boot: [u8; 16],
}

fn parse_header(bytes: &[u8]) -> Option<Header> {
    if bytes.len() < HEADER_LEN + TAG_LEN || bytes.first() != Some(&ENVELOPE_VERSION) {
        return None;
    }
    let u64_at = |at: usize| -> Option<u64> {
        let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
        Some(u64::from_be_bytes(b))
    };
    let boot: [u8; 16] = bytes.get(25..41)?.try_into().ok()?;
    let acknowledged_boot: [u8; 16] = bytes.get(57..73)?.try_into().ok()?;
    Some(Header {
        from: u64_at(1)?,
        to: u64_at(9)?,
        incarnation: u64_at(17)?,
        boot,
        seq: u64_at(41)?,
        acknowledged: u64_at(49)?,
        acknowledged_boot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_key_vault::FleetSecrets;
    use rand_chacha::rand_core::SeedableRng;

    fn pair() -> (Link, Link) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let s = FleetSecrets::generate(&mut rng);
        let a = Link::new(
            s.fleet_transport_key(),
            1,
            vec![1, 2],
            1,
            [1; 16],
            BTreeMap::new(),
        );
        let b = Link::new(
            s.fleet_transport_key(),
            2,
            vec![1, 2],
            1,
            [2; 16],
            BTreeMap::new(),
        );
        (a, b)
    }

    #[test]
    fn round_trip_and_every_attack_is_counted() {
        let (mut a, mut b) = pair();
        let m = a.seal(2, b"hello");
        let got = b.open(&m).unwrap();
        assert_eq!(&got.plaintext[..], b"hello");
        assert!(got.new_incarnation);
        // Replay.
        assert!(b.open(&m).is_err());
        assert_eq!(b.counters().replayed, 1);
        // Altered body, altered header (the sequence number).
        let mut altered = a.seal(2, b"x");
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(b.open(&altered).is_err());
        let mut reseq = a.seal(2, b"y");
        reseq[48] ^= 1;
        assert!(b.open(&reseq).is_err());
        assert_eq!(b.counters().forged, 2);
        // Misaddressed: a message for 1 delivered to 2.
        let to_self = a.seal(1, b"z");
        assert!(b.open(&to_self).is_err());
        assert_eq!(b.counters().misaddressed, 1);
        // Forged with the wrong fleet key.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(10);
        let other = FleetSecrets::generate(&mut rng);
        let mut mallory = Link::new(
            other.fleet_transport_key(),
            1,
            vec![1, 2],
            9,
            [3; 16],
            BTreeMap::new(),
        );
        assert!(b.open(&mallory.seal(2, b"evil")).is_err());
        assert_eq!(b.counters().forged, 3);
        // Reordering within the window is fine.
        let m1 = a.seal(2, b"1");
        let m2 = a.seal(2, b"2");
        assert!(b.open(&m2).is_ok());
        assert!(b.open(&m1).is_ok());
        assert!(b.open(&m1).is_err());
        assert_eq!(b.counters().accepted, 3);
    }

    #[test]
    fn an_earlier_boot_is_stale_and_a_later_one_resets_the_window() {
        let (mut a, mut b) = pair();
        let old = a.seal(2, b"old");
        let key = a.key.clone();
        let mut a2 = Link::new(key, 1, vec![1, 2], 2, [7; 16], BTreeMap::new());
        let new = a2.seal(2, b"new");
        assert!(b.open(&new).unwrap().new_incarnation);
        assert_eq!(b.open(&old).err(), Some(Dropped::Stale { from: 1 }));
        assert_eq!(b.counters().stale, 1);
        assert_eq!(b.peer_incarnations().get(&1), Some(&2));
        // In service, the acknowledgement names the receiver's own boot.
        let reply = b.seal(1, b"r");
        assert!(!a2.open(&reply).unwrap().shows_rollback);
        // A rolled-back node that reuses incarnation 2 with a new boot nonce
        // is stale to b, and b's next message shows it the boot b saw.
        let key = a2.key.clone();
        let mut rolled = Link::new(key, 1, vec![1, 2], 2, [8; 16], BTreeMap::new());
        assert_eq!(
            b.open(&rolled.seal(2, b"again")).err(),
            Some(Dropped::Stale { from: 1 })
        );
        assert!(rolled.open(&b.seal(1, b"nudge")).unwrap().shows_rollback);
    }

    /// What does not parse is counted as forged, and nothing else moves;
    /// a genuine envelope with an empty body (exactly the shortest length)
    /// still opens.
    #[test]
    fn envelopes_that_do_not_parse_are_forged_and_the_shortest_genuine_one_opens() {
        let (mut a, mut b) = pair();
        let genuine = a.seal(2, b"hello");
        let mut old_version = genuine.clone();
        old_version[0] = ENVELOPE_VERSION - 1;
        let unparsable: [&[u8]; 4] = [
            &[],
            &genuine[..HEADER_LEN],
            &genuine[..HEADER_LEN + TAG_LEN - 1],
            &old_version,
        ];
        for (i, bytes) in unparsable.into_iter().enumerate() {
            assert_eq!(b.open(bytes).err(), Some(Dropped::Refused), "case {i}");
            assert_eq!(b.counters().forged, i as u64 + 1, "case {i}");
        }
        let empty = a.seal(2, b"");
        assert_eq!(empty.len(), HEADER_LEN + TAG_LEN);
        assert!(b.open(&empty).unwrap().plaintext.is_empty());
        assert_eq!(
            b.counters(),
            TransportCounters {
                accepted: 1,
                forged: 4,
                ..TransportCounters::default()
            }
        );
    }

    /// A message that names this node as its sender, or a sender outside
    /// the fleet, is misaddressed, even when it authenticates under the
    /// fleet key (a node's own messages reflected back to it).
    #[test]
    fn a_message_from_this_node_or_from_a_non_member_is_misaddressed() {
        let (a, mut b) = pair();
        let key = a.key.clone();
        let mut reflected = Link::new(key.clone(), 2, vec![1, 2], 1, [2; 16], BTreeMap::new());
        assert_eq!(
            b.open(&reflected.seal(2, b"me")).err(),
            Some(Dropped::Refused)
        );
        let mut outsider = Link::new(key, 3, vec![1, 2, 3], 1, [3; 16], BTreeMap::new());
        assert_eq!(
            b.open(&outsider.seal(2, b"not a member")).err(),
            Some(Dropped::Refused)
        );
        assert_eq!(
            b.counters(),
            TransportCounters {
                misaddressed: 2,
                ..TransportCounters::default()
            }
        );
    }

    /// A forged message under a boot this node has not accepted leaves no
    /// key behind (forged headers cannot grow the cache); one under the
    /// sender's current boot keeps that boot's key.
    #[test]
    fn forged_messages_leave_keys_only_for_accepted_boots() {
        let (mut a, mut b) = pair();
        assert!(b.open(&a.seal(2, b"first")).is_ok());
        assert_eq!(b.recv_keys.len(), 1);
        // Another incarnation with the same boot nonce, the same incarnation
        // with another nonce, and both: each header names a new key.
        for (incarnation, boot) in [(5u64, [1u8; 16]), (1, [9; 16]), (5, [9; 16])] {
            let mut forged = a.seal(2, b"forged");
            forged[17..25].copy_from_slice(&incarnation.to_be_bytes());
            forged[25..41].copy_from_slice(&boot);
            assert_eq!(b.open(&forged).err(), Some(Dropped::Refused));
            assert_eq!(b.recv_keys.len(), 1, "{incarnation} {boot:?}");
        }
        // An altered body under the current boot: its key stays, and the
        // boot's next genuine message opens.
        let mut altered = a.seal(2, b"x");
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(b.open(&altered).err(), Some(Dropped::Refused));
        assert!(b.recv_keys.contains_key(&(1, 1, [1; 16])));
        assert!(b.open(&a.seal(2, b"next")).is_ok());
        assert_eq!(b.counters().forged, 4);
    }

    /// A sender's later boot, after messages of an earlier one, opens as a
    /// new incarnation; the earlier boot's messages are stale from then on.
    #[test]
    fn a_later_boot_after_an_earlier_one_opens_as_a_new_incarnation() {
        let (mut a, mut b) = pair();
        assert!(b.open(&a.seal(2, b"boot 1")).unwrap().new_incarnation);
        let old = a.seal(2, b"boot 1, late");
        let mut a2 = Link::new(a.key.clone(), 1, vec![1, 2], 2, [7; 16], BTreeMap::new());
        let opened = b.open(&a2.seal(2, b"boot 2")).unwrap();
        assert!(opened.new_incarnation);
        assert!(
            !b.open(&a2.seal(2, b"boot 2 again"))
                .unwrap()
                .new_incarnation
        );
        assert_eq!(b.open(&old).err(), Some(Dropped::Stale { from: 1 }));
        assert_eq!(b.counters().accepted, 3);
    }

    /// The incarnations remembered from disk bind before any message of
    /// this boot: a sender below its remembered incarnation is stale, one
    /// at it opens.
    #[test]
    fn a_sender_below_its_remembered_incarnation_is_stale() {
        let (a, _) = pair();
        let remembered = BTreeMap::from([(1u64, 5u64)]);
        let mut b = Link::new(a.key.clone(), 2, vec![1, 2], 1, [2; 16], remembered);
        let mut at3 = Link::new(a.key.clone(), 1, vec![1, 2], 3, [3; 16], BTreeMap::new());
        assert_eq!(
            b.open(&at3.seal(2, b"old")).err(),
            Some(Dropped::Stale { from: 1 })
        );
        let mut at5 = Link::new(a.key.clone(), 1, vec![1, 2], 5, [5; 16], BTreeMap::new());
        assert!(b.open(&at5.seal(2, b"current")).unwrap().new_incarnation);
        assert_eq!((b.counters().stale, b.counters().accepted), (1, 1));
    }

    /// A sender's new boot replaces its old boot's key in the cache, and
    /// only its own: other senders' keys stay.
    #[test]
    fn a_new_boot_forgets_only_its_senders_old_key() {
        let (a, _) = pair();
        let key = a.key.clone();
        let mut b = Link::new(key.clone(), 2, vec![1, 2, 3], 1, [2; 16], BTreeMap::new());
        let mut a1 = Link::new(key.clone(), 1, vec![1, 2, 3], 1, [1; 16], BTreeMap::new());
        let mut c = Link::new(key.clone(), 3, vec![1, 2, 3], 1, [3; 16], BTreeMap::new());
        assert!(b.open(&a1.seal(2, b"a, boot 1")).is_ok());
        assert!(b.open(&c.seal(2, b"c")).is_ok());
        let mut a2 = Link::new(key, 1, vec![1, 2, 3], 2, [4; 16], BTreeMap::new());
        assert!(b.open(&a2.seal(2, b"a, boot 2")).is_ok());
        let cached: Vec<_> = b.recv_keys.keys().copied().collect();
        assert_eq!(cached, vec![(1, 2, [4; 16]), (3, 1, [3; 16])]);
    }

    /// A sender acknowledging an older incarnation of this node (it has not
    /// heard this boot yet) shows no rollback; one acknowledging a later
    /// incarnation than this node's own does.
    #[test]
    fn only_a_later_acknowledged_incarnation_shows_a_rollback() {
        let (mut a, b) = pair();
        let key = b.key.clone();
        let mut b1 = b;
        assert!(
            !a.open(&b1.seal(1, b"b, incarnation 1"))
                .unwrap()
                .shows_rollback
        );
        // b restarts as it should, at incarnation 2.
        let mut b2 = Link::new(key.clone(), 2, vec![1, 2], 2, [5; 16], BTreeMap::new());
        let opened = b2.open(&a.seal(2, b"acknowledges 1")).unwrap();
        assert_eq!(opened.acknowledged_incarnation, 1);
        assert!(!opened.shows_rollback);
        assert!(a.open(&b2.seal(1, b"b, incarnation 2")).is_ok());
        // b's disk is rolled back to before incarnation 2 was written.
        let mut b_rolled = Link::new(key, 2, vec![1, 2], 1, [6; 16], BTreeMap::new());
        let opened = b_rolled.open(&a.seal(2, b"acknowledges 2")).unwrap();
        assert_eq!(opened.acknowledged_incarnation, 2);
        assert!(opened.shows_rollback);
    }

    /// Every message of a run in order opens once: a replay of any of them,
    /// the newest included, is refused, and so is one from just behind the
    /// window; a gap in the run is filled once.
    #[test]
    fn each_recent_message_opens_exactly_once() {
        let (mut a, mut b) = pair();
        let sent: Vec<Vec<u8>> = (0..12).map(|_| a.seal(2, b"m")).collect();
        for (i, m) in sent.iter().enumerate() {
            if i != 5 {
                assert!(b.open(m).is_ok(), "message {i}");
            }
        }
        for (i, m) in sent.iter().enumerate().rev() {
            let again = b.open(m);
            if i == 5 {
                assert!(again.is_ok(), "the gap at 5 fills once");
            } else {
                assert_eq!(again.err(), Some(Dropped::Refused), "replay of {i}");
            }
        }
        assert!(b.open(&sent[5]).is_err());
        assert_eq!(b.counters().replayed, 12);
        // A jump of exactly the window's width: the previous top falls out.
        let mut w = PeerWindow {
            incarnation: 1,
            boot: [0; 16],
            top: 10,
            seen: 1,
        };
        assert!(accept_seq(&mut w, 10 + REPLAY_WINDOW));
        assert!(!accept_seq(&mut w, 10));
        assert!(accept_seq(&mut w, 11), "inside the window, unseen");
        assert!(!accept_seq(&mut w, 11));
    }

    /// The header parser is strict on its own: version and minimum length
    /// (header and tag), whatever the AEAD would say after it.
    #[test]
    fn the_header_parser_refuses_short_input_and_other_versions() {
        let (mut a, _) = pair();
        let genuine = a.seal(2, b"");
        assert_eq!(genuine.len(), HEADER_LEN + TAG_LEN);
        let header = parse_header(&genuine).expect("a genuine header parses");
        assert_eq!((header.from, header.to, header.seq), (1, 2, 0));
        for len in [0, 1, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + TAG_LEN - 1] {
            assert!(parse_header(&genuine[..len]).is_none(), "length {len}");
        }
        for version in [0, ENVELOPE_VERSION - 1, ENVELOPE_VERSION + 1, 0xff] {
            let mut other = genuine.clone();
            other[0] = version;
            assert!(parse_header(&other).is_none(), "version {version}");
        }
    }

    #[test]
    fn far_old_sequence_numbers_are_refused() {
        let (mut a, mut b) = pair();
        let first = a.seal(2, b"0");
        for _ in 0..200 {
            let m = a.seal(2, b".");
            assert!(b.open(&m).is_ok());
        }
        assert!(b.open(&first).is_err());
        assert_eq!(b.counters().replayed, 1);
    }
}
