//! Idempotent producers against the real binary: librdkafka with `enable.idempotence=true`
//! (exactly once, in order, across a broker crash), and raw protocol retries of the same batch —
//! also after clean and kill -9 restarts — that return the original offsets and write nothing,
//! with Kafka's error codes for out-of-order sequences, fenced epochs and unknown producers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::BrokerProcess;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);

struct Conn(common::RawConn);

impl Conn {
    fn new(b: &BrokerProcess) -> Self {
        Conn(common::RawConn::connect(b))
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.0.call(key, version, req)
    }

    fn init_producer_id(&mut self) -> (i64, i16) {
        self.0.init_producer_id()
    }

    /// Produces one batch with acks=all; returns (error code, base offset).
    fn produce(&mut self, topic: &str, batch: &Bytes) -> (i16, i64) {
        let p = self.produce_full(topic, batch);
        (p.error_code, p.base_offset)
    }

    /// Produces one batch with acks=all; returns the partition's whole answer.
    fn produce_full(&mut self, topic: &str, batch: &Bytes) -> PartitionProduceResponse {
        let req =
            ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.into())))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.clone()))]),
            ]);
        let mut r: ProduceResponse = self.call(ApiKey::Produce, 9, &req);
        r.responses.remove(0).partition_responses.remove(0)
    }
}

fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    common::idempotent_batch(pid, epoch, seq, n)
}

fn create_topic(b: &BrokerProcess, topic: &str) {
    common::create_topic(&b.bootstrap(), topic, 1, &[]);
}

fn high_watermark(b: &BrokerProcess, topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "hw")
        .create()
        .unwrap();
    c.fetch_watermarks(topic, 0, Duration::from_secs(10)).unwrap().1
}

#[test]
fn retried_batches_are_written_once_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&broker, "idem");
    let mut c = Conn::new(&broker);
    let (pid, epoch) = c.init_producer_id();
    let (pid2, _) = c.init_producer_id();
    assert_ne!(pid, pid2, "every producer gets its own id");

    let first = batch(pid, epoch, 0, 5);
    assert_eq!(c.produce("idem", &first), (0, 0));
    for _ in 0..3 {
        assert_eq!(c.produce("idem", &first), (0, 0), "a retry answers with the original offset");
    }
    let second = batch(pid, epoch, 5, 5);
    assert_eq!(c.produce("idem", &second), (0, 5));
    assert_eq!(c.produce("idem", &first), (0, 0), "older batches among the last five are found");
    assert_eq!(high_watermark(&broker, "idem"), 10);

    // After a clean restart the producer state comes from the shutdown snapshot.
    assert_eq!(broker.stop(), Some(0));
    broker.restart();
    let mut c = Conn::new(&broker);
    assert_eq!(c.produce("idem", &second), (0, 5));
    let third = batch(pid, epoch, 10, 5);
    assert_eq!(c.produce("idem", &third), (0, 10));
    // After kill -9 it is rebuilt from the log.
    broker.kill9();
    broker.restart();
    let mut c = Conn::new(&broker);
    assert_eq!(c.produce("idem", &third), (0, 10));
    assert_eq!(high_watermark(&broker, "idem"), 15, "one copy of each batch");

    // Gaps and fenced epochs get Kafka's codes and write nothing; an unknown producer is
    // accepted at any sequence (Kafka >= 2.5).
    assert_eq!(c.produce("idem", &batch(pid, epoch, 20, 1)).0, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert_eq!(c.produce("idem", &batch(pid, epoch + 1, 3, 1)).0, 45, "a new epoch starts at 0");
    assert_eq!(c.produce("idem", &batch(pid, epoch + 1, 0, 2)), (0, 15), "KIP-360 epoch bump");
    assert_eq!(c.produce("idem", &batch(pid, epoch, 15, 1)).0, 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(c.produce("idem", &batch(pid2, 0, 7, 1)), (0, 17), "unknown producer, sequence 7");
    assert_eq!(high_watermark(&broker, "idem"), 18);
    assert_eq!(producer_count(&broker, "idem"), 2);
    if !common::against_kafka() {
        let (_, metrics) = broker.http_get("/metrics");
        assert!(metrics.contains(r#"sluice_duplicate_batches_total{topic="idem"}"#), "{metrics}");
        assert!(
            metrics.contains(r#"sluice_producer_ids{topic="idem",partition="0"} 2"#),
            "{metrics}"
        );
    }
}

/// `producer.id.expiration.ms`: an idle producer is forgotten; its next batch is accepted where
/// its sequence had got to (Kafka >= 2.5, KIP-360), and expiry also holds across a restart.
#[test]
fn idle_producers_expire_and_are_accepted_where_they_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(
        dir.path(),
        &[
            "--set",
            "producer.id.expiration.ms=1500",
            "--set",
            "producer.id.expiration.check.interval.ms=100",
        ],
    );
    create_topic(&broker, "expiry");
    let mut c = Conn::new(&broker);
    let (pid, epoch) = c.init_producer_id();
    assert_eq!(c.produce("expiry", &batch(pid, epoch, 0, 3)), (0, 0));
    assert_eq!(producer_count(&broker, "expiry"), 1, "the producer is tracked");
    wait_for_producers(&broker, "expiry", 0);

    // Kafka since 2.5 (KIP-360): a producer the partition no longer knows is accepted at the
    // sequence it has reached, and its state starts again there.
    assert_eq!(c.produce("expiry", &batch(pid, epoch, 3, 1)), (0, 3));
    assert_eq!(producer_count(&broker, "expiry"), 1, "tracked again");
    assert_eq!(c.produce("expiry", &batch(pid, epoch, 9, 1)).0, 45, "gaps are still refused");

    // A producer snapshot written at shutdown does not bring an expired producer back.
    assert_eq!(broker.stop(), Some(0));
    std::thread::sleep(Duration::from_millis(1600));
    broker.restart();
    wait_for_producers(&broker, "expiry", 0);
    let mut c = Conn::new(&broker);
    // Had the snapshot brought it back (last sequence 3), sequence 9 would be out of order.
    assert_eq!(c.produce("expiry", &batch(pid, epoch, 9, 1)), (0, 4));
}

/// Idempotent producers partition 0 of `topic` has state for (DescribeProducers, which Kafka
/// answers too, so the reference run can observe expiry the same way).
fn producer_count(broker: &BrokerProcess, topic: &str) -> usize {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};
    let mut c = common::RawConn::connect(broker);
    let r: DescribeProducersResponse = c.call(
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_indexes(vec![0])]),
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "DescribeProducers {topic}-0");
    p.active_producers.len()
}

/// Waits (bounded) until partition 0 of `topic` has state for `n` producers.
fn wait_for_producers(broker: &BrokerProcess, topic: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let count = producer_count(broker, topic);
        if count == n {
            return;
        }
        assert!(Instant::now() < deadline, "{count} producers on {topic}-0, not {n}, in {WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// InitProducerId without a transactional id, as Kafka answers it: a producer id and epoch
/// sent along are ignored (a new id, epoch 0); one without the other is INVALID_REQUEST.
#[test]
fn init_producer_id_hands_out_new_ids_to_idempotent_producers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = Conn::new(&broker);
    let (pid, _) = c.init_producer_id();
    let init = |c: &mut Conn, id: i64, epoch: i16| -> InitProducerIdResponse {
        c.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(id.into())
                .with_producer_epoch(epoch),
        )
    };
    let r = init(&mut c, pid, 3);
    assert_eq!(r.error_code, 0);
    assert_ne!(r.producer_id.0, pid, "a new id, as Kafka gives");
    assert_eq!(r.producer_epoch, 0);
    assert_eq!(init(&mut c, pid, -1).error_code, 42, "INVALID_REQUEST");
    assert_eq!(init(&mut c, -1, 0).error_code, 42, "INVALID_REQUEST");
}

use common::AckLog;

fn consume_all(b: &BrokerProcess, topic: &str, n: usize) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::with_capacity(n);
    let deadline = Instant::now() + WAIT;
    while out.len() < n {
        assert!(Instant::now() < deadline, "consumed {} of {n}", out.len());
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            out.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    // Nothing beyond the expected records (no duplicates at the end either).
    assert!(c.poll(Duration::from_millis(500)).is_none(), "more records than produced");
    out
}

/// librdkafka's idempotent producer keeps sending while the broker is killed and restarted:
/// its retries are de-duplicated, so the partition holds each record exactly once, in order.
#[test]
fn librdkafka_idempotent_producer_survives_a_broker_crash_without_duplicates_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&broker, "exactly-once");
    let acks = Arc::new(Mutex::new(Vec::new()));
    let producer: ThreadedProducer<AckLog> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "50")
        .create_with_context(AckLog(acks.clone()))
        .unwrap();
    let producer = Arc::new(producer);
    const N: usize = 30_000;
    let sender = {
        let producer = producer.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                let v = format!("r{i:06}");
                let mut rec = BaseRecord::<(), String, Box<usize>>::with_opaque_to(
                    "exactly-once",
                    Box::new(i),
                )
                .partition(0)
                .payload(&v);
                loop {
                    match producer.send(rec) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            rec = back;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                if i % 200 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    let deadline = Instant::now() + WAIT;
    while acks.lock().unwrap().len() < 5_000 {
        assert!(Instant::now() < deadline, "the producer never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.kill9();
    std::thread::sleep(Duration::from_millis(300));
    broker.restart();
    sender.join().unwrap();
    producer.flush(Duration::from_secs(60)).unwrap();
    let failed = acks.lock().unwrap().iter().filter(|(_, ok)| !ok).count();
    assert_eq!(failed, 0, "every record was eventually acknowledged");
    drop(producer);
    let got = consume_all(&broker, "exactly-once", N);
    let want: Vec<String> = (0..N).map(|i| format!("r{i:06}")).collect();
    assert!(
        got == want,
        "records are exactly once and in order (first difference at {:?})",
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
}

#[test]
fn librdkafka_idempotent_producer_writes_100k_records_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&broker, "idem-100k");
    let acks = Arc::new(Mutex::new(Vec::new()));
    let producer: ThreadedProducer<AckLog> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(AckLog(acks.clone()))
        .unwrap();
    const N: usize = 100_000;
    for i in 0..N {
        let v = format!("r{i:06}");
        let mut rec =
            BaseRecord::<(), String, Box<usize>>::with_opaque_to("idem-100k", Box::new(i))
                .partition(0)
                .payload(&v);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    assert!(acks.lock().unwrap().iter().all(|(_, ok)| *ok));
    let got = consume_all(&broker, "idem-100k", N);
    assert!(got.iter().enumerate().all(|(i, v)| *v == format!("r{i:06}")));
}

/// Every batch of partition 0 of `topic`: (producer id, epoch, base sequence), read raw.
fn batch_producers(b: &BrokerProcess, topic: &str) -> Vec<(i64, i16, i32)> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    let mut c = Conn::new(b);
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    let records = r.responses[0].partitions[0].records.clone().unwrap_or_default();
    sluice_broker::log::batch::BatchIter::new(&records, true)
        .map(|item| {
            let (_, v) = item.unwrap();
            (v.producer_id(), v.producer_epoch(), v.base_sequence())
        })
        .collect()
}

/// librdkafka's idempotent producer, idle past `producer.id.expiration.ms`, carries on with the
/// same producer id and epoch and the next sequence, as against Kafka >= 2.5. (Answered
/// UNKNOWN_PRODUCER_ID, as Sluice did before, it bumped its epoch and restarted at 0.)
#[test]
fn librdkafka_producer_idle_past_expiry_keeps_its_epoch_and_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        dir.path(),
        &[
            "--set",
            "producer.id.expiration.ms=1000",
            "--set",
            "producer.id.expiration.check.interval.ms=100",
        ],
    );
    create_topic(&broker, "idle");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let send = |i: usize| {
        let payload = format!("r{i}");
        let record = FutureRecord::<(), String>::to("idle").partition(0).payload(&payload);
        futures::executor::block_on(producer.send(record, WAIT)).expect("delivered");
    };
    for i in 0..3 {
        send(i);
    }
    wait_for_producers(&broker, "idle", 0);
    for i in 3..6 {
        send(i);
    }
    let batches = batch_producers(&broker, "idle");
    assert_eq!(batches.len(), 6, "{batches:?}");
    let (pid, epoch, _) = batches[0];
    for (i, (p, e, seq)) in batches.iter().enumerate() {
        assert_eq!((*p, *e, *seq), (pid, epoch, i as i32), "batch {i}: {batches:?}");
    }
    assert_eq!(
        consume_all(&broker, "idle", 6),
        (0..6).map(|i| format!("r{i}")).collect::<Vec<_>>()
    );
}
