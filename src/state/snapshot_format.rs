//! Byte format of a snapshot: file header, checksummed frames, rkyv payloads.
//! `docs/SNAPSHOT.md` documents it byte by byte; keep the two in step.
//!
//! ```text
//! file header (16 B): "SHOALSNP" | u32 LE version = 1 | u32 LE crc32(bytes 0..12)
//! frame (12 B header + payload):
//!   u32 LE payload_len | u8 kind | 3 zero bytes | u32 LE crc
//!   crc = crc32(u64 LE frame sequence number | header bytes 0..8 | payload)
//! frames: Header (kind 1), then Block (kind 2) * n, then Trailer (kind 3), then nothing.
//! ```
//!
//! Invariants: the CRC binds each frame to its position (sequence number), so a valid
//! frame moved, dropped or repeated is detected; a payload is at most
//! `MAX_FRAME_PAYLOAD` bytes, checked before anything is buffered for it; payloads are
//! rkyv archives validated with bytecheck (`rkyv::access`) after the CRC passes; every
//! decoding path returns `SnapshotError`, never panics.

use rkyv::rancor;
use rkyv::util::AlignedVec;
use shoal_proto::limits;

use super::error::SnapshotError;

/// First 8 bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"SHOALSNP";
/// Format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 16;
/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = 12;
/// Target payload bytes of key and value data per block; a block holds at least one
/// entry, so it may exceed this by one entry.
pub const BLOCK_TARGET_BYTES: usize = 256 * 1024;
/// Most entries in one block, so the columns stay bounded whatever the entry sizes.
pub const MAX_BLOCK_ENTRIES: usize = 64 * 1024;
/// Largest payload a frame may announce: a block of target size plus one largest entry,
/// with room for the rkyv columns.
pub const MAX_FRAME_PAYLOAD: usize = 4 * 1024 * 1024;
/// Largest opaque metadata blob (e.g. the Raft membership) in the header.
pub const MAX_META_LEN: usize = 64 * 1024;

// A block: data up to the target plus one largest entry, 17 bytes of columns per entry
// (expiry 8, lengths 4 + 4, flags 1) and the 40-byte root, always fits a frame, so the
// writer's assert cannot fire whatever the keys.
const _: () = assert!(
    BLOCK_TARGET_BYTES + limits::MAX_KEY_LEN + limits::MAX_VALUE_LEN + MAX_BLOCK_ENTRIES * 17 + 64
        < MAX_FRAME_PAYLOAD
);

/// Frame kinds.
pub const KIND_HEADER: u8 = 1;
/// A block of entries.
pub const KIND_BLOCK: u8 = 2;
/// The trailer, last frame.
pub const KIND_TRAILER: u8 = 3;

/// Header payload. `flags` bit 0: `last_applied` present (term, node_id, index valid).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct HeaderV1 {
    pub term: u64,
    pub node_id: u64,
    pub index: u64,
    pub flags: u64,
    pub meta: Vec<u8>,
}

/// A block of entries in columns; entry `i` is `key_lens[i]` key bytes then
/// `value_lens[i]` value bytes, consecutive in `data`. `flags[i]` bit 0: has expiry
/// `expiries[i]` (else `expiries[i]` is 0).
#[derive(
    Debug, Clone, PartialEq, Eq, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct BlockV1 {
    pub expiries: Vec<u64>,
    pub key_lens: Vec<u32>,
    pub value_lens: Vec<u32>,
    pub flags: Vec<u8>,
    pub data: Vec<u8>,
}

/// Trailer payload: totals over every block, checked by the reader.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TrailerV1 {
    pub entries: u64,
    pub blocks: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
}

/// The file header.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a file header.
pub fn check_file_header(h: &[u8; FILE_HEADER_LEN]) -> Result<(), SnapshotError> {
    if h[..8] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if crc != crc32fast::hash(&h[..12]) {
        return Err(SnapshotError::Checksum { frame: 0 });
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    Ok(())
}

fn frame_crc(seq: u64, head: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(head);
    h.update(payload);
    h.finalize()
}

/// Appends frame number `seq` of `kind` holding `payload`.
pub fn write_frame(out: &mut Vec<u8>, seq: u64, kind: u8, payload: &[u8]) {
    assert!(
        payload.len() <= MAX_FRAME_PAYLOAD,
        "writer keeps frames within the limit"
    );
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[4] = kind;
    out.extend_from_slice(&head);
    out.extend_from_slice(&frame_crc(seq, &head, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
pub struct FrameHead {
    pub len: usize,
    pub kind: u8,
    crc: u32,
    head: [u8; 8],
}

/// Parses frame header number `seq`; checks the length limit and reserved bytes.
pub fn parse_frame_head(seq: u64, b: &[u8; FRAME_HEADER_LEN]) -> Result<FrameHead, SnapshotError> {
    let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if len > MAX_FRAME_PAYLOAD {
        return Err(SnapshotError::FrameTooLarge {
            frame: seq,
            len: len as u64,
            max: MAX_FRAME_PAYLOAD as u64,
        });
    }
    if b[5..8] != [0, 0, 0] {
        return Err(SnapshotError::Checksum { frame: seq });
    }
    let mut head = [0u8; 8];
    head.copy_from_slice(&b[..8]);
    Ok(FrameHead {
        len,
        kind: b[4],
        crc: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        head,
    })
}

/// Checks the CRC of frame `seq` once its payload is in hand.
pub fn check_frame(seq: u64, head: &FrameHead, payload: &[u8]) -> Result<(), SnapshotError> {
    if frame_crc(seq, &head.head, payload) != head.crc {
        return Err(SnapshotError::Checksum { frame: seq });
    }
    Ok(())
}

/// Serializes a payload with rkyv.
pub fn to_payload<T>(value: &T) -> AlignedVec
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rancor::Error,
            >,
        >,
{
    match rkyv::to_bytes::<rancor::Error>(value) {
        Ok(bytes) => bytes,
        // Serializing plain vectors into memory only fails if allocation fails, which
        // aborts first; a failure here is a bug in this module.
        Err(e) => panic!("rkyv serialization of a snapshot payload failed: {e}"),
    }
}

/// Copies `payload` into an aligned buffer (frames sit at arbitrary offsets) and checks
/// it is a valid archive of `T`.
pub fn aligned(payload: &[u8]) -> AlignedVec {
    let mut v = AlignedVec::with_capacity(payload.len());
    v.extend_from_slice(payload);
    v
}

/// Validated access to an archived `T` in `buf`.
pub fn access<'a, T>(frame: u64, buf: &'a AlignedVec) -> Result<&'a T::Archived, SnapshotError>
where
    T: rkyv::Archive,
    T::Archived: rkyv::Portable
        + for<'b> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'b, rancor::Error>>,
{
    rkyv::access::<T::Archived, rancor::Error>(buf).map_err(|e| SnapshotError::InvalidPayload {
        frame,
        reason: e.to_string(),
    })
}
