//! Raw Kafka protocol against the real binary: garbage, truncated frames, absurd length
//! prefixes, unknown API keys and versions close only the offending connection (or get
//! UNSUPPORTED_VERSION for ApiVersions, KIP-511), while a well-behaved client on another
//! connection keeps working throughout. Also: pipelined requests are answered in order.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use common::BrokerProcess;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

fn connect(b: &BrokerProcess) -> TcpStream {
    let s = TcpStream::connect(b.kafka).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

use common::frame;

fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    common::read_frame(s).ok()
}

/// The broker closed the connection: a read returns end of stream (or a reset).
fn assert_closed(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected the connection to be closed, got {other:?}"),
    }
}

fn metadata_ok(b: &BrokerProcess) {
    let mut s = connect(b);
    s.write_all(&frame(ApiKey::Metadata, 12, 7, &MetadataRequest::default().with_topics(None)))
        .unwrap();
    let mut resp = read_frame(&mut s).expect("metadata response");
    let header =
        ResponseHeader::decode(&mut resp, ApiKey::Metadata.response_header_version(12)).unwrap();
    assert_eq!(header.correlation_id, 7);
    let md = MetadataResponse::decode(&mut resp, 12).unwrap();
    assert_eq!(md.brokers.len(), 1);
}

#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    // A well-behaved client stays connected across every abuse below.
    let mut good = connect(&broker);
    let mut good_id = 100;
    let mut check_good = |good: &mut TcpStream| {
        good_id += 1;
        good.write_all(&frame(
            ApiKey::ApiVersions,
            3,
            good_id,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ))
        .unwrap();
        let mut r = read_frame(good).expect("the good connection still answers");
        let h = ResponseHeader::decode(&mut r, 0).unwrap();
        assert_eq!(h.correlation_id, good_id);
        let v = ApiVersionsResponse::decode(&mut r, 3).unwrap();
        assert_eq!(v.error_code, 0);
    };
    check_good(&mut good);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", {
            let mut v = 12i32.to_be_bytes().to_vec();
            v.extend_from_slice(b"\xde\xad\xbe\xef garbage");
            v
        }),
        ("2 GiB length prefix", 0x7fff_ffffi32.to_be_bytes().to_vec()),
        ("negative length prefix", (-5i32).to_be_bytes().to_vec()),
        ("frame shorter than a header", {
            let mut v = 3i32.to_be_bytes().to_vec();
            v.extend_from_slice(&[0, 3, 0]);
            v
        }),
        (
            "unknown API key",
            frame(ApiKey::ApiVersions, 0, 1, &ApiVersionsRequest::default())
                .into_iter()
                .enumerate()
                .map(|(i, b)| match i {
                    4 => 0x03,
                    5 => 0xe7,
                    _ => b,
                }) // key 999
                .collect(),
        ),
        ("unsupported Metadata version", {
            let mut f = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
            f[6..8].copy_from_slice(&99i16.to_be_bytes());
            f
        }),
        ("unimplemented API (ConsumerGroupHeartbeat, KIP-848)", {
            let mut f = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
            f[4..6].copy_from_slice(&(ApiKey::ConsumerGroupHeartbeat as i16).to_be_bytes());
            f[6..8].copy_from_slice(&0i16.to_be_bytes());
            f
        }),
        ("malformed body", {
            let mut v = Vec::new();
            v.extend_from_slice(&14i32.to_be_bytes());
            v.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
            v.extend_from_slice(&4i16.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
            v.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
            v.extend_from_slice(&1000i32.to_be_bytes()); // 1000 topics, none present
            v
        }),
        // Array counts far beyond what the frame holds: a decoder that sized its vector from
        // the count would ask for hundreds of GiB and abort the whole process.
        ("array count i32::MAX", {
            let mut v = Vec::new();
            v.extend_from_slice(&14i32.to_be_bytes());
            v.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
            v.extend_from_slice(&4i16.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
            v.extend_from_slice(&(-1i16).to_be_bytes());
            v.extend_from_slice(&i32::MAX.to_be_bytes());
            v
        }),
        ("compact array count u32::MAX", {
            let mut v = Vec::new();
            v.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
            v.extend_from_slice(&12i16.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
            v.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
            v.push(0); // no header tagged fields
            v.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // varint 2^32 - 1: 2^32 - 2 topics
            let mut f = (v.len() as i32).to_be_bytes().to_vec();
            f.extend_from_slice(&v);
            f
        }),
    ];
    for (what, bytes) in cases {
        let mut s = connect(&broker);
        s.write_all(&bytes).unwrap();
        assert_closed(&mut s, what);
        check_good(&mut good);
    }
    // A truncated frame followed by the client going away.
    {
        let mut s = connect(&broker);
        s.write_all(&100i32.to_be_bytes()).unwrap();
        s.write_all(&[1, 2, 3]).unwrap();
    }
    check_good(&mut good);

    // KIP-511: an ApiVersions version the broker does not know gets UNSUPPORTED_VERSION in the
    // v0 layout, with ApiVersions' own range only (as Kafka answers). A newer client sends it in the newest layout it
    // knows (flexible, header v2), so the request is a v3 one with the version raised.
    let mut s = connect(&broker);
    let newer = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("raw-test"))
        .with_client_software_version(StrBytes::from_static_str("99"));
    let mut f = frame(ApiKey::ApiVersions, 3, 42, &newer);
    f[6..8].copy_from_slice(&77i16.to_be_bytes());
    s.write_all(&f).unwrap();
    let mut r = read_frame(&mut s).expect("ApiVersions fallback response");
    assert_eq!(r.get_i32(), 42);
    let v = ApiVersionsResponse::decode(&mut r, 0).unwrap();
    assert_eq!(v.error_code, 35);
    let keys: Vec<(i16, i16)> = v.api_keys.iter().map(|k| (k.api_key, k.min_version)).collect();
    assert_eq!(keys, vec![(ApiKey::ApiVersions as i16, 0)]);
    assert!(v.api_keys[0].max_version >= 3);

    metadata_ok(&broker);
    if common::against_kafka() {
        return;
    }
    let (_, metrics) = broker.http_get("/metrics");
    assert!(
        metrics.contains("sluice_connections_closed_total{reason=\"frame_size\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_connections_closed_total{reason=\"unknown_api\"}"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut s = connect(&broker);
    let mut all = Vec::new();
    for id in 0..50 {
        if id % 2 == 0 {
            all.extend(frame(
                ApiKey::Metadata,
                9,
                id,
                &MetadataRequest::default().with_topics(Some(vec![])),
            ));
        } else {
            all.extend(frame(ApiKey::ApiVersions, 2, id, &ApiVersionsRequest::default()));
        }
    }
    s.write_all(&all).unwrap();
    for id in 0..50 {
        let mut r = read_frame(&mut s).expect("response");
        assert_eq!(r.get_i32(), id, "responses come back in request order");
    }
}

/// One batch of `values` without keys, encoded as a client library encodes it.
fn encode_batch(values: &[&[u8]]) -> BytesMut {
    let records: Vec<_> = values.iter().map(|v| (None, Some(*v))).collect();
    common::client_batch(&records)
}

/// Produce (acks=1) to one partition; returns the partition's error code.
fn produce_code(
    c: &mut common::RawConn,
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
    let req = ProduceRequest::default().with_acks(1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(records)]),
    ]);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    r.responses[0].partition_responses[0].error_code
}

/// Fetch (v12) one partition; returns (error code, high watermark, record bytes).
fn fetch(
    c: &mut common::RawConn,
    topic: &str,
    partition: i32,
    offset: i64,
    min_bytes: i32,
    max_wait_ms: i32,
) -> (i16, i64, usize) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.high_watermark, p.records.as_ref().map_or(0, |r| r.len()))
}

/// The data path's error codes, as Kafka answers them; none of the rejected requests writes
/// anything, and the connection keeps working after each.
#[test]
fn produce_and_fetch_errors_carry_kafkas_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    common::create_topic(&broker.bootstrap(), "errs", 1, &[("max.message.bytes", "2000")]);
    let mut c = common::RawConn::connect(&broker);
    let good = encode_batch(&[b"one", b"two"]);
    assert_eq!(produce_code(&mut c, "errs", 0, Some(good.clone().freeze())), 0);

    // Produce v3+: exactly one magic v2 batch per partition (INVALID_RECORD, 87).
    let mut two = good.clone();
    two.extend_from_slice(&good);
    assert_eq!(produce_code(&mut c, "errs", 0, Some(two.freeze())), 87, "two batches");
    assert_eq!(produce_code(&mut c, "errs", 0, Some(Bytes::new())), 87, "no batch");
    if !common::against_kafka() {
        // Kafka 4.4 throws a NullPointerException here and never answers (seen with the same
        // bytes); Sluice refuses it like an empty record set.
        assert_eq!(produce_code(&mut c, "errs", 0, None), 87, "null records");
    }
    let mut magic1 = good.clone();
    magic1[16] = 1;
    assert_eq!(produce_code(&mut c, "errs", 0, Some(magic1.freeze())), 87, "magic 1");
    // A CRC that does not match the contents: CORRUPT_MESSAGE (2).
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    assert_eq!(produce_code(&mut c, "errs", 0, Some(flipped.freeze())), 2, "bad CRC");
    // Larger than the topic's max.message.bytes: MESSAGE_TOO_LARGE (10).
    let big = encode_batch(&[&[7u8; 3000]]);
    assert_eq!(produce_code(&mut c, "errs", 0, Some(big.freeze())), 10, "too large");
    // A partition the topic does not have: UNKNOWN_TOPIC_OR_PARTITION (3).
    assert_eq!(produce_code(&mut c, "errs", 5, Some(good.clone().freeze())), 3);

    // Nothing above was written: the log holds the first two records only.
    let (code, hw, bytes) = fetch(&mut c, "errs", 0, 0, 1, 0);
    assert_eq!((code, hw), (0, 2));
    assert_eq!(bytes, good.len(), "the one good batch, as it was produced");
    // Beyond the log end: OFFSET_OUT_OF_RANGE (1); an unknown partition: 3.
    assert_eq!(fetch(&mut c, "errs", 0, 1000, 1, 0).0, 1);
    assert_eq!(fetch(&mut c, "errs", 7, 0, 1, 0).0, 3);
    // acks=0 has no response: a success leaves the connection as it was, a failure closes it
    // (Kafka's way of telling the client to refresh its metadata).
    let acks0 = |partition: i32| {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, TopicName};
        ProduceRequest::default().with_acks(0).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("errs")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(good.clone().freeze()))]),
        ])
    };
    let mut s = connect(&broker);
    s.write_all(&frame(ApiKey::Produce, 9, 1, &acks0(0))).unwrap();
    s.write_all(&frame(ApiKey::Metadata, 12, 2, &MetadataRequest::default().with_topics(None)))
        .unwrap();
    let mut r = read_frame(&mut s).expect("the metadata response after an acks=0 produce");
    assert_eq!(r.get_i32(), 2, "no response for the acks=0 produce");
    s.write_all(&frame(ApiKey::Produce, 9, 3, &acks0(9))).unwrap();
    assert_closed(&mut s, "acks=0 produce to a partition that does not exist");

    // min_bytes 0 at the log end answers at once (Kafka does not wait for max_wait_ms); the
    // connection's 20 s read timeout would fail this if the broker held it for 60 s.
    assert_eq!(fetch(&mut c, "errs", 0, 4, 0, 60_000), (0, 4, 0));
}

/// `batch` after `edit`, with its CRC made valid again: only the validator can catch it.
fn edited(batch: &BytesMut, edit: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut b = batch.to_vec();
    edit(&mut b);
    sluice_broker::log::batch::BatchMut::new(&mut b).update_crc();
    Bytes::from(b)
}

/// Batches with a valid CRC that Kafka's LogValidator refuses are refused here too, with
/// Kafka's codes (checked against Apache Kafka 4.4 with the same bytes) and, for problems with
/// single records, per-record errors; nothing of them is written, so consumers never meet them.
#[test]
fn batches_kafka_refuses_are_refused_with_record_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    common::create_topic(&broker.bootstrap(), "plain", 1, &[]);
    common::create_topic(&broker.bootstrap(), "keyed", 1, &[("cleanup.policy", "compact")]);
    let mut c = common::RawConn::connect(&broker);
    let good = common::client_batch(&[
        (Some(b"a"), Some(b"1")),
        (Some(b"b"), Some(b"2")),
        (Some(b"c"), Some(b"3")),
    ]);
    assert_eq!(c.produce("plain", good.clone().freeze()).error_code, 0);

    let invalid_record = 87;
    // Kafka 4.4 answers an unknown codec with UNKNOWN_SERVER_ERROR (an uncaught exception);
    // Sluice, on purpose, with INVALID_RECORD (docs/protocol.md, "Batch validation").
    let unknown_codec = if common::against_kafka() { -1 } else { invalid_record };
    for (what, batch) in [
        ("codec 7", edited(&good, |b| b[22] |= 0x07)),
        ("codec 5", edited(&good, |b| b[22] = (b[22] & !0x07) | 0x05)),
    ] {
        assert_eq!(c.produce("plain", batch).error_code, unknown_codec, "{what}");
    }
    let cases: Vec<(&str, Bytes)> = vec![
        // recordsCount 5 and lastOffsetDelta 4, but three records follow.
        (
            "count above the records",
            edited(&good, |b| {
                b[23..27].copy_from_slice(&4i32.to_be_bytes());
                b[57..61].copy_from_slice(&5i32.to_be_bytes());
            }),
        ),
        (
            "count below the records",
            edited(&good, |b| {
                b[23..27].copy_from_slice(&1i32.to_be_bytes());
                b[57..61].copy_from_slice(&2i32.to_be_bytes());
            }),
        ),
        (
            "count against offset range",
            edited(&good, |b| b[57..61].copy_from_slice(&4i32.to_be_bytes())),
        ),
        (
            "garbage records",
            edited(&good, |b| {
                for (i, x) in b[61..].iter_mut().enumerate() {
                    *x = (i as u8).wrapping_mul(151).wrapping_add(89);
                }
            }),
        ),
        ("base offset 100", edited(&good, |b| b[0..8].copy_from_slice(&100i64.to_be_bytes()))),
        ("control batch", edited(&good, |b| b[22] |= 0x20)),
        ("truncated batch", good.clone().freeze().slice(..good.len() - 3)),
    ];
    for (what, batch) in cases {
        let r = c.produce("plain", batch);
        assert_eq!(r.error_code, invalid_record, "{what}: {r:?}");
        assert!(r.record_errors.is_empty(), "{what}: batch-level, as Kafka");
    }

    // A record without a key on a compacted topic: INVALID_RECORD naming record 1.
    let null_key =
        common::client_batch(&[(Some(b"a"), Some(b"1")), (None, Some(b"2")), (Some(b"c"), None)]);
    let r = c.produce("keyed", null_key.freeze());
    assert_eq!(r.error_code, invalid_record, "{r:?}");
    assert_eq!(r.record_errors.len(), 1, "{r:?}");
    assert_eq!(r.record_errors[0].batch_index, 1);
    let message = r.record_errors[0].batch_index_error_message.as_deref().unwrap_or_default();
    assert!(message.contains("Compacted topic cannot accept message without key"), "{message}");
    let compressed = common::client_batch_compressed(
        kafka_protocol::records::Compression::Zstd,
        &[(None, Some(b"1")), (Some(b"b"), Some(b"2"))],
    );
    let r = c.produce("keyed", compressed.freeze());
    assert_eq!((r.error_code, r.record_errors.len()), (invalid_record, 1), "zstd: {r:?}");

    // Two days ahead of the broker's clock (message.timestamp.after.max.ms is one hour):
    // INVALID_TIMESTAMP (32) with one error per record.
    let future = edited(&good, |b| {
        let ts =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
                as i64
                + 2 * 86_400_000;
        b[27..35].copy_from_slice(&ts.to_be_bytes());
        b[35..43].copy_from_slice(&ts.to_be_bytes());
    });
    let r = c.produce("plain", future);
    assert_eq!((r.error_code, r.record_errors.len()), (32, 3), "{r:?}");

    // Only the first good batch is in either log.
    assert_eq!(fetch(&mut c, "plain", 0, 0, 1, 0), (0, 3, good.len()));
    assert_eq!(fetch(&mut c, "keyed", 0, 0, 1, 0), (0, 0, 0));
    metadata_ok(&broker);
    if common::against_kafka() {
        return;
    }
    // Each refusal is counted by API and Kafka error name.
    let (_, metrics) = broker.http_get("/metrics");
    for line in [
        r#"sluice_error_responses_total{api="produce",error="INVALID_RECORD"} 11"#,
        r#"sluice_error_responses_total{api="produce",error="INVALID_TIMESTAMP"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

/// A frame's buffer grows with the bytes that arrive: ten connections that each declare a
/// 100 MiB request and send 10 bytes of it do not make the broker reserve 1 GiB, and the
/// broker keeps serving. (Before, each declared size was allocated and zero-filled at once.)
#[test]
fn declared_frame_sizes_do_not_reserve_memory() {
    if common::against_kafka() {
        return; // the broker process's memory: Sluice's own
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    metadata_ok(&broker);
    let before = broker.status_kib("VmRSS");
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut s = connect(&broker);
        s.write_all(&(100i32 << 20).to_be_bytes()).unwrap();
        s.write_all(&[0u8; 10]).unwrap();
        held.push(s);
    }
    // The broker has read the prefixes once it answers a request sent after them.
    metadata_ok(&broker);
    let after = broker.status_kib("VmRSS");
    assert!(
        // The old reader (a zero-filled buffer of the declared size) added 25 MiB here.
        after < before + 8 * 1024,
        "RSS went from {before} KiB to {after} KiB for 100 bytes received"
    );
    drop(held);
    metadata_ok(&broker);
}

/// `queued.max.request.bytes` bounds the requests being read on all connections together: a
/// client whose frame does not fit waits (it is not refused, nor is memory reserved), and is
/// served once the frames ahead of it are done.
#[test]
fn queued_max_request_bytes_holds_back_reading_until_there_is_room() {
    if common::against_kafka() {
        // Kafka's pool is not strict: it lets a request in while any memory is left, so it
        // overshoots by up to one request; Sluice's holds the bound exactly.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        dir.path(),
        &["--set", "socket.request.max.bytes=100000", "--set", "queued.max.request.bytes=100000"],
    );
    // A frame declaring 90,000 bytes takes 90,000 of the pool while it arrives...
    let mut slow = connect(&broker);
    slow.write_all(&90_000i32.to_be_bytes()).unwrap();
    slow.write_all(&[0u8; 100]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !broker.http_get("/metrics").1.contains("sluice_request_memory_used_bytes 90000") {
        assert!(std::time::Instant::now() < deadline, "the slow frame never took its share");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...so a 10,100-byte request on another connection cannot be read yet.
    let body = {
        let mut f = frame(ApiKey::Metadata, 12, 7, &MetadataRequest::default().with_topics(None));
        let pad = 10_100 - (f.len() - 4);
        f.extend(std::iter::repeat_n(0u8, pad)); // trailing bytes are ignored, as in Kafka
        let len = (f.len() - 4) as i32;
        f[..4].copy_from_slice(&len.to_be_bytes());
        f
    };
    let mut waiting = connect(&broker);
    waiting.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    waiting.write_all(&body).unwrap();
    let mut byte = [0u8; 1];
    let r = waiting.read(&mut byte);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "answered while the pool was full: {r:?}"
    );
    // The slow client gives up: its share returns to the pool and the waiting request is read.
    drop(slow);
    waiting.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut len = [0u8; 4];
    waiting.read_exact(&mut len).expect("answered once there is room");
}

/// A stream of malformed frames logs a bounded number of warnings, then one that says how many
/// were suppressed; every closed connection is still counted in the metrics.
#[test]
fn malformed_frames_warn_at_a_bounded_rate() {
    if common::against_kafka() {
        return; // Sluice's log and metrics
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_logging(dir.path(), &[], "warn");
    for _ in 0..50 {
        let mut s = connect(&broker);
        s.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap(); // a negative size
        assert_closed(&mut s, "negative frame size");
    }
    metadata_ok(&broker);
    let warnings = broker.log_lines().iter().filter(|l| l.contains("closing connection")).count();
    assert!((1..=10).contains(&warnings), "{warnings} warnings for 50 bad frames");
    let (_, metrics) = broker.http_get("/metrics");
    assert!(
        metrics.contains("sluice_connections_closed_total{reason=\"frame_size\"} 50"),
        "every bad frame counted"
    );
}

/// Strings that come from clients reach the log escaped: a group id with a newline and a
/// terminal escape cannot start a forged line or colour the operator's terminal.
#[test]
fn client_strings_are_escaped_in_log_lines() {
    if common::against_kafka() {
        return; // Sluice's log
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_logging(
        dir.path(),
        &["--set", "group.initial.rebalance.delay.ms=0"],
        "info",
    );
    join_as_evil_group(&broker);
    // The log reaches the test through a pipe and a reader thread: wait for the line.
    let escaped = r"evil\nFORGED ERROR line\u{1b}[31m";
    let lines = wait_for_log_line(&broker, escaped);
    assert!(!lines.iter().any(|l| l.starts_with("FORGED")), "a forged line: {lines:#?}");
    assert!(!lines.iter().any(|l| l.contains('\u{1b}') && l.contains("FORGED")), "{lines:#?}");
}

/// With `--log-format json` every line is one JSON object (for log aggregators) with the
/// event's fields at the top level: a client's string is a JSON string, whatever it holds.
#[test]
fn json_log_lines_are_one_object_each() {
    if common::against_kafka() {
        return; // Sluice's log
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_logging(
        dir.path(),
        &["--set", "group.initial.rebalance.delay.ms=0", "--log-format", "json"],
        "info",
    );
    join_as_evil_group(&broker);
    let lines = wait_for_log_line(&broker, r#"evil\nFORGED ERROR line\u001b[31m"#);
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(objects.iter().all(|o| o["level"].is_string() && o["message"].is_string()));
    assert!(
        objects.iter().any(|o| o.as_object().unwrap().values().any(|v| v == EVIL_GROUP)),
        "the group id as a field: {lines:#?}"
    );
}

const EVIL_GROUP: &str = "evil\nFORGED ERROR line\u{1b}[31m";

/// Joins group [`EVIL_GROUP`], whose id would forge a log line if written raw.
fn join_as_evil_group(broker: &BrokerProcess) {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{GroupId, JoinGroupRequest, JoinGroupResponse};
    let mut c = common::RawConn::connect(broker);
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(EVIL_GROUP)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_static_str(""))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0]))]);
    // The first lookup creates __consumer_offsets; its partitions load in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let _: kafka_protocol::messages::FindCoordinatorResponse = c.call(
            ApiKey::FindCoordinator,
            0,
            &kafka_protocol::messages::FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str(EVIL_GROUP)),
        );
        let joined: JoinGroupResponse = c.call(ApiKey::JoinGroup, 3, &join);
        if joined.error_code == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "JoinGroup: error {}", joined.error_code);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The broker's log lines once one contains `text` (they reach the test through a pipe and a
/// reader thread).
fn wait_for_log_line(broker: &BrokerProcess, text: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !broker.log_lines().iter().any(|l| l.contains(text)) {
        assert!(std::time::Instant::now() < deadline, "{:#?}", broker.log_lines());
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.log_lines()
}

/// DescribeLogDirs, AlterReplicaLogDirs, DescribeProducers and the transaction APIs answer as
/// Kafka's do for a broker with one log directory and no transactions.
#[test]
fn log_dir_producer_and_transaction_apis_answer_as_kafka() {
    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    common::create_topic(&broker.bootstrap(), "ld", 2, &[]);
    let mut c = common::RawConn::connect(&broker);
    let (pid, _) = c.init_producer_id();

    let plain = common::client_batch(&[(None, Some(b"a")), (None, Some(b"b")), (None, Some(b"c"))]);
    let idempotent = edited(&plain, |b| {
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&0i16.to_be_bytes());
        b[53..57].copy_from_slice(&0i32.to_be_bytes());
    });
    assert_eq!(c.produce("ld", idempotent).error_code, 0);

    let described: DescribeLogDirsResponse =
        c.call(ApiKey::DescribeLogDirs, 4, &DescribeLogDirsRequest::default().with_topics(None));
    assert_eq!(described.results.len(), 1);
    let d = &described.results[0];
    let canonical = std::fs::canonicalize(broker.log_dir()).unwrap();
    assert_eq!(d.log_dir.as_str(), canonical.display().to_string());
    assert!(d.total_bytes > 0 && d.usable_bytes > 0 && d.usable_bytes <= d.total_bytes);
    let ld = d.topics.iter().find(|t| t.name.as_str() == "ld").expect("topic ld described");
    let mut sizes: Vec<(i32, bool)> =
        ld.partitions.iter().map(|p| (p.partition_index, p.partition_size > 0)).collect();
    sizes.sort();
    assert_eq!(sizes, vec![(0, true), (1, false)]);

    let mut alter = |path: &str, partition: i32| -> i16 {
        let r: AlterReplicaLogDirsResponse = c.call(
            ApiKey::AlterReplicaLogDirs,
            2,
            &AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
                .with_path(StrBytes::from_string(path.into()))
                .with_topics(vec![AlterReplicaLogDirTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("ld")))
                    .with_partitions(vec![partition])])]),
        );
        r.results[0].partitions[0].error_code
    };
    let here = canonical.display().to_string();
    assert_eq!(alter(&here, 0), 0, "already in that directory");
    assert_eq!(alter("/nonexistent-log-dir", 0), 57, "LOG_DIR_NOT_FOUND");
    assert_eq!(alter(&here, 9), 3, "UNKNOWN_TOPIC_OR_PARTITION");

    let producers: DescribeProducersResponse = c.call(
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_static_str("ld")))
            .with_partition_indexes(vec![0, 7])]),
    );
    let parts = &producers.topics[0].partitions;
    assert_eq!(parts[0].error_code, 0);
    let p = &parts[0].active_producers;
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].producer_id.0, p[0].producer_epoch, p[0].last_sequence), (pid, 0, 2));
    assert_eq!(parts[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    if common::against_kafka() {
        // Kafka answers transactional requests at the coordinator only (NOT_COORDINATOR
        // before); clients look it up first. Sluice has no transaction coordinator (its lookup
        // fails fast, see transactional_producers_fail_at_once_with_a_fatal_error) and answers
        // DescribeTransactions anywhere.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found: FindCoordinatorResponse = c.call(
                ApiKey::FindCoordinator,
                4,
                &FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![StrBytes::from_static_str("tx")]),
            );
            if found.coordinators[0].error_code == 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no transaction coordinator");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let txns: DescribeTransactionsResponse = c.call(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("tx"))]),
    );
    assert_eq!(txns.transaction_states[0].error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");
    let listed: ListTransactionsResponse = c.call(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default().with_state_filters(vec![
            StrBytes::from_static_str("Ongoing"),
            StrBytes::from_static_str("Bogus"),
        ]),
    );
    assert_eq!(listed.error_code, 0);
    assert!(listed.transaction_states.is_empty());
    let unknown: Vec<&str> = listed.unknown_state_filters.iter().map(|s| s.as_str()).collect();
    assert_eq!(unknown, vec!["Bogus"]);
}

/// SIGTERM during start-up (after the handlers are installed, while the data directory is
/// being opened) is kept and honoured once the broker is up: it exits 0 and shut down cleanly,
/// so the next start needs no recovery.
#[test]
fn a_signal_during_start_up_stops_the_broker_cleanly() {
    if common::against_kafka() {
        return; // Sluice's process
    }
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    {
        // Some data, so start-up has logs to open.
        let broker = BrokerProcess::start(dir.path(), &[]);
        common::create_topic(&broker.bootstrap(), "early", 4, &[]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    // The handlers are installed before the data directory is opened.
    assert!(lines.any(|l| l.contains("opened data directory")), "start-up log");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    std::thread::spawn(move || lines.for_each(drop)); // keep the pipe drained
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "no exit after SIGTERM during start-up");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    let broker = BrokerProcess::start_logging(dir.path(), &[], "info");
    let opened = broker.log_lines().into_iter().find(|l| l.contains("opened data directory"));
    assert!(opened.as_deref().is_some_and(|l| l.contains("clean=true")), "{opened:?}");
}

/// Log levels change at run time through the BROKER_LOGGER resource, as Kafka's do
/// (`kafka-configs --entity-type broker-loggers`): described with source
/// DYNAMIC_BROKER_LOGGER_CONFIG, SET and DELETE applied at once, bad names, levels and
/// operations refused with Kafka's errors. A connection's log lines carry its peer and client.
#[test]
fn log_levels_change_at_run_time_through_broker_logger_configs() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().unwrap();
    let broker = if common::against_kafka() {
        BrokerProcess::start(dir.path(), &[])
    } else {
        BrokerProcess::start_logging(dir.path(), &["--log-format", "json"], "info")
    };
    let mut c = common::RawConn::connect(&broker);
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    let node = md.brokers[0].node_id.0.to_string();
    let alter = |c: &mut common::RawConn, name: &str, ops: &[(&str, i8, Option<&str>)]| {
        let configs = ops
            .iter()
            .map(|(k, op, v)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_config_operation(*op)
                    .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(8)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(configs),
        ]);
        let resp: IncrementalAlterConfigsResponse =
            c.call(ApiKey::IncrementalAlterConfigs, 1, &req);
        let r = &resp.responses[0];
        (r.error_code, r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default())
    };
    let describe = |c: &mut common::RawConn, name: &str| {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(8)
                .with_resource_name(StrBytes::from_string(name.to_string())),
        ]);
        let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req);
        resp.results.into_iter().next().unwrap()
    };
    // Kafka's refusals (the same on both).
    assert_eq!(alter(&mut c, &node, &[("root", 0, Some("LOUD"))]).0, 40, "INVALID_CONFIG");
    assert_eq!(alter(&mut c, &node, &[("root", 1, None)]).0, 42, "root cannot be removed");
    assert_eq!(alter(&mut c, &node, &[("root", 2, Some("INFO"))]).0, 42, "APPEND");
    assert_eq!(alter(&mut c, "999", &[("root", 0, Some("INFO"))]).0, 42, "another broker");
    assert_eq!(describe(&mut c, "").error_code, 42, "no broker id");
    let root = describe(&mut c, &node);
    let root = root.configs.iter().find(|e| e.name.as_str() == "root").expect("root listed");
    assert_eq!(root.config_source, 6, "DYNAMIC_BROKER_LOGGER_CONFIG");
    assert_eq!(root.value.as_deref(), Some("INFO"));
    if common::against_kafka() {
        return; // what follows names Sluice's loggers and reads its log
    }
    // Dotted, as Java's loggers (Kafka's tools refuse `:` in a config name).
    let logger = "sluice_broker.server";
    let (code, message) = alter(&mut c, &node, &[(logger, 0, Some("DEBUG"))]);
    assert_eq!(code, 0, "{message}");
    let listed = describe(&mut c, &node);
    assert!(
        listed
            .configs
            .iter()
            .any(|e| e.name.as_str() == logger && e.value.as_deref() == Some("DEBUG")),
        "{listed:?}"
    );
    // A debug line of the connection module, with the connection's context in its span.
    drop(
        common::RawConn::connect(&broker).call::<_, ApiVersionsResponse>(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
    );
    let lines = wait_for_log_line(&broker, "client closed");
    let line = lines.iter().find(|l| l.contains("client closed")).unwrap();
    let object: serde_json::Value = serde_json::from_str(line).unwrap();
    let span = &object["spans"][0];
    assert_eq!(span["name"], "conn", "{line}");
    assert_eq!(span["client"], "raw-test", "{line}");
    assert!(span["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{line}");
    // Removed again: back to the root's INFO, no more debug lines.
    assert_eq!(alter(&mut c, &node, &[(logger, 1, None)]).0, 0);
    let before = broker.log_lines().len();
    drop(common::RawConn::connect(&broker).call::<_, ApiVersionsResponse>(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    ));
    std::thread::sleep(Duration::from_millis(300));
    let after = broker.log_lines();
    assert!(
        !after[before..].iter().any(|l| l.contains("client closed")),
        "{:#?}",
        &after[before..]
    );
    assert_eq!(alter(&mut c, &node, &[("nobody.knows", 0, Some("DEBUG"))]).0, 40);
}

/// DescribeConfigs of a broker never shows a secret: a PASSWORD config (and a
/// listener-prefixed one) is described with a null value and `is_sensitive`, as Kafka does.
#[test]
fn describe_configs_hides_password_values() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cret-value";
    let broker = BrokerProcess::start(
        dir.path(),
        &["--set", &format!("ssl.truststore.password={secret}"), "--set", "log.cleaner.threads=2"],
    );
    let mut c = common::RawConn::connect(&broker);
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    let node = md.brokers[0].node_id.0.to_string();
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_string(node))]);
    let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req);
    let configs = &resp.results[0].configs;
    let entry = |name: &str| {
        configs.iter().find(|e| e.name.as_str() == name).unwrap_or_else(|| panic!("no {name}"))
    };
    let password = entry("ssl.truststore.password");
    assert!(password.is_sensitive, "{password:?}");
    assert_eq!(password.value, None, "{password:?}");
    let plain = entry("log.cleaner.threads");
    assert!(!plain.is_sensitive);
    assert_eq!(plain.value.as_deref(), Some("2"));
    assert!(!format!("{configs:?}").contains(secret), "the secret is nowhere in the answer");
}

/// One Fetch of a session: `(session id, epoch)`, the partitions whose position changed (with
/// their offsets), the partitions to forget; answers the raw response body and its decoding.
fn session_fetch(
    c: &mut common::RawConn,
    version: i16,
    topic: (&str, uuid::Uuid),
    (session_id, epoch): (i32, i32),
    changed: &[(i32, i64)],
    forget: &[i32],
) -> (usize, kafka_protocol::messages::FetchResponse) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    let name = TopicName(StrBytes::from_string(topic.0.into()));
    let partitions: Vec<_> = changed
        .iter()
        .map(|&(p, offset)| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let mut req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch);
    if !partitions.is_empty() {
        req.topics = vec![FetchTopic::default()
            .with_topic(name.clone())
            .with_topic_id(topic.1)
            .with_partitions(partitions)];
    }
    if !forget.is_empty() {
        req.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(name)
            .with_topic_id(topic.1)
            .with_partitions(forget.to_vec())];
    }
    let mut body = c.call_raw(ApiKey::Fetch, version, &req);
    let len = body.len();
    (len, FetchResponse::decode(&mut body, version).unwrap())
}

/// `(partition, has records)` of every partition a response carries, in order.
fn answered(r: &kafka_protocol::messages::FetchResponse) -> Vec<(i32, bool)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.records.as_ref().is_some_and(|r| !r.is_empty())))
        .collect()
}

/// KIP-227 as a Java consumer and a Kafka follower use it: an epoch-0 fetch opens a session,
/// later fetches name only what moved and are answered with only what changed (1,000 quiet
/// partitions cost a few bytes per poll), and the session errors are Kafka's: 70 for an
/// unknown session (also session 0 with a positive epoch), 71 for a wrong or repeated epoch,
/// 106 for a topic-id mismatch.
#[test]
fn fetch_sessions_answer_only_what_changed() {
    use kafka_protocol::messages::MetadataResponse;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    const N: i32 = 1000;
    common::create_topic(&broker.bootstrap(), "sess", N, &[]);
    let mut c = common::RawConn::connect(&broker);
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(
                Some(kafka_protocol::messages::TopicName(StrBytes::from_static_str("sess"))),
            ),
        ])),
    );
    let id = md.topics[0].topic_id;
    // Kafka answers NOT_LEADER_OR_FOLLOWER until the new partitions' leaders are in place.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while produce_code(&mut c, "sess", 0, Some(encode_batch(&[b"a", b"b"]).freeze())) != 0 {
        assert!(std::time::Instant::now() < deadline, "the topic's partition 0 never took records");
        std::thread::sleep(Duration::from_millis(100));
    }
    let topic = ("sess", id);

    // Every partition led (Kafka elects 1,000 leaders over a moment): sessionless fetches.
    let all: Vec<(i32, i64)> = (0..N).map(|p| (p, 0)).collect();
    loop {
        let (_, r) = session_fetch(&mut c, 12, topic, (0, -1), &all, &[]);
        let errors = r.responses.iter().flat_map(|t| &t.partitions).filter(|p| p.error_code != 0);
        if errors.count() == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "partitions without a leader");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Full fetch with epoch 0: every partition answered, and a session id.
    let (full_len, r) = session_fetch(&mut c, 12, topic, (0, 0), &all, &[]);
    assert_eq!(r.error_code, 0);
    let session = r.session_id;
    assert!(session > 0, "a session is created");
    assert_eq!(answered(&r).len(), N as usize);
    assert_eq!(answered(&r)[0], (0, true));

    // The client moved on in partition 0 only; nothing changed anywhere: nothing answered.
    let (quiet_len, r) = session_fetch(&mut c, 12, topic, (session, 1), &[(0, 2)], &[]);
    assert_eq!((r.error_code, r.session_id), (0, session));
    assert_eq!(answered(&r), vec![]);
    assert!(quiet_len < 100 && full_len > 30_000, "{quiet_len} B against {full_len} B full");

    // New records in partition 5: only it is answered, with them.
    assert_eq!(produce_code(&mut c, "sess", 5, Some(encode_batch(&[b"c"]).freeze())), 0);
    let (_, r) = session_fetch(&mut c, 12, topic, (session, 2), &[], &[]);
    assert_eq!(answered(&r), vec![(5, true)]);
    // A repeated epoch, an unknown session, and session 0 with a positive epoch.
    assert_eq!(session_fetch(&mut c, 12, topic, (session, 2), &[], &[]).1.error_code, 71);
    let other = if session == i32::MAX { 1 } else { session + 1 };
    assert_eq!(session_fetch(&mut c, 12, topic, (other, 1), &[], &[]).1.error_code, 70);
    assert_eq!(session_fetch(&mut c, 12, topic, (0, 3), &[], &[]).1.error_code, 70);

    // Forgotten partitions are not read any more.
    let (_, r) = session_fetch(&mut c, 12, topic, (session, 3), &[(5, 1)], &[5]);
    assert_eq!(answered(&r), vec![]);
    assert_eq!(produce_code(&mut c, "sess", 5, Some(encode_batch(&[b"d"]).freeze())), 0);
    assert_eq!(produce_code(&mut c, "sess", 7, Some(encode_batch(&[b"e"]).freeze())), 0);
    let (_, r) = session_fetch(&mut c, 12, topic, (session, 4), &[], &[]);
    assert_eq!(answered(&r), vec![(7, true)]);

    // A full fetch naming the session with epoch -1 closes it.
    let (_, r) = session_fetch(&mut c, 12, topic, (session, -1), &[(1, 0)], &[]);
    assert_eq!((r.error_code, r.session_id), (0, 0));
    assert_eq!(session_fetch(&mut c, 12, topic, (session, 5), &[], &[]).1.error_code, 70);

    // A session opened by topic id (v13) is refused to a request by name (v12).
    let (_, r) = session_fetch(&mut c, 13, topic, (0, 0), &[(0, 0), (7, 0)], &[]);
    assert_eq!(answered(&r), vec![(0, true), (7, true)]);
    let by_id = r.session_id;
    assert!(by_id > 0);
    let (_, r) = session_fetch(&mut c, 13, topic, (by_id, 1), &[(0, 2), (7, 1)], &[]);
    assert_eq!((r.error_code, answered(&r)), (0, vec![]));
    assert_eq!(session_fetch(&mut c, 12, topic, (by_id, 2), &[], &[]).1.error_code, 106);
}
