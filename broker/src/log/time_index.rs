//! `TimeIndex`: the sparse `.timeindex` file of a segment.
//!
//! Entries are 12 bytes, big-endian: a timestamp (i64) and the offset (relative u32) of the
//! batch where the segment's maximum timestamp so far was reached. Timestamps in the index only
//! grow, so the newest entry is the segment's largest timestamp once the segment is closed
//! (closing appends a final entry, as Kafka does). Same persistence scheme as the offset index.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{LogError, Result};

/// Size of one `.timeindex` entry.
pub const ENTRY_SIZE: usize = 12;

/// In-memory sparse time index backed by its file.
#[derive(Debug)]
pub struct TimeIndex {
    path: PathBuf,
    base_offset: i64,
    entries: Vec<(i64, u32)>,
    persisted: usize,
    max_entries: usize,
}

impl TimeIndex {
    pub fn create(path: &Path, base_offset: i64, max_entries: usize) -> Result<Self> {
        File::create(path).map_err(LogError::io(path))?;
        Ok(TimeIndex {
            path: path.into(),
            base_offset,
            entries: Vec::new(),
            persisted: 0,
            max_entries,
        })
    }

    /// Loads and sanity-checks: whole entries, non-decreasing timestamps and offsets, offsets
    /// not beyond `max_offset` (the segment's last offset).
    pub fn load(
        path: &Path,
        base_offset: i64,
        max_entries: usize,
        max_offset: i64,
    ) -> Result<Self> {
        let mut buf = Vec::new();
        File::open(path).and_then(|mut f| f.read_to_end(&mut buf)).map_err(LogError::io(path))?;
        let corrupt = |reason: String| LogError::CorruptFile {
            kind: "time index",
            path: path.into(),
            reason,
        };
        if buf.len() % ENTRY_SIZE != 0 {
            return Err(corrupt(format!("size {} is not a multiple of {ENTRY_SIZE}", buf.len())));
        }
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(buf.len() / ENTRY_SIZE);
        for chunk in buf.chunks_exact(ENTRY_SIZE) {
            let ts = i64::from_be_bytes(chunk[..8].try_into().unwrap());
            let rel = u32::from_be_bytes(chunk[8..].try_into().unwrap());
            if let Some(&(pts, prel)) = entries.last() {
                if ts < pts || rel < prel {
                    return Err(corrupt("entries go backwards".into()));
                }
            }
            if base_offset + rel as i64 > max_offset {
                return Err(corrupt(format!(
                    "offset beyond the segment's last offset {max_offset}"
                )));
            }
            entries.push((ts, rel));
        }
        if entries.len() > max_entries {
            return Err(corrupt(format!("{} entries exceed the maximum", entries.len())));
        }
        let persisted = entries.len();
        Ok(TimeIndex { path: path.into(), base_offset, entries, persisted, max_entries })
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The newest entry as (timestamp, absolute offset).
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries.last().map(|&(ts, rel)| (ts, self.base_offset + rel as i64))
    }

    /// Appends `(timestamp, offset)` when the timestamp is larger than the last entry's. With
    /// `skip_full_check` the entry is added even to a full index (the final entry on close).
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, skip_full_check: bool) {
        if self.is_full() && !skip_full_check {
            return;
        }
        let rel = (offset - self.base_offset) as u32;
        match self.entries.last() {
            Some(&(last_ts, last_rel)) if timestamp <= last_ts || rel < last_rel => {}
            _ => self.entries.push((timestamp, rel)),
        }
    }

    /// The entry with the largest timestamp `<= target` as (timestamp, absolute offset), or the
    /// segment start when there is none.
    pub fn lookup(&self, target: i64) -> (i64, i64) {
        let idx = self.entries.partition_point(|&(ts, _)| ts <= target);
        match idx {
            0 => (-1, self.base_offset),
            i => {
                let (ts, rel) = self.entries[i - 1];
                (ts, self.base_offset + rel as i64)
            }
        }
    }

    /// Drops entries whose offset is `>= offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) {
        let rel = offset - self.base_offset;
        let keep = self.entries.partition_point(|&(_, r)| (r as i64) < rel);
        self.entries.truncate(keep);
        if self.persisted > keep {
            self.persisted = usize::MAX;
        }
    }

    pub fn reset(&mut self) {
        self.truncate_to_offset(self.base_offset);
    }

    pub fn flush(&mut self, fsync: bool) -> Result<()> {
        let rewrite = self.persisted == usize::MAX;
        if !rewrite && self.persisted == self.entries.len() && !fsync {
            return Ok(());
        }
        let from = if rewrite { 0 } else { self.persisted };
        let mut buf = Vec::with_capacity((self.entries.len() - from) * ENTRY_SIZE);
        for &(ts, rel) in &self.entries[from..] {
            buf.extend_from_slice(&ts.to_be_bytes());
            buf.extend_from_slice(&rel.to_be_bytes());
        }
        let mut f = if rewrite {
            File::create(&self.path)
        } else {
            OpenOptions::new().append(true).open(&self.path)
        }
        .map_err(LogError::io(&self.path))?;
        f.write_all(&buf).map_err(LogError::io(&self.path))?;
        if fsync {
            f.sync_data().map_err(LogError::io(&self.path))?;
        }
        self.persisted = self.entries.len();
        Ok(())
    }

    pub fn rename_to(&mut self, path: &Path) -> Result<()> {
        std::fs::rename(&self.path, path).map_err(LogError::io(path))?;
        self.path = path.into();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_monotonic_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::create(&p, 10, 100).unwrap();
        idx.maybe_append(1000, 12, false);
        idx.maybe_append(900, 15, false); // older timestamp: ignored
        idx.maybe_append(2000, 20, false);
        assert_eq!(idx.lookup(500), (-1, 10));
        assert_eq!(idx.lookup(1500), (1000, 12));
        assert_eq!(idx.lookup(5000), (2000, 20));
        idx.flush(false).unwrap();
        let loaded = TimeIndex::load(&p, 10, 100, 25).unwrap();
        assert_eq!(loaded.last_entry(), Some((2000, 20)));
        assert!(TimeIndex::load(&p, 10, 100, 15).is_err(), "offset beyond segment end");
        std::fs::write(&p, [1u8; 13]).unwrap();
        assert!(TimeIndex::load(&p, 10, 100, 25).is_err());
    }
}
