//! Metadata (0–13): brokers, cluster id, controller, and topics with their partitions, leaders,
//! leader epochs, replicas and ISR. Topics may be asked for by name or (v10+) by id. Unknown
//! topics are created with the broker defaults when `auto.create.topics.enable` is on and the
//! client allows it (always before v4).

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;

use super::{metadata_error_code, strb, topic_name, uuid};
use crate::metadata::{ClusterImage, NewTopic, TopicImage};
use crate::server::Broker;

/// Value Kafka sends when authorized operations were not requested.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Every topic ACL operation (no authorizer: everything is allowed): READ, WRITE, CREATE,
/// DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Cluster ACL operations (no authorizer: all): CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub async fn handle(broker: &Broker, req: MetadataRequest, version: i16) -> MetadataResponse {
    let mut image = broker.metadata.image();
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all_topics = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let mut topics = Vec::new();
    if all_topics {
        for t in image.topics.values() {
            topics.push(topic_entry(t, None, req.include_topic_authorized_operations));
        }
    } else {
        let wanted = req.topics.unwrap_or_default();
        // Create missing topics first, in one controller call.
        let mut missing: Vec<String> = wanted
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
            .filter(|n| !image.topics.contains_key(n))
            .collect();
        // The offsets topic gets its own settings (compacted, offsets.topic.num.partitions)
        // from the group coordinator, as Kafka creates its internal topics.
        if auto_create && missing.iter().any(|n| n == crate::group::OFFSETS_TOPIC) {
            missing.retain(|n| n != crate::group::OFFSETS_TOPIC);
            if let Err(e) = broker.groups.ensure_offsets_topic().await {
                tracing::warn!(error = %e, "creating {} failed", crate::group::OFFSETS_TOPIC);
            }
            image = broker.metadata.image();
        }
        let mut create_errors = BTreeMap::new();
        if auto_create && !missing.is_empty() {
            let new: Vec<NewTopic> = missing
                .iter()
                .map(|name| NewTopic {
                    name: name.clone(),
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: BTreeMap::new(),
                    configs: BTreeMap::new(),
                })
                .collect();
            let results = broker.metadata.create_topics(new, false).await;
            for (name, r) in missing.iter().zip(results) {
                match r {
                    Ok(_) => {}
                    Err(crate::metadata::MetadataError::TopicAlreadyExists(_)) => {}
                    Err(e) => {
                        create_errors.insert(name.clone(), metadata_error_code(&e));
                    }
                }
            }
            image = broker.metadata.image();
        }
        for t in wanted {
            let found = match &t.name {
                Some(name) => image.topics.get(name.as_str()),
                None => image
                    .topic_names_by_id
                    .get(t.topic_id.as_bytes())
                    .and_then(|n| image.topics.get(n)),
            };
            match found {
                Some(topic) => {
                    topics.push(topic_entry(topic, None, req.include_topic_authorized_operations))
                }
                None => {
                    let code = match &t.name {
                        Some(n) => create_errors
                            .get(n.as_str())
                            .copied()
                            .unwrap_or(ResponseError::UnknownTopicOrPartition.code()),
                        None => ResponseError::UnknownTopicId.code(),
                    };
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_error_code(code)
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                    );
                }
            }
        }
    }
    let listener = crate::server::connection::current_listener();
    MetadataResponse::default()
        .with_brokers(brokers(&image, &listener))
        .with_cluster_id(Some(strb(&image.cluster_id)))
        .with_controller_id(BrokerId(controller_for_clients(broker, &image, &listener)))
        .with_topics(topics)
        // Asked for in v8–v10 only (later versions use DescribeCluster).
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

/// The controller id clients are told: the active controller when it is a broker they can
/// reach on this listener, else this broker (Kafka tells them a live broker, since KIP-590 every
/// broker forwards what the controller must do).
pub fn controller_for_clients(broker: &Broker, image: &ClusterImage, listener: &str) -> i32 {
    let reachable = image
        .brokers
        .get(&image.controller_id)
        .is_some_and(|b| !b.fenced && b.endpoint(listener).is_some());
    if reachable {
        image.controller_id
    } else {
        broker.node_id()
    }
}

/// The unfenced brokers as Metadata lists them, with their endpoints on `listener` (the one
/// the client connected to); a broker without that listener is left out, as Kafka does.
pub fn brokers(image: &ClusterImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .unfenced_brokers()
        .filter_map(|b| {
            let (host, port) = b.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(strb(host))
                    .with_port(port as i32)
                    .with_rack(b.rack.as_deref().map(strb)),
            )
        })
        .collect()
}

fn topic_entry(t: &TopicImage, error: Option<i16>, include_ops: bool) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|(&index, p)| {
            // A partition without a leader is LEADER_NOT_AVAILABLE (retriable), as in Kafka.
            let error = if p.leader < 0 { ResponseError::LeaderNotAvailable.code() } else { 0 };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|&r| BrokerId(r)).collect())
                .with_isr_nodes(p.isr.iter().map(|&r| BrokerId(r)).collect())
                .with_offline_replicas(Vec::new())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(error.unwrap_or(0))
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(uuid(t.id))
        .with_is_internal(t.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(if include_ops {
            TOPIC_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}
