//! The group coordinator: classic consumer groups and committed offsets, stored in the
//! internal compacted topic `__consumer_offsets`.
//!
//! # Design
//!
//! - **Placement.** Group `g` belongs to partition `abs(javaHashCode(g)) % P` of
//!   `__consumer_offsets` (`P` = the topic's partition count, `offsets.topic.num.partitions`
//!   until it exists), and its coordinator is that partition's leader — the same rule as Kafka,
//!   so Kafka tooling and clients agree on it. The topic is created on demand by the first
//!   FindCoordinator (or Metadata request naming it), compacted, with 100 MiB segments.
//! - **Shards.** Each `__consumer_offsets` partition this broker leads is a shard with its own
//!   lock holding its groups, like Kafka's per-partition coordinator. A shard is loaded from
//!   its partition (log start to HW, [`offsets`]) when this broker becomes its leader — at
//!   start-up for every hosted partition — and answers COORDINATOR_LOAD_IN_PROGRESS until then.
//!   Shards of partitions led elsewhere answer NOT_COORDINATOR.
//! - **State machine** ([`coordinator::Group`]): Kafka's classic protocol — Empty,
//!   PreparingRebalance, CompletingRebalance, Stable, Dead; KIP-394 member ids; static
//!   membership (KIP-345, with KIP-814's skip-assignment); generations; session, rebalance,
//!   sync and new-member timeouts; `group.initial.rebalance.delay.ms`; protocol selection by
//!   vote. The broker never looks inside assignments: range, round-robin, sticky and
//!   cooperative-sticky are all the clients' business, carried byte for byte.
//! - **Durability.** Group metadata (after the leader's SyncGroup, and when a group becomes
//!   empty) and offset commits are records with Kafka's key/value layouts ([`codec`]) appended
//!   as leader through the replica layer before the request is answered; DeleteGroups,
//!   OffsetDelete and offset expiry write tombstones.
//! - **Timers.** Deadlines live in the groups; one tokio task sleeps until the earliest one in
//!   a queue of `(deadline, partition, group)` entries and runs the group's timeouts. The same
//!   task expires offsets every `offsets.retention.check.interval.ms`.
//! - **Errors.** Everything here fails with [`GroupError`]; `api/group.rs` maps it to Kafka's
//!   codes.

pub mod codec;
pub mod coordinator;
pub mod offsets;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::log::TopicPartition;
use crate::metadata::{ClusterImage, MetadataError, MetadataNode, NewTopic};
use crate::replica::{ReplicaError, ReplicaManager};
use coordinator::{Group, Now};
use offsets::PartitionWriter;

/// How long a commit waits for the in-sync replicas of its `__consumer_offsets` partition
/// (Kafka's `offsets.commit.timeout.ms`, 5 s).
const REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Settings of the group coordinator, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions` (50).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (3), capped at the number of live brokers when the
    /// topic is created, so a one-node cluster gets a working coordinator.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes` (100 MiB).
    pub offsets_topic_segment_bytes: u64,
    /// `group.initial.rebalance.delay.ms` (3 s).
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` (6 s).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (30 min).
    pub max_session_timeout_ms: i32,
    /// `group.max.size` (unbounded).
    pub max_size: usize,
    /// `offsets.retention.minutes` (7 days), in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (10 min).
    pub offsets_retention_check_interval: Duration,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 104_857_600,
            initial_rebalance_delay: Duration::from_millis(3000),
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval: Duration::from_millis(600_000),
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// The Kafka property names [`GroupConfig::set`] understands.
pub const GROUP_CONFIG_KEYS: &[&str] = &[
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "offsets.topic.segment.bytes",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offset.metadata.max.bytes",
];

fn parse_at_least<T>(key: &str, value: &str, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let v: T = value.trim().parse().map_err(|_| format!("invalid value '{value}' for {key}"))?;
    if v < min {
        return Err(format!("{key} must be at least {min}, not {v}"));
    }
    Ok(v)
}

impl GroupConfig {
    /// Applies one Kafka-named property (one of [`GROUP_CONFIG_KEYS`]).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "offsets.topic.num.partitions" => {
                self.offsets_topic_num_partitions = parse_at_least(key, value, 1)?
            }
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = parse_at_least(key, value, 1)?
            }
            "offsets.topic.segment.bytes" => {
                self.offsets_topic_segment_bytes = parse_at_least(key, value, 14)?
            }
            "group.initial.rebalance.delay.ms" => {
                self.initial_rebalance_delay = Duration::from_millis(parse_at_least(key, value, 0)?)
            }
            "group.min.session.timeout.ms" => {
                self.min_session_timeout_ms = parse_at_least(key, value, 0)?
            }
            "group.max.session.timeout.ms" => {
                self.max_session_timeout_ms = parse_at_least(key, value, 0)?
            }
            "group.max.size" => self.max_size = parse_at_least(key, value, 1)?,
            "offsets.retention.minutes" => {
                let minutes: i64 = parse_at_least(key, value, 1)?;
                self.offsets_retention_ms = minutes.saturating_mul(60_000);
            }
            "offsets.retention.check.interval.ms" => {
                self.offsets_retention_check_interval =
                    Duration::from_millis(parse_at_least(key, value, 1)?)
            }
            "offset.metadata.max.bytes" => {
                self.offset_metadata_max_bytes = parse_at_least(key, value, 0)?
            }
            _ => return Err(format!("unknown group coordinator setting {key}")),
        }
        self.validate()
    }

    /// Cross-setting rules.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return Err(format!(
                "group.min.session.timeout.ms {} is above group.max.session.timeout.ms {}",
                self.min_session_timeout_ms, self.max_session_timeout_ms
            ));
        }
        Ok(())
    }

    /// The settings as Kafka property names and values.
    pub fn to_props(&self) -> Vec<(&'static str, String)> {
        vec![
            ("offsets.topic.num.partitions", self.offsets_topic_num_partitions.to_string()),
            ("offsets.topic.replication.factor", self.offsets_topic_replication_factor.to_string()),
            ("offsets.topic.segment.bytes", self.offsets_topic_segment_bytes.to_string()),
            (
                "group.initial.rebalance.delay.ms",
                self.initial_rebalance_delay.as_millis().to_string(),
            ),
            ("group.min.session.timeout.ms", self.min_session_timeout_ms.to_string()),
            ("group.max.session.timeout.ms", self.max_session_timeout_ms.to_string()),
            ("group.max.size", self.max_size.to_string()),
            ("offsets.retention.minutes", (self.offsets_retention_ms / 60_000).to_string()),
            (
                "offsets.retention.check.interval.ms",
                self.offsets_retention_check_interval.as_millis().to_string(),
            ),
            ("offset.metadata.max.bytes", self.offset_metadata_max_bytes.to_string()),
        ]
    }
}

/// Kafka's classic group states, named as Kafka names them on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name used in DescribeGroups, ListGroups and metrics.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Every state, for metrics that show each.
    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];
}

/// How a write to `__consumer_offsets` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFailure {
    /// The partition is not available (no ISR quorum, not hosted).
    Unavailable,
    /// This broker no longer leads the partition, or its log is unusable.
    NotLeader,
    /// The records are larger than the topic accepts.
    TooLarge,
    /// Anything else.
    Other,
}

/// Why a group operation failed; `api/group.rs` turns each into Kafka's error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the group id is empty")]
    InvalidGroupId,
    #[error("this broker is not the coordinator of the group")]
    NotCoordinator,
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the group coordinator is loading the group's partition")]
    CoordinatorLoadInProgress,
    #[error("session timeout {0} ms is outside [group.min.session.timeout.ms, group.max.session.timeout.ms]")]
    InvalidSessionTimeout(i32),
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    /// KIP-394: join again with this member id.
    #[error("join again with member id {0}")]
    MemberIdRequired(String),
    #[error("another member with the same group.instance.id replaced this one")]
    FencedInstanceId,
    #[error("the generation is not the group's current generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the group has reached group.max.size members")]
    GroupMaxSizeReached,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group has members")]
    NonEmptyGroup,
    #[error("the group's members subscribe to this topic")]
    GroupSubscribedToTopic,
    #[error("the offset metadata is larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("writing to __consumer_offsets failed: {1}")]
    Storage(StorageFailure, String),
}

/// A JoinGroup, in domain terms.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    /// Kafka's form: `/` and the address.
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// `(name, metadata)` in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join is answered MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining a stable group is told to skip assignment.
    pub supports_skip_assignment: bool,
}

/// One member as the leader sees it in the JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A successful JoinGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult {
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    /// Every member's metadata for the leader; empty for the others.
    pub members: Vec<JoinedMember>,
}

/// A SyncGroup.
#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's when given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// A successful SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResult {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// A Heartbeat.
#[derive(Clone, Debug)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member in a LeaveGroup.
#[derive(Clone, Debug)]
pub struct LeavingMember {
    /// Empty when the member is named by its instance id only.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One partition's offset in an OffsetCommit.
#[derive(Clone, Debug)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit.
#[derive(Clone, Debug)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 for commits outside group management (admin tools, manual assignment).
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v2–v4 `retention_time_ms` when not -1: the offsets expire this long after the commit.
    pub retention_ms: Option<i64>,
    /// v9+: a commit with a generation to a group that does not exist is GROUP_ID_NOT_FOUND
    /// (ILLEGAL_GENERATION before).
    pub group_id_not_found_if_missing: bool,
    pub offsets: Vec<CommitPartition>,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    pub expire_timestamp_ms: Option<i64>,
}

/// Committed offsets by topic: `(topic, [(partition, offset if any)])`.
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// One group in ListGroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// One member in DescribeGroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// DescribeGroups of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// What `/metrics` shows of a group: state, members and committed offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub group_id: String,
    pub state: GroupState,
    pub members: usize,
    /// The generation id: how many rebalances the group went through.
    pub generation: i32,
    /// `(topic, partition, committed offset)`.
    pub offsets: Vec<(String, i32, i64)>,
}

/// Java's `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, in
/// wrapping 32-bit arithmetic.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(hash) % partitions`
/// (where `abs(Integer.MIN_VALUE)` is 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[derive(Debug, Default)]
struct ShardInner {
    loaded: bool,
    groups: HashMap<String, Group>,
}

/// The groups of one `__consumer_offsets` partition led by this broker.
#[derive(Debug)]
struct Shard {
    tp: TopicPartition,
    inner: Mutex<ShardInner>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, ShardInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type TimerEntry = Reverse<(Instant, i32, String)>;

/// The group coordinator of this broker.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    node_id: i32,
    replicas: Arc<ReplicaManager>,
    metadata: MetadataNode,
    shards: RwLock<HashMap<i32, Arc<Shard>>>,
    timers: Mutex<BinaryHeap<TimerEntry>>,
    wake: Notify,
    stopped: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_group_id(group_id: &str) -> Result<(), GroupError> {
    if group_id.is_empty() {
        Err(GroupError::InvalidGroupId)
    } else {
        Ok(())
    }
}

impl GroupCoordinator {
    /// A coordinator for broker `node_id`; it serves nothing until [`Self::sync_partitions`]
    /// hands it the `__consumer_offsets` partitions this broker leads.
    pub fn new(
        config: GroupConfig,
        node_id: i32,
        replicas: Arc<ReplicaManager>,
        metadata: MetadataNode,
    ) -> Arc<Self> {
        Arc::new(GroupCoordinator {
            config,
            node_id,
            replicas,
            metadata,
            shards: RwLock::new(HashMap::new()),
            timers: Mutex::new(BinaryHeap::new()),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
        })
    }

    /// The coordinator's settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The partition count of `__consumer_offsets`: the topic's, or the configured one
    /// before it exists.
    pub fn offsets_partitions(&self, image: &ClusterImage) -> i32 {
        image
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
            .filter(|&n| n > 0)
            .unwrap_or(self.config.offsets_topic_num_partitions)
    }

    /// Waits until every in-sync replica of `group`'s `__consumer_offsets` partition has what
    /// this coordinator wrote to it so far (the HW reached the LEO), for at most
    /// [`REPLICATION_WAIT`]. A coordinator that lost the partition meanwhile answers
    /// NOT_COORDINATOR; followers too slow give COORDINATOR_NOT_AVAILABLE, as Kafka maps a
    /// failed offsets append.
    pub async fn wait_replicated(&self, group: &str) -> Result<(), GroupError> {
        let image = self.metadata.image();
        let tp = TopicPartition::new(
            OFFSETS_TOPIC,
            partition_for(group, self.offsets_partitions(&image)),
        );
        let Some((end, epoch)) = self.replicas.get(&tp).map(|p| {
            let end = p.log.lock().unwrap_or_else(|e| e.into_inner()).log_end_offset();
            (end, p.state().leader_epoch)
        }) else {
            return Err(GroupError::NotCoordinator);
        };
        match self.replicas.wait_for_high_watermark(&tp, end, epoch, REPLICATION_WAIT).await {
            Ok(()) => Ok(()),
            Err(ReplicaError::NotLeader) => Err(GroupError::NotCoordinator),
            Err(_) => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    /// The broker that coordinates `key` (FindCoordinator), once `__consumer_offsets` exists
    /// and the group's partition has a leader.
    pub fn coordinator_for(&self, key: &str) -> Result<i32, GroupError> {
        let image = self.metadata.image();
        let topic = image.topic(OFFSETS_TOPIC).ok_or(GroupError::CoordinatorNotAvailable)?;
        let p = partition_for(key, self.offsets_partitions(&image));
        match topic.partitions.get(&p) {
            Some(part) if part.leader >= 0 => Ok(part.leader),
            _ => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    /// Creates `__consumer_offsets` if it does not exist yet (Kafka does this on the first
    /// FindCoordinator), then makes sure its partitions are hosted and loaded here.
    pub async fn ensure_offsets_topic(self: &Arc<Self>) -> Result<(), GroupError> {
        let image = self.metadata.image();
        if image.topic(OFFSETS_TOPIC).is_none() {
            let live = image.unfenced_brokers().count().max(1);
            let rf = (self.config.offsets_topic_replication_factor as usize).min(live) as i16;
            let topic = NewTopic {
                name: OFFSETS_TOPIC.to_string(),
                num_partitions: self.config.offsets_topic_num_partitions,
                replication_factor: rf,
                assignments: BTreeMap::new(),
                configs: BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    (
                        "segment.bytes".to_string(),
                        self.config.offsets_topic_segment_bytes.to_string(),
                    ),
                ]),
            };
            let result = self.metadata.create_topics(vec![topic], false).await.pop();
            match result {
                Some(Ok(_)) | Some(Err(MetadataError::TopicAlreadyExists(_))) => {
                    tracing::info!(
                        partitions = self.config.offsets_topic_num_partitions,
                        rf,
                        "created {OFFSETS_TOPIC}"
                    );
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
                    return Err(GroupError::CoordinatorNotAvailable);
                }
                None => return Err(GroupError::CoordinatorNotAvailable),
            }
        }
        // The creation returned once this broker's metadata publisher applied it: the
        // partitions it leads are hosted and their groups loading.
        Ok(())
    }

    /// Follows leadership of `__consumer_offsets` partitions in `image`: loads the groups of
    /// partitions this broker now leads, and drops those of partitions it no longer leads
    /// (their in-flight requests get NOT_COORDINATOR).
    pub fn sync_partitions(self: &Arc<Self>, image: &ClusterImage) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let led: HashSet<i32> = image
            .topic(OFFSETS_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.leader == self.node_id)
                    .map(|(&i, _)| i)
                    .collect()
            })
            .unwrap_or_default();
        let mut shards = self.shards.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<i32> = shards.keys().filter(|p| !led.contains(p)).copied().collect();
        for p in gone {
            if let Some(shard) = shards.remove(&p) {
                let mut inner = shard.lock();
                for g in inner.groups.values_mut() {
                    g.fail_waiters(GroupError::NotCoordinator);
                }
                inner.groups.clear();
                tracing::info!(partition = %shard.tp, "no longer coordinator for this partition");
            }
        }
        for p in led {
            if shards.contains_key(&p) {
                continue;
            }
            let shard = Arc::new(Shard {
                tp: TopicPartition::new(OFFSETS_TOPIC, p),
                inner: Mutex::new(ShardInner::default()),
            });
            shards.insert(p, shard.clone());
            let this = self.clone();
            tokio::spawn(async move { this.load(shard).await });
        }
    }

    /// Stops serving groups: every shard is dropped, and requests waiting in JoinGroup or
    /// SyncGroup are answered NOT_COORDINATOR so their connections can finish.
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let shards = std::mem::take(&mut *self.shards.write().unwrap_or_else(|e| e.into_inner()));
        for shard in shards.values() {
            let mut inner = shard.lock();
            for g in inner.groups.values_mut() {
                g.fail_waiters(GroupError::NotCoordinator);
            }
            inner.groups.clear();
        }
    }

    /// Loads a shard from its partition, retrying while the log cannot be read.
    async fn load(self: Arc<Self>, shard: Arc<Shard>) {
        let started = Instant::now();
        loop {
            let replicas = self.replicas.clone();
            let tp = shard.tp.clone();
            let loaded =
                tokio::task::spawn_blocking(move || offsets::load_partition(&replicas, &tp)).await;
            let still_ours = |this: &Self| {
                let shards = this.shards.read().unwrap_or_else(|e| e.into_inner());
                shards.get(&shard.tp.partition).is_some_and(|s| Arc::ptr_eq(s, &shard))
            };
            match loaded {
                Ok(Ok(groups)) => {
                    if !still_ours(&self) {
                        return;
                    }
                    let now = Now::system();
                    let mut inner = shard.lock();
                    for (id, g) in groups {
                        inner
                            .groups
                            .insert(id.clone(), Group::from_log(id, g.metadata, g.offsets, now));
                    }
                    inner.loaded = true;
                    let ids: Vec<String> = inner.groups.keys().cloned().collect();
                    for id in ids {
                        self.schedule(&shard, &mut inner, &id);
                    }
                    tracing::info!(
                        partition = %shard.tp,
                        groups = inner.groups.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "loaded group coordinator partition"
                    );
                    return;
                }
                Ok(Err(e)) => {
                    tracing::error!(partition = %shard.tp, error = %e, "loading groups failed; retrying in 1 s")
                }
                Err(e) => {
                    tracing::error!(partition = %shard.tp, error = %e, "group loader panicked")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !still_ours(&self) {
                return;
            }
        }
    }

    /// Waits (bounded) until every shard of this broker is loaded.
    pub async fn wait_loaded(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let all = {
                let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
                shards.values().all(|s| s.lock().loaded)
            };
            if all {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn shard_for(&self, group_id: &str) -> Result<Arc<Shard>, GroupError> {
        let image = self.metadata.image();
        let p = partition_for(group_id, self.offsets_partitions(&image));
        let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
        shards.get(&p).cloned().ok_or(GroupError::NotCoordinator)
    }

    /// Runs `f` on the shard of `group_id` with a writer for its partition, then reschedules
    /// the group's timers and drops it from memory if nothing is left of it.
    fn with_shard<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut ShardInner, &mut PartitionWriter<'_>, Now) -> Result<T, GroupError>,
    ) -> Result<T, GroupError> {
        check_group_id(group_id)?;
        let shard = self.shard_for(group_id)?;
        let mut inner = shard.lock();
        if !inner.loaded {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        let mut writer = PartitionWriter { replicas: &self.replicas, tp: shard.tp.clone() };
        let out = f(&mut inner, &mut writer, Now::system());
        self.schedule(&shard, &mut inner, group_id);
        out
    }

    /// Queues the group's next deadline if it is earlier than the one already queued, and
    /// forgets groups that never got a generation and hold nothing (a failed first join).
    fn schedule(&self, shard: &Shard, inner: &mut ShardInner, group_id: &str) {
        let Some(group) = inner.groups.get_mut(group_id) else { return };
        if group.state() == GroupState::Dead
            || (group.is_forgettable()
                && group.generation() == 0
                && group.next_deadline().is_none())
        {
            inner.groups.remove(group_id);
            return;
        }
        let Some(next) = group.next_deadline() else { return };
        if group.scheduled.is_none_or(|s| next < s) {
            group.scheduled = Some(next);
            lock(&self.timers).push(Reverse((next, shard.tp.partition, group_id.to_string())));
            self.wake.notify_one();
        }
    }

    /// Starts the timer task; it stops when `shutdown` changes.
    pub fn start(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.clone().run_timers(shutdown))
    }

    async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut retention = tokio::time::interval(self.config.offsets_retention_check_interval);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        retention.tick().await;
        loop {
            let next = lock(&self.timers).peek().map(|Reverse((at, _, _))| *at);
            let sleep = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = self.wake.notified() => {}
                _ = sleep => self.fire_due_timers(),
                _ = retention.tick() => self.expire_offsets(Now::system()),
            }
        }
    }

    fn fire_due_timers(&self) {
        let now = Now::system();
        let mut due = Vec::new();
        {
            let mut timers = lock(&self.timers);
            while timers.peek().is_some_and(|Reverse((at, _, _))| *at <= now.at) {
                if let Some(Reverse(entry)) = timers.pop() {
                    due.push(entry);
                }
            }
        }
        for (at, partition, group_id) in due {
            let shard = {
                let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
                shards.get(&partition).cloned()
            };
            let Some(shard) = shard else { continue };
            let mut inner = shard.lock();
            let mut writer = PartitionWriter { replicas: &self.replicas, tp: shard.tp.clone() };
            if let Some(group) = inner.groups.get_mut(&group_id) {
                if group.scheduled == Some(at) {
                    group.scheduled = None;
                }
                group.on_timer(&self.config, now, &mut writer);
            }
            self.schedule(&shard, &mut inner, &group_id);
        }
    }

    /// One pass of offset retention over every loaded group.
    pub fn expire_offsets(&self, now: Now) {
        let retention = self.config.offsets_retention_ms;
        self.remove_offsets_where(now, "expired committed offsets", |group| {
            group.expire_offsets(now, retention)
        });
    }

    /// Removes every group's committed offsets of deleted topics (with tombstones), as Kafka's
    /// coordinator does when partitions are deleted, so lag and `kafka-consumer-groups
    /// --describe` show no offsets of topics that are gone. The groups themselves stay.
    pub fn on_topics_deleted(&self, topics: &[String]) {
        let now = Now::system();
        let topics: std::collections::BTreeSet<String> = topics.iter().cloned().collect();
        if topics.is_empty() {
            return;
        }
        self.remove_offsets_where(now, "removed offsets of deleted topics", |group| {
            group.offsets_of_deleted_topics(&topics)
        });
    }

    /// For every loaded group: `select` names offsets to remove (with their tombstone records
    /// and whether the group goes with them); the records are written, then the state changed.
    fn remove_offsets_where(
        &self,
        now: Now,
        what: &str,
        mut select: impl FnMut(&Group) -> (Vec<coordinator::Record>, Vec<(String, i32)>, bool),
    ) {
        let shards: Vec<Arc<Shard>> = {
            let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
            shards.values().cloned().collect()
        };
        for shard in shards {
            let mut inner = shard.lock();
            if !inner.loaded {
                continue;
            }
            let mut writer = PartitionWriter { replicas: &self.replicas, tp: shard.tp.clone() };
            let mut dead = Vec::new();
            for group in inner.groups.values_mut() {
                let (records, removed, gone) = select(group);
                if records.is_empty() {
                    continue;
                }
                match coordinator::RecordWriter::write(&mut writer, records, now.ms) {
                    Ok(()) => {
                        group.remove_offsets(&removed);
                        if !removed.is_empty() {
                            tracing::info!(group = %group.id(), offsets = removed.len(), "{what}");
                        }
                        if gone {
                            group.mark_dead(now);
                            dead.push(group.id().to_string());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(group = %group.id(), error = %e, "writing offset removal failed")
                    }
                }
            }
            for id in dead {
                inner.groups.remove(&id);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Requests.

    /// JoinGroup; waits until the join phase completes.
    pub async fn join(&self, req: JoinRequest) -> Result<JoinResult, GroupError> {
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            check_group_id(&req.group_id)?;
            return Err(GroupError::InvalidSessionTimeout(req.session_timeout_ms));
        }
        let group_id = req.group_id.clone();
        let rx = self.with_shard(&group_id, |inner, writer, now| {
            if !inner.groups.contains_key(&group_id) {
                if !req.member_id.is_empty() {
                    return Err(GroupError::UnknownMemberId);
                }
                inner.groups.insert(group_id.clone(), Group::new(group_id.clone(), now));
            }
            let group = inner.groups.get_mut(&group_id).expect("present");
            Ok(group.join(req, &self.config, now, writer))
        })?;
        rx.await.unwrap_or(Err(GroupError::CoordinatorNotAvailable))
    }

    /// SyncGroup; waits for the leader's assignment.
    pub async fn sync(&self, req: SyncRequest) -> Result<SyncResult, GroupError> {
        let group_id = req.group_id.clone();
        let rx = self.with_shard(&group_id, |inner, writer, now| {
            let group = inner.groups.get_mut(&group_id).ok_or(GroupError::UnknownMemberId)?;
            Ok(group.sync(req, &self.config, now, writer))
        })?;
        rx.await.unwrap_or(Err(GroupError::CoordinatorNotAvailable))
    }

    /// Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.
    pub fn heartbeat(&self, req: HeartbeatRequest) -> Result<(), GroupError> {
        let group_id = req.group_id.clone();
        self.with_shard(&group_id, |inner, _, now| {
            let group = inner.groups.get_mut(&group_id).ok_or(GroupError::UnknownMemberId)?;
            group.heartbeat(&req, now)
        })
    }

    /// LeaveGroup: the member id (or error) of each leaving member.
    pub fn leave(
        &self,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> Result<Vec<Result<String, GroupError>>, GroupError> {
        self.with_shard(group_id, |inner, writer, now| match inner.groups.get_mut(group_id) {
            None => Ok(members.iter().map(|_| Err(GroupError::UnknownMemberId)).collect()),
            Some(group) => group.leave(&members, &self.config, now, writer),
        })
    }

    /// OffsetCommit: one result per partition, in request order.
    pub fn commit_offsets(
        &self,
        req: CommitRequest,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let group_id = req.group_id.clone();
        self.with_shard(&group_id, |inner, writer, now| {
            if !inner.groups.contains_key(&group_id) {
                if req.generation_id >= 0 {
                    return Err(if req.group_id_not_found_if_missing {
                        GroupError::GroupIdNotFound
                    } else {
                        GroupError::IllegalGeneration
                    });
                }
                // A "simple" group: offsets without membership.
                inner.groups.insert(group_id.clone(), Group::new(group_id.clone(), now));
            }
            let group = inner.groups.get_mut(&group_id).expect("present");
            group.commit_offsets(&req, &self.config, now, writer)
        })
    }

    /// OffsetFetch: committed offsets by topic and partition (`None` where nothing is
    /// committed); `topics: None` asks for all of the group's.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<TopicOffsets, GroupError> {
        self.with_shard(group_id, |inner, _, _| {
            Ok(match inner.groups.get(group_id) {
                Some(g) => g.fetch_offsets(topics.as_deref()),
                None => topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, parts)| (t, parts.into_iter().map(|p| (p, None)).collect()))
                    .collect(),
            })
        })
    }

    /// ListGroups over every shard of this broker.
    pub fn list_groups(&self) -> Result<Vec<GroupListing>, GroupError> {
        let shards: Vec<Arc<Shard>> = {
            let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
            shards.values().cloned().collect()
        };
        let mut out = Vec::new();
        for shard in shards {
            let inner = shard.lock();
            if !inner.loaded {
                return Err(GroupError::CoordinatorLoadInProgress);
            }
            out.extend(inner.groups.values().map(Group::listing));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// DescribeGroups of one group (`None`: no such group).
    pub fn describe_group(&self, group_id: &str) -> Result<Option<GroupDescription>, GroupError> {
        self.with_shard(group_id, |inner, _, _| Ok(inner.groups.get(group_id).map(Group::describe)))
    }

    /// DeleteGroups of one group: tombstones for its offsets and metadata.
    pub fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        self.with_shard(group_id, |inner, writer, now| {
            let group = inner.groups.get_mut(group_id).ok_or(GroupError::GroupIdNotFound)?;
            let records = group.tombstones_for_delete()?;
            coordinator::RecordWriter::write(writer, records, now.ms)?;
            group.mark_dead(now);
            tracing::info!(group = %group_id, "deleted group");
            Ok(())
        })
    }

    /// OffsetDelete: one result per partition, in request order.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.with_shard(group_id, |inner, writer, now| {
            let group = inner.groups.get_mut(group_id).ok_or(GroupError::GroupIdNotFound)?;
            group.delete_offsets(&partitions, now, writer)
        })
    }

    /// Every loaded group's state, member count and offsets, for `/metrics`.
    pub fn snapshots(&self) -> Vec<GroupSnapshot> {
        let shards: Vec<Arc<Shard>> = {
            let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
            shards.values().cloned().collect()
        };
        let mut out = Vec::new();
        for shard in shards {
            out.extend(shard.lock().groups.values().map(Group::snapshot));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::manager::LogManager;
    use crate::log::{LogConfig, SystemClock};
    use crate::metadata::MetadataConfig;

    /// A coordinator over a real metadata node, log manager and replica manager in `dir`.
    struct Node {
        groups: Arc<GroupCoordinator>,
        replicas: Arc<ReplicaManager>,
        metadata: MetadataNode,
    }

    fn config() -> GroupConfig {
        GroupConfig {
            offsets_topic_num_partitions: 3,
            initial_rebalance_delay: Duration::from_millis(10),
            min_session_timeout_ms: 100,
            ..GroupConfig::default()
        }
    }

    async fn start(dir: &std::path::Path) -> Node {
        let metadata = MetadataNode::start(MetadataConfig::new(1, dir.join("meta"))).await.unwrap();
        let defaults = LogConfig::default();
        let (logs, _) =
            LogManager::open(&dir.join("logs"), defaults.clone(), Arc::new(SystemClock), |_| {
                LogConfig::default()
            })
            .unwrap();
        let replicas = Arc::new(ReplicaManager::new(1, Arc::new(logs), defaults));
        replicas.reconcile(&metadata.image()).unwrap();
        let groups = GroupCoordinator::new(config(), 1, replicas.clone(), metadata.clone());
        groups.ensure_offsets_topic().await.unwrap();
        // What the broker's metadata publisher does with the new image.
        replicas.reconcile(&metadata.image()).unwrap();
        groups.sync_partitions(&metadata.image());
        assert!(groups.wait_loaded(Duration::from_secs(10)).await);
        Node { groups, replicas, metadata }
    }

    impl Node {
        /// A second coordinator over the same partitions: what a restarted broker loads.
        async fn reload(&self) -> Arc<GroupCoordinator> {
            let groups =
                GroupCoordinator::new(config(), 1, self.replicas.clone(), self.metadata.clone());
            groups.sync_partitions(&self.metadata.image());
            assert!(groups.wait_loaded(Duration::from_secs(10)).await);
            groups
        }
    }

    fn simple_commit(group: &str, offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: group.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_ms: None,
            group_id_not_found_if_missing: true,
            offsets: vec![CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: 2,
                metadata: Some("m".into()),
            }],
        }
    }

    fn committed(groups: &GroupCoordinator, group: &str) -> Option<i64> {
        let found = groups.fetch_offsets(group, Some(vec![("t".into(), vec![0])])).unwrap();
        found[0].1[0].1.as_ref().map(|o| o.offset)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_of_partitions_not_led_or_not_loaded_here_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let node = start(dir.path()).await;
        let fresh =
            GroupCoordinator::new(config(), 1, node.replicas.clone(), node.metadata.clone());
        let hb = || HeartbeatRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: "m".into(),
            group_instance_id: None,
        };
        assert_eq!(fresh.heartbeat(hb()), Err(GroupError::NotCoordinator));
        let p = partition_for("g", 3);
        let shard = Arc::new(Shard {
            tp: TopicPartition::new(OFFSETS_TOPIC, p),
            inner: Mutex::new(ShardInner::default()),
        });
        fresh.shards.write().unwrap().insert(p, shard);
        assert_eq!(fresh.heartbeat(hb()), Err(GroupError::CoordinatorLoadInProgress));
        assert_eq!(fresh.list_groups(), Err(GroupError::CoordinatorLoadInProgress));
        assert_eq!(node.groups.heartbeat(hb()), Err(GroupError::UnknownMemberId));
        assert_eq!(node.groups.coordinator_for("g"), Ok(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offsets_expire_with_tombstones_and_stay_expired_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let node = start(dir.path()).await;
        let groups = &node.groups;
        assert_eq!(groups.commit_offsets(simple_commit("simple", 5)), Ok(vec![Ok(())]));
        assert_eq!(committed(groups, "simple"), Some(5));
        assert_eq!(committed(&*node.reload().await, "simple"), Some(5), "loaded from the log");

        groups.expire_offsets(Now::system());
        assert_eq!(committed(groups, "simple"), Some(5), "not yet: the retention is 7 days");
        let later = Duration::from_millis(config().offsets_retention_ms as u64 + 1000);
        groups.expire_offsets(Now::system().plus(later));
        assert_eq!(committed(groups, "simple"), None);
        assert!(groups.list_groups().unwrap().is_empty(), "the empty group went with its offsets");
        let reloaded = node.reload().await;
        assert_eq!(committed(&reloaded, "simple"), None, "tombstones replayed");
        assert!(reloaded.list_groups().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_survives_a_reload_and_the_timer_task_evicts_a_silent_member() {
        let dir = tempfile::tempdir().unwrap();
        let node = start(dir.path()).await;
        let (_stop, stopped) = watch::channel(false);
        let timers = node.groups.start(stopped.clone());
        let join = JoinRequest {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 300,
            rebalance_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
            require_known_member_id: true,
            supports_skip_assignment: true,
        };
        let Err(GroupError::MemberIdRequired(id)) = node.groups.join(join.clone()).await else {
            panic!("expected MEMBER_ID_REQUIRED")
        };
        // The timer task ends the initial delay.
        let joined = node.groups.join(JoinRequest { member_id: id.clone(), ..join }).await.unwrap();
        assert_eq!((joined.generation_id, joined.leader.as_str()), (1, id.as_str()));
        let sync = SyncRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: id.clone(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![(id.clone(), Bytes::from_static(b"assigned"))],
        };
        assert_eq!(node.groups.sync(sync).await.unwrap().assignment.as_ref(), b"assigned");
        let mut commit = simple_commit("g", 7);
        commit.generation_id = 1;
        commit.member_id = id.clone();
        assert_eq!(node.groups.commit_offsets(commit), Ok(vec![Ok(())]));

        // What a restarted broker sees: the stable group, its assignment and offsets.
        let reloaded = node.reload().await;
        let d = reloaded.describe_group("g").unwrap().unwrap();
        assert_eq!((d.state, d.members.len()), (GroupState::Stable, 1));
        assert_eq!(d.members[0].assignment.as_ref(), b"assigned");
        assert_eq!(d.members[0].metadata.as_ref(), b"sub");
        assert_eq!(committed(&reloaded, "g"), Some(7));

        // The member never heartbeats: the timer task removes it after its session timeout.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = node.groups.describe_group("g").unwrap().unwrap();
            if d.state == GroupState::Empty {
                assert!(d.members.is_empty());
                break;
            }
            assert!(Instant::now() < deadline, "the silent member was never evicted: {d:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(committed(&node.groups, "g"), Some(7), "offsets outlive the members");
        drop(_stop);
        timers.await.unwrap();
    }

    #[test]
    fn java_string_hash_matches_java() {
        // Values from java.lang.String.hashCode().
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // A character outside the BMP counts as two UTF-16 units.
        assert_eq!(java_string_hash("😀"), 55357 * 31 + 56832);
    }

    #[test]
    fn partition_for_uses_kafka_abs() {
        assert_eq!(partition_for("polygenelubricants", 50), 0, "abs(MIN_VALUE) is 0 in Kafka");
        assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(partition_for("anything", 1), 0);
    }

    #[test]
    fn config_uses_kafka_names_and_checks_values() {
        let mut c = GroupConfig::default();
        c.set("group.initial.rebalance.delay.ms", "100").unwrap();
        c.set("offsets.retention.minutes", "2").unwrap();
        assert_eq!(c.initial_rebalance_delay, Duration::from_millis(100));
        assert_eq!(c.offsets_retention_ms, 120_000);
        assert!(c.set("offsets.topic.num.partitions", "0").is_err());
        assert!(c.set("group.min.session.timeout.ms", "99999999").is_err());
        let props: HashMap<_, _> = GroupConfig::default().to_props().into_iter().collect();
        assert_eq!(props["offsets.topic.num.partitions"], "50");
        assert_eq!(props["offsets.retention.minutes"], "10080");
        assert_eq!(props["group.min.session.timeout.ms"], "6000");
        assert_eq!(props["group.max.session.timeout.ms"], "1800000");
        for (k, _) in GroupConfig::default().to_props() {
            assert!(GROUP_CONFIG_KEYS.contains(&k), "{k}");
        }
    }
}
