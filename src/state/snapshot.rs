//! Incremental snapshot building and streaming restore.
//!
//! Building: `State::begin_snapshot` freezes the index (copy-on-write per sub-table, see
//! `index.rs`) at the last applied log id; each `State::snapshot_step` then encodes a
//! bounded amount: one block of at most `BLOCK_TARGET_BYTES` of key and value data (plus
//! one entry), after freezing at most one sub-table (one refcount bump per entry). Writes
//! keep being applied between steps and never show up in the snapshot.
//!
//! Restoring: `SnapshotReader` takes the bytes in chunks of any size (as they arrive from
//! the leader or a file), checks every frame (CRC bound to its position, rkyv bytecheck,
//! limits, duplicate keys, trailer totals) and builds a fresh `State`. Any malformed input
//! is an error, never a panic or a partial state: `finish` only returns a state once the
//! trailer matched.

use bytes::Bytes;
use shoal_proto::limits;

use super::LogId;
use super::State;
use super::entry::Entry;
use super::error::SnapshotError;
use super::index::Index;
use super::snapshot_format::{self as fmt, BlockV1, HeaderV1, TrailerV1};

/// Progress of a snapshot being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotProgress {
    /// More steps are needed.
    More,
    /// The trailer was written: the snapshot is complete.
    Done,
}

/// What a snapshot being built covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The last log id applied when the snapshot was frozen.
    pub last_applied: Option<LogId>,
    /// Keys in the snapshot (expired ones not yet reclaimed included).
    pub keys: usize,
}

/// Empty sub-tables skipped per step at most, to bound a step over a sparse index.
const MAX_EMPTY_SUBTABLES_PER_STEP: usize = 4096;

/// State of a snapshot being built (lives inside `State`).
#[derive(Debug)]
pub(crate) struct Builder {
    info: SnapshotInfo,
    meta: Vec<u8>,
    seq: u64,
    started: bool,
    current: Vec<Entry>,
    pos: usize,
    totals: TrailerV1,
}

impl Builder {
    pub(crate) fn new(info: SnapshotInfo, meta: Vec<u8>) -> Builder {
        Builder {
            info,
            meta,
            seq: 0,
            started: false,
            current: Vec::new(),
            pos: 0,
            totals: TrailerV1 {
                entries: 0,
                blocks: 0,
                key_bytes: 0,
                value_bytes: 0,
            },
        }
    }

    pub(crate) fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.current.capacity() * size_of::<Entry>() + self.meta.capacity()
    }

    fn frame(&mut self, out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
        self.seq += 1;
        fmt::write_frame(out, self.seq, kind, payload);
    }

    /// One bounded step; appends to `out`.
    pub(crate) fn step(&mut self, index: &mut Index, out: &mut Vec<u8>) -> SnapshotProgress {
        if !self.started {
            self.started = true;
            out.extend_from_slice(&fmt::file_header());
            let l = self.info.last_applied;
            let header = HeaderV1 {
                term: l.map_or(0, |l| l.term),
                node_id: l.map_or(0, |l| l.node_id),
                index: l.map_or(0, |l| l.index),
                flags: u64::from(l.is_some()),
                meta: std::mem::take(&mut self.meta),
            };
            let payload = fmt::to_payload(&header);
            self.frame(out, fmt::KIND_HEADER, &payload);
            return SnapshotProgress::More;
        }
        let mut skipped = 0;
        while self.pos >= self.current.len() {
            // Drop the handles of the finished sub-table before freezing the next one.
            self.current = Vec::new();
            self.pos = 0;
            match index.take_next_frozen() {
                Some(next) => self.current = next,
                None => {
                    let payload = fmt::to_payload(&self.totals);
                    self.frame(out, fmt::KIND_TRAILER, &payload);
                    return SnapshotProgress::Done;
                }
            }
            skipped += 1;
            if skipped >= MAX_EMPTY_SUBTABLES_PER_STEP && self.current.is_empty() {
                return SnapshotProgress::More;
            }
        }
        let mut block = BlockV1::default();
        while self.pos < self.current.len()
            && block.data.len() < fmt::BLOCK_TARGET_BYTES
            && block.key_lens.len() < fmt::MAX_BLOCK_ENTRIES
        {
            let e = &self.current[self.pos];
            self.pos += 1;
            let (k, v) = (e.key(), e.value());
            block.expiries.push(e.expiry().unwrap_or(0));
            block.flags.push(u8::from(e.expiry().is_some()));
            block.key_lens.push(k.len() as u32);
            block.value_lens.push(v.len() as u32);
            block.data.extend_from_slice(k);
            block.data.extend_from_slice(v);
            self.totals.entries += 1;
            self.totals.key_bytes += k.len() as u64;
            self.totals.value_bytes += v.len() as u64;
        }
        self.totals.blocks += 1;
        let payload = fmt::to_payload(&block);
        self.frame(out, fmt::KIND_BLOCK, &payload);
        SnapshotProgress::More
    }
}

/// A state restored from a snapshot.
#[derive(Debug)]
pub struct Restored {
    /// The state, identical to the one the snapshot was taken of at its log id.
    pub state: State,
    /// The opaque metadata given to `begin_snapshot`.
    pub meta: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    FileHeader,
    Header,
    Blocks,
    Done,
}

/// Streaming snapshot decoder: `feed` chunks of any size, then `finish`.
#[derive(Debug)]
pub struct SnapshotReader {
    buf: Vec<u8>,
    start: usize,
    /// Stream bytes already dropped from the front of `buf`.
    consumed: u64,
    seq: u64,
    stage: Stage,
    state: State,
    meta: Bytes,
    totals: TrailerV1,
    failed: Option<SnapshotError>,
}

impl Default for SnapshotReader {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotReader {
    /// A reader expecting the start of a snapshot.
    pub fn new() -> Self {
        SnapshotReader {
            buf: Vec::new(),
            start: 0,
            consumed: 0,
            seq: 0,
            stage: Stage::FileHeader,
            state: State::new(),
            meta: Bytes::new(),
            totals: TrailerV1 {
                entries: 0,
                blocks: 0,
                key_bytes: 0,
                value_bytes: 0,
            },
            failed: None,
        }
    }

    /// Decodes one whole snapshot held in memory.
    pub fn read_all(bytes: &[u8]) -> Result<Restored, SnapshotError> {
        let mut r = SnapshotReader::new();
        r.feed(bytes)?;
        r.finish()
    }

    /// Consumes the next bytes of the snapshot; decodes every complete frame. After an
    /// error every later call returns the same error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(bytes);
        let r = self.drain();
        // Compact: drop consumed bytes so the buffer holds at most one partial frame.
        self.consumed += self.start as u64;
        self.buf.drain(..self.start);
        self.start = 0;
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        r
    }

    /// Stream offset of the first byte not yet decoded: after an error, where the file
    /// header or frame that failed starts; after a truncated stream, where the incomplete
    /// frame starts. Lets a caller name the damaged byte range of a file.
    pub fn offset(&self) -> u64 {
        self.consumed + self.start as u64
    }

    /// Ends the stream: the snapshot must be complete, with nothing after the trailer.
    pub fn finish(self) -> Result<Restored, SnapshotError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.stage != Stage::Done {
            return Err(SnapshotError::Truncated { frames: self.seq });
        }
        Ok(Restored {
            state: self.state,
            meta: self.meta,
        })
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn drain(&mut self) -> Result<(), SnapshotError> {
        loop {
            match self.stage {
                Stage::Done => {
                    let extra = self.avail().len();
                    return if extra == 0 {
                        Ok(())
                    } else {
                        Err(SnapshotError::TrailingBytes { extra })
                    };
                }
                Stage::FileHeader => {
                    let Some(h) = self.avail().first_chunk::<{ fmt::FILE_HEADER_LEN }>() else {
                        // Reject a wrong magic as soon as its bytes are there.
                        let a = self.avail();
                        if a.len() >= 8 && a[..8] != fmt::MAGIC {
                            return Err(SnapshotError::BadMagic);
                        }
                        return Ok(());
                    };
                    fmt::check_file_header(h)?;
                    self.start += fmt::FILE_HEADER_LEN;
                    self.stage = Stage::Header;
                }
                Stage::Header | Stage::Blocks => {
                    let seq = self.seq + 1;
                    let Some(h) = self.avail().first_chunk::<{ fmt::FRAME_HEADER_LEN }>() else {
                        return Ok(());
                    };
                    let head = fmt::parse_frame_head(seq, h)?;
                    let total = fmt::FRAME_HEADER_LEN + head.len;
                    if self.avail().len() < total {
                        return Ok(());
                    }
                    let payload_at = self.start + fmt::FRAME_HEADER_LEN;
                    let payload = fmt::aligned(&self.buf[payload_at..payload_at + head.len]);
                    fmt::check_frame(seq, &head, &payload)?;
                    // Advance only once the frame is accepted, so `offset` names a failed
                    // frame's start.
                    self.frame(seq, head.kind, &payload)?;
                    self.start += total;
                    self.seq = seq;
                }
            }
        }
    }

    fn frame(
        &mut self,
        seq: u64,
        kind: u8,
        payload: &rkyv::util::AlignedVec,
    ) -> Result<(), SnapshotError> {
        match (self.stage, kind) {
            (Stage::Header, fmt::KIND_HEADER) => {
                let h = fmt::access::<HeaderV1>(seq, payload)?;
                let bad = |reason| SnapshotError::InvalidEntry { frame: seq, reason };
                if h.meta.len() > fmt::MAX_META_LEN {
                    return Err(bad("metadata over MAX_META_LEN"));
                }
                match h.flags.to_native() {
                    0 => {
                        if h.term != 0 || h.node_id != 0 || h.index != 0 {
                            return Err(bad("log id fields set without the flag"));
                        }
                    }
                    1 => {
                        self.state.last_applied = Some(LogId {
                            term: h.term.to_native(),
                            node_id: h.node_id.to_native(),
                            index: h.index.to_native(),
                        })
                    }
                    _ => return Err(bad("unknown header flags")),
                }
                self.meta = Bytes::copy_from_slice(&h.meta);
                self.stage = Stage::Blocks;
                Ok(())
            }
            (Stage::Blocks, fmt::KIND_BLOCK) => self.block(seq, payload),
            (Stage::Blocks, fmt::KIND_TRAILER) => {
                let t = fmt::access::<TrailerV1>(seq, payload)?;
                let mismatch = |reason| SnapshotError::TrailerMismatch { reason };
                if t.entries != self.totals.entries {
                    return Err(mismatch("entry count"));
                }
                if t.blocks != self.totals.blocks {
                    return Err(mismatch("block count"));
                }
                if t.key_bytes != self.totals.key_bytes || t.value_bytes != self.totals.value_bytes
                {
                    return Err(mismatch("byte totals"));
                }
                self.stage = Stage::Done;
                Ok(())
            }
            _ => Err(SnapshotError::UnexpectedFrame { frame: seq, kind }),
        }
    }

    fn block(&mut self, seq: u64, payload: &rkyv::util::AlignedVec) -> Result<(), SnapshotError> {
        let b = fmt::access::<BlockV1>(seq, payload)?;
        let bad = |reason| SnapshotError::InvalidEntry { frame: seq, reason };
        let n = b.key_lens.len();
        if b.value_lens.len() != n || b.expiries.len() != n || b.flags.len() != n {
            return Err(bad("columns of different lengths"));
        }
        if n == 0 {
            return Err(bad("empty block"));
        }
        // Validate the whole block before touching the state.
        let mut total = 0usize;
        for i in 0..n {
            let (k, v) = (
                b.key_lens[i].to_native() as usize,
                b.value_lens[i].to_native() as usize,
            );
            if k > limits::MAX_KEY_LEN {
                return Err(bad("key over MAX_KEY_LEN"));
            }
            if v > limits::MAX_VALUE_LEN {
                return Err(bad("value over MAX_VALUE_LEN"));
            }
            match b.flags[i] {
                0 if b.expiries[i] != 0 => return Err(bad("expiry without the flag")),
                0 | 1 => {}
                _ => return Err(bad("unknown entry flags")),
            }
            total += k + v;
        }
        if total != b.data.len() {
            return Err(bad("data length differs from the sum of lengths"));
        }
        let mut at = 0usize;
        for i in 0..n {
            let (k, v) = (
                b.key_lens[i].to_native() as usize,
                b.value_lens[i].to_native() as usize,
            );
            let key = &b.data[at..at + k];
            let value = &b.data[at + k..at + k + v];
            at += k + v;
            let expiry = (b.flags[i] == 1).then(|| b.expiries[i].to_native());
            if !self.state.restore_entry(key, value, expiry) {
                return Err(SnapshotError::DuplicateKey { frame: seq });
            }
            self.totals.entries += 1;
            self.totals.key_bytes += k as u64;
            self.totals.value_bytes += v as u64;
        }
        self.totals.blocks += 1;
        Ok(())
    }
}
