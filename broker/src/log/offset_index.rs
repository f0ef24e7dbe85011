//! `OffsetIndex`: the sparse `.index` file of a segment.
//!
//! Entries are 8 bytes, big-endian: offset relative to the segment's base offset (u32) and the
//! byte position of a batch in the `.log` file (u32), one entry every `index.interval.bytes` of
//! log data, keyed by the batch's last offset as Kafka does. The entries live in memory for
//! lookups; new entries are written to the file on flush, close and roll. The file is never
//! trusted blindly on open: a malformed file is rebuilt from the log by the segment.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{LogError, Result};

/// Size of one `.index` entry.
pub const ENTRY_SIZE: usize = 8;

/// In-memory sparse offset index backed by its file.
#[derive(Debug)]
pub struct OffsetIndex {
    path: PathBuf,
    base_offset: i64,
    entries: Vec<(u32, u32)>,
    /// Entries `[..persisted]` are in the file.
    persisted: usize,
    max_entries: usize,
}

impl OffsetIndex {
    /// Creates an empty index, truncating any existing file.
    pub fn create(path: &Path, base_offset: i64, max_entries: usize) -> Result<Self> {
        File::create(path).map_err(LogError::io(path))?;
        Ok(OffsetIndex {
            path: path.into(),
            base_offset,
            entries: Vec::new(),
            persisted: 0,
            max_entries,
        })
    }

    /// Loads and sanity-checks an existing index: whole entries, strictly increasing offsets
    /// and positions, last position inside the segment (`log_size`).
    pub fn load(path: &Path, base_offset: i64, max_entries: usize, log_size: u64) -> Result<Self> {
        let mut buf = Vec::new();
        File::open(path).and_then(|mut f| f.read_to_end(&mut buf)).map_err(LogError::io(path))?;
        let corrupt = |reason: String| LogError::CorruptFile {
            kind: "offset index",
            path: path.into(),
            reason,
        };
        if buf.len() % ENTRY_SIZE != 0 {
            return Err(corrupt(format!("size {} is not a multiple of {ENTRY_SIZE}", buf.len())));
        }
        let mut entries = Vec::with_capacity(buf.len() / ENTRY_SIZE);
        for chunk in buf.chunks_exact(ENTRY_SIZE) {
            let rel = u32::from_be_bytes(chunk[..4].try_into().unwrap());
            let pos = u32::from_be_bytes(chunk[4..].try_into().unwrap());
            if let Some(&(prev_rel, prev_pos)) = entries.last() {
                if rel <= prev_rel || pos <= prev_pos {
                    return Err(corrupt("entries are not strictly increasing".into()));
                }
            }
            if pos as u64 >= log_size {
                return Err(corrupt(format!("position {pos} is beyond the log size {log_size}")));
            }
            entries.push((rel, pos));
        }
        if entries.len() > max_entries {
            return Err(corrupt(format!("{} entries exceed the maximum", entries.len())));
        }
        let persisted = entries.len();
        Ok(OffsetIndex { path: path.into(), base_offset, entries, persisted, max_entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
    /// Size the file has once flushed.
    pub fn size_bytes(&self) -> usize {
        self.entries.len() * ENTRY_SIZE
    }
    /// The last entry as (absolute offset, position).
    pub fn last_entry(&self) -> Option<(i64, u32)> {
        self.entries.last().map(|&(rel, pos)| (self.base_offset + rel as i64, pos))
    }

    /// Appends an entry; ignored unless offset and position move forward (Kafka throws; here a
    /// non-advancing entry only loses sparseness, never correctness).
    pub fn append(&mut self, offset: i64, position: u32) {
        let rel = offset - self.base_offset;
        debug_assert!((0..=u32::MAX as i64).contains(&rel));
        let rel = rel as u32;
        if self.is_full() {
            return;
        }
        if let Some(&(last_rel, last_pos)) = self.entries.last() {
            if rel <= last_rel || position <= last_pos {
                return;
            }
        }
        self.entries.push((rel, position));
    }

    /// The entry with the largest offset `<= target` as (absolute offset, position); the start of
    /// the segment when there is none.
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        let rel = target - self.base_offset;
        if rel < 0 {
            return (self.base_offset, 0);
        }
        let idx = self.entries.partition_point(|&(r, _)| (r as i64) <= rel);
        match idx {
            0 => (self.base_offset, 0),
            i => {
                let (r, p) = self.entries[i - 1];
                (self.base_offset + r as i64, p)
            }
        }
    }

    /// The position of the last indexed batch that starts at or before `position` (0, the
    /// segment's first batch, when there is none).
    pub fn floor_by_position(&self, position: u64) -> u32 {
        let idx = self.entries.partition_point(|&(_, p)| (p as u64) <= position);
        if idx == 0 {
            0
        } else {
            self.entries[idx - 1].1
        }
    }

    /// Drops entries whose offset is `>= offset` (entries keyed by last offset of a batch that
    /// is being removed), and rewrites the file on the next flush.
    pub fn truncate_to_offset(&mut self, offset: i64) {
        let rel = offset - self.base_offset;
        let keep = self.entries.partition_point(|&(r, _)| (r as i64) < rel);
        self.truncate_entries(keep);
    }

    /// Drops entries pointing at or beyond `position`.
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|&(_, p)| p < position);
        self.truncate_entries(keep);
    }

    fn truncate_entries(&mut self, keep: usize) {
        self.entries.truncate(keep);
        if self.persisted > keep {
            self.persisted = usize::MAX; // force a rewrite
        }
    }

    /// Clears all entries (before a rebuild).
    pub fn reset(&mut self) {
        self.truncate_entries(0);
    }

    /// Writes pending entries (or the whole file after a truncation) and optionally fsyncs.
    pub fn flush(&mut self, fsync: bool) -> Result<()> {
        let rewrite = self.persisted == usize::MAX;
        if !rewrite && self.persisted == self.entries.len() && !fsync {
            return Ok(());
        }
        let from = if rewrite { 0 } else { self.persisted };
        let mut buf = Vec::with_capacity((self.entries.len() - from) * ENTRY_SIZE);
        for &(rel, pos) in &self.entries[from..] {
            buf.extend_from_slice(&rel.to_be_bytes());
            buf.extend_from_slice(&pos.to_be_bytes());
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

    /// Renames the backing file (segment swap after cleaning).
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
    fn lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        let mut idx = OffsetIndex::create(&p, 100, 10).unwrap();
        assert_eq!(idx.lookup(150), (100, 0));
        idx.append(110, 4096);
        idx.append(120, 8192);
        idx.append(120, 9000); // ignored: offset does not advance
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 4096));
        assert_eq!(idx.lookup(1000), (120, 8192));
        idx.flush(false).unwrap();
        let loaded = OffsetIndex::load(&p, 100, 10, 10_000).unwrap();
        assert_eq!(loaded.lookup(119), (110, 4096));
        idx.truncate_to_offset(120);
        idx.flush(false).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 8);
    }

    #[test]
    fn malformed_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        std::fs::write(&p, [0u8; 7]).unwrap();
        assert!(OffsetIndex::load(&p, 0, 10, 100).is_err());
        let mut bad = Vec::new();
        for (r, pos) in [(5u32, 50u32), (3, 60)] {
            bad.extend_from_slice(&r.to_be_bytes());
            bad.extend_from_slice(&pos.to_be_bytes());
        }
        std::fs::write(&p, &bad).unwrap();
        assert!(OffsetIndex::load(&p, 0, 10, 100).is_err());
        std::fs::write(&p, &bad[..8]).unwrap();
        assert!(OffsetIndex::load(&p, 0, 10, 40).is_err(), "position beyond log size");
        assert!(OffsetIndex::load(&p, 0, 10, 400).is_ok());
    }
}
