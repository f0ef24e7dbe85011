//! Criterion benches for the partition log: append and read of 1 KiB records in 16 KiB and
//! 1 MiB batches, with and without fsync, against plain `write(2)` / `pread(2)` baselines on
//! the same file system, plus the cost of locating an offset (one in-memory index lookup and a
//! header scan bounded by `index.interval.bytes`).
//!
//! The `produce` group times the whole produce path of the log (`append_as_leader`: batch
//! validation as Kafka's LogValidator does it, offsets, the write) for record sizes and codecs
//! where validation costs differ: many small records, and compressed batches, which validation
//! reads through a streaming decompressor.
//!
//! Run with `cargo bench -p sluice-broker --bench log`; results and the machine they ran on are
//! in `docs/storage.md` ("Performance").
//!
//! Data goes to `target/bench-data/` of the workspace (a real disk, not tmpfs, on the machine
//! the figures come from); set `SLUICE_BENCH_DIR` to put it elsewhere. Write benches restart
//! their file (untimed) whenever it would pass 512 MiB and the read benches use two 256 MiB logs,
//! so a run holds at most about 512 MiB on disk at a time. Segments keep the default
//! `segment.bytes` of 1 GiB, so appends never roll.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_broker::log::batch::{
    assemble_batch, build_batch, BatchFields, BatchHeader, BatchView, Compression, KeyValue,
};
use sluice_broker::log::compression::compress;
use sluice_broker::log::partition_log::LoadState;
use sluice_broker::log::segment::LogSegment;
use sluice_broker::log::validator::{validate_client_batch, AppendOrigin, Rules};
use sluice_broker::log::{Clock, LogConfig, PartitionLog, SystemClock, TopicPartition};
use tempfile::TempDir;

/// Value size of every record.
const RECORD_BYTES: usize = 1024;
/// Batch sizes: as many 1 KiB records as fit in 16 KiB and in 1 MiB (the latter also fits the
/// default `max.message.bytes` of 1048588).
const BATCH_SIZES: [(&str, usize); 2] = [("16KiB", 16 * 1024), ("1MiB", 1024 * 1024)];
/// A write bench restarts its file once it would grow past this.
const MAX_LIVE_BYTES: u64 = 512 << 20;
/// Size of the pre-filled logs the read benches use.
const READ_LOG_BYTES: u64 = 256 << 20;
/// Leader epoch of every append.
const EPOCH: i32 = 0;
/// Number of pre-drawn random offsets / positions the read benches cycle through.
const DRAWS: usize = 4096;

/// Where bench data goes: `SLUICE_BENCH_DIR`, else `<workspace>/target/bench-data`.
fn bench_root() -> PathBuf {
    let root = std::env::var_os("SLUICE_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("bench-data")
    });
    std::fs::create_dir_all(&root).expect("create bench data directory");
    root
}

fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in(bench_root()).expect("create temp dir")
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn open_log(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, TopicPartition::new("bench", 0), config, clock(), LoadState::default())
        .expect("open log")
        .0
}

/// One v2 batch holding as many `RECORD_BYTES` records as fit in `max_bytes`.
fn batch_fitting(max_bytes: usize) -> Vec<u8> {
    let value: Vec<u8> = (0..RECORD_BYTES).map(|i| (i % 251) as u8).collect();
    let ts = clock().now_ms();
    let mut n = max_bytes / RECORD_BYTES;
    loop {
        let records: Vec<KeyValue<'_>> = (0..n).map(|_| (None, Some(&value[..]))).collect();
        let batch = build_batch(0, ts, &records);
        if batch.len() <= max_bytes || n == 1 {
            return batch;
        }
        n -= 1;
    }
}

/// A tiny deterministic generator (SplitMix64): the same random offsets on every run.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Something written sequentially that is restarted (untimed) before it passes
/// `MAX_LIVE_BYTES`.
trait Sink {
    /// Empties the target; not timed.
    fn restart(&mut self);
    /// One timed write of `bytes` bytes.
    fn write_one(&mut self);
}

/// Times `iters` writes of `bytes` each, restarting the sink between timed stretches so no
/// file grows past `MAX_LIVE_BYTES`.
fn timed_bounded<S: Sink>(sink: &mut S, written: &mut u64, iters: u64, bytes: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let mut room = MAX_LIVE_BYTES.saturating_sub(*written) / bytes;
        if room == 0 {
            sink.restart();
            *written = 0;
            room = MAX_LIVE_BYTES / bytes;
        }
        let n = left.min(room);
        let start = Instant::now();
        for _ in 0..n {
            sink.write_one();
        }
        total += start.elapsed();
        *written += n * bytes;
        left -= n;
    }
    total
}

/// A partition log fed one pre-built batch per write.
#[derive(Debug)]
struct LogSink {
    log: PartitionLog,
    template: Vec<u8>,
    buf: Vec<u8>,
}

impl LogSink {
    fn new(dir: &Path, config: LogConfig, template: Vec<u8>) -> Self {
        let buf = template.clone();
        let mut sink = LogSink { log: open_log(dir, config), template, buf };
        sink.restart();
        sink
    }
}

impl Sink for LogSink {
    fn restart(&mut self) {
        self.log.truncate_fully_and_start_at(0).expect("truncate log");
        // The first append of a leader epoch writes the leader-epoch checkpoint (once per
        // epoch, not per append): do it here, untimed.
        self.buf.clear();
        self.buf.extend_from_slice(&self.template);
        self.log.append_as_leader(&mut self.buf, EPOCH).expect("append");
    }
    fn write_one(&mut self) {
        // `append_as_leader` stamps offsets and epoch into the buffer, so each append gets a
        // fresh copy of the request bytes, as a broker gets a fresh request buffer. The copy
        // is timed; `append/copy_only` measures it alone.
        self.buf.clear();
        self.buf.extend_from_slice(&self.template);
        black_box(self.log.append_as_leader(&mut self.buf, EPOCH).expect("append"));
    }
}

/// The baseline: `write(2)` of the same bytes to a plain file, optionally `fdatasync(2)`.
#[derive(Debug)]
struct RawSink {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    fsync: bool,
}

impl Sink for RawSink {
    fn restart(&mut self) {
        self.file = File::create(&self.path).expect("create raw file");
    }
    fn write_one(&mut self) {
        self.file.write_all(&self.buf).expect("write");
        if self.fsync {
            self.file.sync_data().expect("sync_data");
        }
    }
}

fn modes() -> [(&'static str, bool); 2] {
    [("no_fsync", false), ("fsync", true)]
}

fn config_for(fsync: bool) -> LogConfig {
    // flush.messages=1: the log fsyncs after every append (Kafka's per-write fsync setting).
    LogConfig { flush_messages: if fsync { 1 } else { i64::MAX }, ..LogConfig::default() }
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.warm_up_time(Duration::from_secs(1));
    for (label, max) in BATCH_SIZES {
        let template = batch_fitting(max);
        let bytes = template.len() as u64;
        group.throughput(Throughput::Bytes(bytes));
        for (mode, fsync) in modes() {
            let dir = temp_dir("append-");
            let mut sink = LogSink::new(dir.path(), config_for(fsync), template.clone());
            let mut written = 0u64;
            group.sample_size(if fsync { 10 } else { 20 });
            group.measurement_time(Duration::from_secs(if fsync { 5 } else { 3 }));
            group.bench_function(BenchmarkId::new(mode, label), |b| {
                b.iter_custom(|iters| timed_bounded(&mut sink, &mut written, iters, bytes))
            });
        }
        // The request-buffer copy included in every append above, alone.
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(2));
        let mut buf = template.clone();
        group.bench_function(BenchmarkId::new("copy_only", label), |b| {
            b.iter(|| {
                buf.copy_from_slice(black_box(&template));
                black_box(&mut buf);
            })
        });
        // The validation every append does first (header checks and CRC32C of the batch).
        group.bench_function(BenchmarkId::new("validate_only", label), |b| {
            b.iter(|| black_box(BatchView::parse_checked(black_box(&template)).expect("valid")))
        });
    }
    group.finish();
}

/// A batch of `count` records of `value_bytes` each (values from a repeating byte pattern, as
/// compressible as ProducerPerformance's random letters), compressed with `codec` as a client
/// compresses it.
fn client_batch(count: usize, value_bytes: usize, codec: Compression) -> Vec<u8> {
    let value: Vec<u8> = (0..value_bytes).map(|i| b'a' + (i % 26) as u8).collect();
    let records: Vec<KeyValue<'_>> = (0..count).map(|_| (None, Some(&value[..]))).collect();
    let plain = build_batch(0, clock().now_ms(), &records);
    let view = BatchView::parse(&plain).expect("built batch");
    let payload = compress(codec, view.records_payload()).expect("compress");
    let fields = BatchFields { attributes: codec.id(), ..BatchFields::of(&view) };
    assemble_batch(&fields, view.records_count(), &payload)
}

fn bench_produce(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce");
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    let cases = [
        ("none/15x1KiB", client_batch(15, 1024, Compression::None)),
        ("none/150x100B", client_batch(150, 100, Compression::None)),
        ("none/9000x100B", client_batch(9000, 100, Compression::None)),
        ("lz4/1000x1KiB", client_batch(1000, 1024, Compression::Lz4)),
        ("zstd/1000x1KiB", client_batch(1000, 1024, Compression::Zstd)),
        ("gzip/1000x1KiB", client_batch(1000, 1024, Compression::Gzip)),
        ("snappy/1000x1KiB", client_batch(1000, 1024, Compression::Snappy)),
    ];
    for (label, template) in cases {
        // Throughput in record bytes (uncompressed), what a producer sends.
        let view = BatchView::parse(&template).expect("built batch");
        let count = view.records_count() as u64;
        group.throughput(Throughput::Elements(count));
        let bytes = template.len() as u64;
        // Validation alone (the records read in place or through the decompressor).
        let rules = Rules::new(&LogConfig::default(), clock().now_ms(), AppendOrigin::Client);
        group.bench_function(BenchmarkId::new("validate_only", label), |b| {
            b.iter(|| {
                let view = BatchView::parse_client(black_box(&template)).expect("valid");
                black_box(validate_client_batch(&view, &rules, &"bench-0").expect("valid"))
            })
        });
        let dir = temp_dir("produce-");
        let mut sink = LogSink::new(dir.path(), config_for(false), template);
        let mut written = 0u64;
        group.bench_function(BenchmarkId::new("append", label), |b| {
            b.iter_custom(|iters| timed_bounded(&mut sink, &mut written, iters, bytes))
        });
    }
    // compression.type on the topic: the broker rewrites each batch into that codec.
    let recompress = [
        ("none/15x1KiB->zstd", client_batch(15, 1024, Compression::None), "zstd"),
        ("none/1000x1KiB->zstd", client_batch(1000, 1024, Compression::None), "zstd"),
        ("none/1000x1KiB->lz4", client_batch(1000, 1024, Compression::None), "lz4"),
        ("snappy/1000x1KiB->zstd", client_batch(1000, 1024, Compression::Snappy), "zstd"),
    ];
    for (label, template, codec) in recompress {
        let view = BatchView::parse(&template).expect("built batch");
        group.throughput(Throughput::Elements(view.records_count() as u64));
        let bytes = template.len() as u64;
        let dir = temp_dir("recompress-");
        let config = LogConfig::default()
            .with_overrides([("compression.type", codec)])
            .expect("compression.type");
        let mut sink = LogSink::new(dir.path(), config, template);
        let mut written = 0u64;
        group.bench_function(BenchmarkId::new("recompress", label), |b| {
            b.iter_custom(|iters| timed_bounded(&mut sink, &mut written, iters, bytes))
        });
    }
    group.finish();
}

fn bench_raw_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_write");
    group.warm_up_time(Duration::from_secs(1));
    for (label, max) in BATCH_SIZES {
        // Same byte volume per write as the append bench.
        let buf = batch_fitting(max);
        let bytes = buf.len() as u64;
        group.throughput(Throughput::Bytes(bytes));
        for (mode, fsync) in modes() {
            let dir = temp_dir("raw-write-");
            let path = dir.path().join("raw.dat");
            let file = File::create(&path).expect("create raw file");
            let mut sink = RawSink { path, file, buf: buf.clone(), fsync };
            let mut written = 0u64;
            group.sample_size(if fsync { 10 } else { 20 });
            group.measurement_time(Duration::from_secs(if fsync { 5 } else { 3 }));
            group.bench_function(BenchmarkId::new(mode, label), |b| {
                b.iter_custom(|iters| timed_bounded(&mut sink, &mut written, iters, bytes))
            });
        }
    }
    group.finish();
}

/// A log pre-filled with `READ_LOG_BYTES` of copies of one batch, HW at the LEO, flushed.
#[derive(Debug)]
struct ReadLog {
    _dir: TempDir,
    log: PartitionLog,
    segment: LogSegment,
    hw: i64,
}

impl ReadLog {
    fn fill(prefix: &str, batch_max: usize) -> Self {
        let dir = temp_dir(prefix);
        let config = LogConfig::default();
        let mut log = open_log(dir.path(), config.clone());
        let template = batch_fitting(batch_max);
        let mut buf = template.clone();
        while log.size_bytes() < READ_LOG_BYTES {
            buf.copy_from_slice(&template);
            log.append_as_leader(&mut buf, EPOCH).expect("append");
        }
        let hw = log.update_high_watermark(log.log_end_offset());
        log.flush().expect("flush");
        assert_eq!(log.segment_count(), 1, "the read log fits one segment");
        // A second handle on the same (flushed) segment, to time `locate` on its own.
        let (segment, truncated) =
            LogSegment::open(dir.path(), 0, &config, clock().now_ms(), false).expect("open");
        assert_eq!(truncated, 0);
        eprintln!(
            "read log {prefix}: {} bytes, {} batches of {} bytes, {} offsets, {} index entries \
             (one per {} bytes on average, index.interval.bytes = {})",
            log.size_bytes(),
            log.size_bytes() / template.len() as u64,
            template.len(),
            hw,
            segment.index_entries(),
            log.size_bytes() / segment.index_entries().max(1) as u64,
            config.index_interval_bytes,
        );
        ReadLog { _dir: dir, log, segment, hw }
    }

    fn random_offsets(&self, seed: u64) -> Vec<i64> {
        let mut rng = SplitMix64(seed);
        (0..DRAWS).map(|_| rng.below(self.hw as u64) as i64).collect()
    }

    /// Offset after the last whole batch in `records`.
    fn next_offset(records: &[u8]) -> i64 {
        let mut pos = 0;
        let mut next = 0;
        while pos < records.len() {
            let h = BatchHeader::parse(&records[pos..]).expect("batch header");
            next = h.next_offset();
            pos += h.size;
        }
        next
    }
}

fn bench_read(c: &mut Criterion) {
    // 16 KiB batches: what a producer with batch.size=16384 writes.
    let big = ReadLog::fill("read-16k-", 16 * 1024);
    // Single-record batches: several batches per index interval, so `locate` really scans.
    let small = ReadLog::fill("read-1rec-", RECORD_BYTES + 100);

    let mut group = c.benchmark_group("read");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(20);
    for (label, max_bytes) in BATCH_SIZES {
        let offsets = big.random_offsets(max_bytes as u64);
        // Reads return whole batches up to max_bytes: measure what they really return.
        let total: usize = offsets
            .iter()
            .map(|&o| big.log.read(o, max_bytes, big.hw).expect("read").records.len())
            .sum();
        group.throughput(Throughput::Bytes((total / offsets.len()) as u64));
        let mut i = 0;
        group.bench_function(BenchmarkId::new("random", label), |b| {
            b.iter(|| {
                let o = offsets[i % offsets.len()];
                i += 1;
                black_box(big.log.read(o, max_bytes, big.hw).expect("read").records.len())
            })
        });
    }
    // A consumer reading the log from start to end with 1 MiB fetches (Kafka's default
    // max.partition.fetch.bytes), wrapping around at the end.
    let fetch = 1024 * 1024;
    let (mut offset, mut fetches, mut bytes) = (0i64, 0u64, 0u64);
    while offset < big.hw {
        let records = big.log.read(offset, fetch, big.hw).expect("read").records;
        bytes += records.len() as u64;
        fetches += 1;
        offset = ReadLog::next_offset(&records);
    }
    group.throughput(Throughput::Bytes(bytes / fetches));
    let mut offset = 0i64;
    group.bench_function(BenchmarkId::new("sequential", "1MiB"), |b| {
        b.iter(|| {
            if offset >= big.hw {
                offset = 0;
            }
            let records = big.log.read(offset, fetch, big.hw).expect("read").records;
            offset = ReadLog::next_offset(&records);
            black_box(records.len())
        })
    });
    group.finish();

    // Baseline: pread(2) of the same sizes at random positions of the same segment file, into
    // a reused buffer; 64 KiB is the window the segment reads to scan batch headers.
    let mut group = c.benchmark_group("raw_read");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    let file = File::open(big.segment.log_path()).expect("open segment file");
    let size = big.segment.size();
    for (label, len) in [("16KiB", 16 * 1024), ("64KiB", 64 * 1024), ("1MiB", 1024 * 1024)] {
        let mut rng = SplitMix64(len as u64);
        let positions: Vec<u64> = (0..DRAWS).map(|_| rng.below(size - len as u64)).collect();
        let mut buf = vec![0u8; len];
        let mut i = 0;
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("random", label), |b| {
            b.iter(|| {
                let p = positions[i % positions.len()];
                i += 1;
                file.read_exact_at(&mut buf, p).expect("pread");
                black_box(&buf);
            })
        });
    }
    group.finish();

    // Locating an offset: binary search of the in-memory offset index, then a forward scan of
    // batch headers from the entry found (at most index.interval.bytes plus one batch).
    let mut group = c.benchmark_group("locate");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for (label, log) in [("16KiB_batches", &big), ("1KiB_batches", &small)] {
        let offsets = log.random_offsets(7);
        let mut i = 0;
        group.bench_function(label, |b| {
            b.iter(|| {
                let o = offsets[i % offsets.len()];
                i += 1;
                black_box(log.segment.locate(o).expect("locate").expect("offset is in the log"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_append, bench_produce, bench_raw_write, bench_read);
criterion_main!(benches);
