//! Crash and corruption tests for the storage engine (`sluice_broker::log`).
//!
//! * `crash_sigkill_*`: a child process (this test binary run again with only
//!   [`crash_child_appender`] selected and `SLUICE_CRASH_CHILD_DIR` set) appends a deterministic
//!   sequence of batches through a `LogManager` and acknowledges each one on stdout; the parent
//!   SIGKILLs it after a random number of acknowledgements, recovers the directory through the
//!   manager and checks that the log is exactly a prefix of the sequence holding every
//!   acknowledged batch. Several rounds on the same directory, several seeds, with the default
//!   flush policy and with `flush.messages=1`.
//! * `torn_*` / `garbage_*`: damage the `.log` files of a closed log (truncation, overwritten
//!   ranges, appended garbage, a torn middle segment) and recover it as after a crash.
//! * `damaged_indexes_*`: damage `.index` / `.timeindex` files and reopen after a clean shutdown.
//! * `clean_shutdown_marker_*`: the `.kafka_cleanshutdown` life cycle.
//!
//! All randomness comes from a seeded xorshift generator, so a failure names the seed and the
//! damage that produced it and can be replayed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_broker::log::batch::{build_batch, BatchIter, BatchMut, BatchView, KeyValue};
use sluice_broker::log::checkpoint;
use sluice_broker::log::manager::{
    LogManager, CLEAN_SHUTDOWN_FILE, LOG_START_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_CHECKPOINT,
};
use sluice_broker::log::partition_log::{
    LoadState, RecoveryReport, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP,
};
use sluice_broker::log::segment::file_name;
use sluice_broker::log::{
    Clock, LogConfig, ManualClock, PartitionLog, SystemClock, TopicPartition,
};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Deterministic data
// ---------------------------------------------------------------------------------------------

/// xorshift64*, seeded through splitmix64 (no dependency, reproducible).
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        lo + self.next_u64() % (hi - lo + 1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.next_u64() % one_in == 0
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next_u64() >> 32) as u8).collect()
    }
    fn nonzero_bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.range(1, 255) as u8).collect()
    }
}

const TS_BASE: i64 = 1_700_000_000_000;

/// Batch `i` of the sequence of `seed`, as a producer sends it (offset and epoch unset): 1-4
/// records with mostly small values and now and then a large one, and a timestamp that jitters
/// around `TS_BASE + 10 i` so timestamps are not monotonic (a segment's largest timestamp is
/// rarely its last batch).
fn gen_batch(seed: u64, i: u64) -> Vec<u8> {
    let mut rng = Rng::new((seed << 32) ^ i);
    let count = rng.range(1, 4) as usize;
    let large = rng.chance(12);
    let ts = TS_BASE + i as i64 * 10 + rng.range(0, 80) as i64 - 40;
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for j in 0..count {
        keys.push(format!("key-{i}-{j}").into_bytes());
        let len = if large && j == 0 { rng.range(2048, 12 * 1024) } else { rng.range(0, 300) };
        values.push(rng.bytes(len as usize));
    }
    let records: Vec<KeyValue<'_>> = keys
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(j, (k, v))| (if j % 3 == 2 { None } else { Some(&k[..]) }, Some(&v[..])))
        .collect();
    build_batch(0, ts, &records)
}

/// Batch `i` as the log stores it when appended at `offset` by a leader of `epoch`.
fn stamped(seed: u64, i: u64, offset: i64, epoch: i32) -> Vec<u8> {
    let mut b = gen_batch(seed, i);
    let mut m = BatchMut::new(&mut b);
    m.set_base_offset(offset);
    m.set_partition_leader_epoch(epoch);
    b
}

/// Leader epoch of batch `i` in the single-process tests: a new epoch every 40 batches.
fn epoch_of(i: u64) -> i32 {
    1 + (i / 40) as i32
}

fn view(b: &[u8]) -> BatchView<'_> {
    BatchView::parse(b).unwrap()
}

fn next_offset_after(batches: &[Vec<u8>]) -> i64 {
    batches.last().map_or(0, |b| view(b).next_offset())
}

fn tp() -> TopicPartition {
    TopicPartition::new("crash", 0)
}

/// Small segments and a dense index so a few hundred batches make many segments and entries.
fn config(segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, index_interval_bytes: 512, ..LogConfig::default() }
}

fn clock() -> Arc<dyn Clock> {
    ManualClock::new(TS_BASE)
}

fn open_log(dir: &Path, config: &LogConfig, state: LoadState) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(dir, tp(), config.clone(), clock(), state)
        .unwrap_or_else(|e| panic!("opening {} with {state:?}: {e}", dir.display()))
}

fn open_manager(
    dir: &Path,
    config: &LogConfig,
) -> (LogManager, Vec<(TopicPartition, RecoveryReport)>) {
    let c = config.clone();
    LogManager::open(dir, config.clone(), Arc::new(SystemClock), move |_| c.clone())
        .unwrap_or_else(|e| panic!("opening the manager on {}: {e}", dir.display()))
}

/// Appends the next `count` batches of the sequence of `seed` (continuing after `batches`) and
/// records them as stored; checks each lands at the LEO.
fn append_seq(log: &mut PartitionLog, seed: u64, batches: &mut Vec<Vec<u8>>, count: usize) {
    for _ in 0..count {
        let i = batches.len() as u64;
        let mut b = gen_batch(seed, i);
        let leo = log.log_end_offset();
        assert_eq!(leo, next_offset_after(batches), "LEO before appending batch {i}");
        let info = log.append_as_leader(&mut b, epoch_of(i)).unwrap();
        assert_eq!(info.first_offset, leo, "batch {i} must be appended at the LEO");
        assert_eq!(info.last_offset, view(&b).last_offset());
        log.update_high_watermark(info.last_offset + 1);
        batches.push(b);
    }
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// Every batch of the log, read through the fetch path from the log start to the LEO, each
/// one checked with `BatchView::parse_checked` (structure and CRC).
fn read_all(log: &PartitionLog) -> Vec<Vec<u8>> {
    let leo = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut out = Vec::new();
    while offset < leo {
        let data = log.read(offset, 256 * 1024, i64::MAX).unwrap();
        assert!(!data.records.is_empty(), "nothing read at offset {offset} below the LEO {leo}");
        let mut iter = BatchIter::new(&data.records, true);
        for item in iter.by_ref() {
            let (_, v) = item.unwrap_or_else(|e| panic!("invalid batch read at {offset}: {e}"));
            let checked = BatchView::parse_checked(v.bytes()).unwrap();
            assert!(checked.base_offset() >= offset, "offsets go backwards at {offset}");
            out.push(v.bytes().to_vec());
            offset = v.next_offset();
        }
        assert_eq!(iter.position(), data.records.len(), "reads return whole batches only");
    }
    assert_eq!(offset, leo, "the last batch ends at the LEO");
    out
}

/// `actual` must be exactly the first `actual.len()` batches of `expected`, byte for byte.
fn assert_prefix(actual: &[Vec<u8>], expected: &[Vec<u8>], what: &str) {
    assert!(
        actual.len() <= expected.len(),
        "{what}: the log holds {} batches, more than the {} written",
        actual.len(),
        expected.len()
    );
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            a == e,
            "{what}: batch {i} differs from what was written: stored {:?} ({} bytes), \
             written {:?} ({} bytes)",
            view(a),
            a.len(),
            view(e),
            e.len()
        );
    }
}

/// A read at every offset returns the batch holding it first; the LEO reads empty and beyond
/// it is out of range.
fn check_reads(log: &PartitionLog, batches: &[Vec<u8>], what: &str) {
    for b in batches {
        let v = view(b);
        for offset in v.base_offset()..=v.last_offset() {
            let data = log.read(offset, 1, i64::MAX).unwrap();
            assert!(
                data.records == *b,
                "{what}: read at offset {offset} did not return the batch {v:?} holding it"
            );
        }
    }
    let leo = log.log_end_offset();
    assert!(log.read(leo, 1 << 20, i64::MAX).unwrap().records.is_empty(), "{what}: read at LEO");
    assert!(log.read(leo + 1, 1 << 20, i64::MAX).is_err(), "{what}: read beyond the LEO");
}

/// `fetch_offset_by_timestamp` against a brute-force answer over `batches` (all records of a
/// batch share its timestamp, so the answer is the first batch reaching the target).
fn check_timestamps(log: &PartitionLog, batches: &[Vec<u8>], what: &str) {
    let ts: Vec<(i64, i64)> =
        batches.iter().map(|b| (view(b).base_offset(), view(b).max_timestamp())).collect();
    let brute = |target: i64| ts.iter().find(|&&(_, t)| t >= target).copied();
    let mut targets: Vec<i64> = ts.iter().flat_map(|&(_, t)| [t - 1, t, t + 1]).collect();
    targets.extend([0, TS_BASE - 1_000, TS_BASE + 100 * 1_000_000]);
    targets.sort_unstable();
    targets.dedup();
    for target in targets {
        assert_eq!(
            log.fetch_offset_by_timestamp(target).unwrap(),
            brute(target),
            "{what}: first offset with timestamp >= {target}"
        );
    }
    let max = ts.iter().map(|&(_, t)| t).max();
    let expected_max = max.and_then(|m| ts.iter().find(|&&(_, t)| t == m).copied());
    assert_eq!(log.fetch_offset_by_timestamp(MAX_TIMESTAMP).unwrap(), expected_max, "{what}: max");
    assert_eq!(
        log.fetch_offset_by_timestamp(EARLIEST_TIMESTAMP).unwrap(),
        Some((log.log_start_offset(), -1))
    );
    assert_eq!(
        log.fetch_offset_by_timestamp(LATEST_TIMESTAMP).unwrap(),
        Some((log.log_end_offset(), -1))
    );
}

/// The leader-epoch cache the batches imply: each epoch starts at its first batch.
fn expected_epochs(batches: &[Vec<u8>]) -> Vec<(i32, i64)> {
    let mut out: Vec<(i32, i64)> = Vec::new();
    for b in batches {
        let v = view(b);
        if out.last().map(|&(e, _)| e) != Some(v.partition_leader_epoch()) {
            out.push((v.partition_leader_epoch(), v.base_offset()));
        }
    }
    out
}

/// Reads the whole log, checks it is a prefix of `expected` with valid CRCs, that a read at
/// every offset and every timestamp lookup works, and that the epoch cache and high watermark
/// agree with the surviving batches. Returns the batches.
fn verify(log: &PartitionLog, expected: &[Vec<u8>], what: &str) -> Vec<Vec<u8>> {
    let actual = read_all(log);
    assert_prefix(&actual, expected, what);
    assert_eq!(log.log_end_offset(), next_offset_after(&actual), "{what}: LEO");
    check_reads(log, &actual, what);
    check_timestamps(log, &actual, what);
    assert_eq!(log.epoch_entries(), expected_epochs(&actual).as_slice(), "{what}: epoch cache");
    assert!(log.high_watermark() <= log.log_end_offset(), "{what}: HW beyond the LEO");
    assert!(log.recovery_point() <= log.log_end_offset(), "{what}: recovery point beyond LEO");
    actual
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL crash test
// ---------------------------------------------------------------------------------------------

/// Name of the child "test"; it only acts when [`ENV_DIR`] is set.
const CHILD_TEST: &str = "crash_child_appender";
const ENV_DIR: &str = "SLUICE_CRASH_CHILD_DIR";
/// `seed start_index epoch flush_each` for the child.
const ENV_SPEC: &str = "SLUICE_CRASH_CHILD_SPEC";
/// Safety bounds on a child that is never killed.
const CHILD_MAX_BATCHES: u64 = 20_000;
const CHILD_MAX_RUN: Duration = Duration::from_secs(20);
/// Bound on every wait for the child.
const WAIT: Duration = Duration::from_secs(20);

fn crash_config(flush_each: bool) -> LogConfig {
    let mut c = config(64 * 1024);
    if flush_each {
        c.flush_messages = 1;
    }
    c
}

/// The child side of the crash tests: opens the data directory with a `LogManager`, prints
/// `START <leo> <had clean shutdown>`, then appends the sequence from the given batch index,
/// setting HW = LEO, writing checkpoints every 16 batches, and printing `ACK <base offset>
/// <crc>` (flushed) after each append, until it is killed.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(ENV_DIR) else { return };
    let spec: Vec<i64> = std::env::var(ENV_SPEC)
        .expect("spec")
        .split_whitespace()
        .map(|s| s.parse().expect("number"))
        .collect();
    let [seed, start, epoch, flush_each] = spec[..] else { panic!("bad spec {spec:?}") };
    let config = crash_config(flush_each == 1);
    let (manager, _) = open_manager(Path::new(&dir), &config);
    let log = manager.get_or_create(&tp(), config).unwrap();
    let leo = log.lock().unwrap().log_end_offset();
    let mut out = std::io::stdout();
    // A leading newline: libtest may have written "test ... " without one.
    writeln!(out, "\nSTART {leo} {}", u8::from(manager.had_clean_shutdown())).unwrap();
    out.flush().unwrap();
    let deadline = Instant::now() + CHILD_MAX_RUN;
    for i in start as u64..start as u64 + CHILD_MAX_BATCHES {
        if Instant::now() > deadline {
            break;
        }
        let mut batch = gen_batch(seed as u64, i);
        let crc = view(&batch).crc();
        let first_offset = {
            let mut log = log.lock().unwrap();
            let info = log.append_as_leader(&mut batch, epoch as i32).unwrap();
            log.update_high_watermark(info.last_offset + 1);
            info.first_offset
        };
        if i % 16 == 15 {
            manager.checkpoint().unwrap();
        }
        writeln!(out, "ACK {first_offset} {crc}").unwrap();
        out.flush().unwrap();
    }
}

/// Kills and reaps the child however the parent leaves (including by panicking).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Default)]
struct ChildRun {
    /// What the child found on opening: (LEO, had clean shutdown).
    start: Option<(i64, bool)>,
    /// (base offset, CRC) of each acknowledged batch, in order.
    acks: Vec<(i64, u32)>,
}

impl ChildRun {
    /// Takes a `START`/`ACK` line (other output of the test harness is ignored). Lines are
    /// written with one `write` to a pipe, which is atomic: a malformed one is an error.
    fn take_line(&mut self, line: &str) {
        let fields = |at: usize| -> [i64; 2] {
            let f: Vec<i64> =
                line[at..].split_whitespace().skip(1).filter_map(|s| s.parse().ok()).collect();
            f[..].try_into().unwrap_or_else(|_| panic!("malformed child line {line:?}"))
        };
        if let Some(at) = line.find("START ") {
            let [leo, clean] = fields(at);
            self.start = Some((leo, clean == 1));
        } else if let Some(at) = line.find("ACK ") {
            let [offset, crc] = fields(at);
            self.acks.push((offset, crc as u32));
        }
    }
}

/// Runs the child on `dir` and SIGKILLs it after `kill_after` acknowledgements plus `linger`.
/// Returns everything it printed before it died.
fn run_child(dir: &Path, spec: &str, kill_after: usize, linger: Duration) -> ChildRun {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_SPEC, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut guard = ChildGuard(child);
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut run = ChildRun::default();
    let deadline = Instant::now() + WAIT;
    while run.start.is_none() || run.acks.len() < kill_after {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => run.take_line(&line),
            Err(RecvTimeoutError::Timeout) => {
                panic!("child [{spec}]: {} of {kill_after} acks in {WAIT:?}", run.acks.len())
            }
            Err(RecvTimeoutError::Disconnected) => panic!(
                "child [{spec}] exited ({:?}) after {} of {kill_after} acks",
                guard.0.wait(),
                run.acks.len()
            ),
        }
    }
    if !linger.is_zero() {
        std::thread::sleep(linger);
    }
    guard.0.kill().unwrap(); // SIGKILL
    let status = guard.0.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "child [{spec}] must die by SIGKILL: {status:?}");
    // Lines written before the kill are acknowledgements too: drain the pipe.
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => run.take_line(&line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("child [{spec}]: pipe still open"),
        }
    }
    reader.join().unwrap();
    run
}

/// `rounds` crash/recover rounds on one directory for `seed`: each round a child continues the
/// sequence (with epoch = round + 1) and is killed after a random number of acknowledgements
/// (sometimes 0, sometimes with a short delay so it dies mid-append); the parent recovers and
/// checks (a) the log is exactly a prefix of the sequence, (b) every batch passes its CRC,
/// (c) every acknowledged batch is there (and at most the one batch in flight beyond them).
/// After some rounds the parent shuts down cleanly so the next child takes the clean path.
fn crash_rounds(seed: u64, flush_each: bool, rounds: usize, max_acks: u64) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let config = crash_config(flush_each);
    let mut rng = Rng::new(seed ^ 0x5EED_5EED);
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut clean = false;
    let (mut acks, mut unacked, mut torn_rounds) = (0, 0, 0);
    for round in 0..rounds {
        let what = format!("seed {seed}, flush_each {flush_each}, round {round}");
        let epoch = round as i32 + 1;
        let start = kept.len();
        let start_offset = next_offset_after(&kept);
        let kill_after = if rng.chance(8) { 0 } else { rng.range(1, max_acks) as usize };
        let linger =
            if rng.chance(3) { Duration::from_micros(rng.range(0, 3000)) } else { Duration::ZERO };
        let spec = format!("{seed} {start} {epoch} {}", u8::from(flush_each));
        let run = run_child(dir, &spec, kill_after, linger);
        assert_eq!(run.start, Some((start_offset, clean)), "{what}: state the child opened");

        // The sequence continued from `start`: every ack must match it, and one more batch may
        // have been appended (or torn) after the last ack.
        let mut expected = kept.clone();
        let mut offset = start_offset;
        for k in 0..=run.acks.len() {
            let b = stamped(seed, (start + k) as u64, offset, epoch);
            if let Some(&ack) = run.acks.get(k) {
                assert_eq!(ack, (offset, view(&b).crc()), "{what}: ack {k}");
            }
            offset = view(&b).next_offset();
            expected.push(b);
        }

        let (manager, reports) = open_manager(dir, &config);
        assert!(!manager.had_clean_shutdown(), "{what}: a SIGKILL leaves no clean marker");
        assert!(!dir.join(CLEAN_SHUTDOWN_FILE).exists());
        let report = &reports.iter().find(|(t, _)| *t == tp()).expect("log reopened").1;
        assert!(report.segments_recovered >= 1, "{what}: the active segment is recovered");
        let log = manager.get(&tp()).unwrap();
        let log = log.lock().unwrap();
        let actual = verify(&log, &expected, &what);
        let acked = start + run.acks.len();
        assert!(
            actual.len() >= acked,
            "{what}: acknowledged batches lost: {acked} acknowledged, {} in the log",
            actual.len()
        );
        assert!(actual.len() <= acked + 1, "{what}: more than one unacknowledged batch");
        acks += run.acks.len();
        unacked += actual.len() - acked;
        torn_rounds += usize::from(report.bytes_truncated > 0);
        kept = actual;
        drop(log);
        clean = rng.chance(3);
        if clean {
            manager.shutdown().unwrap();
        }
    }
    // Finally a clean restart sees the same log without recovering anything.
    let (manager, _) = open_manager(dir, &config);
    manager.shutdown().unwrap();
    drop(manager);
    let (manager, reports) = open_manager(dir, &config);
    assert!(manager.had_clean_shutdown());
    assert_eq!(reports[0].1.segments_recovered, 0);
    assert_eq!(reports[0].1.bytes_truncated, 0);
    let log = manager.get(&tp()).unwrap();
    let log = log.lock().unwrap();
    let all = verify(&log, &kept, "after the final clean restart");
    assert_eq!(all.len(), kept.len());
    assert!(log.segment_count() > 2, "seed {seed}: the rounds should span several segments");
    eprintln!(
        "seed {seed} flush_each {flush_each}: {rounds} kills, {acks} acks, {} batches in {} \
         segments, {unacked} unacknowledged batches kept, {torn_rounds} torn tails truncated",
        kept.len(),
        log.segment_count()
    );
}

#[test]
fn crash_sigkill_default_flush_policy() {
    for seed in [1, 2, 3] {
        crash_rounds(seed, false, 5, 300);
    }
}

#[test]
fn crash_sigkill_flush_every_message() {
    for seed in [11, 12] {
        crash_rounds(seed, true, 4, 150);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Torn tails and garbage
// ---------------------------------------------------------------------------------------------

/// A closed log to damage: copies are made for each trial.
struct Template {
    _root: TempDir,
    dir: PathBuf,
    seed: u64,
    config: LogConfig,
    batches: Vec<Vec<u8>>,
    bases: Vec<i64>,
    leo: i64,
}

/// Where a batch sits: segment index, byte position and size.
#[derive(Clone, Copy, Debug)]
struct Placed {
    seg: usize,
    pos: u64,
    size: u64,
}

impl Template {
    /// Writes `n` batches of `seed` and closes the log cleanly.
    fn write(seed: u64, n: usize, segment_bytes: u64) -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(tp().dir_name());
        let config = config(segment_bytes);
        let (mut log, _) = open_log(&dir, &config, LoadState::default());
        let mut batches = Vec::new();
        append_seq(&mut log, seed, &mut batches, n);
        let bases = log.segment_base_offsets();
        let leo = log.log_end_offset();
        log.close().unwrap();
        drop(log);
        let t = Template { _root: root, dir, seed, config, batches, bases, leo };
        // The layout model must match the files.
        for (seg, &base) in t.bases.iter().enumerate() {
            let size: u64 = t.placed().iter().filter(|p| p.seg == seg).map(|p| p.size).sum();
            assert_eq!(std::fs::metadata(t.log_file(&t.dir, seg)).unwrap().len(), size);
            assert!(size > 0, "segment {base} is empty");
        }
        assert!(t.bases.len() >= 5, "the template should have several segments");
        t
    }

    /// The written batches, extended with the ones the sequence continues with.
    fn reference(&self, len: usize) -> Vec<Vec<u8>> {
        let mut out = self.batches.clone();
        while out.len() < len {
            let i = out.len() as u64;
            out.push(stamped(self.seed, i, next_offset_after(&out), epoch_of(i)));
        }
        out
    }

    fn placed(&self) -> Vec<Placed> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut seg = 0;
        for b in &self.batches {
            let base = view(b).base_offset();
            while seg + 1 < self.bases.len() && self.bases[seg + 1] <= base {
                seg += 1;
                pos = 0;
            }
            out.push(Placed { seg, pos, size: b.len() as u64 });
            pos += b.len() as u64;
        }
        out
    }

    fn log_file(&self, dir: &Path, seg: usize) -> PathBuf {
        dir.join(file_name(self.bases[seg], ".log"))
    }

    /// A fresh copy of the closed log.
    fn copy(&self) -> (TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(tp().dir_name());
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        (root, dir)
    }

    /// Number of batches wholly before byte `cut` of segment `seg` (all earlier segments kept).
    fn survivors(&self, seg: usize, cut: u64) -> usize {
        self.placed()
            .iter()
            .take_while(|p| p.seg < seg || (p.seg == seg && p.pos + p.size <= cut))
            .count()
    }

    /// End of the last batch of segment `seg` that ends at or before `cut`.
    fn valid_end(&self, seg: usize, cut: u64) -> u64 {
        self.placed()
            .iter()
            .filter(|p| p.seg == seg && p.pos + p.size <= cut)
            .map(|p| p.pos + p.size)
            .max()
            .unwrap_or(0)
    }

    /// After recovery: the log holds exactly the first `survivors` batches; appends continue
    /// at the new LEO (and, being the same sequence, rebuild exactly what was written); a clean
    /// restart and a full unclean recovery afterwards both find the same log and nothing to do.
    fn check_recovered(&self, dir: &Path, mut log: PartitionLog, survivors: usize, what: &str) {
        let actual = verify(&log, &self.batches, what);
        assert_eq!(actual.len(), survivors, "{what}: batches kept");
        assert_eq!(log.high_watermark(), log.log_end_offset(), "{what}: HW clamped to the LEO");
        let mut batches = actual;
        append_seq(&mut log, self.seed, &mut batches, 12);
        let all = verify(&log, &batches, what);
        assert_eq!(all.len(), survivors + 12);
        assert_prefix(&all, &self.reference(all.len()), &format!("{what}, appended again"));
        let leo = log.log_end_offset();
        log.close().unwrap();
        drop(log);
        for clean in [true, false] {
            let state = LoadState {
                clean_shutdown: clean,
                recovery_point: if clean { leo } else { 0 },
                log_start_offset: 0,
                high_watermark: leo,
            };
            let (log, report) = open_log(dir, &self.config, state);
            let what = format!("{what}, reopened (clean {clean})");
            assert_eq!(report.bytes_truncated, 0, "{what}");
            assert_eq!(report.segments_deleted, 0, "{what}");
            assert_eq!(verify(&log, &batches, &what).len(), batches.len(), "{what}");
        }
    }
}

/// LoadState after a crash: recovery from 0 or from the recovery point checkpointed at close.
fn crash_state(t: &Template, checkpointed: bool) -> LoadState {
    LoadState {
        clean_shutdown: false,
        recovery_point: if checkpointed { t.leo } else { 0 },
        log_start_offset: 0,
        high_watermark: t.leo,
    }
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// XORs `len` bytes at `at` with non-zero random bytes (every byte changes).
fn scramble(path: &Path, at: u64, len: u64, rng: &mut Rng) {
    let mut data = std::fs::read(path).unwrap();
    let mask = rng.nonzero_bytes(len as usize);
    for (b, m) in data[at as usize..(at + len) as usize].iter_mut().zip(mask) {
        *b ^= m;
    }
    std::fs::write(path, data).unwrap();
}

/// (a) The last segment truncated anywhere: at 0, at and around batch boundaries, one byte
/// short, inside headers and at random positions.
#[test]
fn torn_tail_truncated_at_random_positions() {
    for seed in [21, 22] {
        let t = Template::write(seed, 160, 16 * 1024);
        let placed = t.placed();
        let last = t.bases.len() - 1;
        let size = std::fs::metadata(t.log_file(&t.dir, last)).unwrap().len();
        let mut rng = Rng::new(seed);
        let mut cuts = vec![0, 1, 11, 12, 60, 61, size - 1, size];
        for p in placed.iter().filter(|p| p.seg == last) {
            cuts.extend([p.pos, p.pos + 1, p.pos + 30, p.pos + p.size - 1]);
        }
        cuts.extend((0..12).map(|_| rng.range(0, size - 1)));
        cuts.sort_unstable();
        cuts.dedup();
        for (n, cut) in cuts.into_iter().filter(|&c| c <= size).enumerate() {
            let (_root, dir) = t.copy();
            set_len(&t.log_file(&dir, last), cut);
            let checkpointed = n % 2 == 1;
            let (log, report) = open_log(&dir, &t.config, crash_state(&t, checkpointed));
            let what = format!("seed {seed}: last segment cut at {cut} of {size}");
            assert_eq!(report.bytes_truncated, cut - t.valid_end(last, cut), "{what}");
            assert_eq!(report.segments_deleted, 0, "{what}");
            assert_eq!(log.segment_count(), t.bases.len(), "{what}");
            t.check_recovered(&dir, log, t.survivors(last, cut), &what);
        }
    }
}

/// (b) Random ranges of the tail overwritten with garbage. Every range is at least 17 bytes:
/// the base offset (bytes 0-7) and leader epoch (12-15) of a batch are outside its CRC by the
/// format's design, and any 17 bytes touch the magic, the CRC or CRC-covered bytes of the
/// first batch they hit, so the expected cut is exact. Two cases then damage the base offset
/// alone with values recovery must still reject: going backwards, or out of the segment's
/// 32-bit relative range.
#[test]
fn garbage_overwritten_in_tail() {
    for seed in [31, 32] {
        let t = Template::write(seed, 160, 16 * 1024);
        let placed = t.placed();
        let last = t.bases.len() - 1;
        let path_in = |dir: &Path| t.log_file(dir, last);
        let size = std::fs::metadata(path_in(&t.dir)).unwrap().len();
        let mut rng = Rng::new(seed);
        for trial in 0..24 {
            let (_root, dir) = t.copy();
            let ranges = rng.range(1, 3);
            let mut first = u64::MAX;
            let mut desc = Vec::new();
            for _ in 0..ranges {
                let at = rng.range(size.saturating_sub(8 * 1024), size - 1);
                let len = rng.range(17, 300).min(size - at);
                scramble(&path_in(&dir), at, len, &mut rng);
                first = first.min(at);
                desc.push((at, len));
            }
            let (log, report) = open_log(&dir, &t.config, crash_state(&t, trial % 2 == 0));
            let what = format!("seed {seed} trial {trial}: garbage at {desc:?} of {size} bytes");
            assert_eq!(report.bytes_truncated, size - t.valid_end(last, first), "{what}");
            assert_eq!(report.segments_deleted, 0, "{what}");
            t.check_recovered(&dir, log, t.survivors(last, first), &what);
        }
        // The base offset of a tail batch rewritten: backwards (a stale header), to a negative
        // value, or beyond what the segment's relative offsets can hold.
        let victims: Vec<usize> = (0..placed.len()).filter(|&i| placed[i].seg == last).collect();
        let last_base = t.bases[last];
        for (k, bogus) in
            [0, last_base - 1, -1, last_base + (1 << 33), i64::MAX - 3].into_iter().enumerate()
        {
            let victim = victims[victims.len() - 1 - (k % victims.len().min(3))];
            let (_root, dir) = t.copy();
            let mut data = std::fs::read(path_in(&dir)).unwrap();
            let pos = placed[victim].pos as usize;
            data[pos..pos + 8].copy_from_slice(&bogus.to_be_bytes());
            std::fs::write(path_in(&dir), data).unwrap();
            let (log, report) = open_log(&dir, &t.config, crash_state(&t, k % 2 == 0));
            let what = format!("seed {seed}: base offset of batch {victim} set to {bogus}");
            assert_eq!(report.bytes_truncated, size - placed[victim].pos, "{what}");
            t.check_recovered(&dir, log, victim, &what);
        }
    }
}

/// (c) Garbage after the last batch: zeros (preallocated space), random bytes, 0xff, a torn
/// header, a torn copy of the next batch, a header claiming a huge length, and a stale but
/// CRC-valid copy of an earlier batch (its offsets go backwards).
#[test]
fn garbage_appended_after_tail() {
    let seed = 41;
    let t = Template::write(seed, 160, 16 * 1024);
    let last = t.bases.len() - 1;
    let mut rng = Rng::new(seed);
    let next = stamped(seed, t.batches.len() as u64, t.leo, epoch_of(t.batches.len() as u64));
    let mut huge = next.clone();
    huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("1 zero byte".into(), vec![0]),
        ("4 KiB of zeros".into(), vec![0; 4096]),
        ("0xff bytes".into(), vec![0xff; 700]),
        ("a torn header".into(), next[..30].to_vec()),
        ("12 bytes of the next batch".into(), next[..12].to_vec()),
        ("the next batch less one byte".into(), next[..next.len() - 1].to_vec()),
        ("a header claiming 2 GiB".into(), huge[..200.min(huge.len())].to_vec()),
        ("a stale copy of the last batch".into(), t.batches.last().unwrap().clone()),
        ("a stale copy of the first batch".into(), t.batches[0].clone()),
    ];
    for n in 0..8 {
        let len = rng.range(1, 5000) as usize;
        cases.push((format!("{len} random bytes (#{n})"), rng.bytes(len)));
    }
    for (k, (name, garbage)) in cases.into_iter().enumerate() {
        let (_root, dir) = t.copy();
        let path = t.log_file(&dir, last);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&garbage).unwrap();
        drop(file);
        let (log, report) = open_log(&dir, &t.config, crash_state(&t, k % 2 == 0));
        let what = format!("appended {name}");
        assert_eq!(report.bytes_truncated, garbage.len() as u64, "{what}");
        assert_eq!(report.segments_deleted, 0, "{what}");
        t.check_recovered(&dir, log, t.batches.len(), &what);
    }
}

/// A tear (truncation strictly inside a batch, or garbage) in a middle segment beyond the
/// recovery point: the segment is cut there and every later segment is dropped, files included.
/// Truncations are also tried with the recovery point checkpointed past the torn segment: its
/// loaded index no longer fits the shorter file, so it is recovered all the same.
#[test]
fn torn_middle_segment_drops_later_segments() {
    let seed = 51;
    let t = Template::write(seed, 220, 16 * 1024);
    let placed = t.placed();
    let last = t.bases.len() - 1;
    let mut rng = Rng::new(seed);
    for trial in 0..16 {
        let seg = rng.range(0, last as u64 - 1) as usize;
        let in_seg: Vec<&Placed> = placed.iter().filter(|p| p.seg == seg).collect();
        let victim = in_seg[rng.range(0, in_seg.len() as u64 - 1) as usize];
        let garbage = trial % 4 == 3;
        let trusted = trial % 4 == 1;
        let (_root, dir) = t.copy();
        let path = t.log_file(&dir, seg);
        let size = std::fs::metadata(&path).unwrap().len();
        let at = rng.range(victim.pos + 1, victim.pos + victim.size - 1);
        let (expected_truncated, desc) = if garbage {
            let len = rng.range(17, 200).min(size - at);
            scramble(&path, at, len, &mut rng);
            (size - victim.pos, format!("{len} bytes of garbage at {at}"))
        } else {
            set_len(&path, at);
            (at - victim.pos, format!("cut at {at}"))
        };
        let recovery_point = match (trusted, trial % 3) {
            (true, _) => t.leo,
            (false, 0) => 0,
            (false, 1) => t.bases[seg],
            (false, _) => t.bases[seg + 1] - 1,
        };
        let state = LoadState {
            clean_shutdown: false,
            recovery_point,
            log_start_offset: 0,
            high_watermark: t.leo,
        };
        let (log, report) = open_log(&dir, &t.config, state);
        let what = format!(
            "trial {trial}: segment {seg} (base {}) of {}, {desc}, recovery point {recovery_point}",
            t.bases[seg],
            t.bases.len()
        );
        assert_eq!(report.bytes_truncated, expected_truncated, "{what}");
        assert_eq!(report.segments_deleted, last - seg, "{what}");
        assert_eq!(log.segment_base_offsets(), t.bases[..=seg].to_vec(), "{what}");
        for later in &t.bases[seg + 1..] {
            for ext in [".log", ".index", ".timeindex"] {
                let f = dir.join(file_name(*later, ext));
                assert!(!f.exists(), "{what}: {} left behind", f.display());
            }
        }
        let survivors = placed.iter().take_while(|p| p.seg < seg).count()
            + in_seg.iter().filter(|p| p.pos < victim.pos).count();
        t.check_recovered(&dir, log, survivors, &what);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Index repair after a clean shutdown
// ---------------------------------------------------------------------------------------------

/// Damaged `.index` / `.timeindex` files (deleted, cut to sizes that are not whole entries,
/// filled with random or constant garbage, or plausible but wrong entries) are detected on a
/// clean start and rebuilt: every read and timestamp lookup answers as before, the files exist
/// again with whole, truthful entries.
#[test]
fn damaged_indexes_are_rebuilt_on_clean_start() {
    let seed = 61;
    let t = Template::write(seed, 200, 16 * 1024);
    let clean = LoadState {
        clean_shutdown: true,
        recovery_point: t.leo,
        log_start_offset: 0,
        high_watermark: t.leo,
    };
    let originals: Vec<(Vec<u8>, Vec<u8>)> = t
        .bases
        .iter()
        .map(|&b| {
            let read = |ext| std::fs::read(t.dir.join(file_name(b, ext))).unwrap();
            (read(".index"), read(".timeindex"))
        })
        .collect();
    let entries: usize = originals.iter().map(|(i, _)| i.len() / 8).sum();
    assert!(entries >= 3 * t.bases.len(), "the segments should be well indexed ({entries})");
    check_index_files(&t, &t.dir, &originals, "the originals");
    {
        let (_root, dir) = t.copy();
        let (log, report) = open_log(&dir, &t.config, clean);
        assert_eq!(report, RecoveryReport { segments: t.bases.len(), ..Default::default() });
        assert_eq!(verify(&log, &t.batches, "undamaged").len(), t.batches.len());
    }

    type Damage = fn(&Path, &mut Rng, usize);
    let delete: Damage = |p, _, _| std::fs::remove_file(p).unwrap();
    let odd_size: Damage = |p, rng, entry| {
        let len = std::fs::metadata(p).unwrap().len();
        if len < 2 {
            std::fs::write(p, vec![0x5a; entry - 3]).unwrap();
            return;
        }
        let mut cut = rng.range(1, len - 1);
        if cut % entry as u64 == 0 {
            cut -= 1;
        }
        set_len(p, cut);
    };
    let random_same_len: Damage = |p, rng, _| {
        let len = std::fs::metadata(p).unwrap().len() as usize;
        std::fs::write(p, rng.bytes(len)).unwrap();
    };
    let random_entries: Damage = |p, rng, entry| {
        let n = rng.range(1, 3) as usize;
        std::fs::write(p, rng.bytes(n * entry)).unwrap();
    };
    let random_len: Damage = |p, rng, _| {
        let len = rng.range(1, 400) as usize;
        std::fs::write(p, rng.bytes(len)).unwrap();
    };
    let zeros: Damage = |p, _, _| {
        let len = std::fs::metadata(p).unwrap().len() as usize;
        std::fs::write(p, vec![0; len]).unwrap();
    };
    let one_zero_entry: Damage = |p, _, entry| std::fs::write(p, vec![0; entry]).unwrap();
    let ones: Damage = |p, _, _| {
        let len = std::fs::metadata(p).unwrap().len() as usize;
        std::fs::write(p, vec![0xff; len]).unwrap();
    };
    // Entries still increasing and inside the file, but pointing one byte / one offset off.
    let shifted: Damage = |p, _, entry| {
        let mut data = std::fs::read(p).unwrap();
        for e in data.chunks_exact_mut(entry) {
            let at = entry - 4;
            let v = u32::from_be_bytes(e[at..].try_into().unwrap()) + 1;
            e[at..].copy_from_slice(&v.to_be_bytes());
        }
        std::fs::write(p, data).unwrap();
    };

    let modes: Vec<(&str, Option<Damage>, Option<Damage>)> = vec![
        ("delete .index", Some(delete), None),
        ("delete .timeindex", None, Some(delete)),
        ("delete both", Some(delete), Some(delete)),
        ("odd-sized .index", Some(odd_size), None),
        ("odd-sized .timeindex", None, Some(odd_size)),
        ("odd-sized both", Some(odd_size), Some(odd_size)),
        ("random .index", Some(random_same_len), None),
        ("random .timeindex", None, Some(random_same_len)),
        ("random whole entries in .index", Some(random_entries), None),
        ("random whole entries in .timeindex", None, Some(random_entries)),
        ("random lengths", Some(random_len), Some(random_len)),
        ("zeroed .index", Some(zeros), None),
        ("zeroed .timeindex", None, Some(zeros)),
        ("one zero .timeindex entry", None, Some(one_zero_entry)),
        ("0xff indexes", Some(ones), Some(ones)),
        (".index positions off by one", Some(shifted), None),
        (".timeindex offsets off by one", None, Some(shifted)),
    ];
    let mut rng = Rng::new(seed);
    for (name, index_damage, time_damage) in modes {
        let (_root, dir) = t.copy();
        // Damage every segment, or a random half of them.
        let all = rng.chance(2);
        let mut damaged = Vec::new();
        for seg in 0..t.bases.len() {
            if !all && rng.chance(2) {
                continue;
            }
            damaged.push(seg);
            if let Some(d) = index_damage {
                d(&dir.join(file_name(t.bases[seg], ".index")), &mut rng, 8);
            }
            if let Some(d) = time_damage {
                d(&dir.join(file_name(t.bases[seg], ".timeindex")), &mut rng, 12);
            }
        }
        let what = format!("{name} (segments {damaged:?})");
        let (log, report) = open_log(&dir, &t.config, clean);
        assert_eq!(report.bytes_truncated, 0, "{what}: no log data may be lost");
        assert_eq!(report.segments_deleted, 0, "{what}");
        assert_eq!(verify(&log, &t.batches, &what).len(), t.batches.len(), "{what}");
        check_index_files(&t, &dir, &originals, &what);
        // The repaired files are good for the next clean start too.
        let mut log = log;
        log.close().unwrap();
        drop(log);
        let (log, report) = open_log(&dir, &t.config, clean);
        let what = format!("{what}, reopened");
        assert_eq!(report.bytes_truncated, 0, "{what}");
        assert_eq!(verify(&log, &t.batches, &what).len(), t.batches.len(), "{what}");
        check_index_files(&t, &dir, &originals, &what);
    }
}

/// Every segment has both index files again, made of whole entries that tell the truth: an
/// offset-index entry points at the start of the batch whose last offset it names, and a
/// time-index entry names a batch whose timestamp is the segment's running maximum there.
/// A segment indexed before the damage is indexed again.
fn check_index_files(t: &Template, dir: &Path, originals: &[(Vec<u8>, Vec<u8>)], what: &str) {
    let placed = t.placed();
    for (seg, &base) in t.bases.iter().enumerate() {
        let read = |ext: &str| {
            std::fs::read(dir.join(file_name(base, ext)))
                .unwrap_or_else(|e| panic!("{what}: {ext} of segment {base}: {e}"))
        };
        let (index, time) = (read(".index"), read(".timeindex"));
        let what = format!("{what}: segment {base}");
        assert_eq!(index.len() % 8, 0, "{what}: .index of {} bytes", index.len());
        assert_eq!(time.len() % 12, 0, "{what}: .timeindex of {} bytes", time.len());
        assert!(originals[seg].0.is_empty() || !index.is_empty(), "{what}: .index left empty");
        // Rebuilding adds time entries with offset entries (only sealing adds the final one).
        assert!(index.is_empty() || !time.is_empty(), "{what}: .timeindex left empty");
        // (position, last offset, running max timestamp) of each batch of the segment.
        let mut running = i64::MIN;
        let batches: Vec<(u64, i64, i64, i64)> = placed
            .iter()
            .zip(&t.batches)
            .filter(|(p, _)| p.seg == seg)
            .map(|(p, b)| {
                let v = view(b);
                running = running.max(v.max_timestamp());
                (p.pos, v.last_offset(), v.max_timestamp(), running)
            })
            .collect();
        let mut prev = None;
        for e in index.chunks_exact(8) {
            let rel = u32::from_be_bytes(e[..4].try_into().unwrap());
            let pos = u32::from_be_bytes(e[4..].try_into().unwrap());
            assert!(prev < Some((rel, pos)), "{what}: .index entries not increasing");
            prev = Some((rel, pos));
            assert!(
                batches.iter().any(|b| b.0 == pos as u64 && b.1 == base + rel as i64),
                "{what}: .index entry ({rel}, {pos}) does not point at its batch"
            );
        }
        let mut prev = (i64::MIN, 0);
        for e in time.chunks_exact(12) {
            let ts = i64::from_be_bytes(e[..8].try_into().unwrap());
            let rel = u32::from_be_bytes(e[8..].try_into().unwrap());
            assert!((ts, rel) >= prev, "{what}: .timeindex entries go backwards");
            prev = (ts, rel);
            assert!(
                batches.iter().any(|b| b.1 == base + rel as i64 && b.2 == ts && b.3 == ts),
                "{what}: .timeindex entry ({ts}, {rel}) is not a running maximum of the log"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Clean shutdown marker
// ---------------------------------------------------------------------------------------------

/// `shutdown()` writes the checkpoints and `.kafka_cleanshutdown`; the next open consumes the
/// marker (clean start, nothing recovered); a drop without shutdown leaves no marker, so the
/// following open is unclean (and recovers), and stays so until the next shutdown.
#[test]
fn clean_shutdown_marker_is_written_and_consumed() {
    let seed = 71;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let config = config(16 * 1024);
    let mut batches = Vec::new();

    let (manager, reports) = open_manager(dir, &config);
    assert!(!manager.had_clean_shutdown(), "a new directory had no clean shutdown");
    assert!(reports.is_empty());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    append_seq(&mut log.lock().unwrap(), seed, &mut batches, 60);
    assert!(!marker.exists());
    manager.shutdown().unwrap();
    assert!(marker.exists(), "shutdown writes the marker");
    let leo = next_offset_after(&batches);
    for name in [RECOVERY_POINT_CHECKPOINT, REPLICATION_CHECKPOINT, LOG_START_CHECKPOINT] {
        let offsets = checkpoint::read_offsets(&dir.join(name)).unwrap();
        let expected = if name == LOG_START_CHECKPOINT { 0 } else { leo };
        assert_eq!(offsets.get(&tp()), Some(&expected), "{name}");
    }
    drop(log);
    drop(manager);

    // Clean start: the marker is consumed and nothing is recovered.
    let (manager, reports) = open_manager(dir, &config);
    assert!(manager.had_clean_shutdown());
    assert!(!marker.exists(), "opening consumes the marker");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].1.segments_recovered, 0, "clean start: no segment recovered");
    let log = manager.get(&tp()).unwrap();
    assert_eq!(log.lock().unwrap().high_watermark(), leo, "HW from the checkpoint");
    assert_eq!(verify(&log.lock().unwrap(), &batches, "clean start").len(), batches.len());
    append_seq(&mut log.lock().unwrap(), seed, &mut batches, 20);
    // Crash-like: dropped without shutdown.
    drop(log);
    drop(manager);
    assert!(!marker.exists());

    for n in 0..2 {
        let (manager, reports) = open_manager(dir, &config);
        assert!(!manager.had_clean_shutdown(), "unclean start #{n}");
        assert!(reports[0].1.segments_recovered >= 1, "unclean start #{n} recovers");
        let log = manager.get(&tp()).unwrap();
        let log = log.lock().unwrap();
        assert_eq!(verify(&log, &batches, "unclean start").len(), batches.len());
    }

    let (manager, _) = open_manager(dir, &config);
    manager.shutdown().unwrap();
    drop(manager);
    let (manager, _) = open_manager(dir, &config);
    assert!(manager.had_clean_shutdown(), "clean again after a shutdown");
    drop(manager);
    let (manager, _) = open_manager(dir, &config);
    assert!(!manager.had_clean_shutdown(), "the marker is consumed only once");
}
