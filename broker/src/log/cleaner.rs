//! Log compaction (`cleanup.policy=compact`), as Kafka's `LogCleaner` does it.
//!
//! The byte-level core is independent of segments and files:
//!
//! 1. [`build_offset_map`] scans record batches and remembers, for every key, the offset of the
//!    newest record with that key ([`OffsetMap`]).
//! 2. [`filter_batches`] rewrites record batches, keeping only records that are still the
//!    newest for their key (plus records without a key), and optionally dropping tombstones.
//!
//! Rewriting never renumbers anything: a retained record keeps its offset, and a rebuilt batch
//! keeps its base offset, last offset delta, base timestamp, attributes (codec, timestamp type,
//! transactional flag) and producer fields, so offsets, timestamps and producer state read the
//! same to consumers and followers as before compaction. A batch with nothing to remove is
//! copied byte for byte; a batch with nothing left is dropped.
//!
//! [`clean_log`] applies it to a partition log: it picks the cleanable segments, writes each
//! cleaned segment as `.cleaned` files, renames them to `.swap` (the `.log.swap` rename is the
//! commit point), deletes the old segment and renames the new one live.
//! [`complete_interrupted_swaps`] finishes or discards a swap interrupted by a crash. As in
//! Kafka, a pass runs only when the data written since the previous one reaches
//! `min.cleanable.dirty.ratio` of the cleanable bytes (or kept tombstones have come due), and
//! its key map holds the keys of that new data only ([`CleanerState`]).
//!
//! Tombstones follow Kafka's pre-KIP-534 rule, measured with the segment's largest timestamp:
//! they are dropped from a segment whose newest record is older than `delete.retention.ms`.
//! Not yet done: aborted-transaction removal and keeping each producer's last batch (both
//! arrive with transactions and idempotence).

use std::collections::HashMap;
use std::hash::{BuildHasher, DefaultHasher, Hasher, RandomState};
use std::io::Write;

use super::batch::{assemble_batch, BatchFields, BatchIter, BatchView};
use super::compression::{Compressor, RecordsReader};
use super::partition_log::PartitionLog;
use super::record::{RecordInfo, RecordStream, RecordTap, StreamError};
use super::segment::{segment_paths, LogSegment};
use super::LogError;

/// Key hash -> offset of the newest record with that key (Kafka's `OffsetMap`, which keys on
/// an MD5 of the key). Keys are hashed with two independently keyed SipHash instances (128
/// bits, seeded per map): keys may arrive in pieces from a streaming decompressor, a map entry
/// costs 24 bytes whatever the key's size, and a client cannot craft keys that collide with
/// another key (which would drop a live record) without knowing the seeds.
#[derive(Debug, Default, Clone)]
pub struct OffsetMap {
    offsets: HashMap<u128, i64>,
    latest_offset: Option<i64>,
    seeds: KeySeeds,
}

/// The two hash keys of an [`OffsetMap`].
#[derive(Debug, Default, Clone)]
struct KeySeeds(RandomState, RandomState);

/// A key being hashed as its bytes arrive.
struct KeyHash(DefaultHasher, DefaultHasher, u64);

impl KeySeeds {
    fn start(&self) -> KeyHash {
        KeyHash(self.0.build_hasher(), self.1.build_hasher(), 0)
    }
}

impl KeyHash {
    fn update(&mut self, chunk: &[u8]) {
        // SipHash consumes a byte stream: chunks hash as their concatenation does.
        self.0.write(chunk);
        self.1.write(chunk);
        self.2 += chunk.len() as u64;
    }
    fn finish(mut self) -> u128 {
        self.0.write_u64(self.2);
        self.1.write_u64(self.2);
        (u128::from(self.0.finish()) << 64) | u128::from(self.1.finish())
    }
}

impl OffsetMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    fn hash(&self, key: &[u8]) -> u128 {
        let mut h = self.seeds.start();
        h.update(key);
        h.finish()
    }

    /// The offset of the newest record seen with `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(&self.hash(key)).copied()
    }

    /// Records that the record at `offset` has `key`. The map keeps the highest offset per key,
    /// so inserting out of order cannot make an older record look newest.
    pub fn insert(&mut self, key: &[u8], offset: i64) {
        self.insert_hash(self.hash(key), offset);
    }

    fn insert_hash(&mut self, key: u128, offset: i64) {
        let entry = self.offsets.entry(key).or_insert(offset);
        *entry = (*entry).max(offset);
        self.latest_offset = Some(self.latest_offset.map_or(offset, |o| o.max(offset)));
    }

    /// The highest offset inserted so far (Kafka: `OffsetMap.latestOffset`), i.e. where the
    /// scanned ("dirty") range ends.
    pub fn latest_offset(&self) -> Option<i64> {
        self.latest_offset
    }
}

/// Counters from one [`filter_batches`] call. Control batches count as read and written, their
/// records as read and kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub batches_read: u64,
    pub batches_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Tombstones kept because they are younger than `delete.retention.ms`.
    pub tombstones_kept: u64,
}

impl CleanStats {
    /// Adds another call's counters to these.
    pub fn add(&mut self, other: &CleanStats) {
        self.batches_read += other.batches_read;
        self.batches_written += other.batches_written;
        self.records_read += other.records_read;
        self.records_kept += other.records_kept;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.tombstones_kept += other.tombstones_kept;
    }
}

/// Streams the records of a batch (decompressing as it goes), handing each to `visit` with
/// `tap` having seen its bytes. A batch without records is not read at all: Kafka writes such
/// empty batches (`DefaultRecordBatch.writeEmptyHeader`) with the original attributes, to keep a
/// producer's last sequence after compaction removed all its records, and their empty payload
/// is no valid compressed stream.
fn for_each_record<T: RecordTap>(
    view: &BatchView<'_>,
    decompress_limit: usize,
    tap: &mut T,
    mut visit: impl FnMut(&mut T, &RecordInfo) -> Result<(), LogError>,
) -> Result<(), LogError> {
    if view.records_count() == 0 {
        return Ok(());
    }
    let codec = view.compression()?;
    let reader = RecordsReader::new(codec, view.records_payload(), decompress_limit)?;
    let mut stream = RecordStream::new(reader, view.records_count());
    let mut info = RecordInfo::default();
    let corrupt = |e: Box<StreamError>| match *e {
        StreamError::Source(e) => LogError::Decompression(format!("{codec:?}: {e}")),
        StreamError::Structure { index, reason } => LogError::CorruptBatch(format!(
            "record {index} of the batch at offset {}: {reason}",
            view.base_offset()
        )),
    };
    while stream.next_record(tap, &mut info).map_err(corrupt)? {
        visit(tap, &info)?;
    }
    stream.into_inner().finish()
}

/// The absolute offset of a record of the batch `view`.
fn record_offset(view: &BatchView<'_>, record: &RecordInfo) -> Result<i64, LogError> {
    view.base_offset().checked_add(i64::from(record.offset_delta)).ok_or_else(|| {
        LogError::CorruptBatch(format!(
            "offset delta {} overflows base offset {}",
            record.offset_delta,
            view.base_offset()
        ))
    })
}

/// Hashes each record's key as it streams by.
struct KeyTap<'a> {
    seeds: &'a KeySeeds,
    hash: Option<KeyHash>,
}

impl RecordTap for KeyTap<'_> {
    fn begin(&mut self, _index: i32) {
        self.hash = Some(self.seeds.start());
    }
    fn key(&mut self, chunk: &[u8]) {
        if let Some(h) = self.hash.as_mut() {
            h.update(chunk);
        }
    }
}

impl KeyTap<'_> {
    /// The hash of the record just read, if it has a key.
    fn key_of(&mut self, record: &RecordInfo) -> Option<u128> {
        let hash = self.hash.take()?;
        (record.key_len >= 0).then(|| hash.finish())
    }
}

/// Adds every keyed record in `batches` (complete v2 batches, back to back, in offset order) to
/// `map`, so that it ends up holding the newest offset of each key. Control batches (transaction
/// markers) are skipped. Batches are parsed without a CRC check; compressed records sections are
/// streamed through their decompressor, so memory does not grow with what a batch inflates to
/// (`decompress_limit` bounds a single snappy block).
pub fn build_offset_map(
    batches: &[u8],
    map: &mut OffsetMap,
    decompress_limit: usize,
) -> Result<(), LogError> {
    let seeds = map.seeds.clone();
    for item in BatchIter::new(batches, false) {
        let (_, view) = item?;
        if view.is_control() {
            continue;
        }
        let mut tap = KeyTap { seeds: &seeds, hash: None };
        for_each_record(&view, decompress_limit, &mut tap, |tap, record| {
            if let Some(key) = tap.key_of(record) {
                map.insert_hash(key, record_offset(&view, record)?);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Copies the bytes of the records marked to keep into the rebuilt batch's records section.
struct CopyTap<'a> {
    keep: &'a [bool],
    current: usize,
    out: Compressor,
    failed: Option<std::io::Error>,
}

impl RecordTap for CopyTap<'_> {
    fn begin(&mut self, index: i32) {
        self.current = index as usize;
    }
    fn raw(&mut self, chunk: &[u8]) {
        if self.failed.is_none() && self.keep.get(self.current).copied().unwrap_or(false) {
            if let Err(e) = self.out.write_all(chunk) {
                self.failed = Some(e);
            }
        }
    }
}

/// Copies `batches` (complete v2 batches, back to back) to `out`, keeping only the records that
/// survive compaction against `map`:
///
/// - a record without a key is kept;
/// - a keyed record is kept if `map` has no newer offset for its key;
/// - with `remove_tombstones`, a kept record with a null value (a tombstone) is dropped, keyed
///   or not.
///
/// Control batches are copied verbatim. A batch whose records are all kept is copied byte for
/// byte; a batch with none kept is left out. Otherwise the batch is rebuilt from the retained
/// records' bytes, recompressed with its own codec, with its header fields (base offset, last
/// offset delta, timestamps, attributes, producer fields) unchanged and its length, record
/// count and CRC recomputed.
///
/// Each batch's CRC is verified first: a rebuilt batch gets a fresh CRC, which would otherwise
/// turn a corrupted batch into one that looks valid. Compressed records sections are
/// decompressed up to `decompress_limit` bytes each. On error, `out` may hold the batches
/// written before the failing one.
pub fn filter_batches(
    batches: &[u8],
    map: &OffsetMap,
    remove_tombstones: bool,
    decompress_limit: usize,
    out: &mut Vec<u8>,
) -> Result<CleanStats, LogError> {
    let mut stats = CleanStats::default();
    for item in BatchIter::new(batches, true) {
        let (_, view) = item?;
        stats.batches_read += 1;
        stats.bytes_read += view.size() as u64;
        // `parse` rejects negative counts, so this conversion cannot fail on a parsed batch.
        let count = u64::try_from(view.records_count()).unwrap_or(0);
        stats.records_read += count;
        if view.is_control() {
            stats.records_kept += count;
            write_verbatim(&view, out, &mut stats);
            continue;
        }

        // Pass 1: which records stay. One flag per record (count bytes), not the records.
        let mut keep: Vec<bool> = Vec::new();
        let mut tap = KeyTap { seeds: &map.seeds, hash: None };
        for_each_record(&view, decompress_limit, &mut tap, |tap, record| {
            let newest = match tap.key_of(record).and_then(|key| map.offsets.get(&key)) {
                Some(&latest) => latest <= record_offset(&view, record)?,
                None => true,
            };
            let tombstone = record.value_len < 0;
            let kept = newest && !(remove_tombstones && tombstone);
            stats.tombstones_kept += (kept && tombstone) as u64;
            keep.push(kept);
            Ok(())
        })?;
        let kept = keep.iter().filter(|&&k| k).count();
        stats.records_kept += kept as u64;

        if kept == keep.len() {
            write_verbatim(&view, out, &mut stats);
        } else if kept > 0 {
            // Pass 2: stream the batch again, copying the kept records into a compressor of
            // the batch's own codec.
            let kept_count = i32::try_from(kept)
                .map_err(|_| LogError::CorruptBatch("too many records in a batch".into()))?;
            let codec = view.compression()?;
            let out_section = Compressor::new(codec, view.records_payload().len())?;
            let mut copy = CopyTap { keep: &keep, current: 0, out: out_section, failed: None };
            for_each_record(&view, decompress_limit, &mut copy, |_, _| Ok(()))?;
            if let Some(e) = copy.failed {
                return Err(LogError::Decompression(format!("{codec:?}: compression failed: {e}")));
            }
            let records = copy.out.finish()?;
            let rebuilt = assemble_batch(&BatchFields::of(&view), kept_count, &records);
            stats.batches_written += 1;
            stats.bytes_written += rebuilt.len() as u64;
            out.extend_from_slice(&rebuilt);
        }
    }
    Ok(stats)
}

fn write_verbatim(view: &BatchView<'_>, out: &mut Vec<u8>, stats: &mut CleanStats) {
    out.extend_from_slice(view.bytes());
    stats.batches_written += 1;
    stats.bytes_written += view.size() as u64;
}

// ---------------------------------------------------------------------------------------------
// Segment selection and swap: the part of compaction that touches the partition log.
// ---------------------------------------------------------------------------------------------

/// Suffix of a segment being written by the cleaner.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment about to replace the live one (the commit point is the rename of
/// the `.log.swap` file).
pub const SWAP_SUFFIX: &str = ".swap";

/// Flushes the output buffer into the cleaned segment once it holds this much.
const WRITE_CHUNK: usize = 1 << 20;

/// Finishes or rolls back a cleaner swap interrupted by a crash: `.cleaned` files are
/// discarded; a `.log.swap` file means the swap was committed, so it replaces the live segment.
pub fn complete_interrupted_swaps(dir: &std::path::Path) -> Result<(), LogError> {
    let io = |e| LogError::io(dir)(e);
    let mut committed = Vec::new();
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(CLEANED_SUFFIX) {
            stray.push(entry.path());
        } else if let Some(stem) = name.strip_suffix(".log.swap") {
            if let Ok(base) = stem.parse::<i64>() {
                committed.push(base);
            }
        } else if name.ends_with(SWAP_SUFFIX) {
            stray.push(entry.path());
        }
    }
    for base in &committed {
        let live = segment_paths(dir, *base, "");
        let swap = segment_paths(dir, *base, SWAP_SUFFIX);
        for (from, to) in swap.iter().zip(live.iter()) {
            if from.exists() {
                std::fs::rename(from, to).map_err(LogError::io(to))?;
            } else {
                // The index was not swapped: remove the live one, it is rebuilt on open.
                let _ = std::fs::remove_file(to);
            }
        }
    }
    for path in stray {
        let is_committed_index = committed.iter().any(|b| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{b:020}")))
        });
        if !is_committed_index {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

/// Compacts a log's cleanable segments: every non-active segment wholly below the high
/// watermark whose newest record is older than `min.compaction.lag.ms`. One pass builds the
/// key → newest offset map over them, a second rewrites each segment keeping only the newest
/// record per key (offsets preserved). Tombstones are dropped from segments whose largest
/// timestamp is older than `delete.retention.ms`. Each segment is replaced atomically.
pub fn clean_log(log: &mut PartitionLog) -> Result<CleanStats, LogError> {
    let now = log.clock().now_ms();
    let config = log.config().clone();
    let hw = log.high_watermark();
    let bases = log.segment_base_offsets();
    let mut cleanable = Vec::new();
    let mut end = None;
    for pair in bases.windows(2) {
        let seg = &log.segments()[&pair[0]];
        if pair[1] > hw || now - seg.largest_timestamp() < config.min_compaction_lag_ms {
            break;
        }
        cleanable.push(pair[0]);
        end = Some(pair[1]);
    }
    let mut stats = CleanStats::default();
    let Some(end) = end else {
        return Ok(stats);
    };
    // Kafka's choice of when to clean: enough new ("dirty") data since the last pass, measured
    // against everything cleanable, or tombstones kept by the last pass that may now go.
    let state = log.cleaner_state();
    let size = |b: &i64| log.segments()[b].size();
    let total: u64 = cleanable.iter().map(size).sum();
    let dirty_bases: Vec<i64> =
        cleanable.iter().copied().filter(|&b| b >= state.first_dirty_offset).collect();
    let dirty: u64 = dirty_bases.iter().map(size).sum();
    let dirty_enough = dirty > 0 && dirty as f64 >= config.min_cleanable_dirty_ratio * total as f64;
    let tombstones_due = state.tombstone_deadline.is_some_and(|t| now > t);
    // max.compaction.lag.ms: dirty data this old is cleaned whatever the ratio (KIP-354).
    let lag_due = config.max_compaction_lag_ms < i64::MAX
        && dirty_bases.iter().any(|b| {
            let first = log.segments()[b].first_timestamp().unwrap_or(i64::MAX);
            now.saturating_sub(first) >= config.max_compaction_lag_ms
        });
    if !dirty_enough && !tombstones_due && !lag_due {
        return Ok(stats);
    }
    let limit = config.decompress_limit();
    // Keys of the dirty part only: the clean part holds one record per key already, and any
    // of its records superseded by a dirty one is found through the dirty one's key.
    let mut map = OffsetMap::new();
    for base in &dirty_bases {
        let mut result = Ok(());
        log.segments()[base].for_each_batch(|_, view| {
            if result.is_ok() {
                result = build_offset_map(view.bytes(), &mut map, limit);
            }
        })?;
        result?;
    }
    let dir = log.dir().to_path_buf();
    let mut tombstone_deadline: Option<i64> = None;
    for base in cleanable {
        let seg = &log.segments()[&base];
        let remove_tombstones = now - seg.largest_timestamp() > config.delete_retention_ms;
        let kept_before = stats.tombstones_kept;
        let mut cleaned = LogSegment::create(&dir, base, &config, now, CLEANED_SUFFIX)?;
        let mut out = Vec::new();
        let mut result = Ok(());
        let mut changed = false;
        seg.for_each_batch(|_, view| {
            if result.is_err() {
                return;
            }
            let before = out.len();
            match filter_batches(view.bytes(), &map, remove_tombstones, limit, &mut out) {
                Ok(s) => {
                    changed |=
                        s.records_kept != s.records_read || out.len() - before != view.size();
                    stats.add(&s);
                }
                Err(e) => result = Err(e),
            }
            if out.len() >= WRITE_CHUNK {
                result = cleaned.append(&out);
                out.clear();
            }
        })?;
        result?;
        if stats.tombstones_kept > kept_before {
            let due = seg.largest_timestamp().saturating_add(config.delete_retention_ms);
            tombstone_deadline = Some(tombstone_deadline.map_or(due, |t| t.min(due)));
        }
        if !changed {
            drop(cleaned);
            for p in segment_paths(&dir, base, CLEANED_SUFFIX) {
                let _ = std::fs::remove_file(p);
            }
            continue;
        }
        if !out.is_empty() {
            cleaned.append(&out)?;
        }
        cleaned.seal(true)?;
        // Commit: rename the indexes, then the log file (the commit point), then go live. Each
        // step is made durable before the next, so a power loss resumes at a known step.
        cleaned.rename_suffix(&dir, CLEANED_SUFFIX, SWAP_SUFFIX)?;
        super::sync_dir(&dir)?;
        let old = log.segments_mut().remove(&base).expect("cleanable segment");
        old.delete(&dir)?;
        cleaned.rename_suffix(&dir, SWAP_SUFFIX, "")?;
        super::sync_dir(&dir)?;
        log.segments_mut().insert(base, cleaned);
    }
    log.set_cleaner_state(CleanerState { first_dirty_offset: end, tombstone_deadline });
    Ok(stats)
}

/// What the cleaner remembers of a log between passes. Kafka keeps the first dirty offset in
/// its `cleaner-offset-checkpoint`; here it lives in memory, so the first pass after a restart
/// treats the whole log as dirty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanerState {
    /// The last pass compacted every record below this offset (the "clean" part).
    pub first_dirty_offset: i64,
    /// When the earliest tombstone the last pass had to keep may be dropped.
    pub tombstone_deadline: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{BatchMut, Compression, HEADER_SIZE};
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression as KpCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
        RecordEncodeOptions, TimestampType,
    };

    const LIMIT: usize = 16 << 20;
    const BASE_TS: i64 = 1_700_000_000_000;

    const CODECS: [(Compression, KpCompression); 5] = [
        (Compression::None, KpCompression::None),
        (Compression::Gzip, KpCompression::Gzip),
        (Compression::Snappy, KpCompression::Snappy),
        (Compression::Lz4, KpCompression::Lz4),
        (Compression::Zstd, KpCompression::Zstd),
    ];

    /// One record of a test batch: offset, key, value.
    type Spec = (i64, Option<&'static str>, Option<&'static str>);

    fn kp_record(base: i64, (offset, key, value): Spec) -> Record {
        let mut headers = kafka_protocol::indexmap::IndexMap::new();
        if offset % 3 == 0 {
            headers.insert(
                StrBytes::from_string(format!("h{offset}")),
                Some(Bytes::from(format!("hv{offset}"))),
            );
        }
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 5,
            producer_id: -1,
            producer_epoch: -1,
            // The encoder groups records into one batch while offset - sequence is constant.
            sequence: -1 + (offset - base) as i32,
            timestamp_type: TimestampType::Creation,
            offset,
            timestamp: BASE_TS + offset * 7,
            key: key.map(|k| Bytes::from(k.as_bytes().to_vec())),
            value: value.map(|v| Bytes::from(v.as_bytes().to_vec())),
            headers,
        }
    }

    /// Encodes `records` as exactly one batch with kafka-protocol, the way a client would.
    fn encode(records: &[Record], codec: KpCompression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: codec };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        let view = BatchView::parse_checked(&buf).unwrap();
        assert_eq!(view.size(), buf.len(), "the encoder split the records into several batches");
        buf.to_vec()
    }

    fn batch(specs: &[Spec], codec: KpCompression) -> Vec<u8> {
        let base = specs[0].0;
        encode(&specs.iter().map(|&s| kp_record(base, s)).collect::<Vec<_>>(), codec)
    }

    /// The test partition: batches A-F, at base offsets 0, 5, 8, 10, 13, 15.
    fn partition() -> Vec<Vec<Spec>> {
        vec![
            // A: only the null-key record 2 survives; lastOffsetDelta (4) must be kept.
            vec![
                (0, Some("k1"), Some("a")),
                (1, Some("k2"), Some("b")),
                (2, None, Some("no-key")),
                (3, Some("k1"), Some("c")),
                (4, Some("k3"), Some("d")),
            ],
            // B: all newest; loses its tombstones (keyed or not) when tombstones are removed.
            vec![(5, Some("k2"), None), (6, Some("k4"), Some("e")), (7, None, None)],
            // C: all newest.
            vec![(8, Some("k1"), Some("g")), (9, Some("k5"), Some("h"))],
            // D: nothing to remove, ever.
            vec![(10, Some("k6"), Some("i")), (11, None, Some("m")), (12, Some("k7"), Some(""))],
            // E: everything superseded by F.
            vec![(13, Some("k8"), Some("j")), (14, Some("k8"), Some("k"))],
            // F: k3's tombstone and the newest k8.
            vec![(15, Some("k8"), Some("l")), (16, Some("k3"), None)],
        ]
    }

    /// What compaction must leave, computed independently of the code under test.
    fn expected(specs: &[Spec], remove_tombstones: bool) -> Vec<Spec> {
        specs
            .iter()
            .filter(|(offset, key, value)| {
                let newest = match key {
                    None => true,
                    Some(k) => !specs.iter().any(|(o, k2, _)| k2 == &Some(*k) && o > offset),
                };
                newest && !(remove_tombstones && value.is_none())
            })
            .copied()
            .collect()
    }

    /// Decodes with kafka-protocol (CRC, framing and codec checked by a real client library).
    fn decode_with_client(bytes: &[u8]) -> Vec<kafka_protocol::records::RecordSet> {
        let mut buf = Bytes::copy_from_slice(bytes);
        RecordBatchDecoder::decode_all(&mut buf).unwrap()
    }

    fn clean(input: &[u8], remove_tombstones: bool) -> (Vec<u8>, CleanStats) {
        let mut map = OffsetMap::new();
        build_offset_map(input, &mut map, LIMIT).unwrap();
        let mut out = Vec::new();
        let stats = filter_batches(input, &map, remove_tombstones, LIMIT, &mut out).unwrap();
        (out, stats)
    }

    fn views(bytes: &[u8]) -> Vec<BatchView<'_>> {
        BatchIter::new(bytes, true).map(|b| b.unwrap().1).collect()
    }

    #[test]
    fn offset_map_keeps_the_newest_offset() {
        let mut map = OffsetMap::new();
        assert!(map.is_empty());
        map.insert(b"a", 3);
        map.insert(b"a", 7);
        map.insert(b"a", 5);
        map.insert(b"", 1);
        assert_eq!((map.get(b"a"), map.get(b""), map.get(b"b")), (Some(7), Some(1), None));
        assert_eq!((map.len(), map.latest_offset()), (2, Some(7)));
    }

    #[test]
    fn compacts_client_batches_for_every_codec() {
        for (codec, kp_codec) in CODECS {
            for remove_tombstones in [false, true] {
                let specs = partition();
                let inputs: Vec<Vec<u8>> = specs.iter().map(|s| batch(s, kp_codec)).collect();
                let input = inputs.concat();
                let all: Vec<Spec> = specs.concat();
                let ctx = format!("{codec:?}, remove_tombstones={remove_tombstones}");

                let mut map = OffsetMap::new();
                build_offset_map(&input, &mut map, LIMIT).unwrap();
                assert_eq!(map.len(), 8, "{ctx}");
                assert_eq!(
                    (map.get(b"k1"), map.get(b"k3"), map.get(b"k8")),
                    (Some(8), Some(16), Some(15))
                );
                assert_eq!(map.latest_offset(), Some(16));

                let mut out = Vec::new();
                let stats =
                    filter_batches(&input, &map, remove_tombstones, LIMIT, &mut out).unwrap();

                // A real client reads every surviving record, unchanged, at its original offset.
                let want = expected(&all, remove_tombstones);
                let want_offsets: Vec<i64> = if remove_tombstones {
                    vec![2, 6, 8, 9, 10, 11, 12, 15]
                } else {
                    vec![2, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16]
                };
                assert_eq!(want.iter().map(|s| s.0).collect::<Vec<_>>(), want_offsets, "{ctx}");
                let sets = decode_with_client(&out);
                let got: Vec<&Record> = sets.iter().flat_map(|s| &s.records).collect();
                assert_eq!(got.len(), want.len(), "{ctx}");
                for (record, &spec) in got.iter().zip(&want) {
                    let original = kp_record(0, spec);
                    assert_eq!(record.offset, spec.0, "{ctx}");
                    assert_eq!(record.key, original.key, "{ctx} offset {}", spec.0);
                    assert_eq!(record.value, original.value, "{ctx} offset {}", spec.0);
                    assert_eq!(record.timestamp, original.timestamp, "{ctx} offset {}", spec.0);
                    assert_eq!(record.headers, original.headers, "{ctx} offset {}", spec.0);
                    assert_eq!(record.partition_leader_epoch, 5);
                }
                for set in &sets {
                    assert_eq!(set.compression, kp_codec, "{ctx}: codec changed");
                }

                // Batch structure: E is gone, the others keep base offset and lastOffsetDelta.
                let out_views = views(&out);
                let in_views = views(&input);
                let shape: Vec<(i64, i32)> =
                    out_views.iter().map(|v| (v.base_offset(), v.last_offset_delta())).collect();
                let want_shape = vec![(0, 4), (5, 2), (8, 1), (10, 2), (15, 1)];
                assert_eq!(shape, want_shape, "{ctx}");
                for v in &out_views {
                    let original = in_views.iter().find(|i| i.base_offset() == v.base_offset());
                    let original = original.unwrap();
                    assert_eq!(v.attributes(), original.attributes(), "{ctx}");
                    assert_eq!(v.base_timestamp(), original.base_timestamp(), "{ctx}");
                    assert_eq!(v.max_timestamp(), original.max_timestamp(), "{ctx}");
                    assert_eq!(v.partition_leader_epoch(), 5, "{ctx}");
                    assert_eq!(v.compression().unwrap(), codec, "{ctx}");
                }

                // Batches with nothing to remove are byte-identical; A is rebuilt.
                let identical: &[usize] = if remove_tombstones { &[2, 3] } else { &[1, 2, 3, 5] };
                for &i in identical {
                    let base = in_views[i].base_offset();
                    let v = out_views.iter().find(|v| v.base_offset() == base).unwrap();
                    assert_eq!(v.bytes(), &inputs[i][..], "{ctx}: batch {i} was rewritten");
                }
                assert_eq!(out_views[0].records_count(), 1);
                assert_ne!(out_views[0].bytes(), &inputs[0][..]);

                let kept = want.len() as u64;
                let want_stats = CleanStats {
                    batches_read: 6,
                    batches_written: 5,
                    records_read: 17,
                    records_kept: kept,
                    bytes_read: input.len() as u64,
                    bytes_written: out.len() as u64,
                    tombstones_kept: want.iter().filter(|s| s.2.is_none()).count() as u64,
                };
                assert_eq!(stats, want_stats, "{ctx}");
            }
        }
    }

    #[test]
    fn compaction_is_idempotent() {
        for (_, kp_codec) in CODECS {
            let input: Vec<u8> = partition().iter().flat_map(|s| batch(s, kp_codec)).collect();
            let (once, _) = clean(&input, true);
            let (twice, stats) = clean(&once, true);
            assert_eq!(once, twice);
            assert_eq!(stats.records_read, stats.records_kept);
        }
    }

    #[test]
    fn large_multi_block_batches_are_rebuilt() {
        // 3,000 records of ~100 bytes: several xerial snappy blocks and LZ4 blocks.
        let keys: Vec<String> = (0..3000).map(|i| format!("key-{}", i % 1000)).collect();
        let values: Vec<String> = (0..3000).map(|i| format!("{i:0>96}")).collect();
        for (codec, kp_codec) in CODECS {
            let records: Vec<Record> = (0..3000)
                .map(|i| {
                    let mut r = kp_record(0, (i as i64, None, None));
                    r.key = Some(Bytes::from(keys[i].clone()));
                    r.value = Some(Bytes::from(values[i].clone()));
                    r
                })
                .collect();
            let input = encode(&records, kp_codec);
            let (out, stats) = clean(&input, false);
            assert_eq!(stats.records_kept, 1000, "{codec:?}");
            let sets = decode_with_client(&out);
            assert_eq!(sets.len(), 1);
            let offsets: Vec<i64> = sets[0].records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, (2000..3000).collect::<Vec<i64>>(), "{codec:?}");
            let v = BatchView::parse_checked(&out).unwrap();
            assert_eq!(
                (v.base_offset(), v.last_offset_delta(), v.records_count()),
                (0, 2999, 1000)
            );
            if codec != Compression::None {
                assert!(v.size() < 1000 * 100, "{codec:?} output is not compressed");
            }
        }
    }

    #[test]
    fn producer_fields_and_control_batches_are_preserved() {
        for (codec, kp_codec) in CODECS {
            let pid = 4242;
            let data: Vec<Record> = [
                (100, Some("t"), Some("old")),
                (101, Some("u"), Some("x")),
                (102, Some("t"), Some("new")),
            ]
            .into_iter()
            .map(|spec| {
                let mut r = kp_record(100, spec);
                r.transactional = true;
                r.producer_id = pid;
                r.producer_epoch = 3;
                r.sequence = 17 + (spec.0 - 100) as i32;
                r
            })
            .collect();
            // A COMMIT marker: key = (version 0, type 1), value = (version 0, coordinator epoch).
            // Its key bytes equal the data key [0, 0, 0, 1] below, which must not be superseded.
            let mut marker = kp_record(103, (103, None, None));
            marker.transactional = true;
            marker.control = true;
            marker.producer_id = pid;
            marker.producer_epoch = 3;
            marker.key = Some(Bytes::from_static(&[0, 0, 0, 1]));
            marker.value = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 9]));
            marker.headers.clear();
            let keyed_like_marker = {
                let mut r = kp_record(99, (99, None, Some("v")));
                r.key = Some(Bytes::from_static(&[0, 0, 0, 1]));
                r
            };

            let before = encode(&[keyed_like_marker], kp_codec);
            let txn = encode(&data, kp_codec);
            let control = encode(&[marker], KpCompression::None);
            let input = [before.clone(), txn.clone(), control.clone()].concat();
            let (out, stats) = clean(&input, true);

            let out_views = views(&out);
            assert_eq!(out_views.len(), 3, "{codec:?}");
            assert_eq!(out_views[0].bytes(), &before[..], "{codec:?}: marker key superseded data");
            assert_eq!(out_views[2].bytes(), &control[..], "{codec:?}: control batch changed");
            let (rebuilt, original) = (out_views[1], BatchView::parse(&txn).unwrap());
            assert_eq!(rebuilt.producer_id(), pid);
            assert_eq!(rebuilt.producer_epoch(), 3);
            assert_eq!(rebuilt.base_sequence(), 17);
            assert!(rebuilt.is_transactional());
            assert_eq!(rebuilt.attributes(), original.attributes());
            assert_eq!((rebuilt.last_offset_delta(), rebuilt.records_count()), (2, 2));
            assert_eq!(stats.records_read, 5);
            assert_eq!(stats.records_kept, 4);

            let sets = decode_with_client(&out);
            let got: Vec<(i64, bool)> =
                sets.iter().flat_map(|s| &s.records).map(|r| (r.offset, r.control)).collect();
            assert_eq!(got, vec![(99, false), (101, false), (102, false), (103, true)]);
            assert!(sets[1].records.iter().all(|r| r.producer_id == pid && r.transactional));
        }
    }

    #[test]
    fn raw_snappy_batches_from_other_clients_are_cleaned() {
        // librdkafka-style: the records section is one raw snappy block, no xerial framing.
        let specs = partition().concat();
        let records: Vec<Record> = specs.iter().map(|&s| kp_record(0, s)).collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: KpCompression::Snappy };
        RecordBatchEncoder::encode_with_custom_compression(
            &mut buf,
            &records,
            &options,
            Some(|records: &mut BytesMut, out: &mut BytesMut, _: KpCompression| {
                out.extend_from_slice(&snap::raw::Encoder::new().compress_vec(records)?);
                Ok(())
            }),
        )
        .unwrap();
        let input = buf.to_vec();
        assert_ne!(&input[HEADER_SIZE..HEADER_SIZE + 8], b"\x82SNAPPY\0");

        let (out, _) = clean(&input, false);
        let got: Vec<i64> =
            decode_with_client(&out).iter().flat_map(|s| &s.records).map(|r| r.offset).collect();
        assert_eq!(got, expected(&specs, false).iter().map(|s| s.0).collect::<Vec<_>>());
        // The rebuilt batch is written in the Java producer's xerial framing.
        assert_eq!(&out[HEADER_SIZE..HEADER_SIZE + 8], b"\x82SNAPPY\0");
    }

    #[test]
    fn empty_input_and_empty_map() {
        let (out, stats) = clean(&[], true);
        assert!(out.is_empty());
        assert_eq!(stats, CleanStats::default());
        // Without an offset map nothing is superseded, but tombstones still go when asked.
        let input = batch(&partition()[1], KpCompression::Gzip);
        let mut out = Vec::new();
        let stats = filter_batches(&input, &OffsetMap::new(), false, LIMIT, &mut out).unwrap();
        assert_eq!((out.as_slice(), stats.records_kept), (&input[..], 3));
        out.clear();
        filter_batches(&input, &OffsetMap::new(), true, LIMIT, &mut out).unwrap();
        let offsets: Vec<i64> =
            decode_with_client(&out)[0].records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![6]);
    }

    #[test]
    fn empty_batches_are_kept_whatever_their_codec() {
        for (codec, _) in CODECS {
            let mut fields = BatchFields::of(
                &BatchView::parse(&batch(&partition()[4], KpCompression::None)).unwrap(),
            );
            fields.attributes |= codec.id();
            fields.producer_id = 77;
            let empty = assemble_batch(&fields, 0, &[]);
            let (out, stats) = clean(&empty, true);
            assert_eq!(out, empty, "{codec:?}");
            assert_eq!((stats.records_read, stats.batches_written), (0, 1));
        }
    }

    #[test]
    fn batches_inflating_past_the_limit_are_streamed_not_refused() {
        // The limit no longer caps a whole section (the cleaner streams it); it still bounds
        // one snappy block, the codec's unit of decompression.
        for (codec, kp_codec) in CODECS {
            let input = batch(&partition()[0], kp_codec);
            let mut map = OffsetMap::new();
            let r = build_offset_map(&input, &mut map, 10);
            if codec == Compression::Snappy {
                assert!(matches!(r, Err(LogError::Decompression(_))), "{r:?}");
                continue;
            }
            r.unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            assert!(!map.is_empty());
            let stats = filter_batches(&input, &map, false, 10, &mut Vec::new()).unwrap();
            assert_eq!(stats.batches_read, 1, "{codec:?}");
        }
    }

    #[test]
    fn keys_hash_the_same_in_pieces_and_whole() {
        let seeds = KeySeeds::default();
        let whole = {
            let mut h = seeds.start();
            h.update(b"a key that arrives in pieces");
            h.finish()
        };
        let mut pieces = seeds.start();
        for chunk in [&b"a key th"[..], b"", b"at arrives", b" in pieces"] {
            pieces.update(chunk);
        }
        assert_eq!(pieces.finish(), whole);
        let mut other = seeds.start();
        other.update(b"a key that arrives in piece");
        assert_ne!(other.finish(), whole);
    }

    #[test]
    fn truncated_input_is_an_error() {
        for (codec, kp_codec) in CODECS {
            let first = batch(&partition()[0], kp_codec);
            let input = [first.clone(), batch(&partition()[1], kp_codec)].concat();
            for cut in (1..input.len()).filter(|&c| c != first.len()) {
                let mut map = OffsetMap::new();
                let r = build_offset_map(&input[..cut], &mut map, LIMIT);
                assert!(r.is_err(), "{codec:?} map accepted a cut at {cut}");
                let r = filter_batches(&input[..cut], &map, true, LIMIT, &mut Vec::new());
                assert!(r.is_err(), "{codec:?} filter accepted a cut at {cut}");
            }
        }
    }

    #[test]
    fn truncated_records_section_with_valid_crc_is_an_error() {
        // The header is consistent (length and CRC recomputed) but the records are cut short:
        // only decompression or record parsing can notice.
        for (codec, kp_codec) in CODECS {
            let original = batch(&partition()[0], kp_codec);
            for drop in [1, 2, 5] {
                let mut bad = original[..original.len() - drop].to_vec();
                let mut m = BatchMut::new(&mut bad);
                m.set_length_from_buffer();
                m.update_crc();
                let r = build_offset_map(&bad, &mut OffsetMap::new(), LIMIT);
                assert!(r.is_err(), "{codec:?} map accepted {drop} bytes short");
                let r = filter_batches(&bad, &OffsetMap::new(), false, LIMIT, &mut Vec::new());
                assert!(r.is_err(), "{codec:?} filter accepted {drop} bytes short");
            }
        }
    }

    #[test]
    fn flipped_bytes_are_errors_not_panics() {
        for (codec, kp_codec) in CODECS {
            let input = batch(&partition()[0], kp_codec);
            for i in HEADER_SIZE..input.len() {
                let mut bad = input.clone();
                bad[i] ^= 0x5a;
                // The CRC catches it before the batch could be rebuilt with a fresh CRC.
                let r = filter_batches(&bad, &OffsetMap::new(), true, LIMIT, &mut Vec::new());
                assert!(matches!(r, Err(LogError::CorruptBatch(_))), "{codec:?} byte {i}");
                // Without the CRC check, whatever the codec makes of it, nothing panics.
                let _ = build_offset_map(&bad, &mut OffsetMap::new(), LIMIT);
                BatchMut::new(&mut bad).update_crc();
                let _ = filter_batches(&bad, &OffsetMap::new(), true, LIMIT, &mut Vec::new());
            }
            // gzip's own CRC32 catches a flip in the deflate stream even with a valid batch CRC.
            if codec == Compression::Gzip {
                let mut bad = input.clone();
                let at = input.len() - 12;
                bad[at] ^= 0x5a;
                BatchMut::new(&mut bad).update_crc();
                let r = build_offset_map(&bad, &mut OffsetMap::new(), LIMIT);
                assert!(matches!(r, Err(LogError::Decompression(_))), "{r:?}");
            }
        }
    }
}
