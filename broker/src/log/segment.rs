//! `LogSegment`: one `{base_offset:020}.log` file with its `.index` and `.timeindex`.
//!
//! The segment appends whole batches with positioned writes, keeps the sparse indexes current,
//! locates offsets with one index lookup plus a forward scan of batch headers, and recovers
//! itself by validating every batch (CRC included) and rebuilding both indexes. Reads return
//! whole batches only.

use std::fs::{File, OpenOptions};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{BatchHeader, BatchView, HEADER_SIZE, LOG_OVERHEAD, NO_TIMESTAMP};
use super::config::LogConfig;
use super::offset_index::OffsetIndex;
use super::record::RecordIter;
use super::time_index::TimeIndex;
use super::{compression, LogError, Result};
use crate::zero_copy::{FileSlice, SegmentFile};

/// Batch headers recovery holds in memory at once before indexing them.
const RECOVERY_CHUNK: usize = 65_536;

/// How much of the file a scan reads at a time.
const SCAN_WINDOW: usize = 64 * 1024;

/// File name of a segment file: the base offset padded to 20 digits plus the suffix.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The `.log`, `.index` and `.timeindex` paths of a segment, each with `suffix` appended.
pub fn segment_paths(dir: &Path, base_offset: i64, suffix: &str) -> [PathBuf; 3] {
    [".log", ".index", ".timeindex"]
        .map(|ext| dir.join(file_name(base_offset, &format!("{ext}{suffix}"))))
}

/// One segment of a partition log.
#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    log_path: PathBuf,
    file: Arc<SegmentFile>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_last_index_entry: u64,
    index_interval_bytes: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// One past the last offset stored here (the base offset while empty).
    next_offset: i64,
    /// Max timestamp of the first batch, which `segment.ms` is measured from (Kafka's
    /// `rollingBasedTimestamp`).
    first_batch_timestamp: Option<i64>,
    created_ms: i64,
    /// Drawn once per segment from [0, min(`segment.jitter.ms`, `segment.ms`)).
    roll_jitter_ms: i64,
    dirty: bool,
}

/// A batch located in a segment: its position and header.
#[derive(Clone, Copy, Debug)]
pub struct Located {
    pub position: u64,
    pub header: BatchHeader,
}

/// A segment's roll jitter: random in [0, min(`segment.jitter.ms`, `segment.ms`)), as Kafka
/// draws it, so segments of partitions created together do not all roll at the same moment.
fn roll_jitter(config: &LogConfig, base_offset: i64) -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return 0;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(base_offset);
    (h.finish() % bound as u64) as i64
}

impl LogSegment {
    /// Creates a new, empty segment. `suffix` is empty for a live segment, `.cleaned` for a
    /// segment under construction by the cleaner.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        suffix: &str,
    ) -> Result<Self> {
        let [log_path, index_path, time_path] = segment_paths(dir, base_offset, suffix);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(LogError::io(&log_path))?;
        let max_entries = config.max_index_entries();
        Ok(Self::assemble(
            base_offset,
            log_path,
            file,
            0,
            OffsetIndex::create(&index_path, base_offset, max_entries)?,
            TimeIndex::create(&time_path, base_offset, max_entries)?,
            config,
            now_ms,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        base_offset: i64,
        log_path: PathBuf,
        file: File,
        size: u64,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        config: &LogConfig,
        now_ms: i64,
    ) -> Self {
        LogSegment {
            base_offset,
            log_path,
            file: SegmentFile::new(file),
            size,
            offset_index,
            time_index,
            bytes_since_last_index_entry: 0,
            index_interval_bytes: config.index_interval_bytes,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            next_offset: base_offset,
            first_batch_timestamp: None,
            created_ms: now_ms,
            roll_jitter_ms: roll_jitter(config, base_offset),
            dirty: false,
        }
    }

    /// The (max) timestamp of the segment's first batch, once it has one.
    pub fn first_timestamp(&self) -> Option<i64> {
        self.first_batch_timestamp.filter(|t| *t >= 0)
    }

    /// How much before `segment.ms` this segment rolls (Kafka's `rollJitterMs`).
    pub fn roll_jitter_ms(&self) -> i64 {
        self.roll_jitter_ms
    }

    /// Opens an existing segment. With `recover`, every batch is validated and the indexes are
    /// rebuilt; otherwise the indexes are loaded (and rebuilt if missing or malformed) and only
    /// the tail after the last index entry is validated. Invalid trailing data is truncated.
    /// Returns the segment and the number of bytes truncated.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        recover: bool,
    ) -> Result<(Self, u64)> {
        let [log_path, index_path, time_path] = segment_paths(dir, base_offset, "");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(LogError::io(&log_path))?;
        let size = file.metadata().map_err(LogError::io(&log_path))?.len();
        let max_entries = config.max_index_entries();
        if !recover {
            let loaded =
                OffsetIndex::load(&index_path, base_offset, max_entries, size).and_then(|oi| {
                    let ti = TimeIndex::load(&time_path, base_offset, max_entries, i64::MAX)?;
                    Ok((oi, ti))
                });
            match loaded {
                Ok((oi, ti)) => {
                    let mut seg =
                        Self::assemble(base_offset, log_path, file, size, oi, ti, config, now_ms);
                    match seg.check_tail() {
                        Ok(truncated) => match seg.check_time_index() {
                            Ok(()) => return Ok((seg, truncated)),
                            Err(e) => {
                                tracing::warn!(segment = %seg.log_path.display(), error = %e,
                                    "time index does not match the log; rebuilding");
                                let more = seg.recover()?;
                                return Ok((seg, truncated + more));
                            }
                        },
                        Err(e) => {
                            tracing::warn!(segment = %seg.log_path.display(), error = %e,
                                "index does not match the log; rebuilding");
                            let truncated = seg.recover()?;
                            return Ok((seg, truncated));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(segment = %log_path.display(), error = %e,
                        "index missing or malformed; rebuilding");
                }
            }
        }
        let mut seg = Self::assemble(
            base_offset,
            log_path,
            file,
            size,
            OffsetIndex::create(&index_path, base_offset, max_entries)?,
            TimeIndex::create(&time_path, base_offset, max_entries)?,
            config,
            now_ms,
        );
        let truncated = seg.recover()?;
        Ok((seg, truncated))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn index_entries(&self) -> usize {
        self.offset_index.len()
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    /// The newest timestamp in the segment, or its creation time when it holds none (Kafka
    /// falls back to the file's modification time).
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.created_ms
        }
    }

    /// Whether appending `batch_size` bytes ending at `last_offset` (with max timestamp
    /// `batch_max_ts`) must go to a new segment: `segment.bytes`, `segment.ms`, a full index, or
    /// an offset that no longer fits the 32-bit relative offsets of the indexes.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        batch_size: u64,
        last_offset: i64,
        batch_max_ts: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let waited = match self.first_batch_timestamp {
            Some(t) if t >= 0 && batch_max_ts >= 0 => batch_max_ts - t,
            _ => now_ms - self.created_ms,
        };
        // A compacted topic with max.compaction.lag.ms rolls its active segment when that old,
        // so its records become cleanable in time (KIP-354).
        let compaction_due = config.cleanup_policy.compacts()
            && config.max_compaction_lag_ms < i64::MAX
            && waited >= config.max_compaction_lag_ms;
        self.size + batch_size > config.segment_bytes
            || waited >= config.segment_ms.saturating_sub(self.roll_jitter_ms)
            || compaction_due
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || last_offset - self.base_offset > u32::MAX as i64
    }

    /// Appends one or more complete, already validated batches. Offsets must be above the
    /// segment's next offset.
    pub fn append(&mut self, batches: &[u8]) -> Result<()> {
        self.file.file().write_all_at(batches, self.size).map_err(LogError::io(&self.log_path))?;
        let mut pos = 0usize;
        while pos < batches.len() {
            let header = BatchHeader::parse(&batches[pos..])?;
            self.index_batch(self.size + pos as u64, &header);
            pos += header.size;
        }
        self.size += batches.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Updates indexes and in-memory state for a batch at `position` (appended or recovered).
    fn index_batch(&mut self, position: u64, header: &BatchHeader) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(header.max_timestamp);
        }
        if self.bytes_since_last_index_entry > self.index_interval_bytes {
            self.offset_index.append(header.last_offset(), position as u32);
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, false);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.size as u64;
        self.next_offset = header.next_offset();
    }

    /// Reads `len` bytes at `position`.
    pub fn read_bytes(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        FileSlice::new(&self.file, position, len)
            .read_to_vec()
            .map_err(LogError::io(&self.log_path))
    }

    /// Walks batch headers from `from`, calling `f` for each, until `f` breaks, the file ends,
    /// or a header is malformed/truncated (reported in the error). Only headers are read.
    fn scan_headers<F>(&self, from: u64, mut f: F) -> Result<Option<LogError>>
    where
        F: FnMut(Located) -> ControlFlow<()>,
    {
        let mut pos = from;
        let mut window: Vec<u8> = Vec::new();
        let mut window_start = from;
        // A lookup from an index entry finds its batch within about `index.interval.bytes` plus
        // one batch: each read covers that interval plus a header, so a hop over a large batch
        // reads one small window at the next header instead of a large one.
        let window_size =
            (self.index_interval_bytes as usize + HEADER_SIZE).clamp(4096, SCAN_WINDOW);
        while pos < self.size {
            let needed = HEADER_SIZE.min((self.size - pos) as usize);
            let in_window =
                pos >= window_start && (pos - window_start) as usize + needed <= window.len();
            if !in_window {
                let len = window_size.min((self.size - pos) as usize);
                window = self.read_bytes(pos, len)?;
                window_start = pos;
            }
            let at = (pos - window_start) as usize;
            let header = match BatchHeader::parse(&window[at..]) {
                Ok(h) => h,
                Err(e) => return Ok(Some(e)),
            };
            if pos + header.size as u64 > self.size {
                return Ok(Some(LogError::CorruptBatch(format!(
                    "batch at position {pos} of {} bytes runs past the end of the segment",
                    header.size
                ))));
            }
            if f(Located { position: pos, header }).is_break() {
                return Ok(None);
            }
            pos += header.size as u64;
        }
        Ok(None)
    }

    /// Walks whole batches from `from`, verifying each CRC, calling `f` with each valid batch.
    /// Returns where valid data ends and the error that stopped the walk, if any.
    fn scan_batches<F>(
        &self,
        from: u64,
        mut min_offset: i64,
        mut f: F,
    ) -> Result<(u64, Option<LogError>)>
    where
        F: FnMut(u64, &BatchView<'_>) -> ControlFlow<()>,
    {
        let mut pos = from;
        while pos < self.size {
            let want = (SCAN_WINDOW * 16).min((self.size - pos) as usize);
            let mut window = self.read_bytes(pos, want)?;
            let mut at = 0usize;
            loop {
                if at + LOG_OVERHEAD > window.len() {
                    break;
                }
                let size = match super::batch::batch_size(&window[at..]) {
                    Ok(s) => s,
                    Err(e) => return Ok((pos + at as u64, Some(e))),
                };
                if pos + (at + size) as u64 > self.size {
                    return Ok((
                        pos + at as u64,
                        Some(LogError::CorruptBatch(
                            "batch runs past the end of the segment".into(),
                        )),
                    ));
                }
                if at + size > window.len() {
                    if at == 0 {
                        // One batch larger than the window: read it whole.
                        window = self.read_bytes(pos, size)?;
                        continue;
                    }
                    break;
                }
                match BatchView::parse_checked(&window[at..at + size])
                    .and_then(|view| self.check_offsets(&view, min_offset).map(|()| view))
                {
                    Ok(view) => {
                        min_offset = view.next_offset();
                        if f(pos + at as u64, &view).is_break() {
                            return Ok((pos + (at + size) as u64, None));
                        }
                    }
                    Err(e) => return Ok((pos + at as u64, Some(e))),
                }
                at += size;
            }
            if at == 0 {
                // Fewer than LOG_OVERHEAD bytes remain: a torn header.
                return Ok((pos, Some(LogError::CorruptBatch("truncated batch header".into()))));
            }
            pos += at as u64;
        }
        Ok((pos, None))
    }

    /// A stored batch's offsets must follow the previous batch's (`min_offset`) and fit the
    /// indexes' 32-bit offsets relative to the segment base. The base offset is outside the CRC,
    /// so this is what rejects a stale or garbled batch header during recovery.
    fn check_offsets(&self, view: &BatchView<'_>, min_offset: i64) -> Result<()> {
        let base = view.base_offset();
        let fits = |o: i64| o >= self.base_offset && o - self.base_offset <= u32::MAX as i64;
        match base.checked_add(view.last_offset_delta() as i64) {
            Some(last) if base >= min_offset && fits(base) && fits(last) => Ok(()),
            _ => Err(LogError::CorruptBatch(format!(
                "batch at base offset {base} does not follow offset {min_offset} in the segment \
                 starting at {}",
                self.base_offset
            ))),
        }
    }

    /// Validates every batch, rebuilds both indexes and truncates at the first invalid byte.
    /// Returns the number of bytes truncated.
    pub fn recover(&mut self) -> Result<u64> {
        self.offset_index.reset();
        self.time_index.reset();
        self.bytes_since_last_index_entry = 0;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = self.base_offset;
        self.next_offset = self.base_offset;
        self.first_batch_timestamp = None;
        // Headers are indexed a bounded chunk at a time: a 1 GiB segment of small batches has
        // millions of them, too many to hold at once.
        let mut headers = Vec::with_capacity(RECOVERY_CHUNK);
        let mut from = 0;
        let (valid_end, error) = loop {
            let (end, error) = self.scan_batches(from, self.next_offset, |pos, view| {
                headers.push((pos, view.header()));
                if headers.len() < RECOVERY_CHUNK {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })?;
            for (pos, header) in headers.drain(..) {
                self.index_batch(pos, &header);
            }
            if error.is_some() || end >= self.size {
                break (end, error);
            }
            from = end;
        };
        let truncated = self.size - valid_end;
        if let Some(e) = error {
            tracing::warn!(segment = %self.log_path.display(), position = valid_end, error = %e,
                "truncating invalid data during recovery");
            self.truncate_file(valid_end)?;
        }
        self.flush_indexes(false)?;
        Ok(truncated)
    }

    /// After loading trusted indexes, validates the batches after the last index entry (at most
    /// about `index.interval.bytes` plus one batch) and restores the in-memory state.
    fn check_tail(&mut self) -> Result<u64> {
        let (from, last_indexed) = match self.offset_index.last_entry() {
            Some((offset, pos)) => (pos as u64, Some(offset)),
            None => (0, None),
        };
        if let Some((ts, offset)) = self.time_index.last_entry() {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = offset;
        }
        // A trusted index leaves at most about index.interval.bytes (plus one batch) to scan.
        let mut headers = Vec::new();
        let (valid_end, error) = self.scan_batches(from, self.base_offset, |pos, view| {
            headers.push((pos, view.header()));
            ControlFlow::Continue(())
        })?;
        // The last entry must point at a valid batch ending at its offset. If it points into
        // the middle of a batch or at garbage, the index is wrong, not the log: rebuild it
        // rather than truncate the log at the entry's position.
        if let Some(expected) = last_indexed {
            if headers.first().map(|(_, h)| h.last_offset()) != Some(expected) {
                return Err(LogError::CorruptFile {
                    kind: "offset index",
                    path: self.log_path.clone(),
                    reason: "last entry does not point at its batch".into(),
                });
            }
        }
        if from == 0 {
            if let Some((_, h)) = headers.first() {
                self.first_batch_timestamp = Some(h.max_timestamp);
            }
        } else {
            // The first batch's timestamp is only needed for segment.ms on the active segment.
            let first = self.read_bytes(0, HEADER_SIZE.min(self.size as usize))?;
            self.first_batch_timestamp = BatchHeader::parse(&first).ok().map(|h| h.max_timestamp);
        }
        for (pos, header) in headers {
            // Re-index only what follows the last entry; the entry's own batch is indexed.
            if header.max_timestamp > self.max_timestamp {
                self.max_timestamp = header.max_timestamp;
                self.offset_of_max_timestamp = header.last_offset();
            }
            if Some(header.last_offset()) != last_indexed
                && self.bytes_since_last_index_entry > self.index_interval_bytes
            {
                {
                    self.offset_index.append(header.last_offset(), pos as u32);
                    self.time_index.maybe_append(
                        self.max_timestamp,
                        self.offset_of_max_timestamp,
                        false,
                    );
                    self.bytes_since_last_index_entry = 0;
                }
            }
            self.bytes_since_last_index_entry += header.size as u64;
            self.next_offset = header.next_offset();
        }
        let truncated = self.size - valid_end;
        if let Some(e) = error {
            tracing::warn!(segment = %self.log_path.display(), position = valid_end, error = %e,
                "truncating invalid tail");
            self.truncate_file(valid_end)?;
        }
        Ok(truncated)
    }

    /// The time index is loaded before the segment's end is known: its newest entry must name
    /// a batch still in the segment, by that batch's last offset and largest timestamp.
    fn check_time_index(&self) -> Result<()> {
        let Some((ts, offset)) = self.time_index.last_entry() else { return Ok(()) };
        let valid = offset < self.next_offset
            && matches!(self.locate(offset), Ok(Some(l))
                if l.header.last_offset() == offset && l.header.max_timestamp == ts);
        if valid {
            Ok(())
        } else {
            Err(LogError::CorruptFile {
                kind: "time index",
                path: self.log_path.clone(),
                reason: format!("last entry ({ts}, {offset}) does not match its batch"),
            })
        }
    }

    fn truncate_file(&mut self, size: u64) -> Result<()> {
        self.file.truncated();
        self.file.file().set_len(size).map_err(LogError::io(&self.log_path))?;
        self.size = size;
        self.offset_index.truncate_to_position(size as u32);
        self.dirty = true;
        Ok(())
    }

    /// The first batch whose last offset is `>= offset`, found with one index lookup and a
    /// forward scan of headers.
    pub fn locate(&self, offset: i64) -> Result<Option<Located>> {
        let (_, start) = self.offset_index.lookup(offset);
        let mut found = None;
        let err = self.scan_headers(start as u64, |loc| {
            if loc.header.last_offset() >= offset {
                found = Some(loc);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        match (found, err) {
            (Some(loc), _) => Ok(Some(loc)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    /// Whole batches starting with the one holding `offset`, up to `max_bytes` (the first
    /// batch whole even when larger, KIP-74), leaving out batches whose last offset is
    /// `>= max_offset`, as a range of the file (`None` when nothing qualifies). Only batch
    /// headers are read: at the start, at `max_offset`, and near the byte bound.
    pub fn slice(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<FileSlice>> {
        if offset >= max_offset.min(self.next_offset) {
            // Nothing at or past `offset` here, or nothing allowed (a caught-up follower at the
            // LEO, a consumer at the HW): answered without reading a header, as Kafka's
            // LocalLog.read does. Locating the log's end would scan the headers after the last
            // index entry, for every caught-up partition of every fetch.
            return Ok(None);
        }
        let Some(first) = self.locate(offset)? else { return Ok(None) };
        if first.header.last_offset() >= max_offset {
            return Ok(None);
        }
        // Where the batches below max_offset end.
        let offset_end = if max_offset >= self.next_offset {
            self.size
        } else {
            self.locate(max_offset)?.map_or(self.size, |l| l.position)
        };
        let byte_end = first.position.saturating_add(max_bytes.max(first.header.size) as u64);
        let end = if byte_end >= offset_end {
            offset_end
        } else {
            self.batch_end_within(first.position, byte_end)?
        };
        Ok(Some(FileSlice::new(&self.file, first.position, (end - first.position) as usize)))
    }

    /// The end of the last whole batch between `start` (a batch start) and `limit`, which is at
    /// least one batch past `start`: one index lookup and a short forward scan of headers.
    fn batch_end_within(&self, start: u64, limit: u64) -> Result<u64> {
        let from = (self.offset_index.floor_by_position(limit) as u64).max(start);
        let mut end = from;
        let err = self.scan_headers(from, |loc| {
            let next = loc.position + loc.header.size as u64;
            if next <= limit {
                end = next;
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })?;
        match err {
            Some(e) if end == start => Err(e),
            _ => Ok(end),
        }
    }

    /// [`Self::slice`], read into memory.
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<Vec<u8>> {
        match self.slice(offset, max_bytes, max_offset)? {
            Some(slice) => slice.read_to_vec().map_err(LogError::io(&self.log_path)),
            None => Ok(Vec::new()),
        }
    }

    /// The first record with timestamp `>= target` at or after `start_offset`, as
    /// (offset, timestamp). Uses the time index, then the offset index, then scans headers;
    /// only the one matching batch is decoded.
    pub fn find_offset_by_timestamp(
        &self,
        target: i64,
        start_offset: i64,
        decompress_limit: usize,
    ) -> Result<Option<(i64, i64)>> {
        let (_, indexed_offset) = self.time_index.lookup(target);
        let from = indexed_offset.max(start_offset);
        let (_, start) = self.offset_index.lookup(from);
        let mut found = None;
        let err = self.scan_headers(start as u64, |loc| {
            if loc.header.max_timestamp >= target && loc.header.last_offset() >= start_offset {
                found = Some(loc);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        let Some(loc) = found else {
            return match err {
                Some(e) => Err(e),
                None => Ok(None),
            };
        };
        let bytes = self.read_bytes(loc.position, loc.header.size)?;
        let view = BatchView::parse(&bytes)?;
        if loc.header.is_log_append_time() {
            return Ok(Some((view.base_offset().max(start_offset), view.max_timestamp())));
        }
        let payload =
            compression::decompress(view.compression()?, view.records_payload(), decompress_limit)?;
        for record in RecordIter::new(&payload, view.records_count()) {
            let record = record?;
            let offset = view.base_offset() + record.offset_delta as i64;
            let ts = view.record_timestamp(record.timestamp_delta);
            if ts >= target && offset >= start_offset {
                return Ok(Some((offset, ts)));
            }
        }
        Ok(None)
    }

    /// Removes every batch whose last offset is `>= offset`. Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64> {
        let Some(loc) = self.locate(offset)? else { return Ok(0) };
        let removed = self.size - loc.position;
        self.file.truncated();
        self.file.file().set_len(loc.position).map_err(LogError::io(&self.log_path))?;
        self.size = loc.position;
        self.offset_index.truncate_to_offset(loc.header.base_offset);
        self.offset_index.truncate_to_position(loc.position as u32);
        self.time_index.truncate_to_offset(loc.header.base_offset);
        // Restore exact state from the last index entry onwards.
        self.next_offset = self.base_offset;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        if self.size == 0 {
            self.first_batch_timestamp = None;
        }
        self.check_tail()?;
        self.dirty = true;
        Ok(removed)
    }

    fn flush_indexes(&mut self, fsync: bool) -> Result<()> {
        self.offset_index.flush(fsync)?;
        self.time_index.flush(fsync)
    }

    /// With `fsync`, forces the log file to disk.
    ///
    /// Index entries are not written here: an unclean start rebuilds the indexes of every
    /// segment from the recovery point on (which always includes the active one), so they only
    /// need to reach disk when the segment is sealed.
    pub fn flush(&mut self, fsync: bool) -> Result<()> {
        if fsync && self.dirty {
            self.file.file().sync_data().map_err(LogError::io(&self.log_path))?;
        }
        if fsync {
            self.dirty = false;
        }
        Ok(())
    }

    /// Closes the segment for appends: adds the final time-index entry so the index's last
    /// entry is the segment's largest timestamp, then flushes.
    pub fn seal(&mut self, fsync: bool) -> Result<()> {
        if self.max_timestamp >= 0 {
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
        }
        self.flush_indexes(fsync)?;
        self.flush(fsync)
    }

    /// Renames the three files from `from_suffix` to `to_suffix` (cleaner swap).
    pub fn rename_suffix(&mut self, dir: &Path, from_suffix: &str, to_suffix: &str) -> Result<()> {
        let from = segment_paths(dir, self.base_offset, from_suffix);
        let to = segment_paths(dir, self.base_offset, to_suffix);
        // Indexes first: the log file's rename is the step that commits a swap.
        self.offset_index.rename_to(&to[1])?;
        self.time_index.rename_to(&to[2])?;
        std::fs::rename(&from[0], &to[0]).map_err(LogError::io(&to[0]))?;
        self.log_path = to[0].clone();
        Ok(())
    }

    /// Deletes the segment's files.
    pub fn delete(self, dir: &Path) -> Result<()> {
        for path in segment_paths(dir, self.base_offset, "") {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::Io { path, source: e }),
            }
        }
        Ok(())
    }

    /// Visits every valid batch of the segment (cleaner input, dump tools).
    pub fn for_each_batch<F>(&self, mut f: F) -> Result<()>
    where
        F: FnMut(u64, &BatchView<'_>),
    {
        let (_, err) = self.scan_batches(0, self.base_offset, |pos, view| {
            f(pos, view);
            ControlFlow::Continue(())
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{build_batch, BatchMut};

    fn batch(offset: i64, ts: i64, n: usize, value_len: usize) -> Vec<u8> {
        let v = vec![b'x'; value_len];
        let recs: Vec<crate::log::batch::KeyValue<'_>> =
            (0..n).map(|_| (None, Some(&v[..]))).collect();
        let mut b = build_batch(offset, ts, &recs);
        BatchMut::new(&mut b).set_base_offset(offset);
        b
    }

    fn config() -> LogConfig {
        LogConfig { index_interval_bytes: 100, ..LogConfig::default() }
    }

    #[test]
    fn append_locate_read_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let c = config();
        let mut seg = LogSegment::create(dir.path(), 100, &c, 0, "").unwrap();
        let mut offset = 100;
        for i in 0..50 {
            let b = batch(offset, 1000 + i, 3, 50);
            seg.append(&b).unwrap();
            offset += 3;
        }
        assert_eq!(seg.next_offset(), 250);
        assert!(seg.index_entries() > 10);
        let loc = seg.locate(131).unwrap().unwrap();
        assert_eq!(loc.header.base_offset, 130);
        let bytes = seg.read(131, 1, i64::MAX).unwrap();
        assert_eq!(BatchView::parse(&bytes).unwrap().base_offset(), 130, "first batch whole");
        let bytes = seg.read(100, 100_000, 160).unwrap();
        let batches: Vec<_> = super::super::batch::BatchIter::new(&bytes, true)
            .map(|r| r.unwrap().1.base_offset())
            .collect();
        assert_eq!(batches.last(), Some(&157));
        assert_eq!(seg.find_offset_by_timestamp(1010, 0, 1 << 20).unwrap(), Some((130, 1010)));
        seg.truncate_to(130).unwrap();
        assert_eq!(seg.next_offset(), 130);
        assert!(seg.locate(130).unwrap().is_none());
        assert_eq!(seg.max_timestamp(), 1009);
    }

    /// A slice is whole batches bounded by bytes and by offset, every byte bound giving the same
    /// batches as a scan of all headers would; a truncation after it was taken makes reading
    /// it fail instead of returning other bytes.
    #[test]
    fn slices_hold_whole_batches_and_notice_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = LogSegment::create(dir.path(), 0, &config(), 0, "").unwrap();
        let mut ends = Vec::new();
        let mut offset = 0;
        for i in 0..40 {
            seg.append(&batch(offset, 1000 + i, 1 + (i % 4) as usize, 30 + 17 * i as usize))
                .unwrap();
            offset += 1 + (i % 4);
            ends.push((seg.size(), offset));
        }
        let all = std::fs::read(seg.log_path()).unwrap();
        for max_bytes in (0..all.len() + 100).step_by(37) {
            for max_offset in [5, 33, offset, i64::MAX] {
                let got = seg.slice(0, max_bytes, max_offset).unwrap();
                // The expected end: batches fully below max_offset, within max_bytes, the first
                // one whole regardless.
                let want = ends
                    .iter()
                    .filter(|&&(_, next)| next <= max_offset)
                    .map(|&(end, _)| end)
                    .filter(|&end| end as usize <= max_bytes || end == ends[0].0)
                    .max();
                assert_eq!(got.as_ref().map(|s| s.len() as u64), want, "{max_bytes} {max_offset}");
                if let Some(s) = got {
                    assert!(s.read_to_vec().unwrap() == all[..s.len()]);
                }
            }
        }
        let slice = seg.slice(0, 1 << 20, i64::MAX).unwrap().unwrap();
        seg.truncate_to(20).unwrap();
        assert!(crate::zero_copy::is_truncation(&slice.read_to_vec().unwrap_err()));
        let after = seg.slice(0, 1 << 20, i64::MAX).unwrap().unwrap();
        assert_eq!(after.read_to_vec().unwrap(), all[..after.len()]);
    }

    /// `read_bytes` gives exactly the file's bytes of a range, and an error (not a short or
    /// zero-padded answer) for a range past the end.
    #[test]
    fn read_bytes_is_exact_and_refuses_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = LogSegment::create(dir.path(), 0, &config(), 0, "").unwrap();
        let b = batch(0, 1000, 20, 100);
        seg.append(&b).unwrap();
        seg.flush(false).unwrap();
        let on_disk = std::fs::read(seg.log_path()).unwrap();
        assert_eq!(on_disk, b);
        for (pos, len) in [(0, b.len()), (7, 100), (b.len() - 1, 1), (3, 0)] {
            assert_eq!(seg.read_bytes(pos as u64, len).unwrap(), &b[pos..pos + len], "{pos}+{len}");
        }
        assert!(seg.read_bytes(10, b.len()).is_err(), "past the end");
    }

    #[test]
    fn reopen_rebuilds_damaged_index_and_truncates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let c = config();
        let mut seg = LogSegment::create(dir.path(), 0, &c, 0, "").unwrap();
        for i in 0..20 {
            seg.append(&batch(i * 2, i, 2, 80)).unwrap();
        }
        seg.seal(false).unwrap();
        let size = seg.size();
        drop(seg);
        let [log, index, _] = segment_paths(dir.path(), 0, "");
        std::fs::write(&index, b"garbage").unwrap();
        let f = OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(size - 10).unwrap();
        let (seg, truncated) = LogSegment::open(dir.path(), 0, &c, 0, false).unwrap();
        assert!(truncated > 0);
        assert_eq!(seg.next_offset(), 38);
        assert!(seg.index_entries() > 0);
        assert_eq!(seg.locate(20).unwrap().unwrap().header.base_offset, 20);
    }
}
