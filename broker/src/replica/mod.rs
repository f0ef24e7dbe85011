//! Partitions hosted on this broker and the operations on them (Kafka's ReplicaManager and
//! Partition): append as leader, read for consumers (bounded by the high watermark) and for
//! followers (bounded by the LEO), leader-epoch fencing, and the signals that wake long-polling
//! fetches and acks=all produces.
//!
//! Replication (docs/replication.md): a leader learns each follower's LEO from the offset the
//! follower fetches at, and the high watermark is the lowest LEO over the ISR (its own
//! included); it only moves forward. A follower whose last fetched epoch ended earlier on the
//! leader is told where the logs diverge and truncates there (KIP-320/595). Followers append
//! what they fetch as is ([`fetcher`]) and take the leader's HW, capped at their own LEO. While
//! the ISR is this broker alone, the HW follows the LEO at once.

pub mod fetcher;
pub mod quota;
pub mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::log::manager::{LogManager, SharedLog};
use crate::log::validator::AppendOrigin;
use crate::log::{AppendInfo, FetchData, LogConfig, LogError, TopicPartition};
use crate::metadata::ClusterImage;
use crate::zero_copy::FileSlice;

/// Why a partition operation failed; the protocol layer maps these to Kafka error codes.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("this server does not host this topic-partition")]
    UnknownTopicOrPartition,
    #[error("this server is not the leader for that topic-partition")]
    NotLeader,
    #[error("the request's leader epoch {request} is older than the current epoch {current}")]
    FencedLeaderEpoch { request: i32, current: i32 },
    #[error("the request's leader epoch {request} is newer than the current epoch {current}")]
    UnknownLeaderEpoch { request: i32, current: i32 },
    #[error("{isr} in-sync replicas are fewer than min.insync.replicas {min}")]
    NotEnoughReplicas { isr: usize, min: i32 },
    #[error(
        "the write is in, but {isr} in-sync replicas are fewer than min.insync.replicas {min}"
    )]
    NotEnoughReplicasAfterAppend { isr: usize, min: i32 },
    #[error("broker {0} is not a follower of this partition")]
    NotReplica(i32),
    #[error("broker {broker} fetched at broker epoch {fetched}, but it registered again at {registered}")]
    StaleBrokerEpoch { broker: i32, fetched: i64, registered: i64 },
    #[error("the in-sync replicas did not all have the write within the request's timeout")]
    Timeout,
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Leadership state of a partition, from the metadata image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas a reassignment is removing (still in `replicas` until it completes).
    pub removing_replicas: Vec<i32>,
    /// Bumped by the controller on every change of this partition (ISR changes included).
    pub partition_epoch: i32,
    /// Listed for this broker in `leader.replication.throttled.replicas` ([`quota`]).
    pub leader_throttled: bool,
    /// Listed for this broker in `follower.replication.throttled.replicas`.
    pub follower_throttled: bool,
}

/// An ISR change a leader asks the controller for (AlterPartition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrChange {
    pub tp: TopicPartition,
    pub topic_id: [u8; 16],
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// The broker epoch a joining member fetched with (KIP-903).
    pub new_isr_epochs: std::collections::BTreeMap<i32, i64>,
}

/// A leader's append: what the log says of it, the log start offset, and the leader epoch it
/// was written in (an acks=all wait holds to that epoch).
#[derive(Debug)]
pub struct Appended {
    pub info: AppendInfo,
    pub log_start: i64,
    pub leader_epoch: i32,
}

/// What a leader remembers of its current term.
#[derive(Clone, Copy, Debug, Default)]
struct LeaderTerm {
    /// When this broker became leader in the current epoch (ms since the epoch).
    since_ms: i64,
    /// The LEO when it did: a follower must reach it to join the ISR (it has then fetched in
    /// the current epoch).
    epoch_start_offset: i64,
}

/// What a leader knows of one follower.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch.
    pub log_end_offset: i64,
    /// When it last fetched (ms since the epoch).
    pub last_fetch_ms: i64,
    /// When it last fetched at the leader's LEO (ms since the epoch), -1 if never.
    pub last_caught_up_ms: i64,
    /// The broker epoch its last fetch carried (Fetch v15+), -1 when unknown.
    pub broker_epoch: i64,
}

/// A partition this broker holds a replica of.
#[derive(Debug)]
pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: [u8; 16],
    pub log: SharedLog,
    state: Mutex<PartitionState>,
    /// As leader: each follower's progress in the current leader epoch.
    followers: Mutex<HashMap<i32, FollowerProgress>>,
    /// The high watermark, for acks=all produces waiting on this partition.
    hw: watch::Sender<i64>,
    /// Bumped on every append, HW move and leadership change: long-poll fetches of this
    /// partition wait on it (a delayed fetch keyed by partition, not a broker-wide signal).
    changed: watch::Sender<u64>,
    /// As leader: when this term began and at which offset.
    term: Mutex<LeaderTerm>,
    /// As leader: the ISR asked of the controller and not yet seen in metadata. Counted in the
    /// ISR for the high watermark at once ("maximal ISR", KIP-497), so a member being added is
    /// never left behind the HW.
    pending_isr: Mutex<Option<Vec<i32>>>,
}

/// A follower's fetch, as the leader reads it.
#[derive(Clone, Copy, Debug)]
pub struct FollowerFetch {
    pub replica_id: i32,
    /// The follower's broker epoch (Fetch v15+ `replica_state`), -1 when not sent.
    pub broker_epoch: i64,
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (-1: none), for divergence (KIP-320).
    pub last_fetched_epoch: i32,
    pub current_leader_epoch: i32,
    pub max_bytes: usize,
}

/// What a follower's fetch gets.
#[derive(Debug)]
pub enum FollowerRead {
    Data(FetchData<Option<FileSlice>>),
    /// The follower's log diverges from the leader's: it must truncate to the end of this
    /// epoch `(epoch, end offset)` as the leader has it, then fetch again.
    Diverging {
        epoch: i32,
        end_offset: i64,
        high_watermark: i64,
        log_start_offset: i64,
    },
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    pub fn state(&self) -> PartitionState {
        lock(&self.state).clone()
    }

    /// Sets the log's high watermark and wakes what waits on it.
    fn set_high_watermark(&self, log: &mut crate::log::PartitionLog, hw: i64) {
        let hw = log.update_high_watermark(hw);
        self.hw.send_if_modified(|current| std::mem::replace(current, hw) != hw);
    }

    /// Wakes the fetches waiting on this partition.
    fn touch(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Each follower's progress, as this partition's leader knows it.
    pub fn followers(&self) -> HashMap<i32, FollowerProgress> {
        lock(&self.followers).clone()
    }

    /// Checks a client's view of the leader epoch (-1 = not given), as Kafka's fencing does.
    pub fn check_epoch(&self, requested: i32) -> Result<(), ReplicaError> {
        let current = lock(&self.state).leader_epoch;
        if requested < 0 || requested == current {
            Ok(())
        } else if requested < current {
            Err(ReplicaError::FencedLeaderEpoch { request: requested, current })
        } else {
            Err(ReplicaError::UnknownLeaderEpoch { request: requested, current })
        }
    }
}

/// All partitions hosted here.
#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    logs: Arc<LogManager>,
    defaults: LogConfig,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Where ISR changes go; none until the broker wires it (unit tests run without).
    isr_sender: Mutex<Option<tokio::sync::mpsc::UnboundedSender<IsrChange>>>,
    /// Partition count of every topic in the cluster, hosted here or not: a request for a
    /// partition another broker hosts is NOT_LEADER_OR_FOLLOWER, not UNKNOWN_TOPIC_OR_PARTITION.
    cluster_partitions: RwLock<HashMap<String, usize>>,
    /// What this broker sends as leader to throttled followers outside the ISR.
    pub leader_quota: quota::ReplicationQuota,
    /// What this broker fetches as a throttled follower outside the ISR.
    pub follower_quota: quota::ReplicationQuota,
    /// `leader.replication.throttled.rate` and `follower.replication.throttled.rate` from the
    /// config file; dynamic broker configs override them.
    static_rates: (i64, i64),
    isr_shrinks: AtomicU64,
    isr_expands: AtomicU64,
    /// Every registered broker's epoch, from the latest image.
    broker_epochs: RwLock<HashMap<i32, i64>>,
}

impl ReplicaManager {
    pub fn new(node_id: i32, logs: Arc<LogManager>, defaults: LogConfig) -> Self {
        ReplicaManager {
            node_id,
            logs,
            defaults,
            partitions: RwLock::new(HashMap::new()),
            isr_sender: Mutex::new(None),
            cluster_partitions: RwLock::new(HashMap::new()),
            leader_quota: Default::default(),
            follower_quota: Default::default(),
            static_rates: (i64::MAX, i64::MAX),
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
            broker_epochs: RwLock::new(HashMap::new()),
        }
    }

    /// The replication throttle rates of the config file (leader, follower), in bytes/s.
    pub fn with_throttle_rates(mut self, leader: i64, follower: i64) -> Self {
        self.static_rates = (leader, follower);
        self
    }

    /// This broker's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// ISR shrinks and expansions committed for partitions led here since start-up.
    pub fn isr_changes(&self) -> (u64, u64) {
        (self.isr_shrinks.load(Ordering::Relaxed), self.isr_expands.load(Ordering::Relaxed))
    }

    pub fn logs(&self) -> &Arc<LogManager> {
        &self.logs
    }

    /// Receivers that see a new value after every append, HW move or leadership change of
    /// the given partitions hosted here: a long-polling fetch waits on those it reads.
    pub fn watch(&self, tps: &[TopicPartition]) -> Vec<watch::Receiver<u64>> {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        tps.iter().filter_map(|tp| partitions.get(tp)).map(|p| p.changed.subscribe()).collect()
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().unwrap_or_else(|e| e.into_inner()).get(tp).cloned()
    }

    /// Every hosted partition, sorted.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        let mut v: Vec<_> =
            self.partitions.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.tp.cmp(&b.tp));
        v
    }

    /// Makes the hosted partitions match the metadata image: creates logs for new replicas
    /// (writing `partition.metadata`), applies config and leadership changes, and deletes the
    /// logs of partitions whose topic is gone.
    pub fn reconcile(&self, image: &ClusterImage) -> Result<(), LogError> {
        let mut wanted = HashMap::new();
        *self.broker_epochs.write().unwrap_or_else(|e| e.into_inner()) =
            image.brokers.values().map(|b| (b.id, b.epoch)).collect();
        *self.cluster_partitions.write().unwrap_or_else(|e| e.into_inner()) =
            image.topics.values().map(|t| (t.name.clone(), t.partitions.len())).collect();
        // Dynamic broker configs (cluster-wide, then this broker's) over the static defaults.
        let defaults = image.effective_log_defaults(&self.defaults, self.node_id);
        let rate = |key: &str, fallback: i64| {
            let dynamic = image.dynamic_broker_config(self.node_id, key);
            dynamic.and_then(|(v, _)| v.parse().ok()).unwrap_or(fallback)
        };
        self.leader_quota.set_limit(rate("leader.replication.throttled.rate", self.static_rates.0));
        self.follower_quota
            .set_limit(rate("follower.replication.throttled.rate", self.static_rates.1));
        for topic in image.topics.values() {
            let config = topic.log_config(&defaults);
            for (&index, p) in &topic.partitions {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), index);
                let throttled = |key: &str| {
                    quota::listed(topic.configs.get(key).map(String::as_str), index, self.node_id)
                };
                let state = PartitionState {
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    removing_replicas: p.removing_replicas.clone(),
                    partition_epoch: p.partition_epoch,
                    leader_throttled: throttled("leader.replication.throttled.replicas"),
                    follower_throttled: throttled("follower.replication.throttled.replicas"),
                };
                wanted.insert(tp, (topic.id, config.clone(), state));
            }
        }
        let mut partitions = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        // Deletions first: a topic re-created under the same name gets a fresh log.
        let gone: Vec<TopicPartition> = partitions
            .iter()
            .filter(|(tp, p)| wanted.get(*tp).is_none_or(|(id, _, _)| *id != p.topic_id))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in gone {
            if let Some(p) = partitions.remove(&tp) {
                // acks=all produces waiting on it answer NOT_LEADER_OR_FOLLOWER now.
                lock(&p.state).leader = -1;
                p.hw.send_modify(|_| {});
            }
            self.logs.delete(&tp)?;
            tracing::info!(partition = %tp, "deleted partition");
        }
        // Logs on disk that the image no longer places here (a topic deleted while a crash
        // interrupted the deletion) are strays: remove them, as Kafka does.
        for (tp, _) in self.logs.all() {
            if !wanted.contains_key(&tp) && !partitions.contains_key(&tp) {
                tracing::info!(partition = %tp, "deleting stray log");
                self.logs.delete(&tp)?;
            }
        }
        for (tp, (topic_id, config, state)) in wanted {
            match partitions.get(&tp) {
                Some(p) => {
                    let mut log = lock(&p.log);
                    if log.config() != &config {
                        log.update_config(config);
                    }
                    self.maybe_advance_hw(p, &mut log, &state);
                    drop(log);
                    let mut current = lock(&p.state);
                    let new_term = current.leader_epoch != state.leader_epoch
                        || current.leader != state.leader;
                    if new_term {
                        // A new leader epoch: followers start over (Kafka resets their state).
                        lock(&p.followers).clear();
                        *lock(&p.term) = LeaderTerm {
                            since_ms: now_ms(),
                            epoch_start_offset: lock(&p.log).log_end_offset(),
                        };
                    }
                    if current.partition_epoch != state.partition_epoch {
                        // The controller decided on the partition: what was asked is answered.
                        *lock(&p.pending_isr) = None;
                    }
                    if !new_term && state.leader == self.node_id {
                        // Kafka's IsrShrinksPerSec / IsrExpandsPerSec, counted on commit.
                        let (before, after) = (current.isr.len(), state.isr.len());
                        let counter = match after.cmp(&before) {
                            std::cmp::Ordering::Less => Some(&self.isr_shrinks),
                            std::cmp::Ordering::Greater => Some(&self.isr_expands),
                            std::cmp::Ordering::Equal => None,
                        };
                        if let Some(c) = counter {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    *current = state;
                    drop(current);
                    if new_term {
                        // acks=all produces waiting here look at the leadership again.
                        p.hw.send_modify(|_| {});
                    }
                }
                None => {
                    let mut log = self.logs.get_or_create(&tp, config.clone())?;
                    let stored = lock(&log).read_partition_metadata()?;
                    if stored.is_some_and(|id| id != topic_id) {
                        // The directory belongs to an older topic of the same name.
                        tracing::info!(partition = %tp, "replacing the log of a deleted topic");
                        self.logs.delete(&tp)?;
                        log = self.logs.get_or_create(&tp, config)?;
                    }
                    let hw = {
                        let log = lock(&log);
                        if stored != Some(topic_id) {
                            log.write_partition_metadata(topic_id)?;
                        }
                        log.high_watermark()
                    };
                    tracing::info!(partition = %tp, epoch = state.leader_epoch, "hosting partition");
                    let leo = lock(&log).log_end_offset();
                    let p = Partition {
                        tp: tp.clone(),
                        topic_id,
                        log,
                        state: Mutex::new(state.clone()),
                        followers: Mutex::new(HashMap::new()),
                        hw: watch::channel(hw).0,
                        changed: watch::channel(0).0,
                        term: Mutex::new(LeaderTerm {
                            since_ms: now_ms(),
                            epoch_start_offset: leo,
                        }),
                        pending_isr: Mutex::new(None),
                    };
                    self.maybe_advance_hw(&p, &mut lock(&p.log), &state);
                    partitions.insert(tp, Arc::new(p));
                }
            }
        }
        // Leadership may have changed anywhere: waiting fetches look again.
        for p in partitions.values() {
            p.touch();
        }
        drop(partitions);
        Ok(())
    }

    /// A leader whose ISR is itself alone has every replica's copy of its log: the HW is the
    /// LEO (Kafka's `maybeIncrementLeaderHW` on becoming leader). This is what makes data
    /// written after the last HW checkpoint readable again after a crash.
    fn maybe_advance_hw(
        &self,
        p: &Partition,
        log: &mut crate::log::PartitionLog,
        state: &PartitionState,
    ) {
        if state.leader == self.node_id && state.isr == [self.node_id] {
            let leo = log.log_end_offset();
            p.set_high_watermark(log, leo);
        }
    }

    fn leader_partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>, ReplicaError> {
        let Some(p) = self.get(tp) else {
            let known = self.cluster_partitions.read().unwrap_or_else(|e| e.into_inner());
            let exists =
                known.get(&tp.topic).is_some_and(|&n| (0..n as i32).contains(&tp.partition));
            return Err(if exists {
                ReplicaError::NotLeader
            } else {
                ReplicaError::UnknownTopicOrPartition
            });
        };
        if lock(&p.state).leader != self.node_id {
            return Err(ReplicaError::NotLeader);
        }
        Ok(p)
    }

    /// The idempotent producers of a partition this broker leads: (producer id, epoch, last
    /// sequence, last timestamp).
    pub fn active_producers(
        &self,
        tp: &TopicPartition,
    ) -> Result<Vec<(i64, i16, i32, i64)>, ReplicaError> {
        let p = self.leader_partition(tp)?;
        let log = lock(&p.log);
        Ok(log.active_producers())
    }

    /// Every partition hosted here with its size on disk and how far its log end is behind
    /// its high watermark (DescribeLogDirs' `offset_lag`, as Kafka computes it: a follower
    /// still catching up lags, a leader never does).
    pub fn log_sizes(&self) -> Vec<(TopicPartition, u64, i64)> {
        self.all()
            .into_iter()
            .map(|p| {
                let log = lock(&p.log);
                let lag = (log.high_watermark() - log.log_end_offset()).max(0);
                (p.tp.clone(), log.size_bytes(), lag)
            })
            .collect()
    }

    /// The log start offset of a partition hosted here.
    pub fn log_start_offset(&self, tp: &TopicPartition) -> Option<i64> {
        self.get(tp).map(|p| lock(&p.log).log_start_offset())
    }

    /// Appends a client's record batches as leader. With acks=all the ISR must be at least
    /// `min.insync.replicas`. The HW follows the LEO while this broker is the only ISR member.
    pub fn append(
        &self,
        tp: &TopicPartition,
        records: &mut Vec<u8>,
        acks: i16,
        origin: AppendOrigin,
    ) -> Result<Appended, ReplicaError> {
        let p = self.leader_partition(tp)?;
        let state = p.state();
        let mut log = lock(&p.log);
        // Kafka's effective minimum: min.insync.replicas capped at the replication factor, so a
        // topic of one replica with min.insync.replicas=2 still takes acks=all.
        let min_isr = log.config().min_insync_replicas.min(state.replicas.len().max(1) as i32);
        if acks == -1 && (state.isr.len() as i32) < min_isr {
            return Err(ReplicaError::NotEnoughReplicas { isr: state.isr.len(), min: min_isr });
        }
        let appended = log.append_as_leader_from(records, state.leader_epoch, origin);
        self.logs.note_write(appended.as_ref().map(|_| ()));
        let info = appended?;
        if state.isr == [self.node_id] {
            let leo = log.log_end_offset();
            p.set_high_watermark(&mut log, leo);
        }
        let log_start = log.log_start_offset();
        drop(log);
        p.touch();
        Ok(Appended { info, log_start, leader_epoch: state.leader_epoch })
    }

    /// Reads for a consumer (up to the HW) or, with `up_to_leo`, for a follower.
    pub fn read(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: usize,
        current_leader_epoch: i32,
        up_to_leo: bool,
    ) -> Result<FetchData<Option<FileSlice>>, ReplicaError> {
        let p = self.leader_partition(tp)?;
        p.check_epoch(current_leader_epoch)?;
        let log = lock(&p.log);
        let bound = if up_to_leo { log.log_end_offset() } else { log.high_watermark() };
        Ok(log.read_slice(offset, max_bytes, bound)?)
    }

    /// A follower's fetch: records its progress, moves the high watermark to the lowest LEO of
    /// the ISR, and reads from `fetch_offset` up to the LEO; or, when the follower's last epoch
    /// ends earlier here than where it fetches, tells it where to truncate.
    pub fn read_for_follower(
        &self,
        tp: &TopicPartition,
        fetch: FollowerFetch,
    ) -> Result<FollowerRead, ReplicaError> {
        let p = self.leader_partition(tp)?;
        p.check_epoch(fetch.current_leader_epoch)?;
        let state = p.state();
        if !state.replicas.contains(&fetch.replica_id) || fetch.replica_id == self.node_id {
            return Err(ReplicaError::NotReplica(fetch.replica_id));
        }
        // A fetch from an older registration of the follower (a process that has since
        // restarted) must not move its state here (Kafka fences it the same way).
        let registered = self
            .broker_epochs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fetch.replica_id)
            .copied();
        if let Some(registered) =
            registered.filter(|r| fetch.broker_epoch >= 0 && *r > fetch.broker_epoch)
        {
            return Err(ReplicaError::StaleBrokerEpoch {
                broker: fetch.replica_id,
                fetched: fetch.broker_epoch,
                registered,
            });
        }
        let mut log = lock(&p.log);
        if fetch.last_fetched_epoch >= 0 {
            let (epoch, end_offset) = log.end_offset_for_epoch(fetch.last_fetched_epoch);
            if epoch != fetch.last_fetched_epoch || end_offset < fetch.fetch_offset {
                return Ok(FollowerRead::Diverging {
                    epoch,
                    end_offset,
                    high_watermark: log.high_watermark(),
                    log_start_offset: log.log_start_offset(),
                });
            }
        }
        let leo = log.log_end_offset();
        let now = now_ms();
        let pending = lock(&p.pending_isr).clone();
        // The maximal ISR: the committed one and any member being added.
        let mut isr = state.isr.clone();
        for r in pending.iter().flatten() {
            if !isr.contains(r) {
                isr.push(*r);
            }
        }
        let (hw, follower_leo) = {
            let mut followers = lock(&p.followers);
            let progress = followers.entry(fetch.replica_id).or_default();
            progress.log_end_offset = fetch.fetch_offset.min(leo);
            progress.last_fetch_ms = now;
            progress.broker_epoch = fetch.broker_epoch;
            if fetch.fetch_offset >= leo {
                progress.last_caught_up_ms = now;
            }
            let follower_leo = progress.log_end_offset;
            // The lowest LEO over the ISR; a member not heard from in this epoch holds it back.
            let hw = isr
                .iter()
                .map(|r| {
                    if *r == self.node_id {
                        leo
                    } else {
                        followers.get(r).map_or(0, |f| f.log_end_offset)
                    }
                })
                .min()
                .unwrap_or(leo);
            (hw, follower_leo)
        };
        // A follower out of the ISR that reached the HW and the start of this leader epoch
        // (so it fetched in this epoch) joins it (Kafka's maybeExpandIsr).
        let epoch_start = lock(&p.term).epoch_start_offset;
        let hw_now = hw.max(log.high_watermark());
        if !isr.contains(&fetch.replica_id)
            && pending.is_none()
            && follower_leo >= hw_now
            && follower_leo >= epoch_start
        {
            let mut new_isr = state.isr.clone();
            new_isr.push(fetch.replica_id);
            let epochs =
                (fetch.broker_epoch >= 0).then_some((fetch.replica_id, fetch.broker_epoch));
            self.request_isr_change(&p, &state, new_isr, epochs.into_iter().collect());
        }
        let advanced = hw > log.high_watermark();
        if advanced {
            p.set_high_watermark(&mut log, hw);
        }
        // A throttled follower outside the ISR gets nothing while the leader's replication
        // quota is used up (Kafka answers the partition without records).
        let throttled = state.leader_throttled
            && !isr.contains(&fetch.replica_id)
            && self.leader_quota.limit().is_some();
        let data = if throttled && self.leader_quota.exceeded(now) {
            log.read_slice(fetch.fetch_offset, 0, fetch.fetch_offset)?
        } else {
            log.read_slice(fetch.fetch_offset, fetch.max_bytes, leo)?
        };
        drop(log);
        if state.leader_throttled {
            self.leader_quota.record(data.records.as_ref().map_or(0, |r| r.len()) as u64, now);
        }
        if advanced {
            // Consumers waiting in long-poll fetches can read further.
            p.touch();
        }
        Ok(FollowerRead::Data(data))
    }

    /// Installs where ISR changes go (the metadata layer's AlterPartition sender).
    pub fn set_isr_sender(&self, sender: tokio::sync::mpsc::UnboundedSender<IsrChange>) {
        *lock(&self.isr_sender) = Some(sender);
    }

    /// Asks the controller for `new_isr`, unless a change is already asked for.
    fn request_isr_change(
        &self,
        p: &Partition,
        state: &PartitionState,
        new_isr: Vec<i32>,
        new_isr_epochs: std::collections::BTreeMap<i32, i64>,
    ) {
        let mut pending = lock(&p.pending_isr);
        if pending.is_some() {
            return;
        }
        let sender = lock(&self.isr_sender).clone();
        let Some(sender) = sender else { return };
        let change = IsrChange {
            tp: p.tp.clone(),
            topic_id: p.topic_id,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr: new_isr.clone(),
            new_isr_epochs,
        };
        tracing::info!(partition = %p.tp, from = ?state.isr, to = ?new_isr, "asking for an ISR change");
        if sender.send(change).is_ok() {
            *pending = Some(new_isr);
        }
    }

    /// The controller refused or did not answer an ISR change: the next check may ask again.
    pub fn isr_change_failed(&self, tp: &TopicPartition) {
        if let Some(p) = self.get(tp) {
            *lock(&p.pending_isr) = None;
        }
    }

    /// Shrinks the ISR of every partition led here by the followers that have not caught up
    /// with the leader's LEO for `lag_time_max_ms` (`replica.lag.time.max.ms`; Kafka's
    /// maybeShrinkIsr). A follower never heard from in this term counts from its start.
    pub fn check_isr(&self, lag_time_max_ms: i64) {
        let now = now_ms();
        for p in self.all() {
            let state = p.state();
            if state.leader != self.node_id || state.isr.len() <= 1 {
                continue;
            }
            let since = lock(&p.term).since_ms;
            let followers = lock(&p.followers).clone();
            let leo = lock(&p.log).log_end_offset();
            let lagging: Vec<i32> = state
                .isr
                .iter()
                .copied()
                .filter(|r| *r != self.node_id)
                .filter(|r| {
                    let f = followers.get(r);
                    let caught_up = f.map_or(since, |f| f.last_caught_up_ms.max(since));
                    let at_end = f.is_some_and(|f| f.log_end_offset >= leo);
                    !at_end && now - caught_up > lag_time_max_ms
                })
                .collect();
            if !lagging.is_empty() {
                let new_isr = state.isr.iter().copied().filter(|r| !lagging.contains(r)).collect();
                self.request_isr_change(&p, &state, new_isr, Default::default());
            }
        }
    }

    /// As a follower: appends batches fetched from the leader and takes its high watermark,
    /// capped at this log's end. Returns the new LEO.
    pub fn append_as_follower(
        &self,
        tp: &TopicPartition,
        records: &[u8],
        leader_hw: i64,
    ) -> Result<i64, ReplicaError> {
        let p = self.get(tp).ok_or(ReplicaError::UnknownTopicOrPartition)?;
        let mut log = lock(&p.log);
        if !records.is_empty() {
            let appended = log.append_as_follower(records);
            self.logs.note_write(appended.as_ref().map(|_| ()));
            appended?;
        }
        let leo = log.log_end_offset();
        p.set_high_watermark(&mut log, leader_hw.min(leo));
        Ok(leo)
    }

    /// Waits until the high watermark of `tp` reaches `offset` (acks=all) in leader epoch
    /// `leader_epoch`, the one the write was appended in, for at most `timeout`. Errs when this
    /// broker no longer leads in that epoch (even if it leads again later: the write may have
    /// been truncated meanwhile), when the wait times out, or when the ISR is smaller than
    /// `min.insync.replicas` once the write is in (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub async fn wait_for_high_watermark(
        &self,
        tp: &TopicPartition,
        offset: i64,
        leader_epoch: i32,
        timeout: std::time::Duration,
    ) -> Result<(), ReplicaError> {
        let p = self.leader_partition(tp)?;
        let mut hw = p.hw.subscribe();
        // Woken by every HW move and by leadership changes (which notify without a new value).
        // The HW is read before the epoch: epochs only grow, so an epoch still the append's
        // means the HW read was of that same term.
        let reached = async {
            loop {
                let hw_now = *hw.borrow_and_update();
                let same_term = {
                    let state = lock(&p.state);
                    state.leader == self.node_id && state.leader_epoch == leader_epoch
                };
                if !same_term {
                    return Err(ReplicaError::NotLeader);
                }
                if hw_now >= offset {
                    return Ok(());
                }
                if hw.changed().await.is_err() {
                    return Err(ReplicaError::NotLeader);
                }
            }
        };
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ReplicaError::Timeout),
        }
        let state = p.state();
        if state.leader != self.node_id {
            return Err(ReplicaError::NotLeader);
        }
        let min = lock(&p.log).config().min_insync_replicas.min(state.replicas.len().max(1) as i32);
        if (state.isr.len() as i32) < min {
            return Err(ReplicaError::NotEnoughReplicasAfterAppend { isr: state.isr.len(), min });
        }
        Ok(())
    }

    /// Runs `f` on the leader's log after checking the client's leader epoch.
    pub fn with_leader_log<T>(
        &self,
        tp: &TopicPartition,
        current_leader_epoch: i32,
        f: impl FnOnce(&mut crate::log::PartitionLog, &PartitionState) -> Result<T, ReplicaError>,
    ) -> Result<T, ReplicaError> {
        let p = self.leader_partition(tp)?;
        p.check_epoch(current_leader_epoch)?;
        let state = p.state();
        let mut log = lock(&p.log);
        let out = f(&mut log, &state);
        drop(log);
        p.touch();
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::log::batch::build_batch;
    use crate::log::SystemClock;
    use crate::metadata::{PartitionImage, TopicImage};

    fn image(topics: &[(&str, [u8; 16])]) -> ClusterImage {
        let mut image = ClusterImage {
            cluster_id: "c".into(),
            controller_id: 1,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_names_by_id: HashMap::new(),
            next_producer_id: 0,
            broker_configs: BTreeMap::new(),
            applied_index: 0,
        };
        for (name, id) in topics {
            let p = PartitionImage {
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                ..Default::default()
            };
            image.topics.insert(
                name.to_string(),
                TopicImage {
                    name: name.to_string(),
                    id: *id,
                    partitions: BTreeMap::from([(0, p)]),
                    configs: BTreeMap::new(),
                },
            );
            image.topic_names_by_id.insert(*id, name.to_string());
        }
        image
    }

    fn manager(dir: &std::path::Path) -> ReplicaManager {
        let (logs, _) = LogManager::open(dir, LogConfig::default(), Arc::new(SystemClock), |_| {
            LogConfig::default()
        })
        .unwrap();
        ReplicaManager::new(1, Arc::new(logs), LogConfig::default())
    }

    #[test]
    fn stray_logs_and_logs_of_older_topics_with_the_same_name_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let rm = manager(dir.path());
        rm.reconcile(&image(&[("kept", [1; 16]), ("gone", [2; 16])])).unwrap();
        for topic in ["kept", "gone"] {
            let mut b = build_batch(0, 0, &[(None, Some(b"v"))]);
            rm.append(&TopicPartition::new(topic, 0), &mut b, -1, AppendOrigin::Client).unwrap();
        }
        drop(rm);
        // Restart: "gone" was deleted and "kept" re-created (new id) while the logs stayed.
        let rm = manager(dir.path());
        rm.reconcile(&image(&[("kept", [3; 16])])).unwrap();
        assert!(!dir.path().join("gone-0").exists(), "stray log deleted");
        let kept = rm.get(&TopicPartition::new("kept", 0)).unwrap();
        assert_eq!(kept.log.lock().unwrap().log_end_offset(), 0, "the new topic starts empty");
        assert_eq!(kept.log.lock().unwrap().read_partition_metadata().unwrap(), Some([3; 16]));
    }

    /// acks=all needs min(min.insync.replicas, replicas) in-sync replicas, as Kafka's
    /// `effectiveMinIsr`: with two replicas and one in sync, min.insync.replicas=2 refuses it
    /// (nothing written) and acks=1 goes through; with one replica it is capped at 1.
    #[test]
    fn acks_all_needs_the_effective_min_isr() {
        let dir = tempfile::tempdir().unwrap();
        let rm = manager(dir.path());
        let mut img = image(&[("two", [4; 16]), ("one", [5; 16])]);
        let two = img.topics.get_mut("two").unwrap();
        two.partitions.get_mut(&0).unwrap().replicas = vec![1, 2];
        two.configs.insert("min.insync.replicas".into(), "2".into());
        img.topics.get_mut("one").unwrap().configs.insert("min.insync.replicas".into(), "2".into());
        rm.reconcile(&img).unwrap();
        let mut b = build_batch(0, 0, &[(None, Some(b"v"))]);
        let r = rm.append(&TopicPartition::new("two", 0), &mut b, -1, AppendOrigin::Client);
        assert!(matches!(r, Err(ReplicaError::NotEnoughReplicas { isr: 1, min: 2 })), "{r:?}");
        let mut b = build_batch(0, 0, &[(None, Some(b"v"))]);
        let appended =
            rm.append(&TopicPartition::new("two", 0), &mut b, 1, AppendOrigin::Client).unwrap();
        assert_eq!(appended.info.first_offset, 0, "the refused acks=all batch was not written");
        let mut b = build_batch(0, 0, &[(None, Some(b"v"))]);
        assert!(rm
            .append(&TopicPartition::new("one", 0), &mut b, -1, AppendOrigin::Client)
            .is_ok());
    }
}
