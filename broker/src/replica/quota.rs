//! Replication throttles (KIP-73, Kafka's ReplicationQuotaManager): a byte rate shared by the
//! throttled partitions on one side of replication.
//!
//! What is throttled: a partition listed for this broker in the topic's
//! `leader.replication.throttled.replicas` (on the leader, for what it sends) or
//! `follower.replication.throttled.replicas` (on a follower, for what it fetches), as
//! `partition:broker` pairs or `*` for all, and only towards replicas outside the ISR: a
//! reassignment's new replica is slowed down, the ISR never is. The rates are the broker
//! configs `leader.replication.throttled.rate` and `follower.replication.throttled.rate`
//! (bytes/s, unlimited by default), dynamic per broker as `kafka-reassign-partitions
//! --throttle` sets them.
//!
//! The rate is measured as Kafka's `SimpleRate`: 11 samples of one second, the observed rate is
//! the bytes in the retained samples over the time since the oldest one began, at least one
//! second. While it exceeds the limit, the throttled partitions are left out: the leader answers
//! them without records, the follower does not ask for them. Every throttled partition's bytes
//! count, in sync or not; only the out-of-sync ones are held back (as Kafka does).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// `replication.quota.window.num`.
const SAMPLES: usize = 11;
/// `replication.quota.window.size.seconds`, in ms.
const SAMPLE_MS: i64 = 1000;

/// One side's byte rate limit and its measured rate.
#[derive(Debug)]
pub struct ReplicationQuota {
    /// Bytes per second; `i64::MAX` is no limit.
    limit: AtomicI64,
    /// (start of the second, bytes) per sample.
    samples: Mutex<[(i64, u64); SAMPLES]>,
}

impl Default for ReplicationQuota {
    fn default() -> Self {
        ReplicationQuota {
            limit: AtomicI64::new(i64::MAX),
            samples: Mutex::new([(-1, 0); SAMPLES]),
        }
    }
}

impl ReplicationQuota {
    /// Sets the limit in bytes per second (`i64::MAX`: none).
    pub fn set_limit(&self, bytes_per_sec: i64) {
        self.limit.store(bytes_per_sec.max(0), Ordering::Relaxed);
    }

    /// The limit in bytes per second, `None` when unlimited.
    pub fn limit(&self) -> Option<i64> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|l| *l != i64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [(i64, u64); SAMPLES]> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `bytes` replicated at `now_ms` for throttled partitions.
    pub fn record(&self, bytes: u64, now_ms: i64) {
        if self.limit().is_none() || bytes == 0 {
            return;
        }
        let start = now_ms - now_ms.rem_euclid(SAMPLE_MS);
        let mut samples = self.lock();
        let slot = &mut samples[(start / SAMPLE_MS).rem_euclid(SAMPLES as i64) as usize];
        if slot.0 != start {
            *slot = (start, 0);
        }
        slot.1 += bytes;
    }

    /// The measured rate in bytes per second at `now_ms`.
    pub fn rate(&self, now_ms: i64) -> f64 {
        let oldest_kept = now_ms - SAMPLES as i64 * SAMPLE_MS;
        let samples = self.lock();
        let kept = samples.iter().filter(|(start, _)| *start > oldest_kept);
        let (total, oldest) = kept.fold((0u64, now_ms), |(t, o), (s, b)| (t + b, o.min(*s)));
        let elapsed = (now_ms - oldest).max(SAMPLE_MS);
        total as f64 * 1000.0 / elapsed as f64
    }

    /// Whether throttled partitions must wait: a limit is set and the rate is above it.
    pub fn exceeded(&self, now_ms: i64) -> bool {
        self.limit().is_some_and(|limit| self.rate(now_ms) > limit as f64)
    }
}

/// Whether `partition` is throttled on broker `broker` by a throttled-replicas list (`*`, or
/// `partition:broker` pairs; the value was validated when the topic config was set).
pub fn listed(list: Option<&str>, partition: i32, broker: i32) -> bool {
    let Some(list) = list.map(str::trim).filter(|l| !l.is_empty()) else { return false };
    if list == "*" {
        return true;
    }
    list.split(',').any(|entry| {
        let mut parts = entry.trim().splitn(2, ':');
        let p = parts.next().and_then(|p| p.trim().parse::<i32>().ok());
        let b = parts.next().and_then(|b| b.trim().parse::<i32>().ok());
        p == Some(partition) && b == Some(broker)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_exceeds_and_records_nothing() {
        let q = ReplicationQuota::default();
        q.record(u64::MAX / 2, 5_000);
        assert!(!q.exceeded(5_000));
        assert_eq!(q.rate(5_000), 0.0);
    }

    #[test]
    fn the_rate_spans_at_least_a_second_and_forgets_old_samples() {
        let q = ReplicationQuota::default();
        q.set_limit(1000);
        // 500 bytes half a second in: 500 B/s over the minimum window, under the limit.
        q.record(500, 100_000);
        assert!((q.rate(100_500) - 500.0).abs() < 1e-9);
        assert!(!q.exceeded(100_500));
        q.record(700, 100_900);
        assert!(q.exceeded(100_900), "1,200 bytes in a second");
        assert!(!q.exceeded(103_000), "1,200 bytes over 3 s");
        // Eleven seconds on, that second has left the window.
        assert!(!q.exceeded(111_000));
        assert_eq!(q.rate(111_000), 0.0);
        // Over a longer span, the span counts: 12,000 bytes over 11 s.
        q.record(1_000, 111_000);
        q.record(11_000, 121_999);
        assert!((q.rate(121_999) - 12_000.0 * 1000.0 / 10_999.0).abs() < 1e-6);
    }

    #[test]
    fn throttled_lists_match_partition_and_broker() {
        assert!(listed(Some("*"), 3, 9));
        assert!(listed(Some("0:1, 1:2"), 1, 2));
        assert!(!listed(Some("0:1,1:2"), 1, 1));
        assert!(!listed(Some(""), 0, 1));
        assert!(!listed(None, 0, 1));
    }
}
