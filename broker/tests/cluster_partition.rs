//! A network partition: three nodes, each in a network namespace of its own on one bridge, and
//! the clients in another (tests/common/netns.rs; nothing touches the machine's own network).
//! The active controller is cut off from everyone: the other two elect a new controller, fence
//! it when its session expires and take its partition offline (one replica); clients carry on
//! with the rest. When the network heals it returns, is unfenced, leads its partition again
//! under a new leader epoch, and every node converges on the same metadata.

mod common;

use std::time::Duration;

use common::cluster::{broker, controller, leaders, partition, Cluster};
use common::create_topic;
use common::netns::Net;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn send(bootstrap: &str, topic: &str, partition: i32) -> Result<i64, String> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    let record = FutureRecord::<(), str>::to(topic).partition(partition).payload("v");
    futures::executor::block_on(producer.send(record, Duration::from_secs(20)))
        .map(|d| d.offset)
        .map_err(|(e, _)| e.to_string())
}

#[test]
fn a_partitioned_broker_is_fenced_and_returns_when_the_network_heals() {
    let net = Net::create(3);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start_in(&net, dir.path(), 3, &[]);
    let image = net.client(|| {
        create_topic(&cluster.bootstrap(), "netsplit", 3, &[]);
        cluster.wait_converged(Duration::from_secs(20))
    });
    let victim = controller(&image);
    let before = leaders(&image, "netsplit");
    let (&cut_partition, _) = before.iter().find(|(_, &l)| l == victim as i64).unwrap();
    let epoch = partition(&image, "netsplit", cut_partition)["leader_epoch"].as_i64().unwrap();
    let majority: Vec<i32> = (1..=3).filter(|&id| id != victim).collect();

    net.link(victim as usize, false);
    let images = net.client(|| {
        cluster.wait_for_images_on(
            &majority,
            "a new controller and the cut-off node fenced",
            Duration::from_secs(40),
            |images| {
                images.values().all(|i| {
                    let c = controller(i);
                    majority.contains(&c) && broker(i, victim)["fenced"] == true
                })
            },
        )
    });
    let after = &images[&majority[0]];
    let p = partition(after, "netsplit", cut_partition);
    assert_eq!((p["leader"].as_i64(), p["leader_epoch"].as_i64()), (Some(-1), Some(epoch + 1)));
    let live = majority.iter().map(|&id| cluster.node(id).bootstrap()).collect::<Vec<_>>();
    net.client(|| {
        for (&part, &leader) in &before {
            if leader != victim as i64 {
                send(&live.join(","), "netsplit", part).expect("the majority's partitions work");
            }
        }
    });

    net.link(victim as usize, true);
    let image = net.client(|| {
        cluster.wait_for_images("the node back and unfenced", Duration::from_secs(60), |images| {
            images.values().all(|i| broker(i, victim)["fenced"] == false)
        });
        cluster.wait_converged(Duration::from_secs(30))
    });
    assert_eq!(broker(&image, victim)["fenced"], false);
    let p = partition(&image, "netsplit", cut_partition);
    assert_eq!(p["leader"].as_i64(), Some(victim as i64));
    assert!(p["leader_epoch"].as_i64().unwrap() >= epoch + 2, "{p}");
    net.client(|| send(&cluster.bootstrap(), "netsplit", cut_partition)).expect("it serves again");
}
