//! Multi-broker clusters of real processes with librdkafka clients: topics created through any
//! node are seen by all, partitions spread over brokers, the active controller can die under a
//! producing client, a broker comes back, and SIGTERM is a controlled shutdown.
//!
//! Partitions have one replica here (replication is the next step), so a dead broker's
//! partitions are unavailable until it returns; everything else carries on.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{
    broker, controller, leaders, partition, read_partition as read, send_to as send, Cluster,
};
use common::create_topic;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("producer")
}

#[test]
fn topics_created_on_any_node_are_seen_by_all_and_leaders_spread_over_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &[]);
    // Created through node 2 alone, whichever node is the controller.
    create_topic(&cluster.node(2).bootstrap(), "spread", 6, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let mut per_broker = BTreeMap::<i64, usize>::new();
    for leader in leaders(&image, "spread").values() {
        *per_broker.entry(*leader).or_default() += 1;
    }
    assert_eq!(per_broker, BTreeMap::from([(1, 2), (2, 2), (3, 2)]), "{image:#}");
    for id in 1..=3 {
        assert_eq!(broker(&image, id)["fenced"], false);
    }

    // Every node's Metadata lists all three brokers and the real leaders.
    for id in 1..=3 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.node(id).bootstrap())
            .create()
            .unwrap();
        let md = consumer.fetch_metadata(Some("spread"), Duration::from_secs(10)).unwrap();
        let mut brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
        brokers.sort();
        assert_eq!(brokers, vec![1, 2, 3], "metadata from node {id}");
        for p in md.topics()[0].partitions() {
            assert_eq!(p.leader() as i64, leaders(&image, "spread")[&p.id()]);
        }
    }

    // A client that knows only node 1 writes to every partition and reads it back from node 3.
    let p = producer(&cluster.node(1).bootstrap());
    for part in 0..6 {
        for i in 0..5 {
            send(&p, "spread", part, &format!("{part}-{i}")).unwrap();
        }
    }
    for part in 0..6 {
        let want: Vec<String> = (0..5).map(|i| format!("{part}-{i}")).collect();
        assert_eq!(read(&cluster.node(3).bootstrap(), "spread", part, 5), want);
    }
}

#[test]
fn killing_the_active_controller_elects_another_and_the_producer_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, &[]);
    create_topic(&cluster.bootstrap(), "orders", 3, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let dead = controller(&image);
    let before = leaders(&image, "orders");
    let survivors: Vec<i32> =
        before.iter().filter(|(_, &l)| l != dead as i64).map(|(&p, _)| p).collect();
    assert_eq!(survivors.len(), 2, "{before:?}");
    let p = producer(&cluster.bootstrap());
    for &part in &survivors {
        send(&p, "orders", part, "before").unwrap();
    }

    // A client keeps producing to the live brokers' partitions while the controller dies.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (sent, images) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut sent = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for &part in &survivors {
                    send(&p, "orders", part, "during").expect("a live broker's partition");
                    sent += 1;
                }
            }
            sent
        });
        std::thread::sleep(Duration::from_millis(300));
        cluster.node_mut(dead).kill9();
        // Another node takes over the quorum, and the dead broker is fenced when its session
        // expires: its partition is leaderless (one replica), the others keep their leaders.
        let images = cluster.wait_for_images(
            "a new controller and the dead broker fenced",
            Duration::from_secs(30),
            |images| {
                images.values().all(|i| {
                    controller(i) != dead && controller(i) > 0 && broker(i, dead)["fenced"] == true
                })
            },
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (writer.join().unwrap(), images)
    });
    assert!(sent > 2, "the producer carried on through the failover ({sent} sends)");
    let after = images.values().next().unwrap();
    let dead_partition = before.iter().find(|(_, &l)| l == dead as i64).map(|(&p, _)| p).unwrap();
    assert_eq!(partition(after, "orders", dead_partition)["leader"], -1);
    for &part in &survivors {
        assert_eq!(leaders(after, "orders")[&part], before[&part]);
        send(&p, "orders", part, "after").unwrap();
    }

    // The node comes back: it rejoins the quorum, is unfenced and leads its partition again
    // under a new leader epoch; every node converges on the same metadata.
    cluster.node_mut(dead).restart();
    let image = cluster.wait_converged(Duration::from_secs(30));
    assert_eq!(broker(&image, dead)["fenced"], false);
    let back = partition(&image, "orders", dead_partition);
    assert_eq!(back["leader"], dead);
    assert!(back["leader_epoch"].as_i64().unwrap() >= 2, "{back}");
    send(&p, "orders", dead_partition, "back").unwrap();
    for &part in &survivors {
        let n = 2 + sent / survivors.len();
        let got = read(&cluster.bootstrap(), "orders", part, n);
        assert_eq!(
            (got.first().unwrap().as_str(), got.last().unwrap().as_str()),
            ("before", "after")
        );
        assert!(got[1..n - 1].iter().all(|v| v == "during"), "{got:?}");
    }
}

#[test]
fn sigterm_is_a_controlled_shutdown_that_moves_leaderships_first() {
    let dir = tempfile::tempdir().unwrap();
    // A session far longer than the test: only the controlled shutdown can fence the broker.
    let mut cluster = Cluster::start(dir.path(), 3, &["broker.session.timeout.ms=600000"]);
    create_topic(&cluster.bootstrap(), "t", 3, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let (&led, _) = leaders(&image, "t").iter().find(|(_, &l)| l == 3).expect("node 3 leads one");
    let epoch = partition(&image, "t", led)["leader_epoch"].as_i64().unwrap();

    assert_eq!(cluster.node_mut(3).stop(), Some(0));
    let images = cluster.wait_for_images("node 3 fenced", Duration::from_secs(20), |images| {
        images.values().all(|i| broker(i, 3)["fenced"] == true)
    });
    for image in images.values() {
        let p = partition(image, "t", led);
        assert_eq!((p["leader"].as_i64(), p["leader_epoch"].as_i64()), (Some(-1), Some(epoch + 1)));
    }
}

/// Writes `frame` to the controller listener of `node` and reports whether the node closed the
/// connection (read returns 0 or an error) within 10 s.
fn closed_after(addr: std::net::SocketAddr, frame: &[u8]) -> bool {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(frame).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue, // an answer (a refused hello), then the close
        }
    }
}

fn json_frame(value: &serde_json::Value) -> Vec<u8> {
    let body = serde_json::to_vec(value).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

#[test]
fn bad_controller_listener_input_closes_that_connection_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &[]);
    let target = cluster.node(1).controller.expect("controller listener");
    // An oversized frame, a frame that is not JSON, a hello from another cluster, a hello
    // with another voter list: each connection is closed, with a log line.
    assert!(closed_after(target, &u32::MAX.to_be_bytes()));
    assert!(closed_after(target, b"\0\0\0\x05hello"));
    let hello = |cluster_id: &str, voters: &str| {
        serde_json::json!({"cluster_id": cluster_id, "node_id": 7, "voters": voters,
                           "incarnation": vec![0; 16]})
    };
    let voters = cluster.image(1); // any image: only to prove the node still answers
    assert!(closed_after(target, &json_frame(&hello("another-cluster", "1@x:1"))));
    assert!(closed_after(target, &json_frame(&hello(&cluster.cluster_id, "1@x:1"))));
    let wait_for_log = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cluster.node(1).log_lines().iter().any(|l| l.contains(needle)) {
            assert!(std::time::Instant::now() < deadline, "no log line with {needle:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for_log("exceeds the limit");
    wait_for_log("bad hello");
    wait_for_log("belongs to cluster 'another-cluster'");
    wait_for_log("every node must list the same voters");
    // The quorum and the brokers carry on: a topic is created and every node sees it.
    assert!(voters["brokers"].as_object().is_some());
    create_topic(&cluster.node(1).bootstrap(), "still-fine", 3, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    assert_eq!(leaders(&image, "still-fine").len(), 3);
}

#[test]
fn five_nodes_survive_two_dead_voters() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 5, &[]);
    create_topic(&cluster.bootstrap(), "five", 10, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let mut per_broker = BTreeMap::<i64, usize>::new();
    for leader in leaders(&image, "five").values() {
        *per_broker.entry(*leader).or_default() += 1;
    }
    assert_eq!(per_broker.values().copied().collect::<Vec<_>>(), vec![2; 5], "{per_broker:?}");
    // Two of five voters die, the controller among them: three still form a quorum.
    let dead = controller(&image);
    let other = if dead == 1 { 2 } else { 1 };
    cluster.node_mut(dead).kill9();
    cluster.node_mut(other).kill9();
    let fenced = |i: &serde_json::Value, id: i32| broker(i, id)["fenced"] == true;
    cluster.wait_for_images(
        "a new controller, the dead fenced",
        Duration::from_secs(30),
        |images| {
            images.values().all(|i| {
                let c = controller(i);
                c != dead && c != other && c > 0 && fenced(i, dead) && fenced(i, other)
            })
        },
    );
    create_topic(&cluster.bootstrap(), "after", 3, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let live: Vec<i64> = leaders(&image, "after").values().copied().collect();
    assert!(live.iter().all(|l| *l != dead as i64 && *l != other as i64), "{live:?}");
}

/// KIP-951: Produce (v10+) and Fetch (v16) sent to a broker that does not lead the partition
/// answer NOT_LEADER_OR_FOLLOWER with the current leader, its epoch and its endpoint, so the
/// client goes there without asking for metadata first.
#[test]
fn a_broker_that_does_not_lead_names_the_leader_and_its_endpoint() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &[]);
    create_topic(&cluster.bootstrap(), "kip951", 3, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let (&p, _) = leaders(&image, "kip951").iter().find(|(_, &l)| l == 1).expect("1 leads one");
    let epoch = partition(&image, "kip951", p)["leader_epoch"].as_i64().unwrap() as i32;
    let mut conn = common::RawConn::connect(cluster.node(2));
    let produce = |partition: i32| {
        ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("kip951")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(
                        common::client_batch(&[(None, Some(b"v".as_slice()))]).freeze(),
                    ))]),
        ])
    };
    let r: ProduceResponse = conn.call(ApiKey::Produce, 12, &produce(p));
    let part = &r.responses[0].partition_responses[0];
    assert_eq!(part.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!((part.current_leader.leader_id.0, part.current_leader.leader_epoch), (1, epoch));
    let node1 = cluster.node(1).kafka;
    assert_eq!(r.node_endpoints.len(), 1);
    assert_eq!(r.node_endpoints[0].node_id.0, 1);
    assert_eq!(r.node_endpoints[0].port, node1.port() as i32);
    // A partition the cluster does not have is unknown, not led elsewhere.
    let r: ProduceResponse = conn.call(ApiKey::Produce, 12, &produce(99));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("kip951")))
            .with_topic_id(image_topic_id(&image, "kip951"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = conn.call(ApiKey::Fetch, 16, &fetch);
    let part = &r.responses[0].partitions[0];
    assert_eq!(part.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!((part.current_leader.leader_id.0, part.current_leader.leader_epoch), (1, epoch));
    assert_eq!(r.node_endpoints.iter().map(|e| e.node_id.0).collect::<Vec<_>>(), vec![1]);
}

/// The topic id of `topic` in an image (`[u8; 16]` as JSON numbers).
fn image_topic_id(image: &serde_json::Value, topic: &str) -> uuid::Uuid {
    let bytes: Vec<u8> = image["topics"][topic]["id"]
        .as_array()
        .expect("topic id")
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    uuid::Uuid::from_slice(&bytes).unwrap()
}

/// Separate roles, as a large Kafka cluster runs them: three controller-only nodes form the
/// quorum, two broker-only nodes follow the metadata log and serve clients. Partitions go to
/// brokers only, clients never see the controllers, DescribeQuorum lists the brokers as
/// observers, and losing the active controller changes nothing for the clients.
#[test]
fn controller_only_and_broker_only_nodes_form_one_cluster() {
    use common::cluster::Role;
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().unwrap();
    let roles = [Role::Controller, Role::Controller, Role::Controller, Role::Broker, Role::Broker];
    let mut cluster = Cluster::start_roles(dir.path(), &roles, &[]);
    create_topic(&cluster.node(4).bootstrap(), "roles", 4, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    let mut per_broker = BTreeMap::<i64, usize>::new();
    for leader in leaders(&image, "roles").values() {
        *per_broker.entry(*leader).or_default() += 1;
    }
    assert_eq!(per_broker, BTreeMap::from([(4, 2), (5, 2)]), "partitions on brokers only");
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", cluster.bootstrap()).create().unwrap();
    let md = consumer.fetch_metadata(Some("roles"), Duration::from_secs(10)).unwrap();
    let mut brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    brokers.sort();
    assert_eq!(brokers, vec![4, 5], "clients see brokers, not controllers");
    let p = producer(&cluster.bootstrap());
    for part in 0..4 {
        send(&p, "roles", part, "x").unwrap();
    }

    let mut conn = common::RawConn::connect(cluster.node(5));
    let quorum_request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(kafka_protocol::protocol::StrBytes::from_static_str(
            "__cluster_metadata",
        )))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let quorum = |conn: &mut common::RawConn| -> DescribeQuorumResponse {
        conn.call(ApiKey::DescribeQuorum, 2, &quorum_request)
    };
    let q = quorum(&mut conn);
    let part = &q.topics[0].partitions[0];
    let ids = |list: &[describe_quorum_response::ReplicaState]| {
        let mut v: Vec<i32> = list.iter().map(|r| r.replica_id.0).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&part.current_voters), vec![1, 2, 3]);
    assert_eq!(ids(&part.observers), vec![4, 5]);
    assert_eq!(q.nodes.len(), 3, "v2 names the voters' endpoints");
    // Older versions have no endpoints or messages to carry, and still answer (the operator
    // asks with v1).
    for version in [0, 1] {
        let old: DescribeQuorumResponse =
            conn.call(ApiKey::DescribeQuorum, version, &quorum_request);
        assert_eq!(ids(&old.topics[0].partitions[0].current_voters), vec![1, 2, 3], "v{version}");
    }

    // The active controller dies; another takes over and the brokers carry on.
    let dead = controller(&image);
    assert!((1..=3).contains(&dead), "{dead}");
    cluster.node_mut(dead).kill9();
    cluster.wait_for_images_on(&[4, 5], "a new controller", Duration::from_secs(30), |images| {
        images.values().all(|i| (1..=3).contains(&controller(i)) && controller(i) != dead)
    });
    create_topic(&cluster.node(5).bootstrap(), "roles-after", 2, &[]);
    for part in 0..4 {
        send(&p, "roles", part, "y").unwrap();
    }
    assert_eq!(read(&cluster.bootstrap(), "roles", 3, 2), vec!["x", "y"]);
}

/// Two client listeners, as a Kubernetes pod has (an internal one and an external one), each
/// advertising its own address: a client is answered with the endpoints of the listener it
/// connected to, in Metadata, FindCoordinator and DescribeCluster.
#[test]
fn each_client_listener_advertises_its_own_address() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let dir = tempfile::tempdir().unwrap();
    let (internal, external) = (common::cluster::free_port(), common::cluster::free_port());
    let config = dir.path().join("server.properties");
    std::fs::write(
        &config,
        format!(
            "node.id=1\nlisteners=INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}\n\
             advertised.listeners=INTERNAL://broker-1.internal.example:{internal},\
             EXTERNAL://203.0.113.7:31001\n\
             listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT\n\
             inter.broker.listener.name=INTERNAL\nlog.dirs={}\nadmin.listener=127.0.0.1:0\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let args = vec!["start".to_string(), "--config".into(), config.display().to_string()];
    let broker = common::BrokerProcess::launch(
        env!("CARGO_BIN_EXE_sluice"),
        dir.path(),
        args,
        Vec::new(),
        "warn".into(),
    )
    .ready();
    let cases = [
        (internal, "broker-1.internal.example", internal as i32),
        (external, "203.0.113.7", 31001),
    ];
    for (port, host, advertised_port) in cases {
        let mut conn = common::RawConn::connect_to(format!("127.0.0.1:{port}").parse().unwrap());
        let md: MetadataResponse =
            conn.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None));
        assert_eq!(md.brokers.len(), 1);
        assert_eq!((md.brokers[0].host.as_str(), md.brokers[0].port), (host, advertised_port));
        let dc: DescribeClusterResponse =
            conn.call(ApiKey::DescribeCluster, 1, &DescribeClusterRequest::default());
        assert_eq!((dc.brokers[0].host.as_str(), dc.brokers[0].port), (host, advertised_port));
        // The first lookup creates __consumer_offsets; retry until the coordinator is known.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let fc = loop {
            let fc: FindCoordinatorResponse = conn.call(
                ApiKey::FindCoordinator,
                3,
                &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
            );
            if fc.error_code == 0 || std::time::Instant::now() > deadline {
                break fc;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!((fc.error_code, fc.host.as_str(), fc.port), (0, host, advertised_port));
    }
    drop(broker);
}

/// Another process started with a node id the cluster already has: the voters refuse its
/// connections with a line naming the problem, it says why it cannot join, and the cluster
/// carries on.
#[test]
fn a_second_process_with_a_taken_node_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &[]);
    // The attempt that started (an earlier one may have lost a port race, with other ports).
    let node2 = std::fs::read_to_string(cluster.dir.join("node-2.properties"))
        .expect("node 2's properties");
    // The same node.id 2 and voter list, its own ports and data directory.
    let (kafka, controller) = (common::cluster::free_port(), common::cluster::free_port());
    let impostor_dir = dir.path().join("impostor");
    let props: String = node2
        .lines()
        .map(|l| {
            if l.starts_with("listeners=") {
                format!(
                    "listeners=PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}"
                )
            } else if l.starts_with("log.dirs=") {
                format!("log.dirs={}", impostor_dir.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = dir.path().join("impostor.properties");
    std::fs::write(&file, props).unwrap();
    let launch = common::BrokerProcess::launch(
        env!("CARGO_BIN_EXE_sluice"),
        &impostor_dir,
        vec!["start".into(), "--config".into(), file.display().to_string()],
        Vec::new(),
        "warn".into(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let refused = |lines: Vec<String>| lines.iter().any(|l| l.contains("may share node.id 2"));
    while !refused(cluster.node(1).log_lines()) || !refused(cluster.node(3).log_lines()) {
        assert!(std::time::Instant::now() < deadline, "the voters did not refuse the impostor");
        std::thread::sleep(Duration::from_millis(100));
    }
    // It never joins: still not ready after the refusals; stop it.
    match launch.try_ready_within(Duration::from_secs(3)) {
        Ok(_) => panic!("a second node 2 became ready"),
        Err(log) => assert!(log.contains("may share node.id 2"), "the impostor says why: {log}"),
    }
    create_topic(&cluster.bootstrap(), "after-impostor", 3, &[]);
    let image = cluster.wait_converged(Duration::from_secs(20));
    assert_eq!(leaders(&image, "after-impostor").len(), 3);
}

/// Voters that come back on new controller ports (a `sluice dev` cluster on picked ports, a
/// voter on a new host) find each other through `controller.quorum.voters`, as in Kafka: the
/// addresses kept in the metadata log's membership are those of the day the quorum formed.
#[test]
fn voters_back_on_new_ports_find_each_other_through_their_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, &[]);
    common::create_topic_rf(&cluster.bootstrap(), "before-the-move", 1, 3, &[]);
    let p = producer(&cluster.bootstrap());
    assert_eq!(send(&p, "before-the-move", 0, "kept"), Ok(0));
    drop(p);
    for id in 1..=3 {
        cluster.node_mut(id).stop();
    }
    // Every controller port changes, in each node's listeners and in every voter list.
    let moved: Vec<(String, String)> = (1..=3)
        .map(|id| {
            let old = cluster.node(id).controller.expect("a voter").to_string();
            (old, format!("127.0.0.1:{}", common::cluster::free_port()))
        })
        .collect();
    let mut launches = Vec::new();
    for id in 1..=3 {
        let file = cluster.dir.join(format!("node-{id}.properties"));
        let mut props = std::fs::read_to_string(&file).unwrap();
        for (old, new) in &moved {
            props = props.replace(old.as_str(), new);
        }
        std::fs::write(&file, props).unwrap();
        launches.push(cluster.node(id).relaunch());
    }
    for (id, launch) in (1..=3).zip(launches) {
        cluster.node_mut(id).await_ready(launch);
    }
    let image = cluster.wait_converged(Duration::from_secs(30));
    assert!(image["topics"]["before-the-move"].is_object(), "{image:#}");
    assert_eq!(read(&cluster.bootstrap(), "before-the-move", 0, 1), vec!["kept"]);
    common::create_topic_rf(&cluster.bootstrap(), "after-the-move", 1, 3, &[]);
    cluster.wait_for_images("the new topic everywhere", Duration::from_secs(20), |images| {
        images.values().all(|i| i["topics"]["after-the-move"].is_object())
    });
}
