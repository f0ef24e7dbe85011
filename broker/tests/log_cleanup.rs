//! Retention and compaction of partition logs under a controlled clock. Compaction input is
//! produced by a real client library (the `kafka-protocol` crate's record encoder) with every
//! compression codec, and its output is read back with that library's decoder.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder, TimestampType};
use sluice_broker::log::batch::build_batch;
use sluice_broker::log::manager::{LogManager, ManagerIntervals};
use sluice_broker::log::partition_log::LoadState;
use sluice_broker::log::segment::segment_paths;
use sluice_broker::log::{LogConfig, LogError, ManualClock, PartitionLog, TopicPartition};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn config(pairs: &[(&str, &str)]) -> LogConfig {
    LogConfig::default().with_overrides(pairs.iter().copied()).unwrap()
}

fn open(dir: &std::path::Path, c: LogConfig, clock: &Arc<ManualClock>) -> PartitionLog {
    PartitionLog::open(dir, TopicPartition::new("t", 0), c, clock.clone(), LoadState::default())
        .unwrap()
        .0
}

/// Appends `n` single-record batches stamped `ts`, then moves the HW to the LEO.
fn append_n(log: &mut PartitionLog, n: usize, ts: i64) {
    for _ in 0..n {
        let mut b = build_batch(0, ts, &[(Some(b"k"), Some(&[7u8; 200][..]))]);
        log.append_as_leader(&mut b, 0).unwrap();
    }
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
}

#[test]
fn retention_ms_deletes_old_segments_and_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut log =
        open(dir.path(), config(&[("segment.bytes", "2000"), ("retention.ms", "3600000")]), &clock);
    append_n(&mut log, 30, T0);
    let old_segments = log.segment_count();
    assert!(old_segments > 2);
    assert_eq!(log.delete_old_segments().unwrap(), 0, "nothing is older than retention.ms yet");
    clock.advance(2 * HOUR);
    append_n(&mut log, 20, T0 + 2 * HOUR);
    // The first segment holding a new record (offset 30) is the first one kept.
    let bases = log.segment_base_offsets();
    let expected_start = *bases.iter().filter(|&&b| b <= 30).max().unwrap();
    let deleted = log.delete_old_segments().unwrap();
    assert_eq!(deleted, bases.iter().filter(|&&b| b < expected_start).count());
    assert_eq!(log.log_start_offset(), expected_start);
    assert_eq!(log.segment_base_offsets()[0], expected_start);
    assert!(old_segments > 2 && deleted >= old_segments - 1);
    let err = log.read(0, 1000, log.high_watermark()).unwrap_err();
    assert!(matches!(err, LogError::OffsetOutOfRange { .. }), "{err}");
    // Every record with the new timestamp is still there.
    let data = log.read(30, 1 << 20, log.high_watermark()).unwrap();
    assert!(!data.records.is_empty());
    // The files of deleted segments are gone.
    assert!(!segment_paths(dir.path(), 0, "")[0].exists());
}

#[test]
fn retention_never_deletes_the_active_segment_or_data_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut log =
        open(dir.path(), config(&[("segment.bytes", "2000"), ("retention.ms", "1000")]), &clock);
    append_n(&mut log, 30, T0);
    log.update_high_watermark(5);
    clock.advance(HOUR);
    log.delete_old_segments().unwrap();
    let bases = log.segment_base_offsets();
    assert!(bases[0] <= 5, "a segment holding offsets at or above the HW was deleted: {bases:?}");
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
    log.delete_old_segments().unwrap();
    assert_eq!(log.segment_count(), 1, "only the active segment remains");
    assert_eq!(log.log_end_offset(), 30);
}

#[test]
fn retention_bytes_keeps_the_newest_data_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let c =
        config(&[("segment.bytes", "2000"), ("retention.bytes", "5000"), ("retention.ms", "-1")]);
    let mut log = open(dir.path(), c, &clock);
    append_n(&mut log, 60, T0);
    assert!(log.size_bytes() > 5000);
    log.delete_old_segments().unwrap();
    assert!(log.size_bytes() <= 5000 + 2000, "size {}", log.size_bytes());
    assert!(log.size_bytes() > 5000 - 2000);
    assert_eq!(log.log_end_offset(), 60);
    let data = log.read(log.log_start_offset(), 1 << 20, 60).unwrap();
    assert!(!data.records.is_empty());
}

#[test]
fn compact_policy_does_not_delete_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let c = config(&[
        ("segment.bytes", "2000"),
        ("retention.ms", "1000"),
        ("cleanup.policy", "compact"),
    ]);
    let mut log = open(dir.path(), c, &clock);
    append_n(&mut log, 30, T0);
    clock.advance(HOUR);
    assert_eq!(log.delete_old_segments().unwrap(), 0);
}

#[test]
fn log_manager_runs_retention_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let topic_config = config(&[("segment.bytes", "2000"), ("retention.ms", "1000")]);
    let (manager, _) =
        LogManager::open(dir.path(), LogConfig::default(), clock.clone(), |_| topic_config.clone())
            .unwrap();
    let manager = Arc::new(manager);
    let log = manager.get_or_create(&TopicPartition::new("t", 0), topic_config.clone()).unwrap();
    append_n(&mut log.lock().unwrap(), 30, T0);
    let before = log.lock().unwrap().segment_count();
    clock.advance(HOUR);
    let intervals = ManagerIntervals {
        retention_check: Duration::from_millis(20),
        ..ManagerIntervals::default()
    };
    let handle = manager.start_background(intervals);
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lock().unwrap().segment_count() == before {
        assert!(Instant::now() < deadline, "background retention never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.stop();
    assert_eq!(log.lock().unwrap().segment_count(), 1);
    manager.shutdown().unwrap();
}

/// A batch of keyed records as a client library encodes it (timestamps `T0`).
fn client_batch(codec: Compression, base: i64, records: &[(&str, Option<&str>)]) -> Vec<u8> {
    let records: Vec<common::KeyValue<'_>> =
        records.iter().map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes))).collect();
    let mut batch = common::client_batch_compressed(codec, &records).to_vec();
    sluice_broker::log::batch::BatchMut::new(&mut batch).set_base_offset(base);
    batch
}

/// Every (offset, key, value) readable from the log, decoded by kafka-protocol.
fn read_all(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let data = log.read(offset, 1 << 20, log.high_watermark()).unwrap();
        if data.records.is_empty() {
            break;
        }
        let mut buf = Bytes::from(data.records);
        for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
            for r in set.records {
                let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                offset = r.offset + 1;
                out.push((r.offset, key, value));
            }
        }
    }
    out
}

#[test]
fn compaction_keeps_the_newest_value_per_key_for_every_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let c = config(&[("cleanup.policy", "compact"), ("segment.bytes", "1000000")]);
        let mut log = open(dir.path(), c, &clock);
        // 10 rounds over keys k0..k4, 5 records per batch, one segment per 2 rounds.
        for round in 0..10 {
            let values: Vec<String> = (0..5).map(|k| format!("v{round}-k{k}")).collect();
            let recs: Vec<(String, Option<&str>)> =
                (0..5).map(|k| (format!("k{k}"), Some(values[k].as_str()))).collect();
            let recs: Vec<(&str, Option<&str>)> =
                recs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let mut b = client_batch(codec, 0, &recs);
            log.append_as_leader(&mut b, 0).unwrap();
            if round % 2 == 1 {
                log.roll().unwrap();
            }
        }
        // A tombstone for k1 and a fresh k2 in the next (non-active after roll) segment.
        let mut b = client_batch(codec, 0, &[("k1", None), ("k2", Some("last-k2"))]);
        log.append_as_leader(&mut b, 0).unwrap();
        log.roll().unwrap();
        // The active segment holds an update for k3 that must not compact anything yet.
        let mut b = client_batch(codec, 0, &[("k3", Some("active-k3"))]);
        log.append_as_leader(&mut b, 0).unwrap();
        let leo = log.log_end_offset();
        log.update_high_watermark(leo);

        let stats = log.compact().unwrap();
        assert_eq!(stats.records_read, 52, "{codec:?}");
        let all = read_all(&log);
        let expected: Vec<(i64, String, Option<String>)> = vec![
            (45, "k0".into(), Some("v9-k0".into())),
            (48, "k3".into(), Some("v9-k3".into())),
            (49, "k4".into(), Some("v9-k4".into())),
            (50, "k1".into(), None),
            (51, "k2".into(), Some("last-k2".into())),
            (52, "k3".into(), Some("active-k3".into())),
        ];
        assert_eq!(all, expected, "{codec:?}");
        assert_eq!(log.log_end_offset(), 53);

        // The tombstone survives delete.retention.ms (1 day), then goes.
        clock.advance(2 * 24 * HOUR);
        log.compact().unwrap();
        let all = read_all(&log);
        assert!(all.iter().all(|(_, k, _)| k != "k1"), "{codec:?}: {all:?}");
        assert_eq!(all.len(), 5);

        // Compacted segments survive a clean restart and an unclean one.
        log.close().unwrap();
        let state = LoadState {
            clean_shutdown: true,
            recovery_point: log.recovery_point(),
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
        };
        drop(log);
        let reopened = PartitionLog::open(
            dir.path(),
            TopicPartition::new("t", 0),
            config(&[("cleanup.policy", "compact")]),
            clock.clone(),
            state,
        )
        .unwrap()
        .0;
        assert_eq!(read_all(&reopened), all);
        drop(reopened);
        let unclean = LoadState { clean_shutdown: false, recovery_point: 0, ..state };
        let reopened = PartitionLog::open(
            dir.path(),
            TopicPartition::new("t", 0),
            config(&[("cleanup.policy", "compact")]),
            clock.clone(),
            unclean,
        )
        .unwrap()
        .0;
        assert_eq!(read_all(&reopened), all);
    }
}

#[test]
fn min_compaction_lag_protects_recent_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let c = config(&[("cleanup.policy", "compact"), ("min.compaction.lag.ms", "3600000")]);
    let mut log = open(dir.path(), c, &clock);
    for _ in 0..3 {
        let mut b = client_batch(Compression::None, 0, &[("k", Some("v"))]);
        log.append_as_leader(&mut b, 0).unwrap();
        log.roll().unwrap();
    }
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
    assert_eq!(log.compact().unwrap().records_read, 0, "too young to compact");
    clock.advance(2 * HOUR);
    assert_eq!(log.compact().unwrap().records_kept, 1);
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn interrupted_cleaner_swaps_are_finished_or_discarded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let c = config(&[("cleanup.policy", "compact")]);
    let mut log = open(dir.path(), c.clone(), &clock);
    for v in ["a", "b"] {
        let mut b = client_batch(Compression::None, 0, &[("k", Some(v))]);
        log.append_as_leader(&mut b, 0).unwrap();
        log.roll().unwrap();
    }
    log.update_high_watermark(2);
    log.close().unwrap();
    drop(log);
    // A committed swap: segment 0 replaced by a version holding only a copy of offset 1's value.
    let live = segment_paths(dir.path(), 0, "");
    let swap = segment_paths(dir.path(), 0, ".swap");
    let mut replacement = client_batch(Compression::None, 0, &[("k", Some("swapped"))]);
    sluice_broker::log::batch::BatchMut::new(&mut replacement).set_base_offset(0);
    std::fs::write(&swap[0], &replacement).unwrap();
    // An abandoned cleaning of segment 1.
    let cleaned = segment_paths(dir.path(), 1, ".cleaned");
    std::fs::write(&cleaned[0], b"half-written").unwrap();
    std::fs::write(&cleaned[1], b"x").unwrap();
    let state = LoadState {
        clean_shutdown: false,
        recovery_point: 0,
        log_start_offset: 0,
        high_watermark: 2,
    };
    let log = PartitionLog::open(dir.path(), TopicPartition::new("t", 0), c, clock.clone(), state)
        .unwrap()
        .0;
    assert!(!swap[0].exists() && !cleaned[0].exists() && !cleaned[1].exists());
    assert_eq!(std::fs::read(&live[0]).unwrap(), replacement);
    let values: Vec<_> = read_all(&log).into_iter().map(|(_, _, v)| v.unwrap()).collect();
    assert_eq!(values, ["swapped", "b"]);
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0 + 12345);
    let mut log = open(dir.path(), config(&[("message.timestamp.type", "LogAppendTime")]), &clock);
    let mut b = build_batch(0, 42, &[(None, Some(b"v"))]);
    let info = log.append_as_leader(&mut b, 3).unwrap();
    assert_eq!(info.log_append_time, Some(T0 + 12345));
    log.update_high_watermark(1);
    let data = log.read(0, 1000, 1).unwrap();
    // Kafka's in-place LogAppendTime: the attribute bit and the batch's max timestamp, which
    // clients report as every record's timestamp (kafka-protocol's decoder only reads the flag).
    let view = sluice_broker::log::batch::BatchView::parse_checked(&data.records).unwrap();
    assert_eq!(view.max_timestamp(), T0 + 12345);
    let mut buf = Bytes::from(data.records);
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert_eq!(set.records[0].timestamp_type, TimestampType::LogAppend);
    assert_eq!(log.fetch_offset_by_timestamp(T0).unwrap(), Some((0, T0 + 12345)));
}

#[test]
fn flush_messages_moves_the_recovery_point_with_every_append() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), config(&[("flush.messages", "1")]), &clock);
    append_n(&mut log, 3, T0);
    assert_eq!(log.recovery_point(), 3);
    let lazy_dir = tempfile::tempdir().unwrap();
    let mut lazy = open(lazy_dir.path(), LogConfig::default(), &clock);
    append_n(&mut lazy, 3, T0);
    assert_eq!(lazy.recovery_point(), 0, "the default flush policy does not fsync appends");
    clock.advance(10);
    lazy.update_config(config(&[("flush.ms", "5")]));
    assert!(lazy.flush_if_due().unwrap());
    assert_eq!(lazy.recovery_point(), 3);
}

#[test]
fn bad_batches_are_rejected_with_typed_errors_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), config(&[("max.message.bytes", "500")]), &clock);
    let good = build_batch(0, T0, &[(None, Some(b"v"))]);
    let mut corrupt = good.clone();
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    let mut two = good.clone();
    two.extend_from_slice(&corrupt);
    let mut wrong_magic = good.clone();
    wrong_magic[16] = 1;
    let mut big = build_batch(0, T0, &[(None, Some(&[0u8; 600][..]))]);
    let mut absurd = good.clone();
    absurd[8..12].copy_from_slice(&0x7fff_fff0i32.to_be_bytes());
    let mut torn = good[..30].to_vec();
    for (name, bytes) in [
        ("corrupt", &mut corrupt),
        ("good+corrupt", &mut two),
        ("absurd", &mut absurd),
        ("torn", &mut torn),
    ] {
        let err = log.append_as_leader(bytes, 0).unwrap_err();
        assert!(matches!(err, LogError::CorruptBatch(_)), "{name}: {err}");
    }
    assert!(matches!(
        log.append_as_leader(&mut wrong_magic, 0),
        Err(LogError::UnsupportedMagic(1))
    ));
    assert!(matches!(log.append_as_leader(&mut big, 0), Err(LogError::BatchTooLarge { .. })));
    assert!(matches!(log.append_as_leader(&mut Vec::new(), 0), Err(LogError::CorruptBatch(_))));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

/// Appends one batch of `records` (keys and values) at `T0` and returns the LEO.
fn append_keyed(log: &mut PartitionLog, records: &[(&str, Option<&str>)]) -> i64 {
    let mut b = client_batch(Compression::None, 0, records);
    log.append_as_leader(&mut b, 0).unwrap();
    log.log_end_offset()
}

#[test]
fn compaction_waits_for_min_cleanable_dirty_ratio_and_maps_only_new_keys() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let c = config(&[("cleanup.policy", "compact"), ("min.cleanable.dirty.ratio", "0.5")]);
    let mut log = open(dir.path(), c, &clock);
    // Eight segments of one batch each: k0..k3 twice over.
    for round in 0..2 {
        for k in 0..4 {
            let (key, value) = (format!("k{k}"), format!("r{round}"));
            append_keyed(&mut log, &[(&key, Some(&value))]);
            log.roll().unwrap();
        }
    }
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
    let first = log.compact().unwrap();
    assert_eq!((first.records_read, first.records_kept), (8, 4), "everything is dirty at first");
    assert_eq!(log.compact().unwrap().records_read, 0, "nothing new: no pass");

    // One new segment against four clean ones is below the ratio: nothing happens.
    append_keyed(&mut log, &[("k0", Some("r2"))]);
    log.roll().unwrap();
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
    assert_eq!(log.compact().unwrap().records_read, 0, "dirty ratio 1/5 < 0.5");
    // Four more make it 5/9: one pass over everything, with only the new keys in the map.
    for k in 1..5 {
        append_keyed(&mut log, &[(&format!("k{k}"), Some("r2"))]);
        log.roll().unwrap();
    }
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
    let second = log.compact().unwrap();
    assert_eq!((second.records_read, second.records_kept), (9, 5));
    let values: Vec<(String, Option<String>)> =
        read_all(&log).into_iter().map(|(_, k, v)| (k, v)).collect();
    let want: Vec<(String, Option<String>)> =
        (0..5).map(|k| (format!("k{k}"), Some("r2".to_string()))).collect();
    assert_eq!(values, want);
}

#[test]
fn compact_delete_policy_compacts_and_also_deletes_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let c = config(&[("cleanup.policy", "compact,delete"), ("retention.ms", "3600000")]);
    let mut log = open(dir.path(), c, &clock);
    for v in ["a", "b", "c"] {
        append_keyed(&mut log, &[("k", Some(v)), ("other", Some(v))]);
        log.roll().unwrap();
    }
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
    let stats = log.compact().unwrap();
    assert_eq!((stats.records_read, stats.records_kept), (6, 2));
    assert_eq!(read_all(&log).len(), 2);
    // Retention applies to the compacted segments as to any other.
    clock.advance(2 * HOUR);
    assert!(log.delete_old_segments().unwrap() > 0);
    assert_eq!(log.log_start_offset(), leo, "only the empty active segment is left");
    assert!(read_all(&log).is_empty());
}

#[test]
fn segments_roll_on_segment_ms_and_on_a_full_offset_index() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), config(&[("segment.ms", "3600000")]), &clock);
    append_n(&mut log, 3, T0);
    assert_eq!(log.segment_count(), 1);
    clock.advance(HOUR + 1);
    append_n(&mut log, 1, T0 + HOUR + 1);
    assert_eq!(log.segment_base_offsets(), [0, 3], "the hour-old segment rolled first");

    // segment.index.bytes 16 holds two 8-byte entries; index.interval.bytes 0 asks for an
    // entry at (nearly) every batch, so the index fills after a few batches and the segment rolls.
    let dir = tempfile::tempdir().unwrap();
    let c = config(&[("segment.index.bytes", "16"), ("index.interval.bytes", "0")]);
    let mut log = open(dir.path(), c, &clock);
    append_n(&mut log, 12, T0);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "a full index rolls the segment: {bases:?}");
    // Every offset is still readable from the right segment.
    for offset in 0..12 {
        let data = log.read(offset, 1, 12).unwrap();
        let view = sluice_broker::log::batch::BatchView::parse_checked(&data.records).unwrap();
        assert_eq!(view.base_offset(), offset);
    }
}

#[test]
fn a_corrupt_leader_epoch_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), LogConfig::default(), &clock);
    for epoch in [0, 0, 3, 3, 7] {
        let mut b = build_batch(0, T0, &[(None, Some(b"v"))]);
        log.append_as_leader(&mut b, epoch).unwrap();
    }
    let entries = log.epoch_entries().to_vec();
    assert_eq!(entries, [(0, 0), (3, 2), (7, 4)]);
    log.close().unwrap();
    drop(log);
    let path = dir.path().join("leader-epoch-checkpoint");
    std::fs::write(&path, "0\n2\n3 9\nnot an entry\n").unwrap();
    let state = LoadState {
        clean_shutdown: true,
        recovery_point: 5,
        log_start_offset: 0,
        high_watermark: 5,
    };
    let log = PartitionLog::open(
        dir.path(),
        TopicPartition::new("t", 0),
        LogConfig::default(),
        clock.clone(),
        state,
    )
    .unwrap()
    .0;
    assert_eq!(log.epoch_entries(), entries.as_slice());
    assert_eq!(log.end_offset_for_epoch(3), (3, 4));
    assert!(std::fs::read_to_string(&path).unwrap().contains("7 4"), "rewritten");
}

/// A zstd batch of `n` keyed records of 1 KiB of zeros (keys `k0`..`k99`), at `base`.
fn inflating_batch(base: i64, n: usize) -> Vec<u8> {
    use sluice_broker::log::batch::{assemble_batch, BatchFields, BatchView, Compression as Codec};
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let value = vec![0u8; 1024];
    let records: Vec<common::KeyValue<'_>> =
        (0..n).map(|i| (Some(keys[i % 100].as_bytes()), Some(&value[..]))).collect();
    let plain = build_batch(base, T0, &records);
    let view = BatchView::parse(&plain).unwrap();
    let payload =
        sluice_broker::log::compression::compress(Codec::Zstd, view.records_payload()).unwrap();
    let fields = BatchFields { attributes: Codec::Zstd.id(), ..BatchFields::of(&view) };
    assemble_batch(&fields, view.records_count(), &payload)
}

/// A log manager over `dir` with one compacted partition `t-0` of 1000-byte segments.
fn compacted_manager(
    dir: &std::path::Path,
) -> (Arc<ManualClock>, LogManager, sluice_broker::log::manager::SharedLog) {
    let clock = ManualClock::new(T0);
    let topic_config = config(&[("cleanup.policy", "compact"), ("segment.bytes", "1000")]);
    let (manager, _) =
        LogManager::open(dir, LogConfig::default(), clock.clone(), |_| topic_config.clone())
            .unwrap();
    let log = manager.get_or_create(&TopicPartition::new("t", 0), topic_config.clone()).unwrap();
    (clock, manager, log)
}

/// A batch that inflates past the old in-memory cap of the cleaner (64 MiB) is compacted by
/// streaming it, not refused every pass (it used to fail with "decompressed size exceeds").
#[test]
fn batches_inflating_past_the_old_cleaner_cap_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, manager, log) = compacted_manager(dir.path());
    let n = 70_000; // 70,000 records of ~1 KiB: 72 MB of records per batch
    for _ in 0..2 {
        let mut batch = inflating_batch(0, n);
        assert!(batch.len() < 1_000_000, "compressed to {} bytes", batch.len());
        let mut log = log.lock().unwrap();
        log.append_as_leader(&mut batch, 0).unwrap();
        log.roll().unwrap();
        let leo = log.log_end_offset();
        log.update_high_watermark(leo);
    }
    clock.advance(HOUR);
    let removed = manager.run_cleaner();
    assert_eq!(removed, n as u64 + (n as u64 - 100), "the first batch whole, the second to 100");
    assert_eq!(manager.uncleanable_partitions(), 0);
    assert_eq!(manager.cleaner_failures(), 0);
    manager.shutdown().unwrap();
}

/// A partition whose batches the cleaner cannot read (records that are garbage behind a valid
/// CRC, written before produce validation existed or by a replica) is marked uncleanable once
/// and then skipped, not retried every pass.
#[test]
fn a_partition_the_cleaner_cannot_read_is_marked_uncleanable_once() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, manager, log) = compacted_manager(dir.path());
    {
        let mut log = log.lock().unwrap();
        let mut garbage = build_batch(0, T0, &[(Some(b"k"), Some(&[1u8; 600][..]))]);
        let end = garbage.len();
        for b in &mut garbage[61..end] {
            *b = 0xff;
        }
        sluice_broker::log::batch::BatchMut::new(&mut garbage).update_crc();
        log.append_as_follower(&garbage).unwrap();
        log.roll().unwrap();
        let good = build_batch(1, T0, &[(Some(b"k"), Some(b"v"))]);
        log.append_as_follower(&good).unwrap();
        log.roll().unwrap();
        let leo = log.log_end_offset();
        log.update_high_watermark(leo);
    }
    clock.advance(HOUR);
    for _ in 0..3 {
        manager.run_cleaner();
    }
    assert_eq!(manager.uncleanable_partitions(), 1);
    assert_eq!(manager.cleaner_failures(), 1, "tried once, then skipped");
    // Deleting the partition forgets the mark.
    manager.delete(&TopicPartition::new("t", 0)).unwrap();
    assert_eq!(manager.uncleanable_partitions(), 0);
}

/// `compression.type` other than `producer` stores every batch in that codec, as Kafka does:
/// an uncompressed client batch comes back zstd (or lz4, ...), with the same records, offsets
/// and timestamps, and a batch already in the topic's codec is kept as it came.
#[test]
fn compression_type_recompresses_batches_into_the_topics_codec() {
    for (name, id) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4), ("uncompressed", 0)] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let mut log = open(dir.path(), config(&[("compression.type", name)]), &clock);
        let records = [("a", Some("1")), ("b", None), ("c", Some("3"))];
        let mut plain = client_batch(Compression::None, 0, &records);
        log.append_as_leader(&mut plain, 0).unwrap();
        let mut zstd = client_batch(Compression::Zstd, 0, &records);
        log.append_as_leader(&mut zstd, 0).unwrap();
        log.update_high_watermark(6);
        let data = log.read(0, 1 << 20, 6).unwrap();
        let mut pos = 0;
        while pos < data.records.len() {
            let view =
                sluice_broker::log::batch::BatchView::parse_checked(&data.records[pos..]).unwrap();
            assert_eq!(view.attributes() & 7, id, "{name}: every batch in the topic's codec");
            pos += view.size();
        }
        let read = read_all(&log);
        let expected: Vec<(i64, String, Option<String>)> = (0..6)
            .map(|i| {
                let (k, v) = records[i % 3];
                (i as i64, k.to_string(), v.map(str::to_string))
            })
            .collect();
        assert_eq!(read, expected, "{name}");
    }
}

/// A recompressed batch larger than `max.message.bytes` is refused (MESSAGE_TOO_LARGE), as
/// Kafka checks the batch it writes, not the one it received.
#[test]
fn recompression_output_is_bounded_by_max_message_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let c = config(&[("compression.type", "uncompressed"), ("max.message.bytes", "20000")]);
    let mut log = open(dir.path(), c, &clock);
    let value = "x".repeat(1000);
    let records: Vec<(&str, Option<&str>)> =
        (0..100).map(|_| ("k", Some(value.as_str()))).collect();
    let mut batch = client_batch(Compression::Zstd, 0, &records);
    assert!(batch.len() < 20_000);
    let err = log.append_as_leader(&mut batch, 0).unwrap_err();
    assert!(matches!(err, LogError::BatchTooLarge { .. }), "{err}");
    assert_eq!(log.log_end_offset(), 0);
}

/// `max.compaction.lag.ms` makes the cleaner run on dirty data that old even when the dirty
/// ratio alone would wait (KIP-354).
#[test]
fn max_compaction_lag_forces_cleaning_below_the_dirty_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let base = [("cleanup.policy", "compact"), ("segment.bytes", "300")];
    let lazy = [("min.cleanable.dirty.ratio", "1.0")];
    let mut log = open(dir.path(), config(&[&base[..], &lazy[..]].concat()), &clock);
    for i in 0..10 {
        let mut b = client_batch(Compression::None, 0, &[("k", Some(&format!("v{i}")))]);
        log.append_as_leader(&mut b, 0).unwrap();
    }
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
    clock.advance(HOUR);
    // A first pass cleans everything (all of it is dirty); new dirty data then stays below a
    // ratio of 1.0, so later passes wait...
    log.compact().unwrap();
    for i in 10..12 {
        let mut b = client_batch(Compression::None, 0, &[("k", Some(&format!("v{i}")))]);
        log.append_as_leader(&mut b, 0).unwrap();
    }
    log.roll().unwrap();
    let leo = log.log_end_offset();
    log.update_high_watermark(leo);
    clock.advance(HOUR);
    assert_eq!(log.compact().unwrap().records_read, 0, "below the ratio: no pass");
    // ...unless max.compaction.lag.ms says the dirty records have waited long enough.
    let eager = [("max.compaction.lag.ms", "60000")];
    log.update_config(config(&[&base[..], &lazy[..], &eager[..]].concat()));
    assert!(log.compact().unwrap().records_read > 0, "the lag forces a pass");
    let values: Vec<_> = read_all(&log).into_iter().map(|(_, _, v)| v.unwrap()).collect();
    assert_eq!(values.last().map(String::as_str), Some("v11"));
}

/// `segment.jitter.ms` rolls each segment up to that much before `segment.ms`, a different
/// amount per segment, never more than `segment.ms` itself.
#[test]
fn segment_jitter_rolls_segments_early_by_a_per_segment_amount() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut log = open(
        dir.path(),
        config(&[("segment.ms", "100000"), ("segment.jitter.ms", "90000")]),
        &clock,
    );
    let mut jitters = std::collections::BTreeSet::new();
    for _ in 0..20 {
        append_n(&mut log, 1, T0);
        let jitter = log.active_roll_jitter_ms();
        assert!((0..90_000).contains(&jitter), "{jitter}");
        jitters.insert(jitter);
        log.roll().unwrap();
    }
    assert!(jitters.len() > 1, "drawn per segment: {jitters:?}");
}
