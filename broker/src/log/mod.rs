//! The partition log: Kafka-layout segmented storage for one topic-partition.
//!
//! Names follow Apache Kafka's storage internals so a Kafka engineer finds their way:
//! [`segment::LogSegment`] (a `.log` file with its `.index` and `.timeindex`),
//! [`partition_log::PartitionLog`] (Kafka's `UnifiedLog` + `LocalLog`: segments, offsets,
//! recovery, retention), [`epoch_cache::LeaderEpochCache`], [`cleaner`] (compaction) and
//! [`manager::LogManager`] (one data directory: checkpoints, clean-shutdown marker, background
//! retention/flush/cleaning). See `docs/storage.md` for the design and the durability trade-off.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod clock;
pub mod compression;
pub mod config;
pub mod epoch_cache;
pub mod manager;
pub mod offset_index;
pub mod partition_log;
pub mod producer_state;
pub mod record;
pub mod segment;
pub mod time_index;
pub mod validator;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CleanupPolicy, ConfigError, LogConfig};
pub use partition_log::{AppendInfo, FetchData, PartitionLog};

use std::path::PathBuf;

/// Errors from the storage layer. The protocol layer maps these to Kafka error codes.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A batch failed structural or CRC validation (Kafka: CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// Kafka's LogValidator refused the batch (INVALID_RECORD), naming the bad records by their
    /// index in the batch where the problem is with single records.
    #[error("{message}")]
    InvalidRecord { message: String, record_errors: Vec<RecordError> },
    /// Record timestamps outside `message.timestamp.before/after.max.ms` (INVALID_TIMESTAMP).
    #[error("{message}")]
    InvalidTimestamp { message: String, record_errors: Vec<RecordError> },
    /// Only magic v2 batches are accepted (Kafka answers produce requests: INVALID_RECORD).
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    UnsupportedMagic(i8),
    /// A batch larger than `max.message.bytes` (Kafka: MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    BatchTooLarge { size: usize, max: usize },
    /// Offsets of a replicated append go backwards (Kafka: InvalidOffsetException / follower).
    #[error("offset {offset} is not above the log end offset {log_end}")]
    NonMonotonicOffset { offset: i64, log_end: i64 },
    /// Requested offset outside [log start, log end] (Kafka: OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange { offset: i64, log_start: i64, log_end: i64 },
    /// The batch's records could not be decompressed or parsed.
    #[error("cannot decompress record batch: {0}")]
    Decompression(String),
    /// An index or checkpoint file is malformed; callers rebuild or reject it.
    #[error("corrupt {kind} file {path}: {reason}")]
    CorruptFile { kind: &'static str, path: PathBuf, reason: String },
    #[error("invalid log configuration: {0}")]
    Config(#[from] ConfigError),
    /// An idempotent producer's batch does not fit its state (Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER,
    /// INVALID_PRODUCER_EPOCH).
    #[error(transparent)]
    Sequence(#[from] producer_state::SequenceError),
    /// The log directory is already closed or was deleted.
    #[error("log {0} is closed")]
    Closed(PathBuf),
}

/// One refused record of a batch: its index in the batch and why (Produce's `record_errors`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub index: i32,
    pub message: String,
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { path, source }
    }
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<()> {
    crate::fsutil::sync_dir(dir).map_err(LogError::io(dir))
}

/// Result alias for the storage layer.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// A Kafka topic-partition, naming the directory `<topic>-<partition>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
    /// The directory name Kafka uses: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
    /// Parses a directory name; the partition is after the last `-` (topics may contain `-`).
    pub fn parse_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty() {
            return None;
        }
        let partition: i32 = partition.parse().ok().filter(|p: &i32| *p >= 0)?;
        Some(TopicPartition::new(topic, partition))
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
