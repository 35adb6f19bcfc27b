//! The routing table: which node leads each group, and where each (node, shard) listens.
//!
//! Invariants: a `Routing` is immutable once built and shared behind an `Arc`; updates
//! (a fresh Topology answer, a `NotLeader` hint) build a new one, so readers never lock
//! during routing. `leaders.len() == shard_count` and every node's `shard_addrs` is empty
//! or has `shard_count` entries (checked by the codec). When two sources disagree about a
//! group's leader, the higher term wins; a hint (which carries no term) wins over the
//! entry it replaces, because it is newer news from a node that knows it is not leader.

use std::collections::BTreeMap;

use shoal_proto::{GroupLeader, NodeInfo, Topology, shard_for_key};

/// Where to send a request for one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The client address to connect to (the shard's own port when the node lists one).
    pub(crate) addr: String,
    /// The node behind `addr`.
    pub(crate) node: u64,
    /// Whether the topology names `node` as the group's leader.
    pub(crate) is_leader: bool,
}

/// A snapshot of the cluster's layout as this client knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Routing {
    pub(crate) cluster_id: u64,
    pub(crate) shard_count: u32,
    /// Nodes by id (ordered, so the fallback choice is deterministic).
    pub(crate) nodes: BTreeMap<u64, NodeInfo>,
    pub(crate) leaders: Vec<GroupLeader>,
}

impl Routing {
    pub(crate) fn from_topology(t: Topology) -> Routing {
        assert_eq!(t.leaders.len(), t.shard_count as usize, "codec validated");
        Routing {
            cluster_id: t.cluster_id,
            shard_count: t.shard_count,
            nodes: t.nodes.into_iter().map(|n| (n.node_id, n)).collect(),
            leaders: t.leaders,
        }
    }

    /// Back to the protocol's form (for `RemoteKvClient::topology`).
    pub(crate) fn to_topology(&self) -> Topology {
        Topology {
            cluster_id: self.cluster_id,
            shard_count: self.shard_count,
            nodes: self.nodes.values().cloned().collect(),
            leaders: self.leaders.clone(),
        }
    }

    /// Merges a fresher answer into this one: same cluster and shard count keep the
    /// higher-term leader per group; a different shard count replaces everything.
    pub(crate) fn merged_with(&self, fresh: Routing) -> Routing {
        if fresh.shard_count != self.shard_count || fresh.cluster_id != self.cluster_id {
            return fresh;
        }
        let mut out = fresh;
        for (g, old) in self.leaders.iter().enumerate() {
            let new = &mut out.leaders[g];
            if old.term > new.term && old.leader.is_some() {
                *new = *old;
            }
        }
        out
    }

    /// The shard owning `key`.
    pub(crate) fn shard_of(&self, key: &[u8]) -> u32 {
        shard_for_key(key, self.shard_count)
    }

    /// The client address of `node` for `shard`: its per-shard port when listed (no
    /// hop on the node), else its main address (the node forwards internally).
    pub(crate) fn addr_of(node: &NodeInfo, shard: u32) -> String {
        node.shard_addrs
            .get(shard as usize)
            .cloned()
            .unwrap_or_else(|| node.addr.clone())
    }

    /// Where to send a request for `shard`: its group leader when known and not
    /// `suspect` (recently unreachable), else another node that is not suspect (chosen
    /// by shard, to spread the load), which answers `NotLeader` with a hint; when every
    /// node is suspect, the leader (or some node) anyway. `None` only if the topology
    /// lists no node at all.
    pub(crate) fn target(&self, shard: u32, suspect: impl Fn(u64) -> bool) -> Option<Target> {
        assert!(shard < self.shard_count, "shard {shard} out of range");
        let leader = self.leaders[shard as usize]
            .leader
            .and_then(|id| self.nodes.get(&id));
        let to = |node: &NodeInfo| Target {
            addr: Self::addr_of(node, shard),
            node: node.node_id,
            is_leader: leader.is_some_and(|l| l.node_id == node.node_id),
        };
        if let Some(l) = leader.filter(|l| !suspect(l.node_id)) {
            return Some(to(l));
        }
        let healthy: Vec<&NodeInfo> = self
            .nodes
            .values()
            .filter(|n| !suspect(n.node_id) && Some(n.node_id) != leader.map(|l| l.node_id))
            .collect();
        if !healthy.is_empty() {
            return Some(to(healthy[shard as usize % healthy.len()]));
        }
        if let Some(l) = leader {
            return Some(to(l));
        }
        let n = self.nodes.len();
        self.nodes.values().nth(shard as usize % n.max(1)).map(to)
    }

    /// A copy where `hint` leads `shard`'s group (the node is added if unknown).
    pub(crate) fn with_leader_hint(&self, shard: u32, hint: NodeInfo) -> Routing {
        let mut out = self.clone();
        let id = hint.node_id;
        let keep_old_addrs = out
            .nodes
            .get(&id)
            .is_some_and(|old| hint.shard_addrs.is_empty() && !old.shard_addrs.is_empty());
        if !keep_old_addrs && hint.shard_addrs.len() != self.shard_count as usize {
            // A hint without a full per-shard list still names the node's main address.
            let mut h = hint;
            h.shard_addrs.clear();
            out.nodes.entry(id).or_insert(h);
        } else if !keep_old_addrs {
            out.nodes.insert(id, hint);
        }
        out.leaders[shard as usize].leader = Some(id);
        out
    }

    /// A copy where `shard`'s leader is unknown (it refused or failed).
    pub(crate) fn without_leader(&self, shard: u32) -> Routing {
        let mut out = self.clone();
        out.leaders[shard as usize].leader = None;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(leaders: &[Option<u64>], term: u64) -> Routing {
        Routing::from_topology(Topology {
            cluster_id: 9,
            shard_count: leaders.len() as u32,
            nodes: (1..=2)
                .map(|id| NodeInfo {
                    node_id: id,
                    addr: format!("n{id}:7400"),
                    shard_addrs: (0..leaders.len())
                        .map(|s| format!("n{id}:{}", 7400 + s))
                        .collect(),
                })
                .collect(),
            leaders: leaders
                .iter()
                .map(|&leader| GroupLeader { leader, term })
                .collect(),
        })
    }

    #[test]
    fn routes_to_leader_shard_port() {
        let r = topo(&[Some(1), Some(2)], 1);
        assert_eq!(
            r.target(0, |_| false).map(|t| t.addr),
            Some("n1:7400".into())
        );
        assert_eq!(
            r.target(1, |_| false).map(|t| t.addr),
            Some("n2:7401".into())
        );
        // A suspected leader is bypassed while another node is healthy, used otherwise.
        assert_eq!(
            r.target(0, |n| n == 1).map(|t| t.addr),
            Some("n2:7400".into())
        );
        assert_eq!(
            r.target(0, |_| true).map(|t| t.addr),
            Some("n1:7400".into())
        );
    }

    #[test]
    fn unknown_leader_falls_back_to_some_node_on_the_shard_port() {
        let r = topo(&[None, None], 1);
        let t = r.target(1, |_| false).unwrap();
        assert!(!t.is_leader);
        assert!(t.addr.ends_with(":7401"), "{t:?}");
    }

    #[test]
    fn hint_overrides_and_higher_term_wins_on_merge() {
        let r = topo(&[Some(1), Some(1)], 5);
        let hinted = r.with_leader_hint(
            1,
            NodeInfo {
                node_id: 2,
                addr: "n2:7400".into(),
                shard_addrs: vec![],
            },
        );
        // The hint carried no shard list: the known one is kept.
        assert_eq!(
            hinted.target(1, |_| false).map(|t| t.addr),
            Some("n2:7401".into())
        );
        let stale = topo(&[Some(2), Some(2)], 4);
        let merged = r.merged_with(stale);
        assert_eq!(merged.leaders[0].leader, Some(1));
        let newer = topo(&[Some(2), None], 6);
        let merged = r.merged_with(newer);
        assert_eq!(merged.leaders[0].leader, Some(2));
        // A newer term without a leader is an election: the old leader is stale.
        assert_eq!(merged.leaders[1].leader, None);
    }
}
