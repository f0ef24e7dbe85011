//! `PartitionLog`: the log of one topic-partition (Kafka's `UnifiedLog` and `LocalLog`).
//!
//! It owns the ordered segments, the log start offset, log end offset (LEO), high watermark
//! (HW, set from outside: on one node HW = LEO) and recovery point, the leader-epoch cache and
//! `partition.metadata`. Appends validate and stamp whole batches as bytes; reads return whole
//! batches; recovery, truncation, retention, flushing and compaction all act on whole segments
//! or batches. Per-data-directory checkpoints and the clean-shutdown marker belong to
//! [`super::manager::LogManager`], which passes what it read in [`LoadState`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{BatchIter, BatchMut, BatchView};
use super::clock::Clock;
use super::config::LogConfig;
use super::epoch_cache::LeaderEpochCache;
use super::producer_state::{Check, ProducerStateManager};
use super::segment::{file_name, segment_paths, LogSegment};
use super::validator::{self, AppendOrigin};
use super::{cleaner, LogError, Result, TopicPartition};
use crate::zero_copy::FileSlice;

/// ListOffsets' special timestamps.
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
pub const MAX_TIMESTAMP: i64 = -3;

/// What the owner of the data directory knows about this log from its checkpoints.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadState {
    /// The previous shutdown was clean: segments are trusted (only tails are checked).
    pub clean_shutdown: bool,
    /// Offset below which data is known to be flushed; segments from it on are recovered.
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// What happened while opening a log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub segments_recovered: usize,
    pub bytes_truncated: u64,
    pub segments_deleted: usize,
}

/// Result of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// The broker time stamped into the batches when the topic uses LogAppendTime.
    pub log_append_time: Option<i64>,
    pub records: i64,
    pub bytes: usize,
    /// The batch was a retry of one already written: nothing was appended and the offsets are
    /// the original ones.
    pub duplicate: bool,
}

/// Result of a read: the records in memory ([`PartitionLog::read`]) or as a range of a segment
/// file ([`PartitionLog::read_slice`]).
#[derive(Clone, Debug, Default)]
pub struct FetchData<R = Vec<u8>> {
    /// Whole record batches, possibly none.
    pub records: R,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// The log of one topic-partition.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    tp: TopicPartition,
    config: LogConfig,
    clock: Arc<dyn Clock>,
    segments: BTreeMap<i64, LogSegment>,
    log_start_offset: i64,
    high_watermark: i64,
    recovery_point: i64,
    epochs: LeaderEpochCache,
    producers: ProducerStateManager,
    unflushed_messages: i64,
    last_flush_ms: i64,
    /// Segment files were created or removed since the directory was last fsynced: the next
    /// flush syncs it too, or a power loss could lose a flushed segment's directory entry.
    dir_dirty: bool,
    /// Where the last compaction pass ended (compacted logs only).
    cleaner: cleaner::CleanerState,
    /// Where each flush's duration goes (`sluice_log_flush_latency_seconds`).
    flush_latency: Option<prometheus_client::metrics::histogram::Histogram>,
}

fn parse_segment_base(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering as `state` requires.
    pub fn open(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        state: LoadState,
    ) -> Result<(Self, RecoveryReport)> {
        std::fs::create_dir_all(dir).map_err(LogError::io(dir))?;
        cleaner::complete_interrupted_swaps(dir)?;
        let now = clock.now_ms();
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(LogError::io(dir))? {
            let entry = entry.map_err(LogError::io(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = parse_segment_base(&name) {
                bases.push(base);
            } else if name.ends_with(".index") || name.ends_with(".timeindex") {
                // An index without its log (a crash between deletes): remove it.
                let stem = name.split('.').next().unwrap_or_default();
                if !dir.join(format!("{stem}.log")).exists() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        bases.sort_unstable();
        let mut report = RecoveryReport { segments: bases.len(), ..Default::default() };
        let mut segments = BTreeMap::new();
        let mut stop_after: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            if stop_after.is_some() {
                // A segment before this one was truncated: everything after it is invalid.
                for path in segment_paths(dir, base, "") {
                    let _ = std::fs::remove_file(path);
                }
                report.segments_deleted += 1;
                continue;
            }
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let recover = !state.clean_shutdown && next_base > state.recovery_point;
            let (seg, truncated) = LogSegment::open(dir, base, &config, now, recover)?;
            if recover {
                report.segments_recovered += 1;
            }
            report.bytes_truncated += truncated;
            if truncated > 0 && i + 1 < bases.len() {
                stop_after = Some(base);
            }
            segments.insert(base, seg);
        }
        // Drop empty non-active segments left behind (e.g. by a crash right after a roll).
        let empty: Vec<i64> =
            segments.iter().rev().skip(1).filter(|(_, s)| s.is_empty()).map(|(&b, _)| b).collect();
        for base in empty {
            if let Some(seg) = segments.remove(&base) {
                seg.delete(dir)?;
            }
        }
        if segments.is_empty() {
            let base = state.log_start_offset.max(0);
            segments.insert(base, LogSegment::create(dir, base, &config, now, "")?);
        }
        let mut log = PartitionLog {
            dir: dir.into(),
            tp,
            config,
            clock,
            segments,
            log_start_offset: 0,
            high_watermark: 0,
            recovery_point: 0,
            epochs: LeaderEpochCache::empty(dir),
            producers: ProducerStateManager::new(dir),
            unflushed_messages: 0,
            last_flush_ms: now,
            dir_dirty: true,
            cleaner: cleaner::CleanerState::default(),
            flush_latency: None,
        };
        match LeaderEpochCache::load(dir) {
            Ok(epochs) => log.epochs = epochs,
            // The epochs are also in every batch header: rebuild rather than refuse the log.
            Err(e @ LogError::CorruptFile { .. }) => {
                tracing::warn!(partition = %log.tp, error = %e,
                    "rebuilding the leader epoch cache from the log");
                log.rebuild_epoch_cache()?;
            }
            Err(e) => return Err(e),
        }
        let first_base = *log.segments.keys().next().expect("at least one segment");
        let leo = log.log_end_offset();
        log.log_start_offset = state.log_start_offset.clamp(first_base, leo.max(first_base));
        log.high_watermark = state.high_watermark.clamp(log.log_start_offset, leo);
        log.recovery_point = state.recovery_point.min(leo);
        if log.epochs.truncate_from_end(leo) | log.epochs.truncate_from_start(log.log_start_offset)
        {
            log.epochs.persist()?;
        }
        log.rebuild_producer_state()?;
        Ok((log, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// Applies a new topic configuration; it takes effect for the next roll/retention/append.
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }
    pub fn epoch_entries(&self) -> &[(i32, i64)] {
        self.epochs.entries()
    }
    /// Total bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }
    /// How much before `segment.ms` the active segment rolls (`segment.jitter.ms`).
    pub fn active_roll_jitter_ms(&self) -> i64 {
        self.active().roll_jitter_ms()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    pub(crate) fn segments(&self) -> &BTreeMap<i64, LogSegment> {
        &self.segments
    }
    pub(crate) fn segments_mut(&mut self) -> &mut BTreeMap<i64, LogSegment> {
        &mut self.segments
    }
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    pub(crate) fn cleaner_state(&self) -> cleaner::CleanerState {
        self.cleaner
    }
    pub(crate) fn set_cleaner_state(&mut self, state: cleaner::CleanerState) {
        self.cleaner = state;
    }

    fn active(&self) -> &LogSegment {
        self.segments.values().next_back().expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments.values_mut().next_back().expect("a log always has an active segment")
    }

    /// Validates every batch in `records`: structure, magic v2, CRC and size limit. Returns the
    /// number of records (from the batch headers).
    fn validate(&self, records: &[u8]) -> Result<i64> {
        if records.is_empty() {
            return Err(LogError::CorruptBatch("the record set holds no batch".into()));
        }
        let mut count = 0i64;
        for item in BatchIter::new(records, true) {
            let (_, view) = item?;
            self.check_size(&view)?;
            count += view.last_offset_delta() as i64 + 1;
        }
        Ok(count)
    }

    fn check_size(&self, view: &BatchView<'_>) -> Result<()> {
        if view.size() as u64 > self.config.max_message_bytes {
            return Err(LogError::BatchTooLarge {
                size: view.size(),
                max: self.config.max_message_bytes as usize,
            });
        }
        Ok(())
    }

    /// Validates client batches as Kafka's `LogValidator` does (see [`validator`]), makes
    /// each CreateTime batch state its records' largest timestamp, and rewrites batches into
    /// the topic's `compression.type` where it names a codec they are not in. Returns the
    /// record count.
    fn validate_client(&self, records: &mut Vec<u8>, origin: AppendOrigin) -> Result<i64> {
        if records.is_empty() {
            return Err(LogError::CorruptBatch("the record set holds no batch".into()));
        }
        let rules = validator::Rules::new(&self.config, self.clock.now_ms(), origin);
        let (mut pos, mut count) = (0, 0i64);
        let mut rewritten: Option<Vec<u8>> = None;
        while pos < records.len() {
            let view = BatchView::parse_client(&records[pos..])?;
            let size = view.size();
            self.check_size(&view)?;
            let into = match self.config.compression_type.codec() {
                Some(codec) if codec != view.compression()? => Some(validator::Recompression {
                    codec,
                    level: self.compression_level(codec),
                    max_bytes: self.config.max_message_bytes as usize,
                }),
                _ => None,
            };
            let (checked, recompressed) =
                validator::validate_and_recompress(&view, &rules, &self.tp, into.as_ref())?;
            let stale_max = checked.max_timestamp != view.max_timestamp();
            count += i64::from(view.records_count());
            if let Some(batch) = recompressed {
                // Everything before this batch was copied as it was; this one is replaced
                // (its header already states the records' max timestamp).
                rewritten.get_or_insert_with(|| records[..pos].to_vec()).extend_from_slice(&batch);
            } else {
                if !rules.log_append_time && stale_max {
                    BatchMut::new(&mut records[pos..pos + size])
                        .set_max_timestamp(checked.max_timestamp);
                }
                if let Some(out) = rewritten.as_mut() {
                    out.extend_from_slice(&records[pos..pos + size]);
                }
            }
            pos += size;
        }
        if let Some(out) = rewritten {
            *records = out;
        }
        Ok(count)
    }

    /// `compression.<codec>.level` of this topic, for the codecs that have one.
    fn compression_level(&self, codec: super::batch::Compression) -> Option<i32> {
        use super::batch::Compression as C;
        match codec {
            C::Gzip => Some(self.config.gzip_level),
            C::Lz4 => Some(self.config.lz4_level),
            C::Zstd => Some(self.config.zstd_level),
            C::None | C::Snappy => None,
        }
    }

    /// Appends batches produced by a client to this log as leader: assigns offsets from the
    /// LEO, stamps `leader_epoch` and (for LogAppendTime topics) the broker time, in place.
    /// Nothing is written if any batch is invalid.
    pub fn append_as_leader(
        &mut self,
        records: &mut Vec<u8>,
        leader_epoch: i32,
    ) -> Result<AppendInfo> {
        self.append_as_leader_from(records, leader_epoch, AppendOrigin::Client)
    }

    /// [`append_as_leader`](Self::append_as_leader) for a writer other than a client.
    pub fn append_as_leader_from(
        &mut self,
        records: &mut Vec<u8>,
        leader_epoch: i32,
        origin: AppendOrigin,
    ) -> Result<AppendInfo> {
        let count = self.validate_client(records, origin)?;
        // Idempotent producers: a retried batch answers with its original offsets.
        let mut pending = std::collections::BTreeMap::new();
        for item in BatchIter::new(records, false) {
            let (_, view) = item?;
            match self.producers.check(&view, &pending)? {
                Check::Duplicate(meta) => {
                    return Ok(AppendInfo {
                        first_offset: meta.first_offset,
                        last_offset: meta.last_offset,
                        max_timestamp: meta.timestamp,
                        offset_of_max_timestamp: meta.last_offset,
                        log_append_time: None,
                        records: meta.last_offset - meta.first_offset + 1,
                        bytes: 0,
                        duplicate: true,
                    })
                }
                Check::Append => {
                    ProducerStateManager::record(&mut pending, Some(&self.producers), &view)
                }
                Check::NotIdempotent => {}
            }
        }
        pending.clear();
        let now = self.clock.now_ms();
        let append_time = self.config.log_append_time.then_some(now);
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut pos = 0;
        let (mut max_ts, mut offset_of_max_ts) = (-1i64, first_offset);
        while pos < records.len() {
            let size = super::batch::batch_size(&records[pos..])?;
            let mut batch = BatchMut::new(&mut records[pos..pos + size]);
            batch.set_base_offset(next);
            batch.set_partition_leader_epoch(leader_epoch);
            if let Some(t) = append_time {
                batch.set_log_append_time(t);
            }
            let view = batch.view();
            if view.max_timestamp() > max_ts {
                max_ts = view.max_timestamp();
                offset_of_max_ts = view.last_offset();
            }
            next = view.next_offset();
            pos += size;
        }
        debug_assert_eq!(next - first_offset, count);
        for item in BatchIter::new(records, false) {
            let (_, view) = item?;
            ProducerStateManager::record(&mut pending, Some(&self.producers), &view);
        }
        self.write(records, first_offset, next - 1, max_ts, Some(leader_epoch))?;
        self.producers.apply(pending);
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            max_timestamp: max_ts,
            offset_of_max_timestamp: offset_of_max_ts,
            log_append_time: append_time,
            records: count,
            bytes: records.len(),
            duplicate: false,
        })
    }

    /// Appends batches that already carry offsets and epochs (replication from a leader).
    /// Offsets must start at or above the LEO and increase.
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<AppendInfo> {
        self.validate(records)?;
        let mut expected = self.log_end_offset();
        let first_offset = BatchView::parse(records)?.base_offset();
        let (mut max_ts, mut offset_of_max_ts, mut last) = (-1i64, first_offset, first_offset);
        let mut epochs = Vec::new();
        for item in BatchIter::new(records, false) {
            let (_, view) = item?;
            if view.base_offset() < expected {
                return Err(LogError::NonMonotonicOffset {
                    offset: view.base_offset(),
                    log_end: expected,
                });
            }
            epochs.push((view.partition_leader_epoch(), view.base_offset()));
            if view.max_timestamp() > max_ts {
                max_ts = view.max_timestamp();
                offset_of_max_ts = view.last_offset();
            }
            last = view.last_offset();
            expected = view.next_offset();
        }
        self.write(records, first_offset, last, max_ts, None)?;
        for item in BatchIter::new(records, false) {
            self.producers.replay(&item?.1);
        }
        let mut changed = false;
        for (epoch, offset) in epochs {
            changed |= self.epochs.assign(epoch, offset);
        }
        if changed {
            self.epochs.persist()?;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: last,
            max_timestamp: max_ts,
            offset_of_max_timestamp: offset_of_max_ts,
            log_append_time: None,
            records: last - first_offset + 1,
            bytes: records.len(),
            duplicate: false,
        })
    }

    fn write(
        &mut self,
        records: &[u8],
        first_offset: i64,
        last_offset: i64,
        max_ts: i64,
        leader_epoch: Option<i32>,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let active = self.active();
        let roll = active.should_roll(&self.config, records.len() as u64, last_offset, max_ts, now)
            // A follower append that skips offsets starts a segment at the batch's own offset.
            || (active.is_empty() && active.base_offset() < first_offset);
        if roll {
            self.roll_at(first_offset)?;
        }
        if let Some(epoch) = leader_epoch {
            if self.epochs.assign(epoch, first_offset) {
                self.epochs.persist()?;
            }
        }
        self.active_mut().append(records)?;
        self.unflushed_messages += last_offset - first_offset + 1;
        if self.unflushed_messages >= self.config.flush_messages
            || now - self.last_flush_ms >= self.config.flush_ms
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Rolls to a new active segment starting at the LEO (no-op when the active one is empty).
    pub fn roll(&mut self) -> Result<()> {
        let leo = self.log_end_offset();
        if self.active().is_empty() {
            return Ok(());
        }
        self.roll_at(leo)
    }

    fn roll_at(&mut self, base: i64) -> Result<()> {
        let now = self.clock.now_ms();
        let was_empty = self.active().is_empty();
        if was_empty {
            // Replace an empty active segment rather than keep an empty one behind.
            let old_base = self.active().base_offset();
            if old_base == base {
                return Ok(());
            }
            self.delete_segment(old_base)?;
        } else {
            self.active_mut().seal(true)?;
            // Kafka snapshots producer state at every roll: recovery replays one segment at most.
            self.producers.take_snapshot(base)?;
            // The sealed segment (and the snapshot) are durable only with their directory entries.
            self.sync_dir_if_dirty()?;
        }
        self.create_segment(base, now)?;
        if !was_empty {
            // Kafka flushes the old segment when it rolls; the recovery point moves past it.
            self.recovery_point = self.recovery_point.max(base);
        }
        Ok(())
    }

    /// Whole batches from `offset`, at most `max_bytes` (the first batch whole even when
    /// larger), excluding batches at or beyond `max_offset` (HW for consumers, LEO for
    /// followers), as a range of one segment file; nothing is read but batch headers.
    pub fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<FetchData<Option<FileSlice>>> {
        let leo = self.log_end_offset();
        if offset < self.log_start_offset || offset > leo {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: leo,
            });
        }
        let mut records = None;
        let start = self.segments.range(..=offset).next_back().map(|(&b, _)| b).unwrap_or(offset);
        for (_, seg) in self.segments.range(start..) {
            if seg.base_offset() >= max_offset {
                break;
            }
            records = seg.slice(offset, max_bytes, max_offset)?;
            if records.is_some() {
                break;
            }
        }
        Ok(FetchData {
            records,
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
            log_end_offset: leo,
        })
    }

    /// [`Self::read_slice`], read into memory.
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<FetchData> {
        let data = self.read_slice(offset, max_bytes, max_offset)?;
        let records = match &data.records {
            Some(slice) => slice.read_to_vec().map_err(LogError::io(&self.dir))?,
            None => Vec::new(),
        };
        Ok(FetchData {
            records,
            high_watermark: data.high_watermark,
            log_start_offset: data.log_start_offset,
            log_end_offset: data.log_end_offset,
        })
    }

    /// Sets the high watermark (clamped to [log start, LEO]) and returns the value set.
    pub fn update_high_watermark(&mut self, hw: i64) -> i64 {
        self.high_watermark = hw.clamp(self.log_start_offset, self.log_end_offset());
        self.high_watermark
    }

    /// ListOffsets: `EARLIEST_TIMESTAMP` (log start), `LATEST_TIMESTAMP` (LEO; the protocol
    /// layer uses the HW for consumers), `MAX_TIMESTAMP` (the record with the largest
    /// timestamp), or the first record with timestamp `>= ts`. Returns (offset, timestamp).
    pub fn fetch_offset_by_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        match ts {
            EARLIEST_TIMESTAMP => return Ok(Some((self.log_start_offset, -1))),
            LATEST_TIMESTAMP => return Ok(Some((self.log_end_offset(), -1))),
            MAX_TIMESTAMP => {
                let best = self
                    .segments
                    .values()
                    .filter(|s| s.max_timestamp() >= 0)
                    .max_by_key(|s| (s.max_timestamp(), std::cmp::Reverse(s.base_offset())));
                let Some(seg) = best else { return Ok(None) };
                let target = seg.max_timestamp();
                return seg.find_offset_by_timestamp(
                    target,
                    self.log_start_offset,
                    self.config.decompress_limit(),
                );
            }
            t if t < 0 => {
                return Err(LogError::CorruptBatch(format!("invalid timestamp {t}")));
            }
            _ => {}
        }
        for seg in self.segments.values() {
            if seg.next_offset() <= self.log_start_offset || seg.max_timestamp() < ts {
                continue;
            }
            if let Some(found) = seg.find_offset_by_timestamp(
                ts,
                self.log_start_offset,
                self.config.decompress_limit(),
            )? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The leader epoch that wrote `offset` (the newest epoch starting at or before it), or -1.
    pub fn epoch_for_offset(&self, offset: i64) -> i32 {
        self.epochs.entries().iter().rev().find(|&&(_, s)| s <= offset).map_or(-1, |&(e, _)| e)
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` as Kafka's leader epoch cache answers it.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// Removes every batch whose last offset is `>= offset` (follower truncation). A target at
    /// or below the log start, or one that removes the batch holding the log start, empties the
    /// log and restarts it there.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset <= self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        let first_base = *self.segments.keys().next().expect("segment");
        for base in doomed {
            if base == first_base {
                continue;
            }
            self.delete_segment(base)?;
        }
        self.active_mut().truncate_to(offset)?;
        let leo = self.log_end_offset();
        if leo < self.log_start_offset {
            // The batch holding the log start was removed: nothing readable is left.
            return self.truncate_fully_and_start_at(self.log_start_offset);
        }
        if self.epochs.truncate_from_end(leo) {
            self.epochs.persist()?;
        }
        self.high_watermark = self.high_watermark.min(leo);
        self.recovery_point = self.recovery_point.min(leo);
        // What replaces the truncated records has not been compacted.
        self.cleaner.first_dirty_offset = self.cleaner.first_dirty_offset.min(leo);
        self.producers.delete_snapshots_after(leo)?;
        self.rebuild_producer_state()
    }

    /// Deletes every segment and starts an empty log at `offset`.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        let now = self.clock.now_ms();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for base in bases {
            self.delete_segment(base)?;
        }
        self.create_segment(offset, now)?;
        self.log_start_offset = offset;
        self.high_watermark = offset;
        self.recovery_point = offset;
        self.cleaner = cleaner::CleanerState::default();
        self.epochs.clear();
        self.epochs.persist()?;
        self.producers.clear();
        self.producers.delete_snapshots_after(-1)?;
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the HW) and deletes
    /// segments that fall entirely below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        if offset > self.high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.high_watermark,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            if self.epochs.truncate_from_start(offset) {
                self.epochs.persist()?;
            }
        }
        self.delete_segments_while(|_, seg, next_base| {
            next_base <= offset && seg.next_offset() <= offset
        })?;
        Ok(self.log_start_offset)
    }

    /// Retention: with a delete policy, removes non-active segments whose largest timestamp is
    /// older than `retention.ms`, then oldest segments while the log exceeds `retention.bytes`;
    /// always removes segments below the log start offset. Only segments wholly below the HW
    /// are deleted. Returns the number of segments deleted.
    pub fn delete_old_segments(&mut self) -> Result<usize> {
        let start = self.log_start_offset;
        let mut deleted = self.delete_segments_while(|_, seg, next_base| {
            next_base <= start && seg.next_offset() <= start
        })?;
        if self.config.cleanup_policy.deletes() {
            let now = self.clock.now_ms();
            let retention_ms = self.config.retention_ms;
            if retention_ms >= 0 {
                deleted += self.delete_segments_while(|_, seg, _| {
                    now - seg.largest_timestamp() > retention_ms
                })?;
            }
            let retention_bytes = self.config.retention_bytes;
            if retention_bytes >= 0 {
                let mut excess = self.size_bytes() as i64 - retention_bytes;
                deleted += self.delete_segments_while(|_, seg, _| {
                    if excess - seg.size() as i64 >= 0 {
                        excess -= seg.size() as i64;
                        true
                    } else {
                        false
                    }
                })?;
            }
        }
        Ok(deleted)
    }

    /// Deletes segments from the oldest while `pred(base, segment, next segment's base)` holds,
    /// never the active segment and never data at or above the HW; advances the log start.
    fn delete_segments_while<F>(&mut self, mut pred: F) -> Result<usize>
    where
        F: FnMut(i64, &LogSegment, i64) -> bool,
    {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut deleted = 0;
        for pair in bases.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            let seg = &self.segments[&base];
            if next_base > self.high_watermark || !pred(base, seg, next_base) {
                break;
            }
            tracing::debug!(partition = %self.tp, base, "deleting segment");
            self.delete_segment(base)?;
            deleted += 1;
            if next_base > self.log_start_offset {
                self.log_start_offset = next_base;
            }
        }
        if deleted > 0 && self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.persist()?;
        }
        Ok(deleted)
    }

    /// Records each later flush's duration in `histogram`.
    pub fn time_flushes(&mut self, histogram: prometheus_client::metrics::histogram::Histogram) {
        self.flush_latency = Some(histogram);
    }

    /// The timestamp of the batch holding `offset` (its first record's, or the append time
    /// under LogAppendTime): one index lookup and a header read. `None` outside the log.
    pub fn timestamp_at(&self, offset: i64) -> Option<i64> {
        let (_, seg) = self.segments.range(..=offset).next_back()?;
        let header = seg.locate(offset).ok()??.header;
        Some(if header.is_log_append_time() { header.max_timestamp } else { header.base_timestamp })
    }

    /// Writes pending index entries and fsyncs every segment with unflushed data; the recovery
    /// point becomes the LEO.
    pub fn flush(&mut self) -> Result<()> {
        let started = std::time::Instant::now();
        let from =
            self.segments.range(..=self.recovery_point).next_back().map(|(&b, _)| b).unwrap_or(0);
        for (_, seg) in self.segments.range_mut(from..) {
            seg.flush(true)?;
        }
        self.sync_dir_if_dirty()?;
        self.recovery_point = self.log_end_offset();
        self.unflushed_messages = 0;
        self.last_flush_ms = self.clock.now_ms();
        if let Some(h) = &self.flush_latency {
            h.observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Creates an empty segment at `base` (the active one when it is the highest).
    fn create_segment(&mut self, base: i64, now: i64) -> Result<()> {
        let seg = LogSegment::create(&self.dir, base, &self.config, now, "")?;
        self.segments.insert(base, seg);
        self.dir_dirty = true;
        Ok(())
    }

    /// Removes the segment at `base` and deletes its files, if there is one.
    fn delete_segment(&mut self, base: i64) -> Result<()> {
        if let Some(seg) = self.segments.remove(&base) {
            seg.delete(&self.dir)?;
            self.dir_dirty = true;
        }
        Ok(())
    }

    fn sync_dir_if_dirty(&mut self) -> Result<()> {
        if self.dir_dirty {
            super::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Flushes if `flush.ms` has elapsed since the last flush (called periodically).
    pub fn flush_if_due(&mut self) -> Result<bool> {
        let now = self.clock.now_ms();
        if self.unflushed_messages > 0 && now - self.last_flush_ms >= self.config.flush_ms {
            self.flush()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Clean close: seals the active segment (final time-index entry), flushes everything and
    /// persists the epoch cache. The caller records the checkpoints and clean-shutdown marker.
    pub fn close(&mut self) -> Result<()> {
        // A clean start trusts every index: make them durable.
        self.active_mut().seal(true)?;
        self.flush()?;
        self.producers.take_snapshot(self.log_end_offset())?;
        self.epochs.persist()
    }

    /// Fills the (empty) leader epoch cache from the batch headers and persists it.
    fn rebuild_epoch_cache(&mut self) -> Result<()> {
        let epochs = &mut self.epochs;
        for seg in self.segments.values() {
            seg.for_each_batch(|_, view| {
                epochs.assign(view.partition_leader_epoch(), view.base_offset());
            })?;
        }
        epochs.persist()
    }

    /// Loads the newest producer snapshot at or below the LEO and replays the batches after it.
    fn rebuild_producer_state(&mut self) -> Result<()> {
        let leo = self.log_end_offset();
        let from = self.producers.load_latest_snapshot(leo)?;
        if from >= leo {
            return Ok(());
        }
        let start = self.segments.range(..=from).next_back().map(|(&b, _)| b).unwrap_or(from);
        let producers = &mut self.producers;
        for (_, seg) in self.segments.range(start..) {
            seg.for_each_batch(|_, view| {
                if view.last_offset() >= from {
                    producers.replay(view);
                }
            })?;
        }
        Ok(())
    }

    /// Idempotent producers with state here: (producer id, epoch, last sequence, last
    /// timestamp), as DescribeProducers reports them.
    pub fn active_producers(&self) -> Vec<(i64, i16, i32, i64)> {
        self.producers
            .producers()
            .map(|(pid, e)| (pid, e.epoch, e.last_sequence(), e.last_timestamp))
            .collect()
    }

    /// Idempotent producers known to this partition.
    pub fn producer_count(&self) -> usize {
        self.producers.producer_count()
    }

    /// Forgets producers idle for `producer.id.expiration.ms`; returns how many.
    pub fn remove_expired_producers(&mut self, expiration_ms: i64) -> usize {
        let now = self.clock.now_ms();
        self.producers.remove_expired(now, expiration_ms)
    }

    /// Writes `partition.metadata` with the topic id (Kafka's format: version and base64 id).
    pub fn write_partition_metadata(&self, topic_id: [u8; 16]) -> Result<()> {
        write_partition_metadata(&self.dir, topic_id)
    }

    /// Reads the topic id from `partition.metadata`, if present.
    pub fn read_partition_metadata(&self) -> Result<Option<[u8; 16]>> {
        read_partition_metadata(&self.dir)
    }

    /// Compacts the log if its policy says so: see [`cleaner::clean_log`].
    pub fn compact(&mut self) -> Result<cleaner::CleanStats> {
        if !self.config.cleanup_policy.compacts() {
            return Ok(cleaner::CleanStats::default());
        }
        cleaner::clean_log(self)
    }

    /// Removes the directory and everything in it (topic deletion).
    pub fn delete_dir(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(LogError::io(&self.dir))
    }

    /// Name of the segment file that holds `offset` (diagnostics).
    pub fn segment_file_for(&self, offset: i64) -> Option<String> {
        self.segments.range(..=offset).next_back().map(|(&b, _)| file_name(b, ".log"))
    }
}

/// File holding the topic id in each partition directory.
pub const PARTITION_METADATA: &str = "partition.metadata";

fn write_partition_metadata(dir: &Path, topic_id: [u8; 16]) -> Result<()> {
    use base64::Engine;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic_id);
    let text = format!("version: 0\ntopic_id: {id}\n");
    super::checkpoint::write_atomically(&dir.join(PARTITION_METADATA), text.as_bytes())
}

fn read_partition_metadata(dir: &Path) -> Result<Option<[u8; 16]>> {
    use base64::Engine;
    let path = dir.join(PARTITION_METADATA);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::Io { path, source: e }),
    };
    let corrupt = |reason: &str| LogError::CorruptFile {
        kind: "partition metadata",
        path: path.clone(),
        reason: reason.into(),
    };
    let mut version = None;
    let mut id = None;
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "version" => version = Some(v.trim().to_string()),
                "topic_id" => id = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    if version.as_deref() != Some("0") {
        return Err(corrupt("unsupported version"));
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id.ok_or_else(|| corrupt("no topic_id"))?)
        .map_err(|_| corrupt("topic_id is not base64"))?;
    let bytes: [u8; 16] = raw.try_into().map_err(|_| corrupt("topic_id is not 16 bytes"))?;
    Ok(Some(bytes))
}
