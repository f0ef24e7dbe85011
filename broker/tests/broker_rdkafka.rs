//! The real `sluice` binary driven by librdkafka (the `rdkafka` crate): produce and consume
//! with every codec, seeks, restarts (clean and kill -9), topic administration with Kafka's
//! error codes, metrics and health.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::free_port;
use common::{create_topic, AckLog, BrokerProcess};
use futures::executor::block_on;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use std::sync::{Arc, Mutex};

use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client")
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

/// A consumer in assign mode. librdkafka wants a group.id even then; nothing here joins the
/// group or commits offsets.
fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "assign-only")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

/// What a consumer saw of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn seen<M: Message>(m: &M) -> Seen {
    let headers = m
        .headers()
        .map(|h| h.iter().map(|x| (x.key.to_string(), x.value.map(|v| v.to_vec()))).collect())
        .unwrap_or_default();
    Seen { key: m.key().map(|k| k.to_vec()), value: m.payload().map(|v| v.to_vec()), headers }
}

/// Sends records to explicit partitions, waiting for every delivery; returns (partition, offset).
fn send_all(p: &FutureProducer, topic: &str, records: &[(i32, Seen)]) -> Vec<(i32, i64)> {
    let mut futures = Vec::with_capacity(records.len());
    for (partition, r) in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header { key: k, value: v.as_deref() });
        }
        let mut record =
            FutureRecord::<Vec<u8>, Vec<u8>>::to(topic).partition(*partition).headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        if let Some(v) = &r.value {
            record = record.payload(v);
        }
        loop {
            match p.send_result(record) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((e, back)) => {
                    assert_eq!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::QueueFull), "{e}");
                    p.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
    }
    futures
        .into_iter()
        .map(|f| {
            let d = block_on(f).expect("delivery future").expect("delivered");
            (d.partition, d.offset)
        })
        .collect()
}

/// Consumes from the beginning of `partitions` until `expected` records arrived (bounded).
fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    expected: usize,
) -> BTreeMap<i32, Vec<(i64, Seen)>> {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, Vec<(i64, Seen)>> = BTreeMap::new();
    let mut n = 0;
    let deadline = Instant::now() + WAIT;
    while n < expected {
        assert!(
            Instant::now() < deadline,
            "consumed {n} of {expected} records before the deadline"
        );
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("consumer error");
            out.entry(m.partition()).or_default().push((m.offset(), seen(&m)));
            n += 1;
        }
    }
    out
}

#[test]
fn produce_and_consume_100k_records_with_every_codec_keys_nulls_headers_and_1mib_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "codecs", 4, &[("max.message.bytes", "2097152")]);
    let mut expected: BTreeMap<i32, Vec<Seen>> = BTreeMap::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let p = producer(&bs, &[("compression.codec", codec), ("batch.size", "65536")]);
        let records: Vec<(i32, Seen)> = (0..20_000)
            .map(|i| {
                let key = (i % 10 != 0).then(|| format!("k{i}").into_bytes());
                let value = (i % 7 != 0)
                    .then(|| format!("{codec}-{i}-{}", "x".repeat(i % 50)).into_bytes());
                let headers = if i % 3 == 0 {
                    vec![("h".to_string(), Some(i.to_string().into_bytes()))]
                } else {
                    vec![]
                };
                ((i % 4) as i32, Seen { key, value, headers })
            })
            .collect();
        let acks = send_all(&p, "codecs", &records);
        assert!(acks.iter().zip(&records).all(|((ap, _), (rp, _))| ap == rp));
        for (partition, r) in records {
            expected.entry(partition).or_default().push(r);
        }
    }
    let big = producer(&bs, &[("message.max.bytes", "2097152")]);
    let big_records: Vec<(i32, Seen)> = (0..3u8)
        .map(|i| (0, Seen { key: Some(vec![i]), value: Some(vec![i; 1 << 20]), headers: vec![] }))
        .collect();
    send_all(&big, "codecs", &big_records);
    expected.entry(0).or_default().extend(big_records.into_iter().map(|(_, r)| r));

    let got = consume(&bs, "codecs", &[0, 1, 2, 3], 100_003);
    for (partition, records) in &expected {
        let got = &got[partition];
        assert_eq!(got.len(), records.len(), "partition {partition}");
        for (i, ((offset, g), e)) in got.iter().zip(records).enumerate() {
            assert_eq!(*offset, i as i64, "offsets are dense and in order");
            assert_eq!(g, e, "partition {partition} offset {offset}");
        }
    }
}

#[test]
fn consumer_seeks_to_beginning_end_offset_and_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "seek", 1, &[]);
    let p = producer(&bs, &[]);
    let base_ts = 1_700_000_000_000i64;
    for i in 0..20i64 {
        let value = format!("v{i}");
        let rec = FutureRecord::<(), String>::to("seek")
            .partition(0)
            .payload(&value)
            .timestamp(base_ts + i * 1000);
        block_on(p.send(rec, Duration::from_secs(10))).unwrap();
    }
    let c = consumer(&bs);
    let read_one = |c: &BaseConsumer| -> (i64, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no record arrived");
            if let Some(m) = c.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                return (m.offset(), String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
        }
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("seek", 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    assert_eq!(read_one(&c), (0, "v0".into()));
    c.seek("seek", 0, Offset::Offset(7), Duration::from_secs(10)).unwrap();
    assert_eq!(read_one(&c), (7, "v7".into()));
    // By timestamp: the first record at or after base + 12.5 s is offset 13.
    let mut times = TopicPartitionList::new();
    times.add_partition_offset("seek", 0, Offset::Offset(base_ts + 12_500)).unwrap();
    let found = c.offsets_for_times(times, Duration::from_secs(10)).unwrap();
    let offset = found.find_partition("seek", 0).unwrap().offset();
    assert_eq!(offset, Offset::Offset(13));
    c.seek("seek", 0, offset, Duration::from_secs(10)).unwrap();
    assert_eq!(read_one(&c), (13, "v13".into()));
    // End: only records produced after the seek arrive.
    c.seek("seek", 0, Offset::End, Duration::from_secs(10)).unwrap();
    assert!(c.poll(Duration::from_millis(500)).is_none());
    block_on(p.send(
        FutureRecord::<(), str>::to("seek").partition(0).payload("late"),
        Duration::from_secs(10),
    ))
    .unwrap();
    assert_eq!(read_one(&c), (20, "late".into()));
    let (low, high) = c.fetch_watermarks("seek", 0, Duration::from_secs(10)).unwrap();
    assert_eq!((low, high), (0, 21));
}

/// Everything in `partitions` up to each partition's high watermark.
fn consume_to_end(bootstrap: &str, topic: &str, partitions: &[i32]) -> Vec<Vec<u8>> {
    let c = consumer(bootstrap);
    let mut expected = 0;
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
        expected += (high - low) as usize;
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    drop(c);
    consume(bootstrap, topic, partitions, expected)
        .into_values()
        .flatten()
        .map(|(_, s)| s.value.unwrap())
        .collect()
}

#[test]
fn acknowledged_records_survive_clean_restart_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "durable", 2, &[("retention.ms", "86400000"), ("cleanup.policy", "delete")]);
    let value = |i: usize| format!("record-{i}").into_bytes();
    let batch = |from: usize, to: usize| -> Vec<(i32, Seen)> {
        (from..to)
            .map(|i| ((i % 2) as i32, Seen { key: None, value: Some(value(i)), headers: vec![] }))
            .collect()
    };
    send_all(&producer(&bs, &[]), "durable", &batch(0, 5000));
    assert_eq!(broker.stop(), Some(0), "SIGTERM exits 0");
    broker.restart();
    let bs = broker.bootstrap();
    send_all(&producer(&bs, &[]), "durable", &batch(5000, 10_000));

    // Mid-stream: a producer keeps sending while the broker is stopped with SIGTERM and
    // restarted, then killed with SIGKILL and restarted; every record acknowledged (acks=all)
    // at any point must be readable afterwards.
    let acks = Arc::new(Mutex::new(Vec::new()));
    let producer: ThreadedProducer<AckLog> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "20000")
        .create_with_context(AckLog(acks.clone()))
        .unwrap();
    let producer = Arc::new(producer);
    let sender = {
        let producer = producer.clone();
        std::thread::spawn(move || {
            for i in 10_000..20_000usize {
                let v = value(i);
                let mut record =
                    BaseRecord::<(), Vec<u8>, Box<usize>>::with_opaque_to("durable", Box::new(i))
                        .partition((i % 2) as i32)
                        .payload(&v);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            record = back;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                // Paced (at least 2 s in all) so both restarts happen while it sends.
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })
    };
    let acked_count = || acks.lock().unwrap().iter().filter(|(_, ok)| *ok).count();
    let mut acked_before_kill = 0;
    for (threshold, clean) in [(1000, true), (3000, false)] {
        let deadline = Instant::now() + WAIT;
        while acked_count() < threshold {
            assert!(Instant::now() < deadline, "the producer stalled below {threshold} acks");
            std::thread::sleep(Duration::from_millis(5));
        }
        if clean {
            assert_eq!(broker.stop(), Some(0), "SIGTERM mid-stream exits 0");
        } else {
            broker.kill9();
        }
        acked_before_kill = acked_count();
        broker.restart();
    }
    sender.join().unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let acked: Vec<usize> =
        acks.lock().unwrap().iter().filter(|(_, ok)| *ok).map(|(i, _)| *i).collect();
    assert!(acked.len() >= acked_before_kill);
    drop(producer);

    let bs = broker.bootstrap();
    let stored: std::collections::HashSet<Vec<u8>> =
        consume_to_end(&bs, "durable", &[0, 1]).into_iter().collect();
    for i in (0..10_000).chain(acked.iter().copied()) {
        assert!(stored.contains(&value(i)), "acknowledged record {i} is missing after the crash");
    }
    // Topic configs come back from the metadata log.
    let configs = block_on(
        admin(&bs).describe_configs(&[ResourceSpecifier::Topic("durable")], &AdminOptions::new()),
    )
    .unwrap();
    let resource = configs.into_iter().next().unwrap().unwrap();
    assert_eq!(resource.get("retention.ms").unwrap().value.as_deref(), Some("86400000"));
}

#[test]
fn topic_administration_uses_kafka_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    let a = admin(&bs);
    let opts = AdminOptions::new();
    create_topic(&bs, "admin-t", 3, &[("cleanup.policy", "compact"), ("retention.ms", "123456")]);

    let described =
        block_on(a.describe_configs(&[ResourceSpecifier::Topic("admin-t")], &opts)).unwrap();
    let r = described.into_iter().next().unwrap().unwrap();
    assert_eq!(r.get("cleanup.policy").unwrap().value.as_deref(), Some("compact"));
    assert_eq!(r.get("retention.ms").unwrap().value.as_deref(), Some("123456"));
    assert_eq!(r.get("segment.bytes").unwrap().value.as_deref(), Some("1073741824"));
    assert!(r.get("retention.ms").unwrap().source == rdkafka::admin::ConfigSource::DynamicTopic);
    assert!(r.get("segment.bytes").unwrap().is_default);

    let alter = AlterConfig::new(ResourceSpecifier::Topic("admin-t")).set("retention.ms", "999");
    block_on(a.alter_configs(&[alter], &opts)).unwrap().into_iter().for_each(|r| {
        r.unwrap();
    });
    let r = block_on(a.describe_configs(&[ResourceSpecifier::Topic("admin-t")], &opts)).unwrap();
    let r = r.into_iter().next().unwrap().unwrap();
    assert_eq!(r.get("retention.ms").unwrap().value.as_deref(), Some("999"));
    // AlterConfigs replaces the whole set of overrides.
    assert_eq!(r.get("cleanup.policy").unwrap().value.as_deref(), Some("delete"));

    // rdkafka 0.39 reports every AlterConfigs resource as Ok whatever its error code (it never
    // reads the per-resource error), so the rejection shows as an unchanged value here; the
    // INVALID_CONFIG code itself is checked with the Python client (confluent-kafka) in compat.sh.
    let bad_config =
        AlterConfig::new(ResourceSpecifier::Topic("admin-t")).set("retention.ms", "banana");
    block_on(a.alter_configs(&[bad_config], &opts)).unwrap();
    let r = block_on(a.describe_configs(&[ResourceSpecifier::Topic("admin-t")], &opts)).unwrap();
    let r = r.into_iter().next().unwrap().unwrap();
    assert_eq!(r.get("retention.ms").unwrap().value.as_deref(), Some("999"));

    block_on(a.create_partitions(&[NewPartitions::new("admin-t", 5)], &opts))
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    let md = consumer(&bs).fetch_metadata(Some("admin-t"), Duration::from_secs(10)).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);
    let shrink = block_on(a.create_partitions(&[NewPartitions::new("admin-t", 2)], &opts)).unwrap();
    assert_eq!(shrink[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidPartitions);

    let dup = block_on(
        a.create_topics(&[NewTopic::new("admin-t", 1, TopicReplication::Fixed(1))], &opts),
    )
    .unwrap();
    assert_eq!(dup[0].as_ref().unwrap_err().1, RDKafkaErrorCode::TopicAlreadyExists);
    for bad in ["bad/name", "..", &"x".repeat(250)] {
        let r =
            block_on(a.create_topics(&[NewTopic::new(bad, 1, TopicReplication::Fixed(1))], &opts))
                .unwrap();
        assert_eq!(r[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidTopic, "{bad}");
    }
    let rf =
        block_on(a.create_topics(&[NewTopic::new("rf3", 1, TopicReplication::Fixed(3))], &opts))
            .unwrap();
    assert_eq!(rf[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidReplicationFactor);
    let zero =
        block_on(a.create_topics(&[NewTopic::new("p0", 0, TopicReplication::Fixed(1))], &opts))
            .unwrap();
    assert_eq!(zero[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidPartitions);
    let bad_cfg = block_on(a.create_topics(
        &[NewTopic::new("cfg", 1, TopicReplication::Fixed(1)).set("no.such.config", "1")],
        &opts,
    ))
    .unwrap();
    assert_eq!(bad_cfg[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidConfig);
    let manual = NewTopic::new("manual", 1, TopicReplication::Variable(&[&[7]]));
    let r = block_on(a.create_topics(&[manual], &opts)).unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidReplicaAssignment);
    let validate = block_on(a.create_topics(
        &[NewTopic::new("only-validated", 2, TopicReplication::Fixed(1))],
        &AdminOptions::new().validate_only(true),
    ))
    .unwrap();
    validate.into_iter().for_each(|r| {
        r.unwrap();
    });

    block_on(a.delete_topics(&["admin-t"], &opts)).unwrap().into_iter().for_each(|r| {
        r.unwrap();
    });
    let gone = block_on(a.delete_topics(&["admin-t"], &opts)).unwrap();
    assert_eq!(gone[0].as_ref().unwrap_err().1, RDKafkaErrorCode::UnknownTopicOrPartition);
    let md = consumer(&bs).fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert!(!names.contains(&"admin-t") && !names.contains(&"only-validated"), "{names:?}");
    assert!(!dir.path().join("admin-t-0").exists(), "the deleted topic's logs are removed");
}

#[test]
fn metrics_and_health_endpoints_report_partitions_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "metered", 1, &[]);
    let records: Vec<(i32, Seen)> =
        (0..10).map(|i| (0, Seen { key: None, value: Some(vec![i]), headers: vec![] })).collect();
    send_all(&producer(&bs, &[]), "metered", &records);
    assert_eq!(broker.http_get("/health/live").0, "HTTP/1.1 200 OK");
    assert_eq!(broker.http_get("/health/ready").0, "HTTP/1.1 200 OK");
    let (status, body) = broker.http_get("/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains(r#"sluice_high_watermark{topic="metered",partition="0"} 10"#), "{body}");
    assert!(body.contains(r#"sluice_log_end_offset{topic="metered",partition="0"} 10"#));
    assert!(body.contains(r#"sluice_requests_total{api="produce"}"#));
    assert!(
        body.contains(r#"sluice_request_latency_seconds_bucket{le="#)
            || body.contains("sluice_request_latency_seconds_bucket{api=")
    );
    assert!(body.contains(r#"sluice_bytes_in_total{topic="metered"}"#));
    assert!(body.contains(r#"sluice_topic_partitions{topic="metered"} 1"#), "{body}");
    let value = |series: &str| -> f64 {
        let prefix = format!("{series} ");
        let line = body.lines().find(|l| l.starts_with(&prefix));
        line.unwrap_or_else(|| panic!("no {series} in {body}"))[prefix.len()..].parse().unwrap()
    };
    let size = value(r#"sluice_log_size_bytes{topic="metered",partition="0"}"#);
    assert!(size > 61.0 + 10.0, "a batch header and ten records on disk: {size}");
    assert_eq!(value(r#"sluice_topic_size_bytes{topic="metered"}"#), size);
    assert_eq!(value("sluice_active_controller"), 1.0);
    assert_eq!(value("sluice_registered_brokers"), 1.0);
    assert_eq!(value("sluice_fenced_brokers"), 0.0);
    assert!(value("sluice_raft_commit_index") >= value("sluice_raft_applied_index"), "{body}");
    assert!(value("sluice_raft_commit_index") > 0.0);
    assert_eq!(value("sluice_metrics_partition_series_limited"), 0.0);
    let dir_label = std::fs::canonicalize(dir.path()).unwrap().display().to_string();
    let used = value(&format!("sluice_log_dir_size_bytes{{dir=\"{dir_label}\"}}"));
    assert!(used >= size, "{used} < {size}");
    let free = value(&format!("sluice_log_dir_free_bytes{{dir=\"{dir_label}\"}}"));
    let capacity = value(&format!("sluice_log_dir_capacity_bytes{{dir=\"{dir_label}\"}}"));
    assert!(0.0 < free && free <= capacity, "{free} of {capacity}");
    assert!(value("process_resident_memory_bytes") > 1e6, "{body}");
    assert!(value("process_open_fds") > 3.0 && value("process_max_fds") >= 1024.0);
    assert!(value("process_cpu_seconds_total") > 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(value(&format!("sluice_build_info{{version=\"{version}\"}}")), 1.0);
    // Nothing waits now; the histogram of flushes exists (flush.ms decides when one runs).
    assert_eq!(value(r#"sluice_purgatory_size{operation="produce"}"#), 0.0);
    assert!(body.contains("sluice_log_flush_latency_seconds_count "), "{body}");
    assert_eq!(broker.http_get("/nope").0, "HTTP/1.1 404 Not Found");
}

/// Past `metrics.partition.series.max` hosted partitions, the per-partition series are left
/// out and the per-topic ones stay, so a broker with very many partitions keeps a bounded
/// scrape (docs/metrics.md).
#[test]
fn per_partition_series_give_way_to_per_topic_ones_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--set", "metrics.partition.series.max=2"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "wide", 3, &[]);
    let records: Vec<(i32, Seen)> = (0..3)
        .map(|p| (p, Seen { key: None, value: Some(vec![p as u8]), headers: vec![] }))
        .collect();
    send_all(&producer(&bs, &[]), "wide", &records);
    let (_, body) = broker.http_get("/metrics");
    assert!(body.contains(r#"sluice_topic_partitions{topic="wide"} 3"#), "{body}");
    assert!(body.contains("sluice_metrics_partition_series_limited 1"), "{body}");
    assert!(!body.contains(r#"sluice_high_watermark{topic="wide""#), "{body}");
    assert!(!body.contains(r#"sluice_partition_isr_size{topic="wide""#), "{body}");
    assert!(body.contains(r#"sluice_bytes_in_total{topic="wide"}"#), "{body}");
}

#[test]
fn auto_topic_creation_on_metadata_uses_num_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--set", "num.partitions=3"]);
    let bs = broker.bootstrap();
    let p = producer(&bs, &[]);
    block_on(
        p.send(FutureRecord::<(), str>::to("auto-made").payload("hello"), Duration::from_secs(20)),
    )
    .unwrap();
    let md = consumer(&bs).fetch_metadata(Some("auto-made"), Duration::from_secs(10)).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
    p.flush(Duration::from_secs(5)).unwrap();
}

/// Transactions are not implemented: librdkafka's `init_transactions` must fail at once with a
/// fatal TRANSACTIONAL_ID_AUTHORIZATION_FAILED, not retry the coordinator lookup until its
/// timeout (which would surface as a non-fatal timeout error here).
#[test]
fn transactional_producers_fail_at_once_with_a_fatal_error() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let p = producer(&broker.bootstrap(), &[("transactional.id", "tx-1")]);
    let err = p.init_transactions(WAIT).expect_err("transactions are not supported");
    match &err {
        rdkafka::error::KafkaError::Transaction(e) => {
            assert!(e.is_fatal(), "{err}");
            assert_eq!(e.code(), RDKafkaErrorCode::TransactionalIdAuthorizationFailed, "{err}");
        }
        other => panic!("expected a transaction error, got {other}"),
    }
    // The broker is unaffected: a plain producer still works.
    create_topic(&broker.bootstrap(), "after-tx", 1, &[]);
    let plain = producer(&broker.bootstrap(), &[]);
    let record = Seen { key: Some(b"k".to_vec()), value: Some(b"v".to_vec()), headers: vec![] };
    let sent = send_all(&plain, "after-tx", &[(0, record)]);
    assert_eq!(sent, vec![(0, 0)]);
}

/// Kafka's own sample server.properties (every key and value; only ports and the data path
/// filled in) starts Sluice: settings Sluice does not act on are accepted and listed once, and
/// clients reach it through the advertised PLAINTEXT listener.
#[test]
fn kafkas_sample_server_properties_starts_sluice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (kafka_port, controller_port) = (free_port(), free_port());
    let text = include_str!("fixtures/kafka-server.properties")
        .replace("@KAFKA_PORT@", &kafka_port.to_string())
        .replace("@CONTROLLER_PORT@", &controller_port.to_string())
        .replace("@DATA_DIR@", &data.display().to_string());
    let file = dir.path().join("server.properties");
    std::fs::write(&file, text).unwrap();
    let broker = BrokerProcess::start_with_config(&data, &file);
    assert_eq!(broker.kafka.port(), kafka_port);
    let bootstrap = format!("localhost:{kafka_port}");
    create_topic(&bootstrap, "from-sample", 1, &[]);
    let p = producer(&bootstrap, &[]);
    let record = Seen { key: Some(b"k".to_vec()), value: Some(b"v".to_vec()), headers: vec![] };
    assert_eq!(send_all(&p, "from-sample", &[(0, record)]), vec![(0, 0)]);
    assert!(data.join("from-sample-0").is_dir(), "log.dirs is used");
}

/// Every topic config of Kafka 4.4 is accepted at CreateTopics with Kafka's validation and
/// described with its source; `compression.type` stores batches in its codec (consumers read
/// them back), and tiered storage is refused with a reason.
#[test]
fn every_kafka_topic_config_is_accepted_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    let a = admin(&bs);
    let opts = AdminOptions::new();
    let configs = [
        ("compression.type", "lz4"),
        ("compression.lz4.level", "3"),
        ("max.compaction.lag.ms", "3600000"),
        ("segment.jitter.ms", "1000"),
        ("file.delete.delay.ms", "1000"),
        ("preallocate", "true"),
        ("unclean.leader.election.enable", "true"),
        ("leader.replication.throttled.replicas", "0:1"),
        ("follower.replication.throttled.replicas", "*"),
        ("local.retention.ms", "-2"),
        ("local.retention.bytes", "-2"),
        ("message.timestamp.before.max.ms", "86400000"),
        ("message.timestamp.after.max.ms", "7200000"),
        ("max.decompressed.message.bytes", "10000000"),
        ("remote.storage.enable", "false"),
    ];
    create_topic(&bs, "all-configs", 1, &configs);
    let described =
        block_on(a.describe_configs(&[ResourceSpecifier::Topic("all-configs")], &opts)).unwrap();
    let r = described.into_iter().next().unwrap().unwrap();
    for (key, value) in configs {
        let entry = r.get(key).unwrap_or_else(|| panic!("{key} is not described"));
        assert_eq!(entry.value.as_deref(), Some(value), "{key}");
        assert!(entry.source == rdkafka::admin::ConfigSource::DynamicTopic, "{key}");
    }
    assert!(r.get("remote.log.copy.disable").unwrap().is_default);
    assert_eq!(r.entries.len(), 37, "every topic config of Kafka 4.4 but the internal one");

    let tiered = block_on(
        a.create_topics(
            &[NewTopic::new("tiered", 1, TopicReplication::Fixed(1))
                .set("remote.storage.enable", "true")],
            &opts,
        ),
    )
    .unwrap();
    let (_, code) = tiered[0].as_ref().unwrap_err();
    assert_eq!(*code, RDKafkaErrorCode::InvalidConfig);

    // Produced uncompressed, stored lz4, consumed as produced.
    let p = producer(&bs, &[("compression.type", "none")]);
    let records: Vec<(i32, Seen)> = (0..100)
        .map(|i| {
            let v = format!("value-{i}").into_bytes();
            (0, Seen { key: Some(b"k".to_vec()), value: Some(v), headers: vec![] })
        })
        .collect();
    send_all(&p, "all-configs", &records);
    let got = consume_to_end(&bs, "all-configs", &[0]);
    assert_eq!(got.len(), 100);
    assert_eq!(got[99], b"value-99".to_vec());
}

/// Dynamic broker configs: AlterConfigs on the BROKER resource changes a setting Kafka lets
/// change at run time, with no restart (a lower `message.max.bytes` refuses a batch at once),
/// shows it in DescribeConfigs with its source, keeps it across a restart (a metadata record),
/// and refuses settings that are not dynamic.
#[test]
fn dynamic_broker_configs_apply_at_once_and_persist() {
    use rdkafka::admin::ConfigSource;
    fn source_name(s: &ConfigSource) -> &'static str {
        match s {
            ConfigSource::Default => "default",
            ConfigSource::DynamicBroker => "dynamic broker",
            ConfigSource::DynamicDefaultBroker => "dynamic default broker",
            ConfigSource::DynamicTopic => "dynamic topic",
            ConfigSource::StaticBroker => "static broker",
            _ => "other",
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "dyn", 1, &[]);
    let opts = AdminOptions::new();
    let alter = |bs: &str, target: ResourceSpecifier<'_>, key: &str, value: &str| {
        let a = admin(bs);
        let r = block_on(a.alter_configs(&[AlterConfig::new(target).set(key, value)], &opts));
        r.unwrap().remove(0).map(|_| ()).map_err(|(_, code)| code)
    };
    let topic_entry = |bs: &str, key: &str| {
        let a = admin(bs);
        let r = block_on(a.describe_configs(&[ResourceSpecifier::Topic("dyn")], &opts)).unwrap();
        let r = r.into_iter().next().unwrap().unwrap();
        let e = r.get(key).unwrap();
        (e.value.clone(), source_name(&e.source))
    };
    assert_eq!(topic_entry(&bs, "max.message.bytes"), (Some("1048588".into()), "default"));

    alter(&bs, ResourceSpecifier::Broker(1), "message.max.bytes", "2000").unwrap();
    assert_eq!(topic_entry(&bs, "max.message.bytes"), (Some("2000".into()), "dynamic broker"));
    let p = producer(&bs, &[("message.max.bytes", "100000"), ("message.timeout.ms", "5000")]);
    let big = vec![7u8; 3000];
    let r = block_on(p.send(FutureRecord::<(), Vec<u8>>::to("dyn").payload(&big), WAIT));
    let (e, _) = r.expect_err("above the new message.max.bytes");
    assert_eq!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageSizeTooLarge), "{e}");

    // Not dynamic in Kafka either: refused (raw AlterConfigs v2, to read the code itself).
    {
        use kafka_protocol::messages::alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
        use kafka_protocol::protocol::StrBytes;
        let mut c = common::RawConn::connect(&broker);
        let r: AlterConfigsResponse = c.call(
            ApiKey::AlterConfigs,
            2,
            &AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("1"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("broker.rack"))
                    .with_value(Some(StrBytes::from_static_str("r1")))])]),
        );
        assert_eq!(r.responses[0].error_code, 42, "INVALID_REQUEST: {r:?}");
    }

    // A metadata record: still there after a restart.
    broker.stop();
    broker.restart();
    let bs = broker.bootstrap();
    assert_eq!(topic_entry(&bs, "max.message.bytes"), (Some("2000".into()), "dynamic broker"));
    let a = admin(&bs);
    let r = block_on(a.describe_configs(&[ResourceSpecifier::Broker(1)], &opts)).unwrap();
    let r = r.into_iter().next().unwrap().unwrap();
    let e = r.get("message.max.bytes").unwrap();
    assert_eq!((e.value.as_deref(), source_name(&e.source)), (Some("2000"), "dynamic broker"));
    assert!(!e.is_read_only);
    assert!(r.get("node.id").unwrap().is_read_only);
}

/// `sluice dev --nodes 3` passes what it was given to every node: the `--config` file's
/// settings and the `--set` values (here `num.partitions`, seen in an auto-created topic, and
/// `log.retention.ms`, seen in each node's described config).
#[test]
fn a_dev_cluster_passes_its_settings_to_every_node() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("given.properties");
    std::fs::write(&file, "log.retention.ms=123456789\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dev", "--nodes", "3", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--set", "num.partitions=3"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(bs) = line.strip_prefix("sluice cluster ready bootstrap=") {
                let _ = tx.send(bs.to_string());
            }
        }
    });
    let stop = |child: &mut std::process::Child| {
        // The command stops its nodes (SIGKILL after 60 s), then exits.
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let Ok(bs) = rx.recv_timeout(Duration::from_secs(60)) else {
        stop(&mut child);
        let said = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
        panic!("the dev cluster did not become ready; its error output:\n{said}");
    };
    let record = FutureRecord::<(), str>::to("auto-three").payload("x");
    let sent = block_on(producer(&bs, &[]).send(record, Duration::from_secs(20)));
    let md = consumer(&bs).fetch_metadata(Some("auto-three"), Duration::from_secs(10));
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &bs).create().unwrap();
    // One broker resource per request (librdkafka sends each to its broker).
    let described: Vec<_> = (1..=3)
        .map(|id| {
            block_on(admin.describe_configs(&[ResourceSpecifier::Broker(id)], &AdminOptions::new()))
        })
        .collect();
    stop(&mut child);
    sent.expect("produced");
    assert_eq!(md.unwrap().topics()[0].partitions().len(), 3, "--set num.partitions=3");
    for result in described {
        let resource = result.unwrap().pop().unwrap().unwrap();
        let retention = resource.get("log.retention.ms").and_then(|e| e.value.clone());
        assert_eq!(retention.as_deref(), Some("123456789"), "{:?}", resource.specifier);
    }
}
