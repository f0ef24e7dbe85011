//! Views over Kafka record batches (magic v2) as raw bytes.
//!
//! The hot path never decodes records: it reads the fixed 61-byte batch header, checks length,
//! magic and CRC32C, and stamps the fields the broker owns (base offset, partition leader epoch,
//! LogAppendTime) in place. Layout (big-endian), as in Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! 0  baseOffset i64 | 8  batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
//! 17 crc u32 (CRC32C of bytes 21..end)   | 21 attributes i16 | 23 lastOffsetDelta i32
//! 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16
//! 53 baseSequence i32  | 57 recordsCount i32 | 61 records...
//! ```

use super::LogError;

/// Size of the v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before the `batchLength` field's payload: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;
/// The only record-batch format Sluice stores.
pub const MAGIC_V2: i8 = 2;
/// Timestamp value meaning "none".
pub const NO_TIMESTAMP: i64 = -1;

const BASE_OFFSET: usize = 0;
const LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Compression codec from the batch attributes (bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Attribute bits for this codec.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Which clock a batch's timestamps come from (`message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads the total size (header included) of the batch starting at `buf`, from its first 12
/// bytes, checking that the length field can describe a v2 batch at all.
pub fn batch_size(prefix: &[u8]) -> Result<usize, LogError> {
    if prefix.len() < LOG_OVERHEAD {
        return Err(LogError::CorruptBatch("truncated batch header".into()));
    }
    let len = be_i32(prefix, LENGTH);
    if len < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(LogError::CorruptBatch(format!(
            "batch length {len} is smaller than a v2 header"
        )));
    }
    Ok(len as usize + LOG_OVERHEAD)
}

/// The magic byte of the batch starting at `prefix`, if the prefix reaches it.
pub fn magic(prefix: &[u8]) -> Option<i8> {
    prefix.get(MAGIC).map(|&b| b as i8)
}

/// The fields of a batch header that locating and indexing need, parsed from its first 61
/// bytes without the records (so scans can hop from header to header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total size of the batch in bytes, header included.
    pub size: usize,
    pub partition_leader_epoch: i32,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub attributes: i16,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (at least 61 bytes), checking length and magic.
    pub fn parse(buf: &[u8]) -> Result<Self, LogError> {
        let size = batch_size(buf)?;
        if buf.len() < HEADER_SIZE {
            return Err(LogError::CorruptBatch("truncated batch header".into()));
        }
        let magic = buf[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(LogError::UnsupportedMagic(magic));
        }
        let last_offset_delta = be_i32(buf, LAST_OFFSET_DELTA);
        if last_offset_delta < 0 {
            return Err(LogError::CorruptBatch("negative last offset delta".into()));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET),
            size,
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH),
            last_offset_delta,
            base_timestamp: be_i64(buf, BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP),
            attributes: be_i16(buf, ATTRIBUTES),
        })
    }
    // Saturating: base offsets come from disk or clients and may be garbage; recovery and
    // validation reject such batches, but computing their offsets must not overflow first.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(self.last_offset_delta as i64)
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }
}

/// A read-only view of one complete record batch.
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    buf: &'a [u8],
}

impl std::fmt::Debug for BatchView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchView")
            .field("base_offset", &self.base_offset())
            .field("last_offset", &self.last_offset())
            .field("size", &self.size())
            .field("epoch", &self.partition_leader_epoch())
            .finish()
    }
}

impl<'a> BatchView<'a> {
    /// Views the first batch in `buf`, checking header, length and magic but not the CRC.
    /// `buf` may extend past the batch.
    pub fn parse(buf: &'a [u8]) -> Result<Self, LogError> {
        let view = Self::parse_frame(buf)?;
        if view.last_offset_delta() < 0 || view.records_count() < 0 {
            return Err(LogError::CorruptBatch("negative record count or offset delta".into()));
        }
        Ok(view)
    }

    /// Length, magic and CRC only: the view of a client batch, whose counts Kafka's
    /// `LogValidator` checks with its own errors.
    pub fn parse_client(buf: &'a [u8]) -> Result<Self, LogError> {
        let view = Self::parse_frame(buf)?;
        view.verify_crc()?;
        Ok(view)
    }

    fn parse_frame(buf: &'a [u8]) -> Result<Self, LogError> {
        let size = batch_size(buf)?;
        if buf.len() < HEADER_SIZE {
            return Err(LogError::CorruptBatch("truncated batch header".into()));
        }
        if buf.len() < size {
            return Err(LogError::CorruptBatch(format!(
                "batch of {size} bytes truncated to {}",
                buf.len()
            )));
        }
        let magic = buf[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(LogError::UnsupportedMagic(magic));
        }
        Ok(BatchView { buf: &buf[..size] })
    }

    /// Like [`parse`](Self::parse), and also verifies the CRC32C.
    pub fn parse_checked(buf: &'a [u8]) -> Result<Self, LogError> {
        let view = Self::parse(buf)?;
        view.verify_crc()?;
        Ok(view)
    }

    /// Checks the stored CRC32C against the batch contents.
    pub fn verify_crc(&self) -> Result<(), LogError> {
        let stored = self.crc();
        let computed = crc32c::crc32c(&self.buf[ATTRIBUTES..]);
        if stored != computed {
            return Err(LogError::CorruptBatch(format!(
                "CRC mismatch at base offset {}: stored {stored:#010x}, computed {computed:#010x}",
                self.base_offset()
            )));
        }
        Ok(())
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }
    pub fn header(&self) -> BatchHeader {
        BatchHeader::parse(self.buf).expect("a parsed view has a valid header")
    }
    pub fn size(&self) -> usize {
        self.buf.len()
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.buf, BASE_OFFSET)
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.buf, LAST_OFFSET_DELTA)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset().saturating_add(self.last_offset_delta() as i64)
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.buf, PARTITION_LEADER_EPOCH)
    }
    pub fn crc(&self) -> u32 {
        u32::from_be_bytes(self.buf[CRC..CRC + 4].try_into().unwrap())
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.buf, ATTRIBUTES)
    }
    pub fn compression(&self) -> Result<Compression, LogError> {
        Ok(match self.attributes() & COMPRESSION_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => {
                return Err(LogError::CorruptBatch(format!("unknown compression codec {other}")))
            }
        })
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_FLAG != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_FLAG != 0
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.buf, BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.buf, MAX_TIMESTAMP)
    }
    /// The timestamp of a record of this batch with `timestamp_delta`: the append time under
    /// LogAppendTime, else the base timestamp plus the delta.
    pub fn record_timestamp(&self, timestamp_delta: i64) -> i64 {
        match self.timestamp_type() {
            TimestampType::LogAppendTime => self.max_timestamp(),
            TimestampType::CreateTime => self.base_timestamp() + timestamp_delta,
        }
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.buf, PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.buf, PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.buf, BASE_SEQUENCE)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.buf, RECORDS_COUNT)
    }
    /// The (possibly compressed) records section.
    pub fn records_payload(&self) -> &'a [u8] {
        &self.buf[HEADER_SIZE..]
    }
}

/// In-place mutation of the broker-owned header fields of one batch.
#[derive(Debug)]
pub struct BatchMut<'a> {
    buf: &'a mut [u8],
}

impl<'a> BatchMut<'a> {
    /// Wraps a buffer already validated by [`BatchView::parse`] and exactly one batch long.
    pub fn new(buf: &'a mut [u8]) -> Self {
        debug_assert!(buf.len() >= HEADER_SIZE);
        BatchMut { buf }
    }
    pub fn view(&self) -> BatchView<'_> {
        BatchView { buf: self.buf }
    }
    /// The base offset and leader epoch sit before the CRC'd range: no CRC update needed.
    pub fn set_base_offset(&mut self, offset: i64) {
        self.buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
    }
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        self.buf[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
            .copy_from_slice(&epoch.to_be_bytes());
    }
    /// Marks the batch as LogAppendTime with `now` as its max timestamp, then recomputes the CRC
    /// (both fields are inside the CRC'd range).
    pub fn set_log_append_time(&mut self, now: i64) {
        let attrs = be_i16(self.buf, ATTRIBUTES) | TIMESTAMP_TYPE_MASK;
        self.buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        self.buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.to_be_bytes());
        self.update_crc();
    }
    /// Sets the max timestamp a CreateTime batch states (its records' largest), with the CRC.
    pub fn set_max_timestamp(&mut self, max: i64) {
        self.buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max.to_be_bytes());
        self.update_crc();
    }
    /// Rewrites the fields that describe the records section after it was replaced.
    pub fn set_records_count(&mut self, count: i32) {
        self.buf[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    }
    pub fn set_length_from_buffer(&mut self) {
        let len = (self.buf.len() - LOG_OVERHEAD) as i32;
        self.buf[LENGTH..LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    }
    pub fn update_crc(&mut self) {
        let crc = crc32c::crc32c(&self.buf[ATTRIBUTES..]);
        self.buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Iterates over the complete batches in a byte range, stopping with an error at the first
/// malformed one. With `verify_crc`, each batch's CRC is checked too.
#[derive(Debug)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    verify_crc: bool,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8], verify_crc: bool) -> Self {
        BatchIter { buf, pos: 0, verify_crc, failed: false }
    }
    /// Byte position of the next batch (after the last one yielded).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(usize, BatchView<'a>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let parsed =
            if self.verify_crc { BatchView::parse_checked(rest) } else { BatchView::parse(rest) };
        match parsed {
            Ok(view) => {
                let at = self.pos;
                self.pos += view.size();
                Some(Ok((at, view)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// A record for [`build_batch`]: optional key and value.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds a v2 batch with uncompressed records, for tests, benches and internal topics.
/// Each record is `(key, value)`; timestamps are `base_timestamp` for all records.
pub fn build_batch(base_offset: i64, base_timestamp: i64, records: &[KeyValue<'_>]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut body = Vec::new();
        body.push(0u8); // record attributes
        super::record::put_varlong(&mut body, 0); // timestamp delta
        super::record::put_varint(&mut body, i as i32); // offset delta
        for field in [key, value] {
            match field {
                Some(b) => {
                    super::record::put_varint(&mut body, b.len() as i32);
                    body.extend_from_slice(b);
                }
                None => super::record::put_varint(&mut body, -1),
            }
        }
        super::record::put_varint(&mut body, 0); // headers
        super::record::put_varint(&mut payload, body.len() as i32);
        payload.extend_from_slice(&body);
    }
    let count = records.len() as i32;
    assemble_batch(
        &BatchFields {
            base_offset,
            partition_leader_epoch: -1,
            attributes: 0,
            last_offset_delta: (count - 1).max(0),
            base_timestamp,
            max_timestamp: base_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        },
        count,
        &payload,
    )
}

/// Header fields for [`assemble_batch`].
#[derive(Clone, Debug)]
pub struct BatchFields {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchFields {
    /// The header fields of an existing batch.
    pub fn of(view: &BatchView<'_>) -> Self {
        BatchFields {
            base_offset: view.base_offset(),
            partition_leader_epoch: view.partition_leader_epoch(),
            attributes: view.attributes(),
            last_offset_delta: view.last_offset_delta(),
            base_timestamp: view.base_timestamp(),
            max_timestamp: view.max_timestamp(),
            producer_id: view.producer_id(),
            producer_epoch: view.producer_epoch(),
            base_sequence: view.base_sequence(),
        }
    }
}

/// Writes a complete batch: header from `fields`, then `payload` (already compressed if the
/// attributes say so), with length and CRC computed.
pub fn assemble_batch(fields: &BatchFields, records_count: i32, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_SIZE + payload.len());
    buf.extend_from_slice(&fields.base_offset.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes()); // length, set below
    buf.extend_from_slice(&fields.partition_leader_epoch.to_be_bytes());
    buf.push(MAGIC_V2 as u8);
    buf.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    buf.extend_from_slice(&fields.attributes.to_be_bytes());
    buf.extend_from_slice(&fields.last_offset_delta.to_be_bytes());
    buf.extend_from_slice(&fields.base_timestamp.to_be_bytes());
    buf.extend_from_slice(&fields.max_timestamp.to_be_bytes());
    buf.extend_from_slice(&fields.producer_id.to_be_bytes());
    buf.extend_from_slice(&fields.producer_epoch.to_be_bytes());
    buf.extend_from_slice(&fields.base_sequence.to_be_bytes());
    buf.extend_from_slice(&records_count.to_be_bytes());
    buf.extend_from_slice(payload);
    let mut m = BatchMut::new(&mut buf);
    m.set_length_from_buffer();
    m.update_crc();
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_parses_and_passes_crc() {
        let b = build_batch(0, 1000, &[(Some(b"k"), Some(b"v")), (None, Some(b"w"))]);
        let v = BatchView::parse_checked(&b).unwrap();
        assert_eq!(v.records_count(), 2);
        assert_eq!(v.last_offset_delta(), 1);
        assert_eq!(v.compression().unwrap(), Compression::None);
    }

    #[test]
    fn stamping_offset_and_epoch_keeps_crc_valid() {
        let mut b = build_batch(0, 1000, &[(None, Some(b"v"))]);
        let mut m = BatchMut::new(&mut b);
        m.set_base_offset(42);
        m.set_partition_leader_epoch(7);
        let v = BatchView::parse_checked(&b).unwrap();
        assert_eq!((v.base_offset(), v.partition_leader_epoch()), (42, 7));
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut b = build_batch(0, 1000, &[(None, Some(b"v"))]);
        BatchMut::new(&mut b).set_log_append_time(5555);
        let v = BatchView::parse_checked(&b).unwrap();
        assert_eq!(v.max_timestamp(), 5555);
        assert_eq!(v.timestamp_type(), TimestampType::LogAppendTime);
    }

    #[test]
    fn corrupt_inputs_are_typed_errors() {
        let b = build_batch(0, 1000, &[(None, Some(b"v"))]);
        assert!(matches!(BatchView::parse(&b[..5]), Err(LogError::CorruptBatch(_))));
        assert!(matches!(BatchView::parse(&b[..40]), Err(LogError::CorruptBatch(_))));
        assert!(matches!(BatchView::parse(&b[..b.len() - 1]), Err(LogError::CorruptBatch(_))));
        let mut wrong_magic = b.clone();
        wrong_magic[16] = 1;
        assert!(matches!(BatchView::parse(&wrong_magic), Err(LogError::UnsupportedMagic(1))));
        let mut flipped = b.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(BatchView::parse_checked(&flipped), Err(LogError::CorruptBatch(_))));
        let mut absurd = b.clone();
        absurd[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(BatchView::parse(&absurd).is_err());
        let mut negative = b;
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(BatchView::parse(&negative).is_err());
    }
}
