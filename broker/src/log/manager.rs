//! `LogManager`: every partition log in one data directory (Kafka's `LogManager`).
//!
//! It owns the per-directory files: `recovery-point-offset-checkpoint`,
//! `replication-offset-checkpoint` (high watermarks), `log-start-offset-checkpoint` and the
//! clean-shutdown marker `.kafka_cleanshutdown`. The marker is consumed when the directory is
//! opened and written again only after every log closed cleanly, so its presence means "no scan
//! needed". The manager also runs the periodic work: retention
//! (`log.retention.check.interval.ms`), time-based flushing (`flush.ms`), checkpointing and
//! compaction, on one background thread.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::checkpoint;
use super::clock::Clock;
use super::config::LogConfig;
use super::partition_log::{LoadState, PartitionLog, RecoveryReport};
use super::{LogError, Result, TopicPartition};

pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const REPLICATION_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";

/// A partition log shared between request handlers and background work.
pub type SharedLog = Arc<Mutex<PartitionLog>>;

/// Intervals of the background work (Kafka's broker settings and defaults).
#[derive(Clone, Debug)]
pub struct ManagerIntervals {
    /// `log.retention.check.interval.ms` (5 minutes).
    pub retention_check: Duration,
    /// `log.flush.scheduler.interval.ms`: how often `flush.ms` is checked (Kafka: Long.MAX; we
    /// check every second, which only matters for topics that set `flush.ms`).
    pub flush_check: Duration,
    /// `log.flush.offset.checkpoint.interval.ms` (60 s).
    pub checkpoint: Duration,
    /// `log.cleaner.backoff.ms` (15 s): how often compacted logs are cleaned.
    pub cleaner_backoff: Duration,
    /// `producer.id.expiration.ms` (1 day): idle producer ids are forgotten.
    pub producer_id_expiration: Duration,
    /// `producer.id.expiration.check.interval.ms` (10 minutes); also checked once at start,
    /// so producers that expired while the broker was down do not come back with a snapshot.
    pub producer_id_expiration_check: Duration,
}

impl Default for ManagerIntervals {
    fn default() -> Self {
        ManagerIntervals {
            retention_check: Duration::from_millis(300_000),
            flush_check: Duration::from_millis(1_000),
            checkpoint: Duration::from_millis(60_000),
            cleaner_backoff: Duration::from_millis(15_000),
            producer_id_expiration: Duration::from_millis(86_400_000),
            producer_id_expiration_check: Duration::from_millis(600_000),
        }
    }
}

/// All partition logs of one data directory.
#[derive(Debug)]
pub struct LogManager {
    dir: PathBuf,
    defaults: LogConfig,
    clock: Arc<dyn Clock>,
    logs: Mutex<HashMap<TopicPartition, SharedLog>>,
    had_clean_shutdown: bool,
    /// Checkpoint values read at start-up, consumed as logs are opened.
    loaded: Mutex<LoadedCheckpoints>,
    cleaner: Mutex<CleanerHealth>,
    /// Background storage operations (flush, retention, checkpoints) that failed.
    background_errors: std::sync::atomic::AtomicU64,
    /// The last I/O error on this directory while it lasts (a full disk): the broker reports
    /// not ready until an append or a probe write succeeds again.
    dir_error: Mutex<Option<String>>,
    /// Whether `dir_error` is set: the append path checks this, not the lock.
    dir_failing: std::sync::atomic::AtomicBool,
    /// Every log's flush durations (`sluice_log_flush_latency_seconds`).
    flush_latency: prometheus_client::metrics::histogram::Histogram,
}

/// What the cleaner knows of the partitions it failed on.
#[derive(Debug, Default)]
struct CleanerHealth {
    /// Partitions the cleaner cannot clean (corrupt or unreadable batches), with the reason:
    /// skipped until the broker restarts, as Kafka's `uncleanable-partitions-count` counts.
    uncleanable: BTreeMap<TopicPartition, String>,
    /// Partitions whose last pass failed on an I/O error (a full disk): retried every pass,
    /// logged once per failing streak.
    io_failing: std::collections::BTreeSet<TopicPartition>,
    /// Failed passes since start-up.
    failures: u64,
}

#[derive(Debug, Default)]
struct LoadedCheckpoints {
    recovery_points: BTreeMap<TopicPartition, i64>,
    high_watermarks: BTreeMap<TopicPartition, i64>,
    log_starts: BTreeMap<TopicPartition, i64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves data we still want to close cleanly.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogManager {
    /// Opens the data directory and every partition log in it. `config_for` gives the
    /// effective config of a topic (broker defaults plus the topic's overrides).
    pub fn open<F>(
        dir: &Path,
        defaults: LogConfig,
        clock: Arc<dyn Clock>,
        config_for: F,
    ) -> Result<(Self, Vec<(TopicPartition, RecoveryReport)>)>
    where
        F: Fn(&str) -> LogConfig,
    {
        std::fs::create_dir_all(dir).map_err(LogError::io(dir))?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let had_clean_shutdown = marker.exists();
        let read = |name| {
            checkpoint::read_offsets(&dir.join(name)).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring unreadable checkpoint; logs will be recovered");
                BTreeMap::new()
            })
        };
        let loaded = LoadedCheckpoints {
            recovery_points: read(RECOVERY_POINT_CHECKPOINT),
            high_watermarks: read(REPLICATION_CHECKPOINT),
            log_starts: read(LOG_START_CHECKPOINT),
        };
        let manager = LogManager {
            dir: dir.into(),
            defaults,
            clock,
            logs: Mutex::new(HashMap::new()),
            had_clean_shutdown,
            loaded: Mutex::new(loaded),
            cleaner: Mutex::new(CleanerHealth::default()),
            background_errors: std::sync::atomic::AtomicU64::new(0),
            dir_error: Mutex::new(None),
            dir_failing: std::sync::atomic::AtomicBool::new(false),
            // 50 µs .. ~26 s, as the request latencies.
            flush_latency: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 20),
            ),
        };
        let mut reports = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(LogError::io(dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("-delete") {
                // A deletion interrupted by a crash: finish it.
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            let Some(tp) = TopicPartition::parse_dir_name(&name) else { continue };
            let config = config_for(&tp.topic);
            let (log, report) = manager.open_log(tp.clone(), config)?;
            drop(log);
            reports.push((tp, report));
        }
        // The marker is consumed: a crash from now on must be detected on the next start.
        if had_clean_shutdown {
            std::fs::remove_file(&marker).map_err(LogError::io(&marker))?;
        }
        Ok((manager, reports))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }
    /// Whether the directory was shut down cleanly before this start.
    pub fn had_clean_shutdown(&self) -> bool {
        self.had_clean_shutdown
    }

    fn open_log(
        &self,
        tp: TopicPartition,
        config: LogConfig,
    ) -> Result<(SharedLog, RecoveryReport)> {
        let state = {
            let mut loaded = lock(&self.loaded);
            LoadState {
                clean_shutdown: self.had_clean_shutdown,
                recovery_point: loaded.recovery_points.remove(&tp).unwrap_or(0),
                log_start_offset: loaded.log_starts.remove(&tp).unwrap_or(0),
                high_watermark: loaded.high_watermarks.remove(&tp).unwrap_or(0),
            }
        };
        let dir = self.dir.join(tp.dir_name());
        let (mut log, report) =
            PartitionLog::open(&dir, tp.clone(), config, self.clock.clone(), state)?;
        log.time_flushes(self.flush_latency.clone());
        if report.bytes_truncated > 0 || report.segments_deleted > 0 {
            tracing::warn!(partition = %tp, ?report, "recovered log after an unclean shutdown");
        }
        let log = Arc::new(Mutex::new(log));
        lock(&self.logs).insert(tp, log.clone());
        Ok((log, report))
    }

    /// The flush durations of every log.
    pub fn flush_latency(&self) -> &prometheus_client::metrics::histogram::Histogram {
        &self.flush_latency
    }

    /// The log of `tp`, if it exists.
    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        lock(&self.logs).get(tp).cloned()
    }

    /// The log of `tp`, created with `config` if it does not exist yet.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<SharedLog> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let (log, _) = self.open_log(tp.clone(), config)?;
        Ok(log)
    }

    /// Every log, sorted by partition.
    pub fn all(&self) -> Vec<(TopicPartition, SharedLog)> {
        let mut v: Vec<_> = lock(&self.logs).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Deletes a partition's log: the directory is renamed to `<name>.<id>-delete` first so a
    /// crash mid-delete is finished on the next start rather than reloaded.
    pub fn delete(&self, tp: &TopicPartition) -> Result<bool> {
        let Some(log) = lock(&self.logs).remove(tp) else { return Ok(false) };
        {
            let mut health = lock(&self.cleaner);
            health.uncleanable.remove(tp);
            health.io_failing.remove(tp);
        }
        let log = lock(&log);
        let from = log.dir().to_path_buf();
        let to = self.dir.join(format!("{}.{}-delete", tp.dir_name(), self.clock.now_ms()));
        std::fs::rename(&from, &to).map_err(LogError::io(&to))?;
        std::fs::remove_dir_all(&to).map_err(LogError::io(&to))?;
        Ok(true)
    }

    /// Applies a topic's new config to each of its partitions.
    pub fn update_topic_config(&self, topic: &str, config: &LogConfig) {
        for (tp, log) in self.all() {
            if tp.topic == topic {
                lock(&log).update_config(config.clone());
            }
        }
    }

    /// Writes the recovery-point, high-watermark and log-start checkpoints.
    pub fn checkpoint(&self) -> Result<()> {
        let mut rps = BTreeMap::new();
        let mut hws = BTreeMap::new();
        let mut starts = BTreeMap::new();
        for (tp, log) in self.all() {
            let log = lock(&log);
            rps.insert(tp.clone(), log.recovery_point());
            hws.insert(tp.clone(), log.high_watermark());
            starts.insert(tp, log.log_start_offset());
        }
        checkpoint::write_offsets(&self.dir.join(RECOVERY_POINT_CHECKPOINT), &rps)?;
        checkpoint::write_offsets(&self.dir.join(REPLICATION_CHECKPOINT), &hws)?;
        checkpoint::write_offsets(&self.dir.join(LOG_START_CHECKPOINT), &starts)
    }

    /// One retention pass over every log; returns the segments deleted.
    pub fn run_retention(&self) -> usize {
        let mut total = 0;
        for (tp, log) in self.all() {
            match lock(&log).delete_old_segments() {
                Ok(n) => total += n,
                Err(e) => {
                    self.count_background_error();
                    self.note_write(Err(&e));
                    tracing::error!(partition = %tp, error = %e, "retention failed")
                }
            }
        }
        total
    }

    /// Forgets idempotent producers idle longer than `expiration`; returns how many.
    pub fn expire_producers(&self, expiration: Duration) -> usize {
        self.all()
            .iter()
            .map(|(_, log)| lock(log).remove_expired_producers(expiration.as_millis() as i64))
            .sum()
    }

    /// One compaction pass over every compacted log; returns the records removed. A partition
    /// whose batches the cleaner cannot read is marked uncleanable once (one ERROR line) and
    /// skipped from then on, instead of failing every pass; an I/O error (a full disk) is
    /// retried every pass and logged once until a pass succeeds.
    pub fn run_cleaner(&self) -> u64 {
        let mut removed = 0;
        for (tp, log) in self.all() {
            if lock(&self.cleaner).uncleanable.contains_key(&tp) {
                continue;
            }
            let result = lock(&log).compact();
            let mut health = lock(&self.cleaner);
            match result {
                Ok(stats) => {
                    removed += stats.records_read - stats.records_kept;
                    if health.io_failing.remove(&tp) {
                        tracing::info!(partition = %tp, "compaction works again");
                    }
                }
                Err(e @ LogError::Io { .. }) => {
                    health.failures += 1;
                    if health.io_failing.insert(tp.clone()) {
                        tracing::error!(
                            partition = %tp,
                            error = %e,
                            "compaction failed on an I/O error; retrying every log.cleaner.backoff.ms"
                        );
                    }
                }
                Err(e) => {
                    health.failures += 1;
                    tracing::error!(
                        partition = %tp,
                        error = %e,
                        "partition marked uncleanable: compaction skips it until the broker restarts"
                    );
                    health.uncleanable.insert(tp, e.to_string());
                }
            }
        }
        removed
    }

    fn count_background_error(&self) {
        self.background_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records the outcome of a write to this directory: an I/O error marks it failing (one
    /// ERROR line when it starts), a success clears that (one INFO line).
    pub fn note_write(&self, result: Result<(), &LogError>) {
        use std::sync::atomic::Ordering;
        if result.is_ok() && !self.dir_failing.load(Ordering::Relaxed) {
            return; // the hot path: nothing to clear
        }
        let mut failing = lock(&self.dir_error);
        match result {
            Err(e @ LogError::Io { .. }) => {
                if failing.is_none() {
                    tracing::error!(dir = %self.dir.display(), error = %e, "log directory failing; the broker reports not ready until writes succeed again");
                }
                *failing = Some(e.to_string());
                self.dir_failing.store(true, Ordering::Relaxed);
            }
            Err(_) => {}
            Ok(()) => {
                self.dir_failing.store(false, Ordering::Relaxed);
                if failing.take().is_some() {
                    tracing::info!(dir = %self.dir.display(), "log directory writable again");
                }
            }
        }
    }

    /// The I/O error this directory is failing with, if it is.
    pub fn dir_failing(&self) -> Option<String> {
        if !self.dir_failing.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        lock(&self.dir_error).clone()
    }

    /// While failing, tries a small durable write (the background thread does, every tick), so
    /// the directory is known to work again once space returns even if nothing is produced.
    fn probe_dir(&self) {
        let path = self.dir.join(".sluice-probe");
        let result = crate::fsutil::write_file_atomically(&path, b"probe")
            .and_then(|_| std::fs::remove_file(&path))
            .map_err(LogError::io(&path));
        self.note_write(result.as_ref().map(|_| ()));
    }

    /// Background storage operations (flush, retention, checkpoints) that failed.
    pub fn background_errors(&self) -> u64 {
        self.background_errors.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Partitions marked uncleanable (Kafka's `uncleanable-partitions-count`).
    pub fn uncleanable_partitions(&self) -> usize {
        lock(&self.cleaner).uncleanable.len()
    }

    /// Compaction passes that failed since start-up.
    pub fn cleaner_failures(&self) -> u64 {
        lock(&self.cleaner).failures
    }

    /// Flushes logs whose `flush.ms` has elapsed.
    pub fn run_flush(&self) {
        for (tp, log) in self.all() {
            if let Err(e) = lock(&log).flush_if_due() {
                self.count_background_error();
                self.note_write(Err(&e));
                tracing::error!(partition = %tp, error = %e, "flush failed");
            }
        }
    }

    /// Closes every log, writes the checkpoints and then the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<()> {
        let mut result = Ok(());
        for (tp, log) in self.all() {
            if let Err(e) = lock(&log).close() {
                tracing::error!(partition = %tp, error = %e, "closing log failed");
                result = Err(e);
            }
        }
        result?;
        self.checkpoint()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::write(&marker, b"").map_err(LogError::io(&marker))?;
        super::sync_dir(&self.dir)
    }

    /// Starts the background thread running retention, flushing, checkpointing and cleaning
    /// at `intervals`. Dropping (or stopping) the handle ends it.
    pub fn start_background(self: &Arc<Self>, intervals: ManagerIntervals) -> BackgroundHandle {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let manager = Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("log-manager".into())
            .spawn(move || {
                let tick = intervals
                    .flush_check
                    .min(intervals.retention_check)
                    .min(intervals.checkpoint)
                    .min(intervals.cleaner_backoff)
                    .min(intervals.producer_id_expiration_check)
                    .max(Duration::from_millis(10));
                let start = std::time::Instant::now();
                let mut next = [
                    start + intervals.retention_check,
                    start + intervals.flush_check,
                    start + intervals.checkpoint,
                    start + intervals.cleaner_backoff,
                    // Producer expiry runs first thing, then on its interval.
                    start,
                ];
                loop {
                    match stop_rx.recv_timeout(tick) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let now = std::time::Instant::now();
                    if manager.dir_failing().is_some() {
                        manager.probe_dir();
                    }
                    if now >= next[0] {
                        manager.run_retention();
                        next[0] = now + intervals.retention_check;
                    }
                    if now >= next[1] {
                        manager.run_flush();
                        next[1] = now + intervals.flush_check;
                    }
                    if now >= next[2] {
                        if let Err(e) = manager.checkpoint() {
                            manager.count_background_error();
                            manager.note_write(Err(&e));
                            tracing::error!(error = %e, "writing checkpoints failed");
                        }
                        next[2] = now + intervals.checkpoint;
                    }
                    if now >= next[3] {
                        manager.run_cleaner();
                        next[3] = now + intervals.cleaner_backoff;
                    }
                    if now >= next[4] {
                        manager.expire_producers(intervals.producer_id_expiration);
                        next[4] = now + intervals.producer_id_expiration_check;
                    }
                }
            })
            .expect("spawning the log manager thread");
        BackgroundHandle { stop: Some(stop_tx), thread: Some(thread) }
    }
}

/// Stops the background thread when dropped.
#[derive(Debug)]
pub struct BackgroundHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundHandle {
    pub fn stop(mut self) {
        self.stop_inner();
    }
    fn stop_inner(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BackgroundHandle {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
