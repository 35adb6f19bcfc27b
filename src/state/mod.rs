//! The shard state machine: what the Raft log is applied to and what reads are served
//! from. Sans-IO: no clock reads (time is an argument), no I/O, no executor.
//!
//! Parts, one per module: `command` (commands and their encoding), `entry` (one key's
//! single allocation), `index` (hash sub-tables, memory counters, copy-on-write),
//! `ttl_wheel` (timer wheel reclaiming expired keys), `snapshot` + `snapshot_format`
//! (incremental snapshots and restore), `digest` (order-independent digest of the
//! contents, to compare replicas), `memory` (figures), `error`.
//!
//! Invariants:
//! - Deterministic: applying the same commands at the same log ids in the same order gives
//!   the same observable state (`get`/`expiry` at any `now`) on every replica, whatever
//!   the `tick` calls in between; `ApplyResult` depends on the log only.
//! - A key is visible exactly while `now_ms < expire_at_ms`; reclaiming (by `tick`) only
//!   frees memory and changes nothing observable.
//! - A stored entry with a TTL has exactly one live timer, whose payload is that entry;
//!   overwriting or deleting the key cancels it.
//! - Log indexes applied increase strictly.
//! - A value handed out (`get`, `get_value`), copied for a snapshot or held by a timer
//!   never changes: a put rewrites a stored value in place only when the index holds
//!   the entry's only handle (`Entry::overwrite_value_in_place`).

mod command;
mod digest;
mod entry;
mod error;
mod index;
mod memory;
mod snapshot;
mod snapshot_format;
mod ttl_wheel;

#[cfg(test)]
mod digest_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod snapshot_tests;

use bytes::Bytes;

pub use command::{COMMAND_VERSION, Command, ExpiryCondition, SetCondition, TtlChange};
pub use digest::{DIGEST_SEED, StateDigest};
pub use entry::{Entry, Value};
pub use error::{CommandError, SnapshotError, StateError};
pub use index::{INDEX_HASH_SEED, SUBTABLES, hash_key};
pub use memory::{MemoryStats, glibc_chunk};
pub use snapshot::{Restored, SnapshotInfo, SnapshotProgress, SnapshotReader};
pub use snapshot_format::{BLOCK_TARGET_BYTES, MAX_FRAME_PAYLOAD, MAX_META_LEN};
pub use ttl_wheel::{Advance, TimerId, TimerWheel};

use index::Index;
use snapshot::Builder;

/// Identity of a Raft log entry, filled by the Raft layer: (term, leader node id, index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogId {
    pub term: u64,
    pub node_id: u64,
    pub index: u64,
}

/// Outcome of applying one command; a function of the log alone (never of `now` or of
/// whether an expired key was reclaimed yet), so every replica computes the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// `Put` / `PutWithTtl` stored the value.
    Written,
    /// `Delete` done (whether or not the key existed: delete is idempotent).
    Deleted,
    /// The command breaks a limit; the state is unchanged (the log index still counts as
    /// applied).
    Rejected(CommandError),
    /// `SetIf`: whether the condition held and the value was stored, and the old value
    /// live at the command's `now_ms` when it asked for it.
    SetIf { applied: bool, old: Option<Bytes> },
    /// `SetExpiry` / `Persist`: whether the key's expiry changed (or the key was removed
    /// by an expiry in the past).
    Changed(bool),
    /// `DeleteLive`: how many distinct keys were live at the command's `now_ms`.
    Removed(u32),
}

/// Expiry of a key as seen at some `now` (for TTL / PTTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExpiry {
    /// No visible key.
    Missing,
    /// Visible, no expiry.
    Persistent,
    /// Visible until this absolute time in ms (exclusive).
    At(u64),
}

/// What one `tick` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Expired keys reclaimed.
    pub reclaimed: usize,
    /// False when the work bound stopped the tick: call again soon.
    pub complete: bool,
}

/// Default work bound of one `tick`. A unit costs a few cache misses (timer node, table,
/// entry); on the loaded VM this was measured on that was up to ~6 us per unit, so 128
/// units keep a tick under a millisecond of CPU.
pub const DEFAULT_TICK_WORK: usize = 128;

/// The state of one shard.
#[derive(Debug, Default)]
pub struct State {
    index: Index,
    wheel: TimerWheel<Entry>,
    last_applied: Option<LogId>,
    snapshot: Option<Builder>,
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last log id applied (or restored from a snapshot).
    pub fn last_applied(&self) -> Option<LogId> {
        self.last_applied
    }

    /// Keys stored, counting expired keys not yet reclaimed.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True with no key stored.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Applies `cmd`, the command of log entry `log_id`. Errors only when `log_id` does
    /// not follow the last applied index (a bug of the caller; the state is unchanged).
    pub fn apply(&mut self, log_id: LogId, cmd: &Command) -> Result<ApplyResult, StateError> {
        self.advance_log(log_id)?;
        if let Err(e) = cmd.validate() {
            return Ok(ApplyResult::Rejected(e));
        }
        Ok(match cmd {
            Command::Put { key, value } => {
                self.put(key, value, None);
                ApplyResult::Written
            }
            Command::PutWithTtl {
                key,
                value,
                expire_at_ms,
            } => {
                self.put(key, value, Some(*expire_at_ms));
                ApplyResult::Written
            }
            Command::Delete { key } => {
                self.remove(key);
                ApplyResult::Deleted
            }
            Command::SetIf {
                key,
                value,
                now_ms,
                condition,
                ttl,
                return_old,
            } => self.set_if(key, value, *now_ms, *condition, *ttl, *return_old),
            Command::SetExpiry {
                key,
                now_ms,
                expire_at_ms,
                condition,
            } => {
                let Some(live) = self.live_entry(key, *now_ms) else {
                    return Ok(ApplyResult::Changed(false));
                };
                if !condition.allows(live.expiry(), *expire_at_ms) {
                    return Ok(ApplyResult::Changed(false));
                }
                if *expire_at_ms <= *now_ms {
                    self.remove(key);
                } else {
                    self.put(key, live.value(), Some(*expire_at_ms));
                }
                ApplyResult::Changed(true)
            }
            Command::Persist { key, now_ms } => match self.live_entry(key, *now_ms) {
                Some(live) if live.expiry().is_some() => {
                    self.put(key, live.value(), None);
                    ApplyResult::Changed(true)
                }
                _ => ApplyResult::Changed(false),
            },
            Command::DeleteLive { keys, now_ms } => {
                let mut removed = 0u32;
                for key in keys {
                    // A repeated key is gone by its second mention: counted once.
                    if let Some(old) = self.remove(key) {
                        removed += u32::from(!old.is_expired(*now_ms));
                    }
                }
                ApplyResult::Removed(removed)
            }
        })
    }

    /// The entry of `key` if it is live at `now_ms` (a cheap handle clone, so the caller
    /// may rewrite the key while holding it).
    fn live_entry(&self, key: &[u8], now_ms: u64) -> Option<Entry> {
        self.index
            .get(key)
            .filter(|e| !e.is_expired(now_ms))
            .cloned()
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let old = self.index.remove(key)?;
        self.cancel_timer_of(&old);
        Some(old)
    }

    fn set_if(
        &mut self,
        key: &[u8],
        value: &[u8],
        now_ms: u64,
        condition: SetCondition,
        ttl: TtlChange,
        return_old: bool,
    ) -> ApplyResult {
        let live = self.live_entry(key, now_ms);
        let holds = match condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => live.is_none(),
            SetCondition::IfPresent => live.is_some(),
        };
        if holds {
            let expire_at = match ttl {
                TtlChange::Clear => None,
                TtlChange::Keep => live.as_ref().and_then(Entry::expiry),
                TtlChange::ExpireAt(at) => Some(at),
            };
            match expire_at {
                // Already expired when written: nothing would ever see it.
                Some(at) if at <= now_ms => {
                    self.remove(key);
                }
                _ => self.put(key, value, expire_at),
            }
        }
        ApplyResult::SetIf {
            applied: holds,
            old: if return_old {
                live.as_ref().map(Entry::value_bytes)
            } else {
                None
            },
        }
    }

    /// Records a log entry that carries no command (blank, membership).
    pub fn apply_empty(&mut self, log_id: LogId) -> Result<(), StateError> {
        self.advance_log(log_id)
    }

    fn advance_log(&mut self, log_id: LogId) -> Result<(), StateError> {
        let last = self.last_applied.map(|l| l.index);
        if let Some(last) = last.filter(|&last| log_id.index <= last) {
            return Err(StateError::OutOfOrder {
                last,
                got: log_id.index,
            });
        }
        self.last_applied = Some(log_id);
        Ok(())
    }

    fn put(&mut self, key: &[u8], value: &[u8], expire_at: Option<u64>) {
        // A put without TTL over an entry nobody else holds rewrites its value in place
        // when the length is unchanged (no allocation, no free); otherwise a new entry.
        let old = match expire_at {
            None => self
                .index
                .upsert(key, Some(value), || Entry::new(key, value, None)),
            Some(at) => {
                let wheel = &mut self.wheel;
                self.index.upsert(key, None, || {
                    let id = wheel.next_id();
                    let entry = Entry::new(key, value, Some((at, id)));
                    let got = wheel.insert(at, entry.clone());
                    assert_eq!(got, id, "timer id announced by next_id");
                    entry
                })
            }
        };
        if let Some(old) = old {
            self.cancel_timer_of(&old);
        }
    }

    fn cancel_timer_of(&mut self, old: &Entry) {
        if let Some(id) = old.timer() {
            let payload = self.wheel.cancel(id);
            debug_assert!(
                payload.is_some_and(|p| p.same(old)),
                "a stored entry's timer is live and its own"
            );
        }
    }

    /// Used by restore: stores an entry; false if the key is already there.
    pub(crate) fn restore_entry(
        &mut self,
        key: &[u8],
        value: &[u8],
        expire_at: Option<u64>,
    ) -> bool {
        if self.index.get(key).is_some() {
            return false;
        }
        self.put(key, value, expire_at);
        true
    }

    /// The value of `key` at time `now_ms`: `None` if absent or expired (`now_ms >=
    /// expire_at_ms`), whether or not the wheel has reclaimed it yet.
    #[inline]
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<Bytes> {
        self.index
            .get(key)
            .filter(|e| !e.is_expired(now_ms))
            .map(Entry::value_bytes)
    }

    /// Like `get`, but hands out the value without allocating: a `Value` is a reference
    /// count on the stored entry that derefs to the bytes (convert with `into_bytes`
    /// when a `Bytes` is needed). The server's read path should use this and copy the
    /// bytes into its response buffer: it skips the owner box `get` allocates.
    #[inline]
    pub fn get_value(&self, key: &[u8], now_ms: u64) -> Option<Value> {
        self.index
            .get(key)
            .filter(|e| !e.is_expired(now_ms))
            .map(|e| Value::new(e.clone()))
    }

    /// `get` for many keys; results in input order.
    pub fn get_multi<K: AsRef<[u8]>>(&self, keys: &[K], now_ms: u64) -> Vec<Option<Bytes>> {
        keys.iter().map(|k| self.get(k.as_ref(), now_ms)).collect()
    }

    /// The expiry of `key` as seen at `now_ms`.
    pub fn expiry(&self, key: &[u8], now_ms: u64) -> KeyExpiry {
        match self.index.get(key) {
            Some(e) if !e.is_expired(now_ms) => {
                e.expiry().map_or(KeyExpiry::Persistent, KeyExpiry::At)
            }
            _ => KeyExpiry::Missing,
        }
    }

    /// Stored keys that have an expiry (expired ones not yet reclaimed included).
    pub fn keys_with_expiry(&self) -> usize {
        self.wheel.len()
    }

    /// Reclaims keys expired at `now_ms`, doing at most about `max_work` units of work
    /// (one per key reclaimed or timer moved, plus one per entry rehashed when a
    /// sub-table shrinks, or one per entry handle of an aborted snapshot released); the
    /// rest carries over to the next call.
    pub fn tick(&mut self, now_ms: u64, max_work: usize) -> TickReport {
        if self.index.has_garbage() {
            // Copies left by an aborted snapshot go first, within the same budget.
            self.index.release_garbage(max_work);
            return TickReport {
                reclaimed: 0,
                complete: false,
            };
        }
        let index = &mut self.index;
        let r = self.wheel.advance(now_ms, max_work, |entry| {
            let rehashed = index.remove_same(&entry);
            debug_assert!(rehashed.is_some(), "a live timer's entry is stored");
            rehashed.unwrap_or(0)
        });
        TickReport {
            reclaimed: r.expired,
            complete: r.complete,
        }
    }

    /// Earliest time a `tick` has work to do (for the shard to schedule its timer).
    pub fn next_tick_at(&self) -> Option<u64> {
        self.wheel.next_wakeup()
    }

    /// Memory held, by kind.
    pub fn memory(&self) -> MemoryStats {
        let (keys, key_bytes, value_bytes, entry_overhead_bytes, index_bytes, frozen) =
            self.index.figures();
        MemoryStats {
            keys,
            key_bytes,
            value_bytes,
            entry_overhead_bytes,
            index_bytes,
            timer_bytes: self.wheel.slab_bytes(),
            snapshot_bytes: frozen + self.snapshot.as_ref().map_or(0, Builder::heap_bytes),
        }
    }

    /// Bytes held whatever the contents (not in `memory()`): the sub-table headers and
    /// copy-on-write slots (`SUBTABLES` x (32 + 24) B = 448 KiB, allocated at the first
    /// insert) and the timer wheel's slot heads.
    pub fn fixed_bytes(&self) -> usize {
        self.index.fixed_bytes() + self.wheel.heap_bytes() - self.wheel.slab_bytes()
    }

    /// Starts a snapshot of the state as of now (the last applied log id). `meta` is an
    /// opaque blob stored in the header (e.g. the Raft membership), at most
    /// `MAX_META_LEN` bytes. One snapshot at a time.
    pub fn begin_snapshot(&mut self, meta: &[u8]) -> Result<SnapshotInfo, SnapshotError> {
        if self.snapshot.is_some() {
            return Err(SnapshotError::InProgress);
        }
        if meta.len() > MAX_META_LEN {
            return Err(SnapshotError::MetaTooLarge {
                len: meta.len(),
                max: MAX_META_LEN,
            });
        }
        let info = SnapshotInfo {
            last_applied: self.last_applied,
            keys: self.index.len(),
        };
        self.index.begin_cow();
        self.snapshot = Some(Builder::new(info.clone(), meta.to_vec()));
        Ok(info)
    }

    /// Encodes the next bounded part of the snapshot, appending it to `out`. Apply
    /// commands freely between steps. After `Done` the snapshot is complete.
    pub fn snapshot_step(&mut self, out: &mut Vec<u8>) -> Result<SnapshotProgress, SnapshotError> {
        let builder = self.snapshot.as_mut().ok_or(SnapshotError::NotStarted)?;
        let progress = builder.step(&mut self.index, out);
        if progress == SnapshotProgress::Done {
            self.abort_snapshot();
        }
        Ok(progress)
    }

    /// The snapshot being built, if any.
    pub fn snapshot_in_progress(&self) -> Option<&SnapshotInfo> {
        self.snapshot.as_ref().map(Builder::info)
    }

    /// Drops the snapshot being built. Its copy-on-write copies are released by the
    /// next `tick` calls, a bounded slice at a time (until then `tick` reports
    /// `complete: false` and `memory().snapshot_bytes` counts them).
    pub fn abort_snapshot(&mut self) {
        self.snapshot = None;
        self.index.end_cow();
    }

    /// Builds a whole snapshot at once (tests, small states, tools).
    pub fn snapshot_to_vec(&mut self, meta: &[u8]) -> Result<Vec<u8>, SnapshotError> {
        self.begin_snapshot(meta)?;
        let mut out = Vec::new();
        while self.snapshot_step(&mut out)? == SnapshotProgress::More {}
        Ok(out)
    }

    /// The digest of the keys visible at `now_ms` (values and expiries included), with
    /// the last applied log id (see `digest`). Visits every entry: O(keys).
    pub fn digest(&self, now_ms: u64) -> StateDigest {
        let mut builder = digest::DigestBuilder::default();
        for entry in self.index.iter().filter(|e| !e.is_expired(now_ms)) {
            builder.add(entry);
        }
        builder.finish(self.last_applied)
    }

    /// Every stored entry (expired ones not yet reclaimed included), in index order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.index.iter()
    }
}
