//! CreateTopics (2–7), DeleteTopics (1–6, by name or id) and CreatePartitions (0–3).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse,
};
use kafka_protocol::ResponseError;

use super::configs::describe_topic_entries;
use crate::api::{metadata_error_code, metadata_error_message, strb, topic_name, uuid};
use crate::metadata::{NewTopic, TopicRef};
use crate::server::Broker;

pub async fn create_topics(
    broker: &Broker,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    // Names given more than once are all rejected, as Kafka does.
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        req.topics.iter().map(|t| t.name.to_string()).filter(|n| !seen.insert(n.clone())).collect();
    let mut results: Vec<Option<CreatableTopicResult>> = vec![None; req.topics.len()];
    let mut to_create = Vec::new();
    let mut positions = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        let name = t.name.to_string();
        if duplicates.contains(&name) {
            results[i] = Some(
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(strb(&format!(
                        "Create topics request from client contains multiple topics with the same name {name}"
                    ))))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut bad_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => bad_config = Some(c.name.to_string()),
            }
        }
        if let Some(key) = bad_config {
            results[i] = Some(
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(ResponseError::InvalidConfig.code())
                    .with_error_message(Some(strb(&format!(
                        "Null value not supported for topic configs: {key}"
                    ))))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
            continue;
        }
        let assignments = t
            .assignments
            .iter()
            .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
            .collect();
        to_create.push(NewTopic {
            name,
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments,
            configs,
        });
        positions.push(i);
    }
    let created = broker.metadata.create_topics(to_create, req.validate_only).await;
    for (i, r) in positions.into_iter().zip(created) {
        let t = &req.topics[i];
        results[i] = Some(match r {
            Ok(topic) => {
                let configs = (version >= 5).then(|| {
                    describe_topic_entries(broker, &topic.configs, None, false)
                        .into_iter()
                        .map(|e| {
                            CreatableTopicConfigs::default()
                                .with_name(e.name)
                                .with_value(e.value)
                                .with_read_only(e.read_only)
                                .with_config_source(e.config_source)
                                .with_is_sensitive(false)
                        })
                        .collect()
                });
                let rf = topic.partitions.values().next().map_or(0, |p| p.replicas.len() as i16);
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_topic_id(uuid(topic.id))
                    .with_num_partitions(topic.partitions.len() as i32)
                    .with_replication_factor(rf)
                    .with_configs(configs)
            }
            Err(e) => CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(metadata_error_code(&e))
                .with_error_message(metadata_error_message(&e))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results.into_iter().flatten().collect())
}

pub async fn delete_topics(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let refs: Vec<TopicRef> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => TopicRef::Name(n.to_string()),
                None => TopicRef::Id(*t.topic_id.as_bytes()),
            })
            .collect()
    } else {
        req.topic_names.iter().map(|n| TopicRef::Name(n.to_string())).collect()
    };
    let results = broker.metadata.delete_topics(refs.clone()).await;
    let deleted: Vec<String> =
        results.iter().filter_map(|r| r.as_ref().ok().map(|(name, _)| name.clone())).collect();
    broker.groups.on_topics_deleted(&deleted);
    for topic in &deleted {
        broker.metrics.forget_topic(topic);
    }
    let responses = refs
        .into_iter()
        .zip(results)
        .map(|(r, result)| {
            let (name, id) = match &r {
                TopicRef::Name(n) => (Some(topic_name(n)), uuid::Uuid::nil()),
                TopicRef::Id(id) => (None, uuid(*id)),
            };
            match result {
                Ok((name, id)) => DeletableTopicResult::default()
                    .with_name(Some(topic_name(&name)))
                    .with_topic_id(uuid(id)),
                Err(e) => DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_error_code(metadata_error_code(&e))
                    .with_error_message(metadata_error_message(&e)),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let requests =
        req.topics
            .iter()
            .map(|t| {
                // An empty list is treated like null: automatic placement.
                let assignments = t.assignments.as_ref().filter(|a| !a.is_empty()).map(|a| {
                    a.iter().map(|x| x.broker_ids.iter().map(|b| b.0).collect()).collect()
                });
                (t.name.to_string(), t.count, assignments)
            })
            .collect();
    let results = broker.metadata.create_partitions(requests, req.validate_only).await;
    let results = req
        .topics
        .iter()
        .zip(results)
        .map(|(t, r)| {
            let mut out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Err(e) = r {
                out.error_code = metadata_error_code(&e);
                out.error_message = metadata_error_message(&e);
            }
            out
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
