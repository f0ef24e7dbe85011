//! Produce (3–12): record batches are appended as bytes (validated and stamped in place, never
//! decoded per record). acks=0 gets no response (a failure closes the connection, as in Kafka,
//! so the client refreshes its metadata), acks=1 and acks=all are answered once the write is in
//! the log; acks=all also requires the ISR to meet `min.insync.replicas`. A partition led by
//! another broker answers NOT_LEADER_OR_FOLLOWER with that leader and its endpoint (v10+,
//! KIP-951).

use std::collections::BTreeSet;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use super::{replica_error_code, strb};
use crate::log::batch::{self, MAGIC_V2};
use crate::log::validator::AppendOrigin;
use crate::log::{LogError, TopicPartition};
use crate::metrics::TopicLabels;
use crate::replica::ReplicaError;
use crate::server::Broker;

/// Runs a produce request. With acks=0 the caller sends no response (see [`first_error`]).
pub async fn handle(broker: &Broker, req: ProduceRequest, version: i16) -> ProduceResponse {
    let acks = req.acks;
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    // acks=all: (topic index, partition index, partition, offset the HW must reach, leader
    // epoch of the append).
    let mut waits = Vec::new();
    let valid_acks = matches!(acks, -1..=1);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut leaders = BTreeSet::new();
    for topic in req.topic_data {
        let name = topic.name.to_string();
        let labels = TopicLabels { topic: name.clone() };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let mut resp = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            if !valid_acks {
                resp.error_code = ResponseError::InvalidRequiredAcks.code();
                partitions.push(resp);
                continue;
            }
            if req.transactional_id.is_some() {
                resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
                resp.error_message = Some(strb(super::group::TRANSACTIONS_UNSUPPORTED));
                partitions.push(resp);
                continue;
            }
            let tp = TopicPartition::new(name.clone(), p.index);
            if let Err(reason) = check_one_v2_batch(p.records.as_deref().unwrap_or_default()) {
                resp.error_code = ResponseError::InvalidRecord.code();
                resp.error_message = Some(strb(&format!(
                    "produce requests of version {version} must hold {reason}"
                )));
                partitions.push(resp);
                continue;
            }
            // One copy out of the request frame so the header can be stamped in place.
            let mut records = p.records.map(|b| b.to_vec()).unwrap_or_default();
            match broker.replicas.append(&tp, &mut records, acks, AppendOrigin::Client) {
                Ok(crate::replica::Appended { info, log_start, leader_epoch }) => {
                    if info.duplicate {
                        broker.metrics.duplicates.get_or_create(&labels).inc();
                    } else {
                        broker.metrics.bytes_in.get_or_create(&labels).inc_by(info.bytes as u64);
                        broker
                            .metrics
                            .messages_in
                            .get_or_create(&labels)
                            .inc_by(info.records as u64);
                    }
                    resp.base_offset = info.first_offset;
                    resp.log_append_time_ms = info.log_append_time.unwrap_or(-1);
                    resp.log_start_offset = log_start;
                    if acks == -1 {
                        let end = info.last_offset + 1;
                        waits.push((responses.len(), partitions.len(), tp, end, leader_epoch));
                    }
                }
                Err(e) => {
                    tracing::debug!(partition = %tp, error = %e, "produce failed");
                    if let (ReplicaError::NotLeader, true) = (&e, version >= 10) {
                        if let Some((leader, epoch)) = super::leader_hint(broker, &tp) {
                            resp.current_leader = LeaderIdAndEpoch::default()
                                .with_leader_id(BrokerId(leader))
                                .with_leader_epoch(epoch);
                            leaders.insert(leader);
                        }
                    }
                    resp.error_code = replica_error_code(&e);
                    resp.error_message = Some(strb(&e.to_string()));
                    resp.record_errors = record_errors(&e);
                    // As Kafka does on every partition error.
                    resp.log_start_offset = broker.replicas.log_start_offset(&tp).unwrap_or(-1);
                }
            }
            partitions.push(resp);
        }
        // The name copied out, so that an acks=all wait does not keep the request frame.
        responses.push(
            TopicProduceResponse::default()
                .with_name(kafka_protocol::messages::TopicName(strb(&name)))
                .with_partition_responses(partitions),
        );
    }
    // acks=all answers once every in-sync replica has the write (the HW passed it), or with
    // the error that kept it from happening within the request's timeout.
    let _waiting = (!waits.is_empty()).then(|| broker.metrics.waiting("produce"));
    for (t, p, tp, offset, epoch) in waits {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Err(e) = broker.replicas.wait_for_high_watermark(&tp, offset, epoch, left).await {
            let resp = &mut responses[t].partition_responses[p];
            resp.error_code = replica_error_code(&e);
            resp.error_message = Some(strb(&e.to_string()));
        }
    }
    let endpoints = super::leader_endpoints(broker, &leaders)
        .into_iter()
        .map(|(id, host, port, rack)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(strb(&host))
                .with_port(port)
                .with_rack(rack.as_deref().map(strb))
        })
        .collect();
    ProduceResponse::default().with_responses(responses).with_node_endpoints(endpoints)
}

/// The refused records of a batch, for Produce v8+ (older versions do not carry them).
fn record_errors(e: &ReplicaError) -> Vec<BatchIndexAndErrorMessage> {
    match e {
        ReplicaError::Log(
            LogError::InvalidRecord { record_errors, .. }
            | LogError::InvalidTimestamp { record_errors, .. },
        ) => record_errors
            .iter()
            .map(|r| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(r.index)
                    .with_batch_index_error_message(Some(strb(&r.message)))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The first partition error of a response, as "topic-partition: code (message)".
pub fn first_error(resp: &ProduceResponse) -> Option<String> {
    resp.responses.iter().find_map(|t| {
        t.partition_responses.iter().find(|p| p.error_code != 0).map(|p| {
            let message = p.error_message.as_deref().unwrap_or("");
            format!("{}-{}: error {} ({message})", t.name.as_str(), p.index, p.error_code)
        })
    })
}

/// Kafka's rule for Produce v3 and later (`ProduceRequest.validateRecords`): each partition's
/// records are exactly one batch, of magic v2; anything else is INVALID_RECORD. Only the length
/// and magic are read here; the log validates the rest (CRC, size, counts).
fn check_one_v2_batch(records: &[u8]) -> Result<(), &'static str> {
    if records.is_empty() {
        return Err("a record batch for every partition");
    }
    if batch::magic(records).is_some_and(|m| m != MAGIC_V2) {
        return Err("record batches of magic v2");
    }
    match batch::batch_size(records) {
        // Kafka's batch reader finds no complete batch in a truncated one, and a second one
        // after the first: either way not "exactly one" (INVALID_RECORD).
        Ok(size) if size != records.len() => Err("exactly one record batch per partition"),
        // A length too small for a header is the log's to reject (CORRUPT_MESSAGE).
        _ => Ok(()),
    }
}
