//! The fault proxies of a faulty cluster: one per directed peer link (node X -> node Y)
//! and one per (client, node) pair, each covering every shard port of its node.
//!
//! Peer links: node X dials Y's groups through proxy (X, Y) (`--peer-route`), so cutting
//! (X, Y) stops X's RPCs to Y (and their replies) while Y's RPCs to X still flow.
//!
//! Client links: a client gets its `RemoteOptions` from [`Links::client_options`], whose
//! `address_rewrite` maps each node's client ports (the addresses seeds, Topology answers
//! and `NotLeader` hints name) to the ports of that client's own proxy to the node. So
//! cutting or holding (client C, node Y) affects only C's traffic to Y, wherever C learned
//! Y's address. Every workload client has its own proxies; the harness's recorded clients
//! (probes, final reads, liveness) share the proxies of [`HARNESS`]. Only the harness's
//! unrecorded control-plane queries (who leads, state digests) dial the nodes directly.
//!
//! Invariant: [`Links::heal`] lifts every fault on every proxy, peer and client alike.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use shoal_client::{AddressRewrite, RemoteOptions};
use shoal_testkit::ports::{free_port_block, localhost};
use shoal_testkit::proxy::{Fault, Proxy};

use crate::cluster_support::Cluster;

/// The proxy slot of every harness client (ids not listed as workload clients).
pub const HARNESS: u64 = u64::MAX;

/// Every proxy of a cluster.
pub struct Links {
    /// (from, to) -> the proxy node `from` dials node `to` through.
    peers: BTreeMap<(u64, u64), Proxy>,
    /// (client, node) -> the proxy the client dials the node through.
    clients: BTreeMap<(u64, u64), Proxy>,
    /// client -> its address rewrite (node client port -> its proxy's port).
    rewrites: BTreeMap<u64, AddressRewrite>,
}

impl Links {
    /// Starts a proxy on every directed peer link of `cluster` (whose nodes are planned,
    /// not started) and on every (client, node) pair of `clients` plus [`HARNESS`];
    /// returns them with each node's `--peer-route` flags (node 1's first).
    pub fn start(cluster: &Cluster, shards: u16, clients: &[u64]) -> (Links, Vec<Vec<String>>) {
        let n = cluster.nodes.len() as u64;
        let mut peers = BTreeMap::new();
        let mut flags = Vec::new();
        for x in 1..=n {
            let mut f = Vec::new();
            for y in (1..=n).filter(|&y| y != x) {
                let base = free_port_block(shards).expect("free proxy ports");
                let target = cluster.node(y).peer_addr;
                let routes: Vec<_> = (0..shards)
                    .map(|s| (localhost(base + s), localhost(target.port() + s)))
                    .collect();
                let proxy = Proxy::start(&routes).expect("start link proxy");
                f.push("--peer-route".to_string());
                f.push(format!("{y}={}", proxy.addrs()[0]));
                peers.insert((x, y), proxy);
            }
            flags.push(f);
        }
        let mut links = Links {
            peers,
            clients: BTreeMap::new(),
            rewrites: BTreeMap::new(),
        };
        for &c in clients.iter().chain([&HARNESS]) {
            let mut map = HashMap::new();
            for y in 1..=n {
                let node = cluster.node(y).client_addr;
                let routes: Vec<(SocketAddr, SocketAddr)> = (0..shards)
                    .map(|s| (localhost(0), localhost(node.port() + s)))
                    .collect();
                let proxy = Proxy::start(&routes).expect("start client proxy");
                for (s, at) in proxy.addrs().iter().enumerate() {
                    map.insert(localhost(node.port() + s as u16), *at);
                }
                links.clients.insert((c, y), proxy);
            }
            links.rewrites.insert(c, AddressRewrite::from_map(map));
        }
        (links, flags)
    }

    /// `base` with the address rewrite of `client` (of [`HARNESS`] if it has no proxies
    /// of its own).
    pub fn client_options(&self, client: u64, base: RemoteOptions) -> RemoteOptions {
        let r = self
            .rewrites
            .get(&client)
            .or_else(|| self.rewrites.get(&HARNESS))
            .expect("harness proxies exist");
        RemoteOptions {
            address_rewrite: Some(r.clone()),
            ..base
        }
    }

    /// Sets `fault` on every peer link for which `pick(from, to)` holds.
    pub fn set_peers(&self, fault: Fault, pick: impl Fn(u64, u64) -> bool) {
        for ((x, y), p) in &self.peers {
            if pick(*x, *y) {
                p.set(fault);
            }
        }
    }

    /// Sets `fault` on every client link for which `pick(client, node)` holds.
    pub fn set_clients(&self, fault: Fault, pick: impl Fn(u64, u64) -> bool) {
        for ((c, y), p) in &self.clients {
            if pick(*c, *y) {
                p.set(fault);
            }
        }
    }

    /// Lifts every fault on every link.
    pub fn heal(&self) {
        for p in self.peers.values().chain(self.clients.values()) {
            p.heal();
        }
    }

    /// Connections the client proxies carry now (to show that clients use them).
    pub fn client_connections(&self) -> usize {
        self.clients.values().map(Proxy::live_connections).sum()
    }
}
