//! The node's data directory: what lives where, the identity file that pins the shard
//! count, and the lock that keeps two processes off the same directory.
//!
//! ```text
//! <data_dir>/
//!   LOCK                     advisory lock held while a node runs on this directory
//!   IDENTITY                 "shoal-data 1\nnode_id N\nshards S\n", written once, durably
//!   shard-<s>/wal/           the WAL of shard s (Raft log, vote, committed; docs/WAL.md)
//!   shard-<s>/snapshots/     durable snapshots of shard s's state (docs/SNAPSHOT.md)
//! ```
//!
//! Invariants:
//! - The shard count and node id of a data directory never change: a node started with
//!   other values refuses to start, naming both, instead of re-hashing keys onto the wrong
//!   shards or replaying a log under the wrong identity.
//! - Every file and directory created here is fsync'd, and so is its parent directory,
//!   before the node uses it.
//! - At most one process runs on a directory (`LOCK`, released when the process exits,
//!   even on kill -9).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use thiserror::Error;

const IDENTITY_FILE: &str = "IDENTITY";
const IDENTITY_FORMAT: &str = "shoal-data 1";
const LOCK_FILE: &str = "LOCK";

/// Why the data directory cannot be used.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// An I/O error on a named path.
    #[error("data directory {path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error("data directory {0} is in use by another shoal process (LOCK is held)")]
    Locked(PathBuf),
    /// The identity file disagrees with the configuration.
    #[error(
        "data directory {path} belongs to node {found_node} with {found_shards} shards, \
         but this node is configured as node {node} with {shards} shards; \
         use another --data-dir or the original settings"
    )]
    Mismatch {
        /// The directory.
        path: PathBuf,
        /// Node id on disk.
        found_node: u64,
        /// Shard count on disk.
        found_shards: usize,
        /// Configured node id.
        node: u64,
        /// Configured shard count.
        shards: usize,
    },
    /// The identity file is not one this version wrote.
    #[error("data directory {path}: unreadable IDENTITY file: {reason}")]
    BadIdentity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// A prepared, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    // Held for the life of the node: the advisory lock lives as long as this handle.
    _lock: Flock<File>,
    fresh: bool,
}

impl DataDir {
    /// Creates (or opens) `root` for node `node_id` with `shards` shards: takes the lock,
    /// writes or checks the identity, creates every shard's directories.
    pub fn prepare(root: &Path, node_id: u64, shards: usize) -> Result<DataDir, LayoutError> {
        create_dir_durably(root)?;
        let lock_path = root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path, "open lock file"))?;
        let lock = match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => return Err(LayoutError::Locked(root.into())),
            Err((_, e)) => return Err(io(&lock_path, "lock")(e.into())),
        };
        let identity = root.join(IDENTITY_FILE);
        let fresh = match fs::read_to_string(&identity) {
            Ok(text) => {
                let (found_node, found_shards) = parse_identity(&identity, &text)?;
                if found_node != node_id || found_shards != shards {
                    return Err(LayoutError::Mismatch {
                        path: root.into(),
                        found_node,
                        found_shards,
                        node: node_id,
                        shards,
                    });
                }
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = format!("{IDENTITY_FORMAT}\nnode_id {node_id}\nshards {shards}\n");
                write_durably(root, IDENTITY_FILE, text.as_bytes())?;
                true
            }
            Err(e) => return Err(io(&identity, "read identity")(e)),
        };
        let dir = DataDir {
            root: root.to_path_buf(),
            _lock: lock,
            fresh,
        };
        for s in 0..shards {
            create_dir_durably(&dir.shard_dir(s))?;
            create_dir_durably(&dir.wal_dir(s))?;
            create_dir_durably(&dir.snapshot_dir(s))?;
        }
        Ok(dir)
    }

    /// The directory's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this start created the directory's identity (a brand-new node).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// `shard-<s>/`.
    pub fn shard_dir(&self, shard: usize) -> PathBuf {
        self.root.join(format!("shard-{shard}"))
    }

    /// `shard-<s>/wal/`.
    pub fn wal_dir(&self, shard: usize) -> PathBuf {
        self.shard_dir(shard).join("wal")
    }

    /// `shard-<s>/snapshots/`.
    pub fn snapshot_dir(&self, shard: usize) -> PathBuf {
        self.shard_dir(shard).join("snapshots")
    }
}

fn parse_identity(path: &Path, text: &str) -> Result<(u64, usize), LayoutError> {
    let bad = |reason: &str| LayoutError::BadIdentity {
        path: path.into(),
        reason: reason.to_string(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(IDENTITY_FORMAT) {
        return Err(bad("unknown format line (written by another version?)"));
    }
    let mut field = |name: &str| -> Result<u64, LayoutError> {
        let line = lines.next().ok_or_else(|| bad("truncated"))?;
        let value = line
            .strip_prefix(name)
            .and_then(|v| v.strip_prefix(' '))
            .ok_or_else(|| bad(&format!("expected `{name} <n>`, found `{line}`")))?;
        value
            .parse()
            .map_err(|_| bad(&format!("`{name}` is not a number: `{value}`")))
    };
    let node = field("node_id")?;
    let shards = field("shards")?;
    let shards = usize::try_from(shards).map_err(|_| bad("shard count out of range"))?;
    Ok((node, shards))
}

/// Creates `dir` (and its parents) if missing and makes the new entry durable by syncing
/// the directory and its parent.
fn create_dir_durably(dir: &Path) -> Result<(), LayoutError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io(dir, "create directory"))?;
    sync_dir(dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes `name` in `dir` atomically and durably: temporary file, fsync, rename, fsync dir.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(io(&tmp, "create"))?;
    f.write_all(bytes).map_err(io(&tmp, "write"))?;
    f.sync_all().map_err(io(&tmp, "fsync"))?;
    fs::rename(&tmp, &path).map_err(io(&path, "rename"))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "fsync directory"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn creates_then_reopens_and_refuses_other_identities() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        let d = DataDir::prepare(&root, 1, 2).unwrap();
        assert!(d.is_fresh());
        assert!(d.wal_dir(1).is_dir() && d.snapshot_dir(0).is_dir());
        // A second process (here: a second handle) is refused while the first runs.
        assert!(matches!(
            DataDir::prepare(&root, 1, 2),
            Err(LayoutError::Locked(_))
        ));
        drop(d);
        let d = DataDir::prepare(&root, 1, 2).unwrap();
        assert!(!d.is_fresh());
        drop(d);
        let e = DataDir::prepare(&root, 1, 3).unwrap_err();
        assert!(e.to_string().contains("with 2 shards"), "{e}");
        let e = DataDir::prepare(&root, 7, 2).unwrap_err();
        assert!(
            matches!(e, LayoutError::Mismatch { found_node: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn a_damaged_identity_is_refused_with_its_reason() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(IDENTITY_FILE), "shoal-data 1\nnode_id x\n").unwrap();
        let e = DataDir::prepare(tmp.path(), 1, 1).unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
    }
}
