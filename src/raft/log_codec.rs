//! The byte formats a shard's Raft log store writes into its WAL: one log [`Entry`] per WAL
//! record payload, and the [`LogMeta`] (vote, committed, last purged log id) in the WAL's
//! metadata slot. The layouts are documented in `docs/WAL.md` ("Raft entries in the WAL").
//!
//! Invariants:
//! - Every encoding starts with a version byte; a decoder refuses versions it does not know.
//! - Decoding never panics and never allocates more than the input can justify: every
//!   length and count is checked against the bytes that remain before anything is read or
//!   reserved. Trailing bytes after a complete value are an error (no silent slack).
//! - A `Normal` entry's command is a zero-copy slice of the record payload.
//! - A decoded membership went through `Membership::new`, so it satisfies openraft's own
//!   validity rules (every voter has a node); anything else is a decode error.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bytes::Bytes;
use openraft::Membership;
use openraft::impls::leader_id_adv::LeaderId;

use super::types::Entry;
use super::types::EntryPayload;
use super::types::LogId;
use super::types::NodeId;
use super::types::Request;
use super::types::ShoalNode;
use super::types::Vote;

/// Version byte of the entry encoding.
pub const ENTRY_VERSION: u8 = 1;
/// Version byte of the metadata encoding.
pub const META_VERSION: u8 = 1;

/// Header of every encoded entry: version, kind, term, leader node id, index.
pub const ENTRY_HEADER_LEN: usize = 2 + 8 + 8 + 8;

/// Largest joint configuration accepted when decoding (openraft uses 1, or 2 while joint).
pub const MAX_JOINT_CONFIGS: usize = 2;

const KIND_BLANK: u8 = 0;
const KIND_NORMAL: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

const META_HAS_VOTE: u8 = 1;
const META_VOTE_COMMITTED: u8 = 2;
const META_HAS_COMMITTED: u8 = 4;
const META_HAS_PURGED: u8 = 8;
const META_KNOWN_FLAGS: u8 =
    META_HAS_VOTE | META_VOTE_COMMITTED | META_HAS_COMMITTED | META_HAS_PURGED;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended before the value did.
    #[error("truncated {what}: needed {needed} more bytes, {left} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// A version byte this build does not know.
    #[error("unknown {what} version {version}")]
    Version {
        /// Which encoding.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {0}")]
    Invalid(String),
    /// Bytes after the end of a complete value.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

/// A length or count that does not fit the format's integer width.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} of {len} does not fit the log encoding (at most {max})")]
pub struct EncodeError {
    /// Which field.
    pub what: &'static str,
    /// Its length or count.
    pub len: usize,
    /// The most the format holds.
    pub max: usize,
}

/// What the log store keeps in the WAL's metadata slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogMeta {
    /// The last saved vote.
    pub vote: Option<Vote>,
    /// A committed log id whose entry was durable in this log when it was saved (a lower
    /// bound of the real committed id: it is persisted lazily).
    pub committed: Option<LogId>,
    /// The last purged log id: every entry up to its index is gone (or may be dropped).
    pub last_purged: Option<LogId>,
}

/// Builds a log id of a Shoal group.
pub fn log_id(term: u64, node_id: NodeId, index: u64) -> LogId {
    LogId {
        leader_id: LeaderId { term, node_id },
        index,
    }
}

fn put_u16_len(out: &mut Vec<u8>, what: &'static str, len: usize) -> Result<(), EncodeError> {
    let v = u16::try_from(len).map_err(|_| EncodeError {
        what,
        len,
        max: u16::MAX as usize,
    })?;
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn put_u32_len(out: &mut Vec<u8>, what: &'static str, len: usize) -> Result<(), EncodeError> {
    let v = u32::try_from(len).map_err(|_| EncodeError {
        what,
        len,
        max: u32::MAX as usize,
    })?;
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn put_log_id(out: &mut Vec<u8>, id: &LogId) {
    out.extend_from_slice(&id.leader_id.term.to_le_bytes());
    out.extend_from_slice(&id.leader_id.node_id.to_le_bytes());
    out.extend_from_slice(&id.index.to_le_bytes());
}

/// Appends the encoding of `entry` to `out` (`out` is left as it was on error).
pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let r = encode_entry_inner(entry, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn encode_entry_inner(entry: &Entry, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let kind = match &entry.payload {
        EntryPayload::Blank => KIND_BLANK,
        EntryPayload::Normal(_) => KIND_NORMAL,
        EntryPayload::Membership(_) => KIND_MEMBERSHIP,
    };
    out.push(ENTRY_VERSION);
    out.push(kind);
    put_log_id(out, &entry.log_id);
    match &entry.payload {
        EntryPayload::Blank => {}
        // The command runs to the end of the payload: the WAL record holds its length.
        EntryPayload::Normal(req) => out.extend_from_slice(&req.command),
        EntryPayload::Membership(m) => {
            let configs = m.get_joint_config();
            put_u32_len(out, "joint config count", configs.len())?;
            for c in configs {
                put_u32_len(out, "voter count", c.len())?;
                for id in c {
                    out.extend_from_slice(&id.to_le_bytes());
                }
            }
            let nodes: Vec<(&NodeId, &ShoalNode)> = m.nodes().collect();
            put_u32_len(out, "node count", nodes.len())?;
            for (id, node) in nodes {
                out.extend_from_slice(&id.to_le_bytes());
                put_u16_len(out, "client address", node.client_addr.len())?;
                out.extend_from_slice(node.client_addr.as_bytes());
                put_u16_len(out, "peer address", node.peer_addr.len())?;
                out.extend_from_slice(node.peer_addr.as_bytes());
            }
        }
    }
    Ok(())
}

/// A bounds-checked reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if n > self.left() {
            return Err(CodecError::Truncated {
                what,
                needed: n,
                left: self.left(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2, what)?);
        Ok(u16::from_le_bytes(b))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(b))
    }

    fn log_id(&mut self, what: &'static str) -> Result<LogId, CodecError> {
        let term = self.u64(what)?;
        let node = self.u64(what)?;
        let index = self.u64(what)?;
        Ok(log_id(term, node, index))
    }

    /// A count of items of at least `item_len` bytes each, checked against what is left.
    fn count(&mut self, what: &'static str, item_len: usize) -> Result<usize, CodecError> {
        let n = self.u32(what)? as usize;
        let needed = n.saturating_mul(item_len);
        if needed > self.left() {
            return Err(CodecError::Truncated {
                what,
                needed,
                left: self.left(),
            });
        }
        Ok(n)
    }

    fn string(&mut self, what: &'static str) -> Result<String, CodecError> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| CodecError::Invalid(format!("{what}: not UTF-8")))
    }

    fn finish(&self) -> Result<(), CodecError> {
        match self.left() {
            0 => Ok(()),
            n => Err(CodecError::Trailing(n)),
        }
    }
}

/// Decodes one entry from a WAL record payload. `Normal` commands share `buf`'s memory.
pub fn decode_entry(buf: &Bytes) -> Result<Entry, CodecError> {
    let mut r = Reader::new(buf);
    let version = r.u8("entry version")?;
    if version != ENTRY_VERSION {
        return Err(CodecError::Version {
            what: "entry",
            version,
        });
    }
    let kind = r.u8("entry kind")?;
    let id = r.log_id("entry log id")?;
    let payload = match kind {
        KIND_BLANK => {
            r.finish()?;
            EntryPayload::Blank
        }
        KIND_NORMAL => EntryPayload::Normal(Request {
            command: buf.slice(r.pos..),
        }),
        KIND_MEMBERSHIP => {
            let m = decode_membership(&mut r)?;
            r.finish()?;
            EntryPayload::Membership(m)
        }
        k => return Err(CodecError::Invalid(format!("entry kind {k}"))),
    };
    Ok(Entry {
        log_id: id,
        payload,
    })
}

fn decode_membership(r: &mut Reader<'_>) -> Result<Membership<NodeId, ShoalNode>, CodecError> {
    let n_configs = r.count("joint config count", 4)?;
    if n_configs > MAX_JOINT_CONFIGS {
        return Err(CodecError::Invalid(format!(
            "{n_configs} joint configs (at most {MAX_JOINT_CONFIGS})"
        )));
    }
    let mut configs = Vec::with_capacity(n_configs);
    for _ in 0..n_configs {
        let n = r.count("voter count", 8)?;
        let mut voters = BTreeSet::new();
        for _ in 0..n {
            let id = r.u64("voter id")?;
            if voters.last().is_some_and(|last| *last >= id) {
                return Err(CodecError::Invalid(
                    "voter ids not strictly increasing".into(),
                ));
            }
            voters.insert(id);
        }
        configs.push(voters);
    }
    // A node is at least its id and two address lengths.
    let n_nodes = r.count("node count", 12)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..n_nodes {
        let id = r.u64("node id")?;
        if nodes.last_key_value().is_some_and(|(last, _)| *last >= id) {
            return Err(CodecError::Invalid(
                "node ids not strictly increasing".into(),
            ));
        }
        let client_addr = r.string("client address")?;
        let peer_addr = r.string("peer address")?;
        nodes.insert(
            id,
            ShoalNode {
                client_addr,
                peer_addr,
            },
        );
    }
    Membership::new(configs, nodes).map_err(|e| CodecError::Invalid(format!("membership: {e}")))
}

/// Encodes the metadata (at most 74 bytes, well under the WAL's 1 KiB metadata limit).
pub fn encode_meta(meta: &LogMeta) -> Bytes {
    let mut out = Vec::with_capacity(80);
    let mut flags = 0u8;
    if let Some(v) = &meta.vote {
        flags |= META_HAS_VOTE;
        if v.committed {
            flags |= META_VOTE_COMMITTED;
        }
    }
    if meta.committed.is_some() {
        flags |= META_HAS_COMMITTED;
    }
    if meta.last_purged.is_some() {
        flags |= META_HAS_PURGED;
    }
    out.push(META_VERSION);
    out.push(flags);
    if let Some(v) = &meta.vote {
        out.extend_from_slice(&v.leader_id.term.to_le_bytes());
        out.extend_from_slice(&v.leader_id.node_id.to_le_bytes());
    }
    if let Some(c) = &meta.committed {
        put_log_id(&mut out, c);
    }
    if let Some(p) = &meta.last_purged {
        put_log_id(&mut out, p);
    }
    Bytes::from(out)
}

/// Decodes the metadata.
pub fn decode_meta(buf: &[u8]) -> Result<LogMeta, CodecError> {
    let mut r = Reader::new(buf);
    let version = r.u8("meta version")?;
    if version != META_VERSION {
        return Err(CodecError::Version {
            what: "meta",
            version,
        });
    }
    let flags = r.u8("meta flags")?;
    if flags & !META_KNOWN_FLAGS != 0
        || (flags & META_HAS_VOTE == 0 && flags & META_VOTE_COMMITTED != 0)
    {
        return Err(CodecError::Invalid(format!("meta flags {flags:#x}")));
    }
    let mut meta = LogMeta::default();
    if flags & META_HAS_VOTE != 0 {
        let term = r.u64("vote term")?;
        let node_id = r.u64("vote node id")?;
        meta.vote = Some(Vote {
            leader_id: LeaderId { term, node_id },
            committed: flags & META_VOTE_COMMITTED != 0,
        });
    }
    if flags & META_HAS_COMMITTED != 0 {
        meta.committed = Some(r.log_id("committed log id")?);
    }
    if flags & META_HAS_PURGED != 0 {
        meta.last_purged = Some(r.log_id("last purged log id")?);
    }
    r.finish()?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u64) -> ShoalNode {
        ShoalNode {
            client_addr: format!("10.0.0.{i}:7400"),
            peer_addr: format!("10.0.0.{i}:7600"),
        }
    }

    fn round_trip(e: &Entry) -> Entry {
        let mut buf = Vec::new();
        encode_entry(e, &mut buf).unwrap();
        decode_entry(&Bytes::from(buf)).unwrap()
    }

    #[test]
    fn each_payload_kind_round_trips() {
        let blank = Entry {
            log_id: log_id(3, 2, 17),
            payload: EntryPayload::Blank,
        };
        assert_eq!(round_trip(&blank), blank);
        let normal = Entry {
            log_id: log_id(u64::MAX, 0, u64::MAX),
            payload: EntryPayload::Normal(Request {
                command: Bytes::from_static(b"put k v"),
            }),
        };
        assert_eq!(round_trip(&normal), normal);
        let m = Membership::new(
            vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([3, 4])],
            BTreeMap::from([
                (1, node(1)),
                (2, node(2)),
                (3, node(3)),
                (4, node(4)),
                (9, node(9)),
            ]),
        )
        .unwrap();
        let member = Entry {
            log_id: log_id(1, 1, 1),
            payload: EntryPayload::Membership(m),
        };
        assert_eq!(round_trip(&member), member);
        let empty = Entry {
            log_id: log_id(0, 0, 0),
            payload: EntryPayload::Membership(Membership::default()),
        };
        assert_eq!(round_trip(&empty), empty);
    }

    #[test]
    fn blank_entry_layout_is_pinned() {
        let mut buf = Vec::new();
        let e = Entry {
            log_id: log_id(2, 5, 9),
            payload: EntryPayload::Blank,
        };
        encode_entry(&e, &mut buf).unwrap();
        let mut want = vec![ENTRY_VERSION, KIND_BLANK];
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(&9u64.to_le_bytes());
        assert_eq!(buf, want);
    }

    #[test]
    fn every_truncation_of_a_membership_entry_is_an_error() {
        let m = Membership::new(
            vec![BTreeSet::from([1, 2])],
            BTreeMap::from([(1, node(1)), (2, node(2))]),
        )
        .unwrap();
        let mut buf = Vec::new();
        let e = Entry {
            log_id: log_id(1, 1, 1),
            payload: EntryPayload::Membership(m),
        };
        encode_entry(&e, &mut buf).unwrap();
        for cut in 0..buf.len() {
            assert!(
                decode_entry(&Bytes::copy_from_slice(&buf[..cut])).is_err(),
                "cut {cut}"
            );
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(
            decode_entry(&Bytes::from(longer)),
            Err(CodecError::Trailing(1))
        );
    }

    #[test]
    fn a_voter_without_a_node_is_refused() {
        // Hand-built: one config {1}, no nodes.
        let mut buf = vec![ENTRY_VERSION, KIND_MEMBERSHIP];
        buf.extend_from_slice(&[0u8; 24]);
        buf.extend_from_slice(&1u32.to_le_bytes());
        buf.extend_from_slice(&1u32.to_le_bytes());
        buf.extend_from_slice(&1u64.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            decode_entry(&Bytes::from(buf)),
            Err(CodecError::Invalid(_))
        ));
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut buf = vec![ENTRY_VERSION, KIND_MEMBERSHIP];
        buf.extend_from_slice(&[0u8; 24]);
        buf.extend_from_slice(&1u32.to_le_bytes());
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_entry(&Bytes::from(buf)),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn meta_round_trips_and_refuses_junk() {
        let full = LogMeta {
            vote: Some(Vote {
                leader_id: LeaderId {
                    term: 7,
                    node_id: 3,
                },
                committed: true,
            }),
            committed: Some(log_id(7, 3, 100)),
            last_purged: Some(log_id(6, 2, 50)),
        };
        for m in [LogMeta::default(), full] {
            let b = encode_meta(&m);
            assert!(b.len() <= 74);
            assert_eq!(decode_meta(&b), Ok(m));
            for cut in 0..b.len() {
                assert!(decode_meta(&b[..cut]).is_err());
            }
        }
        assert!(decode_meta(&[META_VERSION, 0x10]).is_err());
        assert!(decode_meta(&[META_VERSION, META_VOTE_COMMITTED]).is_err());
        assert!(decode_meta(&[2, 0]).is_err());
    }
}
