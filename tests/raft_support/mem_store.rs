//! TEST-ONLY in-memory `RaftLogStorage` and `RaftStateMachine` for Shoal's `TypeConfig`.
//!
//! Nothing here is durable: "flushed" means "stored in a `BTreeMap`". It exists to drive
//! openraft end to end on the glommio runtime and to show the exact trait shapes the WAL
//! and the real state machine implement. Invariants it keeps like a real store would:
//! - the log has no holes; `append` stores entries before it returns and reports them
//!   flushed through the `IOFlushed` callback;
//! - `truncate_after`/`purge` cut only from the ends;
//! - the state machine records `last_applied` and the membership of every entry it applies
//!   and answers every entry that has a responder.
//!
//! The test state machine's "command" is opaque bytes; applying it appends it to
//! `MemState::commands` and answers the entry's log index (u64 little-endian).

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::rc::Rc;

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::storage::EntryResponder;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use shoal::raft::TypeConfig;
use shoal::raft::types::Entry;
use shoal::raft::types::EntryPayload;
use shoal::raft::types::LogId;
use shoal::raft::types::Response;
use shoal::raft::types::Snapshot;
use shoal::raft::types::SnapshotMeta;
use shoal::raft::types::StoredMembership;
use shoal::raft::types::Vote;

/// A failure to inject into the next `append`, to exercise how openraft reacts to a
/// storage that poisons (IO error) or trips an assertion (panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFault {
    /// Report the append as failed through the `IOFlushed` callback, as a WAL does when
    /// its fdatasync fails.
    FlushError,
    /// Panic inside `append`.
    Panic,
}

#[derive(Debug, Default)]
struct MemLog {
    fault: Option<AppendFault>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    entries: BTreeMap<u64, Entry>,
}

/// The log store; clones share the same log (the reader handed to replication is a clone).
#[derive(Debug, Clone, Default)]
pub struct MemLogStore {
    inner: Rc<RefCell<MemLog>>,
}

impl MemLogStore {
    /// Make every later `append` fail with `fault`.
    pub fn inject(&self, fault: AppendFault) {
        self.inner.borrow_mut().fault = Some(fault);
    }
}

impl RaftLogReader<TypeConfig> for MemLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let log = self.inner.borrow();
        Ok(log.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.borrow().vote)
    }
}

impl RaftLogStorage<TypeConfig> for MemLogStore {
    type LogReader = MemLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let log = self.inner.borrow();
        let last = log.entries.last_key_value().map(|(_, e)| e.log_id);
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last.or_else(|| log.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.inner.borrow_mut().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.inner.borrow_mut().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.borrow().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let fault = self.inner.borrow().fault;
        match fault {
            Some(AppendFault::Panic) => panic!("injected panic in append"),
            Some(AppendFault::FlushError) => {
                callback.io_completed(Err(io::Error::other("injected fdatasync failure")));
                return Ok(());
            }
            None => {}
        }
        {
            let mut log = self.inner.borrow_mut();
            for entry in entries {
                let index = entry.log_id.index;
                if let Some((&last, _)) = log.entries.last_key_value() {
                    assert_eq!(index, last + 1, "append must not leave a hole");
                }
                log.entries.insert(index, entry);
            }
        }
        // A real WAL calls this from its flusher once the fdatasync covering these entries
        // returned (or with Err if it failed, which openraft treats as fatal).
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let keep_until = last_log_id.map_or(0, |id| id.index + 1);
        let mut log = self.inner.borrow_mut();
        drop(log.entries.split_off(&keep_until));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut log = self.inner.borrow_mut();
        let rest = log.entries.split_off(&(log_id.index + 1));
        log.entries = rest;
        log.last_purged = Some(log_id);
        Ok(())
    }
}

/// The applied state of the test state machine.
#[derive(Debug, Clone, Default)]
pub struct MemState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Every applied command, in log order.
    pub commands: Vec<Bytes>,
}

/// Snapshot data of the test state machine: a copy of its state.
pub type MemSnapshotData = MemState;

/// The state machine; `state()` gives the application a read handle on the same shard.
#[derive(Debug, Clone, Default)]
pub struct MemStateMachine {
    state: Rc<RefCell<MemState>>,
    current_snapshot: Rc<RefCell<Option<Snapshot<MemSnapshotData>>>>,
    installed_snapshots: Rc<Cell<u64>>,
}

impl MemStateMachine {
    /// Shared read access to the applied state (same thread only).
    pub fn state(&self) -> Rc<RefCell<MemState>> {
        self.state.clone()
    }

    /// How many snapshots `install_snapshot` installed (shared by clones).
    pub fn installed_snapshots(&self) -> Rc<Cell<u64>> {
        self.installed_snapshots.clone()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    type SnapshotData = MemSnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot<MemSnapshotData>, io::Error> {
        let data = self.state.borrow().clone();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last_log_id: data.last_applied,
                last_membership: data.membership.clone(),
            },
            snapshot: data,
        };
        *self.current_snapshot.borrow_mut() = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotData = MemSnapshotData;
    type SnapshotBuilder = MemStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.state.borrow();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let reply = {
                let mut state = self.state.borrow_mut();
                state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Response::default(),
                    EntryPayload::Normal(request) => {
                        state.commands.push(request.command);
                        Response {
                            reply: Bytes::copy_from_slice(&entry.log_id.index.to_le_bytes()),
                        }
                    }
                    EntryPayload::Membership(membership) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), membership);
                        Response::default()
                    }
                }
            };
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: MemSnapshotData,
    ) -> Result<(), io::Error> {
        assert_eq!(
            meta.last_log_id, snapshot.last_applied,
            "snapshot meta and data disagree"
        );
        self.installed_snapshots
            .set(self.installed_snapshots.get() + 1);
        *self.state.borrow_mut() = snapshot.clone();
        *self.current_snapshot.borrow_mut() = Some(Snapshot {
            meta: meta.clone(),
            snapshot,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<MemSnapshotData>>, io::Error> {
        Ok(self.current_snapshot.borrow().clone())
    }
}
