//! Record-level parsing of a v2 batch's (decompressed) records section.
//!
//! Only the cleaner (compaction) and exact timestamp lookups look inside batches; produce and
//! fetch never do. A record is `length varint` then: attributes i8, timestampDelta varlong,
//! offsetDelta varint, key (varint length, -1 = null), value (same), headers count varint,
//! headers. Lengths use zig-zag varints as in Kafka's `ByteUtils`.

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
}

impl RecordView<'_> {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
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
        let body_start = c.pos;
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
        let _ = body_start;
        self.pos = end;
        Ok(RecordView { raw: &self.buf[start..end], timestamp_delta, offset_delta, key, value })
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
