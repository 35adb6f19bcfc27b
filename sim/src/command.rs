//! The commands simulated clients write, encoded with Shoal's real command codec
//! (`shoal::state::Command`), so the production state machine applies them exactly as it
//! applies a real client's.
//!
//! Invariants:
//! - `decode(encode(c)) == Some(c)` for every command the workload builds.
//! - Every write is unique in a run (a put carries a unique value, a delete a unique
//!   token), so the history checker finds each one in the log. A delete is encoded as the
//!   real `DeleteLive` of one key whose `now_ms` carries the token: `DeleteLive` removes
//!   the key whatever `now_ms` is (it only uses it to count live keys for the reply), and
//!   the simulated workload writes no TTLs.

use bytes::Bytes;
use shoal::raft::types::Request;
use shoal::state::Command as Real;

/// A client command carried by a log entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Command {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The value (unique per write in the workload).
        value: Bytes,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Bytes,
        /// Unique per delete in the workload, so the history checker can find each delete
        /// in the log.
        token: u64,
    },
}

impl Command {
    /// Encode as a `Request` with the real codec.
    ///
    /// # Panics
    /// If the command breaks one of Shoal's limits (the workload's keys and values are a
    /// few bytes: a bug in the workload).
    pub fn encode(&self) -> Request {
        let real = match self {
            Command::Put { key, value } => Real::Put {
                key: key.clone(),
                value: value.clone(),
            },
            Command::Delete { key, token } => Real::DeleteLive {
                keys: vec![key.clone()],
                now_ms: *token,
            },
        };
        let mut out = Vec::with_capacity(real.encoded_len());
        if let Err(e) = real.encode(&mut out) {
            panic!("the workload built a command the real codec refuses: {e}");
        }
        Request {
            command: Bytes::from(out),
        }
    }

    /// Decode a `Request`; `None` if it is not a command the workload writes.
    pub fn decode(req: &Request) -> Option<Command> {
        match Real::decode(&req.command).ok()? {
            Real::Put { key, value } => Some(Command::Put { key, value }),
            Real::DeleteLive { mut keys, now_ms } if keys.len() == 1 => Some(Command::Delete {
                key: keys.pop()?,
                token: now_ms,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_real_codec() {
        for c in [
            Command::Put {
                key: Bytes::from_static(b"k1"),
                value: Bytes::from_static(b"c1-7"),
            },
            Command::Delete {
                key: Bytes::from_static(b"k2"),
                token: (3 << 32) | 9,
            },
        ] {
            assert_eq!(Command::decode(&c.encode()), Some(c));
        }
        let other = Real::Delete {
            key: Bytes::from_static(b"k"),
        };
        let mut out = Vec::new();
        other.encode(&mut out).expect("encodes");
        let req = Request {
            command: Bytes::from(out),
        };
        assert_eq!(Command::decode(&req), None);
    }
}
