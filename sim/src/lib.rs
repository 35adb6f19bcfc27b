//! Deterministic simulation of Shoal Raft groups.
//!
//! One thread, one seed: a [`runtime::SimRuntime`] (openraft's `AsyncRuntime` with a
//! virtual clock and seeded randomness) runs whole 3- and 5-node openraft groups with a
//! simulated network and a simulated disk, under a seeded fault schedule, while
//! invariants are checked at every event. See `README.md`.

pub mod cluster;
pub mod command;
pub mod history;
pub mod invariants;
pub mod nemesis;
pub mod network;
pub mod runtime;
pub mod storage;
pub mod trace;
pub mod types;
pub mod workload;

pub use cluster::RunReport;
pub use cluster::SimParams;
pub use cluster::run;
