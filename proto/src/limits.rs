//! Every limit of the system, named in one place.
//!
//! Each constant here is enforced where data enters (the codec, the state machine, the
//! server, the clients), and each violation is answered with a clear, typed error that
//! names the limit. Limits that an operator may tune are *defaults*: the node's
//! configuration may lower them, never raise them above the hard maxima below, because
//! buffers and on-disk formats are sized from these.

/// Largest key, in bytes. Keys route requests and live in every index entry; keeping
/// them small keeps the index dense. Empty keys are allowed.
pub const MAX_KEY_LEN: usize = 16 * 1024;

/// Largest value, in bytes (1 MiB). Empty values are allowed.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// Most keys in one `get_multi` request (and in one batch of any kind).
pub const MAX_BATCH_KEYS: usize = 1024;

/// Largest frame body on the wire, in bytes (8 MiB). A frame header announcing more is
/// rejected before anything is allocated. A `get_multi` response that would exceed it is
/// answered with `TooLarge`, and the client splits the request.
pub const MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Largest peer (Raft RPC) frame body, in bytes (32 MiB): an append-entries batch or one
/// snapshot chunk. Leaders size their batches and chunks to fit.
pub const MAX_PEER_FRAME_LEN: usize = 32 * 1024 * 1024;

/// Most entry bytes a leader reads from its log for one append-entries batch to a follower
/// (4 MiB; `RaftLogReader::limited_get_log_entries`). A batch holds at least one entry, so
/// the largest batch is this plus one entry (a WAL payload, at most 2 MiB by default):
/// well inside `MAX_PEER_FRAME_LEN`.
pub const MAX_REPLICATION_READ_BYTES: usize = 4 * 1024 * 1024;

/// Largest snapshot chunk sent to a follower in one RPC, in bytes (1 MiB).
pub const SNAPSHOT_CHUNK_LEN: usize = 1024 * 1024;

/// Largest snapshot a node accepts from a leader, in bytes (4 GiB), reassembled in memory
/// from `SNAPSHOT_CHUNK_LEN` chunks before it is installed. A shard's state lives in memory,
/// so its snapshot must fit there too; a larger transfer is refused and the leader retries.
pub const MAX_SNAPSHOT_LEN: usize = 4 * 1024 * 1024 * 1024;

/// Default cap on open peer connections accepted by one group's listener. A peer opens
/// up to three per node (replication, heartbeats, snapshots) plus short-lived vote
/// connections; `MAX_NODES` peers fit with a wide margin.
pub const DEFAULT_MAX_PEER_CONNECTIONS: usize = 64;

/// Most pipelined `AppendEntries` one peer connection has in service at once: the
/// receiving side stops reading beyond it (backpressure), and a sender's pipeline depth
/// may not exceed it. With replication reads capped at `MAX_REPLICATION_READ_BYTES`, a
/// connection holds at most this many such batches.
pub const MAX_PIPELINED_APPENDS: usize = 16;

/// Longest TTL accepted by `put_with_ttl`, in seconds (100 years). Larger values are
/// refused rather than wrapped or clamped, so an expiry time never overflows.
pub const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// Default cap on concurrently open client connections per node.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Default cap on requests in flight on one client connection; past it the server
/// answers `Busy` instead of buffering.
pub const DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION: usize = 1024;

/// Default cap on requests in flight on one shard, from all connections and local clients.
pub const DEFAULT_MAX_IN_FLIGHT_PER_SHARD: usize = 16 * 1024;

/// Default depth of each shard's inbound queue (local clients, cross-shard forwards).
pub const DEFAULT_SHARD_QUEUE_DEPTH: usize = 4096;

/// Most shards a node may run (one per core).
pub const MAX_SHARDS: usize = 256;

/// Most nodes in one cluster.
pub const MAX_NODES: usize = 7;

/// Longest TTL accepted by `put_with_ttl`, in milliseconds, as carried on the wire.
pub const MAX_TTL_MS: u64 = MAX_TTL_SECS * 1000;

/// Longest human-readable message in an error frame, in bytes (UTF-8). Servers truncate
/// longer messages at a character boundary; decoders refuse longer ones.
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

/// Longest network address string (`host:port`) in topology, status and admin frames.
pub const MAX_ADDR_LEN: usize = 255;

// The frame limit must hold the largest single put with room for its header and key.
const _: () = assert!(MAX_VALUE_LEN + MAX_KEY_LEN + 4096 <= MAX_FRAME_LEN);
const _: () = assert!(SNAPSHOT_CHUNK_LEN + 4096 <= MAX_PEER_FRAME_LEN);
const _: () = assert!(2 * MAX_REPLICATION_READ_BYTES <= MAX_PEER_FRAME_LEN);

// --- The RESP (Redis protocol) front door -------------------------------------------

/// Most arguments (command name included) in one RESP request. A multibulk header
/// announcing more is a protocol error that closes the connection. Deliberately larger
/// than `MAX_BATCH_KEYS + 1`, so a `DEL`/`MGET`/`EXISTS` with too many keys gets a readable
/// error *reply* from the command parser instead of a dropped connection, while the
/// argument vector stays bounded (at 32 bytes per `Bytes`, 256 KiB).
pub const RESP_MAX_ARGS_PER_COMMAND: usize = 8 * MAX_BATCH_KEYS;

/// Longest inline (telnet) RESP command line, in bytes, without its line terminator
/// (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const RESP_MAX_INLINE_LEN: usize = 64 * 1024;

/// Longest RESP `*<count>` or `$<len>` header line, in bytes, without its CRLF. Any valid
/// count fits in 20 digits; a longer header is hostile or broken.
pub const RESP_MAX_HEADER_LINE_LEN: usize = 32;

/// Largest single RESP argument (bulk string), in bytes: the larger of a key and a value.
/// Command parsing then checks keys against `MAX_KEY_LEN` precisely.
pub const RESP_MAX_ARG_LEN: usize = if MAX_VALUE_LEN > MAX_KEY_LEN {
    MAX_VALUE_LEN
} else {
    MAX_KEY_LEN
};

/// Largest RESP request, in bytes of argument payload summed over all its arguments. A
/// request announcing more (checked as each bulk header is read) closes the connection.
pub const RESP_MAX_REQUEST_LEN: usize = MAX_FRAME_LEN;

const _: () = assert!(RESP_MAX_ARGS_PER_COMMAND > MAX_BATCH_KEYS + 1);
const _: () = assert!(RESP_MAX_ARG_LEN <= RESP_MAX_REQUEST_LEN);
