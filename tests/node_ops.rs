//! A running node with 2 shards, over TCP: every operation of the contract, TTL expiry,
//! get_multi with missing keys, graceful shutdown (SIGINT → exit 0) and restart with the
//! data intact. Also the embedded node with `LocalKvClient`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;

use std::time::Duration;

use bytes::Bytes;
use node_support::NodeProcess;
use shoal_client::KvClient;
use shoal_testkit::wait::wait_for_async;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn exercise(client: &impl KvClient) {
    // put / get / overwrite
    client.put(b"alpha", b"1").await.unwrap();
    assert_eq!(client.get(b"alpha").await.unwrap(), Some(Bytes::from("1")));
    client.put(b"alpha", b"2").await.unwrap();
    assert_eq!(client.get(b"alpha").await.unwrap(), Some(Bytes::from("2")));
    assert_eq!(client.get(b"missing").await.unwrap(), None);

    // get_multi over both shards, with missing keys, answers in input order
    let keys: Vec<Bytes> = (0..40).map(|i| Bytes::from(format!("k{i}"))).collect();
    for k in keys.iter().step_by(2) {
        client.put(k, [b"v-".as_slice(), k].concat()).await.unwrap();
    }
    let got = client.get_multi(&keys).await.unwrap();
    assert_eq!(got.len(), keys.len());
    for (i, (k, v)) in keys.iter().zip(&got).enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                v.as_deref(),
                Some([b"v-".as_slice(), k].concat().as_slice())
            );
        } else {
            assert_eq!(v, &None, "{k:?} was never written");
        }
    }
    assert_eq!(
        client.get_multi(&[]).await.unwrap(),
        Vec::<Option<Bytes>>::new()
    );

    // delete, idempotent
    client.delete(b"alpha").await.unwrap();
    assert_eq!(client.get(b"alpha").await.unwrap(), None);
    client.delete(b"alpha").await.unwrap();

    // TTL: visible before expiry, gone after; an overwrite without TTL cancels it.
    client.put_with_ttl(b"ephemeral", b"x", 1).await.unwrap();
    client.put_with_ttl(b"kept", b"y", 1).await.unwrap();
    client.put(b"kept", b"z").await.unwrap();
    assert_eq!(
        client.get(b"ephemeral").await.unwrap(),
        Some(Bytes::from("x"))
    );
    wait_for_async(
        "ephemeral expires",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            client
                .get(b"ephemeral")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(client.get(b"kept").await.unwrap(), Some(Bytes::from("z")));

    // Bad input is refused with a clear error, not sent.
    let e = client.put_with_ttl(b"k", b"v", 0).await.unwrap_err();
    assert!(e.to_string().contains("ttl"), "{e}");
}

#[test]
fn every_operation_over_tcp_then_graceful_restart_keeps_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&tmp.path().join("data"), 2, &[]);
    rt().block_on(async {
        let client = node.client().await;
        exercise(&client).await;
        client.put(b"survivor", b"still here").await.unwrap();
    });

    // Graceful stop: SIGINT, exit status 0, and the log says so.
    let status = node.process.interrupt(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}:\n{}", node.process.log());
    assert!(
        node.process.log().contains("shoal: stopped"),
        "{}",
        node.process.log()
    );

    node.restart();
    rt().block_on(async {
        let client = node.client().await;
        assert_eq!(
            client.get(b"survivor").await.unwrap(),
            Some(Bytes::from("still here"))
        );
        assert_eq!(client.get(b"alpha").await.unwrap(), None);
        assert_eq!(client.get(b"kept").await.unwrap(), Some(Bytes::from("z")));
    });
    node.process.kill().unwrap();
}

#[test]
fn embedded_node_serves_the_local_client_and_restarts_with_its_data() {
    use shoal::config::NodeConfig;
    use shoal::local_client::LocalKvClient;
    use shoal::node::Node;
    use shoal_testkit::ports::{free_port_block, localhost};

    let tmp = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = NodeConfig {
            data_dir: tmp.path().join("embedded"),
            shards: 2,
            client_addr: localhost(free_port_block(2).unwrap()),
            peer_addr: localhost(free_port_block(2).unwrap()),
            ..NodeConfig::default()
        };
        c.wal.segment_mib = 8;
        c.validate().unwrap();
        c
    };
    rt().block_on(async {
        let mut node = Node::start(config()).unwrap();
        assert!(node.is_fresh());
        let ready = node.ready().await.unwrap();
        assert_eq!(ready.len(), 2);
        let client = LocalKvClient::new(node.mesh().clone());
        exercise(&client).await;
        client.put(b"embedded", b"yes").await.unwrap();
        node.stop().await.unwrap();

        // The stopped node's mesh answers ShuttingDown, never hangs.
        let e = client.get(b"embedded").await.unwrap_err();
        assert!(
            matches!(e, shoal_client::KvClientError::ChannelClosed { .. }),
            "{e}"
        );

        let mut node = Node::start(config()).unwrap();
        assert!(!node.is_fresh());
        node.ready().await.unwrap();
        let client = LocalKvClient::new(node.mesh().clone());
        assert_eq!(
            client.get(b"embedded").await.unwrap(),
            Some(Bytes::from("yes"))
        );
        node.stop().await.unwrap();
    });
}
