//! Fetch (4–16): whole record batches from each requested partition, up to the high watermark
//! for consumers (the last stable offset is the HW: there are no transactions yet) and the LEO
//! for replicas, within `partition_max_bytes` and the response's `max_bytes` (the first batch
//! of the response whole even when larger, KIP-74). Long polling: the request waits until
//! `min_bytes` are available or `max_wait_ms` passes, woken by changes (appends, HW moves,
//! leadership) of the partitions it reads, not of the whole broker. Topic ids (v13+).
//!
//! Fetch sessions (KIP-227) are not created: every response carries session id 0, which tells
//! clients to keep sending full fetch requests, as a broker whose session cache is full does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;

use super::replica_error_code;
use crate::log::TopicPartition;
use crate::metrics::TopicLabels;
use crate::replica::{FollowerFetch, FollowerRead, ReplicaError};
use crate::server::Broker;
use crate::zero_copy::FileSlice;

/// Longest a fetch may wait, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

/// A Fetch response, with the record sets of its partitions (in response order) left in their
/// log files: [`super::fetch_encode`] puts them together.
#[derive(Debug)]
pub struct FetchReply {
    pub response: FetchResponse,
    pub files: Vec<Option<FileSlice>>,
}

impl From<FetchResponse> for FetchReply {
    fn from(response: FetchResponse) -> Self {
        FetchReply { response, files: Vec::new() }
    }
}

pub async fn handle(broker: &Broker, req: FetchRequest, version: i16) -> FetchReply {
    if req.session_id != 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0)
            .into();
    }
    if req.session_epoch > 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::InvalidFetchSessionEpoch.code())
            .with_session_id(0)
            .into();
    }
    let replica_id = if version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    // The fetching broker's registration epoch (KIP-903); unknown before v15.
    let broker_epoch = if version >= 15 { req.replica_state.replica_epoch } else { -1 };
    let read_committed = req.isolation_level == 1;
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 { usize::MAX } else { req.max_bytes as usize };
    let image = broker.metadata.image();
    // Resolve each topic's name once (v13+ names topics by id).
    let names: Vec<Option<String>> = req
        .topics
        .iter()
        .map(|t| {
            if version >= 13 {
                image.topic_names_by_id.get(t.topic_id.as_bytes()).cloned()
            } else {
                Some(t.topic.to_string())
            }
        })
        .collect();
    // The partitions this fetch reads: it waits on their changes only.
    let tps: Vec<TopicPartition> = req
        .topics
        .iter()
        .zip(&names)
        .filter_map(|(t, name)| Some((t, name.as_ref()?)))
        .flat_map(|(t, name)| {
            t.partitions.iter().map(|p| TopicPartition::new(name.clone(), p.partition))
        })
        .collect();
    // Subscribed only once a fetch has to wait (a fetch that finds data answers without
    // touching the watches), then read again so nothing between is missed; a partition deleted
    // meanwhile closes its watch, and the fetch subscribes afresh.
    let mut changes: Option<Vec<tokio::sync::watch::Receiver<u64>>> = None;
    // In the fetch purgatory from its first wait on.
    let mut waiting = None;
    loop {
        for c in changes.iter_mut().flatten() {
            c.borrow_and_update();
        }
        let (reply, total, has_error) = read_once(
            broker,
            &req,
            &names,
            (replica_id, broker_epoch),
            read_committed,
            max_bytes,
            version,
        );
        // Kafka answers at once when min_bytes is 0 or nothing was asked for.
        if total >= min_bytes || req.topics.is_empty() || has_error || Instant::now() >= deadline {
            for (topic, bytes) in count_bytes(&reply, &names) {
                broker.metrics.bytes_out.get_or_create(&TopicLabels { topic }).inc_by(bytes);
            }
            return reply;
        }
        let Some(watches) = changes.as_mut() else {
            changes = Some(broker.replicas.watch(&tps));
            waiting.get_or_insert_with(|| broker.metrics.waiting("fetch"));
            continue;
        };
        if watches.is_empty() {
            tokio::time::sleep_until(deadline.into()).await;
            continue;
        }
        let any_change =
            futures::future::select_all(watches.iter_mut().map(|c| Box::pin(c.changed())));
        let closed = tokio::select! {
            (changed, _, _) = any_change => changed.is_err(),
            _ = tokio::time::sleep_until(deadline.into()) => false,
        };
        if closed {
            changes = None;
        }
    }
}

fn count_bytes(reply: &FetchReply, names: &[Option<String>]) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let mut files = reply.files.iter();
    for (t, name) in reply.response.responses.iter().zip(names) {
        let bytes: usize = t
            .partitions
            .iter()
            .map(|_| files.next().and_then(|f| f.as_ref()).map_or(0, |f| f.len()))
            .sum();
        if let (Some(name), true) = (name, bytes > 0) {
            *out.entry(name.clone()).or_insert(0) += bytes as u64;
        }
    }
    out
}

/// Reads every requested partition once. Returns the response, the record bytes in it, and
/// whether any partition failed (errors are answered at once, without waiting).
fn read_once(
    broker: &Broker,
    req: &FetchRequest,
    names: &[Option<String>],
    (replica_id, broker_epoch): (i32, i64),
    read_committed: bool,
    max_bytes: usize,
    version: i16,
) -> (FetchReply, usize, bool) {
    let mut total = 0usize;
    let mut files = Vec::new();
    let mut has_error = false;
    let mut leaders = std::collections::BTreeSet::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for (topic, name) in req.topics.iter().zip(names) {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                .with_aborted_transactions(if read_committed { Some(Vec::new()) } else { None })
                .with_records(Some(Bytes::new()));
            let Some(name) = name else {
                data.error_code = ResponseError::UnknownTopicId.code();
                has_error = true;
                partitions.push(data);
                files.push(None);
                continue;
            };
            let tp = TopicPartition::new(name.clone(), p.partition);
            let remaining = max_bytes.saturating_sub(total);
            if remaining == 0 && total > 0 {
                // Still report offsets, without records.
                fill_offsets(broker, &tp, &mut data);
                partitions.push(data);
                files.push(None);
                continue;
            }
            let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
            let read = if replica_id >= 0 {
                let fetch = FollowerFetch {
                    replica_id,
                    broker_epoch,
                    fetch_offset: p.fetch_offset,
                    last_fetched_epoch: if version >= 12 { p.last_fetched_epoch } else { -1 },
                    current_leader_epoch: p.current_leader_epoch,
                    max_bytes: limit,
                };
                broker.replicas.read_for_follower(&tp, fetch)
            } else {
                broker
                    .replicas
                    .read(&tp, p.fetch_offset, limit, p.current_leader_epoch, false)
                    .map(FollowerRead::Data)
            };
            let mut file = None;
            match read {
                Ok(FollowerRead::Data(read)) => {
                    data.high_watermark = read.high_watermark;
                    data.last_stable_offset = read.high_watermark;
                    data.log_start_offset = read.log_start_offset;
                    // Only the response's first data may exceed the limits (KIP-74).
                    if let Some(records) = read.records {
                        if total == 0 || records.len() <= limit {
                            total += records.len();
                            file = Some(records);
                        }
                    }
                }
                Ok(FollowerRead::Diverging {
                    epoch,
                    end_offset,
                    high_watermark,
                    log_start_offset,
                }) => {
                    // The follower truncates there first; answered at once, like data.
                    data.diverging_epoch =
                        EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset);
                    data.high_watermark = high_watermark;
                    data.last_stable_offset = high_watermark;
                    data.log_start_offset = log_start_offset;
                    has_error = true;
                }
                Err(e) => {
                    if matches!(e, ReplicaError::Log(crate::log::LogError::OffsetOutOfRange { .. }))
                    {
                        fill_offsets(broker, &tp, &mut data);
                    }
                    if let (ReplicaError::NotLeader, true) = (&e, version >= 12) {
                        if let Some((leader, epoch)) = super::leader_hint(broker, &tp) {
                            data.current_leader = LeaderIdAndEpoch::default()
                                .with_leader_id(BrokerId(leader))
                                .with_leader_epoch(epoch);
                            leaders.insert(leader);
                        }
                    }
                    data.error_code = replica_error_code(&e);
                    has_error = true;
                }
            }
            partitions.push(data);
            files.push(file);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    let mut response =
        FetchResponse::default().with_error_code(0).with_session_id(0).with_responses(topics);
    if version >= 16 {
        response.node_endpoints = super::leader_endpoints(broker, &leaders)
            .into_iter()
            .map(|(id, host, port, rack)| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(super::strb(&host))
                    .with_port(port)
                    .with_rack(rack.as_deref().map(super::strb))
            })
            .collect();
    }
    (FetchReply { response, files }, total, has_error)
}

fn fill_offsets(broker: &Broker, tp: &TopicPartition, data: &mut PartitionData) {
    if let Some(p) = broker.replicas.get(tp) {
        let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
        data.high_watermark = log.high_watermark();
        data.last_stable_offset = log.high_watermark();
        data.log_start_offset = log.log_start_offset();
    }
}
