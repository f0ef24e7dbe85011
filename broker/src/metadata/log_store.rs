//! Persistent raft log of the metadata quorum (`RaftLogStorage`).
//!
//! Files under `<data_dir>/__cluster_metadata/`:
//! - `metadata.log`: append-only frames `[u32 length][u32 crc32c][json entry]` (big endian),
//!   one per raft entry, in index order. Truncation (`truncate`) cuts the file; purged entries
//!   stay in the file until the purged prefix outweighs the live part, then the live tail is
//!   copied to a new file that replaces the old one.
//! - `raft-state.json`: vote, committed log id and last purged log id, replaced atomically
//!   (write temp file, fsync, rename, fsync directory).
//!
//! All entries that are not purged are also kept in memory: the metadata log is small
//! (the snapshot policy compacts it), and readers then never touch the disk.
//!
//! Writes go to one writer thread through a channel, in the order openraft issued them, so the
//! raft core never blocks on fsync: `append` makes the entries readable at once and completes
//! openraft's `LogFlushed` callback from the writer thread after the fsync.
//!
//! I/O errors (a full disk, above all) do not reach openraft, which would stop the raft core for
//! good: the writer thread retries the failed write with back-off (100 ms doubling to 5 s) until
//! it succeeds, with [`StorageHealth`] saying the quorum is stalled meanwhile (the broker then
//! reports not ready); metadata writes wait and complete once space returns. Each failed write
//! leaves the files as they were (a partial frame is cut off, a temporary file removed), so a
//! retry starts from the same state. See `docs/storage.md`, "Metadata storage and a full disk".
//!
//! At open, frames are read until the first one that is incomplete or fails its CRC; the file
//! is cut there (a torn tail from a crash during append). A frame with a valid CRC that does
//! not decode, or an index gap, is real damage and fails the open instead of losing data.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{StorageIOError, Vote};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::types::{MetadataEntry, MetadataLogId, StorageError, TypeConfig};
use crate::fsutil::write_file_atomically;

/// Name of the log file inside the metadata directory.
pub(crate) const LOG_FILE: &str = "metadata.log";
const STATE_FILE: &str = "raft-state.json";
const FRAME_HEADER: usize = 8;
/// No metadata entry comes near this; a larger length field is garbage.
const MAX_FRAME: usize = 64 << 20;

/// Raft state that is not a log entry.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PersistedState {
    vote: Option<Vote<u64>>,
    committed: Option<MetadataLogId>,
    last_purged: Option<MetadataLogId>,
}

/// What readers see: live entries and the persisted state.
#[derive(Debug, Default)]
struct LogCache {
    entries: BTreeMap<u64, MetadataEntry>,
    state: PersistedState,
}

type SharedCache = Arc<RwLock<LogCache>>;

fn read_cache(cache: &SharedCache) -> RwLockReadGuard<'_, LogCache> {
    // The lock only guards plain maps; a panic elsewhere cannot leave them half-updated in a
    // way that matters more than stopping the broker would.
    cache.read().unwrap_or_else(|e| e.into_inner())
}

fn write_cache(cache: &SharedCache) -> RwLockWriteGuard<'_, LogCache> {
    cache.write().unwrap_or_else(|e| e.into_inner())
}

/// The metadata raft log store.
pub(crate) struct LogStore {
    cache: SharedCache,
    writer: mpsc::Sender<WriteOp>,
    health: Arc<StorageHealth>,
    /// The writer gives up retrying once this is dropped (with the store).
    _owner: Arc<()>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = read_cache(&self.cache);
        f.debug_struct("LogStore")
            .field("entries", &cache.entries.len())
            .field("state", &cache.state)
            .finish()
    }
}

/// A read handle on the log, for openraft's replication and apply tasks.
#[derive(Clone)]
pub(crate) struct LogReader {
    cache: SharedCache,
}

impl Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader").finish_non_exhaustive()
    }
}

enum WriteOp {
    Append {
        frames: Vec<(u64, Vec<u8>)>,
        done: LogFlushed<TypeConfig>,
    },
    Truncate {
        since: u64,
        done: oneshot::Sender<io::Result<()>>,
    },
    SaveState {
        state: PersistedState,
        purge_upto: Option<u64>,
        done: oneshot::Sender<io::Result<()>>,
    },
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail, and starts the writer thread.
    #[cfg(test)]
    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        Self::open_with(dir, Arc::new(StorageHealth::default()))
    }

    /// [`open`](Self::open), reporting stalls through `health`.
    pub(crate) fn open_with(dir: &Path, health: Arc<StorageHealth>) -> io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let state_path = dir.join(STATE_FILE);
        let state: PersistedState = match fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is damaged: {e}", state_path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => PersistedState::default(),
            Err(e) => return Err(e),
        };

        let log_path = dir.join(LOG_FILE);
        let data = match fs::read(&log_path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let purged = state.last_purged.map(|id| id.index);
        let loaded = load_frames(&data, purged).map_err(|msg| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {msg}", log_path.display()))
        })?;

        let file = OpenOptions::new().create(true).read(true).append(true).open(&log_path)?;
        if loaded.valid_len < data.len() as u64 {
            tracing::warn!(
                path = %log_path.display(),
                valid = loaded.valid_len,
                size = data.len(),
                "metadata log has a torn or corrupt tail; truncating it"
            );
            file.set_len(loaded.valid_len)?;
            file.sync_all()?;
        }

        health.set_committed(state.committed);
        let owner = Arc::new(());
        let writer = LogWriter {
            dir: dir.to_path_buf(),
            file,
            len: loaded.valid_len,
            offsets: loaded.offsets,
            health: health.clone(),
            owner: Arc::downgrade(&owner),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sluice-metadata-log".into())
            .spawn(move || writer.run(rx))?;

        Ok(LogStore {
            cache: Arc::new(RwLock::new(LogCache { entries: loaded.entries, state })),
            writer: tx,
            health,
            _owner: owner,
        })
    }

    fn send(&self, op: WriteOp) -> io::Result<()> {
        self.writer.send(op).map_err(|_| writer_stopped())
    }

    /// Persists `state` (and compacts the file after a purge) on the writer thread.
    async fn save_state(
        &self,
        state: PersistedState,
        purge_upto: Option<u64>,
    ) -> Result<(), io::Error> {
        let (done, rx) = oneshot::channel();
        self.send(WriteOp::SaveState { state, purge_upto, done })?;
        rx.await.map_err(|_| writer_stopped())?
    }
}

struct Loaded {
    entries: BTreeMap<u64, MetadataEntry>,
    offsets: BTreeMap<u64, u64>,
    valid_len: u64,
}

/// Parses frames up to the first torn or corrupt one. Entries at or below `purged` are
/// skipped (purged but not yet compacted away).
fn load_frames(data: &[u8], purged: Option<u64>) -> Result<Loaded, String> {
    let mut entries = BTreeMap::new();
    let mut offsets = BTreeMap::new();
    let mut pos = 0usize;
    let mut prev: Option<u64> = None;
    while data.len() - pos >= FRAME_HEADER {
        let len = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let crc = u32::from_be_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let len = len as usize;
        if len > MAX_FRAME || data.len() - pos - FRAME_HEADER < len {
            break;
        }
        let payload = &data[pos + FRAME_HEADER..pos + FRAME_HEADER + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let entry: MetadataEntry = serde_json::from_slice(payload).map_err(|e| {
            format!("entry at byte {pos} has a valid checksum but cannot be read: {e}")
        })?;
        let index = entry.log_id.index;
        if let Some(p) = prev {
            if index != p + 1 {
                return Err(format!("entry at byte {pos} has index {index}, expected {}", p + 1));
            }
        }
        prev = Some(index);
        if purged.is_none_or(|p| index > p) {
            offsets.insert(index, pos as u64);
            entries.insert(index, entry);
        }
        pos += FRAME_HEADER + len;
    }
    Ok(Loaded { entries, offsets, valid_len: pos as u64 })
}

fn writer_stopped() -> io::Error {
    io::Error::other("metadata log writer thread has stopped")
}

fn encode_frame(entry: &MetadataEntry) -> Result<Vec<u8>, serde_json::Error> {
    let payload = serde_json::to_vec(entry)?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Whether the metadata stores are stuck retrying a failed write, shared by the log writer,
/// the snapshot store and the broker's health check.
#[derive(Debug, Default)]
pub struct StorageHealth {
    stalled: std::sync::atomic::AtomicBool,
    closing: std::sync::atomic::AtomicBool,
    /// The last log index known committed, plus one (0: none), for `/metrics`.
    committed: std::sync::atomic::AtomicU64,
}

impl StorageHealth {
    /// The node is shutting down: failing writes are given up instead of retried.
    pub fn close(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The last metadata log index known committed.
    pub fn committed_index(&self) -> Option<u64> {
        self.committed.load(std::sync::atomic::Ordering::Relaxed).checked_sub(1)
    }

    fn set_committed(&self, committed: Option<MetadataLogId>) {
        let next = committed.map_or(0, |id| id.index + 1);
        self.committed.store(next, std::sync::atomic::Ordering::Relaxed);
    }

    /// True while a metadata write is failing and being retried.
    pub fn stalled(&self) -> bool {
        self.stalled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `op` until it succeeds, sleeping between attempts with `sleep`; gives up (returning
    /// the error) only once `alive` says nobody waits for the result any more.
    pub(crate) fn retry<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> io::Result<T>,
        alive: impl Fn() -> bool,
        sleep: impl Fn(std::time::Duration),
    ) -> io::Result<T> {
        let mut backoff = RETRY_FIRST;
        let mut failures = 0u64;
        loop {
            match op() {
                Ok(v) => {
                    if failures > 0 {
                        self.stalled.store(false, std::sync::atomic::Ordering::SeqCst);
                        tracing::info!(what, failures, "metadata write succeeded after retrying");
                    }
                    return Ok(v);
                }
                Err(e) if !alive() => return Err(e),
                Err(e) => {
                    if failures == 0 {
                        self.stalled.store(true, std::sync::atomic::Ordering::SeqCst);
                        tracing::error!(
                            what,
                            error = %e,
                            "metadata write failed; retrying until it succeeds (the broker \
                             reports not ready meanwhile)"
                        );
                    }
                    failures += 1;
                    sleep(backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// Back-off of a failed metadata write: first wait, and the longest.
pub(crate) const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
pub(crate) const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Owns the files; runs on its own thread and applies writes in order.
struct LogWriter {
    dir: PathBuf,
    file: File,
    len: u64,
    /// File offset of each live (not purged) entry.
    offsets: BTreeMap<u64, u64>,
    health: Arc<StorageHealth>,
    /// Alive while the store is: a write retried after the store is gone is given up.
    owner: std::sync::Weak<()>,
}

impl LogWriter {
    fn run(mut self, rx: mpsc::Receiver<WriteOp>) {
        while let Ok(op) = rx.recv() {
            match op {
                WriteOp::Append { frames, done } => {
                    let r = self.retrying("append", |w| w.append(&frames));
                    done.log_io_completed(r)
                }
                WriteOp::Truncate { since, done } => {
                    let _ = done.send(self.retrying("truncate", |w| w.truncate(since)));
                }
                WriteOp::SaveState { state, purge_upto, done } => {
                    let r = self.retrying("save state", |w| w.save_state(&state, purge_upto));
                    let _ = done.send(r);
                }
            }
        }
    }

    fn retrying<T>(
        &mut self,
        what: &str,
        mut op: impl FnMut(&mut Self) -> io::Result<T>,
    ) -> io::Result<T> {
        let health = self.health.clone();
        let owner = self.owner.clone();
        let alive = || owner.strong_count() > 0 && !health.closing();
        health.retry(what, || op(self), alive, std::thread::sleep)
    }

    fn append(&mut self, frames: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let start = self.len;
        let mut buf = Vec::with_capacity(frames.iter().map(|(_, f)| f.len()).sum());
        for (index, frame) in frames {
            self.offsets.insert(*index, start + buf.len() as u64);
            buf.extend_from_slice(frame);
        }
        let res = self.file.write_all(&buf).and_then(|_| self.file.sync_data());
        match res {
            Ok(()) => {
                self.len = start + buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Leave the file as it was so a later write does not follow a partial frame.
                if let Some((first, _)) = frames.first() {
                    self.offsets.split_off(first);
                }
                let _ = self.file.set_len(start);
                Err(e)
            }
        }
    }

    fn truncate(&mut self, since: u64) -> io::Result<()> {
        let removed = self.offsets.split_off(&since);
        if let Some((_, &offset)) = removed.iter().next() {
            self.file.set_len(offset)?;
            self.file.sync_all()?;
            self.len = offset;
        }
        Ok(())
    }

    fn save_state(&mut self, state: &PersistedState, purge_upto: Option<u64>) -> io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        write_file_atomically(&self.dir.join(STATE_FILE), &bytes)?;
        if let Some(upto) = purge_upto {
            self.offsets = self.offsets.split_off(&(upto + 1));
            self.compact()?;
        }
        Ok(())
    }

    /// Drops the purged prefix from the file once it is at least as large as the live part.
    fn compact(&mut self) -> io::Result<()> {
        let live_start = self.offsets.values().next().copied().unwrap_or(self.len);
        if live_start == 0 || live_start < self.len - live_start {
            return Ok(());
        }
        let path = self.dir.join(LOG_FILE);
        let data = fs::read(&path)?;
        let live_end = (self.len as usize).min(data.len());
        write_file_atomically(&path, &data[live_start as usize..live_end])?;
        self.file = OpenOptions::new().read(true).append(true).open(&path)?;
        for offset in self.offsets.values_mut() {
            *offset -= live_start;
        }
        self.len -= live_start;
        Ok(())
    }
}

fn io_to_storage(e: io::Error) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<MetadataEntry>, StorageError> {
        Ok(read_cache(&self.cache).entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<MetadataEntry>, StorageError> {
        Ok(read_cache(&self.cache).entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let cache = read_cache(&self.cache);
        let last_purged_log_id = cache.state.last_purged;
        let last_log_id =
            cache.entries.values().next_back().map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader { cache: self.cache.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let mut state = read_cache(&self.cache).state.clone();
        state.vote = Some(*vote);
        self.save_state(state, None).await.map_err(|e| StorageIOError::write_vote(&e))?;
        write_cache(&self.cache).state.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        Ok(read_cache(&self.cache).state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<MetadataLogId>,
    ) -> Result<(), StorageError> {
        let mut state = read_cache(&self.cache).state.clone();
        state.committed = committed;
        self.save_state(state, None).await.map_err(io_to_storage)?;
        write_cache(&self.cache).state.committed = committed;
        self.health.set_committed(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<MetadataLogId>, StorageError> {
        Ok(read_cache(&self.cache).state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = MetadataEntry> + Send,
        I::IntoIter: Send,
    {
        let mut frames = Vec::new();
        {
            let mut cache = write_cache(&self.cache);
            for entry in entries {
                let frame = encode_frame(&entry)
                    .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
                frames.push((entry.log_id.index, frame));
                cache.entries.insert(entry.log_id.index, entry);
            }
        }
        self.send(WriteOp::Append { frames, done: callback }).map_err(io_to_storage)
    }

    async fn truncate(&mut self, log_id: MetadataLogId) -> Result<(), StorageError> {
        write_cache(&self.cache).entries.split_off(&log_id.index);
        let (done, rx) = oneshot::channel();
        self.send(WriteOp::Truncate { since: log_id.index, done }).map_err(io_to_storage)?;
        rx.await.map_err(|_| writer_stopped()).and_then(|r| r).map_err(io_to_storage)
    }

    async fn purge(&mut self, log_id: MetadataLogId) -> Result<(), StorageError> {
        let state = {
            let mut cache = write_cache(&self.cache);
            cache.entries = cache.entries.split_off(&(log_id.index + 1));
            cache.state.last_purged = Some(log_id);
            cache.state.clone()
        };
        self.save_state(state, Some(log_id.index)).await.map_err(io_to_storage)
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn failed_writes_are_retried_with_back_off_and_report_a_stall() {
        let health = StorageHealth::default();
        let attempts = Cell::new(0);
        let slept = std::cell::RefCell::new(Vec::new());
        let r = health.retry(
            "append",
            || {
                attempts.set(attempts.get() + 1);
                assert_eq!(health.stalled(), attempts.get() > 1, "stalled while retrying");
                if attempts.get() < 8 {
                    Err(io::Error::from_raw_os_error(28)) // ENOSPC
                } else {
                    Ok(42)
                }
            },
            || true,
            |d| slept.borrow_mut().push(d),
        );
        assert_eq!(r.unwrap(), 42);
        assert!(!health.stalled(), "recovered");
        let ms: Vec<u128> = slept.borrow().iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 3200, 5000], "doubling to 5 s");
    }

    #[test]
    fn retrying_stops_once_nobody_waits() {
        let health = StorageHealth::default();
        health.close();
        let r: io::Result<()> = health.retry(
            "append",
            || Err(io::Error::from_raw_os_error(28)),
            || !health.closing(),
            |_| {},
        );
        assert_eq!(r.unwrap_err().raw_os_error(), Some(28));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::testing::{blank_ent, log_id};

    use super::*;

    async fn append_and_flush(store: &mut LogStore, entries: Vec<MetadataEntry>) {
        // LogFlushed has no public constructor; RaftLogStorageExt builds one and waits for it.
        use openraft::storage::RaftLogStorageExt;
        store.blocking_append(entries).await.unwrap();
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<MetadataEntry> {
        range.map(|i| blank_ent::<TypeConfig>(1, 1, i)).collect()
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_earlier_entries_survive() {
        tokio::time::timeout(Duration::from_secs(30), async {
            let dir = tempfile::tempdir().unwrap();
            {
                let mut store = LogStore::open(dir.path()).unwrap();
                append_and_flush(&mut store, entries(1..=5)).await;
                store.save_vote(&Vote::new(1, 1)).await.unwrap();
            }
            let path = dir.path().join(LOG_FILE);
            let full = fs::metadata(&path).unwrap().len();
            // A crash in the middle of the last frame: cut it short.
            OpenOptions::new().write(true).open(&path).unwrap().set_len(full - 3).unwrap();

            let mut store = LogStore::open(dir.path()).unwrap();
            let got = store.try_get_log_entries(..).await.unwrap();
            assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
            assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
            assert!(fs::metadata(&path).unwrap().len() < full - 3, "torn frame removed");

            // Appending after the cut continues a clean log.
            append_and_flush(&mut store, entries(5..=6)).await;
            drop(store);
            let mut store = LogStore::open(dir.path()).unwrap();
            let state = store.get_log_state().await.unwrap();
            assert_eq!(state.last_log_id, Some(log_id(1, 1, 6)));
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn garbage_after_the_last_frame_is_tolerated() {
        tokio::time::timeout(Duration::from_secs(30), async {
            let dir = tempfile::tempdir().unwrap();
            {
                let mut store = LogStore::open(dir.path()).unwrap();
                append_and_flush(&mut store, entries(1..=3)).await;
            }
            let path = dir.path().join(LOG_FILE);
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            // A plausible header whose payload never made it to disk, then random bytes.
            f.write_all(&[0, 0, 0, 40, 1, 2, 3, 4, 9, 9]).unwrap();
            drop(f);

            let mut store = LogStore::open(dir.path()).unwrap();
            let got = store.try_get_log_entries(..).await.unwrap();
            assert_eq!(got.len(), 3);
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn purge_and_truncate_survive_reopen_and_compact_the_file() {
        tokio::time::timeout(Duration::from_secs(30), async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(LOG_FILE);
            {
                let mut store = LogStore::open(dir.path()).unwrap();
                append_and_flush(&mut store, entries(1..=10)).await;
                store.truncate(log_id(1, 1, 9)).await.unwrap();
                let before = fs::metadata(&path).unwrap().len();
                store.purge(log_id(1, 1, 6)).await.unwrap();
                assert!(fs::metadata(&path).unwrap().len() < before, "purged prefix dropped");
                store.save_committed(Some(log_id(1, 1, 8))).await.unwrap();
            }
            let mut store = LogStore::open(dir.path()).unwrap();
            let got = store.try_get_log_entries(..).await.unwrap();
            assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![7, 8]);
            let state = store.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 6)));
            assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 8)));
        })
        .await
        .unwrap();
    }

    #[test]
    fn frame_with_valid_crc_but_bad_payload_fails_the_open() {
        let mut data = Vec::new();
        let payload = b"not json";
        data.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        data.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        data.extend_from_slice(payload);
        assert!(load_frames(&data, None).is_err());
    }
}
