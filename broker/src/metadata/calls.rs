//! Controller calls: every metadata write and broker lifecycle step, as one enum that travels
//! to the active controller (Kafka forwards the same requests: CreateTopics, BrokerRegistration,
//! BrokerHeartbeat, AllocateProducerIds, ...). A node that leads the quorum runs a call on its
//! own controller; any other node sends it over the controller listener. Either way the same
//! [`Controller::handle`] answers, so a result does not depend on where the client connected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::controller::{BrokerEndpoints, Controller};
use super::image::{Endpoint, TopicImage};
pub use super::types::{AlterPartition, MetadataDelta, QuorumState, ReplicaState};
use super::{AlterOp, MetadataError, NewTopic, PartitionIncrease, Reassignment, TopicRef};

/// A request to the active controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerCall {
    /// Sets the cluster id if none is set; answers the id in force.
    EnsureClusterId {
        wanted: Option<String>,
    },
    /// Registers a broker (fenced) under a new epoch, or answers the epoch of a registration
    /// with the same incarnation (a retry).
    RegisterBroker {
        id: i32,
        incarnation: [u8; 16],
        host: String,
        port: u16,
        listeners: Vec<Endpoint>,
        rack: Option<String>,
        #[serde(default)]
        admin_port: Option<u16>,
    },
    /// A broker is alive and has applied the metadata log up to `applied`; `shutdown` asks for
    /// a controlled shutdown (its leaderships move away first).
    Heartbeat {
        id: i32,
        epoch: i64,
        applied: u64,
        shutdown: bool,
    },
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        topics: Vec<TopicRef>,
    },
    CreatePartitions {
        requests: Vec<PartitionIncrease>,
        validate_only: bool,
    },
    AlterConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    IncrementalAlterConfigs {
        topic: String,
        ops: Vec<(String, AlterOp, Option<String>)>,
        validate_only: bool,
    },
    AlterBrokerConfigs {
        broker: String,
        ops: Vec<(String, AlterOp, Option<String>)>,
        replace: bool,
        validate_only: bool,
    },
    AllocateProducerIds {
        broker: i32,
        count: i64,
    },
    /// ElectLeaders: preferred (or, `unclean`, any-replica) election for the given partitions,
    /// or for every partition that needs one when `None`.
    ElectLeaders {
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    },
    DescribeQuorum,
    /// AlterPartitionReassignments: move, or cancel the move of, each partition.
    AlterReassignments {
        requests: Vec<Reassignment>,
        allow_rf_change: bool,
    },
    /// AlterPartition: the leader of a partition asks for a new ISR.
    AlterPartition(AlterPartition),
    /// A broker-only node fetches the metadata log after index `after`, waiting up to
    /// `max_wait_ms` for something new. Any voter answers, from what it applied.
    FetchMetadata {
        after: u64,
        max_wait_ms: u64,
    },
}

/// The controller's answer to a [`ControllerCall`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    ClusterId(String),
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
        shutdown_ready: bool,
    },
    Topics(Vec<Result<TopicImage, MetadataError>>),
    Deleted(Vec<Result<(String, [u8; 16]), MetadataError>>),
    Each(Vec<Result<(), MetadataError>>),
    Elections(Vec<((String, i32), Result<(), MetadataError>)>),
    Done,
    ProducerIds {
        first: i64,
    },
    Quorum(QuorumState),
    /// A metadata fetch's answer, with the active controller as the answering voter sees it.
    Metadata {
        leader: Option<i32>,
        delta: MetadataDelta,
    },
}

impl Controller {
    /// Runs one call on this controller; the second value is the metadata log index a caller
    /// must have applied to see the call's effect.
    pub(crate) async fn handle(
        &self,
        call: ControllerCall,
    ) -> Result<(ControllerReply, u64), MetadataError> {
        let reply = match call {
            ControllerCall::EnsureClusterId { wanted } => {
                ControllerReply::ClusterId(self.ensure_cluster_id(wanted.as_deref()).await?)
            }
            ControllerCall::RegisterBroker {
                id,
                incarnation,
                host,
                port,
                listeners,
                rack,
                admin_port,
            } => {
                let endpoints = BrokerEndpoints { host, port, listeners, admin_port };
                let epoch = self.register_broker(id, incarnation, endpoints, rack).await?;
                ControllerReply::Registered { epoch }
            }
            ControllerCall::Heartbeat { id, epoch, applied, shutdown } => {
                let (fenced, shutdown_ready) = self.heartbeat(id, epoch, applied, shutdown).await?;
                ControllerReply::Heartbeat { fenced, shutdown_ready }
            }
            ControllerCall::CreateTopics { topics, validate_only } => {
                ControllerReply::Topics(self.create_topics(topics, validate_only).await)
            }
            ControllerCall::DeleteTopics { topics } => {
                ControllerReply::Deleted(self.delete_topics(topics).await)
            }
            ControllerCall::CreatePartitions { requests, validate_only } => {
                ControllerReply::Each(self.create_partitions(requests, validate_only).await)
            }
            ControllerCall::AlterConfigs { topic, configs, validate_only } => {
                self.alter_configs(&topic, configs, validate_only).await?;
                ControllerReply::Done
            }
            ControllerCall::IncrementalAlterConfigs { topic, ops, validate_only } => {
                self.incremental_alter_configs(&topic, ops, validate_only).await?;
                ControllerReply::Done
            }
            ControllerCall::AlterBrokerConfigs { broker, ops, replace, validate_only } => {
                self.alter_broker_configs(&broker, ops, replace, validate_only).await?;
                ControllerReply::Done
            }
            ControllerCall::AllocateProducerIds { broker, count } => ControllerReply::ProducerIds {
                first: self.allocate_producer_ids(broker, count).await?,
            },
            ControllerCall::ElectLeaders { partitions, unclean } => {
                ControllerReply::Elections(self.elect_leaders(partitions, unclean).await?)
            }
            ControllerCall::DescribeQuorum => ControllerReply::Quorum(self.describe_quorum()?),
            ControllerCall::AlterReassignments { requests, allow_rf_change } => {
                ControllerReply::Each(self.alter_reassignments(requests, allow_rf_change).await)
            }
            ControllerCall::AlterPartition(request) => {
                self.alter_partition(&request).await?;
                ControllerReply::Done
            }
            ControllerCall::FetchMetadata { after, max_wait_ms } => {
                let (leader, delta) = self.fetch_metadata(after, max_wait_ms).await?;
                ControllerReply::Metadata { leader, delta }
            }
        };
        Ok((reply, self.applied_index()))
    }
}
