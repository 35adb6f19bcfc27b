//! Support of the 3-node Jepsen-style suite (`tests/faults_cluster.rs`): the recorded
//! workload, the fault-injecting cluster, the nemeses and the history checks.
#![allow(dead_code)]

pub mod checks;
pub mod inject;
pub mod nemesis;
pub mod workload;
