//! Idempotent-producer state of one partition (Kafka's `ProducerStateManager`).
//!
//! For each producer id the partition remembers the epoch and the sequence ranges and offsets of
//! its last five batches. Before a batch from an idempotent producer is appended,
//! [`ProducerStateManager::check`] decides: a batch already written (same sequence range) is a
//! duplicate and answers with its original offsets; a sequence that does not follow the last one
//! is out of order; an older epoch is fenced; an unknown producer must start at sequence 0; a
//! newer epoch (the client's KIP-360 bump) must start at sequence 0 and resets the history.
//!
//! The state survives restarts the way Kafka's does: a snapshot `{offset:020}.snapshot` (Kafka's
//! v1 layout: version, CRC32C, one entry per producer with its last batch) is written when a
//! segment rolls and on clean shutdown; loading takes the newest snapshot at or below the log end
//! and replays the batches after it.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use super::batch::BatchView;
use super::{LogError, Result};

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`).
pub const BATCHES_TO_RETAIN: usize = 5;
const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Bytes of one snapshot entry: pid 8, epoch 2, last seq 4, last offset 8, offset delta 4,
/// timestamp 8, coordinator epoch 4, current transaction first offset 8.
const ENTRY_SIZE: usize = 46;

/// One batch of a producer: sequence range and offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// What the partition knows about one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the newest batch (expiry is measured from it, as in Kafka).
    pub last_timestamp: i64,
}

impl ProducerEntry {
    /// The last sequence written by this producer (-1 before its first batch).
    pub fn last_sequence(&self) -> i32 {
        self.last_seq().unwrap_or(-1)
    }
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
    fn push(&mut self, meta: BatchMetadata) {
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.last_timestamp = meta.timestamp;
        self.batches.push_back(meta);
    }
}

/// A producer-state violation; the protocol layer maps each to Kafka's error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {pid} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch { pid: i64, epoch: i16, current: i16 },
    #[error("out of order sequence for producer {pid}: expected {expected}, got {got}")]
    OutOfOrder { pid: i64, expected: i32, got: i32 },
}

/// The outcome of checking a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Not an idempotent batch (producer id -1): no state involved.
    NotIdempotent,
    /// New data in sequence: append it, then [`ProducerStateManager::update`].
    Append,
    /// Already written: answer with these offsets, write nothing.
    Duplicate(BatchMetadata),
}

/// Kafka's sequence arithmetic: sequences wrap from i32::MAX to 0.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// The inverse of [`increment_sequence`].
pub fn decrement_sequence(seq: i32, by: i32) -> i32 {
    if seq < by {
        i32::MAX - (by - seq) + 1
    } else {
        seq - by
    }
}

/// Producer state of one partition.
#[derive(Debug)]
pub struct ProducerStateManager {
    dir: PathBuf,
    producers: BTreeMap<i64, ProducerEntry>,
}

fn snapshot_offset(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok())?
}

impl ProducerStateManager {
    pub fn new(dir: &Path) -> Self {
        ProducerStateManager { dir: dir.into(), producers: BTreeMap::new() }
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
    /// Every producer with state here, by id.
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(pid, e)| (*pid, e))
    }

    pub fn entry(&self, pid: i64) -> Option<&ProducerEntry> {
        self.producers.get(&pid)
    }

    /// Checks a batch against the state plus `pending` (state changes of earlier batches of the
    /// same append, not yet applied).
    pub fn check(
        &self,
        view: &BatchView<'_>,
        pending: &BTreeMap<i64, ProducerEntry>,
    ) -> Result<Check, SequenceError> {
        let pid = view.producer_id();
        if pid < 0 {
            return Ok(Check::NotIdempotent);
        }
        let epoch = view.producer_epoch();
        let first_seq = view.base_sequence();
        let last_seq = increment_sequence(first_seq, view.last_offset_delta());
        // A producer this partition does not know (new, or its state expired or went with the
        // log's head) is accepted at any sequence, as Kafka does since 2.5 (KIP-360): the
        // batch starts its state here.
        let Some(entry) = pending.get(&pid).or_else(|| self.producers.get(&pid)) else {
            return Ok(Check::Append);
        };
        if epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch { pid, epoch, current: entry.epoch });
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(SequenceError::OutOfOrder { pid, expected: 0, got: first_seq });
            }
            return Ok(Check::Append);
        }
        if let Some(dup) =
            entry.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(Check::Duplicate(*dup));
        }
        match entry.last_seq() {
            Some(last) if increment_sequence(last, 1) != first_seq => {
                Err(SequenceError::OutOfOrder {
                    pid,
                    expected: increment_sequence(last, 1),
                    got: first_seq,
                })
            }
            _ => Ok(Check::Append),
        }
    }

    /// Records an appended (or replayed) batch in `target` (the state, or a pending map).
    pub fn record(
        target: &mut BTreeMap<i64, ProducerEntry>,
        base: Option<&Self>,
        view: &BatchView<'_>,
    ) {
        let pid = view.producer_id();
        if pid < 0 {
            return;
        }
        let epoch = view.producer_epoch();
        let meta = BatchMetadata {
            first_seq: view.base_sequence(),
            last_seq: increment_sequence(view.base_sequence(), view.last_offset_delta()),
            first_offset: view.base_offset(),
            last_offset: view.last_offset(),
            timestamp: view.max_timestamp(),
        };
        let entry = target.entry(pid).or_insert_with(|| {
            base.and_then(|b| b.producers.get(&pid).cloned()).unwrap_or(ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: meta.timestamp,
            })
        });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.push(meta);
    }

    /// Applies pending changes after their batches were written.
    pub fn apply(&mut self, pending: BTreeMap<i64, ProducerEntry>) {
        self.producers.extend(pending);
    }

    /// Replays a batch read back from the log (recovery, truncation).
    pub fn replay(&mut self, view: &BatchView<'_>) {
        if view.producer_id() < 0 || view.is_control() {
            return;
        }
        let mut pending = BTreeMap::new();
        Self::record(&mut pending, Some(self), view);
        self.apply(pending);
    }

    /// Forgets producers whose newest batch is older than `expiration_ms`; returns how many.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| now_ms - e.last_timestamp < expiration_ms);
        before - self.producers.len()
    }

    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Snapshot files in the directory, by offset.
    pub fn snapshot_offsets(&self) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(LogError::io(&self.dir))? {
            let entry = entry.map_err(LogError::io(&self.dir))?;
            if let Some(o) = snapshot_offset(&entry.file_name().to_string_lossy()) {
                out.push(o);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn snapshot_path(&self, offset: i64) -> PathBuf {
        self.dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
    }

    /// Writes `{offset:020}.snapshot` and keeps only the two newest snapshots.
    pub fn take_snapshot(&self, offset: i64) -> Result<()> {
        let mut body = Vec::with_capacity(4 + self.producers.len() * ENTRY_SIZE);
        body.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        for (&pid, e) in &self.producers {
            let last = e.batches.back().copied().unwrap_or(BatchMetadata {
                first_seq: -1,
                last_seq: -1,
                first_offset: -1,
                last_offset: -1,
                timestamp: e.last_timestamp,
            });
            body.extend_from_slice(&pid.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&last.last_seq.to_be_bytes());
            body.extend_from_slice(&last.last_offset.to_be_bytes());
            body.extend_from_slice(&((last.last_offset - last.first_offset) as i32).to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&(-1i32).to_be_bytes()); // coordinator epoch
            body.extend_from_slice(&(-1i64).to_be_bytes()); // current transaction first offset
        }
        let mut file = Vec::with_capacity(6 + body.len());
        file.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        file.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        file.extend_from_slice(&body);
        super::checkpoint::write_atomically(&self.snapshot_path(offset), &file)?;
        let offsets = self.snapshot_offsets()?;
        if offsets.len() > 2 {
            for o in &offsets[..offsets.len() - 2] {
                let _ = std::fs::remove_file(self.snapshot_path(*o));
            }
        }
        Ok(())
    }

    /// Deletes snapshots above `offset` (the log was truncated below them).
    pub fn delete_snapshots_after(&self, offset: i64) -> Result<()> {
        for o in self.snapshot_offsets()? {
            if o > offset {
                let _ = std::fs::remove_file(self.snapshot_path(o));
            }
        }
        Ok(())
    }

    /// Loads the newest valid snapshot at or below `max_offset`; returns its offset (0 and an
    /// empty state when there is none). Corrupt snapshots are deleted and the next older used.
    pub fn load_latest_snapshot(&mut self, max_offset: i64) -> Result<i64> {
        self.producers.clear();
        for o in self.snapshot_offsets()?.into_iter().rev() {
            let path = self.snapshot_path(o);
            if o > max_offset {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match std::fs::read(&path)
                .map_err(LogError::io(&path))
                .and_then(|b| self.parse(&path, &b))
            {
                Ok(producers) => {
                    self.producers = producers;
                    return Ok(o);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding producer snapshot");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(0)
    }

    fn parse(&self, path: &Path, bytes: &[u8]) -> Result<BTreeMap<i64, ProducerEntry>> {
        let corrupt = |reason: &str| LogError::CorruptFile {
            kind: "producer snapshot",
            path: path.into(),
            reason: reason.into(),
        };
        if bytes.len() < 10 {
            return Err(corrupt("too short"));
        }
        if i16::from_be_bytes([bytes[0], bytes[1]]) != SNAPSHOT_VERSION {
            return Err(corrupt("unsupported version"));
        }
        let crc = u32::from_be_bytes(bytes[2..6].try_into().unwrap());
        let body = &bytes[6..];
        if crc32c::crc32c(body) != crc {
            return Err(corrupt("CRC mismatch"));
        }
        let count = i32::from_be_bytes(body[..4].try_into().unwrap());
        if count < 0 || body.len() != 4 + count as usize * ENTRY_SIZE {
            return Err(corrupt("entry count does not match the size"));
        }
        let mut out = BTreeMap::new();
        for e in body[4..].chunks_exact(ENTRY_SIZE) {
            let pid = i64::from_be_bytes(e[0..8].try_into().unwrap());
            let epoch = i16::from_be_bytes(e[8..10].try_into().unwrap());
            let last_seq = i32::from_be_bytes(e[10..14].try_into().unwrap());
            let last_offset = i64::from_be_bytes(e[14..22].try_into().unwrap());
            let delta = i32::from_be_bytes(e[22..26].try_into().unwrap());
            let timestamp = i64::from_be_bytes(e[26..34].try_into().unwrap());
            let mut batches = VecDeque::new();
            if last_offset >= 0 {
                batches.push_back(BatchMetadata {
                    first_seq: decrement_sequence(last_seq, delta),
                    last_seq,
                    first_offset: last_offset - delta as i64,
                    last_offset,
                    timestamp,
                });
            }
            out.insert(pid, ProducerEntry { epoch, batches, last_timestamp: timestamp });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{assemble_batch, BatchFields};

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> Vec<u8> {
        assemble_batch(
            &BatchFields {
                base_offset: offset,
                partition_leader_epoch: 0,
                attributes: 0,
                last_offset_delta: count - 1,
                base_timestamp: 1000,
                max_timestamp: 1000,
                producer_id: pid,
                producer_epoch: epoch,
                base_sequence: seq,
            },
            count,
            &[],
        )
    }

    fn append(s: &mut ProducerStateManager, b: &[u8]) -> Result<Check, SequenceError> {
        let v = BatchView::parse(b).unwrap();
        let c = s.check(&v, &BTreeMap::new())?;
        if c == Check::Append {
            s.replay(&v);
        }
        Ok(c)
    }

    #[test]
    fn sequences_epochs_and_duplicates_follow_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::new(dir.path());
        assert_eq!(append(&mut s, &batch(-1, -1, -1, 3, 0)), Ok(Check::NotIdempotent));
        // Unknown to the partition: accepted at any sequence (Kafka >= 2.5), starting its state.
        let fresh_dir = tempfile::tempdir().unwrap();
        let mut fresh = ProducerStateManager::new(fresh_dir.path());
        assert_eq!(append(&mut fresh, &batch(8, 0, 5, 1, 0)), Ok(Check::Append));
        assert_eq!(
            append(&mut fresh, &batch(8, 0, 9, 1, 1)),
            Err(SequenceError::OutOfOrder { pid: 8, expected: 6, got: 9 })
        );
        assert_eq!(append(&mut s, &batch(7, 0, 0, 3, 10)), Ok(Check::Append));
        assert_eq!(append(&mut s, &batch(7, 0, 3, 2, 13)), Ok(Check::Append));
        let dup = append(&mut s, &batch(7, 0, 0, 3, 99)).unwrap();
        assert!(matches!(dup, Check::Duplicate(m) if m.first_offset == 10 && m.last_offset == 12));
        assert_eq!(
            append(&mut s, &batch(7, 0, 9, 1, 15)),
            Err(SequenceError::OutOfOrder { pid: 7, expected: 5, got: 9 })
        );
        // KIP-360 bump: a newer epoch restarts at 0.
        assert_eq!(
            append(&mut s, &batch(7, 1, 5, 1, 15)),
            Err(SequenceError::OutOfOrder { pid: 7, expected: 0, got: 5 })
        );
        assert_eq!(append(&mut s, &batch(7, 1, 0, 1, 15)), Ok(Check::Append));
        assert_eq!(
            append(&mut s, &batch(7, 0, 5, 1, 16)),
            Err(SequenceError::InvalidProducerEpoch { pid: 7, epoch: 0, current: 1 })
        );
        // Only the last five batches are remembered.
        for i in 1..=6 {
            append(&mut s, &batch(7, 1, i, 1, 15 + i as i64)).unwrap();
        }
        assert_eq!(s.entry(7).unwrap().batches.len(), BATCHES_TO_RETAIN);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(5, 2), 3);
    }

    #[test]
    fn snapshots_round_trip_keep_two_and_reject_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::new(dir.path());
        append(&mut s, &batch(7, 2, 0, 3, 10)).unwrap();
        append(&mut s, &batch(9, 0, 0, 1, 13)).unwrap();
        s.take_snapshot(14).unwrap();
        s.take_snapshot(20).unwrap();
        s.take_snapshot(30).unwrap();
        assert_eq!(s.snapshot_offsets().unwrap(), vec![20, 30]);
        let mut loaded = ProducerStateManager::new(dir.path());
        assert_eq!(loaded.load_latest_snapshot(25).unwrap(), 20);
        assert_eq!(loaded.snapshot_offsets().unwrap(), vec![20], "snapshots beyond the log end go");
        let e = loaded.entry(7).unwrap();
        assert_eq!(e.epoch, 2);
        assert_eq!(
            e.batches.back().copied(),
            Some(BatchMetadata {
                first_seq: 0,
                last_seq: 2,
                first_offset: 10,
                last_offset: 12,
                timestamp: 1000
            })
        );
        // The retried last batch is still recognised after a reload.
        let v = batch(7, 2, 0, 3, 0);
        assert!(matches!(
            loaded.check(&BatchView::parse(&v).unwrap(), &BTreeMap::new()),
            Ok(Check::Duplicate(_))
        ));
        let path = dir.path().join(format!("{:020}.snapshot", 20));
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(loaded.load_latest_snapshot(100).unwrap(), 0);
        assert_eq!(loaded.producer_count(), 0);
    }
}
