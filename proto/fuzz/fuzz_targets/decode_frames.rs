//! Fuzzes the incremental frame decoder in every role. The first input byte picks the role
//! and the read size, the rest is the byte stream. Checks, besides "never panics": every
//! step makes progress, a fatal error consumes nothing and repeats, the decoder never
//! reserves memory, and every decoded frame re-encodes to a frame that decodes to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shoal_proto::{Frame, FrameDecoder, Role, encode_peer, encode_request, encode_response};

fn reencode(frame: &Frame) {
    let mut buf = BytesMut::new();
    let role = match frame {
        Frame::Request(r) => {
            encode_request(&mut buf, r.request_id, &r.request).expect("decoded request re-encodes");
            Role::Server
        }
        Frame::Response(r) => {
            encode_response(&mut buf, r.request_id, &r.response)
                .expect("decoded response re-encodes");
            Role::Client
        }
        Frame::Peer(p) => {
            encode_peer(&mut buf, p.request_id, &p.message)
                .expect("decoded peer message re-encodes");
            Role::Peer
        }
    };
    let again = FrameDecoder::new(role)
        .decode(&mut buf)
        .expect("re-encoded frame decodes");
    assert_eq!(again.as_ref(), Some(frame));
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let role = [Role::Server, Role::Client, Role::Peer][usize::from(sel % 3)];
    let chunk = usize::from(sel / 3).max(1);
    let mut d = FrameDecoder::new(role);
    let mut buf = BytesMut::with_capacity(stream.len());
    let cap = buf.capacity();
    let mut fed = 0;
    'feed: while fed < stream.len() {
        let n = chunk.min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            let before = buf.len();
            match d.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(buf.len() < before);
                    reencode(&frame);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = e.disposition();
                    if e.is_recoverable() {
                        assert!(buf.len() < before);
                    } else {
                        assert_eq!(buf.len(), before);
                        assert_eq!(d.decode(&mut buf), Err(e));
                        break 'feed;
                    }
                }
            }
            assert!(buf.capacity() <= cap);
        }
    }
});
