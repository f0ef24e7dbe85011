//! Prometheus metrics of the broker, rendered as text on the admin HTTP `/metrics`.
//!
//! Request counts and latency histograms per API, bytes in/out per topic, connection and
//! malformed-frame counters are updated as requests flow. Per-partition offsets (log start,
//! LEO, HW) are read from the partitions at scrape time so they are never stale.
//! Consumer group gauges (state, members, committed offset, lag = HW − committed) are refreshed
//! from the group coordinator at scrape time too.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::replica::ReplicaManager;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~26 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 20))
}

/// Every metric the broker exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<ApiLabels, Counter>,
    pub request_errors: Family<ApiLabels, Counter>,
    /// Error codes in responses, by API and Kafka error name (per partition, group, resource).
    pub error_responses: Family<ApiErrorLabels, Counter>,
    pub request_latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
    pub bytes_in: Family<TopicLabels, Counter>,
    pub bytes_out: Family<TopicLabels, Counter>,
    pub messages_in: Family<TopicLabels, Counter>,
    pub duplicates: Family<TopicLabels, Counter>,
    pub connections: Gauge,
    pub connections_total: Counter,
    pub connections_closed: Family<ReasonLabels, Counter>,
    /// Bytes of `queued.max.request.bytes` taken by frames being read or handled.
    pub request_memory_used: Gauge,
    /// Broker tasks that panicked, by task (`connection`, ...): always a bug.
    pub panics: Family<TaskLabels, Counter>,
    log_start: Family<PartitionLabels, Gauge>,
    log_end: Family<PartitionLabels, Gauge>,
    high_watermark: Family<PartitionLabels, Gauge>,
    leader_epoch: Family<PartitionLabels, Gauge>,
    producers: Family<PartitionLabels, Gauge>,
    partitions: Gauge,
    uncleanable_partitions: Gauge,
    cleaner_failures: Gauge<u64, AtomicU64>,
    storage_background_errors: Gauge<u64, AtomicU64>,
    /// 1 while the metadata quorum's raft core runs, 0 once it stopped on a fatal error.
    pub raft_alive: Gauge,
    /// 1 while a metadata write fails and is retried (a full disk).
    pub metadata_storage_stalled: Gauge,
    /// 1 while the log directory fails writes (a full disk).
    pub log_dir_failing: Gauge,
    raft_term: Gauge,
    raft_leader: Gauge,
    raft_applied: Gauge<u64, AtomicU64>,
    group_state: Family<GroupStateLabels, Gauge>,
    group_members: Family<GroupLabels, Gauge>,
    group_committed: Family<GroupPartitionLabels, Gauge>,
    group_lag: Family<GroupPartitionLabels, Gauge>,
    replication: ReplicationMetrics,
}

/// Replication state (docs/replication.md), read at scrape time. Per partition on every
/// broker hosting it: replicas and ISR size; under-replicated, under-min-ISR and at-min-ISR are
/// 1 only on the leader (as Kafka's per-partition gauges), so a sum over brokers counts each
/// partition once. Follower lag (messages behind the leader's LEO) is the leader's view.
#[derive(Debug, Default)]
struct ReplicationMetrics {
    replicas: Family<PartitionLabels, Gauge>,
    isr_size: Family<PartitionLabels, Gauge>,
    under_replicated: Family<PartitionLabels, Gauge>,
    under_min_isr: Family<PartitionLabels, Gauge>,
    at_min_isr: Family<PartitionLabels, Gauge>,
    follower_lag: Family<ReplicaLabels, Gauge>,
    leader_partitions: Gauge,
    under_replicated_partitions: Gauge,
    under_min_isr_partitions: Gauge,
    offline_partitions: Gauge,
    reassigning_partitions: Gauge,
    isr_shrinks: Counter,
    isr_expands: Counter,
    throttle_limit: Family<SideLabels, Gauge>,
    throttle_rate: Family<SideLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

/// Labels of a per-follower metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    pub topic: String,
    pub partition: String,
    pub replica: String,
}

/// Which side of replication a throttle limits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideLabels {
    pub side: &'static str,
}

/// Labels of an error-code metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    pub api: &'static str,
    pub error: String,
}

/// Labels of a per-task metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: &'static str,
}

/// Labels of a per-group metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

/// Labels of the group state metric: one series per state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupStateLabels {
    pub group: String,
    pub state: &'static str,
}

/// Labels of a per-group, per-partition metric (committed offset, lag).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupPartitionLabels {
    pub group: String,
    pub topic: String,
    pub partition: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("sluice")),
            requests: Family::default(),
            request_errors: Family::default(),
            error_responses: Family::default(),
            request_latency: Family::new_with_constructor(latency_histogram),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            messages_in: Family::default(),
            duplicates: Family::default(),
            connections: Gauge::default(),
            connections_total: Counter::default(),
            connections_closed: Family::default(),
            request_memory_used: Gauge::default(),
            panics: Family::default(),
            log_start: Family::default(),
            log_end: Family::default(),
            high_watermark: Family::default(),
            leader_epoch: Family::default(),
            producers: Family::default(),
            partitions: Gauge::default(),
            uncleanable_partitions: Gauge::default(),
            cleaner_failures: Gauge::default(),
            storage_background_errors: Gauge::default(),
            raft_alive: Gauge::default(),
            metadata_storage_stalled: Gauge::default(),
            log_dir_failing: Gauge::default(),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_applied: Gauge::default(),
            group_state: Family::default(),
            group_members: Family::default(),
            group_committed: Family::default(),
            group_lag: Family::default(),
            replication: ReplicationMetrics::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register("requests", "Kafka requests handled, by API", m.requests.clone());
            r.register(
                "request_errors",
                "Requests that failed as a whole, by API",
                m.request_errors.clone(),
            );
            r.register(
                "error_responses",
                "Error codes answered, by API and Kafka error name (each partition, group or \
                 resource with an error counts once)",
                m.error_responses.clone(),
            );
            r.register(
                "request_latency_seconds",
                "Request handling time, by API",
                m.request_latency.clone(),
            );
            r.register("bytes_in", "Record bytes appended, by topic", m.bytes_in.clone());
            r.register("bytes_out", "Record bytes fetched, by topic", m.bytes_out.clone());
            r.register("messages_in", "Records appended, by topic", m.messages_in.clone());
            r.register(
                "duplicate_batches",
                "Idempotent-producer retries answered with the original offsets, by topic",
                m.duplicates.clone(),
            );
            r.register("connections", "Open client connections", m.connections.clone());
            r.register(
                "connections_accepted",
                "Client connections accepted",
                m.connections_total.clone(),
            );
            r.register(
                "connections_closed",
                "Connections closed by the broker, by reason",
                m.connections_closed.clone(),
            );
            r.register(
                "request_memory_used_bytes",
                "Bytes of queued.max.request.bytes held by requests being read or handled",
                m.request_memory_used.clone(),
            );
            r.register("panics", "Broker tasks that panicked (a bug), by task", m.panics.clone());
            r.register(
                "raft_alive",
                "1 while the metadata quorum's raft core runs, 0 after a fatal error",
                m.raft_alive.clone(),
            );
            r.register(
                "metadata_storage_stalled",
                "1 while a metadata log or snapshot write fails and is retried (a full disk)",
                m.metadata_storage_stalled.clone(),
            );
            r.register(
                "log_dir_failing",
                "1 while the log directory fails writes (a full disk); the broker is not ready",
                m.log_dir_failing.clone(),
            );
            r.register(
                "uncleanable_partitions",
                "Partitions compaction skips because their batches cannot be read",
                m.uncleanable_partitions.clone(),
            );
            r.register(
                "storage_background_errors",
                "Background flushes, retention passes and checkpoint writes that failed since \
                 start-up (request-path storage errors: error_responses{error=\"KAFKA_STORAGE_ERROR\"})",
                m.storage_background_errors.clone(),
            );
            r.register(
                "cleaner_failures",
                "Compaction passes that failed since start-up",
                m.cleaner_failures.clone(),
            );
            r.register(
                "log_start_offset",
                "First offset of the partition log",
                m.log_start.clone(),
            );
            r.register(
                "log_end_offset",
                "Log end offset (LEO) of the partition",
                m.log_end.clone(),
            );
            r.register(
                "high_watermark",
                "High watermark of the partition",
                m.high_watermark.clone(),
            );
            r.register("leader_epoch", "Leader epoch of the partition", m.leader_epoch.clone());
            r.register(
                "producer_ids",
                "Idempotent producer ids with state in the partition",
                m.producers.clone(),
            );
            r.register("partitions", "Partitions hosted by this broker", m.partitions.clone());
            r.register("raft_term", "Current term of the metadata quorum", m.raft_term.clone());
            r.register(
                "raft_leader",
                "Node id of the metadata quorum leader (-1: none)",
                m.raft_leader.clone(),
            );
            r.register(
                "raft_applied_index",
                "Last metadata log index applied",
                m.raft_applied.clone(),
            );
            let rm = &m.replication;
            r.register(
                "partition_replicas",
                "Assigned replicas of the partition",
                rm.replicas.clone(),
            );
            r.register(
                "partition_isr_size",
                "In-sync replicas of the partition",
                rm.isr_size.clone(),
            );
            r.register(
                "partition_under_replicated",
                "1 on the leader while the ISR is smaller than the replica set",
                rm.under_replicated.clone(),
            );
            r.register(
                "partition_under_min_isr",
                "1 on the leader while the ISR is smaller than min.insync.replicas",
                rm.under_min_isr.clone(),
            );
            r.register(
                "partition_at_min_isr",
                "1 on the leader while the ISR is exactly min.insync.replicas",
                rm.at_min_isr.clone(),
            );
            r.register(
                "partition_follower_lag",
                "Messages a follower is behind the leader's log end offset (leader's view)",
                rm.follower_lag.clone(),
            );
            r.register(
                "leader_partitions",
                "Partitions led by this broker",
                rm.leader_partitions.clone(),
            );
            r.register(
                "under_replicated_partitions",
                "Partitions led by this broker whose ISR is smaller than the replica set",
                rm.under_replicated_partitions.clone(),
            );
            r.register(
                "under_min_isr_partitions",
                "Partitions led by this broker whose ISR is below min.insync.replicas",
                rm.under_min_isr_partitions.clone(),
            );
            r.register(
                "offline_partitions",
                "Partitions in the cluster without a leader, as this broker's metadata has them",
                rm.offline_partitions.clone(),
            );
            r.register(
                "reassigning_partitions",
                "Partitions in the cluster under reassignment, as this broker's metadata has them",
                rm.reassigning_partitions.clone(),
            );
            r.register(
                "isr_shrinks",
                "ISR shrinks of partitions led by this broker",
                rm.isr_shrinks.clone(),
            );
            r.register(
                "isr_expands",
                "ISR expansions of partitions led by this broker",
                rm.isr_expands.clone(),
            );
            r.register(
                "replication_throttle_limit_bytes",
                "Replication throttle in bytes/s by side (leader, follower); absent when unlimited",
                rm.throttle_limit.clone(),
            );
            r.register(
                "replication_throttled_rate_bytes",
                "Measured rate of throttled replication traffic in bytes/s, by side",
                rm.throttle_rate.clone(),
            );
            r.register(
                "consumer_group_state",
                "1 for the consumer group's current state, 0 for the others",
                m.group_state.clone(),
            );
            r.register(
                "consumer_group_members",
                "Members of the consumer group",
                m.group_members.clone(),
            );
            r.register(
                "consumer_group_committed_offset",
                "Offset committed by the consumer group",
                m.group_committed.clone(),
            );
            r.register(
                "consumer_group_lag",
                "High watermark minus the committed offset (0 when caught up)",
                m.group_lag.clone(),
            );
        }
        m
    }

    /// Records one handled request.
    pub fn observe_request(&self, api: &'static str, seconds: f64) {
        let labels = ApiLabels { api };
        self.requests.get_or_create(&labels).inc();
        self.request_latency.get_or_create(&labels).observe(seconds);
    }

    /// Refreshes the consumer group gauges from the coordinator's groups; lag is computed
    /// against the high watermark of partitions hosted here (the leader's view).
    pub fn set_groups(&self, groups: &[crate::group::GroupSnapshot], replicas: &ReplicaManager) {
        self.group_state.clear();
        self.group_members.clear();
        self.group_committed.clear();
        self.group_lag.clear();
        for g in groups {
            for state in crate::group::GroupState::ALL {
                let labels = GroupStateLabels { group: g.group_id.clone(), state: state.name() };
                self.group_state.get_or_create(&labels).set((state == g.state) as i64);
            }
            self.group_members
                .get_or_create(&GroupLabels { group: g.group_id.clone() })
                .set(g.members as i64);
            for (topic, partition, offset) in &g.offsets {
                let labels = GroupPartitionLabels {
                    group: g.group_id.clone(),
                    topic: topic.clone(),
                    partition: partition.to_string(),
                };
                self.group_committed.get_or_create(&labels).set(*offset);
                let tp = crate::log::TopicPartition::new(topic.clone(), *partition);
                if let Some(p) = replicas.get(&tp) {
                    let hw = p.log.lock().unwrap_or_else(|e| e.into_inner()).high_watermark();
                    self.group_lag.get_or_create(&labels).set((hw - offset).max(0));
                }
            }
        }
    }

    /// Renders the Prometheus text exposition, refreshing the per-partition gauges first.
    /// Drops a deleted topic's series (Kafka removes its topic metrics on deletion too).
    pub fn forget_topic(&self, topic: &str) {
        let labels = TopicLabels { topic: topic.to_string() };
        for family in [&self.bytes_in, &self.bytes_out, &self.messages_in, &self.duplicates] {
            family.remove(&labels);
        }
    }

    /// Refreshes the replication gauges from the hosted partitions and the cluster image.
    fn set_replication(&self, replicas: &ReplicaManager, image: &crate::metadata::ClusterImage) {
        let rm = &self.replication;
        for family in
            [&rm.replicas, &rm.isr_size, &rm.under_replicated, &rm.under_min_isr, &rm.at_min_isr]
        {
            family.clear();
        }
        rm.follower_lag.clear();
        let (mut led, mut under, mut under_min) = (0, 0, 0);
        let node = replicas.node_id();
        for p in replicas.all() {
            let labels = PartitionLabels {
                topic: p.tp.topic.clone(),
                partition: p.tp.partition.to_string(),
            };
            let state = p.state();
            // During a reassignment the replicas being removed do not count (as Kafka).
            let assigned = state.replicas.len() - state.removing_replicas.len();
            let (leo, min_isr) = {
                let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
                let min = log.config().min_insync_replicas.min(assigned as i32);
                (log.log_end_offset(), min as usize)
            };
            let leads = state.leader == node;
            let isr = state.isr.iter().filter(|r| !state.removing_replicas.contains(r)).count();
            rm.replicas.get_or_create(&labels).set(assigned as i64);
            rm.isr_size.get_or_create(&labels).set(isr as i64);
            let is_under = leads && isr < assigned;
            let is_under_min = leads && isr < min_isr;
            rm.under_replicated.get_or_create(&labels).set(i64::from(is_under));
            rm.under_min_isr.get_or_create(&labels).set(i64::from(is_under_min));
            rm.at_min_isr.get_or_create(&labels).set(i64::from(leads && isr == min_isr));
            if !leads {
                continue;
            }
            led += 1;
            under += i64::from(is_under);
            under_min += i64::from(is_under_min);
            let followers = p.followers();
            for r in state.replicas.iter().filter(|r| **r != node) {
                let lag = leo - followers.get(r).map_or(0, |f| f.log_end_offset);
                let labels = ReplicaLabels {
                    topic: labels.topic.clone(),
                    partition: labels.partition.clone(),
                    replica: r.to_string(),
                };
                rm.follower_lag.get_or_create(&labels).set(lag.max(0));
            }
        }
        rm.leader_partitions.set(led);
        rm.under_replicated_partitions.set(under);
        rm.under_min_isr_partitions.set(under_min);
        // Cluster-wide counts come from the active controller only (as Kafka's
        // OfflinePartitionsCount), so a sum over brokers counts each partition once.
        let all = image.topics.values().flat_map(|t| t.partitions.values());
        let (offline, moving) = if image.controller_id == node {
            all.fold((0, 0), |(o, m), p| {
                (o + i64::from(p.leader < 0), m + i64::from(p.reassigning()))
            })
        } else {
            (0, 0)
        };
        rm.offline_partitions.set(offline);
        rm.reassigning_partitions.set(moving);
        let (shrinks, expands) = replicas.isr_changes();
        rm.isr_shrinks.inc_by(shrinks.saturating_sub(rm.isr_shrinks.get()));
        rm.isr_expands.inc_by(expands.saturating_sub(rm.isr_expands.get()));
        let now = crate::replica::now_ms();
        for (side, quota) in
            [("leader", &replicas.leader_quota), ("follower", &replicas.follower_quota)]
        {
            let labels = SideLabels { side };
            match quota.limit() {
                Some(limit) => {
                    rm.throttle_limit.get_or_create(&labels).set(limit);
                    rm.throttle_rate.get_or_create(&labels).set(quota.rate(now));
                }
                None => {
                    rm.throttle_limit.remove(&labels);
                    rm.throttle_rate.remove(&labels);
                }
            }
        }
    }

    pub fn render(
        &self,
        replicas: &ReplicaManager,
        image: &crate::metadata::ClusterImage,
        raft: (u64, Option<u64>, Option<u64>),
    ) -> String {
        // One scrape at a time: the refresh below must not interleave with another's.
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        self.set_replication(replicas, image);
        self.log_start.clear();
        self.log_end.clear();
        self.high_watermark.clear();
        self.leader_epoch.clear();
        self.producers.clear();
        let parts = replicas.all();
        self.partitions.set(parts.len() as i64);
        for p in parts {
            let labels = PartitionLabels {
                topic: p.tp.topic.clone(),
                partition: p.tp.partition.to_string(),
            };
            let (start, end, hw, producers) = {
                let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
                let producers = log.producer_count() as i64;
                (log.log_start_offset(), log.log_end_offset(), log.high_watermark(), producers)
            };
            self.producers.get_or_create(&labels).set(producers);
            self.log_start.get_or_create(&labels).set(start);
            self.log_end.get_or_create(&labels).set(end);
            self.high_watermark.get_or_create(&labels).set(hw);
            self.leader_epoch.get_or_create(&labels).set(p.state().leader_epoch as i64);
        }
        self.uncleanable_partitions.set(replicas.logs().uncleanable_partitions() as i64);
        self.cleaner_failures.set(replicas.logs().cleaner_failures());
        self.storage_background_errors.set(replicas.logs().background_errors());
        self.raft_term.set(raft.0 as i64);
        self.raft_leader.set(raft.1.map(|l| l as i64).unwrap_or(-1));
        self.raft_applied.set(raft.2.unwrap_or(0));
        let mut out = String::new();
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
