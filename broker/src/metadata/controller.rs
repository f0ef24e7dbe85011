//! The controller: validates admin requests, places replicas and proposes records.
//!
//! It runs on the raft leader only. Decisions are serialized by one lock held from validation
//! until the proposal is applied, so every request is checked against an image that already
//! holds all earlier decisions (KRaft gets the same from its single controller thread). A
//! request with several items (topics, partitions) is checked item by item on a scratch copy
//! of the image, each accepted item applied to the copy with the state machine's own
//! `apply_record`, so items of one request see each other; the accepted items are then
//! proposed as one batch that commits or fails as a whole. `validate_only` stops before the
//! proposal.
//!
//! The `plan_*` functions are pure (image in, record or error out) and carry Kafka's rules and
//! messages; the unit tests below exercise them without raft.
//!
//! Placement: unfenced brokers in rack-alternating order; partition `p` of a new topic gets
//! the `rf` brokers starting at `(partitions already in the cluster + p) % brokers`, the first
//! of them leads. Leaders are thereby spread round-robin over brokers and across topics, and
//! replicas of a partition land on different racks where there are enough racks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::ServerState;
use tokio::sync::{watch, Mutex, MutexGuard};

use super::elections::{
    plan_alter_partition, plan_fence, plan_preferred, plan_rebalance, plan_unclean, plan_unfence,
    Preferred,
};
use super::image::{uuid_to_string, ClusterImage, Endpoint, PartitionImage, TopicImage};
use super::reassignment::{check_assignment, plan_reassignment};
use super::state_machine::apply_record;
use super::state_machine::{AppliedEntry, RecentEntries};
use super::types::{AlterPartition, MetadataDelta, QuorumState, ReplicaState};
use super::types::{MetadataRaft, MetadataRecord, MetadataRequest, MetadataResponse};
use super::{AlterOp, MetadataError, NewTopic, PartitionIncrease, Reassignment, TopicRef};
use crate::log::LogConfig;

/// A leader that has not heard from a majority for this long is treated as having none.
pub(crate) const QUORUM_LOST_MS: u64 = 3000;
/// How long confirming leadership with a quorum may take before the call gets NOT_CONTROLLER.
const LEADER_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a proposal may take to commit before the caller gets `Timeout`.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest number of partitions one request may create in one topic. Kafka bounds the records
/// of one controller operation (10000); without a bound a single request could exhaust memory.
pub(crate) const MAX_PARTITIONS_PER_REQUEST: i32 = 10_000;
/// Longest legal topic name (Kafka's `Topic.MAX_NAME_LENGTH`).
const MAX_TOPIC_NAME_LEN: usize = 249;
/// Topic configs whose values are comma-separated lists (APPEND / SUBTRACT apply to them).
const LIST_CONFIGS: &[&str] = &["cleanup.policy"];

/// The settings the controller decides with.
#[derive(Debug, Clone)]
pub(crate) struct ControllerConfig {
    pub(crate) node_id: i32,
    pub(crate) defaults: LogConfig,
    pub(crate) num_partitions: i32,
    pub(crate) default_replication_factor: i16,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced.
    pub(crate) session_timeout: Duration,
    /// `auto.leader.rebalance.enable` and `leader.imbalance.check.interval.seconds`.
    pub(crate) rebalance_interval: Option<Duration>,
    /// The voters' controller endpoints, for DescribeQuorum.
    pub(crate) voters: Vec<(i32, String, u16)>,
}

/// What the active controller knows of a broker beyond the image: when it last heard from it.
/// Kept in memory only; a new controller gives every broker a fresh session, as Kafka's does.
#[derive(Debug, Clone, Copy)]
struct Session {
    last_seen: Instant,
    shutting_down: bool,
    /// How far the broker had applied the metadata log at its last heartbeat.
    applied: u64,
}

/// What the leader saw of a voter's replication, for DescribeQuorum.
#[derive(Debug, Clone, Copy, Default)]
struct VoterProgress {
    matched: Option<u64>,
    last_progress: Option<Instant>,
    last_caught_up: Option<Instant>,
}

/// Serializes controller decisions and proposes them to raft.
pub(crate) struct Controller {
    cfg: ControllerConfig,
    raft: MetadataRaft,
    image_rx: watch::Receiver<Arc<ClusterImage>>,
    lock: Mutex<()>,
    sessions: std::sync::Mutex<HashMap<i32, Session>>,
    progress: std::sync::Mutex<HashMap<u64, VoterProgress>>,
    /// The entries this node applied recently, served to broker-only nodes.
    recent: Arc<std::sync::Mutex<RecentEntries>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Where a registering broker is reached: its inter-broker endpoint, every client listener and
/// its admin HTTP port.
#[derive(Debug, Clone)]
pub(crate) struct BrokerEndpoints {
    pub host: String,
    pub port: u16,
    pub listeners: Vec<Endpoint>,
    pub admin_port: Option<u16>,
}

impl Controller {
    pub(crate) fn new(
        cfg: ControllerConfig,
        raft: MetadataRaft,
        image_rx: watch::Receiver<Arc<ClusterImage>>,
        recent: Arc<std::sync::Mutex<RecentEntries>>,
    ) -> Controller {
        Controller {
            cfg,
            raft,
            image_rx,
            lock: Mutex::new(()),
            sessions: std::sync::Mutex::new(HashMap::new()),
            progress: std::sync::Mutex::new(HashMap::new()),
            recent,
        }
    }

    /// A broker-only node's fetch of the metadata log after `after`: waits (at most
    /// `max_wait_ms`) until this node applied something newer, then answers the entries, or
    /// the whole image when they are no longer kept. Any voter answers.
    pub(crate) async fn fetch_metadata(
        &self,
        after: u64,
        max_wait_ms: u64,
    ) -> Result<(Option<i32>, MetadataDelta), MetadataError> {
        // Only the leader answers, as in KRaft: a voter cut off from the others would serve
        // frozen metadata while the rest of the cluster moves on.
        self.confirm_leader().await?;
        let mut images = self.image_rx.clone();
        let newer = images.wait_for(|i| i.applied_index > after);
        let _ = tokio::time::timeout(Duration::from_millis(max_wait_ms.min(10_000)), newer).await;
        let leader = self.raft.metrics().borrow().current_leader.map(|l| l as i32);
        let image = self.image_rx.borrow().clone();
        if image.applied_index <= after {
            return Ok((leader, MetadataDelta::Entries(Vec::new())));
        }
        let entries = self.recent.lock().unwrap_or_else(|e| e.into_inner()).after(after);
        Ok(match entries {
            Some(entries) if !entries.is_empty() => {
                (leader, MetadataDelta::Entries(bounded(entries)))
            }
            _ => (leader, MetadataDelta::Image(Box::new((*image).clone()))),
        })
    }

    /// The last metadata log index this node applied.
    pub(crate) fn applied_index(&self) -> u64 {
        self.image_rx.borrow().applied_index
    }

    /// Whether this node leads the quorum and has heard from a majority lately. openraft keeps a
    /// leader that lost its quorum in the leader state; such a leader can commit nothing and
    /// must not answer for the cluster (it would, for instance, tell brokers they are unfenced
    /// while the real leader fences them).
    pub(crate) fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let several = self.cfg.voters.len() > 1;
        m.state == ServerState::Leader
            && m.current_leader == Some(self.cfg.node_id as u64)
            && (!several || m.millis_since_quorum_ack.is_some_and(|ms| ms <= QUORUM_LOST_MS))
    }

    /// Confirms leadership with a quorum and waits until this node applied everything committed
    /// before its term began: a new leader must not decide on an image that misses its
    /// predecessor's last changes.
    async fn confirm_leader(&self) -> Result<(), MetadataError> {
        if !self.is_leader() {
            return Err(MetadataError::NotController);
        }
        match tokio::time::timeout(LEADER_CHECK_TIMEOUT, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(MetadataError::NotController),
        }
    }

    /// Takes the decision lock after confirming that this node leads the quorum; returns the
    /// image to decide on.
    async fn begin(&self) -> Result<(MutexGuard<'_, ()>, Arc<ClusterImage>), MetadataError> {
        let guard = self.lock.lock().await;
        self.confirm_leader().await?;
        let image = self.image_rx.borrow().clone();
        Ok((guard, image))
    }

    /// Proposes `records` as one batch and waits until it is applied.
    async fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<MetadataResponse, MetadataError> {
        let write = self.raft.client_write(MetadataRequest { records });
        match tokio::time::timeout(PROPOSAL_TIMEOUT, write).await {
            Err(_) => Err(MetadataError::Timeout),
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(MetadataError::NotController)
            }
            Ok(Err(RaftError::Fatal(Fatal::Stopped))) => Err(MetadataError::NotController),
            Ok(Err(e)) => Err(MetadataError::Internal(format!("metadata proposal failed: {e}"))),
        }
    }

    /// Proposes the accepted items' records (unless `validate_only`) and turns every accepted
    /// result into the proposal's error if it fails.
    async fn commit<T>(
        &self,
        records: Vec<MetadataRecord>,
        mut results: Vec<Result<T, MetadataError>>,
        validate_only: bool,
    ) -> Vec<Result<T, MetadataError>> {
        if validate_only || records.is_empty() {
            return results;
        }
        if let Err(e) = self.propose(records).await {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e.clone());
            }
        }
        results
    }

    /// Sets the cluster id unless one is set; returns the id in force.
    pub(crate) async fn ensure_cluster_id(
        &self,
        wanted: Option<&str>,
    ) -> Result<String, MetadataError> {
        let (_guard, image) = self.begin().await?;
        if !image.cluster_id.is_empty() {
            return match wanted {
                Some(w) if w != image.cluster_id => Err(MetadataError::InvalidConfig(format!(
                    "the metadata log belongs to cluster '{}' but cluster.id is set to '{w}'; \
                     the data directory is from another cluster",
                    image.cluster_id
                ))),
                _ => Ok(image.cluster_id.clone()),
            };
        }
        let cluster_id =
            wanted.map(str::to_owned).unwrap_or_else(|| uuid_to_string(&random_uuid()));
        self.propose(vec![MetadataRecord::SetClusterId { cluster_id: cluster_id.clone() }]).await?;
        Ok(cluster_id)
    }

    /// Registers broker `id` (fenced) under a new epoch. A retry (same incarnation) answers
    /// the epoch it got; another incarnation of a broker whose session is still alive is a
    /// duplicate node id and refused. A broker that comes back while still leading partitions
    /// (it crashed before its session expired) is fenced first, so its leaderships move on or
    /// end, and its return elects it under a new leader epoch.
    pub(crate) async fn register_broker(
        &self,
        id: i32,
        incarnation: [u8; 16],
        endpoints: BrokerEndpoints,
        rack: Option<String>,
    ) -> Result<i64, MetadataError> {
        let BrokerEndpoints { host, port, listeners, admin_port } = endpoints;
        let (_guard, image) = self.begin().await?;
        let mut records = Vec::new();
        let epoch = match image.brokers.get(&id) {
            Some(b) if b.incarnation == incarnation => return Ok(b.epoch),
            Some(b) => {
                let alive = self.session(id).is_some_and(|s| {
                    !s.shutting_down && s.last_seen.elapsed() < self.cfg.session_timeout
                });
                if alive && !b.fenced {
                    return Err(MetadataError::DuplicateBrokerRegistration(format!(
                        "Another broker is registered with node id {id} and is still alive \
                         (heard from within broker.session.timeout.ms = {} ms); two nodes may \
                         share a node.id",
                        self.cfg.session_timeout.as_millis()
                    )));
                }
                if !b.fenced {
                    records.extend(plan_fence(&image, id, b.epoch));
                }
                b.epoch + 1
            }
            None => 0,
        };
        records.push(MetadataRecord::RegisterBroker {
            id,
            epoch,
            host,
            port,
            rack,
            incarnation,
            listeners,
            admin_port,
        });
        self.propose(records).await?;
        self.touch(id, false, 0);
        Ok(epoch)
    }

    fn session(&self, id: i32) -> Option<Session> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(&id).copied()
    }

    fn touch(&self, id: i32, shutting_down: bool, applied: u64) {
        let session = Session { last_seen: Instant::now(), shutting_down, applied };
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(id, session);
    }

    /// A broker's heartbeat: keeps its session, unfences it once it has applied its own
    /// registration, or (`shutdown`) fences it so that its leaderships move away before it
    /// exits. Answers `(fenced, shutdown_ready)`.
    pub(crate) async fn heartbeat(
        &self,
        id: i32,
        epoch: i64,
        applied: u64,
        shutdown: bool,
    ) -> Result<(bool, bool), MetadataError> {
        // The session is refreshed as the heartbeat arrives: one that waits behind a slow
        // proposal for the decision lock is still a sign of life.
        let current = self.image_rx.borrow().brokers.get(&id).is_some_and(|b| b.epoch == epoch);
        if current && self.is_leader() {
            let was_shutting_down = self.session(id).is_some_and(|s| s.shutting_down);
            self.touch(id, shutdown || was_shutting_down, applied);
        }
        let (_guard, image) = self.begin().await?;
        let broker = match image.brokers.get(&id) {
            Some(b) if b.epoch == epoch => b,
            Some(b) => {
                return Err(MetadataError::StaleBrokerEpoch(format!(
                    "Broker {id} sent a heartbeat with epoch {epoch}, but its current epoch is {}",
                    b.epoch
                )))
            }
            None => {
                return Err(MetadataError::StaleBrokerEpoch(format!(
                    "Broker {id} is not registered"
                )))
            }
        };
        let shutting_down = shutdown || self.session(id).is_some_and(|s| s.shutting_down);
        self.touch(id, shutting_down, applied);
        if shutting_down {
            if !broker.fenced {
                self.propose(plan_fence(&image, id, epoch)).await?;
                tracing::info!(
                    broker = id,
                    "controlled shutdown: broker fenced, leaderships moved"
                );
            }
            return Ok((true, true));
        }
        if broker.fenced && applied >= broker.registered_at {
            self.propose(plan_unfence(&image, id, epoch)).await?;
            tracing::info!(broker = id, epoch, "broker unfenced");
            return Ok((false, false));
        }
        Ok((broker.fenced, false))
    }

    /// Fences every unfenced broker whose session expired. Called periodically on every node;
    /// does nothing unless this node leads. On becoming leader, every broker gets a fresh
    /// session first.
    pub(crate) async fn check_sessions(&self, leader_since: &mut Option<u64>) {
        let term = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.state == ServerState::Leader).then_some(m.current_term)
        };
        if term.is_none() || *leader_since != term {
            *leader_since = term;
            if term.is_some() {
                let image = self.image_rx.borrow().clone();
                let now = Instant::now();
                let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                for &id in image.brokers.keys() {
                    let fresh = Session { last_seen: now, shutting_down: false, applied: 0 };
                    sessions.insert(id, fresh);
                }
            }
            return;
        }
        self.track_progress();
        let expired: Vec<i32> = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let image = self.image_rx.borrow();
            // Sessions of brokers that are gone or fenced and silent are of no use.
            sessions.retain(|id, s| {
                image
                    .brokers
                    .get(id)
                    .is_some_and(|b| !b.fenced || s.last_seen.elapsed() < self.cfg.session_timeout)
            });
            let now = Instant::now();
            image
                .unfenced_brokers()
                .filter(|b| {
                    // A broker without a session (registered since this node took over, as
                    // its image caught up) gets a fresh one.
                    let s = sessions.entry(b.id).or_insert(Session {
                        last_seen: now,
                        shutting_down: false,
                        applied: 0,
                    });
                    s.last_seen.elapsed() >= self.cfg.session_timeout
                })
                .map(|b| b.id)
                .collect()
        };
        for id in expired {
            let Ok((_guard, image)) = self.begin().await else { return };
            // Heartbeats may have come while this waited for the lock.
            let still_expired =
                self.session(id).is_none_or(|s| s.last_seen.elapsed() >= self.cfg.session_timeout);
            let Some(b) = image.brokers.get(&id).filter(|b| !b.fenced && still_expired) else {
                continue;
            };
            let records = plan_fence(&image, id, b.epoch);
            match self.propose(records).await {
                Ok(_) => tracing::warn!(
                    broker = id,
                    timeout_ms = self.cfg.session_timeout.as_millis() as u64,
                    "broker session expired: fenced, its leaderships moved"
                ),
                Err(e) => {
                    tracing::warn!(broker = id, error = %e, "fencing an expired broker failed")
                }
            }
        }
    }

    /// Preferred-leader elections for every partition that needs one (the auto-rebalance).
    pub(crate) async fn rebalance(&self) {
        let Ok((_guard, image)) = self.begin().await else { return };
        let records = plan_rebalance(&image);
        if records.is_empty() {
            return;
        }
        let n = records.len();
        match self.propose(records).await {
            Ok(_) => tracing::info!(partitions = n, "preferred leaders restored"),
            Err(e) => tracing::warn!(error = %e, "preferred leader election failed"),
        }
    }

    /// AlterPartition from the leader of a partition.
    pub(crate) async fn alter_partition(
        &self,
        request: &AlterPartition,
    ) -> Result<(), MetadataError> {
        let (_guard, image) = self.begin().await?;
        let record = plan_alter_partition(&image, request)?;
        self.propose(vec![record]).await?;
        Ok(())
    }

    /// ElectLeaders: one result per requested partition; with `partitions` `None`, one per
    /// partition that got a new leader.
    pub(crate) async fn elect_leaders(
        &self,
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    ) -> Result<Vec<((String, i32), Result<(), MetadataError>)>, MetadataError> {
        let (_guard, image) = self.begin().await?;
        let plan = |topic: &str, p: i32| {
            if unclean {
                plan_unclean(&image, topic, p)
            } else {
                plan_preferred(&image, topic, p)
            }
        };
        let all = partitions.is_none();
        let wanted = partitions.unwrap_or_else(|| {
            image
                .topics
                .values()
                .flat_map(|t| t.partitions.keys().map(|&p| (t.name.clone(), p)))
                .collect()
        });
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (topic, p) in wanted {
            let result = match plan(&topic, p) {
                None => Err(MetadataError::UnknownTopic(topic.clone())),
                Some(Preferred::NotNeeded) => Err(MetadataError::ElectionNotNeeded),
                Some(Preferred::NotAvailable) if unclean => {
                    Err(MetadataError::EligibleLeadersNotAvailable(format!(
                        "No replica of {topic}-{p} is alive to lead it"
                    )))
                }
                Some(Preferred::NotAvailable) => Err(MetadataError::PreferredLeaderNotAvailable(
                    format!("The preferred leader of {topic}-{p} is not in sync or not available"),
                )),
                Some(Preferred::Elected(r)) => {
                    records.push(r);
                    Ok(())
                }
            };
            if !all || result.is_ok() {
                results.push(((topic, p), result));
            }
        }
        let (names, results): (Vec<_>, Vec<_>) = results.into_iter().unzip();
        let results = self.commit(records, results, false).await;
        Ok(names.into_iter().zip(results).collect())
    }

    /// Records how far each voter has replicated, for DescribeQuorum's timestamps.
    fn track_progress(&self) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let Some(replication) = m.replication.as_ref() else { return };
        let last = m.last_log_index;
        let now = Instant::now();
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        for (id, matched) in replication.iter() {
            let matched = matched.map(|l| l.index);
            let p = progress.entry(*id).or_default();
            if matched != p.matched {
                p.matched = matched;
                p.last_progress = Some(now);
            }
            if matched.is_some() && matched == last {
                p.last_caught_up = Some(now);
                p.last_progress = Some(now);
            }
        }
    }

    /// DescribeQuorum, from the leader's view of replication.
    pub(crate) fn describe_quorum(&self) -> Result<QuorumState, MetadataError> {
        if !self.is_leader() {
            return Err(MetadataError::NotController);
        }
        self.track_progress();
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let me = self.cfg.node_id as u64;
        let leo = |index: Option<u64>| index.map_or(-1, |i| i as i64 + 1);
        let ago = |t: Option<Instant>| t.map_or(-1, |t| t.elapsed().as_millis() as i64);
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let mut voters: Vec<ReplicaState> = m
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| {
                if id == me {
                    return ReplicaState {
                        id: id as i32,
                        log_end_offset: leo(m.last_log_index),
                        last_fetch_ms_ago: 0,
                        last_caught_up_ms_ago: 0,
                    };
                }
                let p = progress.get(&id).copied().unwrap_or_default();
                ReplicaState {
                    id: id as i32,
                    log_end_offset: leo(p.matched),
                    last_fetch_ms_ago: ago(p.last_progress),
                    last_caught_up_ms_ago: ago(p.last_caught_up),
                }
            })
            .collect();
        voters.sort_by_key(|v| v.id);
        // Broker-only nodes follow the log without voting: observers, as far as their last
        // heartbeat said they had applied it.
        let image = self.image_rx.borrow().clone();
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let observers = sessions
            .iter()
            .filter(|(id, _)| !voters.iter().any(|v| v.id == **id))
            .filter(|(id, _)| image.brokers.get(id).is_some_and(|b| !b.fenced))
            .map(|(&id, s)| ReplicaState {
                id,
                log_end_offset: s.applied as i64 + 1,
                last_fetch_ms_ago: s.last_seen.elapsed().as_millis() as i64,
                last_caught_up_ms_ago: -1,
            })
            .collect();
        Ok(QuorumState {
            leader_id: self.cfg.node_id,
            leader_epoch: i32::try_from(m.current_term).unwrap_or(i32::MAX),
            high_watermark: leo(m.last_applied.map(|l| l.index)),
            voters,
            observers,
            voter_endpoints: self.cfg.voters.clone(),
        })
    }

    /// How often `rebalance` should run, if at all.
    pub(crate) fn rebalance_interval(&self) -> Option<Duration> {
        self.cfg.rebalance_interval
    }

    pub(crate) async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>> {
        self.decide_each(&topics, validate_only, |scratch, topic| {
            let record = plan_create_topic(&self.cfg, scratch, topic, new_topic_id(scratch))?;
            let MetadataRecord::CreateTopic { name, id, partitions, configs } = &record else {
                return Err(MetadataError::Internal(
                    "topic creation planned another record".into(),
                ));
            };
            let created = TopicImage {
                name: name.clone(),
                id: *id,
                partitions: partitions.clone(),
                configs: configs.clone(),
            };
            Ok((Some(record), created))
        })
        .await
    }

    pub(crate) async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> Vec<Result<(String, [u8; 16]), MetadataError>> {
        self.decide_each(&topics, false, |scratch, topic| {
            plan_delete_topic(scratch, topic).map(|(name, id, record)| (Some(record), (name, id)))
        })
        .await
    }

    pub(crate) async fn create_partitions(
        &self,
        requests: Vec<PartitionIncrease>,
        validate_only: bool,
    ) -> Vec<Result<(), MetadataError>> {
        self.decide_each(&requests, validate_only, |scratch, (topic, count, assignments)| {
            let record = plan_create_partitions(scratch, topic, *count, assignments.as_deref())?;
            Ok((Some(record), ()))
        })
        .await
    }

    /// Decides each request in turn on a scratch copy of the image (a later one sees the
    /// earlier ones' effect), then commits the accepted records as one batch (unless
    /// `validate_only`). `plan` answers a request's record (none: accepted, nothing changes)
    /// and its result; if the batch fails, every accepted result becomes its error.
    async fn decide_each<R, T: Clone>(
        &self,
        requests: &[R],
        validate_only: bool,
        plan: impl Fn(&ClusterImage, &R) -> Result<(Option<MetadataRecord>, T), MetadataError>,
    ) -> Vec<Result<T, MetadataError>> {
        let (_guard, image) = match self.begin().await {
            Ok(x) => x,
            Err(e) => return vec![Err(e); requests.len()],
        };
        let mut scratch = (*image).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            match plan(&scratch, request) {
                Ok((record, result)) => {
                    if let Some(record) = record {
                        apply_record(&mut scratch, &record);
                        records.push(record);
                    }
                    results.push(Ok(result));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        self.commit(records, results, validate_only).await
    }

    /// AlterPartitionReassignments, decided one after the other on a scratch image and
    /// committed as one batch.
    pub(crate) async fn alter_reassignments(
        &self,
        requests: Vec<Reassignment>,
        allow_rf_change: bool,
    ) -> Vec<Result<(), MetadataError>> {
        self.decide_each(&requests, false, |scratch, (topic, partition, target)| {
            let state =
                plan_reassignment(scratch, topic, *partition, target.as_deref(), allow_rf_change)?;
            let record = state.map(|state| {
                let topic_id = scratch.topics[topic].id;
                MetadataRecord::PartitionChange { topic_id, partition: *partition, state }
            });
            Ok((record, ()))
        })
        .await
    }

    pub(crate) async fn alter_configs(
        &self,
        topic: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let (_guard, image) = self.begin().await?;
        let record = plan_alter_configs(&self.cfg, &image, topic, configs)?;
        self.commit(vec![record], vec![Ok(())], validate_only).await.remove(0)
    }

    pub(crate) async fn incremental_alter_configs(
        &self,
        topic: &str,
        ops: Vec<(String, AlterOp, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let (_guard, image) = self.begin().await?;
        let record = plan_incremental_alter_configs(&self.cfg, &image, topic, &ops)?;
        self.commit(vec![record], vec![Ok(())], validate_only).await.remove(0)
    }

    pub(crate) async fn alter_broker_configs(
        &self,
        broker: &str,
        ops: Vec<(String, AlterOp, Option<String>)>,
        replace: bool,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let (_guard, image) = self.begin().await?;
        let record = plan_broker_configs(&self.cfg, &image, broker, &ops, replace)?;
        self.commit(vec![record], vec![Ok(())], validate_only).await.remove(0)
    }

    pub(crate) async fn allocate_producer_ids(
        &self,
        broker: i32,
        count: i64,
    ) -> Result<i64, MetadataError> {
        let (_guard, image) = self.begin().await?;
        if count <= 0 {
            return Err(MetadataError::Internal(format!(
                "a producer id block must hold at least one id, not {count}"
            )));
        }
        if image.next_producer_id.checked_add(count).is_none() {
            return Err(MetadataError::Internal("producer ids are exhausted".into()));
        }
        let record = MetadataRecord::AllocateProducerIds { broker, count };
        let response = self.propose(vec![record]).await?;
        response.first_producer_id.ok_or_else(|| {
            MetadataError::Internal("producer id allocation returned no block".into())
        })
    }
}

/// Largest answer to one metadata fetch, in serialized bytes (the first entry always goes):
/// a broker far behind catches up over several fetches, each well under the frame limit.
const MAX_FETCH_BYTES: usize = 8 * 1024 * 1024;

/// The leading entries of `entries` that fit in [`MAX_FETCH_BYTES`].
fn bounded(entries: Vec<AppliedEntry>) -> Vec<AppliedEntry> {
    let mut bytes = 0;
    let mut out = Vec::new();
    for entry in entries {
        bytes += serde_json::to_vec(&entry).map_or(0, |b| b.len());
        if !out.is_empty() && bytes > MAX_FETCH_BYTES {
            break;
        }
        out.push(entry);
    }
    out
}

fn random_uuid() -> [u8; 16] {
    loop {
        let id = *uuid::Uuid::new_v4().as_bytes();
        // Like Kafka's Uuid.randomUuid: never the reserved ids 0 and 1, never a text form that
        // starts with '-' (it would read as a command-line flag).
        let reserved = id == [0; 16] || id == 1u128.to_be_bytes();
        if !reserved && !uuid_to_string(&id).starts_with('-') {
            return id;
        }
    }
}

fn new_topic_id(image: &ClusterImage) -> [u8; 16] {
    loop {
        let id = random_uuid();
        if !image.topic_names_by_id.contains_key(&id) {
            return id;
        }
    }
}

/// Kafka's `Topic.validate`.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let err = |msg: String| Err(MetadataError::InvalidTopic(msg));
    if name.is_empty() {
        return err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.chars().count() > MAX_TOPIC_NAME_LEN {
        return err(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, \
             topic name: {name}"
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') {
        return err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII \
             alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Metric names replace '.' with '_', so two such topics would share metrics.
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

fn validate_configs(
    defaults: &LogConfig,
    configs: &BTreeMap<String, String>,
) -> Result<(), MetadataError> {
    defaults
        .with_overrides(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map(|_| ())
        .map_err(|e| MetadataError::InvalidConfig(e.to_string()))
}

/// Unfenced brokers ordered so that consecutive entries alternate racks.
fn placement_order(image: &ClusterImage) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in image.unfenced_brokers() {
        by_rack.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::new();
    for i in 0..longest {
        order.extend(by_rack.values().filter_map(|ids| ids.get(i)));
    }
    order
}

fn check_replication_factor(rf: usize, brokers: usize) -> Result<(), MetadataError> {
    if rf > brokers {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {rf} time(s): The target replication factor of \
             {rf} cannot be reached because only {brokers} broker(s) are registered."
        )));
    }
    Ok(())
}

/// Places `count` partitions starting at index `first` with `rf` replicas each.
fn place(
    image: &ClusterImage,
    first: i32,
    count: i32,
    rf: usize,
) -> Result<BTreeMap<i32, PartitionImage>, MetadataError> {
    let brokers = placement_order(image);
    check_replication_factor(rf, brokers.len())?;
    let existing: usize = image.topics.values().map(|t| t.partitions.len()).sum();
    let n = brokers.len();
    Ok((0..count)
        .map(|k| {
            let base = existing + k as usize;
            let replicas: Vec<i32> = (0..rf).map(|j| brokers[(base + j) % n]).collect();
            let partition = PartitionImage {
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
                ..Default::default()
            };
            (first + k, partition)
        })
        .collect())
}

/// Checks one manually assigned replica list and builds its partition.
fn assigned_partition(
    image: &ClusterImage,
    partition: i32,
    replicas: &[i32],
) -> Result<PartitionImage, MetadataError> {
    check_assignment(image, replicas)?;
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|b| image.brokers.get(b).is_some_and(|b| !b.fenced))
        .collect();
    let Some(&leader) = isr.first() else {
        return Err(MetadataError::InvalidReplicaAssignment(format!(
            "All brokers specified in the manual partition assignment for partition {partition} \
             are fenced."
        )));
    };
    Ok(PartitionImage {
        replicas: replicas.to_vec(),
        isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        ..Default::default()
    })
}

fn too_many_partitions(n: i64) -> MetadataError {
    MetadataError::InvalidPartitions(format!(
        "Creating {n} partitions in one request exceeds the limit of {MAX_PARTITIONS_PER_REQUEST}."
    ))
}

/// Validates a new topic against `image` and builds its `CreateTopic` record.
pub(crate) fn plan_create_topic(
    cfg: &ControllerConfig,
    image: &ClusterImage,
    topic: &NewTopic,
    id: [u8; 16],
) -> Result<MetadataRecord, MetadataError> {
    let name = &topic.name;
    validate_topic_name(name)?;
    if image.topics.contains_key(name) {
        return Err(MetadataError::TopicAlreadyExists(name.clone()));
    }
    if name.contains(['.', '_']) {
        let key = collision_key(name);
        if let Some(other) = image.topics.keys().find(|t| collision_key(t) == key) {
            return Err(MetadataError::InvalidTopic(format!(
                "Topic '{name}' collides with existing topic: {other}"
            )));
        }
    }
    validate_configs(&cfg.defaults, &topic.configs)?;

    let partitions = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 {
            return Err(MetadataError::InvalidReplicaAssignment(
                "A manual partition assignment was specified, but numPartitions was not set to -1."
                    .into(),
            ));
        }
        if topic.replication_factor != -1 {
            return Err(MetadataError::InvalidReplicaAssignment(
                "A manual partition assignment was specified, but replicationFactor was not set \
                 to -1."
                    .into(),
            ));
        }
        if topic.assignments.len() > MAX_PARTITIONS_PER_REQUEST as usize {
            return Err(too_many_partitions(topic.assignments.len() as i64));
        }
        let mut partitions = BTreeMap::new();
        for (expected, (&index, replicas)) in topic.assignments.iter().enumerate() {
            if index != expected as i32 {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "Unexpected partition id {index}: partitions should be a consecutive 0-based \
                     integer sequence."
                )));
            }
            partitions.insert(index, assigned_partition(image, index, replicas)?);
        }
        partitions
    } else {
        let num_partitions =
            if topic.num_partitions == -1 { cfg.num_partitions } else { topic.num_partitions };
        if num_partitions <= 0 {
            return Err(MetadataError::InvalidPartitions(
                "Number of partitions was set to an invalid non-positive value.".into(),
            ));
        }
        if num_partitions > MAX_PARTITIONS_PER_REQUEST {
            return Err(too_many_partitions(num_partitions.into()));
        }
        let rf = if topic.replication_factor == -1 {
            cfg.default_replication_factor
        } else {
            topic.replication_factor
        };
        if rf <= 0 {
            return Err(MetadataError::InvalidReplicationFactor(
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ));
        }
        place(image, 0, num_partitions, rf as usize)?
    };
    Ok(MetadataRecord::CreateTopic {
        name: name.clone(),
        id,
        partitions,
        configs: topic.configs.clone(),
    })
}

/// Resolves a topic to delete and builds its `RemoveTopic` record.
pub(crate) fn plan_delete_topic(
    image: &ClusterImage,
    topic: &TopicRef,
) -> Result<(String, [u8; 16], MetadataRecord), MetadataError> {
    let found = match topic {
        TopicRef::Name(name) => {
            image.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?
        }
        TopicRef::Id(id) => image.topic_by_id(id).ok_or(MetadataError::UnknownTopicId)?,
    };
    if found.is_internal() {
        return Err(MetadataError::PolicyViolation(format!(
            "Topic '{}' is an internal topic and cannot be deleted.",
            found.name
        )));
    }
    Ok((found.name.clone(), found.id, MetadataRecord::RemoveTopic { id: found.id }))
}

/// Validates a partition increase and builds its `CreatePartitions` record.
pub(crate) fn plan_create_partitions(
    image: &ClusterImage,
    topic: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
) -> Result<MetadataRecord, MetadataError> {
    let t = image.topic(topic).ok_or_else(|| MetadataError::UnknownTopic(topic.to_owned()))?;
    let current = t.partitions.len() as i32;
    if count == current {
        return Err(MetadataError::InvalidPartitions(format!(
            "Topic already has {current} partitions."
        )));
    }
    if count < current {
        return Err(MetadataError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {count}."
        )));
    }
    let added = count - current;
    if added > MAX_PARTITIONS_PER_REQUEST {
        return Err(too_many_partitions(added.into()));
    }
    let rf = t.partitions.values().next().map_or(1, |p| p.replicas.len());
    let partitions = match assignments {
        Some(assignments) => {
            if assignments.len() != added as usize {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "Increasing the number of partitions by {added} but {} assignments provided.",
                    assignments.len()
                )));
            }
            let mut partitions = BTreeMap::new();
            for (k, replicas) in assignments.iter().enumerate() {
                let index = current + k as i32;
                if replicas.len() != rf && !replicas.is_empty() {
                    return Err(MetadataError::InvalidReplicaAssignment(format!(
                        "The manual partition assignment includes a partition with {} \
                         replica(s), but this is not consistent with previous partitions, which \
                         have {rf} replica(s).",
                        replicas.len()
                    )));
                }
                partitions.insert(index, assigned_partition(image, index, replicas)?);
            }
            partitions
        }
        None => place(image, current, added, rf)?,
    };
    Ok(MetadataRecord::CreatePartitions { topic_id: t.id, partitions })
}

/// Validates a full replacement of a topic's overrides (AlterConfigs).
pub(crate) fn plan_alter_configs(
    cfg: &ControllerConfig,
    image: &ClusterImage,
    topic: &str,
    configs: BTreeMap<String, String>,
) -> Result<MetadataRecord, MetadataError> {
    if image.topic(topic).is_none() {
        return Err(MetadataError::UnknownTopic(topic.to_owned()));
    }
    validate_configs(&cfg.defaults, &configs)?;
    Ok(MetadataRecord::ConfigChange { topic: topic.to_owned(), configs })
}

/// Applies IncrementalAlterConfigs operations to a topic's overrides and validates the result.
pub(crate) fn plan_incremental_alter_configs(
    cfg: &ControllerConfig,
    image: &ClusterImage,
    topic: &str,
    ops: &[(String, AlterOp, Option<String>)],
) -> Result<MetadataRecord, MetadataError> {
    let t = image.topic(topic).ok_or_else(|| MetadataError::UnknownTopic(topic.to_owned()))?;
    let defaults = cfg.defaults.to_props();
    let configs = apply_ops(
        t.configs.clone(),
        ops,
        |key| defaults.get(key).cloned(),
        |key| LIST_CONFIGS.contains(&key),
    )?;
    validate_configs(&cfg.defaults, &configs)?;
    Ok(MetadataRecord::ConfigChange { topic: topic.to_owned(), configs })
}

/// Applies IncrementalAlterConfigs operations to `configs`; `default` gives the current value
/// a LIST key APPENDs to when it is not set, `is_list` which keys are LISTs.
fn apply_ops(
    mut configs: BTreeMap<String, String>,
    ops: &[(String, AlterOp, Option<String>)],
    default: impl Fn(&str) -> Option<String>,
    is_list: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut seen = BTreeSet::new();
    for (key, _, _) in ops {
        if !seen.insert(key.as_str()) {
            return Err(MetadataError::InvalidConfig(format!(
                "Error due to duplicate config keys: '{key}' appears more than once."
            )));
        }
    }
    for (key, op, value) in ops {
        let require_value = || {
            value.clone().ok_or_else(|| {
                MetadataError::InvalidConfig(format!("Null value not supported for: {key}"))
            })
        };
        match op {
            AlterOp::Set => {
                configs.insert(key.clone(), require_value()?);
            }
            AlterOp::Delete => {
                configs.remove(key);
            }
            AlterOp::Append | AlterOp::Subtract => {
                if !is_list(key) {
                    let verb = if *op == AlterOp::Append { "APPEND" } else { "SUBTRACT" };
                    return Err(MetadataError::InvalidConfig(format!(
                        "Can't {verb} to key {key} because its type is not LIST."
                    )));
                }
                let value = require_value()?;
                let current =
                    configs.get(key).cloned().or_else(|| default(key)).unwrap_or_default();
                let mut items: Vec<String> = split_list(&current);
                for item in split_list(&value) {
                    if *op == AlterOp::Append {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    } else {
                        items.retain(|i| *i != item);
                    }
                }
                configs.insert(key.clone(), items.join(","));
            }
        }
    }
    Ok(configs)
}

/// Validates a change of a broker's dynamic configs (`broker`: this node's id, or "" for the
/// cluster-wide defaults), as Kafka's `DynamicBrokerConfig` does: every key must be one Kafka
/// lets change at run time, a per-broker-only key cannot be a cluster default, and values must
/// parse (log settings with the log's own validation).
pub(crate) fn plan_broker_configs(
    cfg: &ControllerConfig,
    image: &ClusterImage,
    broker: &str,
    ops: &[(String, AlterOp, Option<String>)],
    replace: bool,
) -> Result<MetadataRecord, MetadataError> {
    use crate::config::kafka::{check_kind, kafka_broker_key, Dynamic, Kind};
    // The receiving broker checked that the resource names itself; here it must at least name
    // a registered broker.
    let registered = broker.parse::<i32>().is_ok_and(|id| image.brokers.contains_key(&id));
    if !broker.is_empty() && !registered {
        return Err(MetadataError::InvalidRequest(format!(
            "Unexpected broker id, expected a registered broker id or empty string, but received \
             {broker}"
        )));
    }
    let current = if replace {
        BTreeMap::new()
    } else {
        image.broker_configs.get(broker).cloned().unwrap_or_default()
    };
    let configs = apply_ops(
        current,
        ops,
        |_| None,
        |key| kafka_broker_key(key).is_some_and(|k| k.kind == Kind::List),
    )?;
    let mut not_dynamic = Vec::new();
    let mut per_broker = Vec::new();
    for (key, value) in &configs {
        match kafka_broker_key(key) {
            Some(k) if k.dynamic == Dynamic::No => not_dynamic.push(key.as_str()),
            Some(k) => {
                if k.dynamic == Dynamic::PerBroker && broker.is_empty() {
                    per_broker.push(key.as_str());
                }
                check_kind(key, k.kind, value).map_err(MetadataError::InvalidConfig)?;
                let rate = matches!(
                    key.as_str(),
                    "leader.replication.throttled.rate" | "follower.replication.throttled.rate"
                );
                if rate && value.trim().parse::<i64>().is_ok_and(|r| r < 0) {
                    return Err(MetadataError::InvalidConfig(format!(
                        "Invalid value {value} for configuration {key}: Value must be at least 0"
                    )));
                }
            }
            None => {
                return Err(MetadataError::InvalidConfig(format!("Unknown broker config '{key}'")))
            }
        }
    }
    if !not_dynamic.is_empty() {
        return Err(MetadataError::InvalidRequest(format!(
            "Cannot update these configs dynamically: {not_dynamic:?}"
        )));
    }
    if !per_broker.is_empty() {
        return Err(MetadataError::InvalidRequest(format!(
            "Cannot update these configs at default cluster level, broker id must be specified: \
             {per_broker:?}"
        )));
    }
    // Log settings get the log's own validation (ranges, enums), as they would in a file.
    for (key, value) in &configs {
        if let Err(e @ crate::log::ConfigError::Invalid { .. }) =
            cfg.defaults.with_broker_overrides([(key.as_str(), value.as_str())])
        {
            return Err(MetadataError::InvalidConfig(e.to_string()));
        }
    }
    Ok(MetadataRecord::BrokerConfigChange { broker: broker.to_owned(), configs })
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::BrokerImage;

    fn cfg() -> ControllerConfig {
        ControllerConfig {
            node_id: 1,
            defaults: LogConfig::default(),
            num_partitions: 1,
            default_replication_factor: 1,
            session_timeout: Duration::from_secs(9),
            rebalance_interval: None,
            voters: Vec::new(),
        }
    }

    /// An image with unfenced brokers `ids` (rack = `r{id % 2}`) and fenced broker 9.
    fn image_with_brokers(ids: &[i32]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for &id in ids.iter().chain([9].iter()) {
            image.brokers.insert(
                id,
                BrokerImage {
                    id,
                    epoch: 0,
                    host: "localhost".into(),
                    port: 9092,
                    rack: Some(format!("r{}", id % 2)),
                    fenced: id == 9,
                    incarnation: [0; 16],
                    listeners: Vec::new(),
                    registered_at: 0,
                    admin_port: None,
                },
            );
        }
        image
    }

    fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        }
    }

    fn create(image: &mut ClusterImage, topic: &NewTopic) -> Result<(), MetadataError> {
        let id = new_topic_id(image);
        let record = plan_create_topic(&cfg(), image, topic, id)?;
        apply_record(image, &record);
        Ok(())
    }

    fn message(r: Result<impl std::fmt::Debug, MetadataError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn illegal_topic_names_are_invalid_topic() {
        let long = "a".repeat(250);
        for name in ["", ".", "..", long.as_str(), "a b", "tópico", "a/b"] {
            let r = plan_create_topic(
                &cfg(),
                &image_with_brokers(&[1]),
                &new_topic(name, 1, 1),
                [5; 16],
            );
            assert!(matches!(r, Err(MetadataError::InvalidTopic(_))), "{name:?}: {r:?}");
        }
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(validate_topic_name("Az09._-").is_ok());
    }

    #[test]
    fn existing_name_is_topic_already_exists_and_dot_underscore_twin_collides() {
        let mut image = image_with_brokers(&[1]);
        create(&mut image, &new_topic("a.b", 1, 1)).unwrap();
        let r = create(&mut image, &new_topic("a.b", 1, 1));
        assert_eq!(r, Err(MetadataError::TopicAlreadyExists("a.b".into())));
        let r = create(&mut image, &new_topic("a_b", 1, 1));
        assert!(
            matches!(&r, Err(MetadataError::InvalidTopic(m)) if m.contains("collides with existing topic: a.b")),
            "{r:?}"
        );
    }

    #[test]
    fn non_positive_partitions_and_replication_factors_are_rejected() {
        let image = image_with_brokers(&[1, 2]);
        for n in [0, -2] {
            let r = plan_create_topic(&cfg(), &image, &new_topic("t", n, 1), [5; 16]);
            assert!(matches!(r, Err(MetadataError::InvalidPartitions(_))), "{n}: {r:?}");
        }
        for rf in [0, -2] {
            let r = plan_create_topic(&cfg(), &image, &new_topic("t", 1, rf), [5; 16]);
            assert!(matches!(r, Err(MetadataError::InvalidReplicationFactor(_))), "{rf}: {r:?}");
        }
        let r = plan_create_topic(
            &cfg(),
            &image,
            &new_topic("t", MAX_PARTITIONS_PER_REQUEST + 1, 1),
            [5; 16],
        );
        assert!(matches!(r, Err(MetadataError::InvalidPartitions(_))), "{r:?}");
    }

    #[test]
    fn replication_factor_above_unfenced_brokers_names_both_numbers() {
        let image = image_with_brokers(&[1, 2]);
        let r = plan_create_topic(&cfg(), &image, &new_topic("t", 1, 3), [5; 16]);
        assert_eq!(
            message(r),
            "Unable to replicate the partition 3 time(s): The target replication factor of 3 \
             cannot be reached because only 2 broker(s) are registered."
        );
    }

    #[test]
    fn defaults_apply_for_minus_one() {
        let mut c = cfg();
        c.num_partitions = 3;
        c.default_replication_factor = 2;
        let r =
            plan_create_topic(&c, &image_with_brokers(&[1, 2]), &new_topic("t", -1, -1), [5; 16]);
        let MetadataRecord::CreateTopic { partitions, .. } = r.unwrap() else { panic!() };
        assert_eq!(partitions.len(), 3);
        assert!(partitions.values().all(|p| p.replicas.len() == 2 && p.isr == p.replicas));
    }

    #[test]
    fn leaders_spread_round_robin_and_replicas_alternate_racks() {
        let mut image = image_with_brokers(&[1, 2, 3, 4]);
        create(&mut image, &new_topic("t", 8, 2)).unwrap();
        let t = &image.topics["t"];
        let mut leaders = BTreeMap::<i32, usize>::new();
        for p in t.partitions.values() {
            *leaders.entry(p.leader).or_default() += 1;
            assert_eq!(p.leader, p.replicas[0]);
            assert_eq!(p.leader_epoch, 0);
            assert_ne!(p.replicas[0] % 2, p.replicas[1] % 2, "replicas on different racks: {p:?}");
            assert!(!p.replicas.contains(&9), "fenced broker not used");
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2, 2]);
        // The next topic continues the rotation instead of starting at the same broker.
        create(&mut image, &new_topic("u", 1, 1)).unwrap();
        create(&mut image, &new_topic("v", 1, 1)).unwrap();
        assert_ne!(
            image.topics["u"].partitions[&0].leader,
            image.topics["v"].partitions[&0].leader
        );
    }

    #[test]
    fn manual_assignment_rules() {
        let image = image_with_brokers(&[1, 2]);
        let with = |assignments: Vec<(i32, Vec<i32>)>, n: i32, rf: i16| {
            let mut t = new_topic("t", n, rf);
            t.assignments = assignments.into_iter().collect();
            plan_create_topic(&cfg(), &image, &t, [5; 16])
        };
        let bad = |r: Result<MetadataRecord, MetadataError>| {
            matches!(r, Err(MetadataError::InvalidReplicaAssignment(_)))
        };
        assert!(bad(with(vec![(0, vec![1])], 1, -1)), "num_partitions also set");
        assert!(bad(with(vec![(0, vec![1])], -1, 1)), "replication_factor also set");
        assert!(bad(with(vec![(0, vec![7])], -1, -1)), "unknown broker");
        assert!(bad(with(vec![(0, vec![])], -1, -1)), "empty replicas");
        assert!(bad(with(vec![(0, vec![1, 1])], -1, -1)), "duplicate replica");
        assert!(bad(with(vec![(0, vec![1]), (2, vec![2])], -1, -1)), "gap in partition ids");
        assert!(bad(with(vec![(1, vec![1])], -1, -1)), "does not start at 0");
        assert!(bad(with(vec![(0, vec![9])], -1, -1)), "only fenced replicas");

        let r = with(vec![(0, vec![2, 1]), (1, vec![9, 1])], -1, -1).unwrap();
        let MetadataRecord::CreateTopic { partitions, .. } = r else { panic!() };
        assert_eq!(partitions[&0].leader, 2);
        assert_eq!(partitions[&1].isr, vec![1], "fenced replica not in the ISR");
        assert_eq!(partitions[&1].leader, 1);
    }

    #[test]
    fn topic_configs_are_validated_with_the_key_in_the_message() {
        let image = image_with_brokers(&[1]);
        let mut t = new_topic("t", 1, 1);
        t.configs.insert("retention.ms".into(), "soon".into());
        let r = plan_create_topic(&cfg(), &image, &t, [5; 16]);
        assert!(
            matches!(&r, Err(MetadataError::InvalidConfig(m)) if m.contains("retention.ms")),
            "{r:?}"
        );
        t.configs.clear();
        t.configs.insert("no.such.key".into(), "1".into());
        let r = plan_create_topic(&cfg(), &image, &t, [5; 16]);
        assert!(
            matches!(&r, Err(MetadataError::InvalidConfig(m)) if m.contains("no.such.key")),
            "{r:?}"
        );
    }

    #[test]
    fn create_partitions_rules() {
        let mut image = image_with_brokers(&[1, 2]);
        create(&mut image, &new_topic("t", 3, 1)).unwrap();
        assert_eq!(
            message(plan_create_partitions(&image, "t", 2, None)),
            "Topic currently has 3 partitions, which is higher than the requested 2."
        );
        assert!(matches!(
            plan_create_partitions(&image, "t", 3, None),
            Err(MetadataError::InvalidPartitions(_))
        ));
        assert_eq!(
            plan_create_partitions(&image, "nope", 4, None),
            Err(MetadataError::UnknownTopic("nope".into()))
        );
        let bad = |r: Result<MetadataRecord, MetadataError>| {
            matches!(r, Err(MetadataError::InvalidReplicaAssignment(_)))
        };
        assert!(bad(plan_create_partitions(&image, "t", 5, Some(&[vec![1]]))), "count mismatch");
        assert!(bad(plan_create_partitions(&image, "t", 4, Some(&[vec![1, 2]]))), "rf mismatch");
        assert!(bad(plan_create_partitions(&image, "t", 4, Some(&[vec![8]]))), "unknown broker");

        let r = plan_create_partitions(&image, "t", 5, Some(&[vec![2], vec![1]])).unwrap();
        apply_record(&mut image, &r);
        assert_eq!(image.topics["t"].partitions[&3].leader, 2);
        let r = plan_create_partitions(&image, "t", 7, None).unwrap();
        apply_record(&mut image, &r);
        assert_eq!(image.topics["t"].partitions.len(), 7);
    }

    #[test]
    fn create_partitions_checks_replication_factor_against_unfenced_brokers() {
        let mut image = image_with_brokers(&[1, 2]);
        create(&mut image, &new_topic("t", 1, 2)).unwrap();
        image.brokers.get_mut(&2).unwrap().fenced = true;
        let r = plan_create_partitions(&image, "t", 2, None);
        assert!(matches!(r, Err(MetadataError::InvalidReplicationFactor(_))), "{r:?}");
    }

    #[test]
    fn deleting_unknown_or_internal_topics_fails() {
        let mut image = image_with_brokers(&[1]);
        create(&mut image, &new_topic("__consumer_offsets", 1, 1)).unwrap();
        create(&mut image, &new_topic("t", 1, 1)).unwrap();
        assert_eq!(
            plan_delete_topic(&image, &TopicRef::Name("x".into())).unwrap_err(),
            MetadataError::UnknownTopic("x".into())
        );
        assert_eq!(
            plan_delete_topic(&image, &TopicRef::Id([3; 16])).unwrap_err(),
            MetadataError::UnknownTopicId
        );
        let r = plan_delete_topic(&image, &TopicRef::Name("__consumer_offsets".into()));
        assert!(matches!(r, Err(MetadataError::PolicyViolation(_))), "{r:?}");
        let id = image.topics["t"].id;
        let (name, got, _) = plan_delete_topic(&image, &TopicRef::Id(id)).unwrap();
        assert_eq!((name.as_str(), got), ("t", id));
    }

    #[test]
    fn broker_configs_follow_kafkas_dynamic_rules() {
        let image = image_with_brokers(&[1]);
        let set = |k: &str, v: &str| (k.to_string(), AlterOp::Set, Some(v.to_string()));
        let plan = |broker: &str, ops: &[(String, AlterOp, Option<String>)]| {
            plan_broker_configs(&cfg(), &image, broker, ops, false)
        };
        let r = plan("", &[set("log.retention.ms", "5000"), set("num.io.threads", "16")]).unwrap();
        let MetadataRecord::BrokerConfigChange { broker, configs } = r else { panic!() };
        assert_eq!((broker.as_str(), configs.len()), ("", 2));
        assert!(plan("1", &[set("ssl.keystore.location", "/k")]).is_ok(), "per-broker");
        let e = plan("", &[set("ssl.keystore.location", "/k")]).unwrap_err();
        assert!(
            matches!(&e, MetadataError::InvalidRequest(m) if m.contains("default cluster level"))
        );
        let e = plan("1", &[set("node.id", "2")]).unwrap_err();
        assert!(matches!(&e, MetadataError::InvalidRequest(m) if m.contains("dynamically")));
        let e = plan("1", &[set("num.io.threads", "many")]).unwrap_err();
        assert!(matches!(e, MetadataError::InvalidConfig(_)));
        let e = plan("1", &[set("log.retention.ms", "-7")]).unwrap_err();
        assert!(matches!(&e, MetadataError::InvalidConfig(m) if m.contains("retention")), "{e}");
        let e = plan("1", &[set("no.such.key", "1")]).unwrap_err();
        assert!(matches!(e, MetadataError::InvalidConfig(_)));
        assert!(matches!(
            plan("2", &[set("num.io.threads", "4")]),
            Err(MetadataError::InvalidRequest(_))
        ));
        // Incremental: DELETE drops a key set before, SET keeps the others.
        let mut image = image;
        image.broker_configs.insert(
            "1".into(),
            BTreeMap::from([
                ("num.io.threads".into(), "4".into()),
                ("log.retention.ms".into(), "9".into()),
            ]),
        );
        let r = plan_broker_configs(
            &cfg(),
            &image,
            "1",
            &[("num.io.threads".into(), AlterOp::Delete, None)],
            false,
        )
        .unwrap();
        let MetadataRecord::BrokerConfigChange { configs, .. } = r else { panic!() };
        assert_eq!(configs.keys().collect::<Vec<_>>(), vec!["log.retention.ms"]);
    }

    #[test]
    fn alter_configs_replaces_and_validates() {
        let mut image = image_with_brokers(&[1]);
        create(&mut image, &new_topic("t", 1, 1)).unwrap();
        let good = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        assert!(plan_alter_configs(&cfg(), &image, "t", good.clone()).is_ok());
        assert_eq!(
            plan_alter_configs(&cfg(), &image, "x", good).unwrap_err(),
            MetadataError::UnknownTopic("x".into())
        );
        let bad = BTreeMap::from([("segment.bytes".to_string(), "-1".to_string())]);
        let r = plan_alter_configs(&cfg(), &image, "t", bad);
        assert!(
            matches!(&r, Err(MetadataError::InvalidConfig(m)) if m.contains("segment.bytes")),
            "{r:?}"
        );
    }

    #[test]
    fn incremental_alter_configs_set_delete_append_subtract() {
        let mut image = image_with_brokers(&[1]);
        let mut t = new_topic("t", 1, 1);
        t.configs.insert("retention.ms".into(), "5".into());
        create(&mut image, &t).unwrap();
        let ops = vec![
            ("retention.ms".to_string(), AlterOp::Delete, None),
            ("segment.ms".to_string(), AlterOp::Set, Some("1000".to_string())),
            ("cleanup.policy".to_string(), AlterOp::Append, Some("compact".to_string())),
        ];
        let r = plan_incremental_alter_configs(&cfg(), &image, "t", &ops).unwrap();
        let MetadataRecord::ConfigChange { configs, .. } = &r else { panic!() };
        assert_eq!(
            configs,
            &BTreeMap::from([
                ("cleanup.policy".to_string(), "delete,compact".to_string()),
                ("segment.ms".to_string(), "1000".to_string()),
            ])
        );
        apply_record(&mut image, &r);
        let ops =
            vec![("cleanup.policy".to_string(), AlterOp::Subtract, Some("delete".to_string()))];
        let r = plan_incremental_alter_configs(&cfg(), &image, "t", &ops).unwrap();
        let MetadataRecord::ConfigChange { configs, .. } = &r else { panic!() };
        assert_eq!(configs["cleanup.policy"], "compact");

        let invalid = |ops: Vec<(String, AlterOp, Option<String>)>| {
            matches!(
                plan_incremental_alter_configs(&cfg(), &image, "t", &ops),
                Err(MetadataError::InvalidConfig(_))
            )
        };
        assert!(
            invalid(vec![("segment.ms".into(), AlterOp::Append, Some("1".into()))]),
            "not a list"
        );
        assert!(invalid(vec![("segment.ms".into(), AlterOp::Set, None)]), "null value");
        assert!(invalid(vec![("segment.ms".into(), AlterOp::Set, Some("x".into()))]), "bad value");
        assert!(
            invalid(vec![
                ("segment.ms".into(), AlterOp::Set, Some("5".into())),
                ("segment.ms".into(), AlterOp::Delete, None),
            ]),
            "duplicate key"
        );
        assert_eq!(
            plan_incremental_alter_configs(&cfg(), &image, "x", &[]).unwrap_err(),
            MetadataError::UnknownTopic("x".into())
        );
    }

    #[test]
    fn random_ids_avoid_reserved_values() {
        for _ in 0..1000 {
            let id = random_uuid();
            assert!(id != [0; 16] && !uuid_to_string(&id).starts_with('-'));
        }
    }
}
