//! Raft type configuration and the metadata records (the commands of the state machine).
//!
//! Records mirror KRaft's metadata records. A [`MetadataRequest`] carries a batch of records
//! that the state machine applies atomically: a controller decision that needs several records
//! (register + unfence, create several topics) commits or fails as one.

use std::collections::BTreeMap;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::image::{ClusterImage, Endpoint, PartitionImage};

openraft::declare_raft_types!(
    /// Raft types of the metadata quorum. Raft node ids are broker ids (`node.id`).
    pub TypeConfig:
        D = MetadataRequest,
        R = MetadataResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A raft log entry of the metadata log.
pub type MetadataEntry = openraft::Entry<TypeConfig>;
/// A raft log id of the metadata log.
pub type MetadataLogId = openraft::LogId<u64>;
/// The raft instance running the metadata quorum.
pub type MetadataRaft = openraft::Raft<TypeConfig>;
/// Storage errors as openraft wants them.
pub type StorageError = openraft::StorageError<u64>;

/// A batch of records proposed by the controller and applied atomically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataRequest {
    /// Records in the order they are applied.
    pub records: Vec<MetadataRecord>,
}

/// What applying a [`MetadataRequest`] produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataResponse {
    /// First id of the block handed out by the last `AllocateProducerIds` record, if any.
    pub first_producer_id: Option<i64>,
}

/// One change to the cluster image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// Sets `cluster.id`; written once, at the first start of the cluster.
    SetClusterId { cluster_id: String },
    /// A broker (re)registers with a new epoch; it starts fenced. `host` and `port` are its
    /// inter-broker endpoint, `listeners` every client listener's advertised endpoint, and
    /// `incarnation` is random per process start (a retried registration keeps its epoch).
    RegisterBroker {
        id: i32,
        epoch: i64,
        host: String,
        port: u16,
        rack: Option<String>,
        #[serde(default)]
        incarnation: [u8; 16],
        #[serde(default)]
        listeners: Vec<Endpoint>,
        /// Port of the admin HTTP listener (console, metrics) on `host`; absent from brokers
        /// registered before it was recorded.
        #[serde(default)]
        admin_port: Option<u16>,
    },
    /// The broker with this epoch may lead partitions.
    UnfenceBroker { id: i32, epoch: i64 },
    /// The broker with this epoch may no longer lead partitions.
    FenceBroker { id: i32, epoch: i64 },
    /// A new topic with its partitions and config overrides.
    CreateTopic {
        name: String,
        id: [u8; 16],
        partitions: BTreeMap<i32, PartitionImage>,
        configs: BTreeMap<String, String>,
    },
    /// New partitions of an existing topic.
    CreatePartitions { topic_id: [u8; 16], partitions: BTreeMap<i32, PartitionImage> },
    /// Replaces all config overrides of a topic.
    ConfigChange { topic: String, configs: BTreeMap<String, String> },
    /// Deletes a topic.
    RemoveTopic { id: [u8; 16] },
    /// Replaces a partition's leadership and replica state (leader elections, fencing).
    PartitionChange { topic_id: [u8; 16], partition: i32, state: PartitionImage },
    /// Hands `count` producer ids starting at `next_producer_id` to `broker`.
    AllocateProducerIds { broker: i32, count: i64 },
    /// Replaces the dynamic configs of a broker (`broker` is its id) or the cluster-wide
    /// dynamic defaults (`broker` is ""), as Kafka's `ConfigRecord` for BROKER resources.
    BrokerConfigChange { broker: String, configs: BTreeMap<String, String> },
}

/// A leader's ISR change (Kafka's AlterPartition): who asks, at which broker epoch, for which
/// partition at which leader and partition epochs, and the ISR it wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartition {
    pub broker: i32,
    pub broker_epoch: i64,
    pub topic_id: [u8; 16],
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// The broker epoch each joining member fetched with (KIP-903), when known: a member whose
    /// registration is newer may have lost data since and cannot join on that fetch.
    #[serde(default)]
    pub new_isr_epochs: BTreeMap<i32, i64>,
}

/// What a metadata fetch brings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataDelta {
    /// The entries after the requested index, in order (possibly none).
    Entries(Vec<AppliedEntry>),
    /// The whole image, when the entries are no longer kept.
    Image(Box<ClusterImage>),
}

/// One voter's replication state, as DescribeQuorum reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub id: i32,
    /// Next metadata log offset this voter is known to have (-1: unknown).
    pub log_end_offset: i64,
    /// Milliseconds since the leader last heard from it (0 for the leader; -1: never).
    pub last_fetch_ms_ago: i64,
    /// Milliseconds since it was last fully caught up (0 for the leader; -1: never).
    pub last_caught_up_ms_ago: i64,
}

/// The metadata quorum as its leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// Offset after the last committed entry.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaState>,
    /// Broker-only nodes, which follow the log without voting.
    pub observers: Vec<ReplicaState>,
    /// Voters' listener endpoints (`controller.quorum.voters`).
    pub voter_endpoints: Vec<(i32, String, u16)>,
}

/// One applied metadata log entry, as broker-only nodes receive it: blank and membership
/// entries carry no records but keep indexes contiguous.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedEntry {
    pub index: u64,
    /// The node that led the quorum when the entry was appended.
    pub leader: i32,
    pub records: Vec<MetadataRecord>,
}
