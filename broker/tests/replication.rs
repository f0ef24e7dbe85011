//! Partition replication across broker processes, with librdkafka clients: followers fetch from
//! the leader, the high watermark waits for the in-sync replicas, acks=all answers once they
//! all have the write, and a write acknowledged that way survives the loss of its leader.

mod common;

use std::time::Duration;

use common::cluster::{broker, controller, leaders, read_partition, Cluster};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// A topic of one partition on brokers 1, 2 and 3 (1 leads).
fn create_on_123(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let mut topic = NewTopic::new(name, 1, TopicReplication::Variable(&[&[1, 2, 3]]));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    for r in
        futures::executor::block_on(admin.create_topics(&[topic], &AdminOptions::new())).unwrap()
    {
        r.unwrap();
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

fn send_all(p: &FutureProducer, topic: &str, values: impl Iterator<Item = String>) {
    let sends: Vec<_> = values
        .map(|v| {
            let record = FutureRecord::<(), String>::to(topic).partition(0).payload(&v);
            p.send_result(record).map_err(|(e, _)| e).expect("queued")
        })
        .collect();
    for s in sends {
        futures::executor::block_on(s).expect("delivery").expect("acknowledged");
    }
}

/// A partition gauge of one node's `/metrics` (`sluice_log_end_offset`, ...).
fn gauge(cluster: &Cluster, node: i32, name: &str, topic: &str) -> Option<i64> {
    let (_, body) = cluster.node(node).http_get("/metrics");
    let prefix = format!("{name}{{topic=\"{topic}\",partition=\"0\"}} ");
    body.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

fn wait_until(what: &str, timeout: Duration, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn acknowledged_writes_reach_every_replica_and_survive_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, &[]);
    common::create_topic_rf(&cluster.bootstrap(), "rep", 1, 3, &[("min.insync.replicas", "2")]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let leader = leaders(&image, "rep")[&0] as i32;

    let p = producer(&cluster.bootstrap());
    send_all(&p, "rep", (0..500).map(|i| format!("v{i}")));
    // Acknowledged with acks=all: the leader's HW covers all 500, so every in-sync replica
    // has them; the followers learn the HW with their next fetch.
    assert_eq!(gauge(&cluster, leader, "sluice_high_watermark", "rep"), Some(500));
    for node in 1..=3 {
        wait_until("every replica at 500", Duration::from_secs(20), || {
            gauge(&cluster, node, "sluice_log_end_offset", "rep") == Some(500)
                && gauge(&cluster, node, "sluice_high_watermark", "rep") == Some(500)
        });
    }

    // The leader dies: another in-sync replica takes over with every acknowledged record.
    cluster.node_mut(leader).kill9();
    let images =
        cluster.wait_for_images("a new leader for rep-0", Duration::from_secs(30), |images| {
            images.values().all(|i| {
                let l = leaders(i, "rep")[&0] as i32;
                l > 0 && l != leader && broker(i, leader)["fenced"] == true && controller(i) > 0
            })
        });
    let new_leader = leaders(images.values().next().unwrap(), "rep")[&0] as i32;
    let want: Vec<String> = (0..500).map(|i| format!("v{i}")).collect();
    assert_eq!(read_partition(&cluster.bootstrap(), "rep", 0, 500), want);

    // Two of three replicas are still in sync (min.insync.replicas=2): acks=all goes on.
    send_all(&p, "rep", (500..600).map(|i| format!("v{i}")));
    assert_eq!(gauge(&cluster, new_leader, "sluice_high_watermark", "rep"), Some(600));

    // The old leader returns as a follower and catches up from the new one.
    cluster.node_mut(leader).restart();
    wait_until("the old leader caught up", Duration::from_secs(30), || {
        gauge(&cluster, leader, "sluice_log_end_offset", "rep") == Some(600)
    });
    let want: Vec<String> = (0..600).map(|i| format!("v{i}")).collect();
    assert_eq!(read_partition(&cluster.bootstrap(), "rep", 0, 600), want);
}

fn signal(cluster: &Cluster, node: i32, sig: &str) {
    let pid = cluster.node(node).child.as_ref().expect("running").id().to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

fn isr(image: &serde_json::Value, topic: &str) -> Vec<i64> {
    image["topics"][topic]["partitions"]["0"]["isr"]
        .as_array()
        .expect("isr")
        .iter()
        .map(|r| r.as_i64().unwrap())
        .collect()
}

/// A follower that stops fetching (frozen with SIGSTOP, its session kept alive by a long
/// `broker.session.timeout.ms`) leaves the ISR after `replica.lag.time.max.ms`, so acks=all goes
/// on with the others; thawed, it catches up and joins the ISR again.
#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins_once_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["replica.lag.time.max.ms=1500", "broker.session.timeout.ms=60000"];
    let cluster = Cluster::start(dir.path(), 3, &extra);
    common::create_topic_rf(&cluster.bootstrap(), "lag", 1, 3, &[("min.insync.replicas", "2")]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let leader = leaders(&image, "lag")[&0] as i32;
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    let p = producer(&cluster.bootstrap());
    send_all(&p, "lag", (0..100).map(|i| format!("v{i}")));

    signal(&cluster, follower, "-STOP");
    send_all(&p, "lag", (100..200).map(|i| format!("v{i}")));
    let live: Vec<i32> = (1..=3).filter(|&n| n != follower).collect();
    cluster.wait_for_images_on(
        &live,
        "the frozen follower out of the ISR",
        Duration::from_secs(30),
        |images| {
            images
                .values()
                .all(|i| isr(i, "lag").len() == 2 && !isr(i, "lag").contains(&(follower as i64)))
        },
    );
    assert_eq!(gauge(&cluster, leader, "sluice_high_watermark", "lag"), Some(200));

    signal(&cluster, follower, "-CONT");
    cluster.wait_for_images("the follower back in the ISR", Duration::from_secs(30), |images| {
        images.values().all(|i| isr(i, "lag").len() == 3)
    });
    wait_until("the follower caught up", Duration::from_secs(20), || {
        gauge(&cluster, follower, "sluice_log_end_offset", "lag") == Some(200)
    });
}

/// RF 3, min.insync.replicas 2, both followers stopped: acks=all is refused with
/// NOT_ENOUGH_REPLICAS while acks=1 still works; when they return, the ISR is whole again.
#[test]
fn acks_all_needs_min_insync_replicas_and_the_isr_recovers() {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let dir = tempfile::tempdir().unwrap();
    // Five voters, so that the quorum survives two stopped brokers.
    let mut cluster = Cluster::start(dir.path(), 5, &[]);
    create_on_123(&cluster.bootstrap(), "minisr", &[("min.insync.replicas", "2")]);
    cluster.wait_converged(Duration::from_secs(20));
    let p = producer(&cluster.bootstrap());
    send_all(&p, "minisr", (0..10).map(|i| format!("v{i}")));

    cluster.node_mut(2).kill9();
    cluster.node_mut(3).kill9();
    cluster.wait_for_images("the ISR down to the leader", Duration::from_secs(30), |images| {
        images.values().all(|i| isr(i, "minisr") == vec![1])
    });
    let impatient: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "all")
        .set("message.timeout.ms", "3000")
        .create()
        .unwrap();
    let record = FutureRecord::<(), str>::to("minisr").partition(0).payload("refused");
    let refused = futures::executor::block_on(impatient.send(record, Duration::from_secs(10)));
    match refused {
        Err((KafkaError::MessageProduction(code), _)) => assert!(
            matches!(code, RDKafkaErrorCode::NotEnoughReplicas | RDKafkaErrorCode::MessageTimedOut),
            "{code:?}"
        ),
        other => panic!("acks=all with one in-sync replica: {other:?}"),
    }
    let one: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "1")
        .create()
        .unwrap();
    let record = FutureRecord::<(), str>::to("minisr").partition(0).payload("acks=1");
    futures::executor::block_on(one.send(record, Duration::from_secs(10))).expect("acks=1 works");

    cluster.node_mut(2).restart();
    cluster.node_mut(3).restart();
    cluster.wait_for_images("the ISR whole again", Duration::from_secs(30), |images| {
        images.values().all(|i| isr(i, "minisr") == vec![1, 2, 3])
    });
    send_all(&p, "minisr", (10..20).map(|i| format!("v{i}")));
}

/// Offsets committed to a group are in every in-sync replica of its `__consumer_offsets`
/// partition before the commit is answered, so they survive the loss of the coordinator: the
/// next leader of that partition coordinates the group and serves the same offsets.
#[test]
fn committed_offsets_survive_the_coordinator() {
    use rdkafka::consumer::CommitMode;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, &[]);
    common::create_topic_rf(&cluster.bootstrap(), "g", 1, 3, &[]);
    let group = "survivor";
    let consumer = |bootstrap: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    };
    let first = consumer(&cluster.bootstrap());
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset("g", 0, Offset::Offset(7)).unwrap();
    // The first commit creates __consumer_offsets, whose partitions load for a moment
    // (COORDINATOR_LOAD_IN_PROGRESS, retriable): retry as a client would.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = first.commit(&offsets, CommitMode::Sync) {
        assert!(std::time::Instant::now() < deadline, "commit: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(first);

    // The coordinator is the leader of __consumer_offsets partition abs(hash(group)) % 50.
    let hash = group.chars().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    let partition = (hash & 0x7fff_ffff) % 50;
    let image = cluster.wait_converged(Duration::from_secs(20));
    let coordinator = image["topics"]["__consumer_offsets"]["partitions"][partition.to_string()]
        ["leader"]
        .as_i64()
        .unwrap() as i32;
    cluster.node_mut(coordinator).kill9();
    cluster.wait_for_images("a new coordinator", Duration::from_secs(30), |images| {
        images.values().all(|i| {
            let l = i["topics"]["__consumer_offsets"]["partitions"][partition.to_string()]["leader"]
                .as_i64()
                .unwrap() as i32;
            l > 0 && l != coordinator
        })
    });
    let second = consumer(&cluster.bootstrap());
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("g", 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let committed = loop {
        match second.committed_offsets(wanted.clone(), Duration::from_secs(5)) {
            Ok(c) => break c,
            Err(e) => assert!(std::time::Instant::now() < deadline, "committed offsets: {e}"),
        }
    };
    assert_eq!(committed.find_partition("g", 0).unwrap().offset(), Offset::Offset(7));
}

/// Bad replica fetches get Kafka's error codes: a broker that is not a replica of the partition
/// (NOT_LEADER_OR_FOLLOWER), a leader epoch from the future (UNKNOWN_LEADER_EPOCH) or from the
/// past (FENCED_LEADER_EPOCH); a good one still works.
#[test]
fn bad_replica_fetches_get_kafka_errors() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 5, &[]);
    create_on_123(&cluster.bootstrap(), "bad", &[]);
    cluster.wait_converged(Duration::from_secs(20));
    send_all(&producer(&cluster.bootstrap()), "bad", (0..5).map(|i| format!("v{i}")));
    // Leadership moves to broker 2 under a new epoch, so there is an older one to send.
    cluster.node_mut(1).kill9();
    let images = cluster.wait_for_images("broker 2 leading", Duration::from_secs(30), |images| {
        images.values().all(|i| leaders(i, "bad")[&0] == 2)
    });
    let epoch =
        images[&2]["topics"]["bad"]["partitions"]["0"]["leader_epoch"].as_i64().unwrap() as i32;
    assert!(epoch >= 1);
    let mut conn = common::RawConn::connect(cluster.node(2));
    let fetch = |replica: i32, leader_epoch: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(replica))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("bad")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(leader_epoch)
                    .with_fetch_offset(5)
                    .with_partition_max_bytes(1 << 20)])])
    };
    let code = |conn: &mut common::RawConn, replica: i32, leader_epoch: i32| -> i16 {
        let r: FetchResponse = conn.call(ApiKey::Fetch, 12, &fetch(replica, leader_epoch));
        r.responses[0].partitions[0].error_code
    };
    assert_eq!(code(&mut conn, 4, epoch), 6, "broker 4 is not a replica: NOT_LEADER_OR_FOLLOWER");
    assert_eq!(code(&mut conn, 3, epoch + 1), 75, "a future epoch: UNKNOWN_LEADER_EPOCH");
    assert_eq!(code(&mut conn, 3, epoch - 1), 74, "an old epoch: FENCED_LEADER_EPOCH");
    assert_eq!(code(&mut conn, 3, epoch), 0, "the right one works");
}
