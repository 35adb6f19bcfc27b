//! Round trips openraft ↔ mirror for every RPC type (proptest), and refusals of mirrors
//! openraft cannot represent.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::*;

fn log_id() -> impl Strategy<Value = LogId> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(term, node_id, index)| LogId {
        leader_id: LeaderId { term, node_id },
        index,
    })
}

fn vote() -> impl Strategy<Value = Vote> {
    (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(term, node_id, committed)| Vote {
        leader_id: LeaderId { term, node_id },
        committed,
    })
}

fn node() -> impl Strategy<Value = ShoalNode> {
    ("[a-z0-9.:]{0,20}", "[a-z0-9.:]{0,20}").prop_map(|(client_addr, peer_addr)| ShoalNode {
        client_addr,
        peer_addr,
    })
}

/// A valid membership: one or two voter sets drawn from the members, plus learners.
fn membership() -> impl Strategy<Value = Membership> {
    (
        proptest::collection::btree_map(0u64..20, node(), 1..=7),
        vec(any::<prop::sample::Index>(), 1..=2),
    )
        .prop_map(|(nodes, picks)| {
            let ids: Vec<u64> = nodes.keys().copied().collect();
            let configs: Vec<BTreeSet<u64>> = picks
                .iter()
                .map(|p| ids.iter().copied().take(p.index(ids.len()) + 1).collect())
                .collect();
            Membership::new(configs, nodes).unwrap()
        })
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        log_id(),
        prop_oneof![
            Just(EntryPayload::Blank),
            vec(any::<u8>(), 0..64).prop_map(|b| EntryPayload::Normal(Request {
                command: Bytes::from(b)
            })),
            membership().prop_map(EntryPayload::Membership),
        ],
    )
        .prop_map(|(log_id, payload)| Entry { log_id, payload })
}

proptest! {
    #[test]
    fn append_entries_round_trip(
        vote in vote(),
        prev in option::of(log_id()),
        entries in vec(entry(), 0..5),
        commit in option::of(log_id()),
    ) {
        let rpc = AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: prev,
            entries,
            leader_commit: commit,
        };
        let back = append_request_from_wire(append_request_to_wire(&rpc)).unwrap();
        // AppendEntriesRequest has no PartialEq: compare field by field.
        prop_assert_eq!(back.vote, rpc.vote);
        prop_assert_eq!(back.prev_log_id, rpc.prev_log_id);
        prop_assert_eq!(back.leader_commit, rpc.leader_commit);
        prop_assert_eq!(back.entries, rpc.entries);
    }

    #[test]
    fn append_response_round_trip(v in vote(), id in option::of(log_id()), k in 0u8..4) {
        let resp: AppendEntriesResponse<TypeConfig> = match k {
            0 => AppendEntriesResponse::Success,
            1 => AppendEntriesResponse::PartialSuccess(id),
            2 => AppendEntriesResponse::Conflict,
            _ => AppendEntriesResponse::HigherVote(v),
        };
        prop_assert_eq!(append_response_from_wire(&append_response_to_wire(&resp)).unwrap(), resp);
    }

    #[test]
    fn vote_round_trip(v in vote(), last in option::of(log_id()), t in any::<bool>(), g in any::<bool>()) {
        let mut rpc = VoteRequest::<TypeConfig>::new(v, last);
        rpc.leadership_transfer = t;
        prop_assert_eq!(vote_request_from_wire(&vote_request_to_wire(&rpc)).unwrap(), rpc);
        let resp = VoteResponse::<TypeConfig> { vote: v, vote_granted: g, last_log_id: last };
        prop_assert_eq!(vote_response_from_wire(&vote_response_to_wire(&resp)).unwrap(), resp);
    }

    #[test]
    fn snapshot_meta_and_response_round_trip(
        last in option::of(log_id()),
        mlog in option::of(log_id()),
        m in membership(),
        v in vote(),
    ) {
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: StoredMembership::new(mlog, m),
        };
        let wire = snapshot_meta_to_wire(&meta);
        prop_assert!(wire.snapshot_id.len() <= shoal_proto::peer::MAX_SNAPSHOT_ID_LEN);
        prop_assert_eq!(snapshot_meta_from_wire(&wire).unwrap(), meta);
        let resp = SnapshotResponse::<TypeConfig> { vote: v };
        prop_assert_eq!(snapshot_response_from_wire(&snapshot_response_to_wire(&resp)).unwrap(), resp);
    }

    /// Arbitrary mirrors (as a peer could send) convert or are refused, never panic.
    #[test]
    fn arbitrary_mirror_memberships_never_panic(
        configs in vec(vec(0u64..10, 0..5), 0..3),
        ids in vec(0u64..10, 0..8),
    ) {
        let m = wire::Membership {
            configs,
            nodes: ids
                .into_iter()
                .map(|node_id| wire::PeerNode {
                    node_id,
                    client_addr: String::new(),
                    peer_addr: String::new(),
                })
                .collect(),
        };
        if let Ok(back) = membership_from_wire(&m) {
            // What was accepted converts back to the same voter sets.
            let wire_back = membership_to_wire(&back);
            let sets = |c: &Vec<Vec<u64>>| -> Vec<BTreeSet<u64>> {
                c.iter().map(|s| s.iter().copied().collect()).collect()
            };
            prop_assert_eq!(sets(&wire_back.configs), sets(&m.configs));
        }
    }
}

#[test]
fn unrepresentable_mirrors_are_refused() {
    let no_node = wire::Vote {
        term: 3,
        node_id: None,
        committed: false,
    };
    assert_eq!(
        vote_from_wire(&no_node),
        Err(ConvertError::VoteWithoutNode { term: 3 })
    );
    let member = |node_id| wire::PeerNode {
        node_id,
        client_addr: "c".into(),
        peer_addr: "p".into(),
    };
    let dup = wire::Membership {
        configs: vec![vec![1]],
        nodes: vec![member(1), member(1)],
    };
    assert_eq!(
        membership_from_wire(&dup),
        Err(ConvertError::DuplicateMember(1))
    );
    let stranger = wire::Membership {
        configs: vec![vec![1, 2]],
        nodes: vec![member(1)],
    };
    assert!(matches!(
        membership_from_wire(&stranger),
        Err(ConvertError::InvalidMembership(_))
    ));
    // Both addresses survive, learners included.
    let m = Membership::new(
        vec![BTreeSet::from([1])],
        BTreeMap::from([
            (
                1,
                ShoalNode {
                    client_addr: "c1".into(),
                    peer_addr: "p1".into(),
                },
            ),
            (
                2,
                ShoalNode {
                    client_addr: "c2".into(),
                    peer_addr: "p2".into(),
                },
            ),
        ]),
    )
    .unwrap();
    let w = membership_to_wire(&m);
    assert_eq!(w.learners(), vec![2]);
    assert_eq!(membership_from_wire(&w).unwrap(), m);
}
