//! Behaviours `docs/protocol.md` promises, each proved against the real binary with raw Kafka
//! requests and Kafka's own error codes and values: `min.insync.replicas`, long-poll fetches
//! woken by appends, leader-epoch fencing, ListOffsets max-timestamp (v7) and earliest-local
//! (v8), DeleteTopics by id (v6), DeleteRecords to the high watermark, LeaveGroup by group
//! instance id, the ListGroups type filter (v5), `connections.max.idle.ms`, `max.connections`,
//! and the oldest advertised versions of the data and admin APIs answering with real content.
//!
//! Nothing here asserts how long something took: waits for an event are bounded, and "not
//! answered" is a read that times out while the answer must not come.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{BrokerProcess, RawConn};
use kafka_protocol::messages::{self as kp, ApiKey};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

/// Bound of every wait for an event.
const WAIT: Duration = Duration::from_secs(30);

// Kafka's error codes (org.apache.kafka.common.protocol.Errors).
const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const UNKNOWN_MEMBER_ID: i16 = 25;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const UNKNOWN_TOPIC_ID: i16 = 100;

// ListOffsets special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// CreateTime of the records these tests produce (2023): well inside the broker's bounds.
const T0: i64 = 1_700_000_000_000;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn tn(v: &str) -> kp::TopicName {
    kp::TopicName(s(v))
}

fn gid(v: &str) -> kp::GroupId {
    kp::GroupId(s(v))
}

/// A topic name field as text.
fn name_of(name: &Option<kp::TopicName>) -> Option<&str> {
    name.as_ref().map(|n| n.as_str())
}

// ---------------------------------------------------------------------------------------------
// Raw frames, for connections whose answers may not (yet) come.

use common::{frame, read_frame};

/// Decodes a response frame of `key` at `version`, checking its correlation id.
fn decode<R: Decodable>(key: ApiKey, version: i16, correlation_id: i32, mut body: Bytes) -> R {
    let header =
        kp::ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id, "{key:?} v{version}");
    R::decode(&mut body, version).unwrap_or_else(|e| panic!("decoding {key:?} v{version}: {e}"))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

fn api_versions_request() -> kp::ApiVersionsRequest {
    kp::ApiVersionsRequest::default()
        .with_client_software_name(s("promises"))
        .with_client_software_version(s("1"))
}

/// ApiVersions v3 on `c` answers without error.
fn api_versions_ok(c: &mut RawConn) {
    let r: kp::ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &api_versions_request());
    assert_eq!(r.error_code, NONE);
    assert!(!r.api_keys.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Topics, records, produce and fetch.

/// CreateTopics v7 (replication factor 1); asserts success and returns the topic id.
fn create_topic(
    c: &mut RawConn,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> uuid::Uuid {
    use kp::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let configs = configs
        .iter()
        .map(|(k, v)| CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v))))
        .collect();
    let req = kp::CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs),
    ]);
    let r: kp::CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    let t = &r.topics[0];
    assert_eq!(t.error_code, NONE, "creating {name}: {:?}", t.error_message);
    assert!(!t.topic_id.is_nil(), "CreateTopics v7 returns the topic id");
    t.topic_id
}

/// One magic v2 batch, uncompressed, no producer id: `records` are (CreateTime, value) at
/// offsets 0, 1, ... (the broker assigns the real ones).
fn batch(records: &[(i64, &[u8])]) -> Bytes {
    let stamped: Vec<(common::KeyValue<'_>, i64)> =
        records.iter().map(|(ts, v)| ((None, Some(*v)), *ts)).collect();
    common::client_batch_stamped(Compression::None, &stamped).freeze()
}

/// A batch of `values`, all stamped [`T0`].
fn values(values: &[&[u8]]) -> Bytes {
    let records: Vec<(i64, &[u8])> = values.iter().map(|v| (T0, *v)).collect();
    batch(&records)
}

/// Produce v9 with acks=1; asserts success and returns the base offset.
fn produce_ok(c: &mut RawConn, topic: &str, partition: i32, records: Bytes) -> i64 {
    let r = c.produce_with(9, topic, partition, 1, records);
    assert_eq!(r.error_code, NONE, "produce to {topic}-{partition}: {:?}", r.error_message);
    r.base_offset
}

/// FindCoordinator (v0–v3 layout) for `key`, retrying while the coordinator is not available
/// yet (Kafka creates `__consumer_offsets` on the first lookup), as clients do.
fn find_coordinator(c: &mut RawConn, version: i16, key: &str) -> kp::FindCoordinatorResponse {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found: kp::FindCoordinatorResponse = c.call(
            ApiKey::FindCoordinator,
            version,
            &kp::FindCoordinatorRequest::default().with_key(s(key)),
        );
        if found.error_code != COORDINATOR_NOT_AVAILABLE || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A consumer's Fetch (v4–v12 layout: topics by name) of one partition.
fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    current_leader_epoch: i32,
    min_bytes: i32,
    max_wait_ms: i32,
) -> kp::FetchRequest {
    use kp::fetch_request::{FetchPartition, FetchTopic};
    kp::FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(tn(topic)).with_partitions(vec![
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(current_leader_epoch)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20),
        ])])
}

/// The one partition of a Fetch response.
fn fetched(mut r: kp::FetchResponse) -> kp::fetch_response::PartitionData {
    assert_eq!(r.error_code, NONE, "top-level fetch error");
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].partitions.len(), 1);
    r.responses.remove(0).partitions.remove(0)
}

/// Fetch v12 of one partition, answered at once (min_bytes 0).
fn fetch_now(
    c: &mut RawConn,
    topic: &str,
    offset: i64,
    leader_epoch: i32,
) -> kp::fetch_response::PartitionData {
    fetched(c.call(ApiKey::Fetch, 12, &fetch_request(topic, 0, offset, leader_epoch, 0, 0)))
}

/// The records of fetched batches as (offset, timestamp, value).
fn records_of(records: Option<&Bytes>) -> Vec<(i64, i64, Vec<u8>)> {
    let mut buf = records.cloned().unwrap_or_default();
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decoding fetched batches");
    sets.into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, r.timestamp, r.value.map(|v| v.to_vec()).unwrap_or_default()))
        .collect()
}

/// (offset, value) pairs of fetched batches.
fn offsets_and_values(records: Option<&Bytes>) -> Vec<(i64, Vec<u8>)> {
    records_of(records).into_iter().map(|(o, _, v)| (o, v)).collect()
}

/// ListOffsets of one partition at `version`, as a consumer (replica id -1).
fn list_offsets(
    c: &mut RawConn,
    version: i16,
    topic: &str,
    timestamp: i64,
) -> kp::list_offsets_response::ListOffsetsPartitionResponse {
    use kp::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = kp::ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![
        ListOffsetsTopic::default().with_name(tn(topic)).with_partitions(vec![
            ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp),
        ]),
    ]);
    let mut r: kp::ListOffsetsResponse = c.call(ApiKey::ListOffsets, version, &req);
    r.topics.remove(0).partitions.remove(0)
}

/// ListOffsets v8 of one partition; asserts success and returns the offset.
fn offset_at(c: &mut RawConn, topic: &str, timestamp: i64) -> i64 {
    let p = list_offsets(c, 8, topic, timestamp);
    assert_eq!(p.error_code, NONE, "ListOffsets {timestamp} of {topic}");
    p.offset
}

/// DeleteRecords v2 of partition 0 of `topic` before `offset`.
fn delete_records(
    c: &mut RawConn,
    topic: &str,
    offset: i64,
) -> kp::delete_records_response::DeleteRecordsPartitionResult {
    use kp::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let req = kp::DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        DeleteRecordsTopic::default().with_name(tn(topic)).with_partitions(vec![
            DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset),
        ]),
    ]);
    let mut r: kp::DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &req);
    r.topics.remove(0).partitions.remove(0)
}

/// Metadata v12 of the named topics (no auto-creation).
fn metadata_by_name(c: &mut RawConn, names: &[&str]) -> kp::MetadataResponse {
    let topics = names
        .iter()
        .map(|n| kp::metadata_request::MetadataRequestTopic::default().with_name(Some(tn(n))))
        .collect();
    c.call(
        ApiKey::Metadata,
        12,
        &kp::MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(false),
    )
}

/// The leader epoch of partition 0 of `topic`, from Metadata v12.
fn leader_epoch(c: &mut RawConn, topic: &str) -> i32 {
    let md = metadata_by_name(c, &[topic]);
    assert_eq!(md.topics[0].error_code, NONE);
    md.topics[0].partitions.iter().find(|p| p.partition_index == 0).unwrap().leader_epoch
}

// ---------------------------------------------------------------------------------------------
// Groups.

fn consumer_protocol() -> kp::join_group_request::JoinGroupRequestProtocol {
    kp::join_group_request::JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]))
}

/// Finds the coordinator of `group` (creating `__consumer_offsets`), then joins a static member
/// with JoinGroup v5, retrying while the coordinator loads; returns (member id, generation).
fn join_static(c: &mut RawConn, group: &str, instance: &str) -> (StrBytes, i32) {
    let found = find_coordinator(c, 3, group);
    assert_eq!((found.error_code, found.node_id.0), (NONE, 1));
    let req = kp::JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_group_instance_id(Some(s(instance)))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![consumer_protocol()]);
    let deadline = Instant::now() + WAIT;
    loop {
        let r: kp::JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &req);
        match r.error_code {
            NONE => {
                assert_eq!(r.leader, r.member_id, "the only member leads");
                assert_eq!(r.members.len(), 1);
                assert_eq!(r.members[0].group_instance_id.as_deref(), Some(instance));
                return (r.member_id, r.generation_id);
            }
            // __consumer_offsets is created by the lookup and loads in the background.
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            code => panic!("JoinGroup v5 of {group}: error {code}"),
        }
    }
}

/// SyncGroup v3 of the leader giving itself `assignment`; asserts success.
fn sync_self(c: &mut RawConn, group: &str, instance: &str, member: &StrBytes, generation: i32) {
    let r: kp::SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        3,
        &kp::SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(member.clone())
            .with_group_instance_id(Some(s(instance)))
            .with_assignments(vec![kp::sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(member.clone())
                .with_assignment(Bytes::from_static(b"assignment"))]),
    );
    assert_eq!((r.error_code, r.assignment.as_ref()), (NONE, &b"assignment"[..]));
}

fn describe_group(c: &mut RawConn, group: &str) -> kp::describe_groups_response::DescribedGroup {
    let mut r: kp::DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        5,
        &kp::DescribeGroupsRequest::default().with_groups(vec![gid(group)]),
    );
    r.groups.remove(0)
}

/// LeaveGroup v4 naming only the group instance id (member id ""), as admin tools do.
fn leave_by_instance_id(c: &mut RawConn, group: &str, instance: &str) -> kp::LeaveGroupResponse {
    c.call(
        ApiKey::LeaveGroup,
        4,
        &kp::LeaveGroupRequest::default().with_group_id(gid(group)).with_members(vec![
            kp::leave_group_request::MemberIdentity::default()
                .with_member_id(s(""))
                .with_group_instance_id(Some(s(instance))),
        ]),
    )
}

// ---------------------------------------------------------------------------------------------
// 1. min.insync.replicas

/// acks=all is checked against the ISR with Kafka's effective minimum, `min.insync.replicas`
/// capped at the replication factor: on a topic of one replica, `min.insync.replicas=2` still
/// lets acks=-1 through (Kafka 4.4 answers the same). NOT_ENOUGH_REPLICAS itself, with more
/// replicas than in-sync ones, is covered by the replica manager's unit test.
#[test]
fn acks_all_with_min_insync_replicas_above_the_replication_factor_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = RawConn::connect(&broker);
    create_topic(&mut c, "min-isr", 1, &[("min.insync.replicas", "2")]);
    assert_eq!(produce_ok(&mut c, "min-isr", 0, values(&[b"warm-up"])), 0);

    let all = c.produce_once(9, "min-isr", 0, -1, values(&[b"all-1", b"all-2"]));
    assert_eq!((all.error_code, all.base_offset), (NONE, 1), "{all:?}");
    let p = fetch_now(&mut c, "min-isr", 0, -1);
    assert_eq!((p.error_code, p.high_watermark), (NONE, 3));
}

// ---------------------------------------------------------------------------------------------
// 2. Long-poll fetch woken by an append

/// A Fetch at the log end with `min_bytes` 1 and `max_wait_ms` 30 000 waits, and is answered
/// with the records a Produce on another connection appends (not empty after its wait).
#[test]
fn long_poll_fetch_at_the_log_end_is_answered_with_records_appended_on_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut producer = RawConn::connect(&broker);
    create_topic(&mut producer, "poll", 1, &[]);
    assert_eq!(produce_ok(&mut producer, "poll", 0, values(&[b"before"])), 0);

    // ApiVersions then the long poll, pipelined: once the ApiVersions answer is read, the broker
    // has the fetch in hand (a connection's requests are handled in order).
    let mut fetcher = TcpStream::connect(broker.kafka).unwrap();
    fetcher.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let mut out = frame(ApiKey::ApiVersions, 3, 1, &api_versions_request());
    out.extend(frame(ApiKey::Fetch, 12, 2, &fetch_request("poll", 0, 1, -1, 1, 30_000)));
    fetcher.write_all(&out).unwrap();
    let versions: kp::ApiVersionsResponse =
        decode(ApiKey::ApiVersions, 3, 1, read_frame(&mut fetcher).unwrap());
    assert_eq!(versions.error_code, NONE);
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let _ = tx.send(read_frame(&mut fetcher));
    });

    // No data yet: the fetch is not answered.
    match rx.recv_timeout(Duration::from_secs(1)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("the fetch was answered before any append: {other:?}"),
    }
    assert_eq!(produce_ok(&mut producer, "poll", 0, values(&[b"after-1", b"after-2"])), 1);

    let body = rx
        .recv_timeout(WAIT + Duration::from_secs(60))
        .expect("the fetch is answered")
        .expect("the fetch response frame");
    reader.join().unwrap();
    let p = fetched(decode(ApiKey::Fetch, 12, 2, body));
    assert_eq!((p.error_code, p.high_watermark), (NONE, 3));
    assert_eq!(
        offsets_and_values(p.records.as_ref()),
        vec![(1, b"after-1".to_vec()), (2, b"after-2".to_vec())],
        "woken by the append, with its records"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Leader-epoch fencing on Fetch

/// Fetch with no leader epoch (-1) or the partition's current one is served; a newer epoch
/// than the partition's answers UNKNOWN_LEADER_EPOCH (the client knows of a leader this broker
/// has not caught up with).
#[test]
fn fetch_with_no_or_the_current_leader_epoch_is_served_and_a_newer_one_is_unknown_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = RawConn::connect(&broker);
    create_topic(&mut c, "epochs", 1, &[]);
    produce_ok(&mut c, "epochs", 0, values(&[b"e"]));
    let epoch = leader_epoch(&mut c, "epochs");
    assert!(epoch >= 0, "Metadata v12 leader epoch {epoch}");

    for requested in [-1, epoch] {
        let p = fetch_now(&mut c, "epochs", 0, requested);
        assert_eq!(p.error_code, NONE, "current_leader_epoch {requested}");
        assert_eq!(offsets_and_values(p.records.as_ref()), vec![(0, b"e".to_vec())]);
    }
    let p = fetch_now(&mut c, "epochs", 0, epoch + 1);
    assert_eq!(p.error_code, UNKNOWN_LEADER_EPOCH, "current_leader_epoch {}", epoch + 1);
    assert!(records_of(p.records.as_ref()).is_empty(), "no records with an error");
}

// ---------------------------------------------------------------------------------------------
// 4. ListOffsets max timestamp (v7) and earliest local (v8)

/// ListOffsets v7 timestamp -3 answers the offset and timestamp of the record with the largest
/// timestamp: here the middle record of the first of two batches.
#[test]
fn list_offsets_v7_max_timestamp_is_the_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = RawConn::connect(&broker);
    create_topic(&mut c, "stamps", 1, &[]);
    let first = batch(&[(T0 + 1_000, b"a"), (T0 + 5_000, b"max"), (T0 + 2_000, b"c")]);
    assert_eq!(produce_ok(&mut c, "stamps", 0, first), 0);
    let second = batch(&[(T0 + 3_000, b"d"), (T0 + 4_000, b"e")]);
    assert_eq!(produce_ok(&mut c, "stamps", 0, second), 3);

    let p = list_offsets(&mut c, 7, "stamps", MAX_TIMESTAMP);
    assert_eq!(p.error_code, NONE, "{p:?}");
    assert_eq!((p.offset, p.timestamp), (1, T0 + 5_000), "{p:?}");
    // The timestamps are the ones stored: by timestamp, the first record at or after T0+3000.
    let by_time = list_offsets(&mut c, 7, "stamps", T0 + 3_000);
    assert_eq!((by_time.error_code, by_time.offset), (NONE, 1), "T0+5000 at offset 1 is first");
    let by_time = list_offsets(&mut c, 7, "stamps", T0 + 5_001);
    assert_eq!((by_time.error_code, by_time.offset), (NONE, -1), "nothing that late");
}

/// ListOffsets v8 timestamp -4 (earliest local) is the log start offset: 0 on a new log, and
/// where DeleteRecords moved it afterwards.
#[test]
fn list_offsets_v8_earliest_local_is_the_log_start_offset_also_after_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = RawConn::connect(&broker);
    create_topic(&mut c, "local", 1, &[]);
    produce_ok(&mut c, "local", 0, values(&[b"0", b"1", b"2"]));
    produce_ok(&mut c, "local", 0, values(&[b"3", b"4"]));

    let p = list_offsets(&mut c, 8, "local", EARLIEST_LOCAL);
    assert_eq!((p.error_code, p.offset), (NONE, 0), "{p:?}");

    let deleted = delete_records(&mut c, "local", 2);
    assert_eq!((deleted.error_code, deleted.low_watermark), (NONE, 2));
    let p = list_offsets(&mut c, 8, "local", EARLIEST_LOCAL);
    assert_eq!((p.error_code, p.offset), (NONE, 2), "{p:?}");
    assert_eq!(offset_at(&mut c, "local", EARLIEST), 2, "earliest agrees");
    assert_eq!(fetch_now(&mut c, "local", 2, -1).log_start_offset, 2, "fetch agrees");
}

// ---------------------------------------------------------------------------------------------
// 5. DeleteTopics by id (v6)

/// DeleteTopics v6 naming a topic only by its id (from CreateTopics and Metadata) deletes it:
/// Metadata no longer knows it by name (UNKNOWN_TOPIC_OR_PARTITION) or id (UNKNOWN_TOPIC_ID).
/// An id no topic has answers UNKNOWN_TOPIC_ID.
#[test]
fn delete_topics_v6_by_topic_id_removes_the_topic_and_an_unknown_id_is_unknown_topic_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = RawConn::connect(&broker);
    let id = create_topic(&mut c, "doomed", 2, &[]);
    create_topic(&mut c, "kept", 1, &[]);
    let md = metadata_by_name(&mut c, &["doomed"]);
    assert_eq!((md.topics[0].error_code, md.topics[0].topic_id), (NONE, id));

    let delete =
        |c: &mut RawConn, id: uuid::Uuid| -> kp::delete_topics_response::DeletableTopicResult {
            let mut r: kp::DeleteTopicsResponse = c.call(
                ApiKey::DeleteTopics,
                6,
                &kp::DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
                    kp::delete_topics_request::DeleteTopicState::default()
                        .with_name(None)
                        .with_topic_id(id),
                ]),
            );
            assert_eq!(r.responses.len(), 1);
            r.responses.remove(0)
        };
    let r = delete(&mut c, id);
    assert_eq!(r.error_code, NONE, "{r:?}");
    assert_eq!((name_of(&r.name), r.topic_id), (Some("doomed"), id));

    // Kafka removes the topic from its metadata asynchronously: wait for it (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let md = loop {
        let md = metadata_by_name(&mut c, &["doomed"]);
        if md.topics[0].error_code != NONE || std::time::Instant::now() > deadline {
            break md;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(md.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION, "by name after deletion");
    let by_id: kp::MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &kp::MetadataRequest::default()
            .with_topics(Some(vec![kp::metadata_request::MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(id)]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(by_id.topics[0].error_code, UNKNOWN_TOPIC_ID, "by id after deletion");
    let all: kp::MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &kp::MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false),
    );
    let names: Vec<&str> = all.topics.iter().filter_map(|t| name_of(&t.name)).collect();
    assert_eq!(names, vec!["kept"], "the other topic stays");
    let p = c.produce_once(9, "doomed", 0, 1, values(&[b"late"]));
    assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // The deleted topic's id, and one that never existed.
    for unknown in [id, uuid::Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0001)] {
        let r = delete(&mut c, unknown);
        assert_eq!(r.error_code, UNKNOWN_TOPIC_ID, "{unknown}: {r:?}");
        assert_eq!(r.topic_id, unknown);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. DeleteRecords with offset -1

/// DeleteRecords with offset -1 deletes everything below the high watermark: the low
/// watermark it answers is the HW, the old offsets are out of range, and the log goes on.
#[test]
fn delete_records_with_offset_minus_1_deletes_up_to_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = RawConn::connect(&broker);
    create_topic(&mut c, "trim", 1, &[]);
    produce_ok(&mut c, "trim", 0, values(&[b"0", b"1"]));
    produce_ok(&mut c, "trim", 0, values(&[b"2", b"3", b"4"]));
    produce_ok(&mut c, "trim", 0, values(&[b"5"]));
    let hw = offset_at(&mut c, "trim", LATEST);
    assert_eq!(hw, 6);

    let r = delete_records(&mut c, "trim", -1);
    assert_eq!((r.error_code, r.low_watermark), (NONE, hw), "{r:?}");
    assert_eq!(offset_at(&mut c, "trim", EARLIEST), hw);
    assert_eq!(fetch_now(&mut c, "trim", 0, -1).error_code, OFFSET_OUT_OF_RANGE);
    let p = fetch_now(&mut c, "trim", hw, -1);
    assert_eq!((p.error_code, p.log_start_offset, p.high_watermark), (NONE, hw, hw));
    assert!(records_of(p.records.as_ref()).is_empty());

    assert_eq!(produce_ok(&mut c, "trim", 0, values(&[b"6"])), hw);
    let p = fetch_now(&mut c, "trim", hw, -1);
    assert_eq!(offsets_and_values(p.records.as_ref()), vec![(hw, b"6".to_vec())]);
}

// ---------------------------------------------------------------------------------------------
// 7. LeaveGroup by group instance id

/// LeaveGroup v4 with only a group instance id (member id "") removes that static member, as
/// admin tools remove members: the group is left Empty, and its old member id is unknown.
#[test]
fn leave_group_by_group_instance_id_removes_the_static_member() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--set", "group.initial.rebalance.delay.ms=0"]);
    let mut c = RawConn::connect(&broker);
    let (member, generation) = join_static(&mut c, "statics", "instance-1");
    sync_self(&mut c, "statics", "instance-1", &member, generation);
    let g = describe_group(&mut c, "statics");
    assert_eq!((g.error_code, g.group_state.as_str(), g.members.len()), (NONE, "Stable", 1));
    assert_eq!(g.members[0].group_instance_id.as_deref(), Some("instance-1"));

    let left = leave_by_instance_id(&mut c, "statics", "instance-1");
    assert_eq!(left.error_code, NONE, "{left:?}");
    assert_eq!(left.members.len(), 1);
    assert_eq!(left.members[0].error_code, NONE, "{left:?}");
    assert_eq!(left.members[0].group_instance_id.as_deref(), Some("instance-1"));

    let g = describe_group(&mut c, "statics");
    assert_eq!((g.error_code, g.group_state.as_str()), (NONE, "Empty"), "{g:?}");
    assert!(g.members.is_empty(), "{g:?}");
    let hb: kp::HeartbeatResponse = c.call(
        ApiKey::Heartbeat,
        3,
        &kp::HeartbeatRequest::default()
            .with_group_id(gid("statics"))
            .with_generation_id(generation)
            .with_member_id(member),
    );
    assert_eq!(hb.error_code, UNKNOWN_MEMBER_ID, "the removed member");
    // Leaving again: no member has that instance id any more.
    let again = leave_by_instance_id(&mut c, "statics", "instance-1");
    assert_eq!((again.error_code, again.members[0].error_code), (NONE, UNKNOWN_MEMBER_ID));
}

/// Kafka echoes the member id of the request in each LeaveGroup member response: removing a
/// member by instance id (member id "") answers member id "" (GroupMetadataManager
/// .classicGroupLeave), not the id the member had. The Java admin client depends on it:
/// `removeMembersFromConsumerGroup` looks each member's result up by (member id "", instance
/// id) and fails with "was not included in the removal response" otherwise.
#[test]
fn leave_group_by_group_instance_id_echoes_the_requests_empty_member_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--set", "group.initial.rebalance.delay.ms=0"]);
    let mut c = RawConn::connect(&broker);
    let (member, generation) = join_static(&mut c, "echo", "instance-1");
    sync_self(&mut c, "echo", "instance-1", &member, generation);
    let left = leave_by_instance_id(&mut c, "echo", "instance-1");
    assert_eq!((left.error_code, left.members[0].error_code), (NONE, NONE));
    assert_eq!(left.members[0].member_id.as_str(), "", "removed member was {member:?}");
}

// ---------------------------------------------------------------------------------------------
// 8. ListGroups type filter (v5)

/// ListGroups v5 filters by group type: every Sluice group is a classic group, so `classic`
/// lists it (with type `classic`) and `consumer` (KIP-848 groups) lists none.
#[test]
fn list_groups_v5_types_filter_classic_lists_the_group_and_consumer_lists_none() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--set", "group.initial.rebalance.delay.ms=0"]);
    let mut c = RawConn::connect(&broker);
    let (member, generation) = join_static(&mut c, "typed", "instance-1");
    sync_self(&mut c, "typed", "instance-1", &member, generation);

    let list = |c: &mut RawConn, types: &[&str]| -> kp::ListGroupsResponse {
        c.call(
            ApiKey::ListGroups,
            5,
            &kp::ListGroupsRequest::default()
                .with_types_filter(types.iter().map(|t| s(t)).collect()),
        )
    };
    let classic = list(&mut c, &["classic"]);
    assert_eq!(classic.error_code, NONE);
    let listed: Vec<(&str, &str, &str, &str)> = classic
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.protocol_type.as_str(),
                g.group_state.as_str(),
                g.group_type.as_str(),
            )
        })
        .collect();
    assert_eq!(listed, vec![("typed", "consumer", "Stable", "classic")]);

    let consumer = list(&mut c, &["consumer"]);
    assert_eq!(consumer.error_code, NONE);
    assert!(consumer.groups.is_empty(), "{:?}", consumer.groups);
    // No filter: every group.
    assert_eq!(list(&mut c, &[]).groups.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 9. connections.max.idle.ms

/// A connection idle for `connections.max.idle.ms` is closed by the broker (the client reads
/// end of stream) and counted as `sluice_connections_closed_total{reason="idle"}`.
#[test]
fn an_idle_connection_is_closed_after_connections_max_idle_ms_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--set", "connections.max.idle.ms=500"]);
    let mut c = RawConn::connect(&broker);
    api_versions_ok(&mut c);
    // Nothing more is sent; the broker closes it (bounded by RawConn's 20 s read timeout).
    let mut byte = [0u8; 1];
    match c.stream.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the broker to close the idle connection, got {other:?}"),
    }
    if !common::against_kafka() {
        let (status, metrics) = broker.http_get("/metrics");
        assert!(status.contains("200"), "{status}");
        let idle: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("sluice_connections_closed_total{reason=\"idle\"}"))
            .collect();
        assert_eq!(idle, vec!["sluice_connections_closed_total{reason=\"idle\"} 1"], "{metrics}");
    }
    // A new connection is served as usual.
    api_versions_ok(&mut RawConn::connect(&broker));
}

// ---------------------------------------------------------------------------------------------
// 10. max.connections

/// With `max.connections=2` and two connections open, a third one is not served (the broker
/// does not accept it; its request gets no answer) until one of the two closes; then it is.
#[test]
fn max_connections_leaves_a_further_connection_unserved_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--set", "max.connections=2"]);
    let mut first = RawConn::connect(&broker);
    api_versions_ok(&mut first);
    let mut second = RawConn::connect(&broker);
    api_versions_ok(&mut second);

    // The kernel completes the handshake (listen backlog); the broker must not serve it.
    let mut third = TcpStream::connect(broker.kafka).unwrap();
    third.write_all(&frame(ApiKey::ApiVersions, 3, 7, &api_versions_request())).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    match read_frame(&mut third) {
        Err(e) if is_timeout(&e) => {}
        other => panic!("a third connection was served with max.connections=2: {other:?}"),
    }
    // The two open connections are unaffected.
    api_versions_ok(&mut first);
    api_versions_ok(&mut second);

    drop(first);
    third.set_read_timeout(Some(WAIT)).unwrap();
    let body = read_frame(&mut third).expect("the third connection is served once one closes");
    let versions: kp::ApiVersionsResponse = decode(ApiKey::ApiVersions, 3, 7, body);
    assert_eq!(versions.error_code, NONE);
    api_versions_ok(&mut second);
}

// ---------------------------------------------------------------------------------------------
// 11. The oldest advertised versions succeed

/// The oldest version of each data and admin API, with a normal request, answers error 0 and
/// the content Kafka gives: CreateTopics v2, Metadata v0/v1, Produce v3, Fetch v4,
/// ListOffsets v1, OffsetForLeaderEpoch v2, DescribeConfigs v1, FindCoordinator v0,
/// OffsetCommit v2, OffsetFetch v1, DeleteTopics v1.
#[test]
fn old_api_versions_succeed_with_the_expected_content() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = RawConn::connect(&broker);
    const TOPIC: &str = "legacy";

    // CreateTopics v2, with a topic config.
    let created: kp::CreateTopicsResponse = c.call(
        ApiKey::CreateTopics,
        2,
        &kp::CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            kp::create_topics_request::CreatableTopic::default()
                .with_name(tn(TOPIC))
                .with_num_partitions(2)
                .with_replication_factor(1)
                .with_configs(vec![kp::create_topics_request::CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("86400000")))]),
        ]),
    );
    assert_eq!(created.topics.len(), 1);
    let t = &created.topics[0];
    assert_eq!((t.name.as_str(), t.error_code), (TOPIC, NONE), "{:?}", t.error_message);

    // Metadata v0 (named topic) and v1 (all topics: null).
    let v0: kp::MetadataResponse = c.call(
        ApiKey::Metadata,
        0,
        &kp::MetadataRequest::default().with_topics(Some(vec![
            kp::metadata_request::MetadataRequestTopic::default().with_name(Some(tn(TOPIC))),
        ])),
    );
    assert_eq!(v0.brokers.len(), 1);
    assert_eq!((v0.brokers[0].node_id.0, v0.brokers[0].port), (1, broker.kafka.port() as i32));
    assert_eq!(v0.topics.len(), 1);
    let topic = &v0.topics[0];
    assert_eq!((topic.error_code, name_of(&topic.name)), (NONE, Some(TOPIC)));
    let mut partitions: Vec<(i32, i32, i16)> =
        topic.partitions.iter().map(|p| (p.partition_index, p.leader_id.0, p.error_code)).collect();
    partitions.sort();
    assert_eq!(partitions, vec![(0, 1, NONE), (1, 1, NONE)]);
    assert!(topic.partitions.iter().all(|p| p.isr_nodes.iter().map(|b| b.0).eq([1])));
    let v1: kp::MetadataResponse =
        c.call(ApiKey::Metadata, 1, &kp::MetadataRequest::default().with_topics(None));
    assert_eq!(v1.controller_id.0, 1);
    let legacy = v1.topics.iter().find(|t| name_of(&t.name) == Some(TOPIC)).expect("listed");
    assert_eq!((legacy.error_code, legacy.is_internal, legacy.partitions.len()), (NONE, false, 2));

    // Produce v3 (acks=all), twice.
    let p = c.produce_with(3, TOPIC, 0, -1, batch(&[(T0, b"r0"), (T0 + 10, b"r1")]));
    assert_eq!((p.error_code, p.base_offset), (NONE, 0), "{p:?}");
    let p = c.produce_once(3, TOPIC, 0, -1, batch(&[(T0 + 20, b"r2"), (T0 + 30, b"r3")]));
    assert_eq!((p.error_code, p.base_offset, p.log_append_time_ms), (NONE, 2, -1), "{p:?}");

    // Fetch v4: both batches, their offsets, timestamps and values.
    let f = fetched(c.call(ApiKey::Fetch, 4, &fetch_request(TOPIC, 0, 0, -1, 1, 0)));
    assert_eq!((f.error_code, f.high_watermark, f.last_stable_offset), (NONE, 4, 4));
    assert_eq!(
        records_of(f.records.as_ref()),
        vec![
            (0, T0, b"r0".to_vec()),
            (1, T0 + 10, b"r1".to_vec()),
            (2, T0 + 20, b"r2".to_vec()),
            (3, T0 + 30, b"r3".to_vec()),
        ]
    );

    // ListOffsets v1: latest, earliest, by timestamp.
    let latest = list_offsets(&mut c, 1, TOPIC, LATEST);
    assert_eq!((latest.error_code, latest.offset), (NONE, 4));
    let earliest = list_offsets(&mut c, 1, TOPIC, EARLIEST);
    assert_eq!((earliest.error_code, earliest.offset), (NONE, 0));
    let by_time = list_offsets(&mut c, 1, TOPIC, T0 + 15);
    assert_eq!((by_time.error_code, by_time.offset, by_time.timestamp), (NONE, 2, T0 + 20));

    // OffsetForLeaderEpoch v2: the current epoch ends at the log end.
    let epoch = leader_epoch(&mut c, TOPIC);
    let r: kp::OffsetForLeaderEpochResponse = c.call(
        ApiKey::OffsetForLeaderEpoch,
        2,
        &kp::OffsetForLeaderEpochRequest::default().with_topics(vec![
            kp::offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(tn(TOPIC))
                .with_partitions(vec![
                    kp::offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(epoch)
                        .with_leader_epoch(epoch),
                ]),
        ]),
    );
    let e = &r.topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (NONE, epoch, 4), "{e:?}");

    // DescribeConfigs v1: the topic's override, its source and synonyms.
    let r: kp::DescribeConfigsResponse = c.call(
        ApiKey::DescribeConfigs,
        1,
        &kp::DescribeConfigsRequest::default()
            .with_resources(vec![kp::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(TOPIC))
                .with_configuration_keys(None)])
            .with_include_synonyms(true),
    );
    let result = &r.results[0];
    assert_eq!((result.error_code, result.resource_name.as_str()), (NONE, TOPIC));
    let retention = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .expect("retention.ms described");
    // Source 1: DYNAMIC_TOPIC_CONFIG, first among the synonyms.
    assert_eq!(
        (retention.value.as_deref(), retention.config_source, retention.read_only),
        (Some("86400000"), 1, false)
    );
    assert_eq!(retention.synonyms[0].name.as_str(), "retention.ms");
    assert_eq!(
        (retention.synonyms[0].value.as_deref(), retention.synonyms[0].source),
        (Some("86400000"), 1)
    );

    // FindCoordinator v0 names this broker.
    let found = find_coordinator(&mut c, 0, "legacy-group");
    assert_eq!(
        (found.error_code, found.node_id.0, found.port),
        (NONE, 1, broker.kafka.port() as i32)
    );

    // OffsetCommit v2 outside group management (generation -1), retried while the new
    // __consumer_offsets partitions load; then OffsetFetch v1 reads it back.
    let commit = kp::OffsetCommitRequest::default()
        .with_group_id(gid("legacy-group"))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_retention_time_ms(-1)
        .with_topics(vec![kp::offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(tn(TOPIC))
            .with_partitions(vec![
                kp::offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(3)
                    .with_committed_metadata(Some(s("legacy-meta"))),
            ])]);
    let deadline = Instant::now() + WAIT;
    loop {
        let r: kp::OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 2, &commit);
        let p = &r.topics[0].partitions[0];
        match p.error_code {
            NONE => {
                assert_eq!((r.topics[0].name.as_str(), p.partition_index), (TOPIC, 0));
                break;
            }
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            code => panic!("OffsetCommit v2: error {code}"),
        }
    }
    let fetched_offsets: kp::OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        1,
        &kp::OffsetFetchRequest::default().with_group_id(gid("legacy-group")).with_topics(Some(
            vec![kp::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(tn(TOPIC))
                .with_partition_indexes(vec![0, 1])],
        )),
    );
    let got: Vec<(i32, i64, Option<&str>, i16)> = fetched_offsets.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.metadata.as_deref(), p.error_code))
        .collect();
    assert_eq!(got, vec![(0, 3, Some("legacy-meta"), NONE), (1, -1, Some(""), NONE)]);

    // DeleteTopics v1 by name: gone from the full topic list.
    let deleted: kp::DeleteTopicsResponse = c.call(
        ApiKey::DeleteTopics,
        1,
        &kp::DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topic_names(vec![tn(TOPIC)]),
    );
    assert_eq!(deleted.responses.len(), 1);
    let d = &deleted.responses[0];
    assert_eq!((name_of(&d.name), d.error_code), (Some(TOPIC), NONE));
    // Kafka answers DeleteTopics once the controller has the deletion; its brokers' metadata
    // may show the topic a moment longer, so wait (boundedly) for it to go.
    common::wait_for("the deleted topic gone from Metadata", Duration::from_secs(15), || {
        let after: kp::MetadataResponse =
            c.call(ApiKey::Metadata, 1, &kp::MetadataRequest::default().with_topics(None));
        after.topics.iter().all(|t| name_of(&t.name) != Some(TOPIC)).then_some(())
    });
}
