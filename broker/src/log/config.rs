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
        }
    }
}

/// Topic-level config names, their broker-level counterparts and what they hold.
pub const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "log.cleanup.policy"),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms"),
    ("flush.messages", "log.flush.interval.messages"),
    ("flush.ms", "log.flush.interval.ms"),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("max.message.bytes", "message.max.bytes"),
    ("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms"),
    ("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms"),
    ("message.timestamp.type", "log.message.timestamp.type"),
    ("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio"),
    ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("retention.bytes", "log.retention.bytes"),
    ("retention.ms", "log.retention.ms"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.index.bytes", "log.index.size.max.bytes"),
    ("segment.ms", "log.roll.ms"),
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
                _ => {
                    let topic_key = TOPIC_CONFIGS
                        .iter()
                        .find(|(_, b)| *b == key)
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
            _ => return Err(ConfigError::Unknown(key.into())),
        }
        Ok(())
    }

    /// Every topic-level config with its current value, as DescribeConfigs shows them.
    pub fn to_props(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
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
