//! Record-level parsing of a v2 batch's (decompressed) records section.
//!
//! A record is `length varint` then: attributes i8, timestampDelta varlong, offsetDelta varint,
//! key (varint length, -1 = null), value (same), headers count varint, headers. Lengths use
//! zig-zag varints as in Kafka's `ByteUtils`.
//!
//! Two readers: [`RecordStream`] walks records from any [`BufRead`] (a slice for uncompressed
//! batches, a decompressor for compressed ones) without allocating and without holding more
//! than the reader's buffer, which is what produce validation (Kafka's `LogValidator`) needs;
//! [`RecordIter`] borrows keys and values out of a section already in memory.

use std::io::BufRead;

use super::LogError;

/// One record inside a batch, borrowing the decompressed records buffer.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    /// The whole record, length prefix included: copied verbatim when the record is kept.
    pub raw: &'a [u8],
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// How many headers it has, and their bytes (checked when the record was parsed).
    pub header_count: usize,
    header_bytes: &'a [u8],
}

/// A record header: key, and value (null allowed).
pub type Header<'a> = (&'a [u8], Option<&'a [u8]>);

impl<'a> RecordView<'a> {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The record's first `max` headers, `(key, value)`.
    pub fn headers(&self, max: usize) -> Result<Vec<Header<'a>>, LogError> {
        let mut c = Cursor { buf: self.header_bytes, pos: 0 };
        (0..self.header_count.min(max))
            .map(|_| Ok((c.nullable()?.unwrap_or_default(), c.nullable()?)))
            .collect()
    }
}

/// Appends a zig-zag varint.
pub fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_varlong(buf, v as i64)
}

/// Appends a zig-zag varlong.
pub fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Result<i64, LogError> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| LogError::CorruptBatch("truncated varint in record".into()))?;
            self.pos += 1;
            z |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(LogError::CorruptBatch("varint longer than 10 bytes".into()))
    }
    fn varint(&mut self) -> Result<i32, LogError> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| LogError::CorruptBatch("varint out of i32 range".into()))
    }
    fn bytes(&mut self, len: usize) -> Result<&'a [u8], LogError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| LogError::CorruptBatch("record field overruns the batch".into()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn nullable(&mut self) -> Result<Option<&'a [u8]>, LogError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(LogError::CorruptBatch(format!("negative field length {n}"))),
            n => self.bytes(n as usize).map(Some),
        }
    }
}

/// Iterates over the records of a decompressed records section.
#[derive(Debug)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: i32,
}

impl<'a> RecordIter<'a> {
    /// `count` is the batch header's record count; the iterator fails if the section holds a
    /// different number of records.
    pub fn new(buf: &'a [u8], count: i32) -> Self {
        RecordIter { buf, pos: 0, remaining: count }
    }

    fn parse_one(&mut self) -> Result<RecordView<'a>, LogError> {
        let start = self.pos;
        let mut c = Cursor { buf: self.buf, pos: self.pos };
        let len = c.varint()?;
        if len < 0 {
            return Err(LogError::CorruptBatch(format!("negative record length {len}")));
        }
        let body = c.bytes(len as usize)?;
        let end = c.pos;
        let mut b = Cursor { buf: body, pos: 0 };
        b.bytes(1)?; // attributes
        let timestamp_delta = b.varlong()?;
        let offset_delta = b.varint()?;
        let key = b.nullable()?;
        let value = b.nullable()?;
        let headers = b.varint()?;
        if headers < 0 {
            return Err(LogError::CorruptBatch("negative header count".into()));
        }
        let headers_at = b.pos;
        for _ in 0..headers {
            let klen = b.varint()?;
            if klen < 0 {
                return Err(LogError::CorruptBatch("null header key".into()));
            }
            b.bytes(klen as usize)?;
            b.nullable()?;
        }
        if b.pos != body.len() {
            return Err(LogError::CorruptBatch("record length does not match its fields".into()));
        }
        self.pos = end;
        Ok(RecordView {
            raw: &self.buf[start..end],
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count: headers as usize,
            header_bytes: &body[headers_at..],
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            if self.remaining == 0 && self.pos != self.buf.len() {
                self.remaining = -1;
                return Some(Err(LogError::CorruptBatch(
                    "records section is longer than its record count".into(),
                )));
            }
            return None;
        }
        if self.pos >= self.buf.len() {
            self.remaining = -1;
            return Some(Err(LogError::CorruptBatch(
                "records section is shorter than its record count".into(),
            )));
        }
        self.remaining -= 1;
        let r = self.parse_one();
        if r.is_err() {
            self.remaining = -1;
        }
        Some(r)
    }
}

/// What [`RecordStream`] reads of one record, without its key, value and header bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordInfo {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// -1 for a null key.
    pub key_len: i32,
    /// -1 for a null value (a tombstone).
    pub value_len: i32,
    pub headers: i32,
    /// Bytes of the record, length prefix included.
    pub size: usize,
}

/// Why a records section could not be read: the source failed (a decompressor rejecting its
/// input), or the bytes are not the records their batch header declares. Boxed in results
/// ([`Failed`]): errors are rare, and a one-word error keeps every field read's result in
/// registers on the hot path.
#[derive(Debug)]
pub enum StreamError {
    Source(std::io::Error),
    /// `index` is the record's position in its batch (Kafka's `batch_index`).
    Structure {
        index: i32,
        reason: &'static str,
    },
}

/// A [`StreamError`] as results carry it.
pub type Failed = Box<StreamError>;

fn source(e: std::io::Error) -> Failed {
    Box::new(StreamError::Source(e))
}

/// Receives the bytes of each record as the stream reads them, so a caller can hash keys (the
/// cleaner) or copy records (recompression) without the stream buffering a record whole.
pub trait RecordTap {
    /// A new record starts: `index` is its position in the batch.
    fn begin(&mut self, _index: i32) {}
    /// A chunk of the current record's key (never called for a null key).
    fn key(&mut self, _chunk: &[u8]) {}
    /// A chunk of the current record, length prefix included; all of it, in order.
    fn raw(&mut self, _chunk: &[u8]) {}
    /// A whole record at once (length prefix included) and its key (empty for a null key):
    /// what a record read in one piece reports instead of chunks.
    fn raw_record(&mut self, record: &[u8], key: &[u8]) {
        if !key.is_empty() {
            self.key(key);
        }
        self.raw(record);
    }
}

/// Taps nothing: reading only checks structure.
impl RecordTap for () {}

/// Reads the `count` records of one records section from `src`, one at a time. Memory is the
/// source's buffer, whatever the records' sizes.
#[derive(Debug)]
pub struct RecordStream<R> {
    src: R,
    count: i32,
    index: i32,
    max_body: usize,
}

/// The error a record body above [`RecordStream::with_max_body`] gets.
pub const BODY_TOO_LARGE: &str = "the record body exceeds max.decompressed.message.bytes";

impl<R: BufRead> RecordStream<R> {
    pub fn new(src: R, count: i32) -> Self {
        RecordStream { src, count, index: 0, max_body: i32::MAX as usize }
    }

    /// Refuses records whose declared body is longer than `max` bytes (Kafka's
    /// `max.decompressed.message.bytes`, checked before the body is read).
    pub fn with_max_body(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    pub fn into_inner(self) -> R {
        self.src
    }

    /// Reads the next record into `out`; `false` after the declared count, once the section is
    /// checked to hold nothing more.
    pub fn next_record(
        &mut self,
        tap: &mut impl RecordTap,
        out: &mut RecordInfo,
    ) -> Result<bool, Failed> {
        if self.index >= self.count {
            if !self.src.fill_buf().map_err(source)?.is_empty() {
                return Err(self.structure("the records section is longer than its record count"));
            }
            return Ok(false);
        }
        // Fast path: the whole record is in the source's buffer (always for a slice, nearly
        // always for a decompressor's 16 KiB buffer and ordinary records), parsed in place.
        let index = self.index;
        tap.begin(index);
        let buf = self.src.fill_buf().map_err(source)?;
        if let Some(size) = parse_buffered(buf, index, self.max_body, tap, out)? {
            self.src.consume(size);
            self.index += 1;
            return Ok(true);
        }
        self.next_piecewise(tap, out)
    }

    /// The slow path: a record that straddles buffer refills (or a section that ends in it).
    #[inline(never)]
    fn next_piecewise(
        &mut self,
        tap: &mut impl RecordTap,
        out: &mut RecordInfo,
    ) -> Result<bool, Failed> {
        let index = self.index;
        let mut r = FieldReader { src: &mut self.src, left: usize::MAX, index, tap };
        let len = match r.varlong() {
            Err(e)
                if matches!(*e, StreamError::Structure { reason: TRUNCATED, .. })
                    && r.at_end()? =>
            {
                return Err(self.structure("the records section is shorter than its record count"))
            }
            other => other?,
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= i32::MAX as usize)
            .ok_or_else(|| r.error("invalid record length"))?;
        if len > self.max_body {
            return Err(r.error(BODY_TOO_LARGE));
        }
        let prefix = usize::MAX - r.left;
        r.left = len;
        read_fields(&mut r, prefix + len, out)?;
        self.index += 1;
        Ok(true)
    }

    #[cold]
    fn structure(&self, reason: &'static str) -> Failed {
        Box::new(StreamError::Structure { index: self.index, reason })
    }
}

const TRUNCATED: &str = "the record is truncated";

/// Something record fields can be read from: the streaming [`FieldReader`] or an in-memory
/// [`SliceFields`]; [`read_fields`] holds the record layout once for both.
trait Fields {
    fn error(&self, reason: &'static str) -> Failed;
    fn byte(&mut self) -> Result<u8, Failed>;
    fn skip(&mut self, n: usize, key: bool) -> Result<(), Failed>;
    fn left(&self) -> usize;
    fn varlong(&mut self) -> Result<i64, Failed> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            z |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(self.error("a varint is longer than 10 bytes"))
    }
    fn varint(&mut self) -> Result<i32, Failed> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| self.error("a varint is out of the i32 range"))
    }
    /// A key, value or header length: -1 (null) or more.
    fn length(&mut self) -> Result<i32, Failed> {
        match self.varint()? {
            n if n < -1 => Err(self.error("negative field length")),
            n => Ok(n),
        }
    }
}

/// Reads a record's fields after its length prefix; `size` is the record's whole size.
#[inline]
fn read_fields<F: Fields>(r: &mut F, size: usize, out: &mut RecordInfo) -> Result<(), Failed> {
    let attributes = r.byte()? as i8;
    let timestamp_delta = r.varlong()?;
    let offset_delta = r.varint()?;
    let key_len = r.length()?;
    if key_len > 0 {
        r.skip(key_len as usize, true)?;
    }
    let value_len = r.length()?;
    if value_len > 0 {
        r.skip(value_len as usize, false)?;
    }
    let headers = r.varint()?;
    if headers < 0 {
        return Err(r.error("negative header count"));
    }
    for _ in 0..headers {
        match r.length()? {
            -1 => return Err(r.error("null header key")),
            n => r.skip(n as usize, false)?,
        }
        let n = r.length()?;
        if n > 0 {
            r.skip(n as usize, false)?;
        }
    }
    if r.left() != 0 {
        return Err(r.error("the record length does not match its fields"));
    }
    *out =
        RecordInfo { attributes, timestamp_delta, offset_delta, key_len, value_len, headers, size };
    Ok(())
}

/// Parses the record at the start of `buf` if all of it is there: `Ok(None)` when `buf` ends
/// before the record does (the caller then reads it piecewise).
#[inline]
fn parse_buffered<T: RecordTap>(
    buf: &[u8],
    index: i32,
    max_body: usize,
    tap: &mut T,
    out: &mut RecordInfo,
) -> Result<Option<usize>, Failed> {
    let mut prefix = SliceFields { buf, pos: 0, end: buf.len(), index, key: (0, 0) };
    let len = match prefix.varlong() {
        Ok(len) => len,
        Err(_) if buf.len() < 10 => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = match usize::try_from(len).ok().filter(|&l| l <= i32::MAX as usize) {
        Some(len) => len,
        None => return Err(prefix.error("invalid record length")),
    };
    if len > max_body {
        return Err(prefix.error(BODY_TOO_LARGE));
    }
    let start = prefix.pos;
    let Some(end) = start.checked_add(len).filter(|&e| e <= buf.len()) else {
        return Ok(None);
    };
    let mut r = SliceFields { buf, pos: start, end, index, key: (0, 0) };
    read_fields(&mut r, end, out)?;
    tap.raw_record(&buf[..end], &buf[r.key.0..r.key.1]);
    Ok(Some(end))
}

/// Record fields read from memory, bounded by the record's length.
struct SliceFields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    index: i32,
    /// Where the key lies, for the tap.
    key: (usize, usize),
}

impl Fields for SliceFields<'_> {
    #[cold]
    fn error(&self, reason: &'static str) -> Failed {
        Box::new(StreamError::Structure { index: self.index, reason })
    }
    #[inline(always)]
    fn varlong(&mut self) -> Result<i64, Failed> {
        let bytes = &self.buf[self.pos..self.end];
        let mut z: u64 = 0;
        for (i, &b) in bytes.iter().take(10).enumerate() {
            z |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                self.pos += i + 1;
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(if bytes.len() >= 10 {
            self.error("a varint is longer than 10 bytes")
        } else if self.end == self.buf.len() {
            self.error(TRUNCATED)
        } else {
            self.error("a record field overruns the record")
        })
    }
    #[inline]
    fn byte(&mut self) -> Result<u8, Failed> {
        if self.pos >= self.end {
            return Err(self.error(if self.end == self.buf.len() {
                TRUNCATED
            } else {
                "a record field overruns the record"
            }));
        }
        self.pos += 1;
        Ok(self.buf[self.pos - 1])
    }
    #[inline]
    fn skip(&mut self, n: usize, key: bool) -> Result<(), Failed> {
        if n > self.end - self.pos {
            return Err(self.error("a record field overruns the record"));
        }
        if key {
            self.key = (self.pos, self.pos + n);
        }
        self.pos += n;
        Ok(())
    }
    fn left(&self) -> usize {
        self.end - self.pos
    }
}

/// Reads one record's fields, counting down the bytes its length prefix allows.
struct FieldReader<'s, R, T> {
    src: &'s mut R,
    left: usize,
    index: i32,
    tap: &'s mut T,
}

impl<R: BufRead, T: RecordTap> FieldReader<'_, R, T> {
    fn at_end(&mut self) -> Result<bool, Failed> {
        Ok(self.left == usize::MAX && self.src.fill_buf().map_err(source)?.is_empty())
    }
}

impl<R: BufRead, T: RecordTap> Fields for FieldReader<'_, R, T> {
    fn error(&self, reason: &'static str) -> Failed {
        Box::new(StreamError::Structure { index: self.index, reason })
    }
    fn byte(&mut self) -> Result<u8, Failed> {
        if self.left == 0 {
            return Err(self.error("a record field overruns the record"));
        }
        let b = match self.src.fill_buf().map_err(source)?.first() {
            Some(&b) => b,
            None => return Err(self.error(TRUNCATED)),
        };
        self.tap.raw(&[b]);
        self.src.consume(1);
        self.left -= 1;
        Ok(b)
    }
    fn skip(&mut self, mut n: usize, key: bool) -> Result<(), Failed> {
        if n > self.left {
            return Err(self.error("a record field overruns the record"));
        }
        self.left -= n;
        while n > 0 {
            let buf = self.src.fill_buf().map_err(source)?;
            if buf.is_empty() {
                return Err(self.error(TRUNCATED));
            }
            let take = n.min(buf.len());
            if key {
                self.tap.key(&buf[..take]);
            }
            self.tap.raw(&buf[..take]);
            self.src.consume(take);
            n -= take;
        }
        Ok(())
    }
    fn left(&self) -> usize {
        self.left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{build_batch, BatchView};

    #[test]
    fn varint_round_trips() {
        for v in
            [0i64, 1, -1, 63, -64, 64, 300, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN]
        {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            let mut c = Cursor { buf: &buf, pos: 0 };
            assert_eq!(c.varlong().unwrap(), v);
            assert_eq!(c.pos, buf.len());
        }
    }

    #[test]
    fn parses_keys_values_and_tombstones() {
        let b = build_batch(0, 0, &[(Some(b"a"), Some(b"1")), (Some(b"b"), None)]);
        let v = BatchView::parse_checked(&b).unwrap();
        let recs: Vec<_> = RecordIter::new(v.records_payload(), v.records_count())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].key, Some(&b"a"[..]));
        assert_eq!(recs[1].offset_delta, 1);
        assert!(recs[1].is_tombstone());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let b = build_batch(0, 0, &[(Some(b"a"), Some(b"1"))]);
        let v = BatchView::parse(&b).unwrap();
        let payload = v.records_payload();
        for cut in 0..payload.len() {
            let r: Result<Vec<_>, _> = RecordIter::new(&payload[..cut], 1).collect();
            assert!(r.is_err());
        }
        let r: Result<Vec<_>, _> = RecordIter::new(payload, 2).collect();
        assert!(r.is_err());
        let r: Result<Vec<_>, _> = RecordIter::new(&[0xff; 12], 1).collect();
        assert!(r.is_err());
    }
}
