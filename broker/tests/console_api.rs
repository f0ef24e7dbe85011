//! The web console's JSON API (`/api/v1/`) against a cluster of three broker processes, with
//! data written and groups made by librdkafka: every broker answers every page alike, with the
//! offsets of the partitions' leaders and the groups of their coordinators; pages are cut by
//! cursors; a stopped broker is named, and the pages still answer.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{send_to, Cluster};
use common::{against_kafka, create_topic_rf, BrokerProcess};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureProducer;
use serde_json::Value;

fn get(node: &BrokerProcess, path: &str) -> (u16, Value) {
    call(node, "GET", path, &[], "")
}

/// The headers the console's pages send with an action.
const CONSOLE: &[&str] = &["X-Sluice-Console: 1", "Content-Type: application/json"];

fn call(
    node: &BrokerProcess,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, Value) {
    let (status, answer) = node.http_request(method, path, headers, body);
    let code = status.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{path}: {e}: {answer}"));
    (code, value)
}

/// The sum of a group's committed offsets, as the console shows them.
fn committed(node: &BrokerProcess, group: &str) -> i64 {
    let g = ok(node, &format!("/api/v1/groups/{group}"));
    g["offsets"].as_array().unwrap().iter().map(|o| o["committed"].as_i64().unwrap()).sum()
}

/// The error name of an action's only result.
fn outcome(answer: &(u16, Value)) -> (u16, String) {
    let (status, v) = answer;
    assert_eq!(v["results"].as_array().map(Vec::len), Some(1), "{v}");
    (*status, v["results"][0]["error"].as_str().unwrap().to_string())
}

fn ok(node: &BrokerProcess, path: &str) -> Value {
    let (status, v) = get(node, path);
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// An action as the console's pages send it.
fn act(node: &BrokerProcess, method: &str, path: &str, body: &str) -> (u16, Value) {
    call(node, method, path, CONSOLE, body)
}

/// Polls `f` until it gives `Some` (at most 40 s).
fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    common::wait_for(what, Duration::from_secs(40), f)
}

/// A group once the HW of every partition it committed is known (a partition the coordinator
/// does not lead has its HW from the leader, asked every 10 s).
fn with_every_hw(node: &BrokerProcess, group: &str) -> Value {
    wait_for("every HW of the group", || {
        let g = ok(node, &format!("/api/v1/groups/{group}"));
        g["offsets"].as_array().unwrap().iter().all(|o| o["hw"].is_i64()).then_some(g)
    })
}

/// Config `name` of a topic's page.
fn config(topic: &Value, name: &str) -> Value {
    topic["configs"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap()
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", bootstrap).set("acks", "all").create().unwrap()
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("client.id", format!("console-test-{group}"))
        .create()
        .expect("consumer")
}

/// Consumes `n` records through `c`, then commits where it stands.
fn consume_and_commit(c: &BaseConsumer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while got < n {
        assert!(Instant::now() < deadline, "consumed {got} of {n}");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            m.expect("consume");
            got += 1;
        }
    }
    c.commit_consumer_state(CommitMode::Sync).expect("commit");
}

#[test]
fn every_broker_serves_the_console_api_from_the_owners_of_the_data() {
    if against_kafka() {
        return; // Kafka has no admin HTTP server
    }
    let dir = tempfile::tempdir().unwrap();
    // Three offsets partitions, so groups land on different coordinators.
    let mut cluster = Cluster::start(dir.path(), 3, &["offsets.topic.num.partitions=3"]);
    let bootstrap = cluster.bootstrap();
    create_topic_rf(&bootstrap, "orders", 6, 3, &[("retention.ms", "3600000")]);
    create_topic_rf(&bootstrap, "logs", 3, 2, &[]);
    let producer = producer(&bootstrap);
    for p in 0..6 {
        for i in 0..=p {
            send_to(&producer, "orders", p, &format!("{{\"order\": {i}}}")).unwrap();
        }
    }
    // Groups: one stays a member (Stable), the others commit and leave (Empty).
    let groups = ["g-active", "g-done-1", "g-done-2", "g-done-3"];
    let active = consumer(&bootstrap, groups[0]);
    active.subscribe(&["orders"]).unwrap();
    consume_and_commit(&active, 21);
    for g in &groups[1..] {
        let c = consumer(&bootstrap, g);
        c.subscribe(&["orders"]).unwrap();
        consume_and_commit(&c, 21);
        // Then offset 1 of every partition: 1 + 2 + ... + 6 - 6 = 15 records behind.
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..6 {
            tpl.add_partition_offset("orders", p, rdkafka::Offset::Offset(1)).unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).expect("commit");
        drop(c);
    }

    let nodes: Vec<&BrokerProcess> =
        cluster.running().into_iter().map(|id| cluster.node(id)).collect();

    // The overview: every broker with its disk (asked of each broker) and its console address.
    let overview = ok(nodes[0], "/api/v1/cluster");
    assert_eq!(overview["brokers"].as_array().unwrap().len(), 3, "{overview}");
    for b in overview["brokers"].as_array().unwrap() {
        assert!(b["disk"]["capacity_bytes"].as_i64().unwrap() > 0, "{b}");
        let url = b["console_url"].as_str().unwrap();
        let node = cluster.node(b["id"].as_i64().unwrap() as i32);
        assert_eq!(url, format!("http://{}/", node.admin), "each broker registers its admin port");
    }
    assert_eq!(overview["unavailable"], Value::Array(vec![]));
    assert_eq!(overview["counts"]["under_replicated"], 0);
    assert_eq!(overview["counts"]["offline"], 0);
    assert!(overview["counts"]["partitions"].as_i64().unwrap() >= 9 + 3);
    assert_eq!(overview["actions_enabled"], false);
    assert_eq!(overview["quorum"]["voters"].as_array().unwrap().len(), 3);

    // Partitions: the HW and LEO are the leaders', the same whichever broker is asked.
    let first = ok(nodes[0], "/api/v1/topics/orders/partitions");
    for (p, item) in first["items"].as_array().unwrap().iter().enumerate() {
        let n = p as i64 + 1;
        assert_eq!((item["hw"].as_i64(), item["leo"].as_i64()), (Some(n), Some(n)), "{item}");
        assert_eq!(item["log_start"], 0);
        assert_eq!(item["isr"].as_array().unwrap().len(), 3, "{item}");
        assert!(item["size_bytes"].as_u64().unwrap() > 0);
        assert_eq!(item["followers"].as_array().unwrap().len(), 2, "{item}");
    }
    let leaders: BTreeSet<i64> =
        first["items"].as_array().unwrap().iter().map(|i| i["leader"].as_i64().unwrap()).collect();
    assert!(leaders.len() > 1, "the partitions are led by more than one broker: {leaders:?}");
    // What differs by the broker asked, and fetch times, which move.
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("served_by");
        for i in v["items"].as_array_mut().unwrap() {
            i.as_object_mut().unwrap().remove("followers");
        }
        v
    };
    let expected = strip(first.clone());
    for node in &nodes {
        let page = ok(node, "/api/v1/topics/orders/partitions");
        assert_eq!(strip(page), expected, "broker {} differs", node.admin);
    }

    // Pages of partitions and topics follow their cursors.
    let head = ok(nodes[1], "/api/v1/topics/orders/partitions?limit=4");
    assert_eq!((head["items"].as_array().unwrap().len(), &head["next"]), (4, &Value::from(4)));
    let tail = ok(nodes[1], "/api/v1/topics/orders/partitions?from=4&limit=4");
    assert_eq!((tail["items"].as_array().unwrap().len(), &tail["next"]), (2, &Value::Null));
    let topics = ok(nodes[2], "/api/v1/topics?limit=1&internal=false");
    assert_eq!(topics["items"][0]["name"], "logs");
    assert_eq!(topics["total"], 2);
    let next = topics["next"].as_str().unwrap();
    let rest = ok(nodes[2], &format!("/api/v1/topics?limit=1&internal=false&after={next}"));
    assert_eq!(rest["items"][0]["name"], "orders");
    assert_eq!(rest["next"], Value::Null);
    assert_eq!(ok(nodes[2], "/api/v1/topics?prefix=ord")["total"], 1);

    // Sizes are the leaders' shares, summed: they arrive with the first refresh after the writes.
    // (Each broker refreshes its share every 10 s, on its own.)
    let led: u64 =
        first["items"].as_array().unwrap().iter().map(|i| i["size_bytes"].as_u64().unwrap()).sum();
    wait_for("the topic's size: one copy of each partition", || {
        let t = ok(nodes[1], "/api/v1/topics?prefix=orders");
        (t["items"][0]["size_bytes"].as_u64() == Some(led)).then_some(())
    });

    // Topic detail: configs with their sources.
    let detail = ok(nodes[2], "/api/v1/topics/orders");
    assert_eq!(
        (detail["partitions"].as_i64(), detail["replication_factor"].as_i64()),
        (Some(6), Some(3))
    );
    assert_eq!(config(&detail, "retention.ms")["value"], "3600000");
    assert_eq!(config(&detail, "retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(config(&detail, "cleanup.policy")["source"], "DEFAULT_CONFIG");

    // Groups: every one listed by every broker, each described by whichever broker is asked.
    let coordinators: BTreeSet<i64> = wait_for("every group listed", || {
        let list = ok(nodes[0], "/api/v1/groups");
        let items = list["items"].as_array().unwrap();
        (items.len() == groups.len())
            .then(|| items.iter().map(|g| g["coordinator"].as_i64().unwrap()).collect())
    });
    assert!(coordinators.len() > 1, "groups on more than one coordinator: {coordinators:?}");
    for node in &nodes {
        let list = ok(node, "/api/v1/groups?limit=2");
        assert_eq!(list["total"], 4);
        assert_eq!(list["items"].as_array().unwrap().len(), 2);
        let rest = ok(node, &format!("/api/v1/groups?after={}", list["next"].as_str().unwrap()));
        assert_eq!(rest["items"].as_array().unwrap().len(), 2);
        assert_eq!(rest["next"], Value::Null);

        let g = with_every_hw(node, "g-active");
        assert_eq!(g["state"], "Stable", "{g}");
        let members = g["members"].as_array().unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0]["client_id"], "console-test-g-active");
        let assigned: usize = members[0]["assignment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["partitions"].as_array().unwrap().len())
            .sum();
        assert_eq!(assigned, 6, "{g}");
        assert_eq!(g["total_lag"], 0, "{g}");

        let done = with_every_hw(node, "g-done-1");
        assert_eq!(done["state"], "Empty", "{done}");
        let lag: i64 = done["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let (hw, committed) = (o["hw"].as_i64().unwrap(), o["committed"].as_i64().unwrap());
                assert_eq!(o["lag"].as_i64().unwrap(), hw - committed, "{o}");
                hw - committed
            })
            .sum();
        assert_eq!(lag, 21 - 6, "{done}");
        assert_eq!(done["total_lag"], 15);
    }

    // The lag history fills on the coordinator every 10 s.
    wait_for("a lag sample", || {
        let g = ok(nodes[2], "/api/v1/groups/g-done-2");
        let samples = g["lag_history"]["samples"].as_array().cloned().unwrap_or_default();
        samples.last().filter(|s| s[1] == 15).map(|_| ())
    });

    // Messages: read by the partition's leader, whichever broker is asked.
    let record = rdkafka::producer::FutureRecord::to("logs")
        .partition(0)
        .key("k1")
        .payload(&[0xffu8, 0x00][..])
        .headers(
            rdkafka::message::OwnedHeaders::new()
                .insert(rdkafka::message::Header { key: "trace", value: Some("abc") }),
        );
    futures::executor::block_on(producer.send(record, Duration::from_secs(30))).unwrap();
    for node in &nodes {
        let page = ok(node, "/api/v1/topics/orders/messages?partition=5&offset=1&limit=3");
        let offsets: Vec<i64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["offset"].as_i64().unwrap())
            .collect();
        assert_eq!(offsets, [1, 2, 3], "{page}");
        assert_eq!((page["next_offset"].as_i64(), page["hw"].as_i64()), (Some(4), Some(6)));
        assert_eq!(page["items"][0]["value"]["encoding"], "json");
        assert_eq!(page["items"][0]["value"]["data"], "{\n  \"order\": 1\n}");
        assert_eq!(page["items"][0]["key"], Value::Null);
        assert!(page["items"][0]["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        let text = ok(node, "/api/v1/topics/orders/messages?partition=5&offset=5&format=text");
        assert_eq!(text["items"][0]["value"]["data"], "{\"order\": 5}");
        assert_eq!(text["items"].as_array().unwrap().len(), 1, "up to the HW");
        let last = ok(node, "/api/v1/topics/orders/messages?partition=3&limit=2");
        assert_eq!(last["items"][0]["offset"], 2, "without an offset: the last records");
        let by_time = ok(node, "/api/v1/topics/orders/messages?partition=4&timestamp=0&limit=1");
        assert_eq!(by_time["items"][0]["offset"], 0);
        let odd = ok(node, "/api/v1/topics/logs/messages?partition=0&offset=0");
        let m = &odd["items"][0];
        assert_eq!(
            (m["key"]["encoding"].as_str(), m["key"]["data"].as_str()),
            (Some("text"), Some("k1"))
        );
        assert_eq!(
            (m["value"]["encoding"].as_str(), m["value"]["data"].as_str()),
            (Some("hex"), Some("ff00"))
        );
        assert_eq!(
            m["headers"],
            serde_json::json!([{"key": "trace", "value": {"encoding": "text", "data": "abc", "size": 3, "truncated": false}}])
        );
        let hex = ok(node, "/api/v1/topics/logs/messages?partition=0&offset=0&format=hex");
        assert_eq!(hex["items"][0]["key"]["data"], "6b31");
    }
    assert_eq!(get(nodes[0], "/api/v1/topics/orders/messages?partition=9").0, 404);
    assert_eq!(get(nodes[1], "/api/v1/topics/orders/messages?partition=0&limit=101").0, 400);
    assert_eq!(get(nodes[2], "/api/v1/topics/orders/messages?partition=0&format=xml").0, 400);

    // Errors are JSON with the Kafka error's name.
    let (status, missing) = get(nodes[0], "/api/v1/topics/nope");
    assert_eq!((status, missing["error"].as_str()), (404, Some("UNKNOWN_TOPIC_OR_PARTITION")));
    let (status, missing) = get(nodes[0], "/api/v1/groups/nobody");
    assert_eq!((status, missing["error"].as_str()), (404, Some("GROUP_ID_NOT_FOUND")), "{missing}");
    let (status, bad) = get(nodes[0], "/api/v1/topics?limit=0");
    assert_eq!((status, bad["error"].as_str()), (400, Some("INVALID_REQUEST")));
    assert_eq!(get(nodes[0], "/api/v1/nothing").0, 404);
    for (method, path, body) in [
        ("POST", "/api/v1/topics", r#"{"name":"x"}"#),
        ("POST", "/api/v1/topics/orders/partitions", r#"{"count":9}"#),
        ("POST", "/api/v1/topics/orders/configs", r#"{"set":{"retention.ms":"1"}}"#),
        ("DELETE", "/api/v1/topics/orders", ""),
        ("POST", "/api/v1/groups/g-done-3/reset-offsets", r#"{"to":"earliest"}"#),
    ] {
        let (status, off) = act(nodes[0], method, path, body);
        assert_eq!((status, off["error"].as_str()), (403, Some("ACTIONS_DISABLED")), "{off}");
    }
    assert_eq!(ok(nodes[1], "/api/v1/topics/orders")["partitions"], 6);
    assert_eq!(committed(nodes[1], "g-done-3"), 6, "offset 1 of each partition, as committed");
    // Nothing answers a page that came through another host name (DNS rebinding).
    let (status, _) = call(nodes[0], "GET", "/api/v1/cluster", &["Host: evil.example"], "");
    assert_eq!(status, 403);
    assert!(!ok(nodes[0], "/api/v1/topics").to_string().contains("\"x\""));

    // A stopped broker is named; the pages answer without its part.
    drop(active);
    cluster.node_mut(3).stop();
    let node1 = cluster.node(1);
    let overview = wait_for("broker 3 unavailable", || {
        let o = ok(node1, "/api/v1/cluster");
        (o["unavailable"] == serde_json::json!([3])).then_some(o)
    });
    let b3 = overview["brokers"].as_array().unwrap().iter().find(|b| b["id"] == 3).unwrap().clone();
    assert_eq!(b3["disk"], Value::Null);
    let list = ok(node1, "/api/v1/groups");
    assert_eq!(list["unavailable"], serde_json::json!([3]), "{list}");
    ok(node1, "/api/v1/topics/orders/partitions");
    ok(node1, "/api/v1/topics");
    for n in cluster.running() {
        cluster.node(n).assert_no_panic();
    }
}

#[test]
fn console_actions_take_the_kafka_paths_with_their_errors() {
    if against_kafka() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &["console.actions.enable=true"]);
    let bootstrap = cluster.bootstrap();
    let (a, b) = (cluster.node(1), cluster.node(2));

    // Without the console's header, or from a foreign host name, nothing is done.
    let body = r#"{"name":"made","partitions":4,"replication_factor":3}"#;
    let (status, v) = call(a, "POST", "/api/v1/topics", &["Content-Type: application/json"], body);
    assert_eq!((status, v["error"].as_str()), (403, Some("FORBIDDEN")), "{v}");
    let rebound = ["X-Sluice-Console: 1", "Content-Type: application/json", "Host: evil.example"];
    let (status, v) = call(a, "POST", "/api/v1/topics", &rebound, body);
    assert_eq!((status, v["error"].as_str()), (403, Some("FORBIDDEN")), "{v}");
    let (status, v) = call(
        a,
        "POST",
        "/api/v1/topics",
        &["X-Sluice-Console: 1", "Content-Type: text/plain"],
        body,
    );
    assert_eq!((status, v["error"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")), "{v}");
    assert_eq!(get(a, "/api/v1/topics/made").0, 404);

    // Topics: created on one broker, seen on another; Kafka's error codes for what is refused.
    let dry = r#"{"name":"dry","partitions":1,"replication_factor":1,"validate_only":true}"#;
    let (status, v) = act(a, "POST", "/api/v1/topics", dry);
    assert_eq!(status, 200, "{v}");
    assert_eq!(get(a, "/api/v1/topics/dry").0, 404, "validate_only creates nothing");
    assert_eq!(outcome(&act(a, "POST", "/api/v1/topics", body)), (200, "NONE".into()));
    let made = wait_for("the topic on broker 2", || {
        let (status, v) = get(b, "/api/v1/topics/made");
        (status == 200).then_some(v)
    });
    assert_eq!(
        (made["partitions"].as_i64(), made["replication_factor"].as_i64()),
        (Some(4), Some(3))
    );
    assert_eq!(
        outcome(&act(b, "POST", "/api/v1/topics", body)),
        (400, "TOPIC_ALREADY_EXISTS".into())
    );
    let too_many = r#"{"name":"wide","partitions":1,"replication_factor":5}"#;
    assert_eq!(
        outcome(&act(a, "POST", "/api/v1/topics", too_many)),
        (400, "INVALID_REPLICATION_FACTOR".into())
    );
    let bad_name = r#"{"name":"no/slash","partitions":1}"#;
    assert_eq!(
        outcome(&act(a, "POST", "/api/v1/topics", bad_name)),
        (400, "INVALID_TOPIC_EXCEPTION".into())
    );

    // Partitions: more is allowed, fewer is Kafka's INVALID_PARTITIONS.
    assert_eq!(
        outcome(&act(b, "POST", "/api/v1/topics/made/partitions", r#"{"count":6}"#)),
        (200, "NONE".into())
    );
    assert_eq!(ok(b, "/api/v1/topics/made")["partitions"], 6);
    assert_eq!(
        outcome(&act(b, "POST", "/api/v1/topics/made/partitions", r#"{"count":2}"#)),
        (400, "INVALID_PARTITIONS".into())
    );

    // Configs: set, refused when invalid, deleted back to the default.
    let configs = "/api/v1/topics/made/configs";
    let set = act(a, "POST", configs, r#"{"set":{"retention.ms":"60000"}}"#);
    assert_eq!(outcome(&set), (200, "NONE".into()));
    wait_for("the config on broker 2", || {
        let made = ok(b, "/api/v1/topics/made");
        (config(&made, "retention.ms")["value"] == "60000").then_some(())
    });
    let soon = act(a, "POST", configs, r#"{"set":{"retention.ms":"soon"}}"#);
    assert_eq!(outcome(&soon), (400, "INVALID_CONFIG".into()));
    let deleted = act(a, "POST", configs, r#"{"delete":["retention.ms"]}"#);
    assert_eq!(outcome(&deleted), (200, "NONE".into()));
    assert_eq!(config(&ok(a, "/api/v1/topics/made"), "retention.ms")["source"], "DEFAULT_CONFIG");

    // Offsets: an active group is refused; an inactive one is reset to where it is asked.
    let producer = producer(&bootstrap);
    for i in 0..12 {
        send_to(&producer, "made", i % 6, "v").unwrap();
    }
    let c = consumer(&bootstrap, "resettable");
    c.subscribe(&["made"]).unwrap();
    consume_and_commit(&c, 12);
    let to_earliest = r#"{"to":"earliest"}"#;
    let refused = act(a, "POST", "/api/v1/groups/resettable/reset-offsets", to_earliest);
    assert_eq!(outcome(&refused), (400, "NON_EMPTY_GROUP".into()));
    drop(c);
    wait_for("the group to be empty", || {
        (ok(a, "/api/v1/groups/resettable")["state"] == "Empty").then_some(())
    });
    let reset = "/api/v1/groups/resettable/reset-offsets";
    let dry = act(a, "POST", reset, r#"{"to":"earliest","dry_run":true}"#);
    assert_eq!(dry.0, 200, "{}", dry.1);
    assert_eq!(dry.1["offsets"].as_array().unwrap().len(), 6);
    assert!(dry.1["offsets"].as_array().unwrap().iter().all(|o| o["offset"] == 0));
    assert_eq!(committed(b, "resettable"), 12, "a dry run changes nothing");
    let (status, v) = act(b, "POST", reset, to_earliest);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 6);
    assert_eq!(committed(a, "resettable"), 0);
    let future = r#"{"to":"timestamp","timestamp_ms":99999999999999}"#;
    assert_eq!(act(a, "POST", reset, future).0, 200);
    assert_eq!(committed(b, "resettable"), 12, "after the last record: the end");
    // A group nobody used yet (Dead) is given offsets for the topics named.
    let fresh = r#"{"to":"latest","topics":["made"]}"#;
    let (status, v) = act(a, "POST", "/api/v1/groups/fresh/reset-offsets", fresh);
    assert_eq!(status, 200, "{v}");
    assert_eq!(committed(b, "fresh"), 12);
    assert_eq!(ok(b, "/api/v1/groups/fresh")["state"], "Empty");
    let unnamed = act(a, "POST", "/api/v1/groups/nobody/reset-offsets", to_earliest);
    assert_eq!((unnamed.0, unnamed.1["error"].as_str()), (404, Some("GROUP_ID_NOT_FOUND")));
    let (status, v) = act(a, "POST", reset, r#"{"to":"yesterday"}"#);
    assert_eq!((status, v["error"].as_str()), (400, Some("INVALID_REQUEST")));

    // Deleting: gone from every broker.
    assert_eq!(outcome(&act(b, "DELETE", "/api/v1/topics/made", "")), (200, "NONE".into()));
    wait_for("the topic gone from broker 1", || {
        (get(a, "/api/v1/topics/made").0 == 404).then_some(())
    });
    assert_eq!(
        outcome(&act(b, "DELETE", "/api/v1/topics/made", "")),
        (400, "UNKNOWN_TOPIC_OR_PARTITION".into())
    );
    for n in cluster.running() {
        cluster.node(n).assert_no_panic();
    }
}
