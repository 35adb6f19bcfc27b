//! Opcodes: the one-byte operation code of every frame header.
//!
//! Invariants: request opcodes have the high bit clear; the response to a request carries
//! the same opcode with the high bit set ([`Opcode::response`]); [`Opcode::Error`] (0xFF)
//! is the one response opcode shared by every failed request. Peer (Raft) frames use the
//! `0x40..=0x4F` range (requests) and its response twin, so a peer frame arriving on a
//! client port (or the reverse) is recognised and refused. Values are frozen: a new
//! operation takes a new value, an old value is never reused.

use std::fmt;

/// Bit set in the opcode of every response frame.
pub const RESPONSE_BIT: u8 = 0x80;

/// Every opcode of protocol version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Client handshake, first frame of every client connection.
    Hello = 0x01,
    /// Liveness probe; answered without touching Raft.
    Ping = 0x02,
    /// Read one key.
    Get = 0x10,
    /// Read up to `MAX_BATCH_KEYS` keys.
    GetMulti = 0x11,
    /// Write one key.
    Put = 0x12,
    /// Write one key with a time-to-live (milliseconds on the wire).
    PutWithTtl = 0x13,
    /// Delete one key (idempotent).
    Delete = 0x14,
    /// Cluster topology: shard count, hash, nodes, group leaders.
    Topology = 0x20,
    /// Admin: add a learner to one Raft group.
    AddLearner = 0x30,
    /// Admin: change the voter set of one Raft group.
    ChangeMembership = 0x31,
    /// Admin: Raft status of one or all groups of the answering node.
    Status = 0x32,
    /// Peer handshake, first frame of every peer connection.
    PeerHello = 0x40,
    /// A Raft RPC (append entries, vote, snapshot chunk, transfer leader).
    PeerRpc = 0x41,
    /// Response twin of [`Opcode::Hello`].
    HelloResp = 0x81,
    /// Response twin of [`Opcode::Ping`].
    Pong = 0x82,
    /// Response twin of [`Opcode::Get`].
    GetResp = 0x90,
    /// Response twin of [`Opcode::GetMulti`].
    GetMultiResp = 0x91,
    /// Response twin of [`Opcode::Put`].
    PutResp = 0x92,
    /// Response twin of [`Opcode::PutWithTtl`].
    PutWithTtlResp = 0x93,
    /// Response twin of [`Opcode::Delete`].
    DeleteResp = 0x94,
    /// Response twin of [`Opcode::Topology`].
    TopologyResp = 0xA0,
    /// Response twin of [`Opcode::AddLearner`].
    AddLearnerResp = 0xB0,
    /// Response twin of [`Opcode::ChangeMembership`].
    ChangeMembershipResp = 0xB1,
    /// Response twin of [`Opcode::Status`].
    StatusResp = 0xB2,
    /// Response twin of [`Opcode::PeerHello`].
    PeerHelloResp = 0xC0,
    /// Response twin of [`Opcode::PeerRpc`].
    PeerRpcResp = 0xC1,
    /// A failed client request of any opcode; the header status says why.
    Error = 0xFF,
    /// Conditional set (NX/XX, old value, keep/clear/absolute expiry), atomic.
    SetIf = 0x15,
    /// Set a key's absolute expiry under NX/XX/GT/LT.
    Expire = 0x16,
    /// Drop a key's expiry.
    Persist = 0x17,
    /// Delete up to `MAX_BATCH_KEYS` keys of one shard, counting the live ones.
    DeleteMulti = 0x18,
    /// Read a key's expiry.
    Ttl = 0x19,
    /// Response twin of [`Opcode::SetIf`].
    SetIfResp = 0x95,
    /// Response twin of [`Opcode::Expire`].
    ExpireResp = 0x96,
    /// Response twin of [`Opcode::Persist`].
    PersistResp = 0x97,
    /// Response twin of [`Opcode::DeleteMulti`].
    DeleteMultiResp = 0x98,
    /// Response twin of [`Opcode::Ttl`].
    TtlResp = 0x99,
    /// Keys stored by one group on the answering node (Redis DBSIZE / INFO keyspace).
    KeyCount = 0x1A,
    /// Response twin of [`Opcode::KeyCount`].
    KeyCountResp = 0x9A,
    /// Admin: the digest of one group's state machine on the answering node.
    StateDigest = 0x33,
    /// Response twin of [`Opcode::StateDigest`].
    StateDigestResp = 0xB3,
}

/// Which kind of connection an opcode belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Client ↔ node connections.
    Client,
    /// Node ↔ node (same shard) Raft connections.
    Peer,
}

impl Opcode {
    /// Parses a header's opcode byte; `None` for a value this version does not define.
    pub fn from_u8(v: u8) -> Option<Opcode> {
        use Opcode::*;
        Some(match v {
            0x01 => Hello,
            0x02 => Ping,
            0x10 => Get,
            0x11 => GetMulti,
            0x12 => Put,
            0x13 => PutWithTtl,
            0x14 => Delete,
            0x20 => Topology,
            0x30 => AddLearner,
            0x31 => ChangeMembership,
            0x32 => Status,
            0x40 => PeerHello,
            0x41 => PeerRpc,
            0x81 => HelloResp,
            0x82 => Pong,
            0x90 => GetResp,
            0x91 => GetMultiResp,
            0x92 => PutResp,
            0x93 => PutWithTtlResp,
            0x94 => DeleteResp,
            0xA0 => TopologyResp,
            0xB0 => AddLearnerResp,
            0xB1 => ChangeMembershipResp,
            0xB2 => StatusResp,
            0xC0 => PeerHelloResp,
            0xC1 => PeerRpcResp,
            0xFF => Error,
            0x15 => SetIf,
            0x16 => Expire,
            0x17 => Persist,
            0x18 => DeleteMulti,
            0x19 => Ttl,
            0x95 => SetIfResp,
            0x96 => ExpireResp,
            0x97 => PersistResp,
            0x98 => DeleteMultiResp,
            0x99 => TtlResp,
            0x1A => KeyCount,
            0x9A => KeyCountResp,
            0x33 => StateDigest,
            0xB3 => StateDigestResp,
            _ => return None,
        })
    }

    /// The byte written in the header.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for response opcodes (high bit set), including [`Opcode::Error`].
    pub fn is_response(self) -> bool {
        self.as_u8() & RESPONSE_BIT != 0
    }

    /// The channel this opcode is valid on.
    pub fn channel(self) -> Channel {
        channel_of(self.as_u8())
    }

    /// The response twin of a request opcode (`None` for response opcodes).
    pub fn response(self) -> Option<Opcode> {
        if self.is_response() {
            return None;
        }
        Opcode::from_u8(self.as_u8() | RESPONSE_BIT)
    }
}

/// The channel of a raw opcode byte, known or not: peer opcodes are `0x40..=0x4F` and
/// their response twins `0xC0..=0xCF`.
pub fn channel_of(raw: u8) -> Channel {
    if (raw & !RESPONSE_BIT) & 0xF0 == 0x40 {
        Channel::Peer
    } else {
        Channel::Client
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}({:#04x})", self, self.as_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_and_requests_have_response_twins() {
        let mut known = 0;
        for b in 0..=255u8 {
            if let Some(op) = Opcode::from_u8(b) {
                known += 1;
                assert_eq!(op.as_u8(), b);
                if !op.is_response() {
                    let r = op
                        .response()
                        .expect("every request opcode has a response twin");
                    assert_eq!(r.as_u8(), b | RESPONSE_BIT);
                    assert_eq!(r.channel(), op.channel());
                }
            }
        }
        assert_eq!(known, 41);
        assert_eq!(Opcode::PeerRpc.channel(), Channel::Peer);
        assert_eq!(Opcode::PeerRpcResp.channel(), Channel::Peer);
        assert_eq!(Opcode::Get.channel(), Channel::Client);
        assert_eq!(Opcode::Error.channel(), Channel::Client);
    }
}
