//! Network partitions: three nodes, each in a network namespace of its own on one bridge, and
//! the clients in another (tests/common/netns.rs; nothing touches the machine's own network).
//!
//! - The active controller is cut off from everyone: the other two elect a new controller, fence
//!   it when its session expires and take its partition offline (one replica); clients carry on
//!   with the rest. When the network heals it returns, is unfenced, leads its partition again
//!   under a new leader epoch, and every node converges on the same metadata.
//! - The leader of a replicated partition is cut off: it acknowledges nothing on its own, and
//!   truncates what it wrote meanwhile when it returns.

mod common;

use std::time::Duration;

use common::cluster::{broker, controller, leaders, partition, read_partition, send_to, Cluster};
use common::create_topic;
use common::netns::Net;
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;

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
                send_to(&producer_to(&live.join(","), "20000"), "netsplit", part, "v")
                    .expect("the majority's partitions work");
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
    net.client(|| {
        send_to(&producer_to(&cluster.bootstrap(), "20000"), "netsplit", cut_partition, "v")
    })
    .expect("it serves again");
}

fn producer_to(bootstrap: &str, timeout_ms: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", timeout_ms)
        .create()
        .expect("producer")
}

/// The leader of a partition (RF 3, min.insync.replicas 2) is cut off with a client of its own:
/// what that client writes is appended there but never acknowledged, since the other replicas
/// never fetch it. The others fence it, one of them leads and acknowledges new writes. When the
/// network heals, the old leader learns where its log diverges, truncates its unacknowledged
/// tail, catches up and rejoins the ISR; consumers read exactly the acknowledged writes.
#[test]
fn an_isolated_leader_acknowledges_nothing_and_truncates_on_return() {
    let net = Net::create(3);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start_in(&net, dir.path(), 3, &[]);
    let image = net.client(|| {
        common::create_topic_rf(&cluster.bootstrap(), "iso", 1, 3, &[("min.insync.replicas", "2")]);
        let image = cluster.wait_converged(Duration::from_secs(20));
        let p = producer_to(&cluster.bootstrap(), "20000");
        for i in 0..50 {
            send_to(&p, "iso", 0, &format!("a{i}")).expect("acknowledged before the cut");
        }
        image
    });
    let old = leaders(&image, "iso")[&0] as i32;
    let others: Vec<i32> = (1..=3).filter(|&n| n != old).collect();

    net.link(old as usize, false);
    // A client on the old leader's side of the cut: its writes are never acknowledged.
    let isolated = net.run_in(&net.node_ns(old as usize), || {
        let p = producer_to(&cluster.node(old).bootstrap(), "4000");
        (0..5).map(|i| send_to(&p, "iso", 0, &format!("lost{i}"))).collect::<Vec<_>>()
    });
    assert!(isolated.iter().all(Result::is_err), "acknowledged while cut off: {isolated:?}");
    net.client(|| {
        cluster.wait_for_images_on(&others, "a new leader", Duration::from_secs(40), |images| {
            images.values().all(|i| {
                let l = leaders(i, "iso")[&0] as i32;
                others.contains(&l) && broker(i, old)["fenced"] == true
            })
        });
        let live: Vec<String> = others.iter().map(|&n| cluster.node(n).bootstrap()).collect();
        let p = producer_to(&live.join(","), "20000");
        for i in 0..50 {
            send_to(&p, "iso", 0, &format!("b{i}")).expect("acknowledged by the new leader");
        }
    });

    net.link(old as usize, true);
    net.client(|| {
        cluster.wait_for_images(
            "the old leader back in the ISR",
            Duration::from_secs(60),
            |images| {
                images.values().all(|i| {
                    i["topics"]["iso"]["partitions"]["0"]["isr"]
                        .as_array()
                        .is_some_and(|a| a.len() == 3)
                })
            },
        );
        let got = read_partition(&cluster.bootstrap(), "iso", 0, 100);
        let want: Vec<String> =
            (0..50).map(|i| format!("a{i}")).chain((0..50).map(|i| format!("b{i}"))).collect();
        assert_eq!(got, want, "exactly the acknowledged writes");
        // The old leader's log holds the same: its unacknowledged tail is gone.
        let leo = |n: i32| -> Option<i64> {
            let (_, body) = cluster.node(n).http_get("/metrics");
            let prefix = "sluice_log_end_offset{topic=\"iso\",partition=\"0\"} ";
            body.lines().find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while leo(old) != Some(100) {
            assert!(std::time::Instant::now() < deadline, "old leader LEO {:?}", leo(old));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}
