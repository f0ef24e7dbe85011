//! Property test: any sequence of append / read / roll / truncate / delete-records / set-HW /
//! leader-epoch bump / close-and-reopen (clean or crashed) on a `PartitionLog` gives the same
//! answers as a simple in-memory model (a vector of batches).

use std::sync::Arc;

use proptest::prelude::*;
use sluice_broker::log::batch::{build_batch, BatchIter, BatchView};
use sluice_broker::log::partition_log::LoadState;
use sluice_broker::log::TopicPartition;
use sluice_broker::log::{LogConfig, LogError, ManualClock, PartitionLog};

#[derive(Clone, Debug)]
enum Op {
    Append { records: usize, value_len: usize, ts_step: i64 },
    Read { at: u16, max_bytes: usize },
    Roll,
    Truncate { at: u16 },
    DeleteRecords { at: u16 },
    SetHw { at: u16 },
    BumpEpoch,
    EndOffsetForEpoch { epoch: i32 },
    FindByTimestamp { back: i64 },
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..400, -20i64..100)
            .prop_map(|(records, value_len, ts_step)| Op::Append { records, value_len, ts_step }),
        6 => (any::<u16>(), 1usize..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Roll),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        2 => any::<u16>().prop_map(|at| Op::SetHw { at }),
        1 => Just(Op::BumpEpoch),
        1 => (0i32..8).prop_map(|epoch| Op::EndOffsetForEpoch { epoch }),
        2 => (-50i64..400).prop_map(|back| Op::FindByTimestamp { back }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// One stored batch of the model.
#[derive(Clone, Debug)]
struct Stored {
    base: i64,
    last: i64,
    ts: i64,
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<Stored>,
    log_start: i64,
    leo: i64,
    hw: i64,
    epoch: i32,
    epochs: Vec<(i32, i64)>,
    ts: i64,
}

impl Model {
    /// Offset in [lo, hi] chosen by `at`.
    fn pick(lo: i64, hi: i64, at: u16) -> i64 {
        lo + (at as i64) % (hi - lo + 1)
    }

    fn truncate(&mut self, offset: i64) {
        if offset >= self.leo {
            return;
        }
        self.batches.retain(|b| b.last < offset);
        self.leo = self.batches.last().map(|b| b.last + 1).unwrap_or(self.log_start);
        if offset <= self.log_start || self.leo < self.log_start {
            let start = offset.min(self.log_start);
            self.batches.clear();
            self.epochs.clear();
            self.log_start = start;
            self.leo = start;
            self.hw = start;
            return;
        }
        self.hw = self.hw.min(self.leo);
        let leo = self.leo;
        self.epochs.retain(|&(_, start)| start < leo);
    }

    /// Kafka's LeaderEpochFileCache.endOffsetFor.
    fn end_offset_for(&self, requested: i32) -> (i32, i64) {
        if self.epochs.last().map(|e| e.0) == Some(requested) {
            return (requested, self.leo);
        }
        let higher = self.epochs.iter().position(|&(e, _)| e > requested);
        match higher {
            None => (-1, -1),
            Some(0) => (requested, self.epochs[0].1),
            Some(i) => (self.epochs[i - 1].0, self.epochs[i].1),
        }
    }
}

fn config() -> LogConfig {
    LogConfig::default()
        .with_overrides([("segment.bytes", "3000"), ("index.interval.bytes", "300")])
        .unwrap()
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>, state: LoadState) -> PartitionLog {
    PartitionLog::open(dir, TopicPartition::new("t", 0), config(), clock.clone(), state).unwrap().0
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let mut log = open(dir.path(), &clock, LoadState::default());
    let mut m = Model { ts: 1_000_000, ..Model::default() };
    for op in ops {
        match op {
            Op::Append { records, value_len, ts_step } => {
                m.ts = (m.ts + ts_step).max(0);
                let value = vec![b'v'; value_len];
                let recs: Vec<_> =
                    (0..records).map(|_| (Some(&b"k"[..]), Some(&value[..]))).collect();
                let mut batch = build_batch(0, m.ts, &recs);
                let info = log.append_as_leader(&mut batch, m.epoch).unwrap();
                prop_assert_eq!(info.first_offset, m.leo);
                prop_assert_eq!(info.last_offset, m.leo + records as i64 - 1);
                if m.epochs.last().map(|e| e.0) != Some(m.epoch) {
                    // Kafka drops entries a new epoch's start offset makes non-monotonic.
                    let start = m.leo;
                    m.epochs.retain(|&(_, s)| s < start);
                    m.epochs.push((m.epoch, start));
                }
                m.batches.push(Stored {
                    base: m.leo,
                    last: info.last_offset,
                    ts: m.ts,
                    bytes: batch,
                });
                m.leo = info.last_offset + 1;
            }
            Op::Read { at, max_bytes } => {
                let offset = Model::pick(m.log_start, m.leo, at);
                let got = log.read(offset, max_bytes, m.hw).unwrap();
                let expected: Vec<&Stored> =
                    m.batches.iter().filter(|b| b.last >= offset && b.last < m.hw).collect();
                let got_batches: Vec<BatchView<'_>> =
                    BatchIter::new(&got.records, true).map(|r| r.unwrap().1).collect();
                prop_assert_eq!(got.high_watermark, m.hw);
                prop_assert!(got_batches.len() <= expected.len());
                if !expected.is_empty() {
                    prop_assert!(!got_batches.is_empty(), "read at {} returned nothing", offset);
                }
                for (g, e) in got_batches.iter().zip(&expected) {
                    prop_assert_eq!(g.bytes(), &e.bytes[..]);
                }
                if got_batches.len() > 1 {
                    prop_assert!(got.records.len() <= max_bytes);
                }
                // A shorter answer than possible must be explained by the byte limit or by the
                // next batch living in the next segment.
                if got_batches.len() < expected.len() && !got_batches.is_empty() {
                    let next = expected[got_batches.len()];
                    let last = expected[got_batches.len() - 1];
                    let over_limit = got.records.len() + next.bytes.len() > max_bytes;
                    let other_segment =
                        log.segment_file_for(next.base) != log.segment_file_for(last.base);
                    prop_assert!(over_limit || other_segment);
                }
            }
            Op::Roll => log.roll().unwrap(),
            Op::Truncate { at } => {
                let offset = Model::pick(m.log_start, m.leo, at);
                log.truncate_to(offset).unwrap();
                m.truncate(offset);
            }
            Op::DeleteRecords { at } => {
                let offset = Model::pick(m.log_start, m.hw, at);
                let start = log.delete_records_before(offset).unwrap();
                m.log_start = m.log_start.max(offset);
                prop_assert_eq!(start, m.log_start);
                let beyond = log.delete_records_before(m.hw + 1);
                let out_of_range = matches!(beyond, Err(LogError::OffsetOutOfRange { .. }));
                prop_assert!(out_of_range);
                // Kafka's truncateFromStart: the epoch in force at the new start begins there.
                let keep = m.epochs.iter().rposition(|&(_, s)| s <= m.log_start);
                if let Some(i) = keep {
                    let epoch = m.epochs[i].0;
                    m.epochs.drain(..i);
                    m.epochs[0] = (epoch, m.log_start.max(m.epochs[0].1));
                }
            }
            Op::SetHw { at } => {
                let hw = Model::pick(m.log_start, m.leo, at);
                // HW only lands on batch boundaries in a real cluster (followers fetch whole
                // batches); move it to the end of the batch that holds it.
                let hw = m
                    .batches
                    .iter()
                    .find(|b| b.last >= hw && b.base < hw)
                    .map_or(hw, |b| b.last + 1);
                prop_assert_eq!(log.update_high_watermark(hw), hw);
                m.hw = hw;
            }
            Op::BumpEpoch => m.epoch += 1,
            Op::EndOffsetForEpoch { epoch } => {
                prop_assert_eq!(log.end_offset_for_epoch(epoch), m.end_offset_for(epoch));
            }
            Op::FindByTimestamp { back } => {
                let target = m.ts - back;
                let expected = m
                    .batches
                    .iter()
                    .filter(|b| b.last >= m.log_start)
                    .find(|b| b.ts >= target)
                    .map(|b| (b.base.max(m.log_start), b.ts));
                prop_assert_eq!(log.fetch_offset_by_timestamp(target).unwrap(), expected);
            }
            Op::Reopen { clean } => {
                let state = LoadState {
                    clean_shutdown: clean,
                    recovery_point: log.recovery_point(),
                    log_start_offset: log.log_start_offset(),
                    high_watermark: log.high_watermark(),
                };
                if clean {
                    log.close().unwrap();
                }
                drop(log);
                log = open(dir.path(), &clock, state);
                // Loading drops epochs that start at or beyond the LEO, as Kafka's LogLoader does.
                let leo = m.leo;
                m.epochs.retain(|&(_, s)| s < leo);
            }
        }
        prop_assert_eq!(log.log_end_offset(), m.leo);
        prop_assert_eq!(log.log_start_offset(), m.log_start);
        prop_assert_eq!(log.high_watermark(), m.hw);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn partition_log_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
