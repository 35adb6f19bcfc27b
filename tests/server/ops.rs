//! Every operation, routing, fan-out, forwarding and pipelining.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::{
    AddLearner, ChangeMembership, Delete, ErrorDetail, Get, GetMulti, GroupLeader, Hello, Put,
    PutWithTtl, ReadConsistency, Request, Response, encode_request,
};

use crate::support::{CLUSTER_ID, Client, GATED, NODE_ID, Node, group_status, keys_on};

fn get(shard: Option<u32>, key: &Bytes) -> Request {
    Request::Get(Get {
        shard,
        key: key.clone(),
        consistency: ReadConsistency::Linearizable,
    })
}

fn put(shard: Option<u32>, key: &Bytes, value: &[u8]) -> Request {
    Request::Put(Put {
        shard,
        key: key.clone(),
        value: Bytes::copy_from_slice(value),
    })
}

fn get_multi(shard: Option<u32>, keys: &[Bytes]) -> Request {
    Request::GetMulti(GetMulti {
        shard,
        keys: keys.to_vec(),
        consistency: ReadConsistency::Stale,
    })
}

#[test]
fn handshake_announces_the_shard_and_limits() {
    let node = Node::start(2, |_| {});
    let c = node.client(1);
    let h = c.hello.unwrap();
    assert_eq!(h.version, 1);
    assert_eq!(h.cluster_id, CLUSTER_ID);
    assert_eq!(h.node_id, NODE_ID);
    assert_eq!(h.shard_count, 2);
    assert_eq!(h.connection_shard, Some(1));
    assert_eq!(h.max_frame_len, 64 * 1024);
    assert_eq!(h.max_in_flight, 1024);
}

#[test]
fn incompatible_version_or_missing_hello_is_answered_then_closed() {
    let node = Node::start(1, |_| {});
    let mut c = Client::raw(node.addrs[0]);
    c.send(
        9,
        &Request::Hello(Hello {
            min_version: 2,
            max_version: 9,
        }),
    );
    match c.recv() {
        (9, Response::Error(e)) => assert_eq!(
            e.detail,
            ErrorDetail::IncompatibleVersion {
                min_version: 1,
                max_version: 1
            }
        ),
        other => panic!("{other:?}"),
    }
    c.expect_closed();

    let mut c = Client::raw(node.addrs[0]);
    c.send(4, &Request::Ping);
    match c.recv() {
        (4, Response::Error(e)) => assert_eq!(e.detail, ErrorDetail::InvalidRequest),
        other => panic!("{other:?}"),
    }
    c.expect_closed();
}

#[test]
fn every_operation_round_trips_on_the_owning_shard() {
    let node = Node::start(2, |_| {});
    for s in 0..2u32 {
        let mut c = node.client(s as usize);
        let k = &keys_on(s, 2, "op:", 1)[0];
        assert_eq!(c.call(Request::Ping), Response::Pong);
        assert_eq!(c.call(get(Some(s), k)), Response::Get(None));
        assert_eq!(c.call(put(Some(s), k, b"v1")), Response::Put);
        assert_eq!(
            c.call(get(Some(s), k)),
            Response::Get(Some(Bytes::from_static(b"v1")))
        );
        let ttl = Request::PutWithTtl(PutWithTtl {
            shard: Some(s),
            key: k.clone(),
            value: Bytes::from_static(b"v2"),
            ttl_ms: 1000,
        });
        assert_eq!(c.call(ttl), Response::PutWithTtl);
        let del = Request::Delete(Delete {
            shard: Some(s),
            key: k.clone(),
        });
        assert_eq!(c.call(del.clone()), Response::Delete { existed: true });
        assert_eq!(c.call(del), Response::Delete { existed: false });
        // Admin requests go to their group's shard, whichever shard the client reached.
        let other = 1 - s;
        assert_eq!(
            c.call(Request::AddLearner(AddLearner {
                group: other,
                node_id: 9,
                addr: "127.0.0.1:1".into(),
                client_addr: "127.0.0.1:2".into(),
            })),
            Response::AddLearner {
                log_index: 100 + u64::from(other)
            }
        );
        assert_eq!(
            c.call(Request::ChangeMembership(ChangeMembership {
                group: other,
                voters: vec![NODE_ID],
                retain: false,
            })),
            Response::ChangeMembership {
                log_index: 200 + u64::from(other)
            }
        );
        match c.call(Request::Status { group: Some(7) }) {
            Response::Error(e) => assert_eq!(e.detail, ErrorDetail::InvalidRequest),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(node.knobs.misrouted.load(Ordering::SeqCst), 0);
}

#[test]
fn requests_for_another_shard_are_forwarded_over_the_mesh() {
    let node = Node::start(2, |_| {});
    let keys = keys_on(1, 2, "fwd:", 2);
    let mut c0 = node.client(0);
    // Unstated shard and correctly stated shard, both on shard 0's port.
    assert_eq!(c0.call(put(None, &keys[0], b"a")), Response::Put);
    assert_eq!(c0.call(put(Some(1), &keys[1], b"b")), Response::Put);
    // Shard 1 holds them: read them on its own port.
    let mut c1 = node.client(1);
    assert_eq!(
        c1.call(get(Some(1), &keys[0])),
        Response::Get(Some(Bytes::from_static(b"a")))
    );
    assert_eq!(
        c1.call(get(None, &keys[1])),
        Response::Get(Some(Bytes::from_static(b"b")))
    );
    assert_eq!(node.knobs.misrouted.load(Ordering::SeqCst), 0);
}

#[test]
fn a_wrongly_stated_shard_is_answered_wrong_shard() {
    let node = Node::start(2, |_| {});
    let k = &keys_on(1, 2, "ws:", 1)[0];
    let mut c = node.client(1);
    for req in [
        put(Some(0), k, b"x"),
        get(Some(0), k),
        get_multi(Some(0), std::slice::from_ref(k)),
    ] {
        match c.call(req) {
            Response::Error(e) => assert_eq!(
                e.detail,
                ErrorDetail::WrongShard {
                    owner_shard: 1,
                    shard_count: 2
                }
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(node.knobs.executed.load(Ordering::SeqCst), 0);
}

#[test]
fn get_multi_fans_out_and_answers_in_input_order() {
    let node = Node::start(2, |_| {});
    let a = keys_on(0, 2, "gm:", 3);
    let b = keys_on(1, 2, "gm:", 3);
    let mut c = node.client(0);
    for (i, k) in a.iter().chain(&b).enumerate() {
        if i % 3 != 2 {
            assert_eq!(c.call(put(None, k, k)), Response::Put);
        }
    }
    // Interleaved shards, missing keys, a duplicate.
    let keys = vec![
        b[0].clone(),
        a[2].clone(),
        a[0].clone(),
        b[2].clone(),
        b[1].clone(),
        a[1].clone(),
        b[0].clone(),
    ];
    let expected: Vec<Option<Bytes>> = keys
        .iter()
        .map(|k| (k != &a[2] && k != &b[2]).then(|| k.clone()))
        .collect();
    for s in 0..2 {
        let mut c = node.client(s);
        assert_eq!(
            c.call(get_multi(None, &keys)),
            Response::GetMulti(expected.clone())
        );
        assert_eq!(c.call(get_multi(None, &[])), Response::GetMulti(vec![]));
    }
    // A stated shard that owns every key: one batch, possibly forwarded.
    assert_eq!(
        c.call(get_multi(Some(1), &b)),
        Response::GetMulti(vec![Some(b[0].clone()), Some(b[1].clone()), None])
    );
    assert_eq!(node.knobs.misrouted.load(Ordering::SeqCst), 0);
}

#[test]
fn topology_and_status_gather_every_group() {
    let node = Node::start(2, |_| {});
    let mut c = node.client(1);
    match c.call(Request::Topology) {
        Response::Topology(t) => {
            assert_eq!(t.cluster_id, CLUSTER_ID);
            assert_eq!(t.shard_count, 2);
            assert_eq!(t.nodes.len(), 1);
            assert_eq!(t.nodes[0].shard_addrs.len(), 2);
            assert_eq!(
                t.leaders,
                vec![
                    GroupLeader {
                        leader: Some(NODE_ID),
                        term: 10
                    },
                    GroupLeader {
                        leader: Some(NODE_ID),
                        term: 11
                    }
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    match c.call(Request::Status { group: None }) {
        Response::Status(r) => {
            assert_eq!(r.node_id, NODE_ID);
            assert_eq!(
                r.groups,
                vec![group_status(0, NODE_ID), group_status(1, NODE_ID)]
            );
        }
        other => panic!("{other:?}"),
    }
    match c.call(Request::Status { group: Some(0) }) {
        Response::Status(r) => assert_eq!(r.groups, vec![group_status(0, NODE_ID)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pipelined_requests_complete_out_of_order_with_their_ids() {
    let node = Node::start(2, |_| {});
    let mut c = node.client(0);
    let gated = Bytes::from([GATED, b"held"].concat());
    let keys = keys_on(0, 2, "pipe:", 50)
        .into_iter()
        .chain(keys_on(1, 2, "pipe:", 50))
        .collect::<Vec<_>>();
    // One write: the held request first, then 100 puts over both shards.
    let mut out = bytes::BytesMut::new();
    encode_request(&mut out, 1, &put(None, &gated, b"late")).unwrap();
    for (i, k) in keys.iter().enumerate() {
        encode_request(&mut out, 2 + i as u64, &put(None, k, b"v")).unwrap();
    }
    c.send_raw(&out);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..keys.len() {
        let (id, r) = c.recv();
        assert_eq!(r, Response::Put, "id {id}");
        assert!(
            (2..2 + keys.len() as u64).contains(&id),
            "id {id} before the gate opened"
        );
        assert!(seen.insert(id), "id {id} answered twice");
    }
    node.knobs.open_gate();
    assert_eq!(c.recv(), (1, Response::Put));
}

#[test]
fn the_inbox_serves_local_requests_and_refuses_expired_ones() {
    let node = Node::start(2, |_| {});
    let k = &keys_on(1, 2, "inbox:", 1)[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = futures::executor::block_on(node.mesh.call(1, put(Some(1), k, b"l"), deadline));
    assert_eq!(answer, Response::Put);
    // The inbox routes anything, even a request for another shard or the topology.
    let answer = futures::executor::block_on(node.mesh.call(0, get(None, k), deadline));
    assert_eq!(answer, Response::Get(Some(Bytes::from_static(b"l"))));
    let answer = futures::executor::block_on(node.mesh.call(0, Request::Topology, deadline));
    assert!(matches!(answer, Response::Topology(_)), "{answer:?}");
    let past = Instant::now() - Duration::from_millis(1);
    match futures::executor::block_on(node.mesh.call(1, get(Some(1), k), past)) {
        Response::Error(e) => assert_eq!(e.detail, ErrorDetail::Timeout),
        other => panic!("{other:?}"),
    }
}
