//! Proptest strategies for every message of the protocol, shared by the integration tests.
//! Generated messages respect the protocol's limits (so they must round-trip exactly);
//! sizes are kept small so hundreds of cases run quickly.
#![allow(dead_code)]

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use shoal_proto::limits::{MAX_NODES, MAX_SHARDS, MAX_TTL_MS};
use shoal_proto::peer::*;
use shoal_proto::*;

pub fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

pub fn shard() -> impl Strategy<Value = Option<u32>> {
    option::of(0..MAX_SHARDS as u32)
}

pub fn consistency() -> impl Strategy<Value = ReadConsistency> {
    prop_oneof![
        Just(ReadConsistency::Linearizable),
        Just(ReadConsistency::Lease),
        Just(ReadConsistency::Stale)
    ]
}

pub fn addr() -> impl Strategy<Value = String> {
    "[a-z0-9.:]{0,40}"
}

pub fn node_ids() -> impl Strategy<Value = Vec<u64>> {
    vec(any::<u64>(), 0..=MAX_NODES)
}

pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Request::Hello(Hello {
            min_version: a.min(b),
            max_version: a.max(b)
        })),
        Just(Request::Ping),
        (shard(), bytes(64), consistency()).prop_map(|(shard, key, consistency)| Request::Get(
            Get {
                shard,
                key,
                consistency
            }
        )),
        (shard(), vec(bytes(16), 0..20), consistency()).prop_map(|(shard, keys, consistency)| {
            Request::GetMulti(GetMulti {
                shard,
                keys,
                consistency,
            })
        }),
        (shard(), bytes(64), bytes(256)).prop_map(|(shard, key, value)| Request::Put(Put {
            shard,
            key,
            value
        })),
        (shard(), bytes(64), bytes(256), 1..=MAX_TTL_MS).prop_map(|(shard, key, value, ttl_ms)| {
            Request::PutWithTtl(PutWithTtl {
                shard,
                key,
                value,
                ttl_ms,
            })
        }),
        (shard(), bytes(64)).prop_map(|(shard, key)| Request::Delete(Delete { shard, key })),
        Just(Request::Topology),
        (0..MAX_SHARDS as u32, any::<u64>(), addr(), addr()).prop_map(
            |(group, node_id, addr, client_addr)| {
                Request::AddLearner(AddLearner {
                    group,
                    node_id,
                    addr,
                    client_addr,
                })
            }
        ),
        (
            0..MAX_SHARDS as u32,
            vec(any::<u64>(), 1..=MAX_NODES),
            any::<bool>()
        )
            .prop_map(|(group, voters, retain)| Request::ChangeMembership(
                ChangeMembership {
                    group,
                    voters,
                    retain
                }
            )),
        option::of(0..MAX_SHARDS as u32).prop_map(|group| Request::Status { group }),
        (
            shard(),
            bytes(64),
            bytes(64),
            0u8..3,
            0u8..3,
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(shard, key, value, c, t, at, return_old)| Request::SetIf(SetIf {
                    shard,
                    key,
                    value,
                    condition: [
                        SetCondition::Always,
                        SetCondition::IfAbsent,
                        SetCondition::IfPresent
                    ][c as usize],
                    ttl: [TtlMode::Clear, TtlMode::Keep, TtlMode::ExpireAt(at)][t as usize],
                    return_old,
                })
            ),
        (
            shard(),
            bytes(64),
            any::<u64>(),
            (0u8..16).prop_filter_map("valid", ExpireCondition::from_bits)
        )
            .prop_map(
                |(shard, key, expire_at_ms, condition)| Request::Expire(Expire {
                    shard,
                    key,
                    expire_at_ms,
                    condition
                })
            ),
        (shard(), bytes(64)).prop_map(|(shard, key)| Request::Persist(Persist { shard, key })),
        (shard(), vec(bytes(16), 1..20))
            .prop_map(|(shard, keys)| Request::DeleteMulti(DeleteMulti { shard, keys })),
        (0..MAX_SHARDS as u32).prop_map(|group| Request::KeyCount { group }),
        (0..MAX_SHARDS as u32).prop_map(|group| Request::StateDigest { group }),
        (shard(), bytes(64), consistency()).prop_map(|(shard, key, consistency)| {
            Request::Ttl(Ttl {
                shard,
                key,
                consistency,
            })
        }),
    ]
}

pub fn node_info(shard_count: u32) -> impl Strategy<Value = NodeInfo> {
    (any::<u64>(), addr(), any::<bool>()).prop_map(move |(node_id, addr, per_shard)| NodeInfo {
        node_id,
        shard_addrs: if per_shard {
            (0..shard_count).map(|s| format!("{addr}/{s}")).collect()
        } else {
            Vec::new()
        },
        addr,
    })
}

pub fn topology() -> impl Strategy<Value = Topology> {
    (1..=8u32).prop_flat_map(|s| {
        (
            any::<u64>(),
            vec(node_info(s), 0..=MAX_NODES),
            vec((option::of(any::<u64>()), any::<u64>()), s as usize),
        )
            .prop_map(move |(cluster_id, nodes, leaders)| Topology {
                cluster_id,
                shard_count: s,
                nodes,
                leaders: leaders
                    .into_iter()
                    .map(|(leader, term)| GroupLeader { leader, term })
                    .collect(),
            })
    })
}

pub fn group_status() -> impl Strategy<Value = GroupStatus> {
    (
        0..MAX_SHARDS as u32,
        prop_oneof![
            Just(RaftRole::Leader),
            Just(RaftRole::Follower),
            Just(RaftRole::Candidate),
            Just(RaftRole::Learner),
            Just(RaftRole::Shutdown)
        ],
        any::<u64>(),
        option::of(any::<u64>()),
        (
            option::of(any::<u64>()),
            option::of(any::<u64>()),
            option::of(any::<u64>()),
        ),
        node_ids(),
        node_ids(),
    )
        .prop_map(
            |(group, role, term, leader, (l, c, a), voters, learners)| GroupStatus {
                group,
                role,
                term,
                leader,
                last_log_index: l,
                committed_index: c,
                applied_index: a,
                voters,
                learners,
            },
        )
}

pub fn error_response() -> impl Strategy<Value = ErrorResponse> {
    let detail = prop_oneof![
        option::of(node_info(0)).prop_map(|leader| ErrorDetail::NotLeader { leader }),
        (1..=MAX_SHARDS as u32)
            .prop_flat_map(|n| (0..n, Just(n)))
            .prop_map(|(owner_shard, shard_count)| ErrorDetail::WrongShard {
                owner_shard,
                shard_count
            }),
        (1..=7u8, any::<u64>(), any::<u64>()).prop_map(|(l, max, actual)| ErrorDetail::TooLarge {
            limit: LimitKind::from_u8(l).expect("1..=7 are limit kinds"),
            max,
            actual
        }),
        Just(ErrorDetail::InvalidRequest),
        Just(ErrorDetail::Timeout),
        Just(ErrorDetail::Unavailable),
        Just(ErrorDetail::ShuttingDown),
        any::<u32>().prop_map(|retry_after_ms| ErrorDetail::Busy { retry_after_ms }),
        Just(ErrorDetail::Internal),
        (any::<u8>(), any::<u8>()).prop_map(|(min_version, max_version)| {
            ErrorDetail::IncompatibleVersion {
                min_version,
                max_version,
            }
        }),
    ];
    (detail, ".{0,60}").prop_map(|(d, m)| ErrorResponse::new(d, m))
}

pub fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (1..=MAX_SHARDS as u32)
            .prop_flat_map(|s| (
                any::<u8>(),
                any::<u64>(),
                any::<u64>(),
                Just(s),
                option::of(0..s),
                any::<u32>(),
                any::<u32>()
            ))
            .prop_map(
                |(version, cluster_id, node_id, shard_count, connection_shard, f, i)| {
                    Response::Hello(HelloOk {
                        version,
                        cluster_id,
                        node_id,
                        shard_count,
                        connection_shard,
                        max_frame_len: f,
                        max_in_flight: i,
                    })
                }
            ),
        Just(Response::Pong),
        option::of(bytes(256)).prop_map(Response::Get),
        vec(option::of(bytes(32)), 0..20).prop_map(Response::GetMulti),
        Just(Response::Put),
        Just(Response::PutWithTtl),
        any::<bool>().prop_map(|existed| Response::Delete { existed }),
        topology().prop_map(Response::Topology),
        any::<u64>().prop_map(|log_index| Response::AddLearner { log_index }),
        any::<u64>().prop_map(|log_index| Response::ChangeMembership { log_index }),
        (any::<u64>(), vec(group_status(), 0..4))
            .prop_map(|(node_id, groups)| Response::Status(StatusReport { node_id, groups })),
        error_response().prop_map(Response::Error),
        (any::<bool>(), option::of(bytes(64)))
            .prop_map(|(applied, old)| Response::SetIf { applied, old }),
        any::<bool>().prop_map(|changed| Response::Expire { changed }),
        any::<bool>().prop_map(|changed| Response::Persist { changed }),
        any::<u32>().prop_map(|removed| Response::DeleteMulti { removed }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(keys, expiring)| Response::KeyCount { keys, expiring }),
        (
            0..MAX_SHARDS as u32,
            any::<u64>(),
            option::of(any::<u64>()),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(group, applied_term, applied_index, keys, digest)| {
                Response::StateDigest(GroupDigest {
                    group,
                    applied_term,
                    applied_index,
                    keys,
                    digest,
                })
            }),
        prop_oneof![
            Just(KeyTtl::Missing),
            Just(KeyTtl::NoExpiry),
            any::<u64>().prop_map(KeyTtl::ExpiresAt)
        ]
        .prop_map(Response::Ttl),
    ]
}

pub fn log_id() -> impl Strategy<Value = LogId> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(term, node_id, index)| LogId {
        term,
        node_id,
        index,
    })
}

pub fn vote() -> impl Strategy<Value = Vote> {
    (any::<u64>(), option::of(any::<u64>()), any::<bool>()).prop_map(
        |(term, node_id, committed)| Vote {
            term,
            node_id,
            committed,
        },
    )
}

pub fn membership() -> impl Strategy<Value = Membership> {
    (
        vec(vec(any::<u64>(), 0..=MAX_NODES), 1..=2),
        vec((any::<u64>(), addr(), addr()), 0..=MAX_NODES),
    )
        .prop_map(|(configs, nodes)| Membership {
            configs,
            nodes: nodes
                .into_iter()
                .map(|(node_id, client_addr, peer_addr)| PeerNode {
                    node_id,
                    client_addr,
                    peer_addr,
                })
                .collect(),
        })
}

pub fn entry() -> impl Strategy<Value = Entry> {
    (
        log_id(),
        prop_oneof![
            Just(EntryPayload::Blank),
            vec(any::<u8>(), 0..128).prop_map(EntryPayload::Normal),
            membership().prop_map(EntryPayload::Membership),
        ],
    )
        .prop_map(|(log_id, payload)| Entry { log_id, payload })
}

pub fn peer_message() -> impl Strategy<Value = PeerMessage> {
    prop_oneof![
        (
            any::<u8>(),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            1..=MAX_SHARDS as u32
        )
            .prop_flat_map(|(a, b, c, f, t, s)| (Just((a, b, c, f, t, s)), 0..s))
            .prop_map(
                |((a, b, cluster_id, from_node, to_node, shard_count), group)| {
                    PeerMessage::Hello(PeerHello {
                        min_version: a.min(b),
                        max_version: a.max(b),
                        cluster_id,
                        from_node,
                        to_node,
                        group,
                        shard_count,
                    })
                }
            ),
        (any::<u8>(), any::<u64>())
            .prop_map(|(version, node_id)| PeerMessage::HelloOk(PeerHelloOk { version, node_id })),
        (
            vote(),
            option::of(log_id()),
            vec(entry(), 0..6),
            option::of(log_id())
        )
            .prop_map(|(vote, prev_log_id, entries, leader_commit)| {
                PeerMessage::AppendEntries(AppendEntriesRequest {
                    vote,
                    prev_log_id,
                    entries,
                    leader_commit,
                })
            }),
        prop_oneof![
            Just(AppendEntriesResponse::Success),
            option::of(log_id()).prop_map(AppendEntriesResponse::PartialSuccess),
            Just(AppendEntriesResponse::Conflict),
            vote().prop_map(AppendEntriesResponse::HigherVote),
        ]
        .prop_map(PeerMessage::AppendEntriesResponse),
        (vote(), option::of(log_id()), any::<bool>()).prop_map(
            |(vote, last_log_id, leadership_transfer)| {
                PeerMessage::Vote(VoteRequest {
                    vote,
                    last_log_id,
                    leadership_transfer,
                })
            }
        ),
        (vote(), any::<bool>(), option::of(log_id())).prop_map(
            |(vote, vote_granted, last_log_id)| {
                PeerMessage::VoteResponse(VoteResponse {
                    vote,
                    vote_granted,
                    last_log_id,
                })
            }
        ),
        (
            vote(),
            option::of(log_id()),
            option::of(log_id()),
            membership(),
            "[a-z0-9-]{0,40}",
            any::<u64>(),
            vec(any::<u8>(), 0..512),
            any::<bool>()
        )
            .prop_map(|(vote, last, mlog, membership, id, offset, data, done)| {
                PeerMessage::InstallSnapshot(InstallSnapshotRequest {
                    vote,
                    meta: SnapshotMeta {
                        last_log_id: last,
                        last_membership: StoredMembership {
                            log_id: mlog,
                            membership,
                        },
                        snapshot_id: id,
                    },
                    offset,
                    data,
                    done,
                })
            }),
        vote().prop_map(
            |vote| PeerMessage::InstallSnapshotResponse(InstallSnapshotResponse { vote })
        ),
        (vote(), any::<u64>(), option::of(log_id())).prop_map(|(from_leader, to_node, last)| {
            PeerMessage::TransferLeader(TransferLeaderRequest {
                from_leader,
                to_node,
                last_log_id: last,
            })
        }),
        Just(PeerMessage::TransferLeaderAck),
        (vote(), option::of(log_id())).prop_map(|(vote, last_log_id)| {
            PeerMessage::PreVote(VoteRequest {
                vote,
                last_log_id,
                leadership_transfer: false,
            })
        }),
        (vote(), any::<bool>(), option::of(log_id())).prop_map(
            |(vote, vote_granted, last_log_id)| {
                PeerMessage::PreVoteResponse(VoteResponse {
                    vote,
                    vote_granted,
                    last_log_id,
                })
            }
        ),
        (0..8u8, ".{0,60}").prop_map(|(k, message)| {
            let kind = [
                PeerErrorKind::IncompatibleVersion,
                PeerErrorKind::WrongCluster,
                PeerErrorKind::WrongNode,
                PeerErrorKind::WrongGroup,
                PeerErrorKind::ShardCountMismatch,
                PeerErrorKind::NotReady,
                PeerErrorKind::ShuttingDown,
                PeerErrorKind::Internal,
            ][k as usize];
            PeerMessage::Error(PeerError { kind, message })
        }),
    ]
}

/// A message of any channel with its id, and the decoder role that reads it.
#[derive(Debug, Clone)]
pub enum AnyMsg {
    Req(u64, Request),
    Resp(u64, Response),
    Peer(u64, PeerMessage),
}

pub fn encode_any(buf: &mut bytes::BytesMut, m: &AnyMsg) {
    match m {
        AnyMsg::Req(id, r) => encode_request(buf, *id, r).expect("valid request encodes"),
        AnyMsg::Resp(id, r) => encode_response(buf, *id, r).expect("valid response encodes"),
        AnyMsg::Peer(id, p) => encode_peer(buf, *id, p).expect("valid peer message encodes"),
    }
}

pub fn expected_frame(m: &AnyMsg) -> Frame {
    match m.clone() {
        AnyMsg::Req(request_id, request) => Frame::Request(RequestFrame {
            request_id,
            request,
        }),
        AnyMsg::Resp(request_id, response) => Frame::Response(ResponseFrame {
            request_id,
            response,
        }),
        AnyMsg::Peer(request_id, message) => Frame::Peer(PeerFrame {
            request_id,
            message,
        }),
    }
}
