//! Kafka's checkpoint text files, written atomically (temp file, fsync, rename).
//!
//! Layout, as Kafka's `CheckpointFile`: a version line (`0`), a count line, then one entry per
//! line with space-separated fields. Used for `recovery-point-offset-checkpoint`,
//! `replication-offset-checkpoint` (high watermarks), `log-start-offset-checkpoint` (one line
//! per `topic partition offset`) and each partition's `leader-epoch-checkpoint`
//! (`epoch start_offset`).

use std::collections::BTreeMap;
use std::path::Path;

use super::{LogError, Result, TopicPartition};

const VERSION: &str = "0";

/// Writes `entries` (each a line of space-separated fields) atomically.
pub fn write_lines(path: &Path, entries: &[String]) -> Result<()> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        text.push_str(e);
        text.push('\n');
    }
    write_atomically(path, text.as_bytes())
}

/// [`crate::fsutil::write_file_atomically`], with the storage layer's error.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsutil::write_file_atomically(path, bytes).map_err(LogError::io(path))
}

/// Reads the entry lines of a checkpoint; a missing file is empty. Each entry is split into
/// exactly `fields` fields.
pub fn read_lines(path: &Path, fields: usize) -> Result<Vec<Vec<String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::Io { path: path.into(), source: e }),
    };
    let corrupt = |reason: &str| LogError::CorruptFile {
        kind: "checkpoint",
        path: path.into(),
        reason: reason.into(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err(corrupt("unsupported version"));
    }
    let count: usize =
        lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| corrupt("bad count"))?;
    let entries: Vec<Vec<String>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    if entries.len() != count || entries.iter().any(|e| e.len() != fields) {
        return Err(corrupt("entry count or shape does not match"));
    }
    Ok(entries)
}

/// Reads a per-data-directory `topic partition offset` checkpoint.
pub fn read_offsets(path: &Path) -> Result<BTreeMap<TopicPartition, i64>> {
    let mut out = BTreeMap::new();
    for e in read_lines(path, 3)? {
        let partition = e[1].parse().ok();
        let offset = e[2].parse().ok();
        match (partition, offset) {
            (Some(p), Some(o)) => {
                out.insert(TopicPartition::new(e[0].clone(), p), o);
            }
            _ => {
                return Err(LogError::CorruptFile {
                    kind: "checkpoint",
                    path: path.into(),
                    reason: format!("bad entry {e:?}"),
                })
            }
        }
    }
    Ok(out)
}

/// Writes a per-data-directory `topic partition offset` checkpoint.
pub fn write_offsets(path: &Path, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
    let entries: Vec<String> =
        offsets.iter().map(|(tp, o)| format!("{} {} {o}", tp.topic, tp.partition)).collect();
    write_lines(path, &entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_garbage_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("replication-offset-checkpoint");
        assert!(read_offsets(&p).unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(TopicPartition::new("a-b", 3), 42);
        m.insert(TopicPartition::new("c", 0), 0);
        write_offsets(&p, &m).unwrap();
        assert_eq!(read_offsets(&p).unwrap(), m);
        std::fs::write(&p, "0\n2\nc 0 1\n").unwrap();
        assert!(read_offsets(&p).is_err());
        std::fs::write(&p, "7\n0\n").unwrap();
        assert!(read_offsets(&p).is_err());
    }
}
