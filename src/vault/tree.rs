//! The record tree: a sparse Merkle tree over the record table, so that a
//! node keeps only the root in trusted memory and the untrusted host keeps
//! the leaves and inner nodes (SPEC.md §8.5).
//!
//! Sans-I/O. The tree is keyed by [`RecordId`] (256 bits, most significant
//! bit first) and compressed: an empty subtree is [`EMPTY`] (32 zero bytes,
//! stored nowhere) and a subtree that holds a single record is that record's
//! leaf, at the depth where its id first differs from every other id. So a
//! path is about `log2(records) + 1` nodes long, not 256.
//!
//! ```text
//! value(slot) = SHA-256("bkv-tree-value/v1" || slot bytes (§8.4))
//! leaf(id, v) = SHA-256("bkv-tree-leaf/v1"  || id || v)
//! inner(l, r) = SHA-256("bkv-tree-inner/v1" || l || r)
//! ```
//!
//! A [`Proof`] for an id is the path from the root to where the id is or
//! would be: the node found there (nothing, the id's own leaf, or another
//! record's leaf whose id shares the path), the siblings along the way, and
//! the deepest sibling opened (an inner node's two children, or a leaf's id
//! and value), which is what lets a removal be computed from the proof
//! alone. [`Proof::check`] verifies it against a root and says what it
//! proves; [`Proof::set`] and [`Proof::remove`] check it, then compute the
//! new root and the node rows that change ([`TreeUpdate`]), for the host to
//! store. [`prove`] builds a proof from any node lookup (the host's side);
//! [`MemoryTree`] keeps nodes in memory (tests, benches).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest as _, Sha256};

use crate::error::WireError;
use crate::types::{RecordId, RECORD_ID_LEN};

/// A node's hash.
pub type Hash = [u8; 32];

/// The hash of an empty subtree, and the root of an empty tree.
pub const EMPTY: Hash = [0; 32];

/// Proof encoding version (SPEC.md §8.5).
pub const PROOF_VERSION: u8 = 1;
/// Node row encoding version (SPEC.md §8.5).
pub const NODE_VERSION: u8 = 1;
/// Length of an encoded [`Node`].
pub const NODE_LEN: usize = 2 + 64;
/// Length of an encoded [`NodeKey`].
pub const NODE_KEY_LEN: usize = 2 + RECORD_ID_LEN;
/// Deepest a node can lie: two ids that differ only in their last bit split
/// at depth 255 and their leaves lie at 256.
pub const MAX_DEPTH: usize = 256;

const VALUE_DOMAIN: &[u8] = b"bkv-tree-value/v1";
const LEAF_DOMAIN: &[u8] = b"bkv-tree-leaf/v1";
const INNER_DOMAIN: &[u8] = b"bkv-tree-inner/v1";

/// The value hash of a record slot's bytes (§8.4).
pub fn value_hash(slot_bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(VALUE_DOMAIN);
    h.update(slot_bytes);
    h.finalize().into()
}

/// A leaf's hash.
pub fn leaf_hash(id: &RecordId, value: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(LEAF_DOMAIN);
    h.update(id.as_bytes());
    h.update(value);
    h.finalize().into()
}

/// An inner node's hash.
pub fn inner_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(INNER_DOMAIN);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Bit `i` (0 = the most significant bit of byte 0) of an id; 0 past 255.
fn bit(id: &[u8; RECORD_ID_LEN], i: usize) -> u8 {
    id.get(i / 8).map_or(0, |b| (b >> (7 - (i % 8))) & 1)
}

/// How many leading bits two ids share (256 if equal).
fn common_prefix(a: &[u8; RECORD_ID_LEN], b: &[u8; RECORD_ID_LEN]) -> usize {
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        let d = x ^ y;
        if d != 0 {
            return i * 8 + d.leading_zeros() as usize;
        }
    }
    MAX_DEPTH
}

/// Where a node lies: its depth and the path to it (the first `depth` bits
/// of any id below it; the other bits are zero).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey {
    depth: u16,
    prefix: [u8; RECORD_ID_LEN],
}

impl NodeKey {
    /// The node at `depth` on the path of `id`. `depth` is clamped to 256.
    pub fn on_path(id: &RecordId, depth: usize) -> Self {
        let depth = depth.min(MAX_DEPTH);
        let mut prefix = [0u8; RECORD_ID_LEN];
        for (i, (p, b)) in prefix.iter_mut().zip(id.as_bytes().iter()).enumerate() {
            let start = i * 8;
            if start + 8 <= depth {
                *p = *b;
            } else if start < depth {
                *p = b & (0xffu8 << (8 - (depth - start)));
            }
        }
        Self {
            depth: depth as u16,
            prefix,
        }
    }

    /// The root's position.
    pub fn root() -> Self {
        Self {
            depth: 0,
            prefix: [0; RECORD_ID_LEN],
        }
    }

    /// The node's depth (0 = root).
    pub fn depth(&self) -> usize {
        usize::from(self.depth)
    }

    /// `u16be depth || prefix (32)`; sorts as the key does.
    pub fn to_bytes(&self) -> [u8; NODE_KEY_LEN] {
        let mut out = [0u8; NODE_KEY_LEN];
        let (d, p) = out.split_at_mut(2);
        d.copy_from_slice(&self.depth.to_be_bytes());
        p.copy_from_slice(&self.prefix);
        out
    }

    /// Strict decoding: exact length, depth ≤ 256, no bit set past the depth.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() != NODE_KEY_LEN {
            return Err(WireError::Length {
                expected: NODE_KEY_LEN,
                found: bytes.len(),
            });
        }
        let (d, p) = bytes.split_at(2);
        let depth = u16::from_be_bytes([
            d.first().copied().unwrap_or(0),
            d.get(1).copied().unwrap_or(0),
        ]);
        if usize::from(depth) > MAX_DEPTH {
            return Err(WireError::InvalidField("node depth"));
        }
        let mut prefix = [0u8; RECORD_ID_LEN];
        prefix.copy_from_slice(p);
        let key = Self::on_path(&RecordId(prefix), usize::from(depth));
        if key.prefix != prefix {
            return Err(WireError::InvalidField("node path"));
        }
        Ok(key)
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({}, ", self.depth)?;
        for b in self.prefix.iter().take(self.depth().div_ceil(8).min(8)) {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A stored node: what the host keeps at a [`NodeKey`]. Empty subtrees are
/// not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// An inner node with its children's hashes (at least two records
    /// below it).
    Inner {
        /// The child whose path continues with bit 0.
        left: Hash,
        /// The child whose path continues with bit 1.
        right: Hash,
    },
    /// The one record of its subtree.
    Leaf {
        /// The record's id.
        id: RecordId,
        /// [`value_hash`] of its slot bytes.
        value: Hash,
    },
}

impl Node {
    /// The node's hash.
    pub fn hash(&self) -> Hash {
        match self {
            Self::Inner { left, right } => inner_hash(left, right),
            Self::Leaf { id, value } => leaf_hash(id, value),
        }
    }

    /// `u8 version = 1 || u8 tag (1 inner, 2 leaf) || left || right` or
    /// `|| id || value`: 66 bytes.
    pub fn to_bytes(&self) -> [u8; NODE_LEN] {
        let mut out = [0u8; NODE_LEN];
        let (head, body) = out.split_at_mut(2);
        let (a, b) = body.split_at_mut(32);
        match self {
            Self::Inner { left, right } => {
                head.copy_from_slice(&[NODE_VERSION, 1]);
                a.copy_from_slice(left);
                b.copy_from_slice(right);
            }
            Self::Leaf { id, value } => {
                head.copy_from_slice(&[NODE_VERSION, 2]);
                a.copy_from_slice(id.as_bytes());
                b.copy_from_slice(value);
            }
        }
        out
    }

    /// Strict decoding: version, tag, exact length; an inner node with two
    /// empty children is refused (it cannot occur in the tree).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let (&version, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        if version != NODE_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let (&tag, _) = rest.split_first().ok_or(WireError::Empty)?;
        if tag != 1 && tag != 2 {
            return Err(WireError::UnknownType(tag));
        }
        if bytes.len() != NODE_LEN {
            return Err(WireError::Length {
                expected: NODE_LEN,
                found: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes.get(2..).unwrap_or(&[]));
        let a = r.hash()?;
        let b = r.hash()?;
        decode_node(tag, a, b)
    }
}

fn decode_node(tag: u8, a: Hash, b: Hash) -> Result<Node, WireError> {
    match tag {
        1 if a == EMPTY && b == EMPTY => Err(WireError::InvalidField("inner node")),
        1 => Ok(Node::Inner { left: a, right: b }),
        2 => Ok(Node::Leaf {
            id: RecordId(a),
            value: b,
        }),
        t => Err(WireError::UnknownType(t)),
    }
}

/// Why a proof was refused, or a tree could not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// The proof does not decode (SPEC.md §8.5).
    Malformed(WireError),
    /// The proof does not lead to the root the node trusts: a wrong leaf,
    /// a wrong sibling, or a proof against another (older) root.
    RootMismatch,
    /// A leaf in the proof lies off the path of the id it is for.
    LeafOffPath,
    /// The proof describes a shape the tree never has (a lone leaf beside an
    /// empty subtree), or its opened deepest sibling is not the sibling it
    /// folds with.
    NotCanonical,
    /// The node store lacks a node the tree's shape requires, or holds one
    /// that does not fit (the host's store is damaged or edited).
    BrokenStore,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed record proof: {e}"),
            Self::RootMismatch => f.write_str("record proof does not match the trusted root"),
            Self::LeafOffPath => f.write_str("record proof holds a leaf off the record's path"),
            Self::NotCanonical => f.write_str("record proof describes a shape the tree never has"),
            Self::BrokenStore => {
                f.write_str("the record tree's node store is missing or mangles a node")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProofError {}

impl From<WireError> for ProofError {
    fn from(e: WireError) -> Self {
        Self::Malformed(e)
    }
}

/// The path to an id's place in the tree. See the module documentation and
/// SPEC.md §8.5 for the encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct Proof {
    /// What lies at the end of the path: `None` for an empty subtree.
    end: Option<Node>,
    /// Siblings from the root's children down, one per level above the end;
    /// the last is `deepest`'s hash.
    siblings: Vec<Hash>,
    /// The deepest sibling, opened (present iff `siblings` is not empty).
    deepest: Option<Node>,
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proof")
            .field("depth", &self.siblings.len())
            .field("end", &self.end)
            .field("deepest", &self.deepest)
            .finish()
    }
}

/// What a proof shows about its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The id is absent.
    Absent,
    /// The id is present with this value hash.
    Present(Hash),
}

/// A new root and the node rows to write for it: `None` removes the row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeUpdate {
    /// The root after the change.
    pub root: Hash,
    /// Rows that change, in no particular order, each key at most once.
    pub writes: Vec<(NodeKey, Option<Node>)>,
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::InvalidField("proof truncated"));
        }
        let (a, b) = self.bytes.split_at(n);
        self.bytes = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    fn hash(&mut self) -> Result<Hash, WireError> {
        let mut h = [0u8; 32];
        h.copy_from_slice(self.take(32)?);
        Ok(h)
    }
}

impl Proof {
    /// The path's length: the depth of the node at its end.
    pub fn depth(&self) -> usize {
        self.siblings.len()
    }

    /// Encoding (SPEC.md §8.5):
    ///
    /// ```text
    /// u8 version = 1 || u8 end (0 empty, 1 inner, 2 leaf) || [end ≠ 0: 64 bytes of the node]
    /// || u16be depth (≤ 256)
    /// || [depth ≥ 1: bitmap of the siblings at levels 0..depth-1 that are not empty,
    ///     ⌈(depth−1)/8⌉ bytes, most significant bit first, unused bits 0
    ///     || one hash per set bit || u8 deepest tag (1 inner, 2 leaf) || 64 bytes]
    /// ```
    ///
    /// An `end` of 1 (inner) is never produced and is refused: a path ends
    /// at a leaf or an empty subtree.
    pub fn to_bytes(&self) -> Vec<u8> {
        let depth = self.depth();
        let mut out = Vec::with_capacity(4 + 64 + 65 + depth.saturating_sub(1) * 33);
        out.push(PROOF_VERSION);
        match &self.end {
            None => out.push(0),
            Some(n) => {
                let b = n.to_bytes();
                out.extend_from_slice(b.get(1..).unwrap_or(&[]));
            }
        }
        out.extend_from_slice(&(depth as u16).to_be_bytes());
        if let Some(upper) = depth.checked_sub(1) {
            let mut bitmap = alloc::vec![0u8; upper.div_ceil(8)];
            let mut hashes = Vec::new();
            for (i, s) in self.siblings.iter().take(upper).enumerate() {
                if *s != EMPTY {
                    if let Some(b) = bitmap.get_mut(i / 8) {
                        *b |= 0x80 >> (i % 8);
                    }
                    hashes.extend_from_slice(s);
                }
            }
            out.extend_from_slice(&bitmap);
            out.extend_from_slice(&hashes);
            if let Some(d) = &self.deepest {
                let b = d.to_bytes();
                out.extend_from_slice(b.get(1..).unwrap_or(&[]));
            }
        }
        out
    }

    /// Strict decoding: version, tags, depth ≤ 256, bitmap padding zero,
    /// no listed sibling equal to the empty hash (it is a clear bit), no
    /// trailing bytes, and no shape the tree never has (an empty end
    /// beside a lone leaf, an inner node with two empty children).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let (&version, _) = bytes.split_first().ok_or(WireError::Empty)?;
        if version != PROOF_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let mut r = Reader::new(bytes.get(1..).unwrap_or(&[]));
        let end = match r.u8()? {
            0 => None,
            2 => {
                let a = r.hash()?;
                let b = r.hash()?;
                Some(decode_node(2, a, b)?)
            }
            t => return Err(WireError::UnknownType(t)),
        };
        let d = r.take(2)?;
        let depth = usize::from(u16::from_be_bytes([
            d.first().copied().unwrap_or(0),
            d.get(1).copied().unwrap_or(0),
        ]));
        if depth > MAX_DEPTH {
            return Err(WireError::InvalidField("proof depth"));
        }
        let mut siblings = Vec::with_capacity(depth);
        let mut deepest = None;
        if let Some(upper) = depth.checked_sub(1) {
            let bitmap = r.take(upper.div_ceil(8))?;
            for i in 0..upper {
                let set = bitmap
                    .get(i / 8)
                    .is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
                let sibling = if set { r.hash()? } else { EMPTY };
                // An empty subtree is a clear bit, never a listed hash: one
                // encoding per proof.
                if set && sibling == EMPTY {
                    return Err(WireError::InvalidField("proof lists an empty sibling"));
                }
                siblings.push(sibling);
            }
            if upper % 8 != 0 {
                let last = bitmap.last().copied().unwrap_or(0);
                if last & (0xffu8 >> (upper % 8)) != 0 {
                    return Err(WireError::InvalidField("proof bitmap padding"));
                }
            }
            let tag = r.u8()?;
            if tag != 1 && tag != 2 {
                return Err(WireError::UnknownType(tag));
            }
            let a = r.hash()?;
            let b = r.hash()?;
            let node = decode_node(tag, a, b)?;
            if end.is_none() && matches!(node, Node::Leaf { .. }) {
                return Err(WireError::InvalidField("lone leaf beside an empty subtree"));
            }
            siblings.push(node.hash());
            deepest = Some(node);
        }
        if !r.bytes.is_empty() {
            return Err(WireError::InvalidField("trailing bytes after proof"));
        }
        Ok(Self {
            end,
            siblings,
            deepest,
        })
    }

    /// Hashes from `h` at depth `from` up to the root along `id`'s path,
    /// using this proof's siblings at the levels above `from`.
    fn fold_up(&self, id: &RecordId, from: usize, mut h: Hash) -> Hash {
        for level in (0..from).rev() {
            let s = self.siblings.get(level).copied().unwrap_or(EMPTY);
            h = if bit(id.as_bytes(), level) == 0 {
                inner_hash(&h, &s)
            } else {
                inner_hash(&s, &h)
            };
        }
        h
    }

    /// The root this proof leads to for `id`: the end's hash folded up the
    /// path, with no other check. For fuzzing and property tests, which
    /// need a root a proof fits to exercise [`Proof::set`] and
    /// [`Proof::remove`] past the check; a node checks against the root it
    /// trusts ([`Proof::check`]).
    #[doc(hidden)]
    pub fn implied_root(&self, id: &RecordId) -> Hash {
        let end = self.end.as_ref().map_or(EMPTY, Node::hash);
        self.fold_up(id, self.depth(), end)
    }

    /// Checks the proof for `id` against `root` and says what it proves.
    pub fn check(&self, root: &Hash, id: &RecordId) -> Result<Lookup, ProofError> {
        let depth = self.depth();
        // The last sibling is the opened deepest one's hash: the decoder and
        // `prove` build it so, and the fold (and a removal's lifted leaf)
        // must not rest on two different nodes.
        match (self.siblings.last(), &self.deepest) {
            (None, None) => {}
            (Some(last), Some(deepest)) if *last == deepest.hash() => {}
            _ => return Err(ProofError::NotCanonical),
        }
        if let (Some(Node::Leaf { id: other, .. }), Some(upper)) =
            (&self.deepest, depth.checked_sub(1))
        {
            // The deepest sibling's leaf lies in the sibling subtree.
            if common_prefix(other.as_bytes(), id.as_bytes()) != upper {
                return Err(ProofError::LeafOffPath);
            }
        }
        let (lookup, end_hash) = match &self.end {
            None => (Lookup::Absent, EMPTY),
            Some(node @ Node::Leaf { id: at, value }) => {
                if common_prefix(at.as_bytes(), id.as_bytes()) < depth {
                    return Err(ProofError::LeafOffPath);
                }
                let l = if at == id {
                    Lookup::Present(*value)
                } else {
                    Lookup::Absent
                };
                (l, node.hash())
            }
            Some(Node::Inner { .. }) => return Err(ProofError::NotCanonical),
        };
        if self.end.is_none() && matches!(self.deepest, Some(Node::Leaf { .. })) {
            return Err(ProofError::NotCanonical);
        }
        if self.fold_up(id, depth, end_hash) != *root {
            return Err(ProofError::RootMismatch);
        }
        Ok(lookup)
    }

    /// Checks the proof, then computes the tree with `id` set to `value`
    /// (inserted or replaced).
    pub fn set(&self, root: &Hash, id: &RecordId, value: &Hash) -> Result<TreeUpdate, ProofError> {
        self.check(root, id)?;
        Ok(self.set_checked(id, value))
    }

    /// [`Proof::set`] for a proof already checked against the root: saves
    /// the second fold up the path.
    pub(crate) fn set_checked(&self, id: &RecordId, value: &Hash) -> TreeUpdate {
        let depth = self.depth();
        let leaf = Node::Leaf {
            id: *id,
            value: *value,
        };
        let mut writes = Vec::new();
        let sub = match &self.end {
            Some(Node::Leaf {
                id: other,
                value: other_value,
            }) if other != id => {
                // Another record holds the place: push both down to where
                // their ids first differ.
                let split = common_prefix(other.as_bytes(), id.as_bytes());
                let moved = Node::Leaf {
                    id: *other,
                    value: *other_value,
                };
                writes.push((NodeKey::on_path(other, split + 1), Some(moved)));
                writes.push((NodeKey::on_path(id, split + 1), Some(leaf)));
                let (mine, theirs) = (leaf.hash(), moved.hash());
                let mut node = if bit(id.as_bytes(), split) == 0 {
                    Node::Inner {
                        left: mine,
                        right: theirs,
                    }
                } else {
                    Node::Inner {
                        left: theirs,
                        right: mine,
                    }
                };
                for level in (depth..=split).rev() {
                    writes.push((NodeKey::on_path(id, level), Some(node)));
                    if level == depth {
                        break;
                    }
                    let h = node.hash();
                    node = if bit(id.as_bytes(), level - 1) == 0 {
                        Node::Inner {
                            left: h,
                            right: EMPTY,
                        }
                    } else {
                        Node::Inner {
                            left: EMPTY,
                            right: h,
                        }
                    };
                }
                node.hash()
            }
            _ => {
                writes.push((NodeKey::on_path(id, depth), Some(leaf)));
                leaf.hash()
            }
        };
        let root = self.rewrite_path(id, depth, sub, &mut writes);
        TreeUpdate { root, writes }
    }

    /// Checks the proof, then computes the tree without `id`. Removing an
    /// absent id changes nothing.
    pub fn remove(&self, root: &Hash, id: &RecordId) -> Result<TreeUpdate, ProofError> {
        if self.check(root, id)? == Lookup::Absent {
            return Ok(TreeUpdate {
                root: *root,
                writes: Vec::new(),
            });
        }
        let depth = self.depth();
        let mut writes = alloc::vec![(NodeKey::on_path(id, depth), None)];
        let root = match (&self.deepest, depth.checked_sub(1)) {
            (Some(lone @ Node::Leaf { id: other, .. }), Some(upper)) => {
                // The sibling leaf is now alone under the parent: it rises
                // past every level where the path has no other sibling.
                writes.push((NodeKey::on_path(other, depth), None));
                let mut at = upper;
                while at > 0 && self.siblings.get(at - 1).is_some_and(|s| *s == EMPTY) {
                    writes.push((NodeKey::on_path(id, at), None));
                    at -= 1;
                }
                writes.push((NodeKey::on_path(id, at), Some(*lone)));
                self.rewrite_path(id, at, lone.hash(), &mut writes)
            }
            _ => self.rewrite_path(id, depth, EMPTY, &mut writes),
        };
        Ok(TreeUpdate { root, writes })
    }

    /// Rehashes the inner nodes above depth `from` on `id`'s path, whose
    /// node at `from` now hashes to `h`, recording each one's new row.
    fn rewrite_path(
        &self,
        id: &RecordId,
        from: usize,
        mut h: Hash,
        writes: &mut Vec<(NodeKey, Option<Node>)>,
    ) -> Hash {
        for level in (0..from).rev() {
            let s = self.siblings.get(level).copied().unwrap_or(EMPTY);
            let node = if bit(id.as_bytes(), level) == 0 {
                Node::Inner { left: h, right: s }
            } else {
                Node::Inner { left: s, right: h }
            };
            h = node.hash();
            writes.push((NodeKey::on_path(id, level), Some(node)));
        }
        h
    }
}

/// Builds the proof for `id` from a node lookup (the host's side). The
/// lookup returns the node stored at a key, or `None` for an empty subtree.
/// A store whose nodes do not fit together (a child hash with no node, or a
/// node whose hash is not what its parent says) gives
/// [`ProofError::BrokenStore`]; a proof is not checked here, the node checks
/// it against its root.
pub fn prove<E>(
    mut lookup: impl FnMut(&NodeKey) -> Result<Option<Node>, E>,
    id: &RecordId,
) -> Result<Result<Proof, ProofError>, E> {
    let mut siblings = Vec::new();
    let mut node = lookup(&NodeKey::root())?;
    let mut depth = 0usize;
    loop {
        match node {
            None | Some(Node::Leaf { .. }) => break,
            Some(Node::Inner { left, right }) => {
                if depth >= MAX_DEPTH {
                    return Ok(Err(ProofError::BrokenStore));
                }
                let (next, sib) = if bit(id.as_bytes(), depth) == 0 {
                    (left, right)
                } else {
                    (right, left)
                };
                siblings.push(sib);
                depth += 1;
                node = if next == EMPTY {
                    None
                } else {
                    match lookup(&NodeKey::on_path(id, depth))? {
                        Some(n) if n.hash() == next => Some(n),
                        _ => return Ok(Err(ProofError::BrokenStore)),
                    }
                };
            }
        }
    }
    let deepest = match depth.checked_sub(1) {
        None => None,
        Some(upper) => {
            let mut key = NodeKey::on_path(id, depth);
            // The sibling's path: ours with the bit at `upper` flipped.
            if let Some(b) = key.prefix.get_mut(upper / 8) {
                *b ^= 0x80 >> (upper % 8);
            }
            match lookup(&key)? {
                Some(n) if Some(&n.hash()) == siblings.last() => Some(n),
                _ => return Ok(Err(ProofError::BrokenStore)),
            }
        }
    };
    Ok(Ok(Proof {
        end: node,
        siblings,
        deepest,
    }))
}

/// A whole tree in memory: the host's side, for tests and benches. Not for
/// a node's trusted memory (that holds only the root).
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    nodes: BTreeMap<NodeKey, Node>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The root hash ([`EMPTY`] for an empty tree).
    pub fn root(&self) -> Hash {
        self.nodes.get(&NodeKey::root()).map_or(EMPTY, Node::hash)
    }

    /// The proof for `id`.
    pub fn prove(&self, id: &RecordId) -> Result<Proof, ProofError> {
        match prove(
            |k| Ok::<_, core::convert::Infallible>(self.nodes.get(k).copied()),
            id,
        ) {
            Ok(p) => p,
            Err(never) => match never {},
        }
    }

    /// Stores the rows of an update.
    pub fn apply(&mut self, update: &TreeUpdate) {
        for (k, n) in &update.writes {
            match n {
                Some(n) => {
                    self.nodes.insert(*k, *n);
                }
                None => {
                    self.nodes.remove(k);
                }
            }
        }
    }

    /// Sets `id` to `value`, through a proof, as a node would.
    pub fn set(&mut self, id: &RecordId, value: &Hash) -> Result<Hash, ProofError> {
        let update = self.prove(id)?.set(&self.root(), id, value)?;
        self.apply(&update);
        Ok(update.root)
    }

    /// Removes `id`, through a proof, as a node would.
    pub fn remove(&mut self, id: &RecordId) -> Result<Hash, ProofError> {
        let update = self.prove(id)?.remove(&self.root(), id)?;
        self.apply(&update);
        Ok(update.root)
    }

    /// The stored rows, in key order.
    pub fn nodes(&self) -> impl Iterator<Item = (&NodeKey, &Node)> {
        self.nodes.iter()
    }

    /// Number of stored rows.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Replaces a stored row (the host's power: tests use it to lie).
    pub fn put_node(&mut self, key: NodeKey, node: Option<Node>) {
        match node {
            Some(n) => {
                self.nodes.insert(key, n);
            }
            None => {
                self.nodes.remove(&key);
            }
        }
    }
}

/// The root of a set of records computed directly from the set, without
/// proofs: a reference for tests (the proof arithmetic is compared against
/// it), not for a node. It recurses once per shared bit of the ids, up to
/// 256 deep, and holds the whole set in memory.
#[doc(hidden)]
pub fn root_of(records: &BTreeMap<RecordId, Hash>) -> Hash {
    fn sub(items: &[(RecordId, Hash)], depth: usize) -> Hash {
        match items {
            [] => EMPTY,
            [(id, v)] => leaf_hash(id, v),
            _ => {
                let split = items.partition_point(|(id, _)| bit(id.as_bytes(), depth) == 0);
                let (l, r) = items.split_at(split);
                inner_hash(&sub(l, depth + 1), &sub(r, depth + 1))
            }
        }
    }
    let items: Vec<(RecordId, Hash)> = records.iter().map(|(k, v)| (*k, *v)).collect();
    sub(&items, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn id(bytes: &[u8]) -> RecordId {
        let mut a = [0u8; 32];
        a[..bytes.len()].copy_from_slice(bytes);
        RecordId(a)
    }

    fn v(n: u8) -> Hash {
        value_hash(&[n])
    }

    /// Ids spread at the top and pairs that share long prefixes, so that
    /// paths of many depths occur, including 256.
    fn ids() -> Vec<RecordId> {
        let mut out = vec![
            id(&[0x00]),
            id(&[0x80]),
            id(&[0x40]),
            id(&[0x41]),
            id(&[0xc0, 0x01]),
            id(&[0xc0, 0x00]),
        ];
        let mut last = [0xffu8; 32];
        out.push(RecordId(last));
        last[31] = 0xfe;
        out.push(RecordId(last));
        for i in 0..40u8 {
            out.push(RecordId(value_hash(&[i, 7])));
        }
        out
    }

    fn hex(b: &[u8]) -> alloc::string::String {
        b.iter().map(|x| alloc::format!("{x:02x}")).collect()
    }

    /// Pins the hashes and the proof encoding of SPEC.md §8.5: a change to
    /// a domain string, the bit order or the layout fails here. The two
    /// values were computed apart from this code, from SPEC.md's text alone
    /// (Python's hashlib: the reference root of the four ids, and the
    /// proof's fields laid out by hand), and agree with it.
    #[test]
    fn known_answers() {
        let mut t = MemoryTree::new();
        for n in [0x00u8, 0x80, 0x40, 0x41] {
            t.set(&id(&[n]), &value_hash(&[n])).unwrap();
        }
        let proof = t.prove(&id(&[0x41])).unwrap().to_bytes();
        assert_eq!(
            hex(&t.root()),
            "cfcacc998dd69440bcb18f4c4a3f6c077962a375d675b56c4b3a08e6f6cc5a05"
        );
        assert_eq!(
            hex(&proof),
            concat!(
                "0102",
                "4100000000000000000000000000000000000000000000000000000000000000",
                "c530500c738e44529d3ac045a1e6e8e06092a61a6f6a866d4af7fa29ed09c16c",
                "0008",
                "c0",
                "f08228e5cee50e9c029587c3e9b23a761a6bd702376ba019632309d4708b096e",
                "4fe8ac5db91c3e93cc356918f5913cbaa82ffe129f79f4d12e3311214bd43e89",
                "02",
                "4000000000000000000000000000000000000000000000000000000000000000",
                "e5fb8e4bec49ec6a110d897ff18d70f12460d248c0b8b0ea0d1cd4bde5177018",
            )
        );
    }

    #[test]
    fn empty_tree_proves_absence() {
        let t = MemoryTree::new();
        assert_eq!(t.root(), EMPTY);
        let p = t.prove(&id(&[1])).unwrap();
        assert_eq!(p.depth(), 0);
        assert_eq!(p.check(&EMPTY, &id(&[1])), Ok(Lookup::Absent));
    }

    #[test]
    fn inserts_updates_and_removes_match_the_reference_root() {
        let mut t = MemoryTree::new();
        let mut set = BTreeMap::new();
        for (n, i) in ids().iter().enumerate() {
            let root = t.set(i, &v(n as u8)).unwrap();
            set.insert(*i, v(n as u8));
            assert_eq!(root, root_of(&set));
        }
        // Every id present, with its value; proofs round-trip their bytes.
        for (i, val) in &set {
            let p = t.prove(i).unwrap();
            assert_eq!(Proof::from_bytes(&p.to_bytes()).unwrap(), p);
            assert_eq!(p.check(&t.root(), i), Ok(Lookup::Present(*val)));
        }
        // Updates in place.
        for (n, i) in ids().iter().enumerate().step_by(3) {
            t.set(i, &v(100 + n as u8)).unwrap();
            set.insert(*i, v(100 + n as u8));
            assert_eq!(t.root(), root_of(&set));
        }
        // Removes, down to the empty tree, each leaving the canonical tree
        // (the same root and rows as building the rest from scratch).
        for i in ids().iter().rev() {
            t.remove(i).unwrap();
            set.remove(i);
            assert_eq!(t.root(), root_of(&set));
            let mut fresh = MemoryTree::new();
            for (k, val) in &set {
                fresh.set(k, val).unwrap();
            }
            assert!(t.nodes().eq(fresh.nodes()), "rows differ after removal");
        }
        assert_eq!(t.root(), EMPTY);
        assert_eq!(t.node_count(), 0);
    }

    #[test]
    fn absence_proofs_at_an_empty_subtree_and_at_another_leaf() {
        let mut t = MemoryTree::new();
        for (n, i) in ids().iter().enumerate() {
            t.set(i, &v(n as u8)).unwrap();
        }
        let root = t.root();
        // An absent id whose path ends at another record's leaf.
        let near = absent(&t, true);
        let p = t.prove(&near).unwrap();
        assert!(matches!(p.end, Some(Node::Leaf { id, .. }) if id != near));
        assert_eq!(p.check(&root, &near), Ok(Lookup::Absent));
        // One whose path ends at an empty subtree.
        let gap = absent(&t, false);
        let p = t.prove(&gap).unwrap();
        assert_eq!(p.end, None);
        assert_eq!(p.check(&root, &gap), Ok(Lookup::Absent));
        // Removing an absent id changes nothing.
        assert_eq!(p.remove(&root, &gap).unwrap().writes, vec![]);
        // A present id's proof is not an absence proof for a neighbour
        // off its path.
        let present = t.prove(&id(&[0x40])).unwrap();
        assert_eq!(
            present.check(&root, &id(&[0x00])),
            Err(ProofError::LeafOffPath)
        );
        // Inserting where another leaf ends the path pushes both down.
        let update = t.prove(&near).unwrap().set(&root, &near, &v(9)).unwrap();
        assert!(update.writes.len() > t.prove(&near).unwrap().depth() + 1);
    }

    /// An absent id whose proof ends at another leaf (`at_leaf`) or at an
    /// empty subtree.
    fn absent(t: &MemoryTree, at_leaf: bool) -> RecordId {
        (0..=255u8)
            .map(|i| RecordId(value_hash(&[i, 9])))
            .find(|k| {
                let p = t.prove(k).unwrap();
                p.check(&t.root(), k) == Ok(Lookup::Absent) && p.end.is_some() == at_leaf
            })
            .unwrap()
    }

    #[test]
    fn paths_are_short_for_random_ids() {
        let mut t = MemoryTree::new();
        for i in 0..1024u32 {
            t.set(&RecordId(value_hash(&i.to_be_bytes())), &v(1))
                .unwrap();
        }
        let p = t.prove(&RecordId(value_hash(&7u32.to_be_bytes()))).unwrap();
        assert!(p.depth() >= 10 && p.depth() <= 30, "depth {}", p.depth());
    }

    fn built() -> (MemoryTree, RecordId, Hash) {
        let mut t = MemoryTree::new();
        for (n, i) in ids().iter().enumerate() {
            t.set(i, &v(n as u8)).unwrap();
        }
        let target = ids()[10];
        let val = v(10);
        (t, target, val)
    }

    /// Acceptance (issue 18): a host that answers with a wrong leaf is refused.
    #[test]
    fn a_wrong_leaf_is_refused() {
        let (t, target, _) = built();
        let mut p = t.prove(&target).unwrap();
        p.end = Some(Node::Leaf {
            id: target,
            value: v(99),
        });
        assert_eq!(p.check(&t.root(), &target), Err(ProofError::RootMismatch));
        assert_eq!(
            p.set(&t.root(), &target, &v(1)),
            Err(ProofError::RootMismatch)
        );
        // Claiming absence for a present record is refused too: here the
        // deepest sibling is a leaf, and a lone leaf beside an empty end is
        // a shape the tree never has.
        let mut q = t.prove(&target).unwrap();
        assert!(matches!(q.deepest, Some(Node::Leaf { .. })));
        q.end = None;
        assert_eq!(q.check(&t.root(), &target), Err(ProofError::NotCanonical));
        // The real attack: an honest absence proof for `target`, taken from
        // the tree without it, checked against the root with it.
        let mut without = t.clone();
        without.remove(&target).unwrap();
        let absence = without.prove(&target).unwrap();
        assert_eq!(absence.check(&without.root(), &target), Ok(Lookup::Absent));
        assert_eq!(
            absence.check(&t.root(), &target),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            absence.set(&t.root(), &target, &v(1)),
            Err(ProofError::RootMismatch)
        );
        // And the host's store edited under a leaf is found when proving.
        let mut bad = t.clone();
        let key = NodeKey::on_path(&target, q.depth());
        bad.put_node(
            key,
            Some(Node::Leaf {
                id: target,
                value: v(98),
            }),
        );
        assert_eq!(bad.prove(&target), Err(ProofError::BrokenStore));
    }

    /// Acceptance (issue 18): a wrong sibling is refused.
    #[test]
    fn a_wrong_sibling_is_refused() {
        let (t, target, _) = built();
        let good = t.prove(&target).unwrap();
        assert!(good.depth() >= 2);
        for level in 0..good.depth() - 1 {
            let mut p = good.clone();
            p.siblings[level][0] ^= 1;
            assert_eq!(p.check(&t.root(), &target), Err(ProofError::RootMismatch));
            let mut p = good.clone();
            // An empty sibling made non-empty, or the reverse.
            p.siblings[level] = if p.siblings[level] == EMPTY {
                v(5)
            } else {
                EMPTY
            };
            assert_eq!(p.check(&t.root(), &target), Err(ProofError::RootMismatch));
        }
        let mut p = good.clone();
        p.deepest = Some(Node::Inner {
            left: v(1),
            right: v(2),
        });
        p.siblings.pop();
        p.siblings.push(inner_hash(&v(1), &v(2)));
        assert_eq!(p.check(&t.root(), &target), Err(ProofError::RootMismatch));
        assert_eq!(p.remove(&t.root(), &target), Err(ProofError::RootMismatch));
    }

    /// Acceptance (issue 18): a proof against an older root is refused.
    #[test]
    fn a_stale_root_is_refused() {
        let (mut t, target, _) = built();
        let stale = t.prove(&target).unwrap();
        let old_root = t.root();
        // Another record changes: the old proof for `target` no longer
        // leads to the root.
        t.set(&ids()[11], &v(200)).unwrap();
        assert_ne!(t.root(), old_root);
        assert_eq!(
            stale.check(&t.root(), &target),
            Err(ProofError::RootMismatch)
        );
        // The record itself changes: its old value cannot be shown again.
        let (mut t, target, _) = built();
        let stale = t.prove(&target).unwrap();
        t.set(&target, &v(201)).unwrap();
        assert_eq!(
            stale.check(&t.root(), &target),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            stale.set(&t.root(), &target, &v(3)),
            Err(ProofError::RootMismatch)
        );
        // And an old root does not accept a new proof.
        assert_eq!(
            t.prove(&target).unwrap().check(&old_root, &target),
            Err(ProofError::RootMismatch)
        );
    }

    /// The opened deepest sibling must be the one the fold uses.
    #[test]
    fn a_deepest_sibling_unlike_the_last_is_refused() {
        let (t, target, _) = built();
        let good = t.prove(&target).unwrap();
        let mut p = good.clone();
        p.deepest = Some(Node::Inner {
            left: v(1),
            right: v(2),
        });
        assert_eq!(p.check(&t.root(), &target), Err(ProofError::NotCanonical));
        assert_eq!(p.remove(&t.root(), &target), Err(ProofError::NotCanonical));
        let mut p = good.clone();
        p.deepest = None;
        assert_eq!(p.check(&t.root(), &target), Err(ProofError::NotCanonical));
        let mut p = good;
        p.siblings.clear();
        assert_eq!(p.check(&t.root(), &target), Err(ProofError::NotCanonical));
    }

    #[test]
    fn a_leaf_off_the_path_is_refused() {
        let (t, target, _) = built();
        let gap = absent(&t, false);
        let mut p = t.prove(&gap).unwrap();
        // An end leaf whose id leaves the path.
        p.end = Some(Node::Leaf {
            id: RecordId([!gap.0[0]; 32]),
            value: v(0),
        });
        assert_eq!(p.check(&t.root(), &gap), Err(ProofError::LeafOffPath));
        // A deepest sibling leaf not in the sibling subtree: the two
        // ids 0xff..ff and 0xff..fe are each other's deepest sibling.
        let mut q = t.prove(&RecordId([0xff; 32])).unwrap();
        assert!(matches!(q.deepest, Some(Node::Leaf { .. })));
        let off = Node::Leaf {
            id: target,
            value: v(0),
        };
        q.deepest = Some(off);
        // Sent as the decoder builds it: the last sibling is its hash.
        q.siblings.pop();
        q.siblings.push(off.hash());
        assert_eq!(
            q.check(&t.root(), &RecordId([0xff; 32])),
            Err(ProofError::LeafOffPath)
        );
    }

    #[test]
    fn proof_decoding_is_strict() {
        let (t, target, _) = built();
        let good = t.prove(&target).unwrap().to_bytes();
        assert!(Proof::from_bytes(&good).is_ok());
        assert_eq!(Proof::from_bytes(&[]), Err(WireError::Empty));
        let mut b = good.clone();
        b[0] = 2;
        assert_eq!(Proof::from_bytes(&b), Err(WireError::UnsupportedVersion(2)));
        let mut b = good.clone();
        b[1] = 1; // an inner node cannot end a path
        assert_eq!(Proof::from_bytes(&b), Err(WireError::UnknownType(1)));
        let mut b = good.clone();
        b.push(0);
        assert!(Proof::from_bytes(&b).is_err(), "trailing byte");
        for cut in 0..good.len() {
            assert!(Proof::from_bytes(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Depth past 256.
        let mut b = vec![1, 0];
        b.extend_from_slice(&257u16.to_be_bytes());
        assert_eq!(
            Proof::from_bytes(&b),
            Err(WireError::InvalidField("proof depth"))
        );
        // Bitmap padding.
        let p = t.prove(&target).unwrap();
        let depth = p.depth();
        if (depth - 1) % 8 != 0 {
            let mut b = good.clone();
            let at = 2 + 64 + 2 + (depth - 1).div_ceil(8) - 1;
            b[at] |= 1;
            assert_eq!(
                Proof::from_bytes(&b),
                Err(WireError::InvalidField("proof bitmap padding"))
            );
        }
        // Deepest tag.
        let mut b = good.clone();
        let tag_at = good.len() - 65;
        b[tag_at] = 3;
        assert_eq!(Proof::from_bytes(&b), Err(WireError::UnknownType(3)));
        // An empty end beside a lone leaf.
        let mut b = vec![1, 0, 0, 1, 2];
        b.extend_from_slice(&[7; 64]);
        assert_eq!(
            Proof::from_bytes(&b),
            Err(WireError::InvalidField("lone leaf beside an empty subtree"))
        );
        // An empty sibling is a clear bit; listed as a hash, it would be a
        // second encoding of the same proof (found by CI's fuzz run).
        let mut b = vec![1, 0, 0, 2, 0x80];
        b.extend_from_slice(&EMPTY);
        b.push(1);
        b.extend_from_slice(&[7; 64]);
        assert_eq!(
            Proof::from_bytes(&b),
            Err(WireError::InvalidField("proof lists an empty sibling"))
        );
        let mut b = vec![1, 0, 0, 2, 0];
        b.push(1);
        b.extend_from_slice(&[7; 64]);
        let p = Proof::from_bytes(&b).unwrap();
        assert_eq!(p.to_bytes(), b, "the clear bit is the one encoding");
        // An inner node with two empty children.
        let mut b = vec![1, 0, 0, 1, 1];
        b.extend_from_slice(&[0; 64]);
        assert_eq!(
            Proof::from_bytes(&b),
            Err(WireError::InvalidField("inner node"))
        );
    }

    #[test]
    fn node_rows_decode_strictly() {
        let n = Node::Leaf {
            id: id(&[3]),
            value: v(3),
        };
        assert_eq!(Node::from_bytes(&n.to_bytes()), Ok(n));
        let i = Node::Inner {
            left: v(1),
            right: EMPTY,
        };
        assert_eq!(Node::from_bytes(&i.to_bytes()), Ok(i));
        let b = n.to_bytes();
        assert_eq!(
            Node::from_bytes(&b[..65]),
            Err(WireError::Length {
                expected: 66,
                found: 65
            })
        );
        let mut c = b;
        c[0] = 9;
        assert_eq!(Node::from_bytes(&c), Err(WireError::UnsupportedVersion(9)));
        let mut c = b;
        c[1] = 0;
        assert_eq!(Node::from_bytes(&c), Err(WireError::UnknownType(0)));
        let k = NodeKey::on_path(&RecordId([0xff; 32]), 13);
        assert_eq!(NodeKey::from_bytes(&k.to_bytes()), Ok(k));
        let mut kb = k.to_bytes();
        kb[2 + 1] |= 1; // a bit past depth 13
        assert_eq!(
            NodeKey::from_bytes(&kb),
            Err(WireError::InvalidField("node path"))
        );
        let mut kb = k.to_bytes();
        kb[..2].copy_from_slice(&257u16.to_be_bytes());
        assert_eq!(
            NodeKey::from_bytes(&kb),
            Err(WireError::InvalidField("node depth"))
        );
        assert!(NodeKey::from_bytes(&kb[..33]).is_err());
    }

    /// Runs check, set and remove for ids that fit `p` (`extra`, the end
    /// leaf's id, and the deepest leaf's id with bit depth − 1 flipped)
    /// against the root `p` implies for each, so that computing an update
    /// is reached, not stopped by the check. Returns how many checked.
    fn updates_from(p: &Proof, extra: RecordId) -> usize {
        let mut ids = vec![extra];
        if let Some(Node::Leaf { id, .. }) = p.end {
            ids.push(id);
        }
        if let (Some(Node::Leaf { id, .. }), Some(upper)) = (p.deepest, p.depth().checked_sub(1)) {
            let mut flipped = id;
            flipped.0[upper / 8] ^= 0x80 >> (upper % 8);
            ids.push(flipped);
        }
        let mut fit = 0;
        for id in ids {
            let root = p.implied_root(&id);
            let checked = p.check(&root, &id);
            assert_ne!(checked, Err(ProofError::RootMismatch));
            let set = p.set(&root, &id, &v(1));
            assert_eq!(set.is_ok(), checked.is_ok());
            assert_eq!(p.remove(&root, &id).is_ok(), checked.is_ok());
            if let Ok(update) = set {
                fit += 1;
                // The new tree's proof for `id` is the old one's path with
                // the new leaf: checking it against the new root is
                // exercised by `random_operations_match_the_reference`.
                assert!(!update.writes.is_empty());
            }
        }
        fit
    }

    #[test]
    fn updates_from_the_implied_root_are_reached() {
        let (t, target, _) = built();
        let p = t.prove(&target).unwrap();
        assert_eq!(p.implied_root(&target), t.root());
        assert!(updates_from(&p, target) >= 2);
        let gap = absent(&t, false);
        assert!(updates_from(&t.prove(&gap).unwrap(), gap) >= 1);
    }

    proptest::proptest! {
        /// Random bytes, and random bytes under a valid header, never panic
        /// a decoder; whatever decodes re-encodes to the same bytes.
        #[test]
        fn decoders_never_panic_and_round_trip(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            head in proptest::prelude::any::<(u8, u8)>(),
        ) {
            for bytes in [body.clone(), [&[1u8, head.0 % 3, 0, head.1], body.as_slice()].concat()] {
                if let Ok(p) = Proof::from_bytes(&bytes) {
                    proptest::prop_assert_eq!(p.to_bytes(), bytes.clone());
                    let _ = p.check(&EMPTY, &RecordId([head.0; 32]));
                    updates_from(&p, RecordId([head.0; 32]));
                }
                if let Ok(n) = Node::from_bytes(&bytes) {
                    proptest::prop_assert_eq!(n.to_bytes().to_vec(), bytes.clone());
                }
                if let Ok(k) = NodeKey::from_bytes(&bytes) {
                    proptest::prop_assert_eq!(k.to_bytes().to_vec(), bytes.clone());
                }
            }
        }

        /// A valid proof with one byte changed never panics the checker, and
        /// is never accepted for the same id with another answer.
        #[test]
        fn mutated_proofs_never_verify_otherwise(pos in proptest::prelude::any::<proptest::sample::Index>(), byte in proptest::prelude::any::<u8>()) {
            let (t, target, val) = built();
            let mut b = t.prove(&target).unwrap().to_bytes();
            let at = pos.index(b.len());
            if b[at] != byte {
                b[at] = byte;
                if let Ok(p) = Proof::from_bytes(&b) {
                    let r = p.check(&t.root(), &target);
                    proptest::prop_assert!(r.is_err() || r == Ok(Lookup::Present(val)));
                    updates_from(&p, target);
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random inserts, updates and removes over ids drawn from a small
        /// alphabet (so prefixes collide deep) keep the proof arithmetic's
        /// root equal to the reference root.
        #[test]
        fn random_operations_match_the_reference(
            ops in proptest::collection::vec((0u8..3, 0u8..24, 0u8..4, proptest::bool::ANY), 1..80)
        ) {
            let mut t = MemoryTree::new();
            let mut set = BTreeMap::new();
            for (kind, a, val, remove) in ops {
                // Ids differing in the first byte, or only in the last bit.
                let mut bytes = [0u8; 32];
                match kind {
                    0 => bytes[0] = a.wrapping_mul(37),
                    1 => bytes[31] = a,
                    _ => { bytes = [0xaa; 32]; bytes[31] ^= a & 1; bytes[15] ^= a >> 1; }
                }
                let k = RecordId(bytes);
                if remove {
                    t.remove(&k).unwrap();
                    set.remove(&k);
                } else {
                    t.set(&k, &v(val)).unwrap();
                    set.insert(k, v(val));
                }
                proptest::prop_assert_eq!(t.root(), root_of(&set));
                let p = t.prove(&k).unwrap();
                proptest::prop_assert_eq!(Proof::from_bytes(&p.to_bytes()).unwrap(), p.clone());
                let want = set.get(&k).map_or(Lookup::Absent, |x| Lookup::Present(*x));
                proptest::prop_assert_eq!(p.check(&t.root(), &k), Ok(want));
            }
        }
    }
}
