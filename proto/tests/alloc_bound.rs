//! Allocation bounds, measured with a counting global allocator: decoding never allocates
//! for lengths it has not received, and never more than a small multiple of the bytes it
//! was given. This binary holds a single test so no other test allocates concurrently.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shoal_proto::limits::*;
use shoal_proto::*;

mod common;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: forwards every call unchanged to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::SeqCst) + new_size
                - layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated (above the level at the start) while decoding `buf` to the end
/// in `role`; decoded frames are dropped as they come.
fn peak_while_decoding(role: Role, mut buf: BytesMut) -> usize {
    let mut d = FrameDecoder::new(role);
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    loop {
        match d.decode(&mut buf) {
            Ok(Some(f)) => drop(f),
            Ok(None) => break,
            Err(e) if e.is_recoverable() => drop(e),
            Err(_) => break,
        }
    }
    PEAK.load(Ordering::SeqCst) - base
}

fn header(opcode: Opcode, body_len: u32) -> [u8; HEADER_LEN] {
    Header {
        version: 1,
        opcode: opcode.as_u8(),
        flags: 0,
        status: 0,
        request_id: 1,
        body_len,
    }
    .to_bytes()
}

/// Bound on allocation for `n` input bytes: the peer path copies the body once into an
/// aligned buffer and deserializes into owned types (at most ~3x the archived size);
/// client frames only allocate vectors of handles bounded by the batch limit.
fn bound(n: usize) -> usize {
    4 * n + 64 * 1024
}

#[test]
fn decoding_allocates_at_most_a_small_multiple_of_the_input() {
    // 1. Headers announcing the largest bodies, with no body: nothing is allocated.
    for (role, op, len) in [
        (Role::Server, Opcode::Put, MAX_FRAME_LEN as u32),
        (Role::Server, Opcode::GetMulti, MAX_FRAME_LEN as u32),
        (Role::Server, Opcode::Put, u32::MAX),
        (Role::Client, Opcode::GetMultiResp, MAX_FRAME_LEN as u32),
        (Role::Peer, Opcode::PeerRpc, MAX_PEER_FRAME_LEN as u32),
        (Role::Peer, Opcode::PeerRpc, u32::MAX),
    ] {
        let buf = BytesMut::from(&header(op, len)[..]);
        let peak = peak_while_decoding(role, buf);
        assert!(
            peak <= 256,
            "{role:?} {op}: {peak} bytes allocated for an announced {len}"
        );
    }

    // 2. A GetMulti announcing MAX_BATCH_KEYS keys in a tiny body: refused before the
    //    key vector is reserved.
    let mut buf = BytesMut::new();
    buf.put_slice(&header(Opcode::GetMulti, 8));
    buf.put_u32_le(ANY);
    buf.put_u32_le(MAX_BATCH_KEYS as u32);
    let peak = peak_while_decoding(Role::Server, buf);
    assert!(
        peak <= 256,
        "{peak} bytes allocated for a lying batch count"
    );

    // 3. A legitimate full batch allocates its handle vector, which stays within bound.
    let mut buf = BytesMut::new();
    let keys = vec![bytes::Bytes::new(); MAX_BATCH_KEYS];
    encode_request(
        &mut buf,
        1,
        &Request::GetMulti(GetMulti {
            shard: None,
            keys,
            consistency: ReadConsistency::Stale,
        }),
    )
    .unwrap();
    let n = buf.len();
    let peak = peak_while_decoding(Role::Server, buf);
    assert!(peak <= bound(n), "full batch: {peak} > bound({n})");

    // 4. Random input and corrupted valid frames, every role.
    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    let strat = (
        common::request(),
        common::response(),
        common::peer_message(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::collection::vec(any::<u8>(), 0..600),
    );
    runner
        .run(&strat, |(req, resp, peer, flips, noise)| {
            let mut streams = [BytesMut::new(), BytesMut::new(), BytesMut::new()];
            encode_request(&mut streams[0], 1, &req).unwrap();
            encode_response(&mut streams[1], 1, &resp).unwrap();
            encode_peer(&mut streams[2], 1, &peer).unwrap();
            for (mut s, role) in streams
                .into_iter()
                .zip([Role::Server, Role::Client, Role::Peer])
            {
                for (i, v) in &flips {
                    let at = i.index(s.len());
                    s[at] = *v;
                }
                s.extend_from_slice(&noise);
                let n = s.len();
                let peak = peak_while_decoding(role, s);
                prop_assert!(peak <= bound(n), "{:?}: {} > bound({})", role, peak, n);
            }
            Ok(())
        })
        .unwrap();
}
