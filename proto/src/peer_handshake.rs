//! The acceptor's side of the peer handshake: checks a [`PeerHello`] against the local
//! node and answers it.
//!
//! Invariants: a connection is accepted only if the protocol versions overlap and the
//! cluster id, the receiving node id and the shard count all match and the group exists;
//! every refusal names its reason ([`PeerErrorKind`]) so a misconfigured cluster is
//! diagnosed from either end's logs. Sans-IO: the caller sends the answer and, on a
//! refusal, closes.

use crate::frame::{MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION};
use crate::peer::{PeerError, PeerErrorKind, PeerHello, PeerHelloOk};

/// What the accepting node knows about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPeer {
    /// This cluster's identity.
    pub cluster_id: u64,
    /// This node's id.
    pub node_id: u64,
    /// This node's shard count.
    pub shard_count: u32,
}

/// Decides the answer to a peer's `Hello`: `Ok` to send as `HelloOk`, `Err` to send as
/// `Error` before closing.
pub fn accept_peer_hello(hello: &PeerHello, local: &LocalPeer) -> Result<PeerHelloOk, PeerError> {
    let refuse = |kind, message: String| Err(PeerError { kind, message });
    let hi = hello.max_version.min(MAX_PROTOCOL_VERSION);
    let lo = hello.min_version.max(MIN_PROTOCOL_VERSION);
    if lo > hi {
        return refuse(
            PeerErrorKind::IncompatibleVersion,
            format!(
                "peer speaks versions {}..={}, this node {MIN_PROTOCOL_VERSION}..={MAX_PROTOCOL_VERSION}",
                hello.min_version, hello.max_version
            ),
        );
    }
    if hello.cluster_id != local.cluster_id {
        return refuse(
            PeerErrorKind::WrongCluster,
            format!(
                "peer is in cluster {:#x}, this node in {:#x}",
                hello.cluster_id, local.cluster_id
            ),
        );
    }
    if hello.to_node != local.node_id {
        return refuse(
            PeerErrorKind::WrongNode,
            format!(
                "peer meant node {}, this is node {}",
                hello.to_node, local.node_id
            ),
        );
    }
    if hello.shard_count != local.shard_count {
        return refuse(
            PeerErrorKind::ShardCountMismatch,
            format!(
                "peer has {} shards, this node {}",
                hello.shard_count, local.shard_count
            ),
        );
    }
    if hello.group >= local.shard_count {
        return refuse(
            PeerErrorKind::WrongGroup,
            format!(
                "group {} does not exist (shard count {})",
                hello.group, local.shard_count
            ),
        );
    }
    Ok(PeerHelloOk {
        version: hi,
        node_id: local.node_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> PeerHello {
        PeerHello {
            min_version: 1,
            max_version: 3,
            cluster_id: 9,
            from_node: 1,
            to_node: 2,
            group: 3,
            shard_count: 4,
        }
    }

    #[test]
    fn accepts_a_matching_peer_and_names_every_mismatch() {
        let local = LocalPeer {
            cluster_id: 9,
            node_id: 2,
            shard_count: 4,
        };
        assert_eq!(
            accept_peer_hello(&hello(), &local),
            Ok(PeerHelloOk {
                version: 1,
                node_id: 2
            })
        );
        let kind = |h: PeerHello| accept_peer_hello(&h, &local).map_err(|e| e.kind).err();
        assert_eq!(
            kind(PeerHello {
                min_version: 2,
                ..hello()
            }),
            Some(PeerErrorKind::IncompatibleVersion)
        );
        assert_eq!(
            kind(PeerHello {
                cluster_id: 8,
                ..hello()
            }),
            Some(PeerErrorKind::WrongCluster)
        );
        assert_eq!(
            kind(PeerHello {
                to_node: 3,
                ..hello()
            }),
            Some(PeerErrorKind::WrongNode)
        );
        assert_eq!(
            kind(PeerHello {
                shard_count: 5,
                ..hello()
            }),
            Some(PeerErrorKind::ShardCountMismatch)
        );
        let small = LocalPeer {
            shard_count: 3,
            ..local
        };
        assert_eq!(
            accept_peer_hello(
                &PeerHello {
                    shard_count: 3,
                    ..hello()
                },
                &small
            )
            .map_err(|e| e.kind),
            Err(PeerErrorKind::WrongGroup)
        );
    }
}
