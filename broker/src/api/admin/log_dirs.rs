//! DescribeLogDirs (1–4) and AlterReplicaLogDirs (1–2), for `kafka-log-dirs` and the admin
//! client. Sluice has one log directory (`log.dirs` takes the first entry): it is described
//! with every partition's size and LEO − HW lag, and its volume's total and usable bytes (v4);
//! "moving" a replica to the directory it is in succeeds, any other directory is
//! LOG_DIR_NOT_FOUND and a partition not hosted here UNKNOWN_TOPIC_OR_PARTITION, as Kafka
//! answers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse,
};
use kafka_protocol::ResponseError;

use super::super::{strb, topic_name};
use crate::log::TopicPartition;
use crate::server::Broker;

/// The log directory as clients see it: absolute, as Kafka reports `log.dirs`.
fn log_dir(broker: &Broker) -> PathBuf {
    crate::fsutil::absolute(&broker.config.data_dir)
}

pub fn describe_log_dirs(broker: &Broker, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req
        .topics
        .map(|topics| topics.into_iter().map(|t| (t.topic.to_string(), t.partitions)).collect());
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (tp, size, lag) in broker.replicas.log_sizes() {
        let listed = match &wanted {
            None => true,
            Some(w) => w.get(&tp.topic).is_some_and(|ps| ps.contains(&tp.partition)),
        };
        if listed {
            topics.entry(tp.topic.clone()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_partition_size(size as i64)
                    .with_offset_lag(lag)
                    .with_is_future_key(false),
            );
        }
    }
    let dir = log_dir(broker);
    let (total, usable) = crate::fsutil::volume_bytes(&dir);
    let result = DescribeLogDirsResult::default()
        .with_error_code(0)
        .with_log_dir(strb(&dir.display().to_string()))
        .with_total_bytes(total)
        .with_usable_bytes(usable)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(topic_name(&name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    DescribeLogDirsResponse::default().with_error_code(0).with_results(vec![result])
}

pub fn alter_replica_log_dirs(
    broker: &Broker,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let ours = log_dir(broker);
    let mut results = Vec::new();
    for dir in req.dirs {
        let target = std::fs::canonicalize(dir.path.as_str()).ok();
        let known = target.as_deref() == Some(ours.as_path());
        for topic in dir.topics {
            let partitions = topic
                .partitions
                .iter()
                .map(|&p| {
                    let hosted =
                        broker.replicas.get(&TopicPartition::new(topic.name.as_str(), p)).is_some();
                    let code = if !known {
                        ResponseError::LogDirNotFound.code()
                    } else if !hosted {
                        // Kafka 4.4 answers this (checked with the same request).
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        0 // already there
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(topic.name)
                    .with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}
