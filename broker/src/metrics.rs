//! Prometheus metrics of the broker, rendered as text on the admin HTTP `/metrics`; every
//! name, unit and label is listed in `docs/metrics.md`.
//!
//! Request counts and latency histograms per API, bytes in/out per topic, connection and
//! malformed-frame counters, purgatory sizes and log flush latency are updated as requests
//! flow. Per-partition state (offsets, ISR, size), disk use, the metadata quorum and the
//! consumer groups (state, members, rebalances, committed offset, lag in messages and in
//! seconds) are read at scrape time, so they are never stale and cost nothing between scrapes.
//!
//! Cardinality: per-partition series (and per group-partition ones) are exported while there
//! are at most `metrics.partition.series.max` of them (default 10,000); above, only the
//! per-topic aggregates are, and `sluice_metrics_partition_series_limited` says so. A broker
//! with 100,000 partitions thus exports a few series per topic instead of about 1.5 million.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text::encode, DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::log::TopicPartition;
use crate::replica::{Partition, ReplicaManager};

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

/// 50 µs .. ~26 s.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 20))
}

/// Labels of a per-operation metric (the purgatories: `produce`, `fetch`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

/// Labels of a per-directory metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirLabels {
    pub dir: String,
}

/// Labels of the build info.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: &'static str,
}

/// Labels of a per-group, per-topic metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupTopicLabels {
    pub group: String,
    pub topic: String,
}

/// A request waiting in a purgatory (an acks=all produce for its ISR, a fetch for `min_bytes`),
/// counted in `sluice_purgatory_size` for as long as it lives.
#[derive(Debug)]
pub struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What a scrape reads: the broker's parts (the metrics sit below the server that owns them).
#[derive(Debug)]
pub struct Scrape<'a> {
    pub replicas: &'a ReplicaManager,
    pub metadata: &'a crate::metadata::MetadataNode,
    pub groups: &'a crate::group::GroupCoordinator,
    /// High watermarks of partitions not hosted here (`server::lag`).
    pub remote_hw: HashMap<TopicPartition, i64>,
    pub data_dir: &'a Path,
    /// Fetch sessions cached, the partitions in them, and sessions evicted so far.
    pub fetch_sessions: (usize, usize, u64),
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
    purgatory: Family<OperationLabels, Gauge>,
    /// Time of each log flush (fsync of the segments with unflushed data).
    log_flush_latency: Histogram,
    log_dir_size: Family<DirLabels, Gauge>,
    log_dir_free: Family<DirLabels, Gauge>,
    log_dir_capacity: Family<DirLabels, Gauge>,
    topic_partitions: Family<TopicLabels, Gauge>,
    topic_size: Family<TopicLabels, Gauge>,
    topic_under_replicated: Family<TopicLabels, Gauge>,
    series_limited: Gauge,
    raft_commit: Gauge<u64, AtomicU64>,
    active_controller: Gauge,
    fenced_brokers: Gauge,
    registered_brokers: Gauge,
    fetch_sessions: Gauge,
    fetch_session_partitions: Gauge,
    fetch_session_evictions: Counter,
    group_rebalances: Family<GroupLabels, Counter>,
    group_lag_seconds: Family<GroupPartitionLabels, Gauge<f64, AtomicU64>>,
    group_topic_lag: Family<GroupTopicLabels, Gauge>,
    process: ProcessMetrics,
    /// `metrics.partition.series.max`.
    series_max: usize,
    /// The size of the last rendering, to allocate the next at once.
    last_size: AtomicUsize,
    /// The per-partition gauges, encoded from a snapshot of each scrape.
    partition_gauges: Arc<PartitionGauges>,
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

impl Metrics {
    /// The broker's metrics; per-partition series while there are at most `series_max`;
    /// `log_flush_latency` is the log manager's.
    pub fn new(series_max: usize, log_flush_latency: Histogram) -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
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
            purgatory: Family::default(),
            log_flush_latency,
            log_dir_size: Family::default(),
            log_dir_free: Family::default(),
            log_dir_capacity: Family::default(),
            topic_partitions: Family::default(),
            topic_size: Family::default(),
            topic_under_replicated: Family::default(),
            series_limited: Gauge::default(),
            raft_commit: Gauge::default(),
            active_controller: Gauge::default(),
            fenced_brokers: Gauge::default(),
            registered_brokers: Gauge::default(),
            fetch_sessions: Gauge::default(),
            fetch_session_partitions: Gauge::default(),
            fetch_session_evictions: Counter::default(),
            group_rebalances: Family::default(),
            group_lag_seconds: Family::default(),
            group_topic_lag: Family::default(),
            process: ProcessMetrics::default(),
            series_max,
            last_size: AtomicUsize::new(0),
            partition_gauges: Arc::default(),
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
            let mut root = m.registry.lock().unwrap_or_else(|e| e.into_inner());
            m.process.register(&mut root);
            let r = root.sub_registry_with_prefix("sluice");
            let build = Family::<VersionLabels, Gauge>::default();
            build.get_or_create(&VersionLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
            r.register("build_info", "1, labelled with the broker's version", build);
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
                "purgatory_size",
                "Requests waiting: acks=all produces for their ISR, fetches for min.bytes",
                m.purgatory.clone(),
            );
            r.register(
                "log_flush_latency_seconds",
                "Time of one log flush (fsync of a partition's unflushed segments)",
                m.log_flush_latency.clone(),
            );
            r.register(
                "log_dir_size_bytes",
                "Bytes of partition logs in the log directory",
                m.log_dir_size.clone(),
            );
            r.register(
                "log_dir_free_bytes",
                "Bytes available to the broker on the log directory's volume",
                m.log_dir_free.clone(),
            );
            r.register(
                "log_dir_capacity_bytes",
                "Size of the log directory's volume",
                m.log_dir_capacity.clone(),
            );
            r.register_collector(Box::new(m.partition_gauges.clone()));
            r.register(
                "topic_partitions",
                "Partitions of the topic hosted by this broker",
                m.topic_partitions.clone(),
            );
            r.register(
                "topic_size_bytes",
                "Bytes on disk of the topic's partitions hosted by this broker",
                m.topic_size.clone(),
            );
            r.register(
                "topic_under_replicated_partitions",
                "Partitions of the topic led by this broker whose ISR is smaller than the replica set",
                m.topic_under_replicated.clone(),
            );
            r.register(
                "metrics_partition_series_limited",
                "1 while per-partition series are left out (more than metrics.partition.series.max)",
                m.series_limited.clone(),
            );
            r.register(
                "raft_commit_index",
                "Last metadata log index known committed",
                m.raft_commit.clone(),
            );
            r.register(
                "active_controller",
                "1 on the active controller (the metadata quorum's leader), 0 elsewhere",
                m.active_controller.clone(),
            );
            r.register(
                "fenced_brokers",
                "Registered brokers that are fenced, on the active controller (0 elsewhere)",
                m.fenced_brokers.clone(),
            );
            r.register(
                "registered_brokers",
                "Registered brokers, fenced or not, on the active controller (0 elsewhere)",
                m.registered_brokers.clone(),
            );
            r.register(
                "fetch_sessions",
                "Incremental fetch sessions cached (KIP-227)",
                m.fetch_sessions.clone(),
            );
            r.register(
                "fetch_session_partitions",
                "Partitions in the cached fetch sessions",
                m.fetch_session_partitions.clone(),
            );
            r.register(
                "fetch_session_evictions",
                "Fetch sessions evicted to make room for new ones",
                m.fetch_session_evictions.clone(),
            );
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
            r.register(
                "consumer_group_lag_seconds",
                "Age of the first record the group has not consumed (0 when caught up)",
                m.group_lag_seconds.clone(),
            );
            r.register(
                "consumer_group_topic_lag",
                "Consumer group lag summed over the topic's partitions",
                m.group_topic_lag.clone(),
            );
            r.register(
                "consumer_group_rebalances",
                "Rebalances of the consumer group (its generation id)",
                m.group_rebalances.clone(),
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

    /// Counts a request in the `operation` purgatory until the returned guard drops.
    pub fn waiting(&self, operation: &'static str) -> Waiting {
        let gauge = self.purgatory.get_or_create(&OperationLabels { operation }).clone();
        gauge.inc();
        Waiting(gauge)
    }

    /// Drops a deleted topic's series (Kafka removes its topic metrics on deletion too).
    pub fn forget_topic(&self, topic: &str) {
        let labels = TopicLabels { topic: topic.to_string() };
        for family in [&self.bytes_in, &self.bytes_out, &self.messages_in, &self.duplicates] {
            family.remove(&labels);
        }
    }

    /// Renders the Prometheus text exposition, refreshing every scrape-time gauge first.
    pub fn render(&self, b: Scrape<'_>) -> String {
        // One scrape at a time: the refresh below must not interleave with another's.
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let image = b.metadata.image();
        let parts = b.replicas.all();
        let per_partition = parts.len() <= self.series_max;
        self.series_limited.set(i64::from(!per_partition));
        self.set_partitions(&parts, b.replicas, &image, per_partition, b.data_dir);
        self.set_groups(&b.groups.snapshots(), b.replicas, &b.remote_hw);
        let logs = b.replicas.logs();
        self.uncleanable_partitions.set(logs.uncleanable_partitions() as i64);
        self.cleaner_failures.set(logs.cleaner_failures());
        self.storage_background_errors.set(logs.background_errors());
        self.raft_alive.set(i64::from(b.metadata.raft_alive()));
        self.metadata_storage_stalled.set(i64::from(b.metadata.storage_stalled()));
        self.log_dir_failing.set(i64::from(logs.dir_failing().is_some()));
        let (term, leader, applied) = b.metadata.raft_metrics();
        self.raft_term.set(term as i64);
        self.raft_leader.set(leader.map(|l| l as i64).unwrap_or(-1));
        self.raft_applied.set(applied.unwrap_or(0));
        self.raft_commit.set(b.metadata.raft_commit_index().unwrap_or(0));
        // Kafka's ActiveControllerCount, FencedBrokerCount and ActiveBrokerCount: non-zero on
        // the active controller only, so a sum over nodes counts each once.
        let active = image.controller_id == b.replicas.node_id();
        self.active_controller.set(i64::from(active));
        let (registered, fenced) = if active {
            (image.brokers.len(), image.brokers.values().filter(|b| b.fenced).count())
        } else {
            (0, 0)
        };
        self.registered_brokers.set(registered as i64);
        self.fenced_brokers.set(fenced as i64);
        let (sessions, session_partitions, evictions) = b.fetch_sessions;
        self.fetch_sessions.set(sessions as i64);
        self.fetch_session_partitions.set(session_partitions as i64);
        let counted = self.fetch_session_evictions.get();
        self.fetch_session_evictions.inc_by(evictions.saturating_sub(counted));
        self.process.refresh();
        let mut out = String::with_capacity(self.last_size.load(Ordering::Relaxed) + 4096);
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        self.partition_gauges.set(Vec::new());
        self.partition_gauges.set_cluster(None);
        self.last_size.store(out.len(), Ordering::Relaxed);
        out
    }

    /// Refreshes the consumer group gauges from the coordinator's groups. Lag is the high
    /// watermark minus the committed offset: the HW of a replica hosted here, else the one the
    /// partition's leader last answered (`remote`, refreshed by `server::lag`). Lag in seconds
    /// is the age of the first record not consumed, read from its batch header where a replica
    /// is hosted here.
    fn set_groups(
        &self,
        groups: &[crate::group::GroupSnapshot],
        replicas: &ReplicaManager,
        remote: &HashMap<TopicPartition, i64>,
    ) {
        self.group_state.clear();
        self.group_members.clear();
        self.group_rebalances.clear();
        self.group_committed.clear();
        self.group_lag.clear();
        self.group_lag_seconds.clear();
        self.group_topic_lag.clear();
        let series: usize = groups.iter().map(|g| g.offsets.len()).sum();
        let per_partition = series <= self.series_max;
        let now = crate::replica::now_ms();
        for g in groups {
            for state in crate::group::GroupState::ALL {
                let labels = GroupStateLabels { group: g.group_id.clone(), state: state.name() };
                self.group_state.get_or_create(&labels).set((state == g.state) as i64);
            }
            let group = GroupLabels { group: g.group_id.clone() };
            self.group_members.get_or_create(&group).set(g.members as i64);
            self.group_rebalances.get_or_create(&group).inc_by(g.generation.max(0) as u64);
            for l in crate::server::lag::group_lag(replicas, remote, &g.offsets) {
                // How old the first record not yet consumed is, where it is hosted here.
                let age = match (l.hw, replicas.get(&l.tp)) {
                    (Some(hw), Some(p)) if l.committed < hw => {
                        let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
                        log.timestamp_at(l.committed).map(|ts| (now - ts).max(0) as f64 / 1000.0)
                    }
                    (Some(_), Some(_)) => Some(0.0),
                    _ => None,
                };
                let lag = l.lag();
                if let Some(lag) = lag {
                    let labels =
                        GroupTopicLabels { group: g.group_id.clone(), topic: l.tp.topic.clone() };
                    self.group_topic_lag.get_or_create(&labels).inc_by(lag);
                }
                if !per_partition {
                    continue;
                }
                let labels = GroupPartitionLabels {
                    group: g.group_id.clone(),
                    topic: l.tp.topic.clone(),
                    partition: l.tp.partition.to_string(),
                };
                self.group_committed.get_or_create(&labels).set(l.committed);
                if let Some(lag) = lag {
                    self.group_lag.get_or_create(&labels).set(lag);
                }
                if let Some(age) = age {
                    self.group_lag_seconds.get_or_create(&labels).set(age);
                }
            }
        }
    }

    /// The hosted partitions' gauges (through [`PartitionGauges`]), the per-topic and
    /// per-broker counts, the log directory's use, the controller's cluster-wide counts and
    /// the replication throttles: one pass over the partitions, one lock of each log.
    fn set_partitions(
        &self,
        parts: &[Arc<Partition>],
        replicas: &ReplicaManager,
        image: &Arc<crate::metadata::ClusterImage>,
        per_partition: bool,
        dir: &Path,
    ) {
        let rm = &self.replication;
        rm.follower_lag.clear();
        self.topic_partitions.clear();
        self.topic_size.clear();
        self.topic_under_replicated.clear();
        self.partitions.set(parts.len() as i64);
        let node = replicas.node_id();
        let (mut led, mut under, mut under_min, mut total) = (0, 0, 0, 0u64);
        let mut rows = Vec::with_capacity(if per_partition { parts.len() } else { 0 });
        // The partitions come sorted: each topic's sums are kept until the next topic starts.
        let mut topic: Option<(&str, i64, i64, i64)> = None;
        let flush_topic = |t: Option<(&str, i64, i64, i64)>| {
            if let Some((name, count, size, under)) = t {
                let labels = TopicLabels { topic: name.to_string() };
                // The duplicates of a hosted topic are on /metrics at zero before the first.
                let _ = self.duplicates.get_or_create(&labels);
                self.topic_partitions.get_or_create(&labels).set(count);
                self.topic_size.get_or_create(&labels).set(size);
                self.topic_under_replicated.get_or_create(&labels).set(under);
            }
        };
        for p in parts {
            let state = p.state();
            // During a reassignment the replicas being removed do not count (as Kafka).
            let assigned = state.replicas.len() - state.removing_replicas.len();
            let (start, leo, hw, producers, size, min_isr) = {
                let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
                let min = log.config().min_insync_replicas.min(assigned as i32) as usize;
                let producers = log.producer_count() as i64;
                let (start, leo, hw) =
                    (log.log_start_offset(), log.log_end_offset(), log.high_watermark());
                (start, leo, hw, producers, log.size_bytes(), min)
            };
            let leads = state.leader == node;
            let isr = state.isr.iter().filter(|r| !state.removing_replicas.contains(r)).count();
            let is_under = leads && isr < assigned;
            let is_under_min = leads && isr < min_isr;
            total += size;
            if topic.is_none_or(|t| t.0 != p.tp.topic) {
                flush_topic(topic.take());
                topic = Some((p.tp.topic.as_str(), 0, 0, 0));
            }
            if let Some(t) = topic.as_mut() {
                t.1 += 1;
                t.2 += size as i64;
                t.3 += i64::from(is_under);
            }
            if leads {
                led += 1;
                under += i64::from(is_under);
                under_min += i64::from(is_under_min);
            }
            if !per_partition {
                continue;
            }
            rows.push(PartitionRow {
                partition: p.clone(),
                values: [
                    start,
                    leo,
                    hw,
                    i64::from(state.leader_epoch),
                    producers,
                    size as i64,
                    assigned as i64,
                    isr as i64,
                    i64::from(is_under),
                    i64::from(is_under_min),
                    i64::from(leads && isr == min_isr),
                ],
            });
            if !leads {
                continue;
            }
            let followers = p.followers();
            for r in state.replicas.iter().filter(|r| **r != node) {
                let lag = leo - followers.get(r).map_or(0, |f| f.log_end_offset);
                let labels = ReplicaLabels {
                    topic: p.tp.topic.clone(),
                    partition: p.tp.partition.to_string(),
                    replica: r.to_string(),
                };
                rm.follower_lag.get_or_create(&labels).set(lag.max(0));
            }
        }
        flush_topic(topic);
        self.partition_gauges.set(rows);
        rm.leader_partitions.set(led);
        rm.under_replicated_partitions.set(under);
        rm.under_min_isr_partitions.set(under_min);
        let labels = DirLabels { dir: crate::fsutil::absolute(dir).display().to_string() };
        let (capacity, free) = crate::fsutil::volume_bytes(dir);
        self.log_dir_size.get_or_create(&labels).set(total as i64);
        self.log_dir_free.get_or_create(&labels).set(free);
        self.log_dir_capacity.get_or_create(&labels).set(capacity);
        // Cluster-wide counts come from the active controller only (as Kafka's
        // OfflinePartitionsCount), so a sum over brokers counts each partition once.
        let active = image.controller_id == node;
        let counts = if active { image.partition_counts() } else { Default::default() };
        let (offline, moving, all) =
            (counts.offline as i64, counts.reassigning as i64, counts.partitions);
        // Per partition of the cluster, on the controller, within the series limit.
        let cluster = (active && all <= self.series_max).then(|| image.clone());
        self.partition_gauges.set_cluster(cluster);
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
}

/// The per-partition gauges, named and explained, in the order of [`PartitionRow::values`].
const PARTITION_GAUGES: [(&str, &str); 11] = [
    ("log_start_offset", "First offset of the partition log"),
    ("log_end_offset", "Log end offset (LEO) of the partition"),
    ("high_watermark", "High watermark of the partition"),
    ("leader_epoch", "Leader epoch of the partition"),
    ("producer_ids", "Idempotent producer ids with state in the partition"),
    ("log_size_bytes", "Bytes on disk of the partition log"),
    ("partition_replicas", "Assigned replicas of the partition"),
    ("partition_isr_size", "In-sync replicas of the partition"),
    ("partition_under_replicated", "1 on the leader while the ISR is smaller than the replica set"),
    (
        "partition_under_min_isr",
        "1 on the leader while the ISR is smaller than min.insync.replicas",
    ),
    ("partition_at_min_isr", "1 on the leader while the ISR is exactly min.insync.replicas"),
];

/// One hosted partition's gauge values in one scrape.
#[derive(Debug)]
struct PartitionRow {
    partition: Arc<Partition>,
    values: [i64; PARTITION_GAUGES.len()],
}

/// The per-partition gauges of a scrape, written straight from the partitions' values while
/// the scrape encodes, instead of a map of label sets per metric filled and cleared each time
/// (docs/metrics.md, "Cost of a scrape").
/// `sluice_partition_offline` comes from the cluster image the active controller has.
#[derive(Debug, Default)]
struct PartitionGauges {
    rows: Mutex<Vec<PartitionRow>>,
    cluster: Mutex<Option<Arc<crate::metadata::ClusterImage>>>,
}

impl PartitionGauges {
    fn set(&self, rows: Vec<PartitionRow>) {
        *self.rows.lock().unwrap_or_else(|e| e.into_inner()) = rows;
    }

    fn set_cluster(&self, image: Option<Arc<crate::metadata::ClusterImage>>) {
        *self.cluster.lock().unwrap_or_else(|e| e.into_inner()) = image;
    }
}

impl Collector for PartitionGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (name, help)) in PARTITION_GAUGES.iter().enumerate() {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for row in rows.iter() {
                let tp = &row.partition.tp;
                let labels = ([("topic", tp.topic.as_str())], [("partition", tp.partition)]);
                metric.encode_family(&labels)?.encode_gauge(&row.values[i])?;
            }
        }
        let cluster = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
        let help = "1 for a partition without a leader, 0 for one with; on the active controller";
        let mut metric =
            encoder.encode_descriptor("partition_offline", help, None, MetricType::Gauge)?;
        for (topic, t) in cluster.iter().flat_map(|image| &image.topics) {
            for (partition, p) in &t.partitions {
                let labels = ([("topic", topic.as_str())], [("partition", *partition)]);
                metric.encode_family(&labels)?.encode_gauge(&i64::from(p.leader < 0))?;
            }
        }
        Ok(())
    }
}

/// The process's own resources under their standard names (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, ...), as other exporters name them, so that dashboards
/// for any process work. Read from `/proc` at scrape time (Linux).
#[derive(Debug)]
pub struct ProcessMetrics {
    cpu: Counter<f64, AtomicU64>,
    rss: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge<f64, AtomicU64>,
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let p = ProcessMetrics {
            cpu: Counter::default(),
            rss: Gauge::default(),
            open_fds: Gauge::default(),
            max_fds: Gauge::default(),
            start_time: Gauge::default(),
        };
        p.start_time.set(start);
        p
    }
}

impl ProcessMetrics {
    /// Registers the `process_*` metrics in `r` (which must have no prefix).
    pub fn register(&self, r: &mut Registry) {
        let p = r.sub_registry_with_prefix("process");
        p.register("cpu_seconds", "User and system CPU time of the process", self.cpu.clone());
        p.register("resident_memory_bytes", "Resident memory of the process", self.rss.clone());
        p.register("open_fds", "Open file descriptors", self.open_fds.clone());
        p.register("max_fds", "Limit of open file descriptors", self.max_fds.clone());
        p.register(
            "start_time_seconds",
            "When the process's metrics started, in seconds since the Unix epoch",
            self.start_time.clone(),
        );
    }

    /// Reads the process's figures now.
    pub fn refresh(&self) {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let cpu = t.tv_sec as f64 + t.tv_nsec as f64 / 1e9;
        let delta = cpu - self.cpu.get();
        if delta > 0.0 {
            self.cpu.inc_by(delta);
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok());
        if let Some(kib) = rss_kib {
            self.rss.set(kib * 1024);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as i64);
        }
        if let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
            self.max_fds.set(limit as i64);
        }
    }
}
