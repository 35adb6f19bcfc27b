//! Test support for process-level node tests: start the `shoal` binary on free ports
//! with a private data directory, wait for it to be ready, stop it by pid.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shoal_client::{RemoteKvClient, RemoteOptions};
use shoal_testkit::ports::{free_port_block, localhost};
use shoal_testkit::process::ChildProcess;

/// Bound on a node's start (recovery of a test-sized log included).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries of a first start on fresh ports when a port was taken meanwhile.
pub const PORT_ATTEMPTS: usize = 5;
/// Bound on a graceful stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A `shoal` node process.
pub struct NodeProcess {
    pub process: ChildProcess,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub shards: u16,
    extra: Vec<String>,
    starts: usize,
}

impl NodeProcess {
    /// Starts a node with `shards` shards on free ports, data in `data_dir`, plus `extra`
    /// flags, and waits until it reports ready.
    ///
    /// A port found free can be taken before the node binds it (another test process, or
    /// a port that this test's check could bind but the node's listener cannot, e.g. with
    /// connections of an earlier process still in TIME_WAIT): a first start that fails
    /// with "Address already in use" is retried on other ports, at most
    /// [`PORT_ATTEMPTS`] times.
    pub fn start(data_dir: &Path, shards: u16, extra: &[&str]) -> NodeProcess {
        for attempt in 1..=PORT_ATTEMPTS {
            let client = free_port_block(shards).expect("free client ports");
            let peer = free_port_block(shards).expect("free peer ports");
            let mut node = NodeProcess {
                process: spawn(data_dir, shards, client, peer, extra, 0),
                client_addr: localhost(client),
                peer_addr: localhost(peer),
                data_dir: data_dir.to_path_buf(),
                shards,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                starts: 1,
            };
            match node.wait_ready_or_exit() {
                Ok(()) => return node,
                Err(log) if log.contains("Address already in use") && attempt < PORT_ATTEMPTS => {
                    eprintln!("node start {attempt}: a port was taken; retrying on others");
                }
                Err(log) => panic!("node exited during start {log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Starts the same node again (same ports, data and flags) after it stopped.
    pub fn restart(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.process = spawn(
            &self.data_dir,
            self.shards,
            self.client_addr.port(),
            self.peer_addr.port(),
            &extra,
            self.starts,
        );
        self.starts += 1;
        self.wait_ready();
    }

    /// Stops the node gracefully (SIGINT: drains, closes every log with its exact
    /// committed index) and waits for it to exit.
    pub fn stop(&mut self) {
        let status = self
            .process
            .interrupt(STOP_TIMEOUT)
            .unwrap_or_else(|e| panic!("graceful stop: {e}:\n{}", self.process.log()));
        assert!(
            status.success(),
            "graceful stop failed ({status}):\n{}",
            self.process.log()
        );
    }

    /// Starts the same node again and expects it to refuse to start: waits for it to exit
    /// with a failure and returns what it printed during this start.
    pub fn restart_expecting_refusal(&mut self) -> String {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.process = spawn(
            &self.data_dir,
            self.shards,
            self.client_addr.port(),
            self.peer_addr.port(),
            &extra,
            self.starts,
        );
        self.starts += 1;
        self.process.expect_refusal("shoal: ready", START_TIMEOUT)
    }

    /// Waits until the node is ready; `Err(log)` if it exited first.
    fn wait_ready_or_exit(&mut self) -> Result<(), String> {
        self.process.wait_ready("shoal: ready", START_TIMEOUT)
    }

    fn wait_ready(&mut self) {
        if let Err(log) = self.wait_ready_or_exit() {
            panic!("node exited during start {log}");
        }
    }

    /// A remote client connected to this node.
    pub async fn client(&self) -> RemoteKvClient {
        self.client_with(RemoteOptions {
            request_timeout: Duration::from_secs(10),
            ..RemoteOptions::default()
        })
        .await
    }

    /// A remote client with `opts`.
    pub async fn client_with(&self, opts: RemoteOptions) -> RemoteKvClient {
        RemoteKvClient::connect([self.client_addr], opts)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.client_addr))
    }
}

fn spawn(
    data_dir: &Path,
    shards: u16,
    client_port: u16,
    peer_port: u16,
    extra: &[&str],
    start: usize,
) -> ChildProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["--shards", &shards.to_string()])
        .args(["--client-addr", &localhost(client_port).to_string()])
        .args(["--peer-addr", &localhost(peer_port).to_string()])
        // Small segments: zero-filling 64 MiB per shard per start would dominate the tests.
        .args(["--wal-segment-mib", "8"])
        .args(["--log-level", "warn,shoal=info"])
        .args(extra);
    let log = data_dir.with_extension(format!("log.{start}"));
    ChildProcess::spawn("shoal", cmd, &log).expect("spawn shoal")
}
