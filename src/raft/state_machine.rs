//! openraft's `RaftStateMachine` over a shard's in-memory [`State`], with durable
//! snapshots in the shard's snapshot directory.
//!
//! Owns the glue between Raft entries and `State`: decoding commands, applying them at
//! their log id, answering the proposer, the applied membership, and snapshot build /
//! install / read-back (files: [`SnapshotStore`]; building: [`ShardSnapshotBuilder`]).
//!
//! Invariants:
//! - The state is shared with the shard ([`SharedState`], same thread): the shard reads it
//!   directly; only this state machine writes it. No `RefCell` borrow is held across an
//!   `.await`.
//! - Every entry is applied in log order at its log id; a normal entry whose command does
//!   not decode is answered `Rejected` and still counts as applied (deterministic on every
//!   replica). A log id out of order is a broken invariant: an `io::Error` that stops the
//!   group.
//! - Every responder gets its answer right after its entry is applied (pitfall 8).
//! - The membership returned by `applied_state` is the one of the last applied membership
//!   entry (or of the installed snapshot).
//! - `install_snapshot` makes the snapshot durable before it replaces the state, and
//!   `get_current_snapshot` returns the newest durable snapshot (read from its file).
//! - The state machine is in memory: after a restart it is the newest snapshot (restored
//!   by `open`) plus the committed log openraft re-applies (pitfall 11: the log store must
//!   implement `save_committed`/`read_committed`).
//! - No glommio, no `std::time::Instant::now`, no threads here: the state machine is
//!   generic over its type configuration `C` (whose runtime implements [`SmRuntime`]:
//!   yields, sleeps, the `Instant` that bounds an apply slice) and over its snapshot
//!   directory `F` ([`SnapshotFs`]); the wall clock is the `clock` given to `open`.
//!   Production uses the defaults, [`TypeConfig`] on glommio and [`FileSnapshotFs`]; the
//!   deterministic simulation runs this same code on virtual time and an in-memory
//!   directory. Both are static type parameters: nothing on the apply path is `dyn`.

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures::Stream;
use futures::StreamExt;
use openraft::OptionalSend;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft_rt::AsyncRuntime;
use openraft_rt::Instant as _;

use super::apply_reply::ApplyReply;
use super::sm_runtime::SmRuntime;
use super::snapshot_builder::BuildSlot;
use super::snapshot_builder::ShardSnapshotBuilder;
use super::snapshot_builder::Shared;
use super::snapshot_fs::FileSnapshotFs;
use super::snapshot_fs::SnapshotFs;
use super::snapshot_meta::decode_meta;
use super::snapshot_meta::from_state_log_id;
use super::snapshot_meta::to_state_log_id;
use super::snapshot_store::SnapshotStore;
use super::snapshot_store::check_log_ids;
use super::snapshot_store::decode_yielding;
use super::types::EntryPayload;
use super::types::LogId;
use super::types::Response;
use super::types::ShoalTypeConfig;
use super::types::Snapshot;
use super::types::SnapshotData;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use super::types::TypeConfig;
use crate::state::ApplyResult;
use crate::state::Command;
use crate::state::SnapshotError;
use crate::state::State;

pub use super::snapshot_store::SmError;

/// The shard's state, shared between the state machine (writes) and the shard (reads) on
/// one executor thread.
pub type SharedState = Rc<RefCell<State>>;

/// Longest stretch `apply` runs before yielding to the executor (a batch can hold
/// thousands of entries, some with 1 MiB values).
const APPLY_SLICE: Duration = Duration::from_micros(500);

/// The Raft state machine of one shard, under type configuration `C` with its snapshot
/// files in `F` (production: the defaults).
#[derive(Debug)]
pub struct ShardStateMachine<
    C: ShoalTypeConfig = TypeConfig,
    F: SnapshotFs + std::fmt::Debug = FileSnapshotFs,
> {
    shared: Rc<Shared<C, F>>,
}

impl ShardStateMachine {
    /// Opens the state machine of a shard on the real file system:
    /// [`open_on`](Self::open_on) over `FileSnapshotFs::new(dir)`, with
    /// `dir` = `<data_dir>/shard-<s>/snapshots`.
    pub async fn open(
        dir: PathBuf,
        state: SharedState,
        clock: Rc<dyn Fn() -> u64>,
    ) -> Result<Self, SmError> {
        Self::open_on(FileSnapshotFs::new(dir), state, clock).await
    }
}

impl<C: ShoalTypeConfig, F: SnapshotFs + std::fmt::Debug> ShardStateMachine<C, F> {
    /// Opens the state machine of a shard whose snapshot directory is `fs`.
    ///
    /// The directory is created if missing. The newest snapshot
    /// file, if any, is verified and restored into `state` (which must be fresh: empty,
    /// nothing applied), so `applied_state` and `get_current_snapshot` both report it and
    /// openraft re-applies the committed log after it without decoding it again. A
    /// corrupt newest file is an error naming it; leftover `.tmp` files are deleted.
    ///
    /// `clock` = wall-clock milliseconds since the UNIX epoch; used only to tell a
    /// proposer whether its `Delete` found a live key (see [`ApplyReply::Deleted`]).
    pub async fn open_on(
        fs: F,
        state: SharedState,
        clock: Rc<dyn Fn() -> u64>,
    ) -> Result<Self, SmError> {
        {
            let s = state.borrow();
            if s.last_applied().is_some() || !s.is_empty() {
                return Err(SmError::StateNotFresh {
                    keys: s.len(),
                    last_applied: s.last_applied(),
                });
            }
        }
        let (store, loaded) = SnapshotStore::open(fs).await?;
        let mut membership = StoredMembership::default();
        if let Some(loaded) = loaded {
            tracing::info!(
                dir = %store.fs().path("").display(),
                last_log_id = ?loaded.meta.last_log_id,
                keys = loaded.state.len(),
                "restored the shard state from its snapshot"
            );
            *state.borrow_mut() = loaded.state;
            membership = loaded.meta.last_membership;
        }
        Ok(ShardStateMachine {
            shared: Rc::new(Shared {
                state,
                membership: RefCell::new(membership),
                store,
                slot: RefCell::new(BuildSlot::default()),
                clock,
            }),
        })
    }

    /// The shared state (what the shard reads from).
    pub fn state(&self) -> SharedState {
        self.shared.state.clone()
    }

    /// The snapshot directory.
    pub fn snapshot_fs(&self) -> &F {
        self.shared.store.fs()
    }

    /// Applies one entry; returns its response.
    fn apply_one(
        &self,
        log_id: LogId,
        payload: EntryPayload,
        wants_reply: bool,
    ) -> io::Result<Response> {
        let at = to_state_log_id(log_id);
        let mut state = self.shared.state.borrow_mut();
        let reply = match payload {
            EntryPayload::Blank => {
                state.apply_empty(at).map_err(invariant)?;
                return Ok(Response::default());
            }
            EntryPayload::Membership(m) => {
                state.apply_empty(at).map_err(invariant)?;
                *self.shared.membership.borrow_mut() = StoredMembership::new(Some(log_id), m);
                return Ok(Response::default());
            }
            EntryPayload::Normal(request) => match Command::decode(&request.command) {
                Err(e) => {
                    // Every replica fails the same bytes the same way: the index is
                    // applied as a no-op.
                    state.apply_empty(at).map_err(invariant)?;
                    ApplyReply::Rejected {
                        reason: e.to_string(),
                    }
                }
                Ok(cmd) => {
                    // Leader-side information only (followers have no one to tell).
                    let existed = wants_reply
                        && matches!(cmd, Command::Delete { .. })
                        && cmd
                            .keys()
                            .first()
                            .is_some_and(|k| state.get_value(k, (self.shared.clock)()).is_some());
                    match state.apply(at, &cmd).map_err(invariant)? {
                        ApplyResult::Written => ApplyReply::Written,
                        ApplyResult::Deleted => ApplyReply::Deleted { existed },
                        ApplyResult::SetIf { applied, old } => ApplyReply::SetIf { applied, old },
                        ApplyResult::Changed(c) => ApplyReply::Changed(c),
                        ApplyResult::Removed(n) => ApplyReply::Removed(n),
                        ApplyResult::Rejected(e) => ApplyReply::Rejected {
                            reason: e.to_string(),
                        },
                    }
                }
            },
        };
        Ok(reply.to_response())
    }
}

fn invariant(e: crate::state::StateError) -> io::Error {
    io::Error::other(format!("state machine invariant broken: {e}"))
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl<C: ShoalTypeConfig, F: SnapshotFs + std::fmt::Debug> RaftStateMachine<C>
    for ShardStateMachine<C, F>
{
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = ShardSnapshotBuilder<C, F>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let last = self.shared.state.borrow().last_applied();
        Ok((
            last.map(from_state_log_id),
            self.shared.membership.borrow().clone(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        type Now<C> = <<C as openraft::RaftTypeConfig>::AsyncRuntime as AsyncRuntime>::Instant;
        let mut slice_start = Now::<C>::now();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let response = self.apply_one(entry.log_id, entry.payload, responder.is_some())?;
            if let Some(responder) = responder {
                responder.send(response);
            }
            if slice_start.elapsed() >= APPLY_SLICE {
                <C::AsyncRuntime as SmRuntime>::yield_now().await;
                slice_start = Now::<C>::now();
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(
        &mut self,
        force: bool,
    ) -> Option<ShardSnapshotBuilder<C, F>> {
        match ShardSnapshotBuilder::begin(self.shared.clone()) {
            Ok(builder) => Some(builder),
            // One snapshot at a time: defer a policy snapshot, queue a forced one.
            Err((_, SnapshotError::InProgress)) if !force => None,
            Err((shared, e)) => {
                if !matches!(e, SnapshotError::InProgress) {
                    tracing::error!("cannot begin a snapshot now: {e}; retrying in build_snapshot");
                }
                Some(ShardSnapshotBuilder::pending(shared))
            }
        }
    }

    async fn get_snapshot_builder(&mut self) -> ShardSnapshotBuilder<C, F> {
        match ShardSnapshotBuilder::begin(self.shared.clone()) {
            Ok(builder) => builder,
            Err((shared, _)) => ShardSnapshotBuilder::pending(shared),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let restored = decode_yielding::<C::AsyncRuntime>(&snapshot)
            .await
            .map_err(|e| invalid(format!("snapshot to install is invalid: {e}")))?;
        let inner = decode_meta(&restored.meta)
            .map_err(|e| invalid(format!("snapshot to install: {e}")))?;
        check_log_ids(&inner, &restored.state, None)
            .map_err(|e| invalid(format!("snapshot to install is inconsistent: {e}")))?;
        if &inner != meta {
            return Err(invalid(format!(
                "snapshot to install: its bytes say {inner:?}, openraft says {meta:?}"
            )));
        }
        // Durable first: once the state is replaced, the log before it may be purged.
        if !self.shared.store.persist(meta, &snapshot).await? {
            return Err(io::Error::other(format!(
                "install of snapshot {:?}, older than the current one {:?}",
                meta.last_log_id,
                self.shared.store.current_meta().map(|m| m.last_log_id)
            )));
        }
        let installed = Snapshot {
            meta: meta.clone(),
            snapshot,
        };
        self.shared.slot.borrow_mut().supersede(&installed);
        let old = std::mem::replace(&mut *self.shared.state.borrow_mut(), restored.state);
        *self.shared.membership.borrow_mut() = meta.last_membership.clone();
        if !old.is_empty() {
            <C::AsyncRuntime as SmRuntime>::drop_elsewhere(old);
        }
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            keys = self.shared.state.borrow().len(),
            "installed a snapshot sent by the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<SnapshotData>>, io::Error> {
        self.shared.store.read_current().await
    }
}
