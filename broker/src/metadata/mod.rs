//! Cluster metadata: a raft-replicated log of KRaft-style records and the image built from it.
//!
//! # Design
//!
//! The metadata quorum runs on openraft (0.9, storage v2). Today it has exactly one voter, this
//! broker; the multi-broker work grows it by adding voters (`controller.quorum.voters`) and
//! learners, which needs a real transport in `network.rs` and nothing else here.
//!
//! - `types.rs`: the raft type config and the records (commands): `RegisterBroker`,
//!   `UnfenceBroker`/`FenceBroker`, `CreateTopic`, `CreatePartitions`, `ConfigChange`,
//!   `RemoveTopic`, `AllocateProducerIds`, `SetClusterId`. One proposal is a batch of records
//!   applied atomically.
//! - `log_store.rs`: the raft log, vote, committed and purged ids in
//!   `<data_dir>/__cluster_metadata/` (CRC32C-framed append-only file, fsync on append, torn
//!   tail cut at open).
//! - `state_machine.rs`: applies records to a [`ClusterImage`] and publishes a new
//!   `Arc<ClusterImage>` after every applied batch; snapshots are the serialized image. Every
//!   [`SNAPSHOT_EVERY_LOGS`] entries openraft takes a snapshot and later purges the log before
//!   it, so the image is always rebuilt from snapshot + log, never from other files.
//! - `controller.rs`: Kafka's validation rules and messages, replica placement, proposals. Runs
//!   on the raft leader; serialized by one lock.
//! - `network.rs`: the raft transport; with one voter no RPC is ever sent, and a remote target
//!   is reported unreachable with a message saying why.
//! - `image.rs`: the read-only image types the rest of the broker reads.
//!
//! [`MetadataNode`] ties them together: `start` opens the stores, initializes the one-voter
//! cluster the first time only (an initialized log is never initialized again), waits (bounded)
//! until this node leads and has applied its log, sets the cluster id on the first start, then
//! registers this broker under a new epoch and unfences it.

pub mod calls;
mod controller;
mod elections;
mod follower;
pub mod image;
mod log_store;
mod meta_properties;
mod network;
mod reassignment;
mod state_machine;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::log::LogConfig;
pub use calls::{AlterPartition, ControllerCall, ControllerReply, QuorumState, ReplicaState};
use controller::{Controller, ControllerConfig};
pub use image::{BrokerImage, ClusterImage, Endpoint, PartitionImage, TopicImage};
use log_store::LogStore;
use network::client::{ControllerClient, Network, RoundTripError};
use network::server::ServerContext;
use network::Hello;
use state_machine::StateMachineStore;
use types::MetadataRaft;

/// Directory under the broker data dir that holds the metadata log and snapshot.
pub const METADATA_DIR: &str = "__cluster_metadata";
/// Openraft takes a snapshot after this many entries since the last one, and keeps this many
/// entries before the snapshot for followers that lag a little.
pub const SNAPSHOT_EVERY_LOGS: u64 = 1000;
/// How long a single node's `start` waits for it to lead the quorum and be unfenced.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a controller call retries while no controller answers.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a caller waits to apply the metadata a controller's answer reflects.
const APPLY_WAIT: Duration = Duration::from_secs(5);
/// How long a controlled shutdown waits for any reachable controller.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(4);
/// How often the active controller looks for expired broker sessions.
const SESSION_CHECK: Duration = Duration::from_millis(250);

/// Settings of the metadata layer, taken from the broker config.
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    /// `node.id`: this broker's id and raft node id; must be >= 0.
    pub node_id: i32,
    /// Broker data directory; metadata lives in `<data_dir>/__cluster_metadata/`.
    pub data_dir: PathBuf,
    /// `cluster.id`; generated (22 characters of base64url from 16 random bytes, like Kafka)
    /// if absent at the first start. A different id than the stored one fails `start`.
    pub cluster_id: Option<String>,
    /// Advertised host of the inter-broker listener.
    pub host: String,
    /// Advertised port of the inter-broker listener.
    pub port: u16,
    /// Advertised endpoints of every client listener.
    pub listeners: Vec<Endpoint>,
    /// Port of the admin HTTP listener, registered so that peers can reach it.
    pub admin_port: Option<u16>,
    /// `controller.quorum.voters`; empty for a single node that is its own quorum.
    pub voters: Vec<VoterAddress>,
    /// The advertised port of this node's controller listener, when it serves one.
    pub controller_port: Option<u16>,
    /// `process.roles` includes `controller`: this node is a voter. Otherwise it follows the
    /// metadata log by fetching it from the voters.
    pub voter: bool,
    /// `process.roles` includes `broker`: this node registers and heartbeats as a broker.
    pub broker: bool,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `broker.session.timeout.ms`.
    pub session_timeout: Duration,
    /// `leader.imbalance.check.interval.seconds` when `auto.leader.rebalance.enable`.
    pub rebalance_interval: Option<Duration>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Broker log defaults; topic overrides are validated against them.
    pub defaults: LogConfig,
    /// `num.partitions`: partitions of a topic created with -1 (1).
    pub num_partitions: i32,
    /// `default.replication.factor`: replication factor of a topic created with -1 (1).
    pub default_replication_factor: i16,
}

impl MetadataConfig {
    /// Kafka's defaults for node `node_id` storing its data in `data_dir`, listening on
    /// 127.0.0.1:9092.
    pub fn new(node_id: i32, data_dir: impl Into<PathBuf>) -> MetadataConfig {
        MetadataConfig {
            node_id,
            data_dir: data_dir.into(),
            cluster_id: None,
            host: "127.0.0.1".into(),
            port: 9092,
            listeners: Vec::new(),
            admin_port: None,
            voters: Vec::new(),
            controller_port: None,
            voter: true,
            broker: true,
            heartbeat_interval: Duration::from_millis(2000),
            session_timeout: Duration::from_millis(9000),
            rebalance_interval: Some(Duration::from_secs(300)),
            rack: None,
            defaults: LogConfig::default(),
            num_partitions: 1,
            default_replication_factor: 1,
        }
    }

    fn validate(&self) -> Result<(), MetadataError> {
        let bad = |msg: String| Err(MetadataError::InvalidConfig(msg));
        if self.node_id < 0 {
            return bad(format!("node.id must be at least 0, not {}", self.node_id));
        }
        if self.num_partitions < 1 {
            return bad(format!("num.partitions must be at least 1, not {}", self.num_partitions));
        }
        if self.default_replication_factor < 1 {
            return bad(format!(
                "default.replication.factor must be at least 1, not {}",
                self.default_replication_factor
            ));
        }
        if self.cluster_id.as_deref().is_some_and(str::is_empty) {
            return bad("cluster.id must not be empty".into());
        }
        Ok(())
    }
}

/// One `controller.quorum.voters` entry, as the metadata layer takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterAddress {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// `host:port`, with brackets around an IPv6 literal.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A topic to create (CreateTopics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count; -1 uses `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor; -1 uses `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual replica assignment by partition index; empty for automatic placement.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
}

/// A topic named by name or by id (DeleteTopics v6+ accepts either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By topic id.
    Id([u8; 16]),
}

/// One CreatePartitions item: `(topic, new total partition count, replica assignments of the
/// new partitions or None for automatic placement)`.
pub type PartitionIncrease = (String, i32, Option<Vec<Vec<i32>>>);

/// A partition reassignment: topic, partition, and the target replicas (`None` cancels).
pub type Reassignment = (String, i32, Option<Vec<i32>>);

/// IncrementalAlterConfigs operation types, in Kafka's order (0..=3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlterOp {
    /// 0: set the value.
    Set,
    /// 1: remove the override (back to the default).
    Delete,
    /// 2: add items to a list config.
    Append,
    /// 3: remove items from a list config.
    Subtract,
}

/// Why a metadata operation failed. Messages are meant for the user; the protocol layer maps
/// each variant to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetadataError {
    /// TOPIC_ALREADY_EXISTS; holds the topic name.
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION; holds the topic name.
    #[error("Topic '{0}' does not exist.")]
    UnknownTopic(String),
    /// UNKNOWN_TOPIC_ID.
    #[error("No topic with this topic id exists.")]
    UnknownTopicId,
    /// INVALID_TOPIC_EXCEPTION.
    #[error("{0}")]
    InvalidTopic(String),
    /// INVALID_PARTITIONS.
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// INVALID_CONFIG.
    #[error("{0}")]
    InvalidConfig(String),
    /// POLICY_VIOLATION.
    #[error("{0}")]
    PolicyViolation(String),
    /// INVALID_REQUEST (e.g. a broker config that cannot change at run time).
    #[error("{0}")]
    InvalidRequest(String),
    /// NOT_CONTROLLER: this broker does not lead the metadata quorum (or has shut down).
    #[error("This broker is not the active controller.")]
    NotController,
    /// DUPLICATE_BROKER_REGISTRATION: another live process registered this node id.
    #[error("{0}")]
    DuplicateBrokerRegistration(String),
    /// STALE_BROKER_EPOCH: a heartbeat from an older registration.
    #[error("{0}")]
    StaleBrokerEpoch(String),
    /// ELECTION_NOT_NEEDED: the preferred replica already leads.
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE.
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    /// FENCED_LEADER_EPOCH: an ISR change from a broker that no longer leads at that epoch.
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// INVALID_UPDATE_VERSION: an ISR change decided on an older partition state.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// INELIGIBLE_REPLICA: a fenced or shutting-down broker may not join the ISR.
    #[error("{0}")]
    IneligibleReplica(String),
    /// NO_REASSIGNMENT_IN_PROGRESS: cancelling a reassignment where none runs.
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE (unclean election with no live replica).
    #[error("{0}")]
    EligibleLeadersNotAvailable(String),
    /// REQUEST_TIMED_OUT: the proposal was not committed in time; it may still commit.
    #[error("The metadata quorum did not commit the change in time.")]
    Timeout,
    /// UNKNOWN_SERVER_ERROR.
    #[error("Metadata internal error: {0}")]
    Internal(String),
}

/// The raft member and controller of a voter.
struct Quorum {
    raft: MetadataRaft,
    controller: Arc<Controller>,
}

struct NodeInner {
    config: MetadataConfig,
    /// `None` on a broker-only node, which follows the log without voting.
    quorum: Option<Quorum>,
    /// The active controller as a broker-only node last heard (-1: unknown).
    leader_hint: AtomicI64,
    client: ControllerClient,
    /// Controller endpoint of each voter by node id.
    voters: BTreeMap<u64, String>,
    image_rx: watch::Receiver<Arc<ClusterImage>>,
    broker_epoch: AtomicI64,
    /// Whether the controller has fenced this broker, as the last heartbeat answered.
    fenced: watch::Sender<bool>,
    /// The last image index the broker's metadata publisher applied to partitions and groups;
    /// `None` until a publisher runs.
    published: watch::Sender<Option<u64>>,
    storage: Arc<log_store::StorageHealth>,
    stopping: AtomicBool,
    shutdown: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// This broker's member of the metadata quorum, and the controller while it leads.
#[derive(Clone)]
pub struct MetadataNode {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for MetadataNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (term, leader, applied) = self.raft_metrics();
        f.debug_struct("MetadataNode")
            .field("node_id", &self.inner.config.node_id)
            .field("broker_epoch", &self.broker_epoch())
            .field("term", &term)
            .field("leader", &leader)
            .field("last_applied", &applied)
            .finish()
    }
}

fn raft_config(single: bool) -> Result<Config, MetadataError> {
    let mut config = Config {
        cluster_name: "sluice-metadata".into(),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_LOGS),
        max_in_snapshot_log_to_keep: SNAPSHOT_EVERY_LOGS,
        ..Default::default()
    };
    if !single {
        // Kafka's controller.quorum.election.timeout.ms (1 s): a busy machine does not start
        // elections while the leader is merely slow, and a dead leader is replaced within 2 s.
        config.heartbeat_interval = 250;
        config.election_timeout_min = 1000;
        config.election_timeout_max = 2000;
        // openraft bounds each append-entries call by the heartbeat interval: keep batches
        // small enough to cross in it, and give snapshots (JSON, 1 MiB chunks) time.
        config.max_payload_entries = 64;
        config.install_snapshot_timeout = 10_000;
        config.snapshot_max_chunk_size = 1024 * 1024;
    }
    config.validate().map_err(|e| MetadataError::Internal(format!("raft config: {e}")))
}

/// `controller.quorum.voters` in one canonical form, compared between nodes.
fn canonical_voters(voters: &BTreeMap<u64, String>) -> String {
    voters.iter().map(|(id, addr)| format!("{id}@{addr}")).collect::<Vec<_>>().join(",")
}

impl MetadataNode {
    /// [`MetadataNode::start_with_listener`] for a single node, which needs no listener.
    pub async fn start(cfg: MetadataConfig) -> Result<Self, MetadataError> {
        Self::start_with_listener(cfg, None).await
    }

    /// Opens the metadata stores, serves the controller listener (when this node is one of
    /// several voters), forms or joins the quorum, makes sure the cluster id is set, registers
    /// this broker under a new epoch and waits until the controller unfences it. A single node
    /// waits at most 30 s for that; a cluster node waits as long as it takes for a quorum of
    /// voters to come up, saying so in the log.
    pub async fn start_with_listener(
        cfg: MetadataConfig,
        controller_listener: Option<TcpListener>,
    ) -> Result<Self, MetadataError> {
        cfg.validate()?;
        let single = cfg.voters.is_empty();
        let stored_cluster_id =
            meta_properties::check(&cfg.data_dir, cfg.node_id, cfg.cluster_id.as_deref())?;
        let node_id = cfg.node_id as u64;
        let voters: BTreeMap<u64, String> = if single {
            BTreeMap::from([(node_id, host_port(&cfg.host, cfg.port))])
        } else {
            cfg.voters.iter().map(|v| (v.id as u64, host_port(&v.host, v.port))).collect()
        };
        let incarnation = *uuid::Uuid::new_v4().as_bytes();
        let hello = Arc::new(Hello {
            cluster_id: cfg.cluster_id.clone().or(stored_cluster_id).unwrap_or_default(),
            node_id: cfg.node_id,
            voters: canonical_voters(&voters),
            incarnation,
            controller_port: cfg.controller_port,
        });
        let (image_tx, image_rx) = watch::channel(Arc::new(ClusterImage::default()));
        let storage = Arc::new(log_store::StorageHealth::default());
        let (quorum, follower_tx) = if cfg.voter {
            let quorum =
                open_quorum(&cfg, &voters, hello.clone(), image_tx, image_rx.clone(), &storage)
                    .await?;
            (Some(quorum), None)
        } else {
            (None, Some(image_tx))
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let node = MetadataNode {
            inner: Arc::new(NodeInner {
                quorum,
                leader_hint: AtomicI64::new(-1),
                client: ControllerClient::new(hello.clone()),
                voters,
                image_rx,
                broker_epoch: AtomicI64::new(-1),
                // A node that is not a broker is never fenced: it has nothing to lead.
                fenced: watch::channel(cfg.broker).0,
                published: watch::channel(None).0,
                storage,
                stopping: AtomicBool::new(false),
                shutdown,
                tasks: std::sync::Mutex::new(Vec::new()),
                config: cfg,
            }),
        };
        if let (Some(listener), Some(q)) = (controller_listener, &node.inner.quorum) {
            let ctx = Arc::new(ServerContext {
                hello: (*hello).clone(),
                raft: q.raft.clone(),
                controller: q.controller.clone(),
                peers: Default::default(),
            });
            node.spawn(network::server::serve(listener, ctx, shutdown_rx.clone()));
        }
        if let Some(tx) = follower_tx {
            node.spawn(follower::follow(node.clone(), tx));
        }
        // Start-up may be abandoned (a signal while a cluster node waits for its quorum): then
        // the tasks and raft stop with it.
        let mut armed = AbortOnDrop(Some(node.clone()));
        match node.bootstrap().await {
            Ok(()) => {}
            Err(e) => {
                armed.0 = None;
                node.shutdown().await;
                return Err(e);
            }
        }
        armed.0 = None;
        tracing::info!(
            node_id = node.node_id(),
            broker_epoch = node.broker_epoch(),
            cluster_id = %node.image().cluster_id,
            "metadata quorum ready"
        );
        Ok(node)
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
    }

    async fn bootstrap(&self) -> Result<(), MetadataError> {
        let cfg = &self.inner.config;
        self.wait_for_leader().await?;
        let cluster_id = match self
            .call(ControllerCall::EnsureClusterId { wanted: cfg.cluster_id.clone() })
            .await?
        {
            ControllerReply::ClusterId(id) => id,
            other => return Err(unexpected(other)),
        };
        meta_properties::write(&cfg.data_dir, cfg.node_id, &cluster_id)?;
        if self.inner.quorum.is_some() {
            self.spawn(self.clone().controller_loop());
        }
        if !cfg.broker {
            return Ok(());
        }
        let incarnation = self.inner.client.incarnation();
        let register = ControllerCall::RegisterBroker {
            id: cfg.node_id,
            incarnation,
            host: cfg.host.clone(),
            port: cfg.port,
            listeners: cfg.listeners.clone(),
            rack: cfg.rack.clone(),
            admin_port: cfg.admin_port,
        };
        let mut logged = false;
        let epoch = loop {
            match self.call(register.clone()).await {
                Ok(ControllerReply::Registered { epoch }) => break epoch,
                Ok(other) => return Err(unexpected(other)),
                Err(MetadataError::DuplicateBrokerRegistration(why)) if !self.stopping() => {
                    if !logged {
                        tracing::warn!(
                            "registration refused, retrying until the old session expires: {why}"
                        );
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.inner.broker_epoch.store(epoch, Ordering::SeqCst);
        self.spawn(self.clone().heartbeat_loop());
        let mut fenced = self.inner.fenced.subscribe();
        let unfenced = fenced.wait_for(|f| !*f);
        if self.is_single_node() {
            tokio::time::timeout(START_TIMEOUT, unfenced)
                .await
                .map_err(|_| MetadataError::Timeout)?
        } else {
            unfenced.await
        }
        .map_err(|_| MetadataError::Internal("the heartbeat task stopped".into()))?;
        Ok(())
    }

    fn is_single_node(&self) -> bool {
        self.inner.config.voters.is_empty()
    }

    fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Waits until the quorum has a leader and this node applied what it had committed (a
    /// voter), or until this node fetched the metadata log once (a broker-only node).
    async fn wait_for_leader(&self) -> Result<(), MetadataError> {
        let Some(quorum) = &self.inner.quorum else {
            let mut images = self.inner.image_rx.clone();
            let mut waited = Duration::ZERO;
            const STEP: Duration = Duration::from_secs(10);
            loop {
                let fetched = images.wait_for(|i| i.applied_index > 0);
                match tokio::time::timeout(STEP, fetched).await {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err(_)) => {
                        return Err(MetadataError::Internal("metadata follower stopped".into()))
                    }
                    Err(_) => {
                        waited += STEP;
                        tracing::info!(
                            waited_s = waited.as_secs(),
                            voters = %canonical_voters(&self.inner.voters),
                            "waiting to fetch the metadata log from the controller.quorum.voters"
                        );
                    }
                }
            }
        };
        let raft = &quorum.raft;
        let has_leader = |m: &openraft::RaftMetrics<u64, BasicNode>| m.current_leader.is_some();
        if self.is_single_node() {
            raft.wait(Some(START_TIMEOUT))
                .metrics(
                    |m| {
                        m.state == ServerState::Leader
                            && m.last_log_index.is_some()
                            && m.last_applied.map(|id| id.index) == m.last_log_index
                    },
                    "lead the metadata quorum and apply its log",
                )
                .await
                .map_err(|_| MetadataError::Timeout)?;
            return Ok(());
        }
        let mut waited = Duration::ZERO;
        const STEP: Duration = Duration::from_secs(10);
        loop {
            match raft.wait(Some(STEP)).metrics(has_leader, "a metadata quorum leader").await {
                Ok(_) => return Ok(()),
                Err(openraft::metrics::WaitError::Timeout(..)) => {
                    waited += STEP;
                    tracing::info!(
                        waited_s = waited.as_secs(),
                        voters = %canonical_voters(&self.inner.voters),
                        "waiting for a majority of the controller.quorum.voters to elect a leader"
                    );
                }
                Err(e) => return Err(MetadataError::Internal(e.to_string())),
            }
        }
    }

    /// Runs `call` on the active controller, wherever it is, and waits until this node has
    /// applied the metadata the answer reflects (so a topic created through this broker is in
    /// its own image when the call returns). Retries while there is no reachable controller,
    /// for at most [`CALL_TIMEOUT`].
    pub async fn call(&self, call: ControllerCall) -> Result<ControllerReply, MetadataError> {
        self.call_within(call, CALL_TIMEOUT, CALL_TIMEOUT).await
    }

    /// [`MetadataNode::call`] within `timeout`, giving up sooner when no controller could be
    /// reached for `patience`.
    async fn call_within(
        &self,
        call: ControllerCall,
        timeout: Duration,
        patience: Duration,
    ) -> Result<ControllerReply, MetadataError> {
        let (reply, index) = self.send_call(call, timeout, patience).await?;
        self.wait_published(index).await;
        Ok(reply)
    }

    /// Who this node believes leads the quorum, and whether that is itself without a quorum.
    fn leader(&self) -> (Option<u64>, bool) {
        let Some(quorum) = &self.inner.quorum else {
            let hint = self.inner.leader_hint.load(Ordering::SeqCst);
            return (u64::try_from(hint).ok(), false);
        };
        let leader = quorum.raft.metrics().borrow().current_leader;
        // A leader that has not heard from a majority for a while (the others are down)
        // cannot commit anything: do not wait on it.
        let lost = leader == Some(self.node_id() as u64) && !quorum.controller.is_leader();
        (leader, lost)
    }

    /// Sends `call` to the active controller (retrying while there is none) and answers its
    /// reply and the metadata index it reflects, without waiting to apply it.
    async fn send_call(
        &self,
        call: ControllerCall,
        timeout: Duration,
        patience: Duration,
    ) -> Result<(ControllerReply, u64), MetadataError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut unreachable_since = None;
        let me = self.node_id() as u64;
        // A broker-only node that knows no leader asks the voters in turn.
        let mut next_voter = self.inner.voters.keys().copied().cycle();
        loop {
            if self.stopping() {
                return Err(MetadataError::NotController);
            }
            let (leader, lost_quorum) = self.leader();
            let target = match (leader, &self.inner.quorum) {
                (Some(id), _) => Some(id),
                (None, None) => next_voter.next(),
                (None, Some(_)) => None,
            };
            let attempt = match (target, &self.inner.quorum) {
                (Some(id), Some(_)) if id == me && lost_quorum => Err(MetadataError::NotController),
                (Some(id), Some(q)) if id == me => q.controller.handle(call.clone()).await,
                (Some(id), _) => match self.inner.voters.get(&id) {
                    Some(addr) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        let ttl = left.max(Duration::from_millis(100));
                        match self.inner.client.call(addr, call.clone(), ttl).await {
                            Ok(r) => r,
                            Err(e @ RoundTripError::NotSent { .. }) => {
                                tracing::debug!(error = %e, "controller call not sent");
                                Err(MetadataError::NotController)
                            }
                            Err(e @ RoundTripError::Lost { .. }) => {
                                tracing::warn!(error = %e, "controller call lost");
                                if self.inner.quorum.is_none() {
                                    self.inner.leader_hint.store(-1, Ordering::SeqCst);
                                }
                                return Err(MetadataError::Timeout);
                            }
                        }
                    }
                    None => Err(MetadataError::NotController),
                },
                (None, _) => Err(MetadataError::NotController),
            };
            match attempt {
                Ok(answer) => return Ok(answer),
                Err(MetadataError::NotController) if tokio::time::Instant::now() < deadline => {
                    if self.inner.quorum.is_none() {
                        // That voter does not lead: forget the hint and ask the next one.
                        self.inner.leader_hint.store(-1, Ordering::SeqCst);
                    }
                    let since = *unreachable_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= patience {
                        return Err(MetadataError::Timeout);
                    }
                    // Wait for a leader change, or retry soon (the leader may be restarting).
                    // Only a change of leader wakes it: a candidate's metrics change all the
                    // time, and waking on each would spin while the quorum is lost.
                    match &self.inner.quorum {
                        Some(q) => {
                            let mut metrics = q.raft.metrics();
                            let before = metrics.borrow().current_leader;
                            let changed = metrics.wait_for(|m| m.current_leader != before);
                            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
                        }
                        None => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                Err(MetadataError::NotController) => return Err(MetadataError::Timeout),
                Err(e) => return Err(e),
            }
        }
    }

    /// Records the active controller a voter named in a fetch answer (broker-only nodes).
    fn note_leader(&self, leader: Option<i32>) {
        self.inner.leader_hint.store(leader.map_or(-1, i64::from), Ordering::SeqCst);
    }

    /// Waits (at most [`APPLY_WAIT`]) until this broker has applied the metadata log up to
    /// `index`: to its partitions and groups once a publisher runs, else to its image.
    async fn wait_published(&self, index: u64) {
        let wait = async {
            if self.inner.published.borrow().is_some() {
                let mut published = self.inner.published.subscribe();
                let _ = published.wait_for(|p| p.is_some_and(|p| p >= index)).await;
            } else {
                let mut images = self.inner.image_rx.clone();
                let _ = images.wait_for(|i| i.applied_index >= index).await;
            }
        };
        let _ = tokio::time::timeout(APPLY_WAIT, wait).await;
    }

    /// How far this broker has applied the metadata log to its partitions and groups (its
    /// image, before a publisher runs).
    fn published_index(&self) -> u64 {
        let applied = self.image().applied_index;
        self.inner.published.borrow().map_or(applied, |p| p.min(applied))
    }

    /// The broker's metadata publisher applied the image up to `index`.
    pub fn mark_published(&self, index: u64) {
        self.inner.published.send_replace(Some(index));
    }

    /// Tells the controller every `broker.heartbeat.interval.ms` that this broker is alive and
    /// how far it applied the metadata log; learns whether it is fenced.
    async fn heartbeat_loop(self) {
        let interval = self.inner.config.heartbeat_interval;
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut failing = false;
        loop {
            let call = ControllerCall::Heartbeat {
                id: self.node_id(),
                epoch: self.broker_epoch(),
                applied: self.published_index(),
                shutdown: false,
            };
            // Not waiting for the answer's metadata to be published: the heartbeat is what
            // tells the controller how far that is.
            let answer = self.send_call(call, interval, interval).await;
            let ok = answer.is_ok();
            match answer.map(|(reply, _)| reply) {
                Ok(ControllerReply::Heartbeat { fenced, .. }) => {
                    failing = false;
                    self.inner.fenced.send_if_modified(|f| std::mem::replace(f, fenced) != fenced);
                }
                Ok(other) => tracing::warn!("unexpected heartbeat answer {other:?}"),
                Err(e) if !failing && !self.stopping() => {
                    failing = true;
                    tracing::warn!(error = %e, "heartbeat to the controller failed; retrying");
                }
                Err(_) => {}
            }
            // While fenced, the next heartbeat comes quickly, so that start-up does not wait an
            // interval for the unfencing; errors wait a whole one.
            let quick = ok && *self.inner.fenced.borrow();
            let pause = if quick { Duration::from_millis(50) } else { interval };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// On the active controller: fences brokers whose session expired, and restores preferred
    /// leaders every `leader.imbalance.check.interval.seconds` when enabled.
    async fn controller_loop(self) {
        let mut shutdown = self.inner.shutdown.subscribe();
        let Some(quorum) = &self.inner.quorum else { return };
        let controller = &quorum.controller;
        let mut leader_since = None;
        let rebalance = controller.rebalance_interval();
        let mut next_rebalance = rebalance.map(|i| tokio::time::Instant::now() + i);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(SESSION_CHECK) => {}
            }
            controller.check_sessions(&mut leader_since).await;
            if let (Some(at), Some(every)) = (next_rebalance, rebalance) {
                if tokio::time::Instant::now() >= at {
                    controller.rebalance().await;
                    next_rebalance = Some(at + every);
                }
            }
        }
    }

    /// Controlled shutdown: asks the controller to fence this broker, which moves its
    /// leaderships to other in-sync replicas (or leaves them leaderless), and waits until it
    /// has and this node applied the change. Bounded by `timeout`.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        if !self.inner.config.broker || self.broker_epoch() < 0 {
            return false;
        }
        let call = ControllerCall::Heartbeat {
            id: self.node_id(),
            epoch: self.broker_epoch(),
            applied: self.published_index(),
            shutdown: true,
        };
        // Without a reachable controller for a few seconds (the rest of the cluster is down)
        // there is nobody to move leaderships to: stop anyway.
        match self.call_within(call, timeout, SHUTDOWN_PATIENCE).await {
            Ok(ControllerReply::Heartbeat { shutdown_ready: true, .. }) => {
                self.inner.fenced.send_replace(true);
                true
            }
            Ok(other) => {
                tracing::warn!("unexpected controlled shutdown answer {other:?}");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "controlled shutdown failed; stopping anyway");
                false
            }
        }
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.inner.image_rx.borrow().clone()
    }

    /// A receiver that sees a new image after every applied record batch.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.inner.image_rx.clone()
    }

    /// This broker's id.
    pub fn node_id(&self) -> i32 {
        self.inner.config.node_id
    }

    /// The epoch this broker registered with at this start.
    pub fn broker_epoch(&self) -> i64 {
        self.inner.broker_epoch.load(Ordering::SeqCst)
    }

    /// Whether the controller has fenced this broker (it is not caught up, or its session
    /// expired, or it is shutting down).
    pub fn is_fenced(&self) -> bool {
        *self.inner.fenced.borrow()
    }

    /// CreateTopics: one result per requested topic, in request order. Topics of one request
    /// are checked in order against the image plus the topics accepted before them.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>> {
        let n = topics.len();
        match self.call(ControllerCall::CreateTopics { topics, validate_only }).await {
            Ok(ControllerReply::Topics(r)) if r.len() == n => r,
            Ok(other) => vec![Err(unexpected(other)); n],
            Err(e) => vec![Err(e); n],
        }
    }

    /// DeleteTopics: the name and id of each deleted topic, in request order.
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> Vec<Result<(String, [u8; 16]), MetadataError>> {
        let n = topics.len();
        match self.call(ControllerCall::DeleteTopics { topics }).await {
            Ok(ControllerReply::Deleted(r)) if r.len() == n => r,
            Ok(other) => vec![Err(unexpected(other)); n],
            Err(e) => vec![Err(e); n],
        }
    }

    /// CreatePartitions: `(topic, new total count, assignments of the new partitions)`.
    pub async fn create_partitions(
        &self,
        requests: Vec<PartitionIncrease>,
        validate_only: bool,
    ) -> Vec<Result<(), MetadataError>> {
        let n = requests.len();
        self.each(ControllerCall::CreatePartitions { requests, validate_only }, n).await
    }

    /// AlterPartitionReassignments: one result per request, in order.
    pub async fn alter_reassignments(
        &self,
        requests: Vec<Reassignment>,
        allow_rf_change: bool,
    ) -> Vec<Result<(), MetadataError>> {
        let n = requests.len();
        self.each(ControllerCall::AlterReassignments { requests, allow_rf_change }, n).await
    }

    async fn each(&self, call: ControllerCall, n: usize) -> Vec<Result<(), MetadataError>> {
        match self.call(call).await {
            Ok(ControllerReply::Each(r)) if r.len() == n => r,
            Ok(other) => vec![Err(unexpected(other)); n],
            Err(e) => vec![Err(e); n],
        }
    }

    async fn done(&self, call: ControllerCall) -> Result<(), MetadataError> {
        match self.call(call).await? {
            ControllerReply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// AlterConfigs for a topic: `configs` replaces all of its overrides.
    pub async fn alter_configs(
        &self,
        topic: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        self.done(ControllerCall::AlterConfigs { topic: topic.into(), configs, validate_only })
            .await
    }

    /// AlterConfigs / IncrementalAlterConfigs for a BROKER resource (`broker` is this node's id,
    /// or "" for the cluster-wide defaults): `ops` applied to its dynamic configs (AlterConfigs
    /// is a full replacement: `replace`).
    pub async fn alter_broker_configs(
        &self,
        broker: &str,
        ops: Vec<(String, AlterOp, Option<String>)>,
        replace: bool,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        if !broker.is_empty() && broker != self.node_id().to_string() {
            return Err(MetadataError::InvalidRequest(format!(
                "Unexpected broker id, expected {} or empty string, but received {broker}",
                self.node_id()
            )));
        }
        let call = ControllerCall::AlterBrokerConfigs {
            broker: broker.into(),
            ops,
            replace,
            validate_only,
        };
        self.done(call).await
    }

    /// IncrementalAlterConfigs for a topic: `(key, op, value)` applied to its overrides.
    pub async fn incremental_alter_configs(
        &self,
        topic: &str,
        ops: Vec<(String, AlterOp, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let call =
            ControllerCall::IncrementalAlterConfigs { topic: topic.into(), ops, validate_only };
        self.done(call).await
    }

    /// Reserves `count` producer ids for this broker; returns the first.
    pub async fn allocate_producer_ids(&self, count: i64) -> Result<i64, MetadataError> {
        let call = ControllerCall::AllocateProducerIds { broker: self.node_id(), count };
        match self.call(call).await? {
            ControllerReply::ProducerIds { first } => Ok(first),
            other => Err(unexpected(other)),
        }
    }

    /// ElectLeaders for the given partitions, or every one that needs it (`None`).
    pub async fn elect_leaders(
        &self,
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    ) -> Result<Vec<((String, i32), Result<(), MetadataError>)>, MetadataError> {
        match self.call(ControllerCall::ElectLeaders { partitions, unclean }).await? {
            ControllerReply::Elections(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// AlterPartition: this broker, leading a partition, asks for its ISR to become `new_isr`
    /// (`request`'s broker and broker epoch are filled in here).
    pub async fn alter_partition(&self, mut request: AlterPartition) -> Result<(), MetadataError> {
        request.broker = self.node_id();
        request.broker_epoch = self.broker_epoch();
        match self.call(ControllerCall::AlterPartition(request)).await? {
            ControllerReply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// DescribeQuorum, answered by the active controller.
    pub async fn describe_quorum(&self) -> Result<QuorumState, MetadataError> {
        match self.call(ControllerCall::DescribeQuorum).await? {
            ControllerReply::Quorum(q) => Ok(q),
            other => Err(unexpected(other)),
        }
    }

    /// True while a metadata write fails and is being retried (a full disk): metadata
    /// changes wait, and the broker reports not ready.
    pub fn storage_stalled(&self) -> bool {
        self.inner.storage.stalled()
    }

    /// Stops raft and the quorum's tasks. Later calls fail with `NotController`; the image
    /// stays readable.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.shutdown.send_replace(true);
        let tasks: Vec<_> =
            self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.inner.storage.close();
        if let Some(q) = &self.inner.quorum {
            if let Err(e) = q.raft.shutdown().await {
                tracing::warn!("metadata raft did not shut down cleanly: {e}");
            }
        }
    }

    /// `(current term, current leader, last applied log index)` for `/metrics`.
    /// A broker-only node reports term 0, the leader it last heard of and its applied index.
    pub fn raft_metrics(&self) -> (u64, Option<u64>, Option<u64>) {
        let Some(q) = &self.inner.quorum else {
            let applied = self.image().applied_index;
            return (0, self.leader().0, (applied > 0).then_some(applied));
        };
        let metrics = q.raft.metrics();
        let m = metrics.borrow();
        (m.current_term, m.current_leader, m.last_applied.map(|id| id.index))
    }

    /// The last metadata log index this node knows committed (none on a broker-only node).
    pub fn raft_commit_index(&self) -> Option<u64> {
        self.inner.quorum.as_ref().and_then(|_| self.inner.storage.committed_index())
    }

    /// Whether the raft core is running: false once it stopped on a fatal error (a storage
    /// failure it could not survive), after which no metadata can be written.
    pub fn raft_alive(&self) -> bool {
        self.inner.quorum.as_ref().is_none_or(|q| q.raft.metrics().borrow().running_state.is_ok())
    }

    /// The raft instance, for tests that force snapshots and purges.
    #[cfg(test)]
    pub(crate) fn raft(&self) -> &MetadataRaft {
        &self.inner.quorum.as_ref().expect("a voter").raft
    }
}

/// Opens a voter's metadata stores and raft member, checks or forms the voter set, and makes
/// the controller that runs while this node leads.
async fn open_quorum(
    cfg: &MetadataConfig,
    voters: &BTreeMap<u64, String>,
    hello: Arc<Hello>,
    image_tx: watch::Sender<Arc<ClusterImage>>,
    image_rx: watch::Receiver<Arc<ClusterImage>>,
    storage: &Arc<log_store::StorageHealth>,
) -> Result<Quorum, MetadataError> {
    let dir = cfg.data_dir.join(METADATA_DIR);
    let open_dir = dir.clone();
    let health = storage.clone();
    let (log_store, state_machine) = tokio::task::spawn_blocking(move || {
        let log_store = LogStore::open_with(&open_dir, health.clone())?;
        let state_machine = StateMachineStore::open(&open_dir, image_tx, health)?;
        Ok::<_, std::io::Error>((log_store, state_machine))
    })
    .await
    .map_err(|e| MetadataError::Internal(e.to_string()))?
    .map_err(|e| {
        MetadataError::Internal(format!("cannot open metadata log in {}: {e}", dir.display()))
    })?;
    let recent = state_machine.recent();
    let network = Network::new(hello, voters.clone());
    let single = cfg.voters.is_empty();
    let raft = Raft::new(
        cfg.node_id as u64,
        Arc::new(raft_config(single)?),
        network,
        log_store,
        state_machine,
    )
    .await
    .map_err(|e| MetadataError::Internal(format!("cannot start metadata raft: {e}")))?;
    if let Err(e) = form_quorum(&raft, voters, &dir).await {
        let _ = raft.shutdown().await;
        return Err(e);
    }
    let controller_cfg = ControllerConfig {
        node_id: cfg.node_id,
        defaults: cfg.defaults.clone(),
        num_partitions: cfg.num_partitions,
        default_replication_factor: cfg.default_replication_factor,
        session_timeout: cfg.session_timeout,
        rebalance_interval: cfg.rebalance_interval,
        voters: cfg.voters.iter().map(|v| (v.id, v.host.clone(), v.port)).collect(),
    };
    let controller = Arc::new(Controller::new(controller_cfg, raft.clone(), image_rx, recent));
    Ok(Quorum { raft, controller })
}

/// Checks a stored voter set against the configured one, or (a pristine log) forms the quorum
/// with the configured voters. Runs before this node serves the controller listener, so that
/// what it finds is its own state, not what a leader is replicating to it at that moment.
async fn form_quorum(
    raft: &MetadataRaft,
    voters: &BTreeMap<u64, String>,
    dir: &std::path::Path,
) -> Result<(), MetadataError> {
    let stopped = |e: openraft::error::Fatal<u64>| MetadataError::Internal(e.to_string());
    let configured: BTreeSet<u64> = voters.keys().copied().collect();
    if raft.is_initialized().await.map_err(stopped)? {
        let stored = raft
            .with_raft_state(|st| {
                st.membership_state.effective().voter_ids().collect::<BTreeSet<_>>()
            })
            .await
            .map_err(stopped)?;
        if stored != configured {
            return Err(MetadataError::InvalidConfig(format!(
                "the metadata log in {} belongs to a quorum of node(s) {stored:?}, but \
                 controller.quorum.voters (or a single node without it) gives {configured:?}; \
                 the voter set cannot change",
                dir.display()
            )));
        }
        return Ok(());
    }
    let members: BTreeMap<u64, BasicNode> =
        voters.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
    // Every voter initializes with the same voter set; openraft makes that safe, and the hello
    // check keeps voters with another set out.
    match raft.initialize(members).await {
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(MetadataError::Internal(format!("cannot initialize quorum: {e}"))),
    }
}

/// Stops a node whose start-up future was dropped before it finished.
struct AbortOnDrop(Option<MetadataNode>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(node) = self.0.take() else { return };
        node.inner.stopping.store(true, Ordering::SeqCst);
        node.inner.shutdown.send_replace(true);
        for task in node.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
        if let (Some(q), Ok(runtime)) = (&node.inner.quorum, tokio::runtime::Handle::try_current())
        {
            let raft = q.raft.clone();
            runtime.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}

fn unexpected(reply: ControllerReply) -> MetadataError {
    MetadataError::Internal(format!("unexpected controller answer {reply:?}"))
}

#[cfg(test)]
mod tests;
