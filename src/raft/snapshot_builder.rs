//! Building a snapshot of a shard's state while the shard keeps applying entries.
//!
//! openraft asks the state machine for a builder between two applies, then runs
//! `build_snapshot` in a task of its own on the same executor, concurrently with later
//! applies. The builder:
//! - freezes the state at creation when it can (`State::begin_snapshot`, copy-on-write),
//!   capturing `last_applied` and the membership in the same synchronous step, so the
//!   snapshot is exactly the state at its log id;
//! - encodes one bounded `snapshot_step` (~256 KiB) at a time and yields to the executor
//!   after each, so applies and reads run between steps;
//! - persists the bytes durably through the [`SnapshotStore`] before returning them.
//!
//! Invariants:
//! - At most one builder owns the state's in-progress snapshot (`BuildSlot::active`); a
//!   builder that is dropped before finishing aborts it, so a later snapshot can start.
//! - If `install_snapshot` replaces the state while a build runs, the build's frozen view
//!   is gone with the old state: the builder stops and returns the installed snapshot
//!   (durable, and newer), which openraft then sees as nothing new.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use openraft::RaftSnapshotBuilder;
use openraft_rt::AsyncRuntime;

use super::sm_runtime::SmRuntime;
use super::snapshot_fs::SnapshotFs;

use super::snapshot_meta::encode_meta;
use super::snapshot_meta::from_state_log_id;
use super::snapshot_store::SnapshotStore;
use super::types::ShoalTypeConfig;
use super::types::Snapshot;
use super::types::SnapshotData;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use crate::state::SnapshotError;
use crate::state::SnapshotProgress;
use crate::state::State;

/// How long a builder that must wait for another build to end sleeps between checks.
const BUSY_RETRY: Duration = Duration::from_millis(1);

/// Which builder owns the state's in-progress snapshot, shared by the state machine and
/// its builders.
#[derive(Debug, Default)]
pub(crate) struct BuildSlot {
    next_id: u64,
    /// The builder whose snapshot `State` is building.
    active: Option<u64>,
    /// Set by `install_snapshot` when it replaced the state under an active build: that
    /// build's id and the installed snapshot it returns instead. Each builder removes its
    /// own entry (when it returns or is dropped).
    superseded: Vec<(u64, Snapshot<SnapshotData>)>,
}

impl BuildSlot {
    /// Called by `install_snapshot` before it replaces the state.
    pub(crate) fn supersede(&mut self, installed: &Snapshot<SnapshotData>) {
        if let Some(id) = self.active.take() {
            self.superseded.push((id, installed.clone()));
        }
    }
}

/// What a builder and the state machine share.
pub(crate) struct Shared<C: ShoalTypeConfig, F: SnapshotFs> {
    pub(crate) state: Rc<RefCell<State>>,
    pub(crate) membership: RefCell<StoredMembership>,
    pub(crate) store: SnapshotStore<F, C::AsyncRuntime>,
    pub(crate) slot: RefCell<BuildSlot>,
    pub(crate) clock: Rc<dyn Fn() -> u64>,
}

impl<C: ShoalTypeConfig, F: SnapshotFs + std::fmt::Debug> std::fmt::Debug for Shared<C, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("membership", &self.membership)
            .field("store", &self.store)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Phase {
    /// Not begun yet (another build was running when openraft asked): begins in
    /// `build_snapshot`, once that one ended.
    Pending,
    /// Owns the state's in-progress snapshot.
    Begun {
        id: u64,
        meta: SnapshotMeta,
        size_hint: usize,
    },
    /// Finished, failed or superseded: owns nothing.
    Done,
}

/// The `RaftSnapshotBuilder` of a [`ShardStateMachine`](super::state_machine::ShardStateMachine).
#[derive(Debug)]
pub struct ShardSnapshotBuilder<C: ShoalTypeConfig, F: SnapshotFs + std::fmt::Debug> {
    shared: Rc<Shared<C, F>>,
    phase: Phase,
}

type Begun<C, F> = Result<ShardSnapshotBuilder<C, F>, (Rc<Shared<C, F>>, SnapshotError)>;

impl<C: ShoalTypeConfig, F: SnapshotFs + std::fmt::Debug> ShardSnapshotBuilder<C, F> {
    /// A builder that has frozen the state now, or `Err` with why it could not.
    pub(crate) fn begin(shared: Rc<Shared<C, F>>) -> Begun<C, F> {
        match begin_on(&shared) {
            Ok(phase) => Ok(ShardSnapshotBuilder { shared, phase }),
            Err(e) => Err((shared, e)),
        }
    }

    /// A builder that begins when `build_snapshot` runs.
    pub(crate) fn pending(shared: Rc<Shared<C, F>>) -> Self {
        ShardSnapshotBuilder {
            shared,
            phase: Phase::Pending,
        }
    }

    async fn ensure_begun(&mut self) -> io::Result<()> {
        while matches!(self.phase, Phase::Pending) {
            match begin_on(&self.shared) {
                Ok(phase) => self.phase = phase,
                // The other build always ends (or is dropped, which aborts it).
                Err(SnapshotError::InProgress) => C::AsyncRuntime::sleep(BUSY_RETRY).await,
                Err(e) => {
                    self.phase = Phase::Done;
                    return Err(io::Error::other(format!("cannot begin a snapshot: {e}")));
                }
            }
        }
        Ok(())
    }

    /// `Ok(None)` while this build still owns the state's snapshot; the installed
    /// snapshot that replaced its state, if one did.
    fn take_superseded(&mut self, id: u64) -> io::Result<Option<Snapshot<SnapshotData>>> {
        let mut slot = self.shared.slot.borrow_mut();
        if slot.active == Some(id) {
            return Ok(None);
        }
        match slot.superseded.iter().position(|(sid, _)| *sid == id) {
            Some(at) => Ok(Some(slot.superseded.swap_remove(at).1)),
            None => Err(io::Error::other(format!(
                "snapshot build {id} lost its frozen state without an install"
            ))),
        }
    }
}

/// Freezes the state: reads last applied + membership and begins, in one synchronous step.
fn begin_on<C: ShoalTypeConfig, F: SnapshotFs>(
    shared: &Shared<C, F>,
) -> Result<Phase, SnapshotError> {
    let mut state = shared.state.borrow_mut();
    let meta = SnapshotMeta {
        last_log_id: state.last_applied().map(from_state_log_id),
        last_membership: shared.membership.borrow().clone(),
    };
    let info = state.begin_snapshot(&encode_meta(&meta))?;
    let mem = state.memory();
    // Column overhead per entry is 17 bytes (expiry, two lengths, flags) plus rkyv
    // alignment; reserving up front avoids reallocating a large buffer (a long memcpy)
    // in the middle of the build.
    let size_hint = mem
        .key_bytes
        .saturating_add(mem.value_bytes)
        .saturating_add(info.keys.saturating_mul(24))
        .saturating_add(64 * 1024);
    let mut slot = shared.slot.borrow_mut();
    let id = slot.next_id;
    slot.next_id += 1;
    assert!(
        slot.active.is_none(),
        "a snapshot build is registered but State had none in progress"
    );
    slot.active = Some(id);
    Ok(Phase::Begun {
        id,
        meta,
        size_hint,
    })
}

impl<C: ShoalTypeConfig, F: SnapshotFs + std::fmt::Debug> RaftSnapshotBuilder<C>
    for ShardSnapshotBuilder<C, F>
{
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot<SnapshotData>, io::Error> {
        self.ensure_begun().await?;
        let Phase::Begun {
            id,
            meta,
            size_hint,
        } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return Err(io::Error::other("snapshot builder used twice"));
        };
        // Put the ownership back until the build ends, so Drop can abort it.
        self.phase = Phase::Begun {
            id,
            meta: meta.clone(),
            size_hint,
        };
        let mut out = Vec::with_capacity(size_hint);
        loop {
            if let Some(installed) = self.take_superseded(id)? {
                self.phase = Phase::Done;
                tracing::info!(
                    "snapshot build superseded by an installed snapshot at {:?}",
                    installed.meta.last_log_id
                );
                return Ok(installed);
            }
            let progress = {
                let mut state = self.shared.state.borrow_mut();
                state.snapshot_step(&mut out)
            };
            match progress {
                Ok(SnapshotProgress::More) => {}
                Ok(SnapshotProgress::Done) => break,
                Err(e) => {
                    // Our slot says we own the in-progress snapshot: State disagreeing is
                    // a bug; report it (openraft stops the group) rather than guess.
                    return Err(io::Error::other(format!("snapshot step failed: {e}")));
                }
            }
            <C::AsyncRuntime as SmRuntime>::yield_now().await;
        }
        // State ended the snapshot itself on Done.
        self.shared.slot.borrow_mut().active = None;
        self.phase = Phase::Done;
        let bytes = Bytes::from(out);
        let persisted = self.shared.store.persist(&meta, &bytes).await?;
        if !persisted {
            // A newer snapshot was installed after this one was frozen: openraft keeps
            // the newer one and ignores this (older) meta.
            tracing::info!(
                "built snapshot at {:?} is older than the current one; not persisted",
                meta.last_log_id
            );
        }
        Ok(Snapshot {
            meta,
            snapshot: bytes,
        })
    }
}

impl<C: ShoalTypeConfig, F: SnapshotFs + std::fmt::Debug> Drop for ShardSnapshotBuilder<C, F> {
    fn drop(&mut self) {
        if let Phase::Begun { id, .. } = self.phase {
            let mut slot = self.shared.slot.borrow_mut();
            if slot.active == Some(id) {
                slot.active = None;
                // No borrow of the state is held across an await, so this cannot fail
                // unless a caller holds one while dropping us; then the abort is skipped
                // and the state keeps the frozen copy: loud, because every later
                // snapshot would fail.
                match self.shared.state.try_borrow_mut() {
                    Ok(mut state) => state.abort_snapshot(),
                    Err(_) => tracing::error!("cannot abort a dropped snapshot build"),
                }
            } else {
                slot.superseded.retain(|(sid, _)| *sid != id);
            }
        }
    }
}
