//! Kafka APIs: request → domain operation → response, one module per API family.
//!
//! Handlers translate between the wire messages of the `kafka-protocol` crate and the broker's
//! domain (partitions, metadata) and map domain errors to Kafka error codes here, at the
//! boundary; nothing below `api/` knows about wire versions. [`SUPPORTED`] is the single source
//! of the version ranges advertised in ApiVersions and accepted by the connection.

pub mod admin;
pub mod api_versions;
pub mod errors;
pub mod fetch;
pub mod fetch_encode;
pub mod fetch_session;
pub mod group;
pub mod init_producer_id;
pub mod metadata;
pub mod offsets;
pub mod produce;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::log::producer_state::SequenceError;
use crate::log::LogError;
use crate::metadata::MetadataError;
use crate::replica::ReplicaError;
use crate::server::Broker;

/// APIs and the version ranges implemented in full.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    // Consumer groups (classic protocol). ConsumerGroupHeartbeat (KIP-848) is deliberately not
    // advertised, so clients use the classic protocol; OffsetCommit v9 and OffsetFetch v9 work
    // for classic groups as well (v10 needs topic ids, beyond the kafka-protocol crate).
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// The implemented version range of an API, if it is implemented.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|&(_, min, max)| (min, max))
}

/// Metric label of an API.
pub fn name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "produce",
        ApiKey::Fetch => "fetch",
        ApiKey::ListOffsets => "list_offsets",
        ApiKey::Metadata => "metadata",
        ApiKey::ApiVersions => "api_versions",
        ApiKey::CreateTopics => "create_topics",
        ApiKey::DeleteTopics => "delete_topics",
        ApiKey::DeleteRecords => "delete_records",
        ApiKey::OffsetForLeaderEpoch => "offset_for_leader_epoch",
        ApiKey::DescribeConfigs => "describe_configs",
        ApiKey::AlterConfigs => "alter_configs",
        ApiKey::CreatePartitions => "create_partitions",
        ApiKey::IncrementalAlterConfigs => "incremental_alter_configs",
        ApiKey::DescribeCluster => "describe_cluster",
        ApiKey::DescribeQuorum => "describe_quorum",
        ApiKey::ElectLeaders => "elect_leaders",
        ApiKey::AlterPartitionReassignments => "alter_partition_reassignments",
        ApiKey::ListPartitionReassignments => "list_partition_reassignments",
        ApiKey::InitProducerId => "init_producer_id",
        ApiKey::DescribeLogDirs => "describe_log_dirs",
        ApiKey::AlterReplicaLogDirs => "alter_replica_log_dirs",
        ApiKey::DescribeProducers => "describe_producers",
        ApiKey::DescribeTransactions => "describe_transactions",
        ApiKey::ListTransactions => "list_transactions",
        ApiKey::FindCoordinator => "find_coordinator",
        ApiKey::JoinGroup => "join_group",
        ApiKey::SyncGroup => "sync_group",
        ApiKey::Heartbeat => "heartbeat",
        ApiKey::LeaveGroup => "leave_group",
        ApiKey::OffsetCommit => "offset_commit",
        ApiKey::OffsetFetch => "offset_fetch",
        ApiKey::ListGroups => "list_groups",
        ApiKey::DescribeGroups => "describe_groups",
        ApiKey::DeleteGroups => "delete_groups",
        ApiKey::OffsetDelete => "offset_delete",
        _ => "other",
    }
}

/// A failure the client can learn of only by losing its connection: an acks=0 produce that
/// failed. Kafka closes the connection then, so the client refreshes its metadata.
#[derive(Debug)]
pub struct CloseConnection(pub String);

/// A response, and for Fetch the record sets it sends from log files.
#[derive(Debug)]
pub struct Reply {
    pub body: ResponseKind,
    pub files: Vec<Option<crate::zero_copy::FileSlice>>,
}

/// Runs one decoded request. `Ok(None)` means no response is sent (acks=0 produce).
pub async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: RequestKind,
) -> Result<Option<Reply>, CloseConnection> {
    let v = header.request_api_version;
    let body = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, r, v).await),
        RequestKind::Produce(r) if r.acks == 0 => {
            let resp = produce::handle(broker, r, v).await;
            return match produce::first_error(&resp) {
                Some(e) => Err(CloseConnection(format!("acks=0 produce failed: {e}"))),
                None => Ok(None),
            };
        }
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(broker, r, v).await),
        RequestKind::Fetch(r) => {
            let reply = fetch::handle(broker, r, v).await;
            let body = ResponseKind::Fetch(reply.response);
            return Ok(Some(Reply { body, files: reply.files }));
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(offsets::list_offsets(broker, r, v))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offsets::offset_for_leader_epoch(broker, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(offsets::delete_records(broker, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::topics::create_topics(broker, r, v).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::topics::delete_topics(broker, r, v).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::topics::create_partitions(broker, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(admin::configs::describe_configs(broker, r, v))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(admin::configs::alter_configs(broker, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            admin::configs::incremental_alter_configs(broker, r).await,
        ),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(admin::cluster::describe_cluster(broker, r))
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(admin::quorum::describe_quorum(broker, r, v).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(admin::quorum::elect_leaders(broker, r, v).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            admin::reassignments::alter_partition_reassignments(broker, r, v).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            admin::reassignments::list_partition_reassignments(broker, r),
        ),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(admin::log_dirs::describe_log_dirs(broker, r))
        }
        RequestKind::AlterReplicaLogDirs(r) => {
            ResponseKind::AlterReplicaLogDirs(admin::log_dirs::alter_replica_log_dirs(broker, r))
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(admin::transactions::describe_producers(broker, r))
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(admin::transactions::describe_transactions(r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(admin::transactions::list_transactions(r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(group::find_coordinator(broker, r, v).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(group::join_group(broker, header, r, v).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(group::sync_group(broker, r, v).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(group::heartbeat(broker, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(group::leave_group(broker, r, v)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(group::offset_commit(broker, r, v).await)
        }
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(group::offset_fetch(broker, r, v)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(group::list_groups(broker, r, v)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group::describe_groups(broker, r, v))
        }
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(group::delete_groups(broker, r)),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(group::offset_delete(broker, r)),
        // The connection only lets through APIs listed in SUPPORTED.
        other => unreachable!("request {other:?} passed the supported-API check"),
    };
    Ok(Some(Reply { body, files: Vec::new() }))
}

/// A `StrBytes` from a string slice.
pub fn strb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A `TopicName` from a string slice.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(strb(s))
}

pub fn uuid(id: [u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(id)
}

/// KIP-951: the leader and leader epoch of a partition, for a NOT_LEADER_OR_FOLLOWER answer, so
/// the client can go there without a Metadata round trip. `None` for a partition the cluster
/// does not have, and for one without a leader.
pub fn leader_hint(broker: &Broker, tp: &crate::log::TopicPartition) -> Option<(i32, i32)> {
    let image = broker.metadata.image();
    let p = image.topic(&tp.topic)?.partitions.get(&tp.partition)?;
    (p.leader >= 0).then_some((p.leader, p.leader_epoch))
}

/// KIP-951: `(node id, host, port, rack)` of the given brokers on the client's listener.
pub fn leader_endpoints(
    broker: &Broker,
    ids: &std::collections::BTreeSet<i32>,
) -> Vec<(i32, String, i32, Option<String>)> {
    let image = broker.metadata.image();
    let listener = crate::server::connection::current_listener();
    ids.iter()
        .filter_map(|id| {
            let b = image.brokers.get(id).filter(|b| !b.fenced)?;
            let (host, port) = b.endpoint(&listener)?;
            Some((*id, host.to_string(), i32::from(port), b.rack.clone()))
        })
        .collect()
}

/// Kafka error code of a storage error.
pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::CorruptBatch(_) | LogError::Decompression(_) => {
            ResponseError::CorruptMessage.code()
        }
        LogError::InvalidRecord { .. } => ResponseError::InvalidRecord.code(),
        LogError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp.code(),
        // Produce v3+ takes magic v2 only; Kafka answers other magics with INVALID_RECORD.
        LogError::UnsupportedMagic(_) => ResponseError::InvalidRecord.code(),
        LogError::BatchTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        LogError::NonMonotonicOffset { .. } => ResponseError::InvalidRecord.code(),
        LogError::Config(_) => ResponseError::InvalidConfig.code(),
        LogError::Sequence(e) => match e {
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
            SequenceError::InvalidProducerEpoch { .. } => {
                ResponseError::InvalidProducerEpoch.code()
            }
        },
        LogError::Io { .. } | LogError::CorruptFile { .. } | LogError::Closed(_) => {
            ResponseError::KafkaStorageError.code()
        }
    }
}

/// Kafka error code of a partition operation error.
pub fn replica_error_code(e: &ReplicaError) -> i16 {
    match e {
        ReplicaError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition.code(),
        ReplicaError::NotLeader => ResponseError::NotLeaderOrFollower.code(),
        ReplicaError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch.code(),
        ReplicaError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch.code(),
        ReplicaError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas.code(),
        ReplicaError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend.code()
        }
        ReplicaError::NotReplica(_) | ReplicaError::StaleBrokerEpoch { .. } => {
            ResponseError::NotLeaderOrFollower.code()
        }
        ReplicaError::Timeout => ResponseError::RequestTimedOut.code(),
        ReplicaError::Log(e) => log_error_code(e),
    }
}

/// Kafka error code of a metadata (controller) error.
pub fn metadata_error_code(e: &MetadataError) -> i16 {
    match e {
        MetadataError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
        MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition.code(),
        MetadataError::UnknownTopicId => ResponseError::UnknownTopicId.code(),
        MetadataError::InvalidTopic(_) => ResponseError::InvalidTopicException.code(),
        MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
        MetadataError::InvalidReplicationFactor(_) => {
            ResponseError::InvalidReplicationFactor.code()
        }
        MetadataError::InvalidReplicaAssignment(_) => {
            ResponseError::InvalidReplicaAssignment.code()
        }
        MetadataError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
        MetadataError::PolicyViolation(_) => ResponseError::PolicyViolation.code(),
        MetadataError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
        MetadataError::NotController => ResponseError::NotController.code(),
        MetadataError::DuplicateBrokerRegistration(_) => {
            ResponseError::DuplicateBrokerRegistration.code()
        }
        MetadataError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch.code(),
        MetadataError::ElectionNotNeeded => ResponseError::ElectionNotNeeded.code(),
        MetadataError::PreferredLeaderNotAvailable(_) => {
            ResponseError::PreferredLeaderNotAvailable.code()
        }
        MetadataError::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch.code(),
        MetadataError::InvalidUpdateVersion(_) => ResponseError::InvalidUpdateVersion.code(),
        MetadataError::IneligibleReplica(_) => ResponseError::IneligibleReplica.code(),
        MetadataError::EligibleLeadersNotAvailable(_) => {
            ResponseError::EligibleLeadersNotAvailable.code()
        }
        MetadataError::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress.code(),
        MetadataError::Timeout => ResponseError::RequestTimedOut.code(),
        MetadataError::Internal(_) => ResponseError::UnknownServerError.code(),
    }
}

/// The error message Kafka would send along with a metadata error.
pub fn metadata_error_message(e: &MetadataError) -> Option<StrBytes> {
    Some(strb(&e.to_string()))
}
