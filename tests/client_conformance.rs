//! The `KvClient` conformance suite (written once in `shoal_client::conformance`) against
//! the real node: the local client on an embedded single node, and the remote client on a
//! single node process. (The 3-node cluster run lives with the cluster tests.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use node_support::NodeProcess;
use shoal::config::NodeConfig;
use shoal::local_client::LocalKvClient;
use shoal::node::Node;
use shoal_client::conformance::{SuiteOptions, check_shutdown, run_all};
use shoal_client::{KvClientError, RemoteKvClient, RemoteOptions};
use shoal_testkit::ports::{free_port_block, localhost};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn local_client_on_an_embedded_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = NodeConfig {
        data_dir: tmp.path().join("data"),
        shards: 2,
        client_addr: localhost(free_port_block(2).unwrap()),
        peer_addr: localhost(free_port_block(2).unwrap()),
        ..NodeConfig::default()
    };
    config.wal.segment_mib = 8;
    config.validate().unwrap();
    rt().block_on(async {
        let mut node = Node::start(config).unwrap();
        node.ready().await.unwrap();
        let client = Arc::new(LocalKvClient::new(node.mesh().clone()));
        let opts = SuiteOptions {
            key_prefix: "local:".into(),
            ..SuiteOptions::default()
        };
        run_all(client.clone(), &opts).await.unwrap();
        // Shutting the node down makes every call fail with ChannelClosed, never hang.
        let node = std::sync::Mutex::new(Some(node));
        check_shutdown(
            &*client,
            || async {
                let node = node.lock().unwrap().take().unwrap();
                node.stop().await.unwrap();
            },
            |e| matches!(e, KvClientError::ChannelClosed { .. }),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    });
}

#[test]
fn remote_client_on_a_single_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&tmp.path().join("data"), 2, &[]);
    rt().block_on(async {
        let client = Arc::new(node.client().await);
        let opts = SuiteOptions {
            key_prefix: "remote:".into(),
            ..SuiteOptions::default()
        };
        run_all(client.clone(), &opts).await.unwrap();
    });
    node.process.kill().unwrap();

    // An unreachable node: the call fails with Timeout within the configured time.
    rt().block_on(async {
        let opts = RemoteOptions {
            request_timeout: Duration::from_millis(800),
            connect_timeout: Duration::from_millis(200),
            ..RemoteOptions::default()
        };
        let started = Instant::now();
        let e = RemoteKvClient::connect([node.client_addr], opts)
            .await
            .expect_err("nothing listens there");
        assert!(matches!(e, KvClientError::Timeout { .. }), "{e}");
        // Generous bound: the point is "fails, does not hang", not a latency figure.
        assert!(started.elapsed() < Duration::from_secs(10));
    });
}
