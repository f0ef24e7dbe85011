//! File-system durability helpers shared by the storage engine and the metadata log: what it
//! takes for a file written or renamed to survive a power loss, not just a process crash.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// `dir` absolute, as Kafka reports `log.dirs` (and the metrics' `dir` label).
pub fn absolute(dir: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// (total, usable) bytes of the volume holding `dir`; -1 each when unknown, as Kafka reports.
pub fn volume_bytes(dir: &Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => {
            let block = s.f_frsize as i64;
            (s.f_blocks as i64 * block, s.f_bavail as i64 * block)
        }
        Err(_) => (-1, -1),
    }
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new contents, never a mix,
/// and the new contents are durable on return: temp file, fsync, rename, fsync of the directory.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        // Give the space back (a full disk is the usual cause) and leave no stray file.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}
