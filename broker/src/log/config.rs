//! `LogConfig`: per-topic log settings with Kafka's names, defaults and validation.
//!
//! Broker-wide defaults (`log.segment.bytes`, `log.retention.ms`, ...) form a base `LogConfig`;
//! a topic's overrides (`segment.bytes`, `retention.ms`, ...) are applied on top with
//! [`LogConfig::with_overrides`]. Unknown names and out-of-range values are rejected with a
//! message naming the key, so the protocol layer can answer INVALID_CONFIG.

use std::collections::BTreeMap;

/// What happens to old segments: deletion by retention, compaction, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
    fn parse(v: &str) -> Option<Self> {
        let mut parts: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            ["delete"] => Some(CleanupPolicy::Delete),
            ["compact"] => Some(CleanupPolicy::Compact),
            ["compact", "delete"] => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// `compression.type` of a topic: keep the producer's codec, or store every batch in one codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionType {
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    fn parse(v: &str) -> Option<Self> {
        Some(match v.trim().to_ascii_lowercase().as_str() {
            "producer" => CompressionType::Producer,
            "uncompressed" | "none" => CompressionType::Uncompressed,
            "gzip" => CompressionType::Gzip,
            "snappy" => CompressionType::Snappy,
            "lz4" => CompressionType::Lz4,
            "zstd" => CompressionType::Zstd,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
    /// The codec batches are stored in, `None` for `producer` (whatever the batch has).
    pub fn codec(self) -> Option<super::batch::Compression> {
        use super::batch::Compression as C;
        Some(match self {
            CompressionType::Producer => return None,
            CompressionType::Uncompressed => C::None,
            CompressionType::Gzip => C::Gzip,
            CompressionType::Snappy => C::Snappy,
            CompressionType::Lz4 => C::Lz4,
            CompressionType::Zstd => C::Zstd,
        })
    }
}

/// A rejected configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown configuration '{0}'")]
    Unknown(String),
    #[error("invalid value '{value}' for configuration '{key}': {reason}")]
    Invalid { key: String, value: String, reason: String },
}

/// Settings of one partition log. Field docs give the topic-level name and Kafka's default.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment reaches this size (1 GiB).
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is this old (7 days).
    pub segment_ms: i64,
    /// `segment.index.bytes`: maximum offset-index size; a full index rolls the segment (10 MiB).
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes between sparse index entries (4096).
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest timestamp is older (7 days; -1 = forever).
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments beyond this size (-1 = unlimited).
    pub retention_bytes: i64,
    /// `cleanup.policy`: delete, compact, or compact,delete (delete).
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long tombstones survive compaction (1 day).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted (0).
    pub min_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: compact when this share of the cleanable bytes was written
    /// since the last compaction (0.5).
    pub min_cleanable_dirty_ratio: f64,
    /// `max.message.bytes`: largest record batch accepted (1048588).
    pub max_message_bytes: u64,
    /// `message.timestamp.type`: CreateTime or LogAppendTime.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`: how far behind the broker's clock a CreateTime record
    /// may be (i64::MAX = no bound).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far ahead of the broker's clock a CreateTime record
    /// may be (1 hour since Kafka 4.0, KIP-937).
    pub timestamp_after_max_ms: i64,
    /// `flush.messages`: fsync after this many messages (i64::MAX = never by count).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when this long has passed since the last flush (i64::MAX = never).
    pub flush_ms: i64,
    /// `min.insync.replicas`: replicas that must have an acks=all write (1).
    pub min_insync_replicas: i32,
    /// `compression.type`: `producer` keeps each batch's codec; any other value recompresses
    /// batches into that codec on produce, as Kafka does.
    pub compression_type: CompressionType,
    /// `compression.gzip.level` (-1: the codec's default), `compression.lz4.level` (9),
    /// `compression.zstd.level` (3): levels used when the broker compresses.
    pub gzip_level: i32,
    pub lz4_level: i32,
    pub zstd_level: i32,
    /// `max.compaction.lag.ms`: a record may stay uncompacted at most this long; older dirty
    /// data makes the cleaner run whatever the dirty ratio (i64::MAX: no bound).
    pub max_compaction_lag_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much before `segment.ms` (0), so
    /// partitions created together do not all roll at once.
    pub segment_jitter_ms: i64,
    /// `max.decompressed.message.bytes`: the largest record body a compressed batch may hold
    /// when the broker decompresses it (2147483639).
    pub max_decompressed_message_bytes: i64,
    /// Settings stored with their Kafka validation and reported by DescribeConfigs but not
    /// acted on yet: they belong to replication (`unclean.leader.election.enable`, the
    /// throttled-replica lists), tiered storage (`local.retention.*`, `remote.*`, refused
    /// when enabled), the consumer side (`errors.deadletterqueue.group.enable`), or have no
    /// counterpart in how Sluice writes files (`file.delete.delay.ms`, `preallocate`).
    pub stored: BTreeMap<&'static str, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            max_message_bytes: 1_048_588,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            min_insync_replicas: 1,
            compression_type: CompressionType::Producer,
            gzip_level: -1,
            lz4_level: 9,
            zstd_level: 3,
            max_compaction_lag_ms: i64::MAX,
            segment_jitter_ms: 0,
            max_decompressed_message_bytes: 2_147_483_639,
            stored: STORED_DEFAULTS.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }
}

/// Topic configs Sluice stores but does not act on yet, with Kafka's defaults.
const STORED_DEFAULTS: &[(&str, &str)] = &[
    ("errors.deadletterqueue.group.enable", "false"),
    ("file.delete.delay.ms", "60000"),
    ("follower.replication.throttled.replicas", ""),
    ("leader.replication.throttled.replicas", ""),
    ("local.retention.bytes", "-2"),
    ("local.retention.ms", "-2"),
    ("preallocate", "false"),
    ("remote.copy.lag.bytes", "-1"),
    ("remote.copy.lag.ms", "0"),
    ("remote.log.copy.disable", "false"),
    ("remote.log.delete.on.disable", "false"),
    ("remote.storage.enable", "false"),
    ("unclean.leader.election.enable", "false"),
];

/// Topic-level config names and their broker-level counterparts (Kafka's
/// `ServerTopicConfigSynonyms`; "" for the topic-only ones). Every topic config of Kafka 4.4
/// (`config::catalog::TOPIC`) is here but the internal `internal.segment.bytes`.
pub const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "log.cleanup.policy"),
    ("compression.gzip.level", "compression.gzip.level"),
    ("compression.lz4.level", "compression.lz4.level"),
    ("compression.type", "compression.type"),
    ("compression.zstd.level", "compression.zstd.level"),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms"),
    ("errors.deadletterqueue.group.enable", ""),
    ("file.delete.delay.ms", "log.segment.delete.delay.ms"),
    ("flush.messages", "log.flush.interval.messages"),
    ("flush.ms", "log.flush.interval.ms"),
    ("follower.replication.throttled.replicas", ""),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("leader.replication.throttled.replicas", ""),
    ("local.retention.bytes", "log.local.retention.bytes"),
    ("local.retention.ms", "log.local.retention.ms"),
    ("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"),
    ("max.decompressed.message.bytes", "max.decompressed.message.bytes"),
    ("max.message.bytes", "message.max.bytes"),
    ("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms"),
    ("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms"),
    ("message.timestamp.type", "log.message.timestamp.type"),
    ("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio"),
    ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("preallocate", "log.preallocate"),
    ("remote.copy.lag.bytes", "log.remote.copy.lag.bytes"),
    ("remote.copy.lag.ms", "log.remote.copy.lag.ms"),
    ("remote.log.copy.disable", ""),
    ("remote.log.delete.on.disable", ""),
    ("remote.storage.enable", ""),
    ("retention.bytes", "log.retention.bytes"),
    ("retention.ms", "log.retention.ms"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.index.bytes", "log.index.size.max.bytes"),
    ("segment.jitter.ms", "log.roll.jitter.ms"),
    ("segment.ms", "log.roll.ms"),
    ("unclean.leader.election.enable", "unclean.leader.election.enable"),
];

fn parse_i64(key: &str, value: &str) -> Result<i64, ConfigError> {
    value.trim().parse::<i64>().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: "not an integer".into(),
    })
}

fn at_least(key: &str, value: &str, min: i64) -> Result<i64, ConfigError> {
    let v = parse_i64(key, value)?;
    if v < min {
        return Err(ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            reason: format!("must be at least {min}"),
        });
    }
    Ok(v)
}

/// Kafka's `INT` configs: at least `min` and at most `i32::MAX` (file positions in the indexes
/// are 32-bit, so a larger `segment.bytes` could not be indexed).
fn int_at_least(key: &str, value: &str, min: i64) -> Result<i64, ConfigError> {
    let v = at_least(key, value, min)?;
    if v > i32::MAX as i64 {
        return Err(ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            reason: format!("must be at most {}", i32::MAX),
        });
    }
    Ok(v)
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: value.into(), reason: reason.into() }
}

fn int_between(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let v = at_least(key, value, min)?;
    if v > max {
        return Err(invalid(key, value, &format!("must be at most {max}")));
    }
    Ok(v)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// Kafka's throttled-replica lists: empty, `*`, or `partition:broker` pairs.
fn check_throttled_replicas(key: &str, value: &str) -> Result<(), ConfigError> {
    let v = value.trim();
    if v.is_empty() || v == "*" {
        return Ok(());
    }
    for pair in v.split(',') {
        let ok = pair.trim().split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
        });
        if !ok {
            return Err(invalid(
                key,
                value,
                "expected * or [partitionId]:[brokerId],[partitionId]:[brokerId],...",
            ));
        }
    }
    Ok(())
}

/// `retention.ms`/`retention.bytes` accept -1 (unlimited) or any non-negative value.
fn unlimited_or_non_negative(key: &str, value: &str) -> Result<i64, ConfigError> {
    let v = at_least(key, value, -1)?;
    Ok(v)
}

impl LogConfig {
    /// Applies topic-level overrides on top of `self`, validating each one.
    pub fn with_overrides<'a, I>(&self, overrides: I) -> Result<LogConfig, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut c = self.clone();
        for (key, value) in overrides {
            c.set(key, value)?;
        }
        Ok(c)
    }

    /// Same as [`with_overrides`](Self::with_overrides) for broker-level names
    /// (`log.segment.bytes`, ...), used for broker defaults. `log.retention.hours`/`minutes`
    /// and `log.roll.hours` are accepted as Kafka does.
    pub fn with_broker_overrides<'a, I>(&self, props: I) -> Result<LogConfig, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut c = self.clone();
        for (key, value) in props {
            match key {
                "log.retention.hours" => {
                    c.retention_ms = at_least(key, value, -1)?.saturating_mul(3_600_000)
                }
                "log.retention.minutes" => {
                    c.retention_ms = at_least(key, value, -1)?.saturating_mul(60_000)
                }
                "log.roll.hours" => {
                    c.segment_ms = at_least(key, value, 1)?.saturating_mul(3_600_000)
                }
                "log.roll.jitter.hours" => {
                    c.segment_jitter_ms = at_least(key, value, 0)?.saturating_mul(3_600_000)
                }
                _ => {
                    let topic_key = TOPIC_CONFIGS
                        .iter()
                        .find(|(_, b)| !b.is_empty() && *b == key)
                        .map(|(t, _)| *t)
                        .ok_or_else(|| ConfigError::Unknown(key.into()))?;
                    c.set(topic_key, value)?;
                }
            }
        }
        Ok(c)
    }

    /// Sets one topic-level config by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            // Kafka's floor is the size of the smallest legacy record; we keep it so tests can
            // use tiny segments.
            "segment.bytes" => self.segment_bytes = int_at_least(key, value, 14)? as u64,
            "segment.ms" => self.segment_ms = at_least(key, value, 1)?,
            "segment.index.bytes" => self.segment_index_bytes = int_at_least(key, value, 8)? as u64,
            "index.interval.bytes" => {
                self.index_interval_bytes = int_at_least(key, value, 0)? as u64
            }
            "retention.ms" => self.retention_ms = unlimited_or_non_negative(key, value)?,
            "retention.bytes" => self.retention_bytes = unlimited_or_non_negative(key, value)?,
            "cleanup.policy" => {
                self.cleanup_policy =
                    CleanupPolicy::parse(value).ok_or_else(|| ConfigError::Invalid {
                        key: key.into(),
                        value: value.into(),
                        reason: "expected delete, compact or compact,delete".into(),
                    })?
            }
            "delete.retention.ms" => self.delete_retention_ms = at_least(key, value, 0)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = at_least(key, value, 0)?,
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = match value.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => r,
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: key.into(),
                            value: value.into(),
                            reason: "expected a number between 0 and 1".into(),
                        })
                    }
                }
            }
            "max.message.bytes" => self.max_message_bytes = int_at_least(key, value, 0)? as u64,
            "message.timestamp.type" => {
                self.log_append_time = match value {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: key.into(),
                            value: value.into(),
                            reason: "expected CreateTime or LogAppendTime".into(),
                        })
                    }
                }
            }
            "message.timestamp.before.max.ms" => {
                self.timestamp_before_max_ms = at_least(key, value, 0)?
            }
            "message.timestamp.after.max.ms" => {
                self.timestamp_after_max_ms = at_least(key, value, 0)?
            }
            "flush.messages" => self.flush_messages = at_least(key, value, 1)?,
            "flush.ms" => self.flush_ms = at_least(key, value, 0)?,
            "min.insync.replicas" => self.min_insync_replicas = int_at_least(key, value, 1)? as i32,
            "compression.type" => {
                self.compression_type =
                    CompressionType::parse(value).ok_or_else(|| ConfigError::Invalid {
                        key: key.into(),
                        value: value.into(),
                        reason: "expected uncompressed, zstd, lz4, snappy, gzip or producer".into(),
                    })?
            }
            "compression.gzip.level" => {
                let v = int_between(key, value, -1, 9)?;
                if v == 0 {
                    return Err(invalid(key, value, "must be -1 or between 1 and 9"));
                }
                self.gzip_level = v as i32;
            }
            "compression.lz4.level" => self.lz4_level = int_between(key, value, 1, 17)? as i32,
            "compression.zstd.level" => {
                self.zstd_level = int_between(key, value, -131_072, 22)? as i32
            }
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = at_least(key, value, 1)?,
            "segment.jitter.ms" => self.segment_jitter_ms = at_least(key, value, 0)?,
            "max.decompressed.message.bytes" => {
                self.max_decompressed_message_bytes = int_between(key, value, 1, 2_147_483_639)?
            }
            "remote.storage.enable" => {
                if parse_bool(key, value)? {
                    return Err(invalid(
                        key,
                        value,
                        "tiered storage is not supported by Sluice: topics keep all their data \
                         on the broker's disks",
                    ));
                }
                self.store(key, "false");
            }
            "errors.deadletterqueue.group.enable"
            | "preallocate"
            | "remote.log.copy.disable"
            | "remote.log.delete.on.disable"
            | "unclean.leader.election.enable" => {
                let v = parse_bool(key, value)?;
                self.store(key, &v.to_string());
            }
            "file.delete.delay.ms" => {
                let v = at_least(key, value, 0)?;
                self.store(key, &v.to_string());
            }
            "local.retention.bytes" | "local.retention.ms" => {
                let v = at_least(key, value, -2)?;
                self.store(key, &v.to_string());
            }
            "remote.copy.lag.bytes" | "remote.copy.lag.ms" => {
                let v = at_least(key, value, -1)?;
                self.store(key, &v.to_string());
            }
            "follower.replication.throttled.replicas" | "leader.replication.throttled.replicas" => {
                check_throttled_replicas(key, value)?;
                self.store(key, value.trim());
            }
            _ => return Err(ConfigError::Unknown(key.into())),
        }
        Ok(())
    }

    fn store(&mut self, key: &str, value: &str) {
        if let Some((k, _)) = STORED_DEFAULTS.iter().find(|(k, _)| *k == key) {
            self.stored.insert(k, value.to_string());
        }
    }

    /// Every topic-level config with its current value, as DescribeConfigs shows them.
    pub fn to_props(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        for (k, v) in &self.stored {
            m.insert(*k, v.clone());
        }
        m.insert("compression.type", self.compression_type.name().to_string());
        m.insert("compression.gzip.level", self.gzip_level.to_string());
        m.insert("compression.lz4.level", self.lz4_level.to_string());
        m.insert("compression.zstd.level", self.zstd_level.to_string());
        m.insert("max.compaction.lag.ms", self.max_compaction_lag_ms.to_string());
        m.insert("segment.jitter.ms", self.segment_jitter_ms.to_string());
        m.insert("max.decompressed.message.bytes", self.max_decompressed_message_bytes.to_string());
        m.insert("cleanup.policy", self.cleanup_policy.name().to_string());
        m.insert("delete.retention.ms", self.delete_retention_ms.to_string());
        m.insert("flush.messages", self.flush_messages.to_string());
        m.insert("flush.ms", self.flush_ms.to_string());
        m.insert("index.interval.bytes", self.index_interval_bytes.to_string());
        m.insert("max.message.bytes", self.max_message_bytes.to_string());
        m.insert(
            "message.timestamp.type",
            if self.log_append_time { "LogAppendTime" } else { "CreateTime" }.to_string(),
        );
        m.insert("message.timestamp.after.max.ms", self.timestamp_after_max_ms.to_string());
        m.insert("message.timestamp.before.max.ms", self.timestamp_before_max_ms.to_string());
        m.insert("min.cleanable.dirty.ratio", self.min_cleanable_dirty_ratio.to_string());
        m.insert("min.compaction.lag.ms", self.min_compaction_lag_ms.to_string());
        m.insert("min.insync.replicas", self.min_insync_replicas.to_string());
        m.insert("retention.bytes", self.retention_bytes.to_string());
        m.insert("retention.ms", self.retention_ms.to_string());
        m.insert("segment.bytes", self.segment_bytes.to_string());
        m.insert("segment.index.bytes", self.segment_index_bytes.to_string());
        m.insert("segment.ms", self.segment_ms.to_string());
        m
    }

    /// The most bytes one batch's records may decompress to where the broker must read them
    /// (compaction, timestamp lookups): generous for real compression ratios, and bounded by
    /// the topic's batch limit so a crafted batch cannot make the broker allocate gigabytes.
    pub fn decompress_limit(&self) -> usize {
        (self.max_message_bytes as usize).saturating_mul(64).max(64 << 20)
    }

    /// Entries an offset index may hold before the segment must roll.
    pub fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kafka() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.segment_ms, 604_800_000);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.cleanup_policy, CleanupPolicy::Delete);
    }

    #[test]
    fn topic_overrides_apply_over_broker_defaults() {
        let broker =
            LogConfig::default().with_broker_overrides([("log.retention.hours", "1")]).unwrap();
        assert_eq!(broker.retention_ms, 3_600_000);
        let topic = broker
            .with_overrides([("cleanup.policy", "compact,delete"), ("segment.bytes", "1024")])
            .unwrap();
        assert_eq!(topic.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(topic.segment_bytes, 1024);
        assert_eq!(topic.retention_ms, 3_600_000);
        assert_eq!(topic.to_props()["cleanup.policy"], "compact,delete");
    }

    #[test]
    fn every_kafka_topic_config_is_known_with_kafkas_default() {
        let defaults = LogConfig::default();
        let props = defaults.to_props();
        for k in crate::config::catalog::TOPIC.iter().filter(|k| !k.internal) {
            let (_, broker) = TOPIC_CONFIGS
                .iter()
                .find(|(t, _)| *t == k.name)
                .unwrap_or_else(|| panic!("{} is missing from TOPIC_CONFIGS", k.name));
            assert_eq!(*broker, k.synonyms.first().copied().unwrap_or(""), "{}", k.name);
            let value = props.get(k.name).unwrap_or_else(|| panic!("{} is not described", k.name));
            let kafka = k.default.unwrap_or("");
            // Sluice keeps its small-segment floor and its own flush defaults in the same units.
            assert_eq!(value, kafka, "default of {}", k.name);
            defaults.with_overrides([(k.name, kafka)]).unwrap();
        }
    }

    #[test]
    fn new_topic_configs_validate_as_kafka() {
        let c = LogConfig::default();
        let ok = |k: &str, v: &str| c.with_overrides([(k, v)]).is_ok();
        assert!(ok("compression.type", "zstd") && ok("compression.type", "producer"));
        assert!(!ok("compression.type", "brotli"));
        assert!(ok("compression.gzip.level", "-1") && ok("compression.gzip.level", "9"));
        assert!(!ok("compression.gzip.level", "0") && !ok("compression.gzip.level", "10"));
        assert!(!ok("compression.lz4.level", "18") && !ok("compression.zstd.level", "23"));
        assert!(!ok("max.compaction.lag.ms", "0") && ok("segment.jitter.ms", "1000"));
        assert!(ok("leader.replication.throttled.replicas", "0:1,1:2"));
        assert!(ok("follower.replication.throttled.replicas", "*"));
        assert!(!ok("leader.replication.throttled.replicas", "0-1"));
        assert!(ok("local.retention.ms", "-2") && !ok("local.retention.ms", "-3"));
        assert!(ok("remote.storage.enable", "false"));
        let e = c.with_overrides([("remote.storage.enable", "true")]).unwrap_err().to_string();
        assert!(e.contains("tiered storage is not supported"), "{e}");
        let jitter = c.with_broker_overrides([("log.roll.jitter.hours", "2")]).unwrap();
        assert_eq!(jitter.segment_jitter_ms, 7_200_000);
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = LogConfig::default();
        let e = c.with_overrides([("retention.ms", "-5")]).unwrap_err();
        assert!(e.to_string().contains("retention.ms"), "{e}");
        assert!(c.with_overrides([("segment.bytes", "abc")]).is_err());
        assert!(c.with_overrides([("segment.bytes", "4294967296")]).is_err(), "above i32::MAX");
        assert!(c.with_broker_overrides([("log.roll.hours", "9223372036854775807")]).is_ok());
        assert!(c.with_overrides([("cleanup.policy", "shred")]).is_err());
        assert_eq!(
            c.with_overrides([("no.such.thing", "1")]).unwrap_err(),
            ConfigError::Unknown("no.such.thing".into())
        );
        assert!(c.with_overrides([("message.timestamp.type", "Wallclock")]).is_err());
    }
}
