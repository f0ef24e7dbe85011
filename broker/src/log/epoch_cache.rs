//! `LeaderEpochCache`: which leader epoch started at which offset (Kafka's
//! `LeaderEpochFileCache`), persisted in the partition's `leader-epoch-checkpoint`.
//!
//! It answers OffsetForLeaderEpoch (KIP-101/279): the end offset of an epoch is the start offset
//! of the next larger epoch, or the log end offset for the latest epoch. Followers use it to
//! truncate to the point where their log diverges from the leader's.

use std::path::{Path, PathBuf};

use super::checkpoint;
use super::{LogError, Result};

/// File name inside the partition directory.
pub const FILE_NAME: &str = "leader-epoch-checkpoint";

/// Epoch → start offset entries, both strictly increasing.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// An empty cache for `dir`, to be filled from the log's batches when the checkpoint is
    /// unreadable.
    pub fn empty(dir: &Path) -> Self {
        LeaderEpochCache { path: dir.join(FILE_NAME), entries: Vec::new() }
    }

    /// Loads the checkpoint in `dir` (missing file: empty cache).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let mut entries: Vec<(i32, i64)> = Vec::new();
        for e in checkpoint::read_lines(&path, 2)? {
            let parsed = (e[0].parse::<i32>(), e[1].parse::<i64>());
            let (Ok(epoch), Ok(offset)) = parsed else {
                return Err(LogError::CorruptFile {
                    kind: "leader epoch checkpoint",
                    path,
                    reason: format!("bad entry {e:?}"),
                });
            };
            if entries.last().is_some_and(|&(pe, po)| epoch <= pe || offset < po) {
                return Err(LogError::CorruptFile {
                    kind: "leader epoch checkpoint",
                    path,
                    reason: "entries are not increasing".into(),
                });
            }
            entries.push((epoch, offset));
        }
        Ok(LeaderEpochCache { path, entries })
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest epoch.
    /// Returns whether the cache changed (the caller persists it).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(&(e, _)) if epoch <= e => false,
            _ => {
                // An epoch starting at or before an older one's start replaces it (the older
                // epoch wrote nothing that survives).
                while self.entries.last().is_some_and(|&(_, o)| o >= start_offset) {
                    self.entries.pop();
                }
                self.entries.push((epoch, start_offset));
                true
            }
        }
    }

    /// Drops epochs starting at or after `end_offset` (log truncated to `end_offset`).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, o)| o < end_offset);
        before != self.entries.len()
    }

    /// Moves the first retained epoch's start up to `start_offset` (log start advanced).
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let keep_from = self.entries.partition_point(|&(_, o)| o <= start_offset);
        if keep_from == 0 {
            return false;
        }
        let (epoch, offset) = self.entries[keep_from - 1];
        if keep_from == 1 && offset == start_offset {
            return false;
        }
        self.entries.drain(..keep_from - 1);
        self.entries[0] = (epoch, start_offset.max(offset));
        true
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Kafka's `endOffsetFor`: `(epoch, end offset)` for the largest epoch `<= requested`;
    /// `(-1, -1)` when `requested` is newer than every epoch or unknown.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        if requested < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= requested);
        if higher == self.entries.len() {
            return UNDEFINED;
        }
        let next_start = self.entries[higher].1;
        if higher == 0 {
            (requested, next_start)
        } else {
            (self.entries[higher - 1].0, next_start)
        }
    }

    /// Writes the checkpoint file.
    pub fn persist(&self) -> Result<()> {
        let lines: Vec<String> = self.entries.iter().map(|(e, o)| format!("{e} {o}")).collect();
        checkpoint::write_lines(&self.path, &lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(c.end_offset_for(0, 10), (-1, -1));
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5));
        assert!(c.assign(3, 10));
        assert!(c.assign(4, 20));
        assert_eq!(c.end_offset_for(4, 30), (4, 30));
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(2, 30), (1, 10));
        assert_eq!(c.end_offset_for(0, 30), (0, 0));
        assert_eq!(c.end_offset_for(9, 30), (-1, -1));
        c.persist().unwrap();
        let reloaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries(), &[(1, 0), (3, 10), (4, 20)]);
        c.truncate_from_end(15);
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        c.truncate_from_start(12);
        assert_eq!(c.entries(), &[(3, 12)]);
    }
}
