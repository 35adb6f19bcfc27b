//! Support of the history-checked fault suites (`tests/faults_cluster.rs` on 3 and 5
//! nodes, `tests/faults_history.rs` on one node): the recorded workload, the
//! fault-injecting cluster and its proxies, the nemeses and the history checks.
#![allow(dead_code)]

pub mod checks;
pub mod inject;
pub mod links;
pub mod nemesis;
pub mod workload;
