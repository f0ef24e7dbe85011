//! A full disk: the metadata quorum survives it. With the data directory on a small tmpfs (in a
//! mount namespace of the broker's own; needs root, as CI runs), filling it makes metadata
//! writes wait and the broker report not ready; freeing space lets them complete, and topics
//! can be created and deleted again, without a restart.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::BrokerProcess;
use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

const WAIT: Duration = Duration::from_secs(60);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ready(broker: &BrokerProcess) -> bool {
    broker.http_get("/health/ready").0.contains("200")
}

/// Creates `topic`, waiting at most `timeout` for the controller.
fn create(bootstrap: &str, topic: &str, timeout: Duration) -> Result<(), String> {
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let t = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    match block_on(admin(bootstrap).create_topics(&[t], &opts)) {
        Ok(results) => {
            results.into_iter().next().unwrap().map(|_| ()).map_err(|(_, e)| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn metadata_writes_resume_after_a_full_disk_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_on_tmpfs(dir.path(), 48);
    let bs = broker.bootstrap();
    create(&bs, "before", WAIT).expect("a topic before the disk fills");

    // Fill the tmpfs the broker's data directory is on.
    let filler = broker.in_broker_ns(&dir.path().join("filler"));
    let mut f = std::fs::File::create(&filler).expect("filler in the broker's namespace");
    let chunk = vec![7u8; 1 << 20];
    loop {
        match f.write_all(&chunk).and_then(|_| f.sync_data()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    // A metadata write now cannot be made durable: it waits (here: times out), and the broker
    // says it is not ready while the quorum retries.
    let during = create(&bs, "during", Duration::from_secs(3));
    assert!(during.is_err(), "created on a full disk?");
    wait_until("not ready on a full disk", || !ready(&broker));
    let (_, metrics) = broker.http_get("/metrics");
    assert!(metrics.contains("sluice_metadata_storage_stalled 1"), "{metrics}");
    // Produce fails alone, with KAFKA_STORAGE_ERROR, and marks the log directory failing.
    let mut c = common::RawConn::connect(&broker);
    let batch = common::client_batch(&[(None, Some(&[5u8; 100_000][..]))]).freeze();
    assert_eq!(c.produce("before", batch.clone()).error_code, 56, "KAFKA_STORAGE_ERROR");
    let (_, metrics) = broker.http_get("/metrics");
    assert!(metrics.contains("sluice_log_dir_failing 1"), "{metrics}");

    // Space returns: the retried write completes and the quorum works again, no restart.
    drop(f);
    std::fs::remove_file(&filler).unwrap();
    wait_until("ready again once space returns", || ready(&broker));
    assert_eq!(c.produce("before", batch).error_code, 0, "produce works again");
    create(&bs, "after", WAIT).expect("a topic after space returned");
    let opts = AdminOptions::new().operation_timeout(Some(WAIT));
    let deleted = block_on(admin(&bs).delete_topics(&["before"], &opts)).unwrap();
    deleted.into_iter().for_each(|r| {
        r.expect("deleting a topic after space returned");
    });
    let (_, metrics) = broker.http_get("/metrics");
    assert!(metrics.contains("sluice_raft_alive 1"), "{metrics}");
    assert!(metrics.contains("sluice_metadata_storage_stalled 0"), "{metrics}");
    assert!(metrics.contains("sluice_log_dir_failing 0"), "{metrics}");
}
