//! `Node`: the embedding API. Starts a node's shard threads inside the calling process,
//! reports when they serve, gives the mesh the local client talks through, and stops
//! them gracefully.
//!
//! Everything here is runtime-agnostic: `ready` and `wait` are plain futures over
//! `tokio::sync` channels, so a tokio application (or `futures::executor::block_on`, as the
//! `shoal` binary does) awaits them without glommio.
//!
//! Invariants:
//! - The data directory is locked for as long as the `Node` lives (and is released when
//!   every shard thread has stopped).
//! - `shutdown` is idempotent; dropping a `Node` shuts it down and joins its threads, so a
//!   node never outlives its handle.
//! - A shard that fails (at start or later) makes `ready`/`wait` report that shard's error;
//!   the other shards keep serving until `shutdown` (a failed shard answers
//!   `ShuttingDown` through the mesh, since its inbox is closed).

use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{oneshot, watch};

use super::layout::{DataDir, LayoutError};
use super::mesh::Mesh;
use super::shard_thread::{ShardContext, ShardError, ShardReady, spawn_shard};
use crate::config::NodeConfig;

/// Why a node could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The data directory cannot be used.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A shard thread could not be created.
    #[error("cannot start the thread of shard {shard}: {reason}")]
    Spawn {
        /// The shard.
        shard: usize,
        /// The executor's error.
        reason: String,
    },
    /// A shard failed.
    #[error("shard {shard}: {source}")]
    Shard {
        /// The shard.
        shard: usize,
        /// What failed.
        #[source]
        source: Arc<ShardError>,
    },
    /// A shard thread ended without reporting (it panicked).
    #[error("shard {0} stopped without reporting (its thread panicked; see the log)")]
    Vanished(usize),
}

/// Asks a node to stop; cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    stop: watch::Sender<bool>,
}

impl ShutdownHandle {
    /// Asks every shard to stop (idempotent). Returns whether a stop had already been
    /// requested.
    pub fn shutdown(&self) -> bool {
        self.stop.send_replace(true)
    }
}

struct ShardThread {
    shard: usize,
    ready: Option<oneshot::Receiver<Result<ShardReady, Arc<ShardError>>>>,
    done: Option<oneshot::Receiver<Result<(), Arc<ShardError>>>>,
    join: Option<glommio::ExecutorJoinHandle<()>>,
}

/// A running node inside this process.
pub struct Node {
    config: Arc<NodeConfig>,
    mesh: Mesh,
    stop: watch::Sender<bool>,
    shards: Vec<ShardThread>,
    ready: Option<Vec<ShardReady>>,
    data: Option<DataDir>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.config.node_id)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Prepares the data directory and starts one thread per shard. Returns at once;
    /// await [`Node::ready`] before relying on the shards.
    ///
    /// `config` must be validated (`NodeConfig::load` does it) with a resolved shard count.
    pub fn start(config: NodeConfig) -> Result<Node, NodeError> {
        assert!(
            config.shards > 0,
            "the shard count is resolved before start"
        );
        if config.clock_offset_ms != 0 {
            tracing::warn!(
                offset_ms = config.clock_offset_ms,
                "TEST-ONLY: the wall clock used for TTLs is shifted"
            );
        }
        crate::shard::clock::set_offset_ms(config.clock_offset_ms);
        if config.unsafe_local_reads {
            tracing::warn!("UNSAFE: leaders serve reads without ReadIndex (test-only switch)");
        }
        let config = Arc::new(config);
        let data = DataDir::prepare(&config.data_dir, config.node_id, config.shards)?;
        let (mesh, inboxes) = Mesh::new(config.shards, config.limits.shard_queue_depth);
        let (stop, _) = watch::channel(false);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut node = Node {
            config: config.clone(),
            mesh: mesh.clone(),
            stop,
            shards: Vec::with_capacity(config.shards),
            ready: None,
            data: None,
        };
        for (shard, inbox) in inboxes.into_iter().enumerate() {
            let (ready_tx, ready_rx) = oneshot::channel();
            let (done_tx, done_rx) = oneshot::channel();
            let ctx = ShardContext {
                shard,
                core: config.executor.core_of(shard, cores),
                config: config.clone(),
                wal_dir: data.wal_dir(shard),
                snapshot_dir: data.snapshot_dir(shard),
                mesh: mesh.clone(),
                inbox,
                stop: node.stop.subscribe(),
                ready: ready_tx,
                done: done_tx,
            };
            match spawn_shard(ctx) {
                Ok(join) => node.shards.push(ShardThread {
                    shard,
                    ready: Some(ready_rx),
                    done: Some(done_rx),
                    join: Some(join),
                }),
                Err(reason) => {
                    // Stop the shards already started before reporting.
                    node.shutdown();
                    node.join_threads();
                    return Err(NodeError::Spawn { shard, reason });
                }
            }
        }
        node.data = Some(data);
        Ok(node)
    }

    /// Waits until every shard serves (listening, group running, and on a single node
    /// its group leading), and returns what each reported. Fails with the first shard
    /// that failed to start.
    pub async fn ready(&mut self) -> Result<&[ShardReady], NodeError> {
        if self.ready.is_none() {
            let mut all = Vec::with_capacity(self.shards.len());
            for t in &mut self.shards {
                let rx = t.ready.take().ok_or(NodeError::Vanished(t.shard))?;
                match rx.await {
                    Ok(Ok(r)) => all.push(r),
                    Ok(Err(e)) => {
                        return Err(NodeError::Shard {
                            shard: t.shard,
                            source: e,
                        });
                    }
                    Err(_) => return Err(NodeError::Vanished(t.shard)),
                }
            }
            self.ready = Some(all);
        }
        Ok(self.ready.as_deref().unwrap_or(&[]))
    }

    /// The mesh reaching every shard's inbox (what `LocalKvClient` sends through).
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// Whether this start created the data directory (a brand-new node) rather than
    /// recovering an existing one.
    pub fn is_fresh(&self) -> bool {
        self.data.as_ref().is_some_and(DataDir::is_fresh)
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The client address shard `shard` listens on (known once `ready` returned).
    pub fn client_addr(&self, shard: usize) -> Option<SocketAddr> {
        self.ready.as_ref()?.get(shard).map(|r| r.client_addr)
    }

    /// A handle that can ask the node to stop from any thread (a signal handler, another
    /// task), independent of the `Node`'s lifetime.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            stop: self.stop.clone(),
        }
    }

    /// Asks every shard to stop: stop accepting, finish in-flight requests, stop the
    /// group, close the WAL. Returns at once; await [`Node::wait`] for the end.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until every shard stopped (after `shutdown`, or after a failure), then joins
    /// the threads. Returns the first shard error, if any.
    pub async fn wait(mut self) -> Result<(), NodeError> {
        use futures::StreamExt;
        let mut pending: futures::stream::FuturesUnordered<_> = self
            .shards
            .iter_mut()
            .filter_map(|t| {
                let shard = t.shard;
                t.done.take().map(|rx| async move { (shard, rx.await) })
            })
            .collect();
        let mut first = None;
        while let Some((shard, outcome)) = pending.next().await {
            let err = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => NodeError::Shard { shard, source: e },
                Err(_) => NodeError::Vanished(shard),
            };
            // One shard failing stops the node: the operator restarts it whole, rather
            // than running with a key range that answers nothing.
            self.stop.send_replace(true);
            first.get_or_insert(err);
        }
        drop(pending);
        self.join_threads();
        first.map_or(Ok(()), Err)
    }

    /// Shuts down and waits: `shutdown` then `wait`.
    pub async fn stop(self) -> Result<(), NodeError> {
        self.shutdown();
        self.wait().await
    }

    fn join_threads(&mut self) {
        for t in &mut self.shards {
            if let Some(join) = t.join.take() {
                // The thread already reported (or panicked); joining only reaps it.
                if join.join().is_err() {
                    tracing::error!(shard = t.shard, "shard thread panicked");
                }
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.shards.iter().any(|t| t.join.is_some()) {
            self.shutdown();
            self.join_threads();
        }
    }
}
