//! The durable snapshot files of one shard: `<data_dir>/shard-<s>/snapshots/`.
//!
//! Owns the directory: naming, the crash-safe write sequence, finding and verifying the
//! newest snapshot at startup, reading the current one back for a follower.
//!
//! Invariants:
//! - A file named `snapshot-<term>-<index>.snap` (or `snapshot-none.snap` for a snapshot
//!   taken before any entry was applied) is complete and durable: it is written as
//!   `<name>.tmp`, fdatasync'd, renamed, and the directory fsync'd before the store
//!   reports it current. A `.tmp` file is garbage by definition and deleted at open.
//! - The current snapshot is the newest one persisted; persisting an older one than the
//!   current is refused (returns `false`), so the current snapshot never goes back.
//!   Older files are deleted once a newer one is durable.
//! - Every file operation (persist, read) runs under one async lock, so a read never
//!   sees a file another task is replacing or deleting.
//! - All I/O goes through the [`SnapshotFs`] seam (production: glommio's io_uring,
//!   [`FileSnapshotFs`](super::snapshot_fs::FileSnapshotFs); the simulation: an in-memory
//!   directory with crash semantics). Reads and decoding go in `IO_CHUNK` pieces with a
//!   yield ([`SmRuntime::yield_now`]) between them.
//! - At open, a newest file that fails verification is an error naming it: the store
//!   never falls back to an older file (see `SNAPSHOT.md`, "Files").

use std::cell::RefCell;
use std::io;
use std::marker::PhantomData;
use std::path::PathBuf;

use bytes::Bytes;
use thiserror::Error;

use super::sm_runtime::SmRuntime;
use super::snapshot_fs::SnapshotFile;
use super::snapshot_fs::SnapshotFs;
use super::snapshot_meta::MetaError;
use super::snapshot_meta::decode_meta;
use super::snapshot_meta::from_state_log_id;
use super::types::LogId;
use super::types::Snapshot;
use super::types::SnapshotData;
use super::types::SnapshotMeta;
use crate::state::SnapshotError;
use crate::state::SnapshotReader;
use crate::state::State;

/// Bytes written, read or decoded per step: about one snapshot block, so a step costs
/// well under a millisecond.
pub const IO_CHUNK: usize = 256 * 1024;

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";

/// Opening a shard's snapshot directory (or its state machine) failed.
#[derive(Debug, Error)]
pub enum SmError {
    /// An I/O operation on the directory or one of its files failed.
    #[error("snapshot store {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// The newest snapshot file does not decode (corrupt or truncated).
    #[error("snapshot file {path} is corrupt at byte offset {offset}: {source}")]
    Corrupt {
        path: PathBuf,
        /// Where the damaged (or missing) frame starts.
        offset: u64,
        source: SnapshotError,
    },
    /// The newest snapshot file's Raft metadata does not decode.
    #[error("snapshot file {path} has invalid raft metadata: {source}")]
    BadMeta { path: PathBuf, source: MetaError },
    /// The file's name, its header and its metadata disagree on the log id.
    #[error("snapshot file {path} is inconsistent: {detail}")]
    Inconsistent { path: PathBuf, detail: String },
    /// The state handed to `open` already holds data.
    #[error(
        "the state machine must be opened on a fresh state (it has {keys} keys, last applied {last_applied:?})"
    )]
    StateNotFresh {
        keys: usize,
        last_applied: Option<crate::state::LogId>,
    },
}

/// The newest snapshot found at open, verified and decoded.
#[derive(Debug)]
pub struct Loaded {
    /// Its Raft metadata.
    pub meta: SnapshotMeta,
    /// The state it holds.
    pub state: State,
}

#[derive(Debug, Clone)]
struct Current {
    meta: SnapshotMeta,
    name: String,
    len: u64,
}

/// The snapshot directory of one shard, on the file-access seam `F`, yielding through the
/// runtime `R`. Not `Send`: lives on the shard's executor.
#[derive(Debug)]
pub struct SnapshotStore<F: SnapshotFs, R: SmRuntime> {
    fs: F,
    current: RefCell<Option<Current>>,
    /// Serializes every file operation (see the module invariants).
    io_lock: tokio::sync::Mutex<()>,
    _runtime: PhantomData<fn() -> R>,
}

/// The file name of a snapshot whose last log id is `id`.
pub fn file_name(id: Option<LogId>) -> String {
    match id {
        Some(id) => format!("{PREFIX}{}-{}{SUFFIX}", id.leader_id.term, id.index),
        None => format!("{PREFIX}none{SUFFIX}"),
    }
}

/// The order key of a snapshot file name (`(index, term)`, `None` for `snapshot-none`),
/// or `None` if the name is not a snapshot file's (a `.tmp` file, anything else).
pub fn snapshot_key(name: &str) -> Option<Option<(u64, u64)>> {
    parse_name(name).ok()
}

/// Parses a snapshot file name into its order key: `None` < any log id, then by index,
/// then term (`(index, term)`). `Err(())` if the name is not a snapshot's.
fn parse_name(name: &str) -> Result<Option<(u64, u64)>, ()> {
    let body = name
        .strip_prefix(PREFIX)
        .and_then(|s| s.strip_suffix(SUFFIX))
        .ok_or(())?;
    if body == "none" {
        return Ok(None);
    }
    let (term, index) = body.split_once('-').ok_or(())?;
    let parse = |s: &str| {
        // Only canonical decimal: what `file_name` writes.
        if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
            return Err(());
        }
        s.parse::<u64>().map_err(|_| ())
    };
    Ok(Some((parse(index)?, parse(term)?)))
}

fn io_err(path: PathBuf, op: &'static str) -> impl FnOnce(io::Error) -> SmError {
    move |source| SmError::Io { path, op, source }
}

/// Adds the path and operation to an I/O error for the Raft layer.
fn ctx(path: PathBuf, op: &str) -> impl FnOnce(io::Error) -> io::Error {
    let what = format!("{op} {}", path.display());
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl<F: SnapshotFs, R: SmRuntime> SnapshotStore<F, R> {
    /// Opens (creating it if needed) the snapshot directory `fs`: deletes leftover
    /// `.tmp` files, verifies and decodes the newest snapshot, deletes older ones.
    pub async fn open(fs: F) -> Result<(Self, Option<Loaded>), SmError> {
        let dir = fs.path("");
        fs.prepare()
            .await
            .map_err(io_err(dir.clone(), "create directory"))?;
        let mut tmps = Vec::new();
        let mut snaps: Vec<(Option<(u64, u64)>, String)> = Vec::new();
        let names = fs
            .list()
            .await
            .map_err(io_err(dir.clone(), "list directory"))?;
        for name in names {
            if name.ends_with(TMP_SUFFIX) {
                tmps.push(name);
            } else if let Ok(key) = parse_name(&name) {
                snaps.push((key, name));
            } else {
                tracing::warn!(path = %fs.path(&name).display(), "ignoring unknown file in the snapshot directory");
            }
        }
        for tmp in &tmps {
            tracing::info!(path = %fs.path(tmp).display(), "deleting an unfinished snapshot");
            fs.remove(tmp)
                .await
                .map_err(io_err(fs.path(tmp), "delete"))?;
        }
        snaps.sort();
        let store = SnapshotStore {
            fs,
            current: RefCell::new(None),
            io_lock: tokio::sync::Mutex::new(()),
            _runtime: PhantomData,
        };
        let Some((key, newest)) = snaps.pop() else {
            if !tmps.is_empty() {
                store
                    .fs
                    .sync_dir()
                    .await
                    .map_err(io_err(dir, "fsync directory"))?;
            }
            return Ok((store, None));
        };
        let (loaded, len) = load::<F, R>(&store.fs, &newest, key).await?;
        // Only now that the newest verified: older files are superseded.
        for (_, old) in &snaps {
            store
                .fs
                .remove(old)
                .await
                .map_err(io_err(store.fs.path(old), "delete"))?;
        }
        if !snaps.is_empty() || !tmps.is_empty() {
            store
                .fs
                .sync_dir()
                .await
                .map_err(io_err(dir, "fsync directory"))?;
        }
        *store.current.borrow_mut() = Some(Current {
            meta: loaded.meta.clone(),
            name: newest,
            len,
        });
        Ok((store, Some(loaded)))
    }

    /// The file-access seam (the directory).
    pub fn fs(&self) -> &F {
        &self.fs
    }

    /// The metadata of the current (newest durable) snapshot.
    pub fn current_meta(&self) -> Option<SnapshotMeta> {
        self.current.borrow().as_ref().map(|c| c.meta.clone())
    }

    /// Makes `bytes` (a snapshot whose metadata is `meta`) the current snapshot, durably:
    /// `.tmp` → write → fdatasync → rename → fsync directory, then deletes the older
    /// files. Returns `false`, writing nothing, if the current snapshot is newer than
    /// `meta` (a build that a newer installed snapshot overtook).
    pub async fn persist(&self, meta: &SnapshotMeta, bytes: &SnapshotData) -> io::Result<bool> {
        let _guard = self.io_lock.lock().await;
        let newer_is_current = self
            .current
            .borrow()
            .as_ref()
            .is_some_and(|cur| cur.meta.last_log_id > meta.last_log_id);
        if newer_is_current {
            return Ok(false);
        }
        let name = file_name(meta.last_log_id);
        let tmp = format!("{name}.tmp");
        let file = self
            .fs
            .create(&tmp)
            .await
            .map_err(ctx(self.fs.path(&tmp), "create"))?;
        let written = write_all(&file, bytes).await;
        let synced = match written {
            Ok(()) => file.fdatasync().await,
            Err(e) => Err(e),
        };
        let closed = file.close().await;
        synced
            .and(closed)
            .map_err(ctx(self.fs.path(&tmp), "write"))?;
        self.fs
            .rename(&tmp, &name)
            .await
            .map_err(ctx(self.fs.path(&tmp), "rename"))?;
        self.fs
            .sync_dir()
            .await
            .map_err(ctx(self.fs.path(""), "fsync directory"))?;
        let previous = self.current.borrow_mut().replace(Current {
            meta: meta.clone(),
            name: name.clone(),
            len: bytes.len() as u64,
        });
        // Superseded files: their deletion need not be durable (open deletes any that
        // reappear after a crash).
        if let Some(prev) = previous.filter(|p| p.name != name) {
            self.fs
                .remove(&prev.name)
                .await
                .map_err(ctx(self.fs.path(&prev.name), "delete"))?;
        }
        Ok(true)
    }

    /// The current snapshot, read back from its file in `IO_CHUNK` pieces.
    pub async fn read_current(&self) -> io::Result<Option<Snapshot<SnapshotData>>> {
        let _guard = self.io_lock.lock().await;
        let Some(cur) = self.current.borrow().clone() else {
            return Ok(None);
        };
        let path = self.fs.path(&cur.name);
        let file = self
            .fs
            .open(&cur.name)
            .await
            .map_err(ctx(path.clone(), "open"))?;
        let len = usize::try_from(cur.len).map_err(io::Error::other)?;
        let mut out = Vec::with_capacity(len);
        let read = read_chunks::<F::File, R>(&file, |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })
        .await;
        let closed = file.close().await;
        read.and(closed).map_err(ctx(path.clone(), "read"))?;
        if out.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot file {} holds {} bytes, {} were written",
                    path.display(),
                    out.len(),
                    len
                ),
            ));
        }
        Ok(Some(Snapshot {
            meta: cur.meta,
            snapshot: Bytes::from(out),
        }))
    }
}

async fn write_all(file: &impl SnapshotFile, bytes: &[u8]) -> io::Result<()> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let end = (pos + IO_CHUNK).min(bytes.len());
        let n = file.write_at(bytes[pos..end].to_vec(), pos as u64).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        pos += n;
    }
    Ok(())
}

/// Reads the whole file in `IO_CHUNK` pieces, handing each to `f`, yielding in between.
async fn read_chunks<FL: SnapshotFile, R: SmRuntime>(
    file: &FL,
    mut f: impl FnMut(&[u8]) -> Result<(), SnapshotError>,
) -> io::Result<()> {
    let mut pos = 0u64;
    loop {
        let chunk = file.read_at(pos, IO_CHUNK).await?;
        if chunk.is_empty() {
            return Ok(());
        }
        pos += chunk.len() as u64;
        f(&chunk).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        R::yield_now().await;
    }
}

/// Decodes a whole snapshot held in memory, `IO_CHUNK` at a time with a yield in
/// between, so a large restore does not stall the shard.
pub async fn decode_yielding<R: SmRuntime>(
    bytes: &[u8],
) -> Result<crate::state::Restored, SnapshotError> {
    let mut reader = SnapshotReader::new();
    for chunk in bytes.chunks(IO_CHUNK) {
        reader.feed(chunk)?;
        R::yield_now().await;
    }
    reader.finish()
}

/// Checks that a decoded snapshot's header log id, Raft metadata and (if it came from a
/// file) file name agree.
pub fn check_log_ids(
    meta: &SnapshotMeta,
    state: &State,
    named: Option<Option<(u64, u64)>>,
) -> Result<(), String> {
    let header = state.last_applied().map(from_state_log_id);
    if header != meta.last_log_id {
        return Err(format!(
            "header log id {header:?} differs from metadata log id {:?}",
            meta.last_log_id
        ));
    }
    if let Some(key) = named {
        let from_meta = meta.last_log_id.map(|l| (l.index, l.leader_id.term));
        if key != from_meta {
            return Err(format!(
                "file name says (index, term) {key:?}, contents say {from_meta:?}"
            ));
        }
    }
    if meta.last_membership.log_id() > &meta.last_log_id {
        return Err("membership log id is after the snapshot's last log id".to_string());
    }
    Ok(())
}

async fn load<F: SnapshotFs, R: SmRuntime>(
    fs: &F,
    name: &str,
    key: Option<(u64, u64)>,
) -> Result<(Loaded, u64), SmError> {
    let path = &fs.path(name);
    let file = fs.open(name).await.map_err(io_err(path.clone(), "open"))?;
    let mut reader = SnapshotReader::new();
    let mut len = 0u64;
    let mut decode_error = None;
    let read = read_chunks::<F::File, R>(&file, |chunk| {
        len += chunk.len() as u64;
        reader
            .feed(chunk)
            .inspect_err(|e| decode_error = Some(e.clone()))
    })
    .await;
    let closed = file.close().await;
    let offset = reader.offset();
    if let Some(source) = decode_error {
        return Err(SmError::Corrupt {
            path: path.to_path_buf(),
            offset,
            source,
        });
    }
    read.and(closed).map_err(io_err(path.clone(), "read"))?;
    let restored = reader.finish().map_err(|source| SmError::Corrupt {
        path: path.to_path_buf(),
        offset,
        source,
    })?;
    let meta = decode_meta(&restored.meta).map_err(|source| SmError::BadMeta {
        path: path.to_path_buf(),
        source,
    })?;
    check_log_ids(&meta, &restored.state, Some(key)).map_err(|detail| SmError::Inconsistent {
        path: path.to_path_buf(),
        detail,
    })?;
    Ok((
        Loaded {
            meta,
            state: restored.state,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::vote::leader_id_adv::LeaderId;

    #[test]
    fn names_round_trip_and_order() {
        let id = LogId {
            leader_id: LeaderId {
                term: 3,
                node_id: 1,
            },
            index: 42,
        };
        assert_eq!(file_name(Some(id)), "snapshot-3-42.snap");
        assert_eq!(parse_name("snapshot-3-42.snap"), Ok(Some((42, 3))));
        assert_eq!(parse_name(&file_name(None)), Ok(None));
        for bad in [
            "snapshot-3-42.snap.tmp",
            "snapshot-03-42.snap",
            "snapshot--42.snap",
            "snapshot-3.snap",
            "snapshot-x-1.snap",
            "other",
        ] {
            assert_eq!(parse_name(bad), Err(()), "{bad}");
        }
        let mut keys = vec![Some((10, 2)), None, Some((9, 3)), Some((10, 1))];
        keys.sort();
        assert_eq!(keys, vec![None, Some((9, 3)), Some((10, 1)), Some((10, 2))]);
    }
}
