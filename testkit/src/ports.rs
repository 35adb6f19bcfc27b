//! Blocks of consecutive free TCP ports on 127.0.0.1.
//!
//! A node's shard `s` listens on `base + s`, so a test needs `n` consecutive free ports.
//! A block is found by binding every port of a candidate block; the listeners are then
//! released for the node to bind. Another process could grab a port in between, which is
//! why blocks are drawn from a wide range at a per-process pseudo-random start, and why
//! tests retry a node start that fails with "address in use".

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};

/// Where candidate blocks are drawn from: below the usual ephemeral range (32768+), so
/// outgoing connections of the same machine do not take them.
const RANGE: std::ops::Range<u16> = 20_000..32_000;

static NEXT: AtomicU16 = AtomicU16::new(0);

/// Returns the first port of `n` consecutive ports that were all free on 127.0.0.1.
pub fn free_port_block(n: u16) -> std::io::Result<u16> {
    assert!((1..=256).contains(&n), "port blocks hold 1..=256 ports");
    let span = RANGE.end - RANGE.start - n;
    // Spread concurrent test processes over the range: start from the pid.
    let seed = (std::process::id() as u16).wrapping_mul(7919) % span;
    let _ = NEXT.compare_exchange(0, seed.max(1), Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..(span / n).max(1) {
        let offset = NEXT.fetch_add(n, Ordering::Relaxed) % span;
        let base = RANGE.start + offset;
        let all_free = (0..n)
            .all(|i| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, base + i))).is_ok());
        if all_free {
            return Ok(base);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no {n} consecutive free ports in {RANGE:?}"),
    ))
}

/// A loopback address at `port`.
pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_free_and_distinct() {
        let a = free_port_block(4).unwrap();
        let b = free_port_block(4).unwrap();
        assert!(a + 4 <= b || b + 4 <= a, "blocks {a} and {b} overlap");
        // A child forked by a concurrent test holds a copy of the probe sockets until it
        // execs, so the block is bindable again a moment later, not necessarily at once.
        let held = crate::wait::wait_for(
            "the block to be bindable",
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(1),
            || {
                (0..4)
                    .map(|i| TcpListener::bind(localhost(a + i)).ok())
                    .collect::<Option<Vec<_>>>()
            },
        )
        .unwrap();
        assert_eq!(held.len(), 4);
    }
}
