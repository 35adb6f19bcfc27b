//! Test harness for Shoal's process-level suites (node, cluster, fault injection).
//!
//! Everything a test needs to run real node processes on 127.0.0.1 and hurt them:
//! - [`ports`]: blocks of consecutive free loopback ports (shard `s` listens on base + s);
//! - [`process`]: a child process stopped by pid (SIGKILL, SIGTERM, SIGSTOP/SIGCONT),
//!   never left behind when a test fails;
//! - [`wait`]: waiting for a condition with a deadline instead of sleeping;
//! - [`proxy`]: a TCP proxy that passes, delays, blackholes or cuts a link on command.
//!
//! Invariant: every loop here is bounded in time, and every resource (port, process,
//! proxy task) is released when its handle drops.

pub mod ports;
pub mod process;
pub mod proxy;
pub mod wait;
