#![allow(clippy::unwrap_used)]
//! Request framing: partial input at every split point, pipelining, inline commands,
//! limits refused before the announced bytes arrive, zero-copy arguments, and
//! property tests (arbitrary bytes never panic; encode→decode round trips).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use shoal_resp::limits::{
    MAX_ARG_LEN, MAX_ARGS_PER_COMMAND, MAX_HEADER_LINE_LEN, MAX_INLINE_LEN, MAX_REQUEST_LEN,
};
use shoal_resp::{ProtocolError, RequestDecoder};

fn words(ws: &[&[u8]]) -> Vec<Vec<u8>> {
    ws.iter().map(|w| w.to_vec()).collect()
}

/// Feeds `chunks` one after another, collecting every request decoded.
fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(args) = decoder.decode(&mut buf)? {
            out.push(args.iter().map(|a| a.to_vec()).collect());
        }
    }
    Ok(out)
}

/// A stream mixing multibulk, binary values, empty requests and inline commands.
const STREAM: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\na\r\nb\0c\r\n\
*0\r\n\
*-1\r\n\
PING\r\n\
\r\n\
   \n\
get \"x y\" 'z'\n\
*2\r\n$4\r\nECHO\r\n$0\r\n\r\n\
*1\r\n$4\r\nPING\r\n";

fn stream_expected() -> Vec<Vec<Vec<u8>>> {
    vec![
        words(&[b"SET", b"k", b"a\r\nb\0c"]),
        words(&[b"PING"]),
        words(&[b"get", b"x y", b"z"]),
        words(&[b"ECHO", b""]),
        words(&[b"PING"]),
    ]
}

#[test]
fn whole_stream_pipelined() {
    assert_eq!(decode_chunks(&[STREAM]).unwrap(), stream_expected());
}

#[test]
fn every_split_point() {
    for split in 0..=STREAM.len() {
        let (a, b) = STREAM.split_at(split);
        assert_eq!(
            decode_chunks(&[a, b]).unwrap(),
            stream_expected(),
            "split at {split}"
        );
    }
}

#[test]
fn every_pair_of_split_points() {
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let parts = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
            assert_eq!(
                decode_chunks(&parts).unwrap(),
                stream_expected(),
                "splits {i},{j}"
            );
        }
    }
}

#[test]
fn byte_by_byte() {
    let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(decode_chunks(&chunks).unwrap(), stream_expected());
}

#[test]
fn incomplete_input_yields_nothing_and_keeps_progress() {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$5\r\nab"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(decoder.is_mid_request());
    // Consumed headers and complete arguments are not re-read.
    assert_eq!(&buf[..], b"ab");
    buf.extend_from_slice(b"cde\r\n");
    let args = decoder.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        args,
        vec![Bytes::from_static(b"GET"), Bytes::from_static(b"abcde")]
    );
    assert!(!decoder.is_mid_request());
    assert!(buf.is_empty());
}

#[test]
fn arguments_are_zero_copy_slices_of_the_read_buffer() {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n");
    let start = buf.as_ptr() as usize;
    let end = start + buf.capacity();
    let args = decoder.decode(&mut buf).unwrap().unwrap();
    for arg in &args {
        let p = arg.as_ptr() as usize;
        assert!(
            p >= start && p < end,
            "argument was copied out of the read buffer"
        );
    }
}

fn first_error(input: &[u8]) -> ProtocolError {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::from(input);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error for {:?}", String::from_utf8_lossy(input)),
            Err(e) => return e,
        }
    }
}

#[test]
fn malformed_requests_get_redis_texts() {
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
        (
            b"*1\r\n*1\r\n$4\r\nPING\r\n",
            "ERR Protocol error: expected '$', got '*'",
        ),
        (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*01\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"GET \"abc\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"GET 'a'b\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (b"*1\r\n$4\r\nPINGxx", "ERR Protocol error: expected CRLF"),
        (b"*1\rx", "ERR Protocol error: expected CRLF"),
    ];
    for (input, text) in cases {
        let e = first_error(input);
        assert_eq!(
            e.reply_text(),
            *text,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert!(e.reply().is_error());
    }
}

#[test]
fn argument_count_limit_is_checked_on_the_header_alone() {
    let header = format!("*{}\r\n", MAX_ARGS_PER_COMMAND + 1);
    assert_eq!(
        first_error(header.as_bytes()),
        ProtocolError::InvalidMultibulkLength
    );
    // At the limit, the header is accepted and the decoder waits for arguments.
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::from(format!("*{MAX_ARGS_PER_COMMAND}\r\n").as_bytes());
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(decoder.is_mid_request());
}

#[test]
fn bulk_length_limit_is_checked_before_the_bytes_arrive() {
    let header = format!("*2\r\n$3\r\nGET\r\n${}\r\n", MAX_ARG_LEN + 1);
    assert_eq!(
        first_error(header.as_bytes()),
        ProtocolError::InvalidBulkLength
    );
    let huge = "*1\r\n$9223372036854775807\r\n";
    assert_eq!(
        first_error(huge.as_bytes()),
        ProtocolError::InvalidBulkLength
    );
}

#[test]
fn an_accepted_bulk_reserves_its_room_once() {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::from(format!("*1\r\n${MAX_ARG_LEN}\r\n").as_bytes());
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() >= MAX_ARG_LEN + 2);
}

#[test]
fn request_size_limit_is_checked_per_header() {
    let per_arg = MAX_ARG_LEN;
    let fitting = MAX_REQUEST_LEN / per_arg;
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(format!("*{}\r\n", fitting + 1).as_bytes());
    let value = vec![b'v'; per_arg];
    for _ in 0..fitting {
        buf.extend_from_slice(format!("${per_arg}\r\n").as_bytes());
        buf.extend_from_slice(&value);
        buf.extend_from_slice(b"\r\n");
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    }
    // One more header pushes the announced total past the limit: refused at once.
    buf.extend_from_slice(format!("${per_arg}\r\n").as_bytes());
    assert_eq!(
        decoder.decode(&mut buf),
        Err(ProtocolError::RequestTooLarge)
    );
}

#[test]
fn header_lines_are_bounded() {
    let long = format!("*{}", "1".repeat(MAX_HEADER_LINE_LEN + 1));
    assert_eq!(
        first_error(long.as_bytes()),
        ProtocolError::TooBigMultibulkCount
    );
    let long = format!("*1\r\n${}", "1".repeat(MAX_HEADER_LINE_LEN + 1));
    assert_eq!(first_error(long.as_bytes()), ProtocolError::TooBigBulkCount);
    // A header just within the bound is still waited for.
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::from(format!("*{}", "1".repeat(MAX_HEADER_LINE_LEN)).as_bytes());
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
}

#[test]
fn inline_lines_are_bounded_before_their_newline() {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::from(&vec![b'a'; MAX_INLINE_LEN + 1][..]);
    // Still possibly a MAX_INLINE_LEN line followed by "\r\n".
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"a");
    assert_eq!(
        decoder.decode(&mut buf),
        Err(ProtocolError::TooBigInlineRequest)
    );

    // Exactly at the limit is accepted, with either terminator.
    for terminator in [&b"\r\n"[..], b"\n"] {
        let mut line = vec![b'a'; MAX_INLINE_LEN];
        line.extend_from_slice(terminator);
        let mut buf = BytesMut::from(&line[..]);
        let args = RequestDecoder::new().decode(&mut buf).unwrap().unwrap();
        assert_eq!(args[0].len(), MAX_INLINE_LEN);
    }
    let mut line = vec![b'a'; MAX_INLINE_LEN + 1];
    line.extend_from_slice(b"\n");
    assert_eq!(first_error(&line), ProtocolError::TooBigInlineRequest);
}

#[test]
fn inline_word_count_is_bounded() {
    let line = "a ".repeat(MAX_ARGS_PER_COMMAND + 1) + "\n";
    assert_eq!(
        first_error(line.as_bytes()),
        ProtocolError::TooManyInlineArgs
    );
    let line = "a ".repeat(MAX_ARGS_PER_COMMAND) + "\n";
    let args = RequestDecoder::new()
        .decode(&mut BytesMut::from(line.as_bytes()))
        .unwrap();
    assert_eq!(args.unwrap().len(), MAX_ARGS_PER_COMMAND);
}

fn encode_request(args: &[Vec<u8>]) -> Vec<u8> {
    use redis_protocol::resp2::{encode::extend_encode, types::BytesFrame};
    let frame = BytesFrame::Array(
        args.iter()
            .map(|a| BytesFrame::BulkString(Bytes::copy_from_slice(a)))
            .collect(),
    );
    let mut out = BytesMut::new();
    extend_encode(&mut out, &frame, false).unwrap();
    out.to_vec()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512),
                                   cuts in proptest::collection::vec(0usize..512, 0..6)) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort_unstable();
        let mut decoder = RequestDecoder::new();
        let mut buf = BytesMut::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([data.len()]) {
            buf.extend_from_slice(&data[from..cut]);
            from = cut;
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(args)) => prop_assert!(!args.is_empty()),
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                }
            }
        }
    }

    #[test]
    fn encoded_requests_round_trip_at_any_split(
        requests in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
            1..5),
        split in any::<proptest::sample::Index>(),
    ) {
        let stream: Vec<u8> = requests.iter().flat_map(|r| encode_request(r)).collect();
        let at = split.index(stream.len() + 1);
        let got = decode_chunks(&[&stream[..at], &stream[at..]]).unwrap();
        prop_assert_eq!(got, requests);
    }

    #[test]
    fn inline_words_round_trip(words in proptest::collection::vec("[a-zA-Z0-9_:.-]{1,12}", 1..8)) {
        let line = format!("{}\r\n", words.join(" "));
        let got = decode_chunks(&[line.as_bytes()]).unwrap();
        let expected: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        prop_assert_eq!(got, vec![expected]);
    }
}
