//! Tests of the metadata layer as a whole: openraft's storage suite against our stores, and a
//! real one-voter node started, used, stopped and restarted on the same directory.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::testing::{StoreBuilder, Suite};
use tokio::sync::watch;

use super::log_store::LogStore;
use super::state_machine::StateMachineStore;
use super::types::{StorageError, TypeConfig};
use super::*;

/// Fresh stores in their own temp dir for each suite case.
struct FreshStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for FreshStores {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let log_store = LogStore::open(dir.path()).unwrap();
        let (tx, _rx) = watch::channel(Arc::new(ClusterImage::default()));
        let state_machine = StateMachineStore::open(dir.path(), tx, Default::default()).unwrap();
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn stores_pass_the_openraft_storage_suite() {
    let (tx, rx) = std::sync::mpsc::channel();
    let suite = std::thread::spawn(move || {
        let result = Suite::test_all(FreshStores).map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(result) => result.unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("storage suite timed out"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(suite.join().unwrap_err())
        }
    }
}

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("test timed out")
}

fn config(dir: &std::path::Path) -> MetadataConfig {
    MetadataConfig { host: "broker-1.local".into(), ..MetadataConfig::new(1, dir) }
}

fn topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: -1,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    }
}

/// Everything but this broker's epoch, which changes on every start, and the leader epochs of
/// its partitions: a broker that returns without a controlled shutdown is fenced and elected
/// again, each a new leader epoch (as in Kafka).
fn assert_same_image_across_restart(before: &ClusterImage, after: &ClusterImage) {
    assert_eq!(after.cluster_id, before.cluster_id);
    let epochs_moved = |image: &ClusterImage| {
        let mut topics = image.topics.clone();
        for p in topics.values_mut().flat_map(|t| t.partitions.values_mut()) {
            p.leader_epoch -= 2;
            p.partition_epoch -= 2;
        }
        topics
    };
    assert_eq!(epochs_moved(after), before.topics);
    assert_eq!(after.topic_names_by_id, before.topic_names_by_id);
    assert_eq!(after.next_producer_id, before.next_producer_id);
    assert_eq!(after.controller_id, before.controller_id);
    let (b, a) = (&before.brokers[&1], &after.brokers[&1]);
    assert_eq!(a.epoch, b.epoch + 1, "new broker epoch on each start");
    assert_eq!((&a.host, a.port, &a.rack, a.fenced), (&b.host, b.port, &b.rack, false));
}

/// Creates, alters, grows and deletes topics and hands out producer ids.
async fn make_changes(node: &MetadataNode) {
    let mut a = topic("orders", 3);
    a.configs.insert("retention.ms".into(), "60000".into());
    let results =
        node.create_topics(vec![a, topic("payments", 1), topic("scratch", 2)], false).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    node.alter_configs(
        "payments",
        BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
        false,
    )
    .await
    .unwrap();
    node.incremental_alter_configs(
        "orders",
        vec![("segment.ms".into(), AlterOp::Set, Some("3600000".into()))],
        false,
    )
    .await
    .unwrap();
    let grown = node.create_partitions(vec![("orders".into(), 5, None)], false).await;
    assert_eq!(grown, vec![Ok(())]);
    let deleted = node.delete_topics(vec![TopicRef::Name("scratch".into())]).await;
    assert_eq!(deleted[0].as_ref().unwrap().0, "scratch");
    assert_eq!(node.allocate_producer_ids(1000).await, Ok(0));
    assert_eq!(node.allocate_producer_ids(1000).await, Ok(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_sets_cluster_id_and_registers_an_unfenced_broker() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let node = MetadataNode::start(config(dir.path())).await.unwrap();
        let image = node.image();
        assert_eq!(image.cluster_id.len(), 22);
        assert_eq!(image.controller_id, 1);
        let broker = &image.brokers[&1];
        assert_eq!((broker.epoch, broker.fenced), (0, false));
        assert_eq!((broker.host.as_str(), broker.port), ("broker-1.local", 9092));
        let (term, leader, applied) = node.raft_metrics();
        assert!(term >= 1);
        assert_eq!(leader, Some(1));
        assert!(applied.is_some());
        assert!(dir.path().join(METADATA_DIR).join(log_store::LOG_FILE).exists());
        node.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_cluster_id_is_used_and_a_different_one_later_is_refused() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = MetadataConfig {
            cluster_id: Some("MkU3OEVBNTcwNTJENDM2Qk".into()),
            ..config(dir.path())
        };
        let node = MetadataNode::start(cfg.clone()).await.unwrap();
        assert_eq!(node.image().cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
        node.shutdown().await;
        drop(node);

        let other = MetadataConfig { cluster_id: Some("somethingElse".into()), ..cfg.clone() };
        let err = MetadataNode::start(other).await.unwrap_err();
        assert!(
            matches!(&err, MetadataError::InvalidConfig(m) if m.contains("another cluster")),
            "{err}"
        );

        let node = MetadataNode::start(cfg).await.unwrap();
        node.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_each_change_and_validate_only_changes_nothing() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let node = MetadataNode::start(config(dir.path())).await.unwrap();
        let mut rx = node.subscribe();
        rx.borrow_and_update();

        let before = node.image();
        let r = node.create_topics(vec![topic("t", 2)], true).await;
        assert_eq!(r[0].as_ref().unwrap().partitions.len(), 2);
        let r = node.create_partitions(vec![("nope".into(), 2, None)], true).await;
        assert_eq!(r, vec![Err(MetadataError::UnknownTopic("nope".into()))]);
        assert_eq!(node.image(), before, "validate_only proposes nothing");
        assert!(!rx.has_changed().unwrap());

        let created = node.create_topics(vec![topic("t", 2), topic("t", 1)], false).await;
        assert!(created[0].is_ok());
        assert_eq!(created[1], Err(MetadataError::TopicAlreadyExists("t".into())));
        rx.changed().await.unwrap();
        let seen = rx.borrow_and_update().clone();
        assert_eq!(seen.topics["t"].partitions.len(), 2);
        assert_eq!(seen.topic_by_id(&created[0].as_ref().unwrap().id).unwrap().name, "t");

        let r = node.alter_configs("t", BTreeMap::from([("x".into(), "1".into())]), true).await;
        assert!(matches!(r, Err(MetadataError::InvalidConfig(_))), "{r:?}");
        node.shutdown().await;
        let r = node.create_topics(vec![topic("u", 1)], false).await;
        assert_eq!(r, vec![Err(MetadataError::NotController)]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_the_same_image_from_the_log() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let node = MetadataNode::start(config(dir.path())).await.unwrap();
        make_changes(&node).await;
        let before = node.image();
        assert_eq!(before.topics.keys().collect::<Vec<_>>(), ["orders", "payments"]);
        assert_eq!(before.topics["orders"].partitions.len(), 5);
        node.shutdown().await;
        drop(node);

        let node = MetadataNode::start(config(dir.path())).await.unwrap();
        let after = node.image();
        assert_same_image_across_restart(&before, &after);
        // Allocation continues after the blocks handed out before the restart.
        assert_eq!(node.allocate_producer_ids(10).await, Ok(2000));
        node.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_snapshot_and_log_purge_rebuilds_the_same_image() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let node = MetadataNode::start(config(dir.path())).await.unwrap();
        make_changes(&node).await;

        let raft = node.raft();
        raft.trigger().snapshot().await.unwrap();
        let m = raft
            .wait(Some(Duration::from_secs(20)))
            .metrics(|m| m.snapshot.is_some() && m.snapshot == m.last_applied, "snapshot built")
            .await
            .unwrap();
        let snapshot_index = m.snapshot.unwrap().index;
        raft.trigger().purge_log(snapshot_index).await.unwrap();
        raft.wait(Some(Duration::from_secs(20)))
            .metrics(|m| m.purged.map(|p| p.index) == Some(snapshot_index), "log purged")
            .await
            .unwrap();

        // A change after the snapshot must come back from the log on top of it.
        let r = node.create_topics(vec![topic("after-snapshot", 2)], false).await;
        assert!(r[0].is_ok());
        let before = node.image();
        node.shutdown().await;
        drop(node);

        let node = MetadataNode::start(config(dir.path())).await.unwrap();
        let after = node.image();
        assert_same_image_across_restart(&before, &after);
        let m = node.raft().metrics().borrow().clone();
        assert_eq!(m.purged.map(|p| p.index), Some(snapshot_index), "purge survived restart");
        assert_eq!(m.snapshot.map(|s| s.index), Some(snapshot_index));
        node.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_tolerates_a_torn_tail_in_the_metadata_log() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let node = MetadataNode::start(config(dir.path())).await.unwrap();
        let r = node.create_topics(vec![topic("kept", 1)], false).await;
        assert!(r[0].is_ok());
        node.shutdown().await;
        drop(node);

        // A crash in the middle of an append leaves half a frame behind.
        let path = dir.path().join(METADATA_DIR).join(log_store::LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, b'{', b'"']);
        std::fs::write(&path, &bytes).unwrap();

        let node = MetadataNode::start(config(dir.path())).await.unwrap();
        assert!(node.image().topic("kept").is_some());
        node.shutdown().await;
    })
    .await
}
