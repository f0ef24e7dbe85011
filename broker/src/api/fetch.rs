//! Fetch (4–16): whole record batches from each requested partition, up to the high watermark
//! for consumers (the last stable offset is the HW: there are no transactions yet) and the LEO
//! for replicas, within `partition_max_bytes` and the response's `max_bytes` (the first batch
//! of the response whole even when larger, KIP-74). Long polling: the request waits until
//! `min_bytes` are available or `max_wait_ms` passes, woken by changes (appends, HW moves,
//! leadership) of the partitions it reads, not of the whole broker. Topic ids (v13+).
//!
//! Fetch sessions (KIP-227, [`super::fetch_session`]): a request with epoch 0 gets a session,
//! later ones name only what changed and are answered with only what changed. The records go
//! out as ranges of the log files ([`super::fetch_encode`]).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;

use super::fetch_session::{Answered, Context, Key, Params};
use super::replica_error_code;
use crate::log::TopicPartition;
use crate::metrics::TopicLabels;
use crate::replica::{now_ms, FollowerFetch, FollowerRead, ReplicaError};
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
    let replica_id = if version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    // The fetching broker's registration epoch (KIP-903); unknown before v15.
    let broker_epoch = if version >= 15 { req.replica_state.replica_epoch } else { -1 };
    let read_committed = req.isolation_level == 1;
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 { usize::MAX } else { req.max_bytes as usize };
    let uses_ids = version >= 13;
    let key = |topic: &TopicName, id: &uuid::Uuid, partition: i32| Key {
        topic_id: if uses_ids { *id.as_bytes() } else { [0; 16] },
        topic: if uses_ids { String::new() } else { topic.to_string() },
        partition,
    };
    let requested: Vec<(Key, Params)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let params = Params {
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: if version >= 12 { p.last_fetched_epoch } else { -1 },
                };
                (key(&t.topic, &t.topic_id, p.partition), params)
            })
        })
        .collect();
    let forgotten: Vec<Key> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| key(&t.topic, &t.topic_id, p)))
        .collect();
    let context = lock(&broker.fetch_sessions).new_context(
        req.session_id,
        req.session_epoch,
        uses_ids,
        &requested,
        &forgotten,
        now_ms(),
    );
    let partitions = match context {
        Context::Error { code, session_id } => return error_reply(code, session_id),
        Context::Incremental { ref partitions, .. } => partitions.clone(),
        Context::Full | Context::Sessionless => requested,
    };
    // Resolve each topic's name once (v13+ names topics by id).
    let image = broker.metadata.image();
    let targets: Vec<Target> = partitions
        .into_iter()
        .map(|(key, params)| {
            let name = if uses_ids {
                image.topic_names_by_id.get(&key.topic_id).cloned()
            } else {
                Some(key.topic.clone())
            };
            let tp = name.map(|name| TopicPartition::new(name, key.partition));
            Target { key, params, tp }
        })
        .collect();
    drop(image);
    // The partitions this fetch reads: it waits on their changes only.
    let tps: Vec<TopicPartition> = targets.iter().filter_map(|t| t.tp.clone()).collect();
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
        let read = read_once(
            broker,
            &targets,
            (replica_id, broker_epoch),
            read_committed,
            max_bytes,
            version,
        );
        // Kafka answers at once when min_bytes is 0 or nothing was asked for.
        if read.total >= min_bytes
            || targets.is_empty()
            || read.has_error
            || Instant::now() >= deadline
        {
            drop(waiting);
            return answer(broker, &context, &targets, read, replica_id >= 0, version);
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

/// One partition a fetch reads: from the request, or from its session.
struct Target {
    key: Key,
    params: Params,
    /// The partition by name; `None` for a topic id this broker does not know.
    tp: Option<TopicPartition>,
}

/// What one read of every target gave.
struct Read {
    /// One per target, in target order.
    partitions: Vec<PartitionData>,
    files: Vec<Option<FileSlice>>,
    total: usize,
    has_error: bool,
    /// Leaders named in NOT_LEADER_OR_FOLLOWER answers (KIP-951).
    leaders: BTreeSet<i32>,
}

fn error_reply(code: i16, session_id: i32) -> FetchReply {
    FetchResponse::default().with_error_code(code).with_session_id(session_id).into()
}

/// The response to send: the session created, or the incremental selection, applied; then the
/// partitions grouped into topics (adjacent ones of the same topic together, as Kafka does).
fn answer(
    broker: &Broker,
    context: &Context,
    targets: &[Target],
    read: Read,
    privileged: bool,
    version: i16,
) -> FetchReply {
    let answered: Vec<Answered> = read
        .partitions
        .iter()
        .zip(&read.files)
        .map(|(p, f)| Answered {
            records: f.as_ref().map_or(0, |f| f.len()),
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            error: p.error_code != 0,
            diverging: p.diverging_epoch.epoch >= 0,
        })
        .collect();
    let mut include = None;
    let session_id = match context {
        Context::Full => {
            let cached: Vec<_> =
                targets.iter().zip(&answered).map(|(t, a)| (t.key.clone(), t.params, *a)).collect();
            lock(&broker.fetch_sessions).create(privileged, version >= 13, &cached, now_ms())
        }
        Context::Incremental { id, epoch, .. } => {
            let keyed: Vec<_> =
                targets.iter().zip(&answered).map(|(t, a)| (t.key.clone(), *a)).collect();
            match lock(&broker.fetch_sessions).select(*id, *epoch, &keyed) {
                Ok(selected) => include = Some(selected),
                Err(code) => return error_reply(code, *id),
            }
            *id
        }
        Context::Sessionless | Context::Error { .. } => 0,
    };
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut files = Vec::with_capacity(read.files.len());
    let mut bytes_out: HashMap<&str, u64> = HashMap::new();
    for (i, ((target, partition), file)) in
        targets.iter().zip(read.partitions).zip(read.files).enumerate()
    {
        if include.as_ref().is_some_and(|inc: &Vec<bool>| !inc[i]) {
            continue;
        }
        if let (Some(tp), Some(f)) = (&target.tp, &file) {
            *bytes_out.entry(&tp.topic).or_insert(0) += f.len() as u64;
        }
        files.push(file);
        let same = topics.last().is_some_and(|t| {
            t.topic_id.as_bytes() == &target.key.topic_id && *t.topic == *target.key.topic
        });
        if !same {
            topics.push(
                FetchableTopicResponse::default()
                    .with_topic(super::topic_name(&target.key.topic))
                    .with_topic_id(uuid::Uuid::from_bytes(target.key.topic_id)),
            );
        }
        topics.last_mut().expect("a topic").partitions.push(partition);
    }
    for (topic, bytes) in bytes_out {
        let labels = TopicLabels { topic: topic.to_string() };
        broker.metrics.bytes_out.get_or_create(&labels).inc_by(bytes);
    }
    let mut response = FetchResponse::default()
        .with_error_code(0)
        .with_session_id(session_id)
        .with_responses(topics);
    if version >= 16 {
        response.node_endpoints = super::leader_endpoints(broker, &read.leaders)
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
    FetchReply { response, files }
}

/// Reads every target once. Errors are answered at once, without waiting.
fn read_once(
    broker: &Broker,
    targets: &[Target],
    (replica_id, broker_epoch): (i32, i64),
    read_committed: bool,
    max_bytes: usize,
    version: i16,
) -> Read {
    let mut read_all = Read {
        partitions: Vec::with_capacity(targets.len()),
        files: Vec::with_capacity(targets.len()),
        total: 0,
        has_error: false,
        leaders: BTreeSet::new(),
    };
    for target in targets {
        let (data, file) = read_partition(
            broker,
            target,
            (replica_id, broker_epoch),
            read_committed,
            max_bytes,
            version,
            &mut read_all,
        );
        read_all.partitions.push(data);
        read_all.files.push(file);
    }
    read_all
}

/// One partition of a read: its answer, and its records as a file range.
fn read_partition(
    broker: &Broker,
    target: &Target,
    (replica_id, broker_epoch): (i32, i64),
    read_committed: bool,
    max_bytes: usize,
    version: i16,
    so_far: &mut Read,
) -> (PartitionData, Option<FileSlice>) {
    let p = &target.params;
    let mut data = PartitionData::default()
        .with_partition_index(target.key.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
        .with_aborted_transactions(if read_committed { Some(Vec::new()) } else { None })
        .with_records(Some(Bytes::new()));
    let Some(tp) = &target.tp else {
        data.error_code = ResponseError::UnknownTopicId.code();
        so_far.has_error = true;
        return (data, None);
    };
    let remaining = max_bytes.saturating_sub(so_far.total);
    if remaining == 0 && so_far.total > 0 {
        // Still report offsets, without records.
        fill_offsets(broker, tp, &mut data);
        return (data, None);
    }
    let limit = (p.max_bytes.max(0) as usize).min(remaining);
    let read = if replica_id >= 0 {
        let fetch = FollowerFetch {
            replica_id,
            broker_epoch,
            fetch_offset: p.fetch_offset,
            last_fetched_epoch: p.last_fetched_epoch,
            current_leader_epoch: p.current_leader_epoch,
            max_bytes: limit,
        };
        broker.replicas.read_for_follower(tp, fetch)
    } else {
        broker
            .replicas
            .read(tp, p.fetch_offset, limit, p.current_leader_epoch, false)
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
                if so_far.total == 0 || records.len() <= limit {
                    so_far.total += records.len();
                    file = Some(records);
                }
            }
        }
        Ok(FollowerRead::Diverging { epoch, end_offset, high_watermark, log_start_offset }) => {
            // The follower truncates there first; answered at once, like data.
            data.diverging_epoch =
                EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset);
            data.high_watermark = high_watermark;
            data.last_stable_offset = high_watermark;
            data.log_start_offset = log_start_offset;
            so_far.has_error = true;
        }
        Err(e) => {
            if matches!(e, ReplicaError::Log(crate::log::LogError::OffsetOutOfRange { .. })) {
                fill_offsets(broker, tp, &mut data);
            }
            if let (ReplicaError::NotLeader, true) = (&e, version >= 12) {
                if let Some((leader, epoch)) = super::leader_hint(broker, tp) {
                    data.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(epoch);
                    so_far.leaders.insert(leader);
                }
            }
            data.error_code = replica_error_code(&e);
            so_far.has_error = true;
        }
    }
    (data, file)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn fill_offsets(broker: &Broker, tp: &TopicPartition, data: &mut PartitionData) {
    if let Some(p) = broker.replicas.get(tp) {
        let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
        data.high_watermark = log.high_watermark();
        data.last_stable_offset = log.high_watermark();
        data.log_start_offset = log.log_start_offset();
    }
}
