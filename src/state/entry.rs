//! One stored key: key, value and expiry in ONE reference-counted, immutable allocation.
//!
//! Layout of the allocation (a `triomphe::ThinArc<(), u8>`, so the handle is 8 bytes):
//!
//! ```text
//! [refcount: u64][slice length: u64]                     <- triomphe's prefix (16 bytes)
//! [tag: u16 LE] = key_len | HAS_TTL << 15
//! if HAS_TTL: [expire_at_ms: u64 LE][timer id: u32 LE]
//! [key bytes][value bytes]
//! ```
//!
//! Invariants: an `Entry` that anyone but its one index slot can see never changes
//! (readers may hold its value as a `Bytes` while the key is overwritten; snapshot copies
//! and timers hold handles too). The one exception is `overwrite_value_in_place`, which
//! rewrites the value bytes only while the reference count is 1, that is while the caller
//! holds the only handle (so no reader, snapshot or timer can observe the change), and
//! only for a same-length value of an entry without TTL. Keys are at most `limits::MAX_KEY_LEN` bytes, so
//! the length fits the tag's 15 bits; only keys with a TTL pay the 12 bytes of expiry and
//! timer id; the bytes are always copied in, so an entry never pins a network or WAL buffer.

use std::mem::MaybeUninit;

use bytes::Bytes;
use shoal_proto::limits;
use triomphe::{Arc, HeaderSlice, HeaderWithLength, ThinArc, UniqueArc};

use super::ttl_wheel::TimerId;

const HAS_TTL: u16 = 1 << 15;
const TAG_LEN: usize = 2;
const TTL_LEN: usize = 12;

// The key length must fit in the tag next to the flag bit.
const _: () = assert!(limits::MAX_KEY_LEN < HAS_TTL as usize);

/// Bytes triomphe puts before the slice (refcount + length).
pub(crate) const ARC_PREFIX: usize = 16;

/// A stored key and its value (and expiry). Cloning bumps a reference count.
#[derive(Clone)]
pub struct Entry(ThinArc<(), u8>);

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key_len", &self.key().len())
            .field("value_len", &self.value().len())
            .field("expiry", &self.expiry())
            .finish()
    }
}

/// Keeps an entry alive for a `Bytes` that views its value.
struct ValueOwner {
    entry: Entry,
}

impl AsRef<[u8]> for ValueOwner {
    fn as_ref(&self) -> &[u8] {
        self.entry.value()
    }
}

impl Entry {
    /// Builds an entry, copying `key` and `value` into one new allocation. The caller has
    /// checked the limits (`Command::validate`).
    pub(crate) fn new(key: &[u8], value: &[u8], ttl: Option<(u64, TimerId)>) -> Entry {
        assert!(
            key.len() <= limits::MAX_KEY_LEN,
            "key length checked before Entry::new"
        );
        let meta = if ttl.is_some() {
            TAG_LEN + TTL_LEN
        } else {
            TAG_LEN
        };
        let len = meta + key.len() + value.len();
        let mut tag = key.len() as u16;
        let mut head = [0u8; TAG_LEN + TTL_LEN];
        if let Some((expire_at, timer)) = ttl {
            tag |= HAS_TTL;
            head[2..10].copy_from_slice(&expire_at.to_le_bytes());
            head[10..14].copy_from_slice(&timer.0.to_le_bytes());
        }
        head[..2].copy_from_slice(&tag.to_le_bytes());
        let mut arc: UniqueArc<HeaderSlice<HeaderWithLength<()>, [MaybeUninit<u8>]>> =
            UniqueArc::from_header_and_uninit_slice(HeaderWithLength::new((), len), len);
        let slice = &mut arc.slice;
        write_bytes(&mut slice[..meta], &head[..meta]);
        write_bytes(&mut slice[meta..meta + key.len()], key);
        write_bytes(&mut slice[meta + key.len()..], value);
        Entry(Arc::into_thin(assume_init(arc).shareable()))
    }

    #[inline]
    fn tag(&self) -> u16 {
        let s = &self.0.slice;
        u16::from_le_bytes([s[0], s[1]])
    }

    #[inline]
    fn meta_len(&self) -> usize {
        if self.tag() & HAS_TTL != 0 {
            TAG_LEN + TTL_LEN
        } else {
            TAG_LEN
        }
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        let start = self.meta_len();
        let key_len = usize::from(self.tag() & !HAS_TTL);
        &self.0.slice[start..start + key_len]
    }

    /// The value, borrowed.
    #[inline]
    pub fn value(&self) -> &[u8] {
        let start = self.meta_len() + usize::from(self.tag() & !HAS_TTL);
        &self.0.slice[start..]
    }

    /// The value as a zero-copy `Bytes` that keeps this entry alive.
    pub fn value_bytes(&self) -> Bytes {
        if self.value().is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(ValueOwner {
            entry: self.clone(),
        })
    }

    /// Replaces the value with `value` in this allocation, when that is unobservable:
    /// this handle is the only one (reference count 1: no `Bytes`/`Value` handed to a
    /// reader, no snapshot copy, no timer), the entry has no TTL, and `value` has the
    /// length of the stored value (the allocation's size is fixed). Returns false, and
    /// changes nothing, otherwise. Saves an overwrite the allocation of a new entry and
    /// the free of the old one.
    #[inline]
    pub(crate) fn overwrite_value_in_place(&mut self, value: &[u8]) -> bool {
        let tag = self.tag();
        if tag & HAS_TTL != 0 {
            return false;
        }
        let start = TAG_LEN + usize::from(tag);
        if self.0.slice.len() - start != value.len() {
            return false;
        }
        // `get_mut` checks the reference count (an acquire load, no atomic write): with
        // `&mut self` and a count of 1, no other handle exists or can be made meanwhile.
        self.0.with_arc_mut(|arc| match Arc::get_mut(arc) {
            Some(inner) => {
                inner.slice_mut()[start..].copy_from_slice(value);
                true
            }
            None => false,
        })
    }

    /// Absolute expiry in ms, if the key has a TTL.
    #[inline]
    pub fn expiry(&self) -> Option<u64> {
        self.ttl_field(2..10)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    /// The id of the timer that reclaims this entry, if it has a TTL.
    #[inline]
    pub(crate) fn timer(&self) -> Option<TimerId> {
        self.ttl_field(10..14)
            .map(|b| TimerId(u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))))
    }

    #[inline]
    fn ttl_field(&self, range: std::ops::Range<usize>) -> Option<&[u8]> {
        if self.tag() & HAS_TTL == 0 {
            return None;
        }
        Some(&self.0.slice[range])
    }

    /// True when the key is invisible at `now_ms` (visible exactly while now < expiry).
    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expiry().is_some_and(|at| now_ms >= at)
    }

    /// Bytes requested from the allocator for this entry (the layout triomphe asks for:
    /// prefix + slice rounded up to the 8-byte alignment).
    pub(crate) fn alloc_size(&self) -> usize {
        (ARC_PREFIX + self.0.slice.len()).next_multiple_of(8)
    }

    /// Bytes of the allocation that are neither key nor value.
    pub(crate) fn overhead(&self) -> usize {
        self.alloc_size() - self.key().len() - self.value().len()
    }

    /// Same allocation (not merely equal bytes).
    #[inline]
    pub(crate) fn same(&self, other: &Entry) -> bool {
        self.0.heap_ptr() == other.0.heap_ptr()
    }
}

/// A stored value, handed out by reference count: no copy, no allocation. Derefs to the
/// value's bytes; stays valid after the key is overwritten or deleted.
#[derive(Clone)]
pub struct Value(Entry);

impl Value {
    pub(crate) fn new(entry: Entry) -> Value {
        Value(entry)
    }

    /// The value as a zero-copy `Bytes` (allocates a small owner box).
    pub fn into_bytes(self) -> Bytes {
        self.0.value_bytes()
    }
}

impl std::ops::Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.value()
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

impl From<Value> for Bytes {
    fn from(v: Value) -> Bytes {
        v.into_bytes()
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Value")
            .field(&Bytes::copy_from_slice(self.0.value()))
            .finish()
    }
}

/// Initializes `dst` from `src` (same length); `<[MaybeUninit]>::write_copy_of_slice`
/// needs Rust 1.93, above the workspace MSRV. The loop compiles to a memcpy.
fn write_bytes(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    for (d, s) in dst.iter_mut().zip(src) {
        d.write(*s);
    }
}

#[allow(unsafe_code)]
fn assume_init(
    arc: UniqueArc<HeaderSlice<HeaderWithLength<()>, [MaybeUninit<u8>]>>,
) -> UniqueArc<HeaderSlice<HeaderWithLength<()>, [u8]>> {
    // SAFETY: the only caller, `Entry::new`, has written every byte of the slice: the
    // three `write_bytes` calls cover [0, meta), [meta, meta+key) and [meta+key, len)
    // and assert their lengths match, so a mismatch panics before we get here.
    unsafe { arc.assume_init_slice_with_header() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let e = Entry::new(b"key", b"value", None);
        assert_eq!(e.key(), b"key");
        assert_eq!(e.value(), b"value");
        assert_eq!(e.expiry(), None);
        assert_eq!(e.timer(), None);
        assert!(!e.is_expired(u64::MAX));
        assert_eq!(e.alloc_size(), (16 + 2 + 8usize).next_multiple_of(8));

        let t = Entry::new(b"", b"v", Some((1234, TimerId(7))));
        assert_eq!(t.key(), b"");
        assert_eq!(t.value(), b"v");
        assert_eq!(t.expiry(), Some(1234));
        assert_eq!(t.timer(), Some(TimerId(7)));
        assert!(!t.is_expired(1233));
        assert!(t.is_expired(1234));
    }

    #[test]
    fn value_bytes_outlives_the_entry_handle() {
        let e = Entry::new(b"k", b"hello", None);
        let v = e.value_bytes();
        drop(e);
        assert_eq!(&v[..], b"hello");
    }

    #[test]
    fn overwrite_in_place_only_when_unobservable() {
        let mut e = Entry::new(b"key", b"hello", None);
        let ptr = e.0.heap_ptr();
        assert!(e.overwrite_value_in_place(b"world"));
        assert_eq!((e.key(), e.value()), (&b"key"[..], &b"world"[..]));
        assert_eq!(e.0.heap_ptr(), ptr, "same allocation");
        // A reader's handle pins the old bytes: no in-place write.
        let reader = e.value_bytes();
        assert!(!e.overwrite_value_in_place(b"xxxxx"));
        assert_eq!(&reader[..], b"world");
        assert_eq!(e.value(), b"world");
        drop(reader);
        let value = Value::new(e.clone());
        assert!(!e.overwrite_value_in_place(b"yyyyy"));
        assert_eq!(&value[..], b"world");
        drop(value);
        // Another length, or a TTL entry: never in place.
        assert!(!e.overwrite_value_in_place(b"four"));
        assert!(!e.overwrite_value_in_place(b"sixsix"));
        assert_eq!(e.value(), b"world");
        let mut t = Entry::new(b"key", b"hello", Some((5, TimerId(1))));
        assert!(!t.overwrite_value_in_place(b"world"));
        assert_eq!(t.value(), b"hello");
        // Empty values work too.
        let mut z = Entry::new(b"k", b"", None);
        assert!(z.overwrite_value_in_place(b""));
        assert!(e.overwrite_value_in_place(b"again"));
        assert_eq!(e.value(), b"again");
    }

    #[test]
    fn max_key_fits() {
        let key = vec![9u8; limits::MAX_KEY_LEN];
        let e = Entry::new(&key, b"x", Some((1, TimerId(0))));
        assert_eq!(e.key(), &key[..]);
        assert_eq!(e.value(), b"x");
    }
}
