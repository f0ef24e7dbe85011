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

mod controller;
pub mod image;
mod log_store;
mod network;
mod state_machine;
pub mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::log::LogConfig;
use controller::{Controller, ControllerConfig};
pub use image::{BrokerImage, ClusterImage, PartitionImage, TopicImage};
use log_store::LogStore;
use network::Network;
use state_machine::StateMachineStore;
use types::MetadataRaft;

/// Directory under the broker data dir that holds the metadata log and snapshot.
pub const METADATA_DIR: &str = "__cluster_metadata";
/// Openraft takes a snapshot after this many entries since the last one, and keeps this many
/// entries before the snapshot for followers that lag a little.
pub const SNAPSHOT_EVERY_LOGS: u64 = 1000;
/// How long `start` waits for this node to lead the quorum and apply its log.
const START_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Advertised host of the Kafka listener.
    pub host: String,
    /// Advertised port of the Kafka listener.
    pub port: u16,
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

/// A topic to create (CreateTopics).
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By topic id.
    Id([u8; 16]),
}

/// One CreatePartitions item: `(topic, new total partition count, replica assignments of the
/// new partitions or None for automatic placement)`.
pub type PartitionIncrease = (String, i32, Option<Vec<Vec<i32>>>);

/// IncrementalAlterConfigs operation types, in Kafka's order (0..=3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// REQUEST_TIMED_OUT: the proposal was not committed in time; it may still commit.
    #[error("The metadata quorum did not commit the change in time.")]
    Timeout,
    /// UNKNOWN_SERVER_ERROR.
    #[error("Metadata internal error: {0}")]
    Internal(String),
}

struct NodeInner {
    config: MetadataConfig,
    raft: MetadataRaft,
    controller: Controller,
    image_rx: watch::Receiver<Arc<ClusterImage>>,
    broker_epoch: i64,
    storage: Arc<log_store::StorageHealth>,
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
            .field("broker_epoch", &self.inner.broker_epoch)
            .field("term", &term)
            .field("leader", &leader)
            .field("last_applied", &applied)
            .finish()
    }
}

fn raft_config() -> Result<Config, MetadataError> {
    let config = Config {
        cluster_name: "sluice-metadata".into(),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_LOGS),
        max_in_snapshot_log_to_keep: SNAPSHOT_EVERY_LOGS,
        ..Default::default()
    };
    config.validate().map_err(|e| MetadataError::Internal(format!("raft config: {e}")))
}

impl MetadataNode {
    /// Opens the metadata stores, initializes the one-voter quorum on the first start, waits
    /// (at most 30 s) until this node leads and has applied its log, sets the cluster id on the
    /// first start, and registers and unfences this broker with a new broker epoch.
    pub async fn start(cfg: MetadataConfig) -> Result<Self, MetadataError> {
        cfg.validate()?;
        let dir = cfg.data_dir.join(METADATA_DIR);
        let (image_tx, image_rx) = watch::channel(Arc::new(ClusterImage::default()));
        let open_dir = dir.clone();
        let storage = Arc::new(log_store::StorageHealth::default());
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

        let node_id = cfg.node_id as u64;
        let raft = Raft::new(node_id, Arc::new(raft_config()?), Network, log_store, state_machine)
            .await
            .map_err(|e| MetadataError::Internal(format!("cannot start metadata raft: {e}")))?;
        let controller_cfg = ControllerConfig {
            node_id: cfg.node_id,
            defaults: cfg.defaults.clone(),
            num_partitions: cfg.num_partitions,
            default_replication_factor: cfg.default_replication_factor,
        };
        let controller = Controller::new(controller_cfg, raft.clone(), image_rx.clone());

        let broker_epoch = match Self::bootstrap(&cfg, &raft, &controller).await {
            Ok(epoch) => epoch,
            Err(e) => {
                let _ = raft.shutdown().await;
                return Err(e);
            }
        };
        tracing::info!(
            node_id = cfg.node_id,
            broker_epoch,
            cluster_id = %image_rx.borrow().cluster_id,
            "metadata quorum ready"
        );
        Ok(MetadataNode {
            inner: Arc::new(NodeInner {
                config: cfg,
                raft,
                controller,
                image_rx,
                broker_epoch,
                storage,
            }),
        })
    }

    async fn bootstrap(
        cfg: &MetadataConfig,
        raft: &MetadataRaft,
        controller: &Controller,
    ) -> Result<i64, MetadataError> {
        let node_id = cfg.node_id as u64;
        let stopped = |e: openraft::error::Fatal<u64>| MetadataError::Internal(e.to_string());
        if raft.is_initialized().await.map_err(stopped)? {
            let voters = raft
                .with_raft_state(|st| {
                    st.membership_state.effective().voter_ids().collect::<Vec<_>>()
                })
                .await
                .map_err(stopped)?;
            if !voters.contains(&node_id) {
                return Err(MetadataError::InvalidConfig(format!(
                    "the metadata log in {} belongs to a quorum of node(s) {voters:?}, which does \
                     not include node.id {node_id}",
                    cfg.data_dir.join(METADATA_DIR).display()
                )));
            }
        } else {
            let addr = format!("{}:{}", cfg.host, cfg.port);
            raft.initialize(BTreeMap::from([(node_id, BasicNode { addr })]))
                .await
                .map_err(|e| MetadataError::Internal(format!("cannot initialize quorum: {e}")))?;
        }
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
        controller.ensure_cluster_id(cfg.cluster_id.as_deref()).await?;
        controller.register_broker(&cfg.host, cfg.port, cfg.rack.clone()).await
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
        self.inner.broker_epoch
    }

    /// CreateTopics: one result per requested topic, in request order. Topics of one request
    /// are checked in order against the image plus the topics accepted before them.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>> {
        self.inner.controller.create_topics(topics, validate_only).await
    }

    /// DeleteTopics: the name and id of each deleted topic, in request order.
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> Vec<Result<(String, [u8; 16]), MetadataError>> {
        self.inner.controller.delete_topics(topics).await
    }

    /// CreatePartitions: `(topic, new total count, assignments of the new partitions)`.
    pub async fn create_partitions(
        &self,
        requests: Vec<PartitionIncrease>,
        validate_only: bool,
    ) -> Vec<Result<(), MetadataError>> {
        self.inner.controller.create_partitions(requests, validate_only).await
    }

    /// AlterConfigs for a topic: `configs` replaces all of its overrides.
    pub async fn alter_configs(
        &self,
        topic: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        self.inner.controller.alter_configs(topic, configs, validate_only).await
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
        self.inner.controller.alter_broker_configs(broker, ops, replace, validate_only).await
    }

    /// IncrementalAlterConfigs for a topic: `(key, op, value)` applied to its overrides.
    pub async fn incremental_alter_configs(
        &self,
        topic: &str,
        ops: Vec<(String, AlterOp, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        self.inner.controller.incremental_alter_configs(topic, ops, validate_only).await
    }

    /// Reserves `count` producer ids for this broker; returns the first.
    pub async fn allocate_producer_ids(&self, count: i64) -> Result<i64, MetadataError> {
        self.inner.controller.allocate_producer_ids(count).await
    }

    /// True while a metadata write fails and is being retried (a full disk): metadata
    /// changes wait, and the broker reports not ready.
    pub fn storage_stalled(&self) -> bool {
        self.inner.storage.stalled()
    }

    /// Stops raft. Later calls fail with `NotController`; the image stays readable.
    pub async fn shutdown(&self) {
        self.inner.storage.close();
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("metadata raft did not shut down cleanly: {e}");
        }
    }

    /// `(current term, current leader, last applied log index)` for `/metrics`.
    pub fn raft_metrics(&self) -> (u64, Option<u64>, Option<u64>) {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        (m.current_term, m.current_leader, m.last_applied.map(|id| id.index))
    }

    /// Whether the raft core is running: false once it stopped on a fatal error (a storage
    /// failure it could not survive), after which no metadata can be written.
    pub fn raft_alive(&self) -> bool {
        self.inner.raft.metrics().borrow().running_state.is_ok()
    }

    /// The raft instance, for tests that force snapshots and purges.
    #[cfg(test)]
    pub(crate) fn raft(&self) -> &MetadataRaft {
        &self.inner.raft
    }
}

#[cfg(test)]
mod tests;
