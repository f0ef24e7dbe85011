//! What the operator asks a cluster's brokers, over the Kafka protocol (the `sluice-client`
//! crate's [`Admin`]): the brokers and partitions (Metadata) and the metadata quorum
//! (DescribeQuorum), gathered into a [`ClusterState`] that the pure decisions and the status
//! read; and, for `Topic` resources, one topic at a time: Metadata, DescribeConfigs,
//! CreateTopics, CreatePartitions, IncrementalAlterConfigs, DeleteTopics.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::{
    alter_partition_reassignments_request, create_partitions_request, create_topics_request,
    delete_topics_request, describe_configs_request, describe_quorum_request,
    incremental_alter_configs_request, metadata_request, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, ApiKey, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::{Admin, ClientError};

use crate::crd::QuorumStatus;
use crate::ops::scale::{Move, Throttles};
use crate::ops::{ClusterState, PartitionState};

/// Each connect and call is bounded by this.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The replication throttles' broker rates and topic replica lists (KIP-73).
const RATES: [&str; 2] =
    ["leader.replication.throttled.rate", "follower.replication.throttled.rate"];
const LISTS: [&str; 2] =
    ["leader.replication.throttled.replicas", "follower.replication.throttled.replicas"];
/// The metadata log's topic (KRaft's `__cluster_metadata`).
const METADATA_TOPIC: &str = "__cluster_metadata";

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
                    .with_resource_type(TOPIC_RESOURCE)
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
    /// them at once, without a restart.
    pub async fn alter_cluster_config(
        &mut self,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), AdminError> {
        self.alter_configs(BROKER_RESOURCE, "", set, delete).await
    }

    /// Sets the replication throttles of `t` at `rate` bytes/s: the rates on its brokers (each
    /// asked itself, at `addr(id)`: a broker's own configs are changed through that broker, as
    /// Kafka requires), the throttled replica lists on its topics. Stops at the first refusal.
    pub async fn throttle(
        &mut self,
        t: &Throttles,
        rate: i64,
        addr: impl Fn(i32) -> String,
    ) -> Result<(), AdminError> {
        let rates = RATES.map(|k| (k.to_string(), rate.to_string())).into();
        for b in &t.brokers {
            let mut own = Brokers::new(vec![addr(*b)]);
            own.alter_configs(BROKER_RESOURCE, &b.to_string(), &rates, &[]).await?;
        }
        for (topic, (leaders, followers)) in &t.topics {
            let lists = [(LISTS[0].into(), leaders.clone()), (LISTS[1].into(), followers.clone())];
            self.alter_configs(TOPIC_RESOURCE, topic, &lists.into(), &[]).await?;
        }
        Ok(())
    }

    /// Removes what [`Brokers::throttle`] set on `brokers` and `topics`.
    pub async fn unthrottle(
        &mut self,
        brokers: &[i32],
        topics: &[String],
        addr: impl Fn(i32) -> String,
    ) -> Result<(), AdminError> {
        let none = BTreeMap::new();
        for b in brokers {
            let mut own = Brokers::new(vec![addr(*b)]);
            own.alter_configs(BROKER_RESOURCE, &b.to_string(), &none, &RATES.map(String::from))
                .await?;
        }
        for topic in topics {
            self.alter_configs(TOPIC_RESOURCE, topic, &none, &LISTS.map(String::from)).await?;
        }
        Ok(())
    }

    /// IncrementalAlterConfigs (v1) on one resource: SET `set`, DELETE `delete`.
    async fn alter_configs(
        &mut self,
        resource_type: i8,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), AdminError> {
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
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configs(configs),
        ]);
        let response: IncrementalAlterConfigsResponse =
            self.admin.call(ApiKey::IncrementalAlterConfigs, 1, &request).await?;
        match response.responses.first() {
            Some(r) => {
                refused(ApiKey::IncrementalAlterConfigs, r.error_code, r.error_message.as_ref())
            }
            None => refused(ApiKey::IncrementalAlterConfigs, -1, None),
        }
    }
}

impl Brokers {
    /// Whether a partition reassignment is in progress (ListPartitionReassignments).
    pub async fn reassigning(&mut self) -> Result<bool, ClientError> {
        let request = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000);
        let response: ListPartitionReassignmentsResponse =
            self.admin.call(ApiKey::ListPartitionReassignments, 0, &request).await?;
        Ok(response.topics.iter().any(|t| !t.partitions.is_empty()))
    }

    /// Starts `moves` (AlterPartitionReassignments); an error names the partitions the
    /// controller refused and why.
    pub async fn reassign(&mut self, moves: &[Move]) -> Result<(), String> {
        use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
        let mut topics: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for m in moves {
            topics.entry(&m.topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(m.partition)
                    .with_replicas(Some(m.replicas.iter().map(|&b| BrokerId(b)).collect())),
            );
        }
        let topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                ReassignableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name.into())))
                    .with_partitions(partitions)
            })
            .collect();
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(topics);
        let response: AlterPartitionReassignmentsResponse = self
            .admin
            .call(ApiKey::AlterPartitionReassignments, 0, &request)
            .await
            .map_err(|e| e.to_string())?;
        if response.error_code != 0 {
            let message = response.error_message.as_deref().unwrap_or("");
            return Err(format!("error {}: {message}", response.error_code));
        }
        let refused: Vec<String> = response
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().filter(|p| p.error_code != 0).map(move |p| {
                    let message = p.error_message.as_deref().unwrap_or("");
                    format!(
                        "{}-{}: error {} {message}",
                        t.name.as_str(),
                        p.partition_index,
                        p.error_code
                    )
                })
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused.join("; "))
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
    let racks = metadata
        .brokers
        .iter()
        .filter_map(|b| b.rack.as_ref().map(|r| (b.node_id.0, r.to_string())))
        .collect();
    Ok(ClusterState { brokers, partitions, quorum, racks })
}

/// A topic as Metadata reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicState {
    pub partitions: i32,
    /// The replica count of its partitions (the largest, should they differ).
    pub replication_factor: i32,
    /// Kafka's topic id in its 22-character form.
    pub topic_id: String,
}

/// Why an admin call failed: no broker answered, or a broker refused with an error code.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Unreachable(#[from] ClientError),
    #[error("{api:?} refused with error {code}: {message}")]
    Refused { api: ApiKey, code: i16, message: String },
}

/// Kafka's error codes the topic calls treat as done.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Config sources (DescribeConfigs): a config set on the topic itself.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;

fn refused(api: ApiKey, code: i16, message: Option<&StrBytes>) -> Result<(), AdminError> {
    if code == 0 {
        return Ok(());
    }
    let message = message.map(|m| m.to_string()).filter(|m| !m.is_empty()).unwrap_or_else(|| {
        use kafka_protocol::error::ParseResponseErrorCode;
        code.err().map_or_else(|| format!("error code {code}"), |e| format!("{e:?}"))
    });
    Err(AdminError::Refused { api, code, message })
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// Topic calls: only ever about topics named by `Topic` resources.
impl Brokers {
    /// The registered brokers and topic `name` (`None`: it does not exist), from one Metadata
    /// request that never creates the topic.
    pub async fn topic(
        &mut self,
        name: &str,
    ) -> Result<(Vec<i32>, Option<TopicState>), ClientError> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(name)))
            ]))
            .with_allow_auto_topic_creation(false);
        let metadata: MetadataResponse = self.admin.call(ApiKey::Metadata, 12, &request).await?;
        let mut brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
        brokers.sort_unstable();
        let topic = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .filter(|t| t.error_code != UNKNOWN_TOPIC_OR_PARTITION)
            .map(|t| TopicState {
                partitions: t.partitions.len() as i32,
                replication_factor: t
                    .partitions
                    .iter()
                    .map(|p| p.replica_nodes.len() as i32)
                    .max()
                    .unwrap_or(0),
                topic_id: base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    t.topic_id.as_bytes(),
                ),
            });
        Ok((brokers, topic))
    }

    /// The configs set on topic `name` itself (not the ones it inherits).
    pub async fn topic_config(
        &mut self,
        name: &str,
    ) -> Result<BTreeMap<String, String>, AdminError> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configuration_keys(None),
        ]);
        let response: DescribeConfigsResponse =
            self.admin.call(ApiKey::DescribeConfigs, 4, &request).await?;
        let Some(r) = response.results.first() else {
            return Ok(BTreeMap::new());
        };
        refused(ApiKey::DescribeConfigs, r.error_code, r.error_message.as_ref())?;
        Ok(r.configs
            .iter()
            .filter(|c| c.config_source == DYNAMIC_TOPIC_CONFIG)
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect())
    }

    /// CreateTopics (v7) of one topic; one that exists already is no error.
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        config: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        use create_topics_request::{CreatableTopic, CreatableTopicConfig};
        let configs = config
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor as i16)
                .with_configs(configs)])
            .with_timeout_ms(CALL_TIMEOUT.as_millis() as i32);
        let response: CreateTopicsResponse =
            self.admin.call(ApiKey::CreateTopics, 7, &request).await?;
        match response.topics.first() {
            Some(t) if t.error_code == TOPIC_ALREADY_EXISTS => Ok(()),
            Some(t) => refused(ApiKey::CreateTopics, t.error_code, t.error_message.as_ref()),
            None => refused(ApiKey::CreateTopics, -1, None),
        }
    }

    /// CreatePartitions (v3): topic `name` grows to `count` partitions in all.
    pub async fn create_partitions(&mut self, name: &str, count: i32) -> Result<(), AdminError> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(count)
                .with_assignments(None)])
            .with_timeout_ms(CALL_TIMEOUT.as_millis() as i32);
        let response: CreatePartitionsResponse =
            self.admin.call(ApiKey::CreatePartitions, 3, &request).await?;
        match response.results.first() {
            Some(r) => refused(ApiKey::CreatePartitions, r.error_code, r.error_message.as_ref()),
            None => refused(ApiKey::CreatePartitions, -1, None),
        }
    }

    /// IncrementalAlterConfigs (v1) on topic `name`: SET `set`, DELETE `delete`.
    pub async fn alter_topic_config(
        &mut self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), AdminError> {
        self.alter_configs(TOPIC_RESOURCE, name, set, delete).await
    }

    /// DeleteTopics (v6) by name; a topic that is gone already is no error.
    pub async fn delete_topic(&mut self, name: &str) -> Result<(), AdminError> {
        let request = DeleteTopicsRequest::default()
            .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                .with_name(Some(topic_name(name)))])
            .with_timeout_ms(CALL_TIMEOUT.as_millis() as i32);
        let response: DeleteTopicsResponse =
            self.admin.call(ApiKey::DeleteTopics, 6, &request).await?;
        match response.responses.first() {
            Some(r) if r.error_code == UNKNOWN_TOPIC_OR_PARTITION => Ok(()),
            Some(r) => refused(ApiKey::DeleteTopics, r.error_code, r.error_message.as_ref()),
            None => refused(ApiKey::DeleteTopics, -1, None),
        }
    }
}
