//! Fuzzes `Command::decode`: never panics; whatever decodes re-encodes to the same bytes
//! (one encoding per command), respects the limits, and applies without error.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shoal::limits;
use shoal::state::{ApplyResult, Command, LogId, State};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(cmd) = Command::decode(&bytes) else {
        return;
    };
    assert!(cmd.keys().iter().all(|k| k.len() <= limits::MAX_KEY_LEN));
    let encoded = cmd.to_bytes().expect("a decoded command encodes");
    assert_eq!(encoded, bytes, "one encoding per command");
    let mut state = State::new();
    let r = state
        .apply(
            LogId {
                term: 1,
                node_id: 1,
                index: 1,
            },
            &cmd,
        )
        .expect("first index");
    assert!(
        !matches!(r, ApplyResult::Rejected(_)),
        "decoded commands respect the limits"
    );
});
