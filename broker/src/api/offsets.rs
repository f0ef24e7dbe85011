//! Offset lookups and moves: ListOffsets (1–8: earliest, latest, max timestamp, earliest local,
//! by timestamp), OffsetForLeaderEpoch (2–4) and DeleteRecords (0–2).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use super::replica_error_code;
use crate::log::partition_log::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP};
use crate::log::TopicPartition;
use crate::replica::ReplicaError;
use crate::server::Broker;

/// KIP-405's "earliest local" timestamp (v8+): without tiered storage, the log start.
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

pub fn list_offsets(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let from_consumer = req.replica_id.0 < 0;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    let mut resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let ts = p.timestamp;
                    let known = matches!(ts, EARLIEST_TIMESTAMP | LATEST_TIMESTAMP)
                        || ts >= 0
                        || (ts == MAX_TIMESTAMP && version >= 7)
                        || (ts == EARLIEST_LOCAL_TIMESTAMP && version >= 8);
                    if !known {
                        resp.error_code = kafka_protocol::ResponseError::InvalidRequest.code();
                        return resp;
                    }
                    let result =
                        broker.replicas.with_leader_log(&tp, p.current_leader_epoch, |log, _| {
                            // Consumers see offsets up to the HW (= last stable offset here).
                            let fetchable = if from_consumer {
                                log.high_watermark()
                            } else {
                                log.log_end_offset()
                            };
                            let found = match ts {
                                LATEST_TIMESTAMP => Some((fetchable, -1)),
                                EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                                    Some((log.log_start_offset(), -1))
                                }
                                _ => log
                                    .fetch_offset_by_timestamp(ts)
                                    .map_err(ReplicaError::Log)?
                                    .filter(|&(o, _)| o < fetchable),
                            };
                            Ok(found.map(|(o, t)| {
                                (o, t, log.epoch_for_offset(o.min(log.log_end_offset() - 1)))
                            }))
                        });
                    match result {
                        Ok(Some((offset, timestamp, epoch))) => {
                            resp.offset = offset;
                            resp.timestamp = timestamp;
                            // The field exists from v4; older versions must leave the default.
                            if version >= 4 {
                                resp.leader_epoch = epoch;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => resp.error_code = replica_error_code(&e),
                    }
                    resp
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub fn offset_for_leader_epoch(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p.partition);
                    let mut resp = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    match broker.replicas.with_leader_log(&tp, p.current_leader_epoch, |log, _| {
                        Ok(log.end_offset_for_epoch(p.leader_epoch))
                    }) {
                        Ok((epoch, end)) => {
                            resp.leader_epoch = epoch;
                            resp.end_offset = end;
                        }
                        Err(e) => resp.error_code = replica_error_code(&e),
                    }
                    resp
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub fn delete_records(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    let mut resp = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let result = broker.replicas.with_leader_log(&tp, -1, |log, _| {
                        // -1 means "up to the high watermark".
                        let offset = if p.offset == -1 { log.high_watermark() } else { p.offset };
                        if offset < 0 {
                            return Err(ReplicaError::Log(
                                crate::log::LogError::OffsetOutOfRange {
                                    offset,
                                    log_start: log.log_start_offset(),
                                    log_end: log.high_watermark(),
                                },
                            ));
                        }
                        Ok(log.delete_records_before(offset)?)
                    });
                    match result {
                        Ok(low) => resp.low_watermark = low,
                        Err(e) => resp.error_code = replica_error_code(&e),
                    }
                    resp
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
