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
//! - All I/O goes through glommio's io_uring (`BufferedFile`, `rename`, `remove`,
//!   `Directory::sync`): fdatasync of a large file never blocks the shard's thread.
//!   Buffered (not O_DIRECT) files also avoid the DmaFile EOPNOTSUPP trap of
//!   `/work/shared/DESIGN.md`. Reads and decoding go in `IO_CHUNK` pieces with a yield
//!   between them.
//! - At open, a newest file that fails verification is an error naming it: the store
//!   never falls back to an older file (see `SNAPSHOT.md`, "Files").

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::path::PathBuf;

use bytes::Bytes;
use glommio::io::BufferedFile;
use glommio::io::Directory;
use glommio::io::OpenOptions;
use thiserror::Error;

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
    #[error("snapshot file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
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
    path: PathBuf,
    len: u64,
}

/// The snapshot directory of one shard. Not `Send`: lives on the shard's executor.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    current: RefCell<Option<Current>>,
    /// Serializes every file operation (see the module invariants).
    io_lock: tokio::sync::Mutex<()>,
}

/// The file name of a snapshot whose last log id is `id`.
pub fn file_name(id: Option<LogId>) -> String {
    match id {
        Some(id) => format!("{PREFIX}{}-{}{SUFFIX}", id.leader_id.term, id.index),
        None => format!("{PREFIX}none{SUFFIX}"),
    }
}

/// Parses a snapshot file name into its order key: `None` < any log id, then by index,
/// then term. `Err(())` if the name is not a snapshot's.
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

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> SmError + 'a {
    move |source| SmError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Adds the path and operation to an I/O error for the Raft layer.
fn ctx(path: &Path, op: &str) -> impl FnOnce(io::Error) -> io::Error {
    let what = format!("{op} {}", path.display());
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = Directory::open(dir).await.map_err(io::Error::from)?;
    d.sync().await.map_err(io::Error::from)?;
    d.close().await.map_err(io::Error::from)
}

impl SnapshotStore {
    /// Opens (creating it if needed) the snapshot directory `dir`: deletes leftover
    /// `.tmp` files, verifies and decodes the newest snapshot, deletes older ones.
    pub async fn open(dir: PathBuf) -> Result<(SnapshotStore, Option<Loaded>), SmError> {
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io_err(&dir, "create directory"))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)
                    .await
                    .map_err(io_err(parent, "fsync directory"))?;
            }
        }
        let mut tmps = Vec::new();
        let mut snaps: Vec<(Option<(u64, u64)>, PathBuf)> = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(io_err(&dir, "list directory"))?;
        for entry in entries {
            let entry = entry.map_err(io_err(&dir, "list directory"))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.ends_with(TMP_SUFFIX) {
                tmps.push(path);
            } else if let Ok(key) = parse_name(&name) {
                snaps.push((key, path));
            } else {
                tracing::warn!(path = %path.display(), "ignoring unknown file in the snapshot directory");
            }
        }
        for tmp in &tmps {
            tracing::info!(path = %tmp.display(), "deleting an unfinished snapshot");
            glommio::io::remove(tmp)
                .await
                .map_err(|e| io_err(tmp, "delete")(e.into()))?;
        }
        snaps.sort();
        let store = SnapshotStore {
            dir,
            current: RefCell::new(None),
            io_lock: tokio::sync::Mutex::new(()),
        };
        let Some((key, newest)) = snaps.pop() else {
            if !tmps.is_empty() {
                sync_dir(&store.dir)
                    .await
                    .map_err(io_err(&store.dir, "fsync directory"))?;
            }
            return Ok((store, None));
        };
        let (loaded, len) = load(&newest, key).await?;
        // Only now that the newest verified: older files are superseded.
        for (_, old) in &snaps {
            glommio::io::remove(old)
                .await
                .map_err(|e| io_err(old, "delete")(e.into()))?;
        }
        if !snaps.is_empty() || !tmps.is_empty() {
            sync_dir(&store.dir)
                .await
                .map_err(io_err(&store.dir, "fsync directory"))?;
        }
        *store.current.borrow_mut() = Some(Current {
            meta: loaded.meta.clone(),
            path: newest,
            len,
        });
        Ok((store, Some(loaded)))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(&tmp)
            .await
            .map_err(|e| ctx(&tmp, "create")(e.into()))?;
        let written = write_all(&file, bytes).await;
        let synced = match written {
            Ok(()) => file.fdatasync().await.map_err(io::Error::from),
            Err(e) => Err(e),
        };
        let closed = file.close().await.map_err(io::Error::from);
        synced.and(closed).map_err(ctx(&tmp, "write"))?;
        glommio::io::rename(&tmp, &path)
            .await
            .map_err(|e| ctx(&tmp, "rename")(e.into()))?;
        sync_dir(&self.dir)
            .await
            .map_err(ctx(&self.dir, "fsync directory"))?;
        let previous = self.current.borrow_mut().replace(Current {
            meta: meta.clone(),
            path: path.clone(),
            len: bytes.len() as u64,
        });
        // Superseded files: their deletion need not be durable (open deletes any that
        // reappear after a crash).
        if let Some(prev) = previous.filter(|p| p.path != path) {
            glommio::io::remove(&prev.path)
                .await
                .map_err(|e| ctx(&prev.path, "delete")(e.into()))?;
        }
        Ok(true)
    }

    /// The current snapshot, read back from its file in `IO_CHUNK` pieces.
    pub async fn read_current(&self) -> io::Result<Option<Snapshot<SnapshotData>>> {
        let _guard = self.io_lock.lock().await;
        let Some(cur) = self.current.borrow().clone() else {
            return Ok(None);
        };
        let file = BufferedFile::open(&cur.path)
            .await
            .map_err(|e| ctx(&cur.path, "open")(e.into()))?;
        let len = usize::try_from(cur.len).map_err(io::Error::other)?;
        let mut out = Vec::with_capacity(len);
        let read = read_chunks(&file, |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })
        .await;
        let closed = file.close().await.map_err(io::Error::from);
        read.and(closed).map_err(ctx(&cur.path, "read"))?;
        if out.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot file {} holds {} bytes, {} were written",
                    cur.path.display(),
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

async fn write_all(file: &BufferedFile, bytes: &[u8]) -> io::Result<()> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let end = (pos + IO_CHUNK).min(bytes.len());
        let n = file
            .write_at(bytes[pos..end].to_vec(), pos as u64)
            .await
            .map_err(io::Error::from)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        pos += n;
    }
    Ok(())
}

/// Reads the whole file in `IO_CHUNK` pieces, handing each to `f`, yielding in between.
async fn read_chunks(
    file: &BufferedFile,
    mut f: impl FnMut(&[u8]) -> Result<(), SnapshotError>,
) -> io::Result<()> {
    let mut pos = 0u64;
    loop {
        let chunk = file.read_at(pos, IO_CHUNK).await.map_err(io::Error::from)?;
        if chunk.is_empty() {
            return Ok(());
        }
        pos += chunk.len() as u64;
        f(&chunk).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        glommio::executor().yield_now().await;
    }
}

/// Decodes a whole snapshot held in memory, `IO_CHUNK` at a time with a yield in
/// between, so a large restore does not stall the shard.
pub async fn decode_yielding(bytes: &[u8]) -> Result<crate::state::Restored, SnapshotError> {
    let mut reader = SnapshotReader::new();
    for chunk in bytes.chunks(IO_CHUNK) {
        reader.feed(chunk)?;
        glommio::executor().yield_now().await;
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

async fn load(path: &Path, key: Option<(u64, u64)>) -> Result<(Loaded, u64), SmError> {
    let file = BufferedFile::open(path)
        .await
        .map_err(|e| io_err(path, "open")(e.into()))?;
    let mut reader = SnapshotReader::new();
    let mut len = 0u64;
    let mut decode_error = None;
    let read = read_chunks(&file, |chunk| {
        len += chunk.len() as u64;
        reader
            .feed(chunk)
            .inspect_err(|e| decode_error = Some(e.clone()))
    })
    .await;
    let closed = file.close().await.map_err(io::Error::from);
    if let Some(source) = decode_error {
        return Err(SmError::Corrupt {
            path: path.to_path_buf(),
            source,
        });
    }
    read.and(closed).map_err(io_err(path, "read"))?;
    let restored = reader.finish().map_err(|source| SmError::Corrupt {
        path: path.to_path_buf(),
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
