//! Validation of client batches before they are appended: Kafka's `LogValidator` for magic v2.
//!
//! The batch header is checked first (record count against the offset range, no control batches
//! from clients, a sequence for idempotent batches, a known codec); then every record is read
//! through [`RecordStream`]: structure (varint lengths, field lengths, header counts, the record
//! length against its fields, nothing after the last record), offset deltas 0..count, a key on
//! compacted topics, and CreateTime timestamps within `message.timestamp.before.max.ms` /
//! `message.timestamp.after.max.ms` of the broker's clock. Problems with single records are
//! reported record by record (the `record_errors` of Produce v8+), as Kafka does.
//!
//! Cost: uncompressed batches are read in place (no copy, no allocation); compressed ones go
//! through a streaming decompressor, so memory is a small buffer whatever the batch inflates
//! to. Nothing is allocated per record; an error list is built only for a batch being refused.

use std::io::BufRead;

use std::io::Write;

use super::batch::{
    assemble_batch, BatchFields, BatchView, Compression, TimestampType, HEADER_SIZE, NO_TIMESTAMP,
};
use super::compression::{Compressor, RecordsReader};
use super::record::{RecordInfo, RecordStream, RecordTap, StreamError};
use super::{LogConfig, LogError, RecordError};

/// Record errors listed for one refused batch; the batch is refused whatever follows, so
/// validation stops there (a crafted batch of millions of bad records stays cheap to answer).
pub const MAX_RECORD_ERRORS: usize = 1000;

/// Who wrote a batch the leader appends (Kafka's `AppendOrigin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: every check applies.
    Client,
    /// The broker's own coordinators (group offsets): trusted timestamps, which come from the
    /// coordinator's clock (injected in tests) rather than the client's.
    Coordinator,
}

/// The topic settings and broker time a client batch is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// `cleanup.policy` contains `compact`: every record needs a key.
    pub compacted: bool,
    /// `message.timestamp.type=LogAppendTime`: record timestamps are replaced, not checked.
    pub log_append_time: bool,
    /// Broker time, for the timestamp bounds.
    pub now_ms: i64,
    /// Check timestamps against `message.timestamp.before/after.max.ms`.
    pub check_timestamps: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// Bound of one decompressed block where a codec has blocks (snappy).
    pub decompress_limit: usize,
    /// `max.decompressed.message.bytes`: the largest record body of a compressed batch.
    pub max_record_body: usize,
}

impl Rules {
    pub fn new(config: &LogConfig, now_ms: i64, origin: AppendOrigin) -> Self {
        Rules {
            compacted: config.cleanup_policy.compacts(),
            log_append_time: config.log_append_time,
            now_ms,
            check_timestamps: origin == AppendOrigin::Client,
            timestamp_before_max_ms: config.timestamp_before_max_ms,
            timestamp_after_max_ms: config.timestamp_after_max_ms,
            decompress_limit: config.decompress_limit(),
            max_record_body: usize::try_from(config.max_decompressed_message_bytes)
                .unwrap_or(usize::MAX),
        }
    }
}

/// What validation learnt about an accepted batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Largest record timestamp (CreateTime), which the header's max timestamp must state.
    pub max_timestamp: i64,
}

fn invalid(message: String) -> LogError {
    LogError::InvalidRecord { message, record_errors: Vec::new() }
}

/// Checks one client batch (CRC already verified) of the partition `partition`.
pub fn validate_client_batch(
    view: &BatchView<'_>,
    rules: &Rules,
    partition: &dyn std::fmt::Display,
) -> Result<Checked, LogError> {
    validate_and_recompress(view, rules, partition, None).map(|(checked, _)| checked)
}

/// The topic's `compression.type` when it names a codec: batches are rewritten into it.
#[derive(Clone, Copy, Debug)]
pub struct Recompression {
    pub codec: Compression,
    /// `compression.<codec>.level`, for the codecs that have one.
    pub level: Option<i32>,
    /// `max.message.bytes`: the rewritten batch must fit it (else MESSAGE_TOO_LARGE).
    pub max_bytes: usize,
}

/// [`validate_client_batch`], and with `into` the batch rewritten in that codec in the same
/// pass over its records, as Kafka recompresses: the same records byte for byte (offset and
/// timestamp deltas unchanged), the same header fields but the codec bits, length, count, max
/// timestamp and CRC. The output is refused as it grows past `max_bytes`, not built whole.
pub fn validate_and_recompress(
    view: &BatchView<'_>,
    rules: &Rules,
    partition: &dyn std::fmt::Display,
    into: Option<&Recompression>,
) -> Result<(Checked, Option<Vec<u8>>), LogError> {
    let count = view.records_count();
    if view.base_offset() != 0 {
        return Err(invalid(format!(
            "The baseOffset of the record batch in the append to {partition} should be 0, but \
             it is {}",
            view.base_offset()
        )));
    }
    if view.last_offset_delta() < 0 {
        return Err(invalid(format!(
            "Batch has an invalid offset range: [0, {}] in topic partition {partition}",
            view.last_offset_delta()
        )));
    }
    if count <= 0 {
        return Err(invalid(format!(
            "Invalid reported count for record batch: {count} in topic partition {partition}"
        )));
    }
    if view.last_offset_delta() as i64 + 1 != count as i64 {
        return Err(invalid(format!(
            "Inconsistent batch offset range [0, {}] and count of records {count} in topic \
             partition {partition}",
            view.last_offset_delta()
        )));
    }
    if view.is_control() {
        return Err(invalid(format!(
            "Clients are not allowed to write control records in topic partition {partition}"
        )));
    }
    if view.producer_id() >= 0 && view.base_sequence() < 0 {
        return Err(invalid(format!(
            "Invalid sequence number {} in record batch with producerId {} in topic partition \
             {partition}",
            view.base_sequence(),
            view.producer_id()
        )));
    }
    // Kafka answers an unknown codec with UNKNOWN_SERVER_ERROR (an uncaught exception);
    // INVALID_RECORD says what is wrong and, unlike CORRUPT_MESSAGE, is not retried.
    let codec = view.compression().map_err(|_| {
        invalid(format!(
            "Unknown compression type id {} in topic partition {partition}",
            view.attributes() & 0x07
        ))
    })?;
    let Some(into) = into else {
        return read_records(view, codec, rules, partition, &mut ()).map(|c| (c, None));
    };
    let out = Compressor::with_level(into.codec, into.level, view.size())?;
    let max = into.max_bytes.saturating_sub(HEADER_SIZE);
    let mut tap = Recompress { out, max, failed: None };
    let checked = read_records(view, codec, rules, partition, &mut tap)?;
    if let Some(e) = tap.failed {
        return Err(e);
    }
    let records = tap.out.finish()?;
    let mut fields = BatchFields {
        attributes: (view.attributes() & !0x07) | into.codec.id(),
        ..BatchFields::of(view)
    };
    if !rules.log_append_time {
        fields.max_timestamp = checked.max_timestamp;
    }
    let batch = assemble_batch(&fields, count, &records);
    if batch.len() > into.max_bytes {
        return Err(LogError::BatchTooLarge { size: batch.len(), max: into.max_bytes });
    }
    Ok((checked, Some(batch)))
}

/// Reads every record of the batch once, checking it, with `tap` seeing its bytes.
fn read_records<T: RecordTap>(
    view: &BatchView<'_>,
    codec: Compression,
    rules: &Rules,
    partition: &dyn std::fmt::Display,
    tap: &mut T,
) -> Result<Checked, LogError> {
    let count = view.records_count();
    let payload = view.records_payload();
    if codec == Compression::None {
        // A slice is its own buffered reader: records are checked where they lie.
        return check_records(&mut RecordStream::new(payload, count), view, rules, partition, tap);
    }
    let reader = RecordsReader::new(codec, payload, rules.decompress_limit)
        .map_err(|e| undecodable(codec, &e, partition))?;
    let mut stream = RecordStream::new(reader, count).with_max_body(rules.max_record_body);
    let checked = check_records(&mut stream, view, rules, partition, tap)?;
    stream.into_inner().finish().map_err(|e| undecodable(codec, &e, partition))?;
    Ok(checked)
}

/// Records that do not decompress. Kafka answers UNKNOWN_SERVER_ERROR (an uncaught exception);
/// INVALID_RECORD is what the client must hear: retrying the same bytes cannot succeed.
fn undecodable(
    codec: Compression,
    e: &dyn std::fmt::Display,
    partition: &dyn std::fmt::Display,
) -> LogError {
    invalid(format!(
        "Failed to decompress the {codec:?} records in topic partition {partition}: {e}"
    ))
}

/// Which error code a list of record errors answers with: a bad timestamp wins, as in Kafka.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Record,
    Timestamp,
}

fn check_records<R: BufRead, T: RecordTap>(
    stream: &mut RecordStream<R>,
    view: &BatchView<'_>,
    rules: &Rules,
    partition: &dyn std::fmt::Display,
    tap: &mut T,
) -> Result<Checked, LogError> {
    let base_ts = view.base_timestamp();
    let append_time_from_client = view.timestamp_type() == TimestampType::LogAppendTime;
    let (lo, hi) = (
        rules.now_ms.saturating_sub(rules.timestamp_before_max_ms),
        rules.now_ms.saturating_add(rules.timestamp_after_max_ms),
    );
    let mut errors: Vec<RecordError> = Vec::new();
    let mut kind = Kind::Record;
    let mut max_timestamp = NO_TIMESTAMP;
    let mut index = 0i32;
    let mut record = RecordInfo::default();
    loop {
        match stream.next_record(tap, &mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => match *e {
                StreamError::Source(e) => {
                    let codec = view.compression()?;
                    return Err(undecodable(codec, &e, partition));
                }
                // Kafka's record iterator throws InvalidRecordException: no per-record errors.
                StreamError::Structure { index, reason } => {
                    return Err(invalid(format!(
                        "Found invalid record structure in record {index} of the batch in \
                         topic partition {partition}: {reason}"
                    )))
                }
            },
        }
        let mut fail = |k: Kind, message: String| {
            if k == Kind::Timestamp {
                kind = Kind::Timestamp;
            }
            errors.push(RecordError { index, message });
        };
        if record.offset_delta != index {
            fail(
                Kind::Record,
                format!(
                    "Record {index} has offset delta {}, expected {index}",
                    record.offset_delta
                ),
            );
        }
        if rules.compacted && record.key_len < 0 {
            fail(
                Kind::Record,
                format!(
                    "Compacted topic cannot accept message without key in topic partition \
                     {partition}"
                ),
            );
        }
        if rules.log_append_time && append_time_from_client {
            fail(
                Kind::Timestamp,
                format!(
                    "Invalid timestamp type in message with offset {index}. Producer should not \
                     set timestamp type to LogAppendTime."
                ),
            );
        }
        let ts = base_ts.saturating_add(record.timestamp_delta);
        if rules.check_timestamps
            && !rules.log_append_time
            && ts != NO_TIMESTAMP
            && (ts < lo || ts > hi)
        {
            fail(
                Kind::Timestamp,
                format!(
                    "Timestamp {ts} of message with offset {index} is out of range. The \
                     timestamp should be within [{lo}, {hi}]"
                ),
            );
        }
        max_timestamp = max_timestamp.max(ts);
        index += 1;
        if errors.len() >= MAX_RECORD_ERRORS {
            break;
        }
    }
    if errors.is_empty() {
        return Ok(Checked { max_timestamp });
    }
    Err(match kind {
        Kind::Timestamp => LogError::InvalidTimestamp {
            message: "One or more records have been rejected due to invalid timestamp".into(),
            record_errors: errors,
        },
        Kind::Record => {
            let shown: Vec<String> = errors
                .iter()
                .take(3)
                .map(|e| format!("RecordError(batchIndex={}, message='{}')", e.index, e.message))
                .collect();
            LogError::InvalidRecord {
                message: format!(
                    "One or more records have been rejected due to {} record errors in total, \
                     and only showing the first three errors at most: [{}]",
                    errors.len(),
                    shown.join(", ")
                ),
                record_errors: errors,
            }
        }
    })
}

/// Copies every record's bytes into a compressor, refusing once the output passes a bound.
struct Recompress {
    out: Compressor,
    max: usize,
    failed: Option<LogError>,
}

impl RecordTap for Recompress {
    fn raw(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.out.write_all(chunk) {
            self.failed = Some(LogError::Decompression(format!("compression failed: {e}")));
        } else if self.out.output_len() > self.max {
            self.failed =
                Some(LogError::BatchTooLarge { size: self.out.output_len(), max: self.max });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{assemble_batch, build_batch, BatchFields, BatchView};
    use crate::log::compression::compress;
    use crate::log::record::{put_varint, put_varlong};
    use crate::log::CleanupPolicy;

    const NOW: i64 = 1_700_000_000_000;

    fn rules() -> Rules {
        Rules::new(&LogConfig::default(), NOW, AppendOrigin::Client)
    }
    fn compacted() -> Rules {
        Rules::new(
            &LogConfig { cleanup_policy: CleanupPolicy::Compact, ..LogConfig::default() },
            NOW,
            AppendOrigin::Client,
        )
    }
    fn check(batch: &[u8], rules: &Rules) -> Result<Checked, LogError> {
        validate_client_batch(&BatchView::parse_client(batch).unwrap(), rules, &"t-0")
    }

    /// One record's bytes, length prefix included, with the given fields.
    fn record(ts_delta: i64, offset_delta: i32, key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8];
        put_varlong(&mut body, ts_delta);
        put_varint(&mut body, offset_delta);
        match key {
            Some(k) => {
                put_varint(&mut body, k.len() as i32);
                body.extend_from_slice(k);
            }
            None => put_varint(&mut body, -1),
        }
        put_varint(&mut body, value.len() as i32);
        body.extend_from_slice(value);
        put_varint(&mut body, 0);
        let mut out = Vec::new();
        put_varint(&mut out, body.len() as i32);
        out.extend_from_slice(&body);
        out
    }

    fn batch_of(records: &[u8], count: i32, codec: Compression) -> Vec<u8> {
        let payload = compress(codec, records).unwrap();
        assemble_batch(
            &BatchFields {
                base_offset: 0,
                partition_leader_epoch: -1,
                attributes: codec.id(),
                last_offset_delta: count - 1,
                base_timestamp: NOW,
                max_timestamp: NOW,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
            },
            count,
            &payload,
        )
    }

    fn fixed_crc(mut b: Vec<u8>) -> Vec<u8> {
        crate::log::batch::BatchMut::new(&mut b).update_crc();
        b
    }

    fn three(key1: Option<&[u8]>) -> Vec<u8> {
        [record(0, 0, Some(b"a"), b"x"), record(1, 1, key1, b"y"), record(2, 2, Some(b"c"), b"z")]
            .concat()
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn well_formed_batches_pass_in_every_codec() {
        for codec in CODECS {
            let b = batch_of(&three(Some(b"b")), 3, codec);
            assert_eq!(check(&b, &compacted()).unwrap().max_timestamp, NOW + 2, "{codec:?}");
        }
        let b = build_batch(0, NOW, &[(None, Some(b"v")), (Some(b"k"), None)]);
        assert!(check(&b, &rules()).is_ok());
    }

    #[test]
    fn count_must_match_the_records() {
        for codec in CODECS {
            // Header says 5 records (and offsets 0..4), the section holds 3.
            let short = batch_of(&three(Some(b"b")), 5, codec);
            assert!(
                matches!(check(&short, &rules()), Err(LogError::InvalidRecord { .. })),
                "{codec:?}"
            );
            // Header says 2, the section holds a third record after them.
            let long = batch_of(&three(Some(b"b")), 2, codec);
            assert!(
                matches!(check(&long, &rules()), Err(LogError::InvalidRecord { .. })),
                "{codec:?}"
            );
        }
        let mut b = batch_of(&three(Some(b"b")), 3, Compression::None);
        // recordsCount 4 with lastOffsetDelta 2: the header contradicts itself.
        b[57..61].copy_from_slice(&4i32.to_be_bytes());
        let b = fixed_crc(b);
        assert!(matches!(check(&b, &rules()), Err(LogError::InvalidRecord { .. })));
    }

    #[test]
    fn garbage_behind_a_valid_crc_is_refused() {
        let mut seed = 7u64;
        for codec in CODECS {
            for _ in 0..200 {
                let garbage: Vec<u8> = (0..64)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (seed >> 33) as u8
                    })
                    .collect();
                let b = batch_of(&garbage, 3, codec);
                assert!(check(&b, &rules()).is_err(), "{codec:?}: {garbage:?}");
            }
        }
    }

    #[test]
    fn structure_errors_name_the_record() {
        let mut bad = record(0, 1, Some(b"b"), b"y");
        bad[0] += 2; // the length prefix claims two bytes more than the fields hold
        let records = [record(0, 0, Some(b"a"), b"x"), bad].concat();
        match check(&batch_of(&records, 2, Compression::None), &rules()) {
            Err(LogError::InvalidRecord { message, record_errors }) => {
                assert!(message.contains("record 1"), "{message}");
                assert!(record_errors.is_empty(), "Kafka lists no record errors for structure");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn null_keys_on_compacted_topics_are_record_errors() {
        for codec in CODECS {
            let b = batch_of(&three(None), 3, codec);
            assert!(check(&b, &rules()).is_ok());
            match check(&b, &compacted()) {
                Err(LogError::InvalidRecord { record_errors, .. }) => {
                    assert_eq!(record_errors.len(), 1);
                    assert_eq!(record_errors[0].index, 1);
                    assert!(record_errors[0].message.contains("without key"));
                }
                other => panic!("{codec:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn offset_deltas_must_count_from_zero() {
        let records = [record(0, 0, None, b"x"), record(0, 0, None, b"y")].concat();
        match check(&batch_of(&records, 2, Compression::Zstd), &rules()) {
            Err(LogError::InvalidRecord { record_errors, .. }) => {
                assert_eq!(record_errors[0].index, 1)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timestamps_outside_the_bounds_are_refused() {
        let hour = 3_600_000;
        let records = [record(0, 0, None, b"x"), record(hour + 1, 1, None, b"y")].concat();
        let b = batch_of(&records, 2, Compression::None);
        match check(&b, &rules()) {
            Err(LogError::InvalidTimestamp { record_errors, .. }) => {
                assert_eq!(record_errors.len(), 1);
                assert_eq!(record_errors[0].index, 1);
            }
            other => panic!("{other:?}"),
        }
        let append_time = Rules { log_append_time: true, ..rules() };
        assert!(check(&b, &append_time).is_ok());
        let old = Rules { timestamp_before_max_ms: 0, now_ms: NOW + 1, ..rules() };
        assert!(matches!(check(&b, &old), Err(LogError::InvalidTimestamp { .. })));
        let coordinator = Rules { check_timestamps: false, ..old };
        assert!(check(&b, &coordinator).is_ok());
    }

    #[test]
    fn max_decompressed_message_bytes_bounds_records_of_compressed_batches() {
        let big = [record(0, 0, Some(b"k"), &[7u8; 5000]), record(0, 1, Some(b"k"), b"v")].concat();
        let tight = Rules { max_record_body: 4096, ..rules() };
        for codec in CODECS {
            let b = batch_of(&big, 2, codec);
            let r = check(&b, &tight);
            if codec == Compression::None {
                // Kafka applies the limit where it decompresses: uncompressed batches are
                // bounded by max.message.bytes already.
                assert!(r.is_ok(), "{r:?}");
            } else {
                assert!(matches!(r, Err(LogError::InvalidRecord { .. })), "{codec:?}: {r:?}");
            }
            assert!(check(&b, &rules()).is_ok());
        }
    }

    #[test]
    fn client_batches_start_at_offset_zero_and_carry_a_sequence() {
        let mut b = batch_of(&three(Some(b"b")), 3, Compression::None);
        b[0..8].copy_from_slice(&100i64.to_be_bytes());
        match check(&b, &rules()) {
            Err(LogError::InvalidRecord { message, .. }) => {
                assert!(message.contains("should be 0, but it is 100"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let mut b = batch_of(&three(Some(b"b")), 3, Compression::None);
        b[43..51].copy_from_slice(&7i64.to_be_bytes()); // producer id, sequence still -1
        assert!(matches!(check(&fixed_crc(b), &rules()), Err(LogError::InvalidRecord { .. })));
    }

    #[test]
    fn undecodable_sections_are_invalid_records() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let valid = batch_of(&three(Some(b"b")), 3, codec);
            let mut cut = valid[..valid.len() - 4].to_vec();
            let len = (cut.len() - 12) as i32;
            cut[8..12].copy_from_slice(&len.to_be_bytes());
            let plain = batch_of(&three(Some(b"b")), 3, Compression::None);
            let mut mislabelled = plain.clone();
            mislabelled[21..23].copy_from_slice(&codec.id().to_be_bytes());
            for b in [fixed_crc(cut), fixed_crc(mislabelled)] {
                assert!(
                    matches!(check(&b, &rules()), Err(LogError::InvalidRecord { .. })),
                    "{codec:?}"
                );
            }
        }
    }

    #[test]
    fn log_append_time_batches_from_clients_are_refused_on_log_append_time_topics() {
        let mut b = batch_of(&three(Some(b"b")), 3, Compression::None);
        b[21..23].copy_from_slice(&0x08i16.to_be_bytes());
        let b = fixed_crc(b);
        assert!(check(&b, &rules()).is_ok(), "CreateTime topics accept it, as Kafka does");
        let append_time = Rules { log_append_time: true, ..rules() };
        match check(&b, &append_time) {
            Err(LogError::InvalidTimestamp { record_errors, .. }) => {
                assert_eq!(record_errors.len(), 3)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_codecs_and_control_batches_are_refused() {
        for codec_bits in [5i16, 6, 7] {
            let mut b = batch_of(&three(Some(b"b")), 3, Compression::None);
            b[21..23].copy_from_slice(&codec_bits.to_be_bytes());
            let b = fixed_crc(b);
            assert!(
                matches!(check(&b, &rules()), Err(LogError::InvalidRecord { .. })),
                "codec {codec_bits}"
            );
        }
        let mut b = batch_of(&three(Some(b"b")), 3, Compression::None);
        b[21..23].copy_from_slice(&0x20i16.to_be_bytes());
        let b = fixed_crc(b);
        assert!(matches!(check(&b, &rules()), Err(LogError::InvalidRecord { .. })));
    }

    #[test]
    fn a_decompression_bomb_streams_in_bounded_memory() {
        // 256 MiB of zeros: the first record's length is 0, so it is refused at once; what
        // matters is that nothing inflates the section whole (the limit is 64 MiB).
        let zeros = vec![0u8; 256 << 20];
        let b = batch_of(&zeros, 1, Compression::Zstd);
        assert!(b.len() < 64 * 1024);
        assert!(matches!(check(&b, &rules()), Err(LogError::InvalidRecord { .. })));
        // Records that are all valid and inflate far past the limit are read through.
        let one = record(0, 0, Some(b"k"), &[0u8; 1000]);
        let n = 100_000;
        let mut records = Vec::with_capacity(one.len() * n);
        for i in 0..n {
            let mut r = record(0, i as i32, Some(b"k"), &[0u8; 1000]);
            records.append(&mut r);
        }
        let b = batch_of(&records, n as i32, Compression::Zstd);
        let tight = Rules { decompress_limit: 1 << 20, ..rules() };
        assert!(check(&b, &tight).is_ok());
    }
}
