//! Shoal's write-ahead log: one per shard, holding that shard's Raft log, vote and
//! committed index. It knows nothing of Raft, keys or shards.
