//! `shoal cluster ...`: operator commands against a running cluster: `status`,
//! `add-learner` and `change-membership` (alias `promote`), the latter two applied to
//! every group in order (a node is a member of all groups or of none, once they finish;
//! a failure stops at the group that failed, which the output names).
//!
//! `status` asks the node given by `--addr` for the topology, then asks every node it
//! names for its own status, and prints, per group, each node's view: role, term, leader,
//! last log, commit and applied index, lag (entries the node's state machine is behind
//! the leader's last log entry), and the state digest of the group on that node (keys and
//! hash, stamped with the applied index it was computed at; `--no-digest` skips them, as
//! each visits every key). The rendering is a pure function of the answers, so it is
//! tested without a cluster.
//!
//! Exit codes: 0 when every node answered, every group has a leader all of them agree
//! on, and no two nodes report different digests at the same applied index; 3
//! (`EXIT_FAILED`) otherwise, the table still printed. (A key whose expiry falls between
//! two nodes' digests can make them differ once; run again to confirm a divergence.)

use std::fmt::Write as _;
use std::process::ExitCode;

use shoal_client::{KvClientError, RemoteKvClient};
use shoal_proto::{GroupDigest, NodeInfo, StatusReport};

use super::EXIT_FAILED;

/// One node's answer to the status request.
pub type NodeAnswer = (NodeInfo, Result<StatusReport, KvClientError>);

/// One node's digest of one group (`node_id`, digest).
pub type NodeDigest = (u64, GroupDigest);

/// `shoal cluster add-learner`: node `node_id` becomes a learner of every group.
pub async fn add_learner(
    client: &RemoteKvClient,
    node_id: u64,
    peer_addr: &str,
    client_addr: &str,
) -> Result<ExitCode, KvClientError> {
    let groups = client.topology().await?.shard_count;
    for group in 0..groups {
        let index = client
            .add_learner(group, node_id, peer_addr, client_addr)
            .await?;
        println!("group {group}: node {node_id} added as a learner (log index {index})");
    }
    Ok(ExitCode::SUCCESS)
}

/// `shoal cluster change-membership` (alias `promote`): the voters of every group.
pub async fn change_membership(
    client: &RemoteKvClient,
    voters: &[u64],
    retain: bool,
) -> Result<ExitCode, KvClientError> {
    let groups = client.topology().await?.shard_count;
    for group in 0..groups {
        let index = client.change_membership(group, voters, retain).await?;
        println!("group {group}: voters {voters:?} (log index {index})");
    }
    Ok(ExitCode::SUCCESS)
}

/// `shoal cluster status`; with `digests`, each answering node's digest of each group.
pub async fn status(client: &RemoteKvClient, digests: bool) -> Result<ExitCode, KvClientError> {
    let topology = client.topology().await?;
    let mut answers: Vec<NodeAnswer> = Vec::with_capacity(topology.nodes.len());
    let mut seen: Vec<NodeDigest> = Vec::new();
    for node in topology.nodes {
        let report = client.node_status(&node.addr).await;
        if digests && report.is_ok() {
            for group in 0..topology.shard_count {
                // A missing digest (older node, timeout) shows as "-", it is no failure.
                if let Ok(d) = client.state_digest(&node.addr, group).await {
                    seen.push((node.node_id, d));
                }
            }
        }
        answers.push((node, report));
    }
    let (text, healthy) = render_status(topology.shard_count, &answers, &seen);
    print!("{text}");
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The status table, and whether the cluster is healthy (every node answered, every
/// group has one leader every answering node agrees on, no two digests of a group at the
/// same applied index differ).
pub fn render_status(
    shard_count: u32,
    answers: &[NodeAnswer],
    digests: &[NodeDigest],
) -> (String, bool) {
    let mut out = String::new();
    let mut healthy = true;
    let _ = writeln!(out, "{} nodes, {shard_count} groups", answers.len());
    // The topology may still list a configured node that was removed from every group
    // (when the answering node could not learn every group's membership): such a node is
    // not part of the cluster any more, its absence is no failure.
    let member = |id: u64| {
        answers.iter().any(|(_, r)| {
            r.as_ref().is_ok_and(|r| {
                r.groups
                    .iter()
                    .any(|g| g.voters.contains(&id) || g.learners.contains(&id))
            })
        })
    };
    for (node, report) in answers {
        match report {
            Ok(_) => {
                let _ = writeln!(out, "node {} at {}: up", node.node_id, node.addr);
            }
            Err(_) if !member(node.node_id) => {
                let _ = writeln!(
                    out,
                    "node {} at {}: not a member of any group (removed), unreachable",
                    node.node_id, node.addr
                );
            }
            Err(e) => {
                healthy = false;
                let _ = writeln!(
                    out,
                    "node {} at {}: UNREACHABLE ({e})",
                    node.node_id, node.addr
                );
            }
        }
    }
    for group in 0..shard_count {
        let views: Vec<(u64, &shoal_proto::GroupStatus)> = answers
            .iter()
            .filter_map(|(n, r)| {
                let r = r.as_ref().ok()?;
                let g = r.groups.iter().find(|g| g.group == group)?;
                Some((n.node_id, g))
            })
            .collect();
        let mut leaders: Vec<u64> = views.iter().filter_map(|(_, g)| g.leader).collect();
        leaders.sort_unstable();
        leaders.dedup();
        let leader = match (
            leaders.as_slice(),
            views.iter().all(|(_, g)| g.leader.is_some()),
        ) {
            ([one], true) => Some(*one),
            _ => None,
        };
        // The leader's own last log index; without an agreed leader, the longest log.
        let head = leader
            .and_then(|l| views.iter().find(|(id, _)| *id == l))
            .and_then(|(_, g)| g.last_log_index)
            .or_else(|| views.iter().filter_map(|(_, g)| g.last_log_index).max());
        match leader {
            Some(l) => {
                let term = views
                    .iter()
                    .find(|(id, _)| *id == l)
                    .map_or_else(|| "?".to_string(), |(_, g)| g.term.to_string());
                let _ = writeln!(out, "group {group}: leader node {l}, term {term}");
            }
            None => {
                healthy = false;
                let seen: Vec<String> = leaders.iter().map(u64::to_string).collect();
                let _ = writeln!(
                    out,
                    "group {group}: NO AGREED LEADER (leaders seen: [{}])",
                    seen.join(", ")
                );
            }
        }
        let group_digests: Vec<&NodeDigest> =
            digests.iter().filter(|(_, d)| d.group == group).collect();
        for (i, (a, da)) in group_digests.iter().enumerate() {
            let differs = group_digests[i + 1..].iter().find(|(_, db)| {
                db.applied_index == da.applied_index && (db.keys, db.digest) != (da.keys, da.digest)
            });
            if let Some((b, _)) = differs {
                healthy = false;
                let _ = writeln!(
                    out,
                    "group {group}: DIGESTS DIFFER between nodes {a} and {b} at applied index {}",
                    opt(da.applied_index)
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:>6}  {:<9} {:>6} {:>7} {:>10} {:>10} {:>10} {:>8}  digest (keys/hash@applied)",
            "node", "role", "term", "leader", "last_log", "committed", "applied", "lag",
        );
        for (id, g) in &views {
            let lag = match (head, g.applied_index) {
                (Some(h), Some(a)) => h.saturating_sub(a).to_string(),
                (Some(h), None) => (h + 1).to_string(),
                (None, _) => "-".to_string(),
            };
            let digest = group_digests.iter().find(|(n, _)| n == id).map_or_else(
                || "-".to_string(),
                |(_, d)| format!("{}/{:016x}@{}", d.keys, d.digest, opt(d.applied_index)),
            );
            let _ = writeln!(
                out,
                "  {:>6}  {:<9} {:>6} {:>7} {:>10} {:>10} {:>10} {:>8}  {}",
                id,
                format!("{:?}", g.role),
                g.term,
                opt(g.leader),
                opt(g.last_log_index),
                opt(g.committed_index),
                opt(g.applied_index),
                lag,
                digest
            );
        }
    }
    (out, healthy)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shoal_proto::{GroupStatus, RaftRole};

    use super::*;

    fn node(id: u64) -> NodeInfo {
        NodeInfo {
            node_id: id,
            addr: format!("127.0.0.1:{}", 7400 + 10 * id),
            shard_addrs: Vec::new(),
        }
    }

    fn group(role: RaftRole, leader: Option<u64>, last: u64, applied: u64) -> GroupStatus {
        GroupStatus {
            group: 0,
            role,
            term: 4,
            leader,
            last_log_index: Some(last),
            committed_index: Some(applied),
            applied_index: Some(applied),
            voters: vec![1, 2, 3],
            learners: Vec::new(),
        }
    }

    fn report(id: u64, g: GroupStatus) -> Result<StatusReport, KvClientError> {
        Ok(StatusReport {
            node_id: id,
            groups: vec![g],
        })
    }

    #[test]
    fn healthy_cluster_shows_leader_and_lag() {
        let answers = vec![
            (
                node(1),
                report(1, group(RaftRole::Leader, Some(1), 100, 100)),
            ),
            (
                node(2),
                report(2, group(RaftRole::Follower, Some(1), 100, 97)),
            ),
            (
                node(3),
                report(3, group(RaftRole::Follower, Some(1), 90, 90)),
            ),
        ];
        let (text, healthy) = render_status(1, &answers, &[]);
        assert!(healthy, "{text}");
        assert!(text.contains("group 0: leader node 1, term 4"), "{text}");
        let row3 = text
            .lines()
            .find(|l| l.trim_start().starts_with("3 ") && l.contains("Follower"))
            .unwrap();
        assert!(row3.trim_end().ends_with(" 10  -"), "lag of node 3: {row3}");
    }

    fn digest(applied: u64, hash: u64) -> GroupDigest {
        GroupDigest {
            group: 0,
            applied_term: 4,
            applied_index: Some(applied),
            keys: 12,
            digest: hash,
        }
    }

    #[test]
    fn digests_are_shown_and_a_difference_at_one_index_is_unhealthy() {
        let answers = vec![
            (
                node(1),
                report(1, group(RaftRole::Leader, Some(1), 100, 100)),
            ),
            (
                node(2),
                report(2, group(RaftRole::Follower, Some(1), 100, 100)),
            ),
            (
                node(3),
                report(3, group(RaftRole::Follower, Some(1), 100, 90)),
            ),
        ];
        // Nodes 1 and 2 agree at 100; node 3 differs but is at another index.
        let same = [
            (1, digest(100, 0xab)),
            (2, digest(100, 0xab)),
            (3, digest(90, 0xcd)),
        ];
        let (text, healthy) = render_status(1, &answers, &same);
        assert!(healthy, "{text}");
        assert!(text.contains("12/00000000000000ab@100"), "{text}");
        assert!(text.contains("12/00000000000000cd@90"), "{text}");

        let differ = [
            (1, digest(100, 0xab)),
            (2, digest(100, 0xac)),
            (3, digest(90, 0xcd)),
        ];
        let (text, healthy) = render_status(1, &answers, &differ);
        assert!(!healthy, "{text}");
        assert!(
            text.contains("group 0: DIGESTS DIFFER between nodes 1 and 2 at applied index 100"),
            "{text}"
        );
    }

    #[test]
    fn unreachable_node_or_split_leaders_is_unhealthy() {
        let down = KvClientError::Timeout {
            detail: "no answer".into(),
            last_error: None,
        };
        let answers = vec![
            (node(1), report(1, group(RaftRole::Leader, Some(1), 10, 10))),
            (node(2), Err(down.clone())),
        ];
        let (text, healthy) = render_status(1, &answers, &[]);
        assert!(!healthy);
        assert!(
            text.contains("node 2 at 127.0.0.1:7420: UNREACHABLE"),
            "{text}"
        );

        // A node no group lists any more (removed) may be down.
        let mut alone = group(RaftRole::Leader, Some(1), 10, 10);
        alone.voters = vec![1, 3];
        let answers = vec![(node(1), report(1, alone)), (node(2), Err(down))];
        let (text, healthy) = render_status(1, &answers, &[]);
        assert!(healthy, "{text}");
        assert!(
            text.contains("node 2 at 127.0.0.1:7420: not a member"),
            "{text}"
        );

        let answers = vec![
            (node(1), report(1, group(RaftRole::Leader, Some(1), 10, 10))),
            (node(2), report(2, group(RaftRole::Candidate, None, 10, 10))),
        ];
        let (text, healthy) = render_status(1, &answers, &[]);
        assert!(!healthy);
        assert!(text.contains("NO AGREED LEADER"), "{text}");
    }
}
