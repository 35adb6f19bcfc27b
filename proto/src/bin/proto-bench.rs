//! Codec throughput benchmark: encode and decode rates (frames/s, GB/s) for small
//! (16 B key, 100 B value) and large (1 MiB value) client frames and for typical peer
//! frames. Prints a table and one JSON line. Figures are for comparing in one run on this
//! machine (shared and noisy), never thresholds.
//!
//! Run: `cargo run --release -p shoal-proto --bin proto-bench [seconds-per-case]`.
//!
//! Decode timing starts from frames already in a `BytesMut` (as after a socket read): the
//! copies are prepared outside the timed region. Client decoding is zero-copy (values are
//! slices of the read buffer), so its GB/s for large frames counts bytes *delivered*, not
//! bytes touched. Copying the same bytes into a fresh buffer (what a socket read costs at
//! least) is timed in the same run as a yardstick ("copy-in"). Peer decoding copies into an
//! aligned buffer when needed, validates (bytecheck) and deserializes into owned types.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shoal_proto::peer::{
    AppendEntriesRequest, Entry, EntryPayload, InstallSnapshotRequest, LogId, Membership,
    SnapshotMeta, StoredMembership, Vote,
};
use shoal_proto::{
    FrameDecoder, PeerMessage, Put, Request, Response, Role, encode_peer, encode_request,
    encode_response,
};

enum Msg {
    Req(Request),
    Resp(Response),
    Peer(PeerMessage),
}

impl Msg {
    fn encode(&self, buf: &mut BytesMut, id: u64) {
        let r = match self {
            Msg::Req(r) => encode_request(buf, id, r),
            Msg::Resp(r) => encode_response(buf, id, r),
            Msg::Peer(p) => encode_peer(buf, id, p),
        };
        if let Err(e) = r {
            panic!("benchmark message must encode: {e}");
        }
    }

    fn role(&self) -> Role {
        match self {
            Msg::Req(_) => Role::Server,
            Msg::Resp(_) => Role::Client,
            Msg::Peer(_) => Role::Peer,
        }
    }
}

struct Case {
    name: &'static str,
    msg: Msg,
    /// Frames per buffer (per batch).
    batch: usize,
}

struct Rate {
    frames_per_s: f64,
    gb_per_s: f64,
}

fn rate(frames: u64, bytes: u64, elapsed: Duration) -> Rate {
    let s = elapsed.as_secs_f64();
    Rate {
        frames_per_s: frames as f64 / s,
        gb_per_s: bytes as f64 / s / 1e9,
    }
}

fn bench_encode(case: &Case, budget: Duration) -> (Rate, usize) {
    let mut buf = BytesMut::with_capacity(1 << 20);
    case.msg.encode(&mut buf, 0);
    let frame_len = buf.len();
    buf.clear();
    let (mut frames, mut id) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..case.batch {
            id += 1;
            case.msg.encode(&mut buf, id);
        }
        black_box(&buf);
        // A server writes the buffer out, then reuses it.
        buf.clear();
        frames += case.batch as u64;
    }
    (
        rate(frames, frames * frame_len as u64, start.elapsed()),
        frame_len,
    )
}

fn bench_decode(case: &Case, budget: Duration) -> (Rate, Rate) {
    let mut wire = BytesMut::new();
    for i in 0..case.batch {
        case.msg.encode(&mut wire, i as u64);
    }
    let wire = wire.freeze();
    // About 16 MiB of frames per round, prepared outside the timed region.
    let copies = ((16 << 20) / wire.len().max(1)).clamp(1, 64);
    let wall = Instant::now();
    let (mut frames, mut bytes, mut timed) = (0u64, 0u64, Duration::ZERO);
    let (mut copy_bytes, mut copy_timed) = (0u64, Duration::ZERO);
    // Zero-copy decodes of large frames take microseconds while preparing their input
    // takes milliseconds: stop on decode time or on wall time, whichever comes first.
    while timed < budget && (frames == 0 || wall.elapsed() < budget * 6) {
        let mut bufs: Vec<BytesMut> = (0..copies).map(|_| BytesMut::from(&wire[..])).collect();
        let start = Instant::now();
        for buf in &mut bufs {
            let mut d = FrameDecoder::new(case.msg.role());
            let mut n = 0;
            loop {
                match d.decode(buf) {
                    Ok(Some(f)) => {
                        black_box(f);
                        n += 1;
                    }
                    Ok(None) => break,
                    Err(e) => panic!("benchmark frames must decode: {e}"),
                }
            }
            assert_eq!(n, case.batch);
        }
        timed += start.elapsed();
        frames += (copies * case.batch) as u64;
        bytes += (copies * wire.len()) as u64;
        // Yardstick: copying the same bytes into a fresh buffer.
        let start = Instant::now();
        for _ in 0..copies {
            black_box(BytesMut::from(black_box(&wire[..])));
        }
        copy_timed += start.elapsed();
        copy_bytes += (copies * wire.len()) as u64;
    }
    (rate(frames, bytes, timed), rate(0, copy_bytes, copy_timed))
}

fn cases() -> Vec<Case> {
    let key = Bytes::from(vec![b'k'; 16]);
    let small = Bytes::from(vec![b'v'; 100]);
    let large = Bytes::from(vec![b'V'; 1 << 20]);
    let put = |value: &Bytes| {
        Msg::Req(Request::Put(Put {
            shard: Some(1),
            key: key.clone(),
            value: value.clone(),
        }))
    };
    let vote = Vote {
        term: 7,
        node_id: Some(1),
        committed: true,
    };
    let entries = (0..64)
        .map(|i| Entry {
            log_id: LogId {
                term: 7,
                node_id: 1,
                index: 1000 + i,
            },
            payload: EntryPayload::Normal(vec![0xAB; 130]),
        })
        .collect();
    vec![
        Case {
            name: "put_small_req",
            msg: put(&small),
            batch: 4096,
        },
        Case {
            name: "put_large_req",
            msg: put(&large),
            batch: 4,
        },
        Case {
            name: "get_small_resp",
            msg: Msg::Resp(Response::Get(Some(small.clone()))),
            batch: 4096,
        },
        Case {
            name: "get_large_resp",
            msg: Msg::Resp(Response::Get(Some(large.clone()))),
            batch: 4,
        },
        Case {
            name: "peer_append_64x130",
            msg: Msg::Peer(PeerMessage::AppendEntries(AppendEntriesRequest {
                vote,
                prev_log_id: Some(LogId {
                    term: 7,
                    node_id: 1,
                    index: 999,
                }),
                entries,
                leader_commit: Some(LogId {
                    term: 7,
                    node_id: 1,
                    index: 999,
                }),
            })),
            batch: 256,
        },
        Case {
            name: "peer_snapshot_1MiB",
            msg: Msg::Peer(PeerMessage::InstallSnapshot(InstallSnapshotRequest {
                vote,
                meta: SnapshotMeta {
                    last_log_id: Some(LogId {
                        term: 7,
                        node_id: 1,
                        index: 5000,
                    }),
                    last_membership: StoredMembership {
                        log_id: None,
                        membership: Membership {
                            configs: vec![vec![1, 2, 3]],
                            nodes: vec![],
                        },
                    },
                    snapshot_id: "7-5000".into(),
                },
                offset: 0,
                data: vec![0xCD; 1 << 20],
                done: false,
            })),
            batch: 4,
        },
    ]
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    let budget = Duration::from_secs_f64(secs);
    println!(
        "{:<20} {:>9} {:>14} {:>9} {:>14} {:>9} {:>10}",
        "case", "frame B", "enc frames/s", "enc GB/s", "dec frames/s", "dec GB/s", "copy-in GB/s"
    );
    let mut json = Vec::new();
    for case in cases() {
        let (enc, frame_len) = bench_encode(&case, budget);
        let (dec, copy) = bench_decode(&case, budget);
        println!(
            "{:<20} {:>9} {:>14.0} {:>9.2} {:>14.0} {:>9.2} {:>10.2}",
            case.name,
            frame_len,
            enc.frames_per_s,
            enc.gb_per_s,
            dec.frames_per_s,
            dec.gb_per_s,
            copy.gb_per_s
        );
        json.push(format!(
            "{{\"case\":\"{}\",\"frame_bytes\":{},\"encode_frames_per_s\":{:.0},\"encode_gb_per_s\":{:.3},\"decode_frames_per_s\":{:.0},\"decode_gb_per_s\":{:.3},\"copy_in_gb_per_s\":{:.3}}}",
            case.name, frame_len, enc.frames_per_s, enc.gb_per_s, dec.frames_per_s, dec.gb_per_s, copy.gb_per_s
        ));
    }
    println!(
        "{{\"bench\":\"proto\",\"seconds_per_case\":{secs},\"results\":[{}]}}",
        json.join(",")
    );
}
