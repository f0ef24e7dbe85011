//! Follower fetchers (Kafka's ReplicaFetcherManager and ReplicaFetcherThread): one task per
//! leader broker fetches every partition this broker follows there, with the Fetch API as a
//! replica (`replica_id` = this node), the same read path consumers use on the leader.
//!
//! Each round (Fetch v15: topics by id, and this broker's registration epoch in
//! `replica_state`, KIP-903) sends the partitions' log end offsets and the epoch of their last
//! batch; the
//! leader long-polls (500 ms) and answers records, its high watermark, or the point where the
//! logs diverge (KIP-320), where the follower truncates before fetching again: a follower never
//! truncates blindly to its own high watermark. A partition whose leader refuses the fetch (it
//! no longer leads, or the epochs differ because one of the two has not applied the latest
//! metadata yet) waits a second, or for the next metadata change, and is fetched again. The
//! metadata publisher starts, changes and stops fetchers ([`update`]).
//!
//! Each fetcher keeps a fetch session with its leader ([`super::session`], KIP-227): after the
//! first full fetch, a round names only the partitions whose position changed, and the leader
//! answers only the partitions with something new.
//!
//! [`update`]: FetcherManager::update

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, ReplicaState};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::session::{Session, Wanted};
use super::ReplicaManager;
use crate::log::TopicPartition;
use crate::metadata::ClusterImage;
use sluice_client::KafkaConnection;

/// Fetch version used between brokers: carries the last fetched epoch (diverging epochs
/// answered), names topics by id, and carries the follower's broker epoch.
const FETCH_VERSION: i16 = 15;
/// How long the leader may hold a fetch that finds nothing new.
const MAX_WAIT_MS: i32 = 500;
/// Bytes per partition and per response.
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const RESPONSE_MAX_BYTES: i32 = 16 * 1024 * 1024;
/// How long a partition the leader refused waits before it is fetched again (Kafka's
/// `replica.fetch.backoff.ms`).
const FETCH_BACKOFF: Duration = Duration::from_secs(1);
/// Bounds of the pause after a failed round.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The partitions one fetcher follows, with the leader epoch each is expected at.
type Followed = BTreeMap<TopicPartition, i32>;

struct Fetcher {
    addr: String,
    partitions: watch::Sender<Followed>,
    task: JoinHandle<()>,
}

/// The fetchers of this broker, by leader id.
pub struct FetcherManager {
    node_id: i32,
    /// This broker's registration epoch, from the latest image (-1 before it registered).
    broker_epoch: Arc<AtomicI64>,
    replicas: Arc<ReplicaManager>,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl std::fmt::Debug for FetcherManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let leaders: Vec<i32> = self.lock().keys().copied().collect();
        f.debug_struct("FetcherManager").field("leaders", &leaders).finish()
    }
}

impl FetcherManager {
    pub fn new(node_id: i32, replicas: Arc<ReplicaManager>) -> FetcherManager {
        FetcherManager {
            node_id,
            broker_epoch: Arc::new(AtomicI64::new(-1)),
            replicas,
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Fetcher>> {
        self.fetchers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the fetchers follow what `image` says: every hosted partition whose leader is
    /// another unfenced broker is fetched from it. Called by the metadata publisher after the
    /// replica manager applied the image.
    pub fn update(&self, image: &ClusterImage) {
        let epoch = image.brokers.get(&self.node_id).map_or(-1, |b| b.epoch);
        self.broker_epoch.store(epoch, Ordering::Relaxed);
        let mut wanted: HashMap<i32, (String, Followed)> = HashMap::new();
        for p in self.replicas.all() {
            let state = p.state();
            if state.leader < 0 || state.leader == self.node_id {
                continue;
            }
            let Some(leader) = image.brokers.get(&state.leader).filter(|b| !b.fenced) else {
                continue;
            };
            let addr = leader.addr();
            let entry = wanted.entry(state.leader).or_insert_with(|| (addr, BTreeMap::new()));
            entry.1.insert(p.tp.clone(), state.leader_epoch);
        }
        let mut fetchers = self.lock();
        fetchers.retain(|leader, f| {
            let keep = wanted.get(leader).is_some_and(|(addr, _)| *addr == f.addr);
            if !keep {
                f.task.abort();
            }
            keep
        });
        for (leader, (addr, partitions)) in wanted {
            match fetchers.get(&leader) {
                Some(f) => {
                    f.partitions.send_if_modified(|current| {
                        let changed = *current != partitions;
                        *current = partitions;
                        changed
                    });
                }
                None => {
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else { continue };
                    let (tx, rx) = watch::channel(partitions);
                    let task = runtime.spawn(run(
                        (self.node_id, self.broker_epoch.clone()),
                        leader,
                        addr.clone(),
                        self.replicas.clone(),
                        rx,
                    ));
                    tracing::info!(leader, %addr, "started a follower fetcher");
                    fetchers.insert(leader, Fetcher { addr, partitions: tx, task });
                }
            }
        }
    }

    /// Stops every fetcher.
    pub fn shutdown(&self) {
        for (_, f) in self.lock().drain() {
            f.task.abort();
        }
    }
}

/// One fetcher: fetches `partitions` from `leader` at `addr` until aborted.
async fn run(
    (node_id, broker_epoch): (i32, Arc<AtomicI64>),
    leader: i32,
    addr: String,
    replicas: Arc<ReplicaManager>,
    mut partitions: watch::Receiver<Followed>,
) {
    let mut conn: Option<KafkaConnection> = None;
    let mut backoff = BACKOFF_MIN;
    // Partitions the leader refused, left out until the partitions change or for
    // `replica.fetch.backoff.ms` (the leader may just not have applied the same metadata yet).
    let mut paused: HashMap<TopicPartition, Instant> = HashMap::new();
    let mut failing = false;
    // Topic ids of the followed partitions, rebuilt only when they change (not every round).
    let mut asked = Asked::new();
    let mut asked_for = Followed::new();
    let mut session = Session::default();
    let client_id = format!("sluice-replica-{node_id}");
    loop {
        if partitions.has_changed().unwrap_or(false) {
            paused.clear();
        }
        let now = Instant::now();
        paused.retain(|_, until| *until > now);
        let followed: Followed = partitions.borrow_and_update().clone();
        let active: Followed =
            followed.into_iter().filter(|(tp, _)| !paused.contains_key(tp)).collect();
        if active.is_empty() {
            let resume = paused.values().min().copied();
            tokio::select! {
                changed = partitions.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(resume.unwrap_or(now + BACKOFF_MAX).into()) => {}
            }
            continue;
        }
        let epoch = broker_epoch.load(Ordering::Relaxed);
        if active != asked_for {
            asked = by_topic_id(&replicas, &active);
            asked_for = active.clone();
        }
        let wanted = to_fetch(node_id, &replicas, &active);
        if wanted.is_empty() {
            // Every partition is held back by the follower throttle: wait, as Kafka's
            // replica.fetch.backoff.ms, rather than send empty fetches.
            tokio::select! {
                changed = partitions.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(FETCH_BACKOFF) => {}
            }
            continue;
        }
        let request = fetch_request((node_id, epoch), session.build(wanted));
        let result = async {
            if conn.is_none() {
                conn = Some(
                    KafkaConnection::connect(&addr, &client_id, Duration::from_secs(5)).await?,
                );
            }
            let timeout = Duration::from_millis(MAX_WAIT_MS as u64) + Duration::from_secs(10);
            let c = conn.as_mut().expect("connected above");
            c.call::<_, FetchResponse>(ApiKey::Fetch, FETCH_VERSION, &request, timeout).await
        }
        .await;
        match result {
            Ok(response) => {
                if failing {
                    tracing::info!(leader, %addr, "follower fetcher reconnected");
                }
                failing = false;
                backoff = BACKOFF_MIN;
                session.answered(response.error_code, response.session_id);
                apply_response(&replicas, leader, (&asked, &response), &mut paused);
            }
            Err(e) => {
                conn = None;
                session.failed();
                if !failing {
                    tracing::warn!(leader, error = %e, "follower fetch failed; retrying");
                    failing = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = partitions.changed() => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Whether this follower's fetches of `p` count against the follower replication quota: it is
/// listed as throttled here and out of the ISR ([`super::quota`]).
fn throttled(node_id: i32, replicas: &ReplicaManager, p: &super::Partition) -> bool {
    if replicas.follower_quota.limit().is_none() {
        return false;
    }
    let state = p.state();
    state.follower_throttled && !state.isr.contains(&node_id)
}

/// The partitions a fetch asks for, by topic id and index (answers name topics by id).
type Asked = HashMap<([u8; 16], i32), TopicPartition>;

fn by_topic_id(replicas: &ReplicaManager, partitions: &Followed) -> Asked {
    partitions
        .keys()
        .filter_map(|tp| Some(((replicas.get(tp)?.topic_id, tp.partition), tp.clone())))
        .collect()
}

/// What this round fetches of `partitions`: each at its log end offset, leaving out the
/// throttled ones while the follower quota is used up.
fn to_fetch(node_id: i32, replicas: &ReplicaManager, partitions: &Followed) -> Wanted {
    let quota_used_up = replicas.follower_quota.exceeded(super::now_ms());
    let mut wanted = Wanted::new();
    for (tp, &epoch) in partitions {
        let Some(p) = replicas.get(tp) else { continue };
        if quota_used_up && throttled(node_id, replicas, &p) {
            continue;
        }
        let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
        wanted.insert(
            (p.topic_id, tp.partition),
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(epoch)
                .with_fetch_offset(log.log_end_offset())
                .with_last_fetched_epoch(log.latest_epoch().unwrap_or(-1))
                .with_log_start_offset(log.log_start_offset())
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
    }
    wanted
}

/// A replica fetch: this round of the session.
fn fetch_request(
    (node_id, broker_epoch): (i32, i64),
    round: super::session::Round,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(node_id))
                .with_replica_epoch(broker_epoch),
        )
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_session_id(round.session_id)
        .with_session_epoch(round.epoch)
        .with_topics(round.topics)
        .with_forgotten_topics_data(round.forgotten)
}

/// Appends what came, truncates where the leader says the logs diverge, and pauses the
/// partitions the leader refused.
fn apply_response(
    replicas: &ReplicaManager,
    leader: i32,
    (asked, response): (&Asked, &FetchResponse),
    paused: &mut HashMap<TopicPartition, Instant>,
) {
    let resume = Instant::now() + FETCH_BACKOFF;
    let now = super::now_ms();
    for topic in &response.responses {
        // Topics come back by id: the followed partition of that id and index.
        let id = *topic.topic_id.as_bytes();
        for data in &topic.partitions {
            let Some(tp) = asked.get(&(id, data.partition_index)).cloned() else { continue };
            let outcome = if data.error_code == 0 && data.diverging_epoch.epoch >= 0 {
                truncate_diverging(
                    replicas,
                    &tp,
                    data.diverging_epoch.epoch,
                    data.diverging_epoch.end_offset,
                )
            } else if data.error_code == 0 {
                let records = data.records.as_deref().unwrap_or_default();
                // Cheap check first: the partition's state is cloned only under a throttle.
                let limited = replicas.follower_quota.limit().is_some();
                if limited && replicas.get(&tp).is_some_and(|p| p.state().follower_throttled) {
                    replicas.follower_quota.record(records.len() as u64, now);
                }
                replicas.append_as_follower(&tp, records, data.high_watermark).map(|_| ())
            } else if data.error_code == ResponseError::OffsetOutOfRange.code() {
                truncate_out_of_range(replicas, &tp, data.log_start_offset, data.high_watermark)
            } else {
                tracing::debug!(partition = %tp, leader, code = data.error_code, "leader refused the fetch");
                paused.insert(tp, resume);
                continue;
            };
            if let Err(e) = outcome {
                tracing::warn!(partition = %tp, leader, error = %e, "applying fetched data failed");
                paused.insert(tp, resume);
            }
        }
    }
}

/// The leader's log ends epoch `epoch` at `end_offset`: keep what both logs share.
fn truncate_diverging(
    replicas: &ReplicaManager,
    tp: &TopicPartition,
    epoch: i32,
    end_offset: i64,
) -> Result<(), super::ReplicaError> {
    let p = replicas.get(tp).ok_or(super::ReplicaError::UnknownTopicOrPartition)?;
    let mut log = p.log.lock().unwrap_or_else(|e| e.into_inner());
    let (_, own_end) = log.end_offset_for_epoch(epoch);
    let target = end_offset.min(own_end);
    tracing::info!(partition = %tp, epoch, target, leo = log.log_end_offset(), "truncating to where the leader's log diverges");
    log.truncate_to(target)?;
    Ok(())
}

/// The fetch offset is outside the leader's log: below its start (retention or DeleteRecords
/// moved it) the follower starts over there; above its end, it truncates to the leader's HW.
fn truncate_out_of_range(
    replicas: &ReplicaManager,
    tp: &TopicPartition,
    leader_log_start: i64,
    leader_hw: i64,
) -> Result<(), super::ReplicaError> {
    let p = replicas.get(tp).ok_or(super::ReplicaError::UnknownTopicOrPartition)?;
    let mut log = p.log.lock().unwrap_or_else(|e| e.into_inner());
    if log.log_end_offset() < leader_log_start {
        log.truncate_fully_and_start_at(leader_log_start)?;
    } else {
        log.truncate_to(leader_hw.max(0))?;
    }
    Ok(())
}
