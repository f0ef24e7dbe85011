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
    broker_metric(cluster, node, &format!("{name}{{topic=\"{topic}\",partition=\"0\"}}"))
}

/// A metric of one node's `/metrics` by its full series name (labels included).
fn broker_metric(cluster: &Cluster, node: i32, series: &str) -> Option<i64> {
    let (_, body) = cluster.node(node).http_get("/metrics");
    let prefix = format!("{series} ");
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

/// Followers fetch through fetch sessions (KIP-227): each leader holds one session per
/// follower with every partition that follower fetches from it, and the session survives
/// writes (only changed partitions travel) and starts over when the leader restarts.
#[test]
fn followers_fetch_through_one_session_per_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, &[]);
    common::create_topic_rf(&cluster.bootstrap(), "sess", 12, 3, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let led = |node: i32| leaders(&image, "sess").values().filter(|&&l| l == node as i64).count();
    let sessions = |cluster: &Cluster, node: i32| {
        let sessions = broker_metric(cluster, node, "sluice_fetch_sessions");
        (sessions, broker_metric(cluster, node, "sluice_fetch_session_partitions"))
    };
    // Every partition has two followers: each leader keeps one session for each, holding the
    // partitions it leads (the metadata topic is not fetched).
    for node in 1..=3 {
        let want = (Some(2), Some(2 * led(node) as i64));
        wait_until("a session per follower", Duration::from_secs(20), || {
            sessions(&cluster, node) == want
        });
    }
    // Writes to every partition reach every replica through the sessions.
    let p = producer(&cluster.bootstrap());
    for partition in 0..12 {
        let values = (0..20).map(|i| format!("p{partition}-{i}"));
        for v in values {
            let record = FutureRecord::<(), _>::to("sess").payload(&v).partition(partition);
            futures::executor::block_on(p.send(record, Duration::from_secs(10))).unwrap();
        }
    }
    let at = |cluster: &Cluster, node: i32, partition: i32| {
        let series = format!("sluice_log_end_offset{{topic=\"sess\",partition=\"{partition}\"}}");
        broker_metric(cluster, node, &series)
    };
    wait_until("every replica of every partition at 20", Duration::from_secs(20), || {
        (1..=3).all(|n| (0..12).all(|q| at(&cluster, n, q) == Some(20)))
    });
    for node in 1..=3 {
        assert_eq!(sessions(&cluster, node).0, Some(2), "the same sessions, not new ones");
    }

    // The leader of partition 0 restarts: its followers' sessions with it are gone, and the
    // restarted broker's own sessions on the others are replaced (the old ones linger until
    // evicted, as in Kafka). Replication goes on through new sessions.
    let node = leaders(&image, "sess")[&0] as i32;
    cluster.node_mut(node).kill9();
    cluster.node_mut(node).restart();
    let image = cluster.wait_converged(Duration::from_secs(30));
    send_all(&p, "sess", (0..50).map(|i| format!("after-{i}")));
    wait_until("every replica of partition 0 at 70", Duration::from_secs(30), || {
        (1..=3).all(|n| at(&cluster, n, 0) == Some(70))
    });
    for node in 1..=3 {
        if leaders(&image, "sess").values().any(|&l| l == node as i64) {
            assert!(sessions(&cluster, node).0 >= Some(2), "node {node} serves its followers");
        }
    }
}

/// Sends `sig` (`-STOP`, `-CONT`, ...) to a node; a stop returns once every thread of the
/// process is stopped (the signal is delivered asynchronously).
fn signal(cluster: &Cluster, node: i32, sig: &str) {
    let pid = cluster.node(node).child.as_ref().expect("running").id().to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    if sig == "-STOP" {
        wait_until("the process stopped", Duration::from_secs(10), || {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
            tasks.flatten().all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                // The state follows the ")" that closes the command name.
                stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
            })
        });
    }
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
    // The leader's replication metrics say so.
    assert_eq!(gauge(&cluster, leader, "sluice_partition_isr_size", "lag"), Some(2));
    assert_eq!(gauge(&cluster, leader, "sluice_partition_under_replicated", "lag"), Some(1));
    assert_eq!(gauge(&cluster, leader, "sluice_partition_under_min_isr", "lag"), Some(0));
    assert_eq!(gauge(&cluster, leader, "sluice_partition_at_min_isr", "lag"), Some(1));
    assert_eq!(broker_metric(&cluster, leader, "sluice_under_replicated_partitions"), Some(1));
    assert_eq!(broker_metric(&cluster, leader, "sluice_isr_shrinks_total"), Some(1));
    let lag = format!(
        "sluice_partition_follower_lag{{topic=\"lag\",partition=\"0\",replica=\"{follower}\"}}"
    );
    assert_eq!(broker_metric(&cluster, leader, &lag), Some(100), "100 records behind");

    signal(&cluster, follower, "-CONT");
    cluster.wait_for_images("the follower back in the ISR", Duration::from_secs(30), |images| {
        images.values().all(|i| isr(i, "lag").len() == 3)
    });
    wait_until("the leader counts the expansion", Duration::from_secs(20), || {
        broker_metric(&cluster, leader, "sluice_isr_expands_total") == Some(1)
            && broker_metric(&cluster, leader, "sluice_under_replicated_partitions") == Some(0)
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
/// past (FENCED_LEADER_EPOCH), a broker epoch older than the follower's registration (Fetch
/// v15, NOT_LEADER_OR_FOLLOWER, as Kafka fences a stale fetch state update); a good one still
/// works.
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

    // v15: the topic by id, the follower's broker epoch in replica_state.
    let id: Vec<u8> = images[&2]["topics"]["bad"]["id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    // Broker 1 comes back under a new registration: its old epoch is stale.
    let old = broker(&images[&2], 1)["epoch"].as_i64().unwrap();
    cluster.node_mut(1).restart();
    let images =
        cluster.wait_for_images("broker 1 registered again", Duration::from_secs(30), |images| {
            images.values().all(|i| broker(i, 1)["epoch"].as_i64() > Some(old))
        });
    let registered = broker(&images[&2], 1)["epoch"].as_i64().unwrap();
    let mut v15 = |broker_epoch: i64| {
        let mut f = fetch(-1, epoch).with_replica_state(
            fetch_request::ReplicaState::default()
                .with_replica_id(BrokerId(1))
                .with_replica_epoch(broker_epoch),
        );
        f.topics[0].topic_id = uuid::Uuid::from_slice(&id).unwrap();
        let r: FetchResponse = conn.call(ApiKey::Fetch, 15, &f);
        r.responses[0].partitions[0].error_code
    };
    assert_eq!(v15(old), 6, "a stale broker epoch: NOT_LEADER_OR_FOLLOWER");
    assert_eq!(v15(registered), 0, "the registered broker epoch works");
}

fn replicas_of(image: &serde_json::Value, topic: &str) -> (Vec<i64>, bool) {
    let p = &image["topics"][topic]["partitions"]["0"];
    let ids = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array().map(|a| a.iter().filter_map(|r| r.as_i64()).collect()).unwrap_or_default()
    };
    let moving = !ids(&p["adding_replicas"]).is_empty() || !ids(&p["removing_replicas"]).is_empty();
    (ids(&p["replicas"]), moving)
}

/// AlterPartitionReassignments of partition 0 of `topic` to `target`, sent to `node`.
fn reassign(cluster: &Cluster, node: i32, topic: &str, target: &[i32]) -> (i16, Option<String>) {
    use kafka_protocol::messages::alter_partition_reassignments_request::*;
    use kafka_protocol::messages::*;
    let req =
        AlterPartitionReassignmentsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            ReassignableTopic::default()
                .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_string(topic.into())))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(Some(target.iter().copied().map(BrokerId).collect()))]),
        ]);
    let mut conn = common::RawConn::connect(cluster.node(node));
    let r: AlterPartitionReassignmentsResponse =
        conn.call(ApiKey::AlterPartitionReassignments, 1, &req);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.error_message.as_ref().map(|m| m.to_string()))
}

/// One ongoing reassignment: topic, partition, replicas, adding, removing.
type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// The ongoing reassignments as ListPartitionReassignments reports them.
fn list_reassignments(cluster: &Cluster, node: i32) -> Vec<Ongoing> {
    use kafka_protocol::messages::*;
    let mut conn = common::RawConn::connect(cluster.node(node));
    let r: ListPartitionReassignmentsResponse = conn.call(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000),
    );
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let (r, a, d) =
                    (ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas));
                (t.name.to_string(), p.partition_index, r, a, d)
            })
        })
        .collect()
}

/// Three voters and a broker-only node 4: a partition to move from broker 1 to broker 4.
fn four_brokers(dir: &std::path::Path) -> Cluster {
    use common::cluster::Role;
    Cluster::start_roles(dir, &[Role::Combined, Role::Combined, Role::Combined, Role::Broker], &[])
}

/// Reassignment moves a partition from brokers 1-3 to 2-4 while an idempotent acks=all
/// producer keeps writing: the new replica catches up, joins the ISR, the old leader hands over
/// and deletes its copy, and every acknowledged record is there, in order, once.
#[test]
fn reassignment_moves_a_partition_under_load_with_nothing_lost() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let cluster = four_brokers(dir.path());
    create_on_123(&cluster.bootstrap(), "moving", &[("min.insync.replicas", "2")]);
    cluster.wait_converged(Duration::from_secs(20));

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, acked, bootstrap) = (stop.clone(), acked.clone(), cluster.bootstrap());
        std::thread::spawn(move || {
            let p = producer(&bootstrap);
            while !stop.load(Ordering::SeqCst) {
                let from = acked.load(Ordering::SeqCst);
                send_all(&p, "moving", (from..from + 200).map(|i| format!("v{i}")));
                acked.fetch_add(200, Ordering::SeqCst);
            }
        })
    };
    wait_until("writes under way", Duration::from_secs(30), || {
        acked.load(Ordering::SeqCst) >= 1000
    });

    assert_eq!(reassign(&cluster, 3, "moving", &[2, 3, 4]), (0, None));
    let images = cluster.wait_for_images("the move done", Duration::from_secs(60), |images| {
        images.values().all(|i| replicas_of(i, "moving") == (vec![2, 3, 4], false))
    });
    for image in images.values() {
        assert_eq!(leaders(image, "moving")[&0], 2, "broker 1 handed leadership to broker 2");
        assert_eq!(isr(image, "moving"), [2, 3, 4]);
    }
    assert!(list_reassignments(&cluster, 1).is_empty());
    wait_until("broker 1 deleted its copy", Duration::from_secs(20), || {
        !cluster.node(1).log_dir().join("moving-0").exists()
    });
    // More writes after the move, then stop.
    let after = acked.load(Ordering::SeqCst) + 600;
    wait_until("writes after the move", Duration::from_secs(60), || {
        acked.load(Ordering::SeqCst) >= after
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the producer thread");
    let n = acked.load(Ordering::SeqCst);
    let want: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    assert_eq!(read_partition(&cluster.bootstrap(), "moving", 0, n), want);
    wait_until("broker 4 has every record", Duration::from_secs(20), || {
        gauge(&cluster, 4, "sluice_log_end_offset", "moving") == Some(n as i64)
    });
}

/// A reassignment throttled to 1 KB/s (`leader.replication.throttled.rate` and the throttled
/// replica lists, as `kafka-reassign-partitions --throttle` sets them) stalls the new replica
/// after its first fetch and stays in progress; lifting the throttle lets it complete. Bad
/// targets get Kafka's errors, and cancelling with none in progress is
/// NO_REASSIGNMENT_IN_PROGRESS.
#[test]
fn a_throttled_reassignment_waits_for_the_quota_and_completes_once_lifted() {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let dir = tempfile::tempdir().unwrap();
    let cluster = four_brokers(dir.path());
    create_on_123(&cluster.bootstrap(), "slow", &[]);
    cluster.wait_converged(Duration::from_secs(20));
    let value = "x".repeat(1000);
    send_all(&producer(&cluster.bootstrap()), "slow", (0..3000).map(|i| format!("{i:05}{value}")));

    assert_eq!(reassign(&cluster, 1, "slow", &[2, 2, 4]).0, 39, "INVALID_REPLICA_ASSIGNMENT");
    assert_eq!(reassign(&cluster, 1, "slow", &[2, 9]).0, 39, "an unregistered broker");
    assert_eq!(reassign(&cluster, 1, "nope", &[2]).0, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", cluster.bootstrap()).create().unwrap();
    let alter = |configs: Vec<AlterConfig>| {
        let results =
            futures::executor::block_on(admin.alter_configs(&configs, &AdminOptions::new()))
                .unwrap();
        for r in results {
            r.expect("altered");
        }
    };
    // One request per resource: librdkafka sends each broker's own configs to that broker.
    let throttle = |rate: Option<&'static str>| {
        let topic = AlterConfig::new(ResourceSpecifier::Topic("slow"));
        alter(vec![match rate {
            Some(_) => topic
                .set("leader.replication.throttled.replicas", "0:1,0:2,0:3")
                .set("follower.replication.throttled.replicas", "0:4"),
            None => topic,
        }]);
        for id in 1..=4 {
            let broker = AlterConfig::new(ResourceSpecifier::Broker(id));
            alter(vec![match rate {
                Some(r) => broker
                    .set("leader.replication.throttled.rate", r)
                    .set("follower.replication.throttled.rate", r),
                None => broker,
            }]);
        }
    };
    throttle(Some("1000"));
    assert_eq!(reassign(&cluster, 2, "slow", &[2, 3, 4]), (0, None));
    wait_until("broker 4 fetched once", Duration::from_secs(30), || {
        gauge(&cluster, 4, "sluice_log_end_offset", "slow").is_some_and(|leo| leo > 0)
    });
    // The first fetch used the quota up for the next many seconds: no more data moves.
    std::thread::sleep(Duration::from_secs(2));
    let leo = gauge(&cluster, 4, "sluice_log_end_offset", "slow").unwrap();
    assert!(leo < 3000, "broker 4 is held back by the throttle at {leo}");
    assert_eq!(
        list_reassignments(&cluster, 4),
        [("slow".to_string(), 0, vec![2, 3, 4, 1], vec![4], vec![1])]
    );
    let (_, body) = cluster.node(1).http_get("/metrics");
    assert!(
        body.contains("sluice_replication_throttle_limit_bytes{side=\"leader\"} 1000"),
        "{body}"
    );
    // Counted once, by the active controller.
    let moving: Vec<i64> = (1..=4)
        .filter_map(|n| broker_metric(&cluster, n, "sluice_reassigning_partitions"))
        .collect();
    assert_eq!((moving.len(), moving.iter().sum::<i64>()), (4, 1), "{moving:?}");

    throttle(None);
    cluster.wait_for_images("the move done", Duration::from_secs(60), |images| {
        images.values().all(|i| replicas_of(i, "slow") == (vec![2, 3, 4], false))
    });
    let want: Vec<String> = (0..3000).map(|i| format!("{i:05}{value}")).collect();
    assert_eq!(read_partition(&cluster.bootstrap(), "slow", 0, 3000), want);
    // Cancelling when nothing moves.
    use kafka_protocol::messages::alter_partition_reassignments_request::*;
    use kafka_protocol::messages::*;
    let cancel = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("slow")))
            .with_partitions(vec![ReassignablePartition::default().with_partition_index(0)]),
    ]);
    let r: AlterPartitionReassignmentsResponse = common::RawConn::connect(cluster.node(1)).call(
        ApiKey::AlterPartitionReassignments,
        0,
        &cancel,
    );
    assert_eq!(r.responses[0].partitions[0].error_code, 85, "NO_REASSIGNMENT_IN_PROGRESS");
}

/// Produce requests pipeline on one connection: while an acks=all produce waits for a frozen
/// in-sync follower, the produces sent after it on the same connection are appended at once;
/// the answers come in request order once the follower has the writes, and a request of
/// another kind is answered after them.
#[test]
fn acks_all_produces_pipeline_on_one_connection_and_answer_in_order() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, StrBytes};
    let dir = tempfile::tempdir().unwrap();
    let extra = ["replica.lag.time.max.ms=60000", "broker.session.timeout.ms=60000"];
    let cluster = Cluster::start(dir.path(), 3, &extra);
    common::create_topic_rf(&cluster.bootstrap(), "pipe", 1, 3, &[("min.insync.replicas", "2")]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let leader = leaders(&image, "pipe")[&0] as i32;
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    let mut conn = common::RawConn::connect(cluster.node(leader));
    let produce = |value: &str| {
        ProduceRequest::default().with_acks(-1).with_timeout_ms(60_000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("pipe")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(
                        common::client_batch(&[(None, Some(value.as_bytes()))]).freeze(),
                    ))]),
        ])
    };
    let first =
        conn.produce_with(9, "pipe", 0, -1, common::client_batch(&[(None, Some(b"v0"))]).freeze());
    assert_eq!((first.error_code, first.base_offset), (0, 0));

    signal(&cluster, follower, "-STOP");
    let ids: Vec<i32> =
        ["v1", "v2", "v3"].iter().map(|v| conn.send(ApiKey::Produce, 9, &produce(v))).collect();
    // All three are in the leader's log while the first still waits for the frozen follower.
    wait_until("the pipelined produces appended", Duration::from_secs(20), || {
        gauge(&cluster, leader, "sluice_log_end_offset", "pipe") == Some(4)
    });
    assert_eq!(gauge(&cluster, leader, "sluice_high_watermark", "pipe"), Some(1));
    let versions = conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());

    signal(&cluster, follower, "-CONT");
    for (i, id) in ids.into_iter().enumerate() {
        let mut body = conn.receive(ApiKey::Produce, 9, id);
        let r = ProduceResponse::decode(&mut body, 9).unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, i as i64 + 1));
    }
    let mut body = conn.receive(ApiKey::ApiVersions, 3, versions);
    assert_eq!(ApiVersionsResponse::decode(&mut body, 3).unwrap().error_code, 0);

    // A malformed produce behind a waiting one closes the connection once the one before it
    // is answered; nothing sent after it is read, so nothing after it is appended.
    signal(&cluster, follower, "-STOP");
    let waiting = conn.send(ApiKey::Produce, 9, &produce("v4"));
    conn.send_with(ApiKey::Produce, 9, |buf| buf.extend_from_slice(&[0xff; 3]));
    conn.send(ApiKey::Produce, 9, &produce("v5"));
    wait_until("the first one appended", Duration::from_secs(20), || {
        gauge(&cluster, leader, "sluice_log_end_offset", "pipe") == Some(5)
    });
    signal(&cluster, follower, "-CONT");
    let mut body = conn.receive(ApiKey::Produce, 9, waiting);
    let r = ProduceResponse::decode(&mut body, 9).unwrap();
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 4);
    let mut rest = Vec::new();
    use std::io::Read;
    let closed = conn.stream.read_to_end(&mut rest);
    assert!(closed.is_ok() && rest.is_empty(), "closed without another answer: {closed:?}");
    assert_eq!(
        gauge(&cluster, leader, "sluice_log_end_offset", "pipe"),
        Some(5),
        "v5 not appended"
    );
}

/// An idempotent producer's state fails over with the partition: followers rebuild it from the
/// batches they replicate, so a batch retried at the new leader after SIGKILL of the old one is
/// recognised (its original offset, nothing written twice), the next sequence goes on, and a
/// gap in sequences is OUT_OF_ORDER_SEQUENCE_NUMBER there too.
#[test]
fn a_retried_idempotent_batch_is_recognised_by_the_new_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, &[]);
    common::create_topic_rf(&cluster.bootstrap(), "idem", 1, 3, &[("min.insync.replicas", "2")]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let leader = leaders(&image, "idem")[&0] as i32;
    let mut conn = common::RawConn::connect(cluster.node(leader));
    let (pid, epoch) = conn.init_producer_id();
    let first = common::idempotent_batch(pid, epoch, 0, 5);
    let r = conn.produce_with(9, "idem", 0, -1, first.clone());
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let r = conn.produce_with(9, "idem", 0, -1, common::idempotent_batch(pid, epoch, 5, 5));
    assert_eq!((r.error_code, r.base_offset), (0, 5));

    cluster.node_mut(leader).kill9();
    let images = cluster.wait_for_images("a new leader", Duration::from_secs(30), |images| {
        images.values().all(|i| {
            let l = leaders(i, "idem")[&0] as i32;
            l > 0 && l != leader
        })
    });
    let new_leader = leaders(images.values().next().unwrap(), "idem")[&0] as i32;
    let mut conn = common::RawConn::connect(cluster.node(new_leader));
    // The client did not see the answer to its second batch and retries it: a duplicate.
    let r = conn.produce_with(9, "idem", 0, -1, common::idempotent_batch(pid, epoch, 5, 5));
    assert_eq!((r.error_code, r.base_offset), (0, 5), "the original offset, nothing written");
    let r = conn.produce_with(9, "idem", 0, -1, first);
    assert_eq!((r.error_code, r.base_offset), (0, 0), "an older batch is recognised too");
    let r = conn.produce_with(9, "idem", 0, -1, common::idempotent_batch(pid, epoch, 20, 1));
    assert_eq!(r.error_code, 45, "a sequence gap: OUT_OF_ORDER_SEQUENCE_NUMBER");
    let r = conn.produce_with(9, "idem", 0, -1, common::idempotent_batch(pid, epoch, 10, 1));
    assert_eq!((r.error_code, r.base_offset), (0, 10), "the next sequence goes on");
    assert_eq!(gauge(&cluster, new_leader, "sluice_log_end_offset", "idem"), Some(11));
}

/// Consumer lag for every partition a group committed, also those the coordinator does not
/// host (it asks their leaders for the high watermark, server::lag), and the cluster-wide
/// gauges counted once: only the active controller reports the controller and broker counts.
#[test]
fn consumer_lag_covers_partitions_the_coordinator_does_not_host() {
    use rdkafka::consumer::CommitMode;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &[]);
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", cluster.bootstrap()).create().unwrap();
    let topic = NewTopic::new("spread", 3, TopicReplication::Variable(&[&[1], &[2], &[3]]));
    for r in
        futures::executor::block_on(admin.create_topics(&[topic], &AdminOptions::new())).unwrap()
    {
        r.unwrap();
    }
    cluster.wait_converged(Duration::from_secs(20));
    let p = producer(&cluster.bootstrap());
    for partition in 0..3 {
        for i in 0..10 {
            let v = format!("v{i}");
            let record = FutureRecord::<(), String>::to("spread").partition(partition).payload(&v);
            futures::executor::block_on(p.send_result(record).map_err(|(e, _)| e).unwrap())
                .unwrap()
                .unwrap();
        }
    }
    let group = "spread-group";
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    for partition in 0..3 {
        offsets.add_partition_offset("spread", partition, Offset::Offset(4)).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
        assert!(std::time::Instant::now() < deadline, "commit: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let hash = group.chars().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    let offsets_partition = ((hash & 0x7fff_ffff) % 50).to_string();
    let image = cluster.wait_converged(Duration::from_secs(20));
    let coordinator = image["topics"]["__consumer_offsets"]["partitions"][&offsets_partition]
        ["leader"]
        .as_i64()
        .unwrap() as i32;
    let lag = |partition: i32| {
        let series = format!(
            "sluice_consumer_group_lag{{group=\"{group}\",topic=\"spread\",partition=\"{partition}\"}}"
        );
        broker_metric(&cluster, coordinator, &series)
    };
    // The hosted partition at once; the others once the leaders were asked (every 10 s).
    wait_until("lag of all three partitions", Duration::from_secs(40), || {
        (0..3).all(|p| lag(p) == Some(6))
    });
    let topic_lag =
        format!("sluice_consumer_group_topic_lag{{group=\"{group}\",topic=\"spread\"}}");
    assert_eq!(broker_metric(&cluster, coordinator, &topic_lag), Some(18));

    let controllers: Vec<i64> =
        (1..=3).map(|n| broker_metric(&cluster, n, "sluice_active_controller").unwrap()).collect();
    assert_eq!(controllers.iter().sum::<i64>(), 1, "{controllers:?}");
    let registered: i64 =
        (1..=3).map(|n| broker_metric(&cluster, n, "sluice_registered_brokers").unwrap()).sum();
    assert_eq!(registered, 3);
    for n in 1..=3 {
        assert!(broker_metric(&cluster, n, "sluice_raft_commit_index").unwrap() > 0);
    }
}
