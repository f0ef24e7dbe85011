//! DescribeQuorum (0–2) and ElectLeaders (0–2).
//!
//! DescribeQuorum reports the metadata quorum as its leader sees it: voters with their log end
//! offsets and when the leader last heard from them and last saw them caught up, the high
//! watermark, and (v2) the voters' controller endpoints; broker-only nodes are observers, with
//! the offset their last heartbeat reported. Any broker answers: it asks the active controller,
//! as Kafka's brokers forward it (KIP-836). ElectLeaders runs preferred or unclean elections on the controller.

use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest,
    ElectLeadersResponse,
};
use kafka_protocol::ResponseError;

use crate::api::{metadata_error_code, metadata_error_message, strb, topic_name};
use crate::server::Broker;

/// Kafka's name for the metadata log's topic.
const METADATA_TOPIC: &str = "__cluster_metadata";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub async fn describe_quorum(
    broker: &Broker,
    req: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let response = describe_quorum_v2(broker, req).await;
    if version >= 2 {
        return response;
    }
    // Error messages and the voters' endpoints are v2 fields: an older answer leaves them out
    // (the codec refuses to write them).
    let mut response = response.with_error_message(None).with_nodes(Vec::new());
    for p in response.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        p.error_message = None;
    }
    response
}

async fn describe_quorum_v2(broker: &Broker, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let asks_for_metadata = req.topics.len() == 1
        && req.topics[0].topic_name.as_str() == METADATA_TOPIC
        && req.topics[0].partitions.len() == 1
        && req.topics[0].partitions[0].partition_index == 0;
    if !asks_for_metadata {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(strb("DescribeQuorum is only for __cluster_metadata-0")));
    }
    let quorum = match broker.metadata.describe_quorum().await {
        Ok(q) => q,
        Err(e) => {
            return DescribeQuorumResponse::default()
                .with_error_code(metadata_error_code(&e))
                .with_error_message(metadata_error_message(&e))
        }
    };
    let now = now_ms();
    let at = |ago: i64| if ago < 0 { -1 } else { now - ago };
    let replicas = |list: &[crate::metadata::ReplicaState]| -> Vec<ReplicaState> {
        list.iter()
            .map(|v| {
                ReplicaState::default()
                    .with_replica_id(BrokerId(v.id))
                    .with_log_end_offset(v.log_end_offset)
                    .with_last_fetch_timestamp(at(v.last_fetch_ms_ago))
                    .with_last_caught_up_timestamp(at(v.last_caught_up_ms_ago))
            })
            .collect()
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(quorum.leader_id))
        .with_leader_epoch(quorum.leader_epoch)
        .with_high_watermark(quorum.high_watermark)
        .with_current_voters(replicas(&quorum.voters))
        .with_observers(replicas(&quorum.observers));
    let nodes = quorum
        .voter_endpoints
        .iter()
        .map(|(id, host, port)| {
            let listener = Listener::default()
                .with_name(strb("CONTROLLER"))
                .with_host(strb(host))
                .with_port(*port);
            Node::default().with_node_id(BrokerId(*id)).with_listeners(vec![listener])
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(topic_name(METADATA_TOPIC))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

pub async fn elect_leaders(
    broker: &Broker,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let unclean = match (version, req.election_type) {
        (0, _) | (_, 0) => false,
        (_, 1) => true,
        (_, _) => {
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
        }
    };
    let partitions = req.topic_partitions.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.to_string(), p)))
            .collect::<Vec<_>>()
    });
    let results = match broker.metadata.elect_leaders(partitions, unclean).await {
        Ok(r) => r,
        Err(e) => return ElectLeadersResponse::default().with_error_code(metadata_error_code(&e)),
    };
    let mut by_topic: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, p), result) in results {
        let (code, message) = match &result {
            Ok(()) => (0, None),
            Err(crate::metadata::MetadataError::UnknownTopic(_)) => (
                ResponseError::UnknownTopicOrPartition.code(),
                Some(strb("The partition does not exist.")),
            ),
            Err(e) => (metadata_error_code(e), metadata_error_message(e)),
        };
        let entry = PartitionResult::default()
            .with_partition_id(p)
            .with_error_code(code)
            .with_error_message(message);
        match by_topic.iter_mut().find(|r| r.topic.as_str() == topic) {
            Some(r) => r.partition_result.push(entry),
            None => by_topic.push(
                ReplicaElectionResult::default()
                    .with_topic(topic_name(&topic))
                    .with_partition_result(vec![entry]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(by_topic)
}
