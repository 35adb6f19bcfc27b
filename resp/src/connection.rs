//! Per-connection state kept by the connection handler.
//!
//! Invariants: `protocol` changes only through a successful `HELLO 2|3`; `db` is always
//! 0 (Shoal has one keyspace, `SELECT` accepts only 0); client name and library
//! attributes hold only printable ASCII without spaces (validated by the parser) and are
//! `None` rather than empty.

use bytes::Bytes;

/// RESP version spoken on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, every connection's starting version.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The version number (`2` or `3`).
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// State of one client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionState {
    /// Unique id of the connection on this node (`CLIENT ID`, `HELLO`'s `id`).
    pub id: u64,
    /// Protocol version of replies.
    pub protocol: Protocol,
    /// `CLIENT SETNAME` / `HELLO SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Bytes>,
    /// Selected database: always 0.
    pub db: u32,
    /// Set by `QUIT`: close once the reply is written.
    pub closing: bool,
}

impl ConnectionState {
    /// A fresh RESP2 connection with the node-unique `id`.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            protocol: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            db: 0,
            closing: false,
        }
    }

    /// Sets (or with an empty value, clears) the client name.
    pub fn set_name(&mut self, name: Bytes) {
        self.name = (!name.is_empty()).then_some(name);
    }
}
