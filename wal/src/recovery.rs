//! The recovery scan (sans-IO): validates every record of every segment, replays
//! truncations and purges into a [`LogIndex`], and decides where the log ends.
//!
//! Rule (also in `docs/WAL.md`). Each segment is scanned from offset 0 while records are
//! valid; the scan stops at `x`: an all-zero header, an invalid record, or the segment end.
//! The WAL keeps one write in flight at a time, never lets one write carry more than
//! `max_write` new bytes, and keeps every byte past the durable end zero. So:
//! - every segment before the last one holding any non-zero byte must end cleanly: zero
//!   from `x` to its end, and `x` equal to what the next segment's start record says;
//! - in the last such segment, non-zero bytes after `x` are a torn tail only if they lie
//!   within `max_write` bytes of `x` and no valid record there says that `x` was already
//!   durable when it was written (its `durable` field is above `x`). Otherwise the data
//!   is corrupt and recovery fails, naming the segment and `x`.
//!
//! Invariants: nothing before the last durable point is dropped without an error; a cut
//! tail is always reported.

use crate::error::{Result, WalError};
use crate::index::{Loc, LogIndex};
use crate::record::{ALIGN, Decoded, HEADER_LEN, Kind, Record, decode};

/// A cut torn tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Segment file holding it.
    pub file: String,
    /// Where the valid log ends (and the cut happens).
    pub offset: u64,
    /// One past the last non-zero byte discarded.
    pub garbage_end: u64,
    /// Why the record at `offset` was not valid.
    pub reason: String,
}

/// Result of scanning one segment on its own.
#[derive(Debug)]
pub struct SegmentScan {
    /// Valid records from offset 0, in order.
    pub records: Vec<Record>,
    /// Where the valid chain stops.
    pub end: u64,
    /// Why it stopped there (`None`: all-zero header or exact end of the file).
    pub invalid: Option<&'static str>,
    /// One past the last non-zero byte at or after `end` (equal to `end` if none).
    pub garbage_end: u64,
    /// First non-zero byte at or after `end + max_write`, if any.
    pub far_garbage: Option<u64>,
    /// A valid record after `end` claiming `end` was already durable, if any.
    pub durable_witness: Option<u64>,
}

impl SegmentScan {
    /// True when the segment holds any non-zero byte.
    pub fn has_content(&self) -> bool {
        !self.records.is_empty() || self.garbage_end > self.end
    }
}

/// Scans one segment's full contents.
pub fn scan_segment(id: u64, data: &[u8], max_payload: usize, max_write: u64) -> SegmentScan {
    let mut records = Vec::new();
    let mut pos = 0u64;
    let mut invalid = None;
    while (pos as usize) < data.len() {
        match decode(id, data, 0, pos, max_payload) {
            Decoded::Valid(r) => {
                pos = r.end();
                records.push(r);
            }
            Decoded::Zero => break,
            Decoded::Invalid(why) => {
                invalid = Some(why);
                break;
            }
        }
    }
    let end = pos;
    let garbage_end = match last_nonzero(&data[end as usize..]) {
        Some(p) => end + p as u64 + 1,
        None => end,
    };
    let mut far_garbage = None;
    let mut durable_witness = None;
    if garbage_end > end {
        let window_end = (end + max_write).min(data.len() as u64);
        far_garbage = first_nonzero(&data[window_end as usize..]).map(|p| window_end + p as u64);
        // Look for a valid record inside the window written after `end` was durable.
        let mut y = end + ALIGN as u64;
        while y + HEADER_LEN as u64 <= window_end.min(garbage_end) {
            if let Decoded::Valid(r) = decode(id, data, 0, y, max_payload) {
                if u64::from(r.durable) > end {
                    durable_witness = Some(y);
                    break;
                }
            }
            y += ALIGN as u64;
        }
    }
    SegmentScan {
        records,
        end,
        invalid,
        garbage_end,
        far_garbage,
        durable_witness,
    }
}

const ZCHUNK: usize = 64;

fn is_zero(c: &[u8]) -> bool {
    // Folding with OR (no early exit) lets the compiler vectorize it.
    c.iter().fold(0u8, |a, b| a | b) == 0
}

/// Position of the last non-zero byte (zero-filled space is scanned in 64-byte chunks).
fn last_nonzero(d: &[u8]) -> Option<usize> {
    let mut end = d.len();
    while end > 0 {
        let start = end.saturating_sub(ZCHUNK);
        if !is_zero(&d[start..end]) {
            return d[start..end]
                .iter()
                .rposition(|b| *b != 0)
                .map(|p| start + p);
        }
        end = start;
    }
    None
}

/// Position of the first non-zero byte.
fn first_nonzero(d: &[u8]) -> Option<usize> {
    let mut start = 0;
    while start < d.len() {
        let end = (start + ZCHUNK).min(d.len());
        if !is_zero(&d[start..end]) {
            return d[start..end]
                .iter()
                .position(|b| *b != 0)
                .map(|p| start + p);
        }
        start = end;
    }
    None
}

/// What recovery keeps of the last segment holding data until the next one is seen.
#[derive(Debug)]
struct Pending {
    id: u64,
    file: String,
    scan: SegmentScan,
    prev_end: Option<u64>,
}

/// Replays segments in id order into a [`LogIndex`].
#[derive(Debug)]
pub struct Replay {
    max_payload: usize,
    max_write: u64,
    /// The live log so far.
    pub index: LogIndex,
    /// Valid records seen.
    pub records: u64,
    first_id: Option<u64>,
    last_content: Option<Pending>,
    expect_next: Option<u64>,
    empty: Option<(u64, String)>,
}

/// Where the log ends after replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEnd {
    /// Segment of the end (the last segment with content, else the first segment).
    pub segment: u64,
    /// Offset of the end in that segment: the next record goes here.
    pub offset: u64,
    /// The tail cut, if one was.
    pub torn: Option<TornTail>,
    /// End of the segment before `segment`, if it holds data (a new segment start record
    /// at offset 0 of `segment` must name it).
    pub prev_end: Option<u64>,
}

impl Replay {
    /// A replay with the limits the segments were written under.
    pub fn new(max_payload: usize, max_write: u64) -> Self {
        Replay {
            max_payload,
            max_write,
            index: LogIndex::default(),
            records: 0,
            first_id: None,
            last_content: None,
            expect_next: None,
            empty: None,
        }
    }

    /// Scans and replays the next segment; ids must be consecutive. Returns whether the
    /// segment holds any data.
    pub fn push(&mut self, id: u64, file: &str, data: &[u8]) -> Result<bool> {
        if let Some(next) = self.expect_next {
            if id != next {
                let why = format!("segment {next} is missing before this one");
                return Err(WalError::corruption(file, 0, why));
            }
        }
        self.expect_next = Some(id + 1);
        self.first_id.get_or_insert(id);
        self.index.note_segment(id);
        let scan = scan_segment(id, data, self.max_payload, self.max_write);
        if !scan.has_content() {
            self.empty.get_or_insert((id, file.to_string()));
            return Ok(false);
        }
        if let Some((_, ef)) = self.empty.take() {
            return Err(WalError::corruption(
                ef,
                0,
                "empty segment before a segment holding data",
            ));
        }
        let prev_end = match self.last_content.take() {
            Some(prev) => {
                check_clean(&prev)?;
                Some(prev.scan.end)
            }
            None => None,
        };
        for (i, r) in scan.records.iter().enumerate() {
            self.apply(id, file, data, i, r, prev_end)?;
        }
        self.records += scan.records.len() as u64;
        self.last_content = Some(Pending {
            id,
            file: file.to_string(),
            scan,
            prev_end,
        });
        Ok(true)
    }

    /// The last segment holding data so far, with its scan.
    pub fn last_scan(&self) -> Option<(u64, &SegmentScan)> {
        self.last_content.as_ref().map(|p| (p.id, &p.scan))
    }

    fn apply(
        &mut self,
        id: u64,
        file: &str,
        data: &[u8],
        i: usize,
        r: &Record,
        prev_end: Option<u64>,
    ) -> Result<()> {
        let bad = |why: String| Err(WalError::corruption(file, r.offset, why));
        if (i == 0) != (r.kind == Kind::SegmentStart) {
            return bad("a segment must begin with exactly one segment start record".into());
        }
        match r.kind {
            Kind::SegmentStart => {
                let p = &data[r.payload_range()];
                let Ok(b) = <[u8; 8]>::try_from(p) else {
                    return bad(format!("segment start payload of {} bytes", p.len()));
                };
                let claimed = u64::from_le_bytes(b);
                if let Some(end) = prev_end {
                    if claimed != end {
                        return bad(format!(
                            "previous segment ends at {end} but this segment says {claimed}"
                        ));
                    }
                }
                self.index.purge(r.index);
            }
            Kind::Entry => {
                let min = self.index.min_next();
                if r.index < min {
                    return bad(format!(
                        "entry index {} below the least allowed {min}",
                        r.index
                    ));
                }
                let offset = u32::try_from(r.offset)
                    .map_err(|_| WalError::corruption(file, r.offset, "offset beyond 4 GiB"))?;
                self.index.push(Loc {
                    index: r.index,
                    segment: id,
                    offset,
                    len: r.len,
                });
            }
            Kind::Truncate => {
                if r.index < self.index.floor() {
                    return bad(format!(
                        "truncation from {} below the purge floor {}",
                        r.index,
                        self.index.floor()
                    ));
                }
                self.index.truncate(r.index);
            }
            Kind::Purge => self.index.purge(r.index),
        }
        Ok(())
    }

    /// Applies the torn-tail rule to the last segment holding data and returns where
    /// the log ends.
    pub fn finish(self) -> Result<(LogIndex, LogEnd)> {
        let Some(p) = self.last_content else {
            let segment = self.first_id.unwrap_or(1);
            let end = LogEnd {
                segment,
                offset: 0,
                torn: None,
                prev_end: None,
            };
            return Ok((self.index, end));
        };
        let s = &p.scan;
        let mut torn = None;
        if s.garbage_end > s.end {
            let why = s
                .invalid
                .unwrap_or("zero header followed by non-zero bytes");
            if let Some(y) = s.durable_witness {
                return Err(WalError::corruption(
                    &p.file,
                    s.end,
                    format!("{why}; the valid record at {y} was written after this was durable"),
                ));
            }
            if let Some(f) = s.far_garbage {
                return Err(WalError::corruption(
                    &p.file,
                    s.end,
                    format!("{why}; non-zero bytes at {f}, beyond the reach of one write"),
                ));
            }
            torn = Some(TornTail {
                file: p.file.clone(),
                offset: s.end,
                garbage_end: s.garbage_end,
                reason: why.to_string(),
            });
        }
        let end = LogEnd {
            segment: p.id,
            offset: s.end,
            torn,
            prev_end: p.prev_end,
        };
        Ok((self.index, end))
    }
}

fn check_clean(p: &Pending) -> Result<()> {
    if p.scan.garbage_end > p.scan.end {
        let why = p
            .scan
            .invalid
            .unwrap_or("non-zero bytes after the last record");
        return Err(WalError::corruption(
            &p.file,
            p.scan.end,
            format!("{why}, and later segments hold data"),
        ));
    }
    Ok(())
}
