//! AlterPartitionReassignments (0–1) and ListPartitionReassignments (0), for
//! `kafka-reassign-partitions` and the admin client (KIP-455, KIP-860).
//!
//! Moves go to the active controller (`metadata/reassignment.rs` has the rules); the listing
//! is answered from this broker's image, which holds every change made through it.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::ResponseError;

use crate::api::{metadata_error_code, metadata_error_message, strb, topic_name};
use crate::metadata::{MetadataError, PartitionImage, Reassignment};
use crate::server::Broker;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().copied().map(BrokerId).collect()
}

pub async fn alter_partition_reassignments(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    // v0 has no flag and always allowed a change of replication factor.
    let allow_rf_change = version == 0 || req.allow_replication_factor_change;
    let requests: Vec<Reassignment> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let target = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                (t.name.to_string(), p.partition_index, target)
            })
        })
        .collect();
    let results = broker.metadata.alter_reassignments(requests, allow_rf_change).await;
    let mut results = results.into_iter();
    let image = broker.metadata.image();
    let unknown = |topic: &str, partition: i32| match image.topic(topic) {
        Some(_) => format!("Unable to find partition {topic}:{partition}."),
        None => format!("Unable to find a topic named {topic}."),
    };
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let (code, message) = match results.next() {
                        Some(Ok(())) | None => (0, None),
                        Some(Err(MetadataError::UnknownTopic(_))) => (
                            ResponseError::UnknownTopicOrPartition.code(),
                            Some(strb(&unknown(t.name.as_str(), p.partition_index))),
                        ),
                        Some(Err(e)) => (metadata_error_code(&e), metadata_error_message(&e)),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(message)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_responses(responses)
}

pub fn list_partition_reassignments(
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = broker.metadata.image();
    let ongoing = |index: i32, p: &PartitionImage| {
        p.reassigning().then(|| {
            OngoingPartitionReassignment::default()
                .with_partition_index(index)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding_replicas))
                .with_removing_replicas(ids(&p.removing_replicas))
        })
    };
    let topics: Vec<OngoingTopicReassignment> = match &req.topics {
        // Every partition under reassignment.
        None => image
            .topics
            .values()
            .map(|t| {
                let partitions = t.partitions.iter().filter_map(|(&i, p)| ongoing(i, p)).collect();
                (t.name.as_str(), partitions)
            })
            .filter(|(_, partitions): &(_, Vec<_>)| !partitions.is_empty())
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(name))
                    .with_partitions(partitions)
            })
            .collect(),
        // The listed partitions that are under reassignment; unknown ones are left out.
        Some(wanted) => wanted
            .iter()
            .filter_map(|w| {
                let t = image.topic(w.name.as_str())?;
                let partitions: Vec<_> = w
                    .partition_indexes
                    .iter()
                    .filter_map(|i| ongoing(*i, t.partitions.get(i)?))
                    .collect();
                (!partitions.is_empty()).then(|| {
                    OngoingTopicReassignment::default()
                        .with_name(w.name.clone())
                        .with_partitions(partitions)
                })
            })
            .collect(),
    };
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
