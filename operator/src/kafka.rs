//! What the operator asks a cluster's brokers, over the Kafka protocol (the `sluice-client`
//! crate's [`Admin`]): the brokers and partitions (Metadata) and the metadata quorum
//! (DescribeQuorum), gathered into a [`ClusterState`] that the pure decisions and the status
//! read.

use std::time::Duration;

use kafka_protocol::messages::{
    describe_quorum_request, ApiKey, DescribeQuorumRequest, DescribeQuorumResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::{Admin, ClientError};

use crate::crd::QuorumStatus;

/// Each connect and call is bounded by this.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The metadata log's topic (KRaft's `__cluster_metadata`).
const METADATA_TOPIC: &str = "__cluster_metadata";

/// One partition as Metadata reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// -1 when the partition has no leader (offline).
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A cluster as its brokers describe it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterState {
    /// Registered (unfenced) brokers.
    pub brokers: Vec<i32>,
    pub partitions: Vec<PartitionState>,
    pub quorum: Option<QuorumStatus>,
}

impl ClusterState {
    pub fn under_replicated(&self) -> usize {
        self.partitions.iter().filter(|p| p.isr.len() < p.replicas.len()).count()
    }

    pub fn offline(&self) -> usize {
        self.partitions.iter().filter(|p| p.leader < 0).count()
    }
}

/// Asks the brokers at `addrs` (any of them) for the cluster's state.
pub async fn describe(addrs: Vec<String>) -> Result<ClusterState, ClientError> {
    let mut admin = Admin::new(addrs, crate::MANAGER, CALL_TIMEOUT);
    let metadata: MetadataResponse =
        admin.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await?;
    let mut brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.sort_unstable();
    let mut partitions = Vec::new();
    for t in &metadata.topics {
        let topic = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        for p in &t.partitions {
            partitions.push(PartitionState {
                topic: topic.clone(),
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            });
        }
    }
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![
                describe_quorum_request::PartitionData::default().with_partition_index(0)
            ]),
    ]);
    let quorum: DescribeQuorumResponse = admin.call(ApiKey::DescribeQuorum, 1, &request).await?;
    let quorum = quorum.topics.first().and_then(|t| t.partitions.first()).and_then(|p| {
        (p.error_code == 0).then(|| {
            let mut caught_up: Vec<i32> = p
                .current_voters
                .iter()
                .filter(|v| v.log_end_offset >= p.high_watermark)
                .map(|v| v.replica_id.0)
                .collect();
            caught_up.sort_unstable();
            QuorumStatus {
                leader: p.leader_id.0,
                epoch: p.leader_epoch,
                high_watermark: p.high_watermark,
                caught_up_voters: caught_up,
                brokers: brokers.clone(),
            }
        })
    });
    Ok(ClusterState { brokers, partitions, quorum })
}
