//! The shard state machine (`ShardStateMachine`) driven directly through openraft's
//! `RaftStateMachine` trait on a glommio executor: snapshots built while applying,
//! restore after reopen, corrupt files, install, builds superseded or dropped.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use openraft::Membership;
use openraft::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use openraft::vote::leader_id_adv::LeaderId;
use shoal::raft::ShardStateMachine;
use shoal::raft::SmError;
use shoal::raft::types::Entry;
use shoal::raft::types::EntryPayload;
use shoal::raft::types::LogId;
use shoal::raft::types::Request;
use shoal::raft::types::Snapshot;
use shoal::raft::types::SnapshotData;
use shoal::raft::types::StoredMembership;
use shoal::state::Command;
use shoal::state::KeyExpiry;
use shoal::state::SnapshotReader;
use shoal::state::State;

type Model = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

fn lid(term: u64, index: u64) -> LogId {
    LogId {
        leader_id: LeaderId { term, node_id: 1 },
        index,
    }
}

fn normal(term: u64, index: u64, cmd: &Command) -> Entry {
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Normal(Request {
            command: cmd.to_bytes().unwrap(),
        }),
    }
}

fn membership_entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Membership(membership()),
    }
}

fn membership() -> Membership<u64, shoal::raft::types::ShoalNode> {
    Membership::new(
        vec![BTreeSet::from([1])],
        BTreeMap::from([(1, raft_support::node(1)), (2, raft_support::node(2))]),
    )
    .unwrap()
}

async fn open(dir: &Path) -> Result<(ShardStateMachine, Rc<RefCell<State>>), SmError> {
    let state = Rc::new(RefCell::new(State::new()));
    let sm = ShardStateMachine::open(dir.to_path_buf(), state.clone(), Rc::new(|| 1_000)).await?;
    Ok((sm, state))
}

async fn apply(sm: &mut ShardStateMachine, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|e| Ok((e, None)));
    sm.apply(futures::stream::iter(items)).await.unwrap();
}

/// Commands that write `model` forward: puts, puts with a far expiry, deletes.
fn command(i: u64, model: &mut Model) -> Command {
    let key = format!("key-{:08}", i % 250_000).into_bytes();
    let value = format!("value-{i:012}-{}", "v".repeat((i % 7) as usize)).into_bytes();
    match i % 10 {
        0 => {
            model.remove(&key);
            Command::Delete { key: key.into() }
        }
        1 => {
            let at = 10_000_000_000 + i;
            model.insert(key.clone(), (value.clone(), Some(at)));
            Command::PutWithTtl {
                key: key.into(),
                value: value.into(),
                expire_at_ms: at,
            }
        }
        _ => {
            model.insert(key.clone(), (value.clone(), None));
            Command::Put {
                key: key.into(),
                value: value.into(),
            }
        }
    }
}

fn assert_state_is(state: &State, model: &Model) {
    assert_eq!(state.len(), model.len(), "key count");
    for (k, (v, exp)) in model {
        assert_eq!(
            state.get(k, 1_000).as_deref(),
            Some(v.as_slice()),
            "value of {k:?}"
        );
        let want = exp.map_or(KeyExpiry::Persistent, KeyExpiry::At);
        assert_eq!(state.expiry(k, 1_000), want, "expiry of {k:?}");
    }
}

/// CPU time this thread has run. `CLOCK_THREAD_CPUTIME_ID` is exact; the scheduler's
/// `/proc` counters only move at ticks (4 ms here).
fn thread_cpu() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::from(t)
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Applies entries `from..=to` (term 1), writing `model`, in batches.
async fn write_range(sm: &mut ShardStateMachine, model: &mut Model, from: u64, to: u64) {
    let mut i = from;
    while i <= to {
        let end = (i + 4095).min(to);
        let entries = (i..=end)
            .map(|j| normal(1, j, &command(j, model)))
            .collect();
        apply(sm, entries).await;
        i = end + 1;
    }
}

async fn build(sm: &mut ShardStateMachine) -> Snapshot<SnapshotData> {
    let mut b = sm.try_create_snapshot_builder(true).await.unwrap();
    b.build_snapshot().await.unwrap()
}

#[test]
fn snapshot_built_while_applying_is_exactly_the_state_at_its_log_id() {
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("snapshots");
        let (mut sm, state) = open(&dir).await.unwrap();
        let mut model = Model::new();
        apply(&mut sm, vec![membership_entry(1, 1)]).await;
        // 200k distinct keys (plus a few deletes and TTLs).
        write_range(&mut sm, &mut model, 2, 220_001).await;
        assert!(model.len() >= 190_000, "{}", model.len());
        let frozen_at = 220_001;
        let expected = model.clone();

        let mut builder = sm.try_create_snapshot_builder(false).await.unwrap();
        // A second policy snapshot is deferred while one is in progress.
        assert!(sm.try_create_snapshot_builder(false).await.is_none());

        // The probe measures the longest time the executor did not get back to it, in
        // wall time and in this thread's CPU time (the machine is shared: the OS may
        // preempt the thread, which is not a stall of ours).
        let stop = Rc::new(Cell::new(false));
        let max_gap = Rc::new(Cell::new(Duration::ZERO));
        let max_cpu_gap = Rc::new(Cell::new(Duration::ZERO));
        let probe = glommio::spawn_local({
            let (stop, max_gap, max_cpu_gap) = (stop.clone(), max_gap.clone(), max_cpu_gap.clone());
            async move {
                let mut last = Instant::now();
                let mut last_cpu = thread_cpu();
                while !stop.get() {
                    glommio::executor().yield_now().await;
                    let now = Instant::now();
                    max_gap.set(max_gap.get().max(now - last));
                    last = now;
                    let cpu = thread_cpu();
                    max_cpu_gap.set(max_cpu_gap.get().max(cpu.saturating_sub(last_cpu)));
                    last_cpu = cpu;
                }
            }
        });
        let done = Rc::new(Cell::new(false));
        let build_task = glommio::spawn_local({
            let done = done.clone();
            async move {
                let snap = builder.build_snapshot().await.unwrap();
                done.set(true);
                snap
            }
        });
        // Keep writing (overwrites, deletes, new keys) while the snapshot is built.
        let mut next = frozen_at + 1;
        let mut during = 0u64;
        while !done.get() && during < 2_000_000 {
            let entries = (next..next + 8)
                .map(|j| normal(1, j, &command(j * 7 + 3, &mut model)))
                .collect();
            apply(&mut sm, entries).await;
            next += 8;
            during += 8;
            glommio::executor().yield_now().await;
        }
        let snap = build_task.await;
        stop.set(true);
        probe.await;
        println!(
            "snapshot of {} keys ({} bytes) built while applying {during} entries; \
             longest executor stall seen by the probe: {:?} of thread CPU time, {:?} wall",
            expected.len(),
            snap.snapshot.len(),
            max_cpu_gap.get(),
            max_gap.get()
        );
        assert!(during > 0, "no write ran while the snapshot was built");

        assert_eq!(snap.meta.last_log_id, Some(lid(1, frozen_at)));
        assert_eq!(
            snap.meta.last_membership,
            StoredMembership::new(Some(lid(1, 1)), membership())
        );
        let restored = SnapshotReader::read_all(&snap.snapshot).unwrap();
        assert_eq!(restored.state.last_applied().unwrap().index, frozen_at);
        assert_state_is(&restored.state, &expected);
        // The live state went on.
        assert_state_is(&state.borrow(), &model);
        assert_eq!(state.borrow().last_applied().unwrap().index, next - 1);

        // Durable and current.
        assert_eq!(
            snapshot_files(&dir),
            vec![format!("snapshot-1-{frozen_at}.snap")]
        );
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snap.meta);
        assert_eq!(current.snapshot, snap.snapshot);
    });
}

#[test]
fn reopen_restores_the_newest_snapshot_and_cleans_the_directory() {
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shard-0").join("snapshots");
        let mut model = Model::new();
        let (first, second) = {
            let (mut sm, _state) = open(&dir).await.unwrap();
            apply(&mut sm, vec![membership_entry(1, 1)]).await;
            write_range(&mut sm, &mut model, 2, 100).await;
            let first = build(&mut sm).await;
            // Blank entries count as applied too.
            apply(
                &mut sm,
                vec![Entry {
                    log_id: lid(2, 101),
                    payload: EntryPayload::Blank,
                }],
            )
            .await;
            let entries = (102..=150)
                .map(|j| normal(2, j, &command(j, &mut model)))
                .collect();
            apply(&mut sm, entries).await;
            let second = build(&mut sm).await;
            (first, second)
        };
        assert_eq!(first.meta.last_log_id, Some(lid(1, 100)));
        assert_eq!(second.meta.last_log_id, Some(lid(2, 150)));
        // The older file went once the newer was durable.
        assert_eq!(
            snapshot_files(&dir),
            vec!["snapshot-2-150.snap".to_string()]
        );
        // An older leftover and an unfinished write, as a crash could leave them.
        std::fs::write(dir.join("snapshot-1-100.snap"), &first.snapshot).unwrap();
        std::fs::write(dir.join("snapshot-2-200.snap.tmp"), b"half a snapshot").unwrap();

        let (mut sm, state) = open(&dir).await.unwrap();
        assert_state_is(&state.borrow(), &model);
        let (applied, membership_now) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(lid(2, 150)));
        assert_eq!(membership_now, second.meta.last_membership);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, second.meta);
        assert_eq!(current.snapshot, second.snapshot);
        assert_eq!(
            snapshot_files(&dir),
            vec!["snapshot-2-150.snap".to_string()]
        );
        // Applying goes on from the snapshot's log id.
        let entries = vec![normal(2, 151, &command(151, &mut model))];
        apply(&mut sm, entries).await;
        assert_state_is(&state.borrow(), &model);

        // `open` wants a fresh state.
        let used = Rc::new(RefCell::new(State::new()));
        used.borrow_mut()
            .apply(
                shoal::state::LogId {
                    term: 1,
                    node_id: 1,
                    index: 1,
                },
                &Command::Put {
                    key: Bytes::from_static(b"k"),
                    value: Bytes::from_static(b"v"),
                },
            )
            .unwrap();
        let err = ShardStateMachine::open(dir.clone(), used, Rc::new(|| 0))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SmError::StateNotFresh { keys: 1, .. }),
            "{err}"
        );
    });
}

/// A directory holding one valid snapshot at (term 1, index 100); returns its file.
async fn dir_with_snapshot(dir: &Path) -> PathBuf {
    let (mut sm, _state) = open(dir).await.unwrap();
    let mut model = Model::new();
    apply(&mut sm, vec![membership_entry(1, 1)]).await;
    write_range(&mut sm, &mut model, 2, 100).await;
    build(&mut sm).await;
    dir.join("snapshot-1-100.snap")
}

#[test]
fn a_corrupt_truncated_or_misnamed_snapshot_is_an_error_naming_the_file() {
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        // Each case: (how to damage the file, what open must say).
        type Damage = fn(&Path) -> PathBuf;
        let cases: [(&str, Damage); 5] = [
            ("flipped byte", |p| {
                let mut b = std::fs::read(p).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x40;
                std::fs::write(p, b).unwrap();
                p.to_path_buf()
            }),
            ("truncated", |p| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() - 10]).unwrap();
                p.to_path_buf()
            }),
            ("empty", |p| {
                std::fs::write(p, b"").unwrap();
                p.to_path_buf()
            }),
            ("renamed", |p| {
                let to = p.with_file_name("snapshot-1-99.snap");
                std::fs::rename(p, &to).unwrap();
                to
            }),
            ("newer corrupt next to an older valid one", |p| {
                let newer = p.with_file_name("snapshot-2-300.snap");
                let mut b = std::fs::read(p).unwrap();
                let n = b.len();
                b[n - 5] ^= 1;
                std::fs::write(&newer, b).unwrap();
                newer
            }),
        ];
        for (i, (what, damage)) in cases.into_iter().enumerate() {
            let dir = tmp.path().join(format!("case-{i}"));
            let file = dir_with_snapshot(&dir).await;
            let named = damage(&file);
            let err = open(&dir).await.unwrap_err();
            let text = err.to_string();
            println!("{what}: {text}");
            assert!(
                text.contains(&named.display().to_string()),
                "{what}: the error must name {}: {text}",
                named.display()
            );
            match what {
                "renamed" => assert!(matches!(err, SmError::Inconsistent { .. }), "{what}: {err}"),
                _ => assert!(matches!(err, SmError::Corrupt { .. }), "{what}: {err}"),
            }
            // Nothing was deleted: the operator decides.
            assert!(named.exists(), "{what}");
        }
    });
}

#[test]
fn install_snapshot_replaces_the_state_and_becomes_current() {
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        let (mut leader, _) = open(&tmp.path().join("a")).await.unwrap();
        let mut leader_model = Model::new();
        apply(&mut leader, vec![membership_entry(1, 1)]).await;
        write_range(&mut leader, &mut leader_model, 2, 500).await;
        let snap = build(&mut leader).await;

        let follower_dir = tmp.path().join("b");
        let (mut follower, state) = open(&follower_dir).await.unwrap();
        let mut other = Model::new();
        // Different keys at lower indexes, and an older snapshot of its own.
        let entries = (1..=40)
            .map(|j| normal(1, j, &command(j + 700_000, &mut other)))
            .collect();
        apply(&mut follower, entries).await;
        build(&mut follower).await;

        // Garbage and a meta that does not match the bytes are refused; nothing changes.
        let bad = follower
            .install_snapshot(&snap.meta, Bytes::from_static(b"not a snapshot"))
            .await
            .unwrap_err();
        println!("garbage: {bad}");
        let mut wrong_meta = snap.meta.clone();
        wrong_meta.last_log_id = Some(lid(3, 499));
        follower
            .install_snapshot(&wrong_meta, snap.snapshot.clone())
            .await
            .unwrap_err();
        assert_state_is(&state.borrow(), &other);

        follower
            .install_snapshot(&snap.meta, snap.snapshot.clone())
            .await
            .unwrap();
        assert_state_is(&state.borrow(), &leader_model);
        let (applied, m) = follower.applied_state().await.unwrap();
        assert_eq!(applied, snap.meta.last_log_id);
        assert_eq!(m, snap.meta.last_membership);
        let current = follower.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snap.meta);
        assert_eq!(
            snapshot_files(&follower_dir),
            vec!["snapshot-1-500.snap".to_string()]
        );
        // And it survives a restart.
        drop(follower);
        let (_f, state) = open(&follower_dir).await.unwrap();
        assert_state_is(&state.borrow(), &leader_model);
    });
}

#[test]
fn builds_are_exclusive_superseded_by_an_install_and_aborted_when_dropped() {
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        let (mut leader, _) = open(&tmp.path().join("a")).await.unwrap();
        let mut leader_model = Model::new();
        write_range(&mut leader, &mut leader_model, 1, 30_000).await;
        let installed = build(&mut leader).await;

        let (mut sm, state) = open(&tmp.path().join("b")).await.unwrap();
        let mut model = Model::new();
        write_range(&mut sm, &mut model, 1, 20_000).await;

        // A build that is dropped half-way gives the state back for the next one.
        {
            let mut b = sm.try_create_snapshot_builder(false).await.unwrap();
            let mut fut = std::pin::pin!(b.build_snapshot());
            assert!(futures::poll!(&mut fut).is_pending());
            assert!(state.borrow().snapshot_in_progress().is_some());
        }
        assert!(state.borrow().snapshot_in_progress().is_none());

        // A forced build while another runs waits for it instead of failing.
        let mut first = sm.try_create_snapshot_builder(false).await.unwrap();
        let mut forced = sm.try_create_snapshot_builder(true).await.unwrap();
        let first_snap = first.build_snapshot().await.unwrap();
        let forced_snap = forced.build_snapshot().await.unwrap();
        assert_eq!(first_snap.meta.last_log_id, Some(lid(1, 20_000)));
        assert_eq!(forced_snap.meta, first_snap.meta);

        // An install that replaces the state under a running build supersedes it: the
        // build returns the installed (newer, durable) snapshot.
        let mut b = sm.try_create_snapshot_builder(false).await.unwrap();
        let mut fut = std::pin::pin!(b.build_snapshot());
        assert!(futures::poll!(&mut fut).is_pending());
        sm.install_snapshot(&installed.meta, installed.snapshot.clone())
            .await
            .unwrap();
        let got = fut.await.unwrap();
        assert_eq!(got.meta, installed.meta);
        assert_state_is(&state.borrow(), &leader_model);
        assert!(state.borrow().snapshot_in_progress().is_none());
        // The next build works on the new state.
        let next = build(&mut sm).await;
        assert_eq!(next.meta.last_log_id, Some(lid(1, 30_000)));
    });
}
