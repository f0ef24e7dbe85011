//! What the operator asks a cluster's brokers, over the Kafka protocol (the `sluice-client`
//! crate's [`Admin`]): the brokers and partitions (Metadata) and the metadata quorum
//! (DescribeQuorum), gathered into a [`ClusterState`] that the pure decisions and the status
//! read.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::{
    describe_configs_request, describe_quorum_request, incremental_alter_configs_request, ApiKey,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeQuorumRequest, DescribeQuorumResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, MetadataRequest,
    MetadataResponse, TopicName,
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

/// A cluster's brokers, reached through any of their addresses; calls share a connection.
#[derive(Debug)]
pub struct Brokers {
    admin: Admin,
}

impl Brokers {
    pub fn new(addrs: Vec<String>) -> Brokers {
        Brokers { admin: Admin::new(addrs, crate::MANAGER, CALL_TIMEOUT) }
    }

    /// The cluster's state: brokers, partitions, quorum.
    pub async fn describe(&mut self) -> Result<ClusterState, ClientError> {
        describe(&mut self.admin).await
    }

    /// The effective `min.insync.replicas` of each of `topics` (DescribeConfigs), the topic's
    /// own or the brokers' default.
    pub async fn min_isr(
        &mut self,
        topics: &[String],
    ) -> Result<BTreeMap<String, i32>, ClientError> {
        const KEY: &str = "min.insync.replicas";
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let resources = topics
            .iter()
            .map(|t| {
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2) // TOPIC
                    .with_resource_name(StrBytes::from_string(t.clone()))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str(KEY)]))
            })
            .collect();
        let request = DescribeConfigsRequest::default().with_resources(resources);
        let response: DescribeConfigsResponse =
            self.admin.call(ApiKey::DescribeConfigs, 4, &request).await?;
        let mut out = BTreeMap::new();
        for r in response.results.iter().filter(|r| r.error_code == 0) {
            let value = r.configs.iter().find(|c| c.name.as_str() == KEY);
            if let Some(v) = value.and_then(|c| c.value.as_ref()).and_then(|v| v.parse().ok()) {
                out.insert(r.resource_name.to_string(), v);
            }
        }
        Ok(out)
    }
}

impl Brokers {
    /// Sets `set` and removes `delete` as cluster-wide dynamic broker configs
    /// (IncrementalAlterConfigs on the default broker resource, `""`): every broker applies
    /// them at once, without a restart. An error names the broker's refusal.
    pub async fn alter_cluster_config(
        &mut self,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), String> {
        use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        let mut configs: Vec<AlterableConfig> = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(0) // SET
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .collect();
        configs.extend(delete.iter().map(|k| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(1) // DELETE
        }));
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4) // BROKER
                .with_resource_name(StrBytes::from_static_str(""))
                .with_configs(configs),
        ]);
        let response: IncrementalAlterConfigsResponse = self
            .admin
            .call(ApiKey::IncrementalAlterConfigs, 1, &request)
            .await
            .map_err(|e| e.to_string())?;
        match response.responses.first() {
            Some(r) if r.error_code == 0 => Ok(()),
            Some(r) => {
                Err(format!("error {}: {}", r.error_code, r.error_message.as_deref().unwrap_or("")))
            }
            None => Err("an empty IncrementalAlterConfigs response".into()),
        }
    }
}

async fn describe(admin: &mut Admin) -> Result<ClusterState, ClientError> {
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
