#![allow(clippy::unwrap_used)]
//! Reply encoding: golden bytes for RESP2 and RESP3 (shapes checked against
//! redis-server 7.0.15), and a property test decoding every encoded reply back with
//! `redis-protocol`'s decoder.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use shoal_resp::info::{InfoFigures, render};
use shoal_resp::introspect::{command_info_reply, config_get_reply, hello_reply};
use shoal_resp::{ConnectionState, ErrorReply, InfoSections, Protocol, Reply, encode_reply};

fn enc(reply: &Reply, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_reply(reply, protocol, &mut out);
    out.to_vec()
}

fn both(reply: &Reply, resp2: &[u8], resp3: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(&enc(reply, Protocol::Resp2)),
        String::from_utf8_lossy(resp2),
        "RESP2 of {reply:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&enc(reply, Protocol::Resp3)),
        String::from_utf8_lossy(resp3),
        "RESP3 of {reply:?}"
    );
}

fn bulk(s: &'static str) -> Reply {
    Reply::bulk_static(s)
}

#[test]
fn scalar_golden_bytes() {
    both(&Reply::Ok, b"+OK\r\n", b"+OK\r\n");
    both(&Reply::Simple("PONG"), b"+PONG\r\n", b"+PONG\r\n");
    both(
        &Reply::Error(ErrorReply::syntax()),
        b"-ERR syntax error\r\n",
        b"-ERR syntax error\r\n",
    );
    both(
        &Reply::Error(ErrorReply::noproto()),
        b"-NOPROTO unsupported protocol version\r\n",
        b"-NOPROTO unsupported protocol version\r\n",
    );
    both(&Reply::Integer(-2), b":-2\r\n", b":-2\r\n");
    both(&bulk("abc"), b"$3\r\nabc\r\n", b"$3\r\nabc\r\n");
    both(
        &Reply::Bulk(Bytes::from_static(b"a\r\nb")),
        b"$4\r\na\r\nb\r\n",
        b"$4\r\na\r\nb\r\n",
    );
    both(&bulk(""), b"$0\r\n\r\n", b"$0\r\n\r\n");
    both(&Reply::Null, b"$-1\r\n", b"_\r\n");
}

#[test]
fn aggregate_golden_bytes() {
    both(
        &Reply::Array(vec![bulk("v"), Reply::Null]),
        b"*2\r\n$1\r\nv\r\n$-1\r\n",
        b"*2\r\n$1\r\nv\r\n_\r\n",
    );
    both(&Reply::Array(vec![]), b"*0\r\n", b"*0\r\n");
    both(
        &Reply::Map(vec![(bulk("save"), bulk(""))]),
        b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n",
        b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n",
    );
    both(
        &Reply::Set(vec![Reply::Simple("readonly"), Reply::Simple("fast")]),
        b"*2\r\n+readonly\r\n+fast\r\n",
        b"~2\r\n+readonly\r\n+fast\r\n",
    );
    // INFO's text: bulk in RESP2, verbatim `txt` in RESP3 (as redis-server 7.0 sends).
    both(
        &Reply::Verbatim(Bytes::new()),
        b"$0\r\n\r\n",
        b"=4\r\ntxt:\r\n",
    );
    both(
        &Reply::Verbatim(Bytes::from_static(b"a:1\r\n")),
        b"$5\r\na:1\r\n\r\n",
        b"=9\r\ntxt:a:1\r\n\r\n",
    );
}

#[test]
fn encoder_appends_to_a_reused_buffer() {
    let mut out = BytesMut::new();
    encode_reply(&Reply::Ok, Protocol::Resp2, &mut out);
    encode_reply(&Reply::Integer(1), Protocol::Resp2, &mut out);
    assert_eq!(&out[..], b"+OK\r\n:1\r\n");
}

#[test]
fn hello_golden_bytes() {
    let mut state = ConnectionState::new(4);
    let resp2 = b"*14\r\n$6\r\nserver\r\n$5\r\nshoal\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:4\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n\
$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";
    assert_eq!(enc(&hello_reply(&state), Protocol::Resp2), resp2.to_vec());
    state.protocol = Protocol::Resp3;
    let resp3 = b"%7\r\n$6\r\nserver\r\n$5\r\nshoal\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:4\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n\
$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";
    assert_eq!(enc(&hello_reply(&state), Protocol::Resp3), resp3.to_vec());
}

#[test]
fn command_info_golden_bytes() {
    let reply = command_info_reply(&[Bytes::from_static(b"GET"), Bytes::from_static(b"nosuch")]);
    // Same shape as redis-server 7.0.15, minus its key specs.
    let resp3 = b"*2\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~0\r\n~0\r\n_\r\n";
    assert_eq!(
        String::from_utf8_lossy(&enc(&reply, Protocol::Resp3)),
        String::from_utf8_lossy(resp3)
    );
    let resp2 = b"*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n$-1\r\n";
    assert_eq!(
        String::from_utf8_lossy(&enc(&reply, Protocol::Resp2)),
        String::from_utf8_lossy(resp2)
    );
    let sub = command_info_reply(&[Bytes::from_static(b"config|GET")]);
    let text = String::from_utf8_lossy(&enc(&sub, Protocol::Resp3)).into_owned();
    assert!(
        text.starts_with("*1\r\n*10\r\n$10\r\nconfig|get\r\n:-3\r\n~4\r\n+admin\r\n"),
        "{text}"
    );
}

#[test]
fn config_get_golden_bytes() {
    let reply = config_get_reply(&[Bytes::from_static(b"save"), Bytes::from_static(b"SAV*")]);
    both(
        &reply,
        b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n",
        b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n",
    );
    let reply = config_get_reply(&[Bytes::from_static(b"appendonly")]);
    both(
        &reply,
        b"*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n",
        b"%1\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n",
    );
    let reply = config_get_reply(&[Bytes::from_static(b"nosuch")]);
    both(&reply, b"*0\r\n", b"%0\r\n");
}

#[test]
fn info_text_as_verbatim() {
    let figures = InfoFigures {
        shoal_version: "0.1.0".into(),
        node_id: 1,
        shards: 2,
        cluster_nodes: 1,
        process_id: 7,
        tcp_port: 6379,
        uptime_ms: 1_500,
        connected_clients: 1,
        max_clients: 10,
        total_connections_received: 1,
        rejected_connections: 0,
        total_commands_processed: 2,
        keyspace_hits: 0,
        keyspace_misses: 0,
        expired_keys: 0,
        total_net_input_bytes: 0,
        total_net_output_bytes: 0,
        keys: 0,
        keys_with_expiry: 0,
    };
    let sections = InfoSections {
        clients: true,
        ..Default::default()
    };
    let text = render(sections, &figures);
    let reply = Reply::Verbatim(Bytes::from(text.clone()));
    let resp3 = enc(&reply, Protocol::Resp3);
    assert_eq!(
        resp3,
        format!("={}\r\ntxt:{text}\r\n", text.len() + 4).into_bytes()
    );
}

fn arb_reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        Just(Reply::Ok),
        Just(Reply::Null),
        any::<i64>().prop_map(Reply::Integer),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|v| Reply::Bulk(Bytes::from(v))),
        "[ -~]{0,30}".prop_map(|s| Reply::Error(ErrorReply::new(s))),
        "[ -~]{0,30}".prop_map(|s| Reply::Verbatim(Bytes::from(s))),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Reply::Array),
            proptest::collection::btree_map(any::<u32>(), inner, 0..4).prop_map(|m| Reply::Map(
                m.into_iter()
                    .map(|(k, v)| (Reply::Integer(i64::from(k)), v))
                    .collect()
            )),
        ]
    })
}

/// Whether a decoded RESP2 frame is what `reply` should become (maps flatten to key,
/// value pairs, in order).
fn resp2_matches(reply: &Reply, frame: &redis_protocol::resp2::types::BytesFrame) -> bool {
    use redis_protocol::resp2::types::BytesFrame as F;
    match (reply, frame) {
        (Reply::Ok, F::SimpleString(s)) => &s[..] == b"OK",
        (Reply::Null, F::Null) => true,
        (Reply::Integer(i), F::Integer(j)) => i == j,
        (Reply::Bulk(b) | Reply::Verbatim(b), F::BulkString(c)) => b == c,
        (Reply::Error(e), F::Error(s)) => e.text() == &s[..],
        (Reply::Array(items), F::Array(frames)) => {
            items.len() == frames.len()
                && items.iter().zip(frames).all(|(r, f)| resp2_matches(r, f))
        }
        (Reply::Map(pairs), F::Array(frames)) => {
            frames.len() == 2 * pairs.len()
                && pairs
                    .iter()
                    .zip(frames.chunks(2))
                    .all(|((k, v), f)| resp2_matches(k, &f[0]) && resp2_matches(v, &f[1]))
        }
        _ => false,
    }
}

fn resp3_matches(reply: &Reply, frame: &redis_protocol::resp3::types::BytesFrame) -> bool {
    use redis_protocol::resp3::types::BytesFrame as F;
    match (reply, frame) {
        (Reply::Ok, F::SimpleString { data, .. }) => &data[..] == b"OK",
        (Reply::Null, F::Null) => true,
        (Reply::Integer(i), F::Number { data, .. }) => i == data,
        (Reply::Bulk(b), F::BlobString { data, .. }) => b == data,
        (Reply::Verbatim(b), F::VerbatimString { data, .. }) => b == data,
        (Reply::Error(e), F::SimpleError { data, .. }) => e.text() == &data[..],
        (Reply::Array(items), F::Array { data, .. }) => {
            items.len() == data.len() && items.iter().zip(data).all(|(r, f)| resp3_matches(r, f))
        }
        (Reply::Map(pairs), F::Map { data, .. }) => {
            // The encoder keeps order (see the golden tests); the oracle's decoder does
            // not promise to, so pairs are matched by key here.
            pairs.len() == data.len()
                && pairs.iter().all(|(k, v)| {
                    data.iter()
                        .any(|(fk, fv)| resp3_matches(k, fk) && resp3_matches(v, fv))
                })
        }
        _ => false,
    }
}

proptest! {
    #[test]
    fn encoded_replies_decode_back(reply in arb_reply()) {
        let bytes = Bytes::from(enc(&reply, Protocol::Resp2));
        let (frame, used) = redis_protocol::resp2::decode::decode_bytes(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert!(resp2_matches(&reply, &frame), "{:?} vs {:?}", reply, frame);

        let bytes = Bytes::from(enc(&reply, Protocol::Resp3));
        let (frame, used) =
            redis_protocol::resp3::decode::complete::decode_bytes(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert!(resp3_matches(&reply, &frame), "{:?} vs {:?}", reply, frame);
    }
}
