//! The shard server over real TCP on 127.0.0.1: two shard executors with a mesh between
//! them, fake shard services, and a blocking client built on the protocol codec.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod hardening;
mod ops;
mod support;
mod throughput;
