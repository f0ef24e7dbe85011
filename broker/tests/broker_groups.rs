//! Consumer groups against the real binary with librdkafka (the `rdkafka` crate) and raw
//! protocol requests: partitions shared out within a group as members join, leave and die
//! (a SIGKILLed child process), every group getting every message, committed offsets
//! surviving consumer and broker restarts (clean and kill -9), `auto.offset.reset`,
//! cooperative-sticky rebalances, consumer lag on `/metrics`, and the group admin APIs with
//! Kafka's error codes.
//!
//! Timeouts are short so the file runs quickly: the broker accepts sessions from 1 s
//! (`group.min.session.timeout.ms`) and delays a new group's first rebalance by 100 ms.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::BrokerProcess;
use futures::executor::block_on;
use kafka_protocol::messages::{self as kp, ApiKey};
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(30);
const SESSION_MS: &str = "3000";
const BROKER_FLAGS: &[&str] = &[
    "--set",
    "group.initial.rebalance.delay.ms=100",
    "--set",
    "group.min.session.timeout.ms=1000",
];

fn start_broker(dir: &std::path::Path) -> BrokerProcess {
    BrokerProcess::start(dir, BROKER_FLAGS)
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    common::create_topic(bootstrap, name, partitions, &[]);
}

/// Sends `per_partition` records to each partition, values `<tag>-<partition>-<i>`.
fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let mut futures = Vec::new();
    for partition in 0..partitions {
        for i in 0..per_partition {
            let value = format!("{tag}-{partition}-{i}");
            let record = FutureRecord::<(), String>::to(topic).partition(partition).payload(&value);
            futures.push(p.send_result(record).map_err(|(e, _)| e).unwrap());
        }
    }
    for f in futures {
        block_on(f).unwrap().unwrap();
    }
}

/// A group consumer with short timeouts; `extra` overrides.
fn group_consumer_with<C: ConsumerContext>(
    bootstrap: &str,
    group: &str,
    extra: &[(&str, &str)],
    context: C,
) -> BaseConsumer<C> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", SESSION_MS)
        .set("heartbeat.interval.ms", "300")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create_with_context(context).unwrap()
}

fn group_consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    group_consumer_with(bootstrap, group, extra, rdkafka::consumer::DefaultConsumerContext)
}

fn assigned<C: ConsumerContext>(c: &BaseConsumer<C>) -> BTreeSet<i32> {
    c.assignment().unwrap().elements().iter().map(|e| e.partition()).collect()
}

/// A record a consumer received.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Got {
    partition: i32,
    offset: i64,
    value: String,
}

/// Polls every consumer once (serving rebalances); returns the records they received.
fn pump<C: ConsumerContext>(consumers: &[&BaseConsumer<C>]) -> Vec<Vec<Got>> {
    consumers
        .iter()
        .map(|c| {
            let mut got = Vec::new();
            let mut wait = Duration::from_millis(20);
            while let Some(m) = c.poll(wait) {
                let m = m.expect("consumer error");
                got.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                });
                wait = Duration::ZERO;
            }
            got
        })
        .collect()
}

/// Pumps until every consumer holds `partitions / n` partitions (the range assignor's even
/// split), all disjoint and together covering every partition.
fn wait_balanced(consumers: &[&BaseConsumer], partitions: i32) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + WAIT;
    loop {
        pump(consumers);
        let sets: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let fair = partitions as usize / consumers.len();
        let rem = partitions as usize % consumers.len();
        let even = sets.iter().all(|s| s.len() == fair || (rem > 0 && s.len() == fair + 1));
        let covered = total == partitions as usize && union.len() == partitions as usize;
        if covered && even && sets.iter().all(|s| !s.is_empty()) {
            return sets;
        }
        assert!(Instant::now() < deadline, "no balanced assignment within {WAIT:?}: {sets:?}");
    }
}

#[test]
fn one_two_three_and_six_members_share_six_partitions_and_leaving_rebalances() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let bs = broker.bootstrap();
    create_topic(&bs, "spread", 6);
    let mut consumers: Vec<BaseConsumer> = Vec::new();
    for n in [1, 2, 3, 6] {
        while consumers.len() < n {
            let c = group_consumer(&bs, "spread-group", &[]);
            c.subscribe(&["spread"]).unwrap();
            consumers.push(c);
        }
        let refs: Vec<&BaseConsumer> = consumers.iter().collect();
        let sets = wait_balanced(&refs, 6);
        assert!(sets.iter().all(|s| s.len() == 6 / n), "{n} members: {sets:?}");
    }
    // A member leaves (close sends LeaveGroup): the others take over its partition.
    drop(consumers.pop());
    let refs: Vec<&BaseConsumer> = consumers.iter().collect();
    let sets = wait_balanced(&refs, 6);
    assert_eq!(sets.len(), 5);
    // Two more leave.
    consumers.truncate(3);
    let refs: Vec<&BaseConsumer> = consumers.iter().collect();
    let sets = wait_balanced(&refs, 6);
    assert!(sets.iter().all(|s| s.len() == 2), "{sets:?}");
}

const CHILD_TEST: &str = "group_member_child";
const ENV_BOOTSTRAP: &str = "SLUICE_GROUP_CHILD_BOOTSTRAP";
const CHILD_RECORDS: usize = 12;

/// Run as a child process by the eviction test: joins group `evict-group`, consumes and
/// synchronously commits [`CHILD_RECORDS`] records, prints `DONE p:offset ...` (its committed
/// offsets), then keeps heartbeating (polling) until it is killed.
#[test]
fn group_member_child() {
    let Ok(bootstrap) = std::env::var(ENV_BOOTSTRAP) else { return };
    let c = group_consumer(&bootstrap, "evict-group", &[]);
    c.subscribe(&["evict"]).unwrap();
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut processed = 0;
    let deadline = Instant::now() + WAIT;
    while processed < CHILD_RECORDS {
        assert!(Instant::now() < deadline, "child: only {processed} records");
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m.unwrap();
            c.commit_message(&m, CommitMode::Sync).unwrap();
            committed.insert(m.partition(), m.offset() + 1);
            processed += 1;
        }
    }
    let line: Vec<String> = committed.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    let mut out = std::io::stdout();
    // A leading newline: libtest may have written "test ... " without one.
    writeln!(out, "\nDONE {}", line.join(" ")).unwrap();
    out.flush().unwrap();
    // Stay in the group (polling keeps it so) without committing anything more.
    let stop = Instant::now() + WAIT;
    while Instant::now() < stop {
        c.poll(Duration::from_millis(100));
    }
}

/// Kills and reaps the child however the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_member_is_evicted_after_its_session_timeout_and_survivors_consume_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // At info level the coordinator logs why each member leaves, which is what is checked
    // below (rather than how long the eviction took, which depends on the machine).
    let broker = BrokerProcess::start_logging(dir.path(), BROKER_FLAGS, "info");
    let bs = broker.bootstrap();
    create_topic(&bs, "evict", 6);
    produce(&bs, "evict", 6, 30, "before");
    let a1 = group_consumer(&bs, "evict-group", &[]);
    let a2 = group_consumer(&bs, "evict-group", &[]);
    a1.subscribe(&["evict"]).unwrap();
    a2.subscribe(&["evict"]).unwrap();
    wait_balanced(&[&a1, &a2], 6);
    let mut seen: BTreeSet<(i32, i64)> = BTreeSet::new();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(ENV_BOOTSTRAP, &bs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut guard = ChildGuard(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The survivors keep polling (and so rebalancing) while the child joins and commits.
    let deadline = Instant::now() + WAIT;
    let child_commits: BTreeMap<i32, i64> = loop {
        for got in pump(&[&a1, &a2]) {
            seen.extend(got.iter().map(|g| (g.partition, g.offset)));
        }
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(line) => {
                if let Some(rest) = line.trim().strip_prefix("DONE ") {
                    break rest
                        .split_whitespace()
                        .map(|kv| {
                            let (p, o) = kv.split_once(':').unwrap();
                            (p.parse().unwrap(), o.parse().unwrap())
                        })
                        .collect();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => panic!("the child exited: {:?}", guard.0.wait()),
        }
        assert!(Instant::now() < deadline, "the child never finished its records");
    };
    // The child holds a share of the partitions: the survivors have only the rest.
    let survivors: BTreeSet<i32> = assigned(&a1).union(&assigned(&a2)).copied().collect();
    assert!(survivors.len() < 6, "the child owns partitions: {survivors:?}");
    assert!(child_commits.keys().all(|p| !survivors.contains(p)));

    // The group's members as the coordinator sees them: the child and the two survivors.
    let mut raw = Raw::connect(&broker);
    let mut stable_members = |want: usize, seen: &mut BTreeSet<(i32, i64)>| -> BTreeSet<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            for got in pump(&[&a1, &a2]) {
                seen.extend(got.iter().map(|g| (g.partition, g.offset)));
            }
            let described: kp::DescribeGroupsResponse = raw.call(
                ApiKey::DescribeGroups,
                5,
                &kp::DescribeGroupsRequest::default().with_groups(vec![gid("evict-group")]),
            );
            let g = &described.groups[0];
            let members: BTreeSet<String> =
                g.members.iter().map(|m| m.member_id.to_string()).collect();
            if g.group_state.as_str() == "Stable" && members.len() == want {
                return members;
            }
            assert!(Instant::now() < deadline, "never {want} stable members: {g:?}");
        }
    };
    let before = stable_members(3, &mut seen);

    guard.0.kill().unwrap(); // SIGKILL: no LeaveGroup.
    guard.0.wait().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        for got in pump(&[&a1, &a2]) {
            seen.extend(got.iter().map(|g| (g.partition, g.offset)));
        }
        let union: BTreeSet<i32> = assigned(&a1).union(&assigned(&a2)).copied().collect();
        if union.len() == 6 && !assigned(&a1).is_empty() && !assigned(&a2).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the dead member was never evicted");
    }
    // Exactly the dead member was removed, and because its session expired: not when its
    // connections dropped, nor as a member that failed to rejoin. (When a session expires,
    // measured on an injected clock, is covered by the coordinator's unit tests.)
    let after = stable_members(2, &mut seen);
    assert!(after.is_subset(&before), "the survivors keep their member ids: {before:?} {after:?}");
    let evicted: Vec<&String> = before.difference(&after).collect();
    assert_eq!(evicted.len(), 1, "{before:?} -> {after:?}");
    let member = format!("member={}", evicted[0]);
    let deadline = Instant::now() + WAIT;
    let reasons = loop {
        let reasons: Vec<String> = broker
            .log_lines()
            .into_iter()
            .filter(|l| l.contains(&member) && l.contains("evict-group"))
            .collect();
        if reasons.iter().any(|l| l.contains("member session expired; removing it")) {
            break reasons;
        }
        assert!(Instant::now() < deadline, "no session expiry logged for {member}: {reasons:#?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !reasons
            .iter()
            .any(|l| l.contains("member left the group") || l.contains("did not rejoin")),
        "{reasons:#?}"
    );

    produce(&bs, "evict", 6, 20, "after");
    let deadline = Instant::now() + WAIT;
    loop {
        for got in pump(&[&a1, &a2]) {
            seen.extend(got.iter().map(|g| (g.partition, g.offset)));
        }
        // Every record is either committed by the dead member or consumed by a survivor.
        let missing: Vec<(i32, i64)> = (0..6)
            .flat_map(|p| (0..50).map(move |o| (p, o)))
            .filter(|(p, o)| {
                *o >= child_commits.get(p).copied().unwrap_or(0) && !seen.contains(&(*p, *o))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "survivors never consumed {missing:?}");
    }
}

#[test]
fn two_groups_each_receive_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let bs = broker.bootstrap();
    create_topic(&bs, "fanout", 3);
    produce(&bs, "fanout", 3, 100, "m");
    let a = group_consumer(&bs, "fanout-a", &[]);
    let b = group_consumer(&bs, "fanout-b", &[]);
    a.subscribe(&["fanout"]).unwrap();
    b.subscribe(&["fanout"]).unwrap();
    let (mut got_a, mut got_b) = (BTreeSet::new(), BTreeSet::new());
    let deadline = Instant::now() + WAIT;
    while got_a.len() < 300 || got_b.len() < 300 {
        let got = pump(&[&a, &b]);
        got_a.extend(got[0].iter().map(|g| g.value.clone()));
        got_b.extend(got[1].iter().map(|g| g.value.clone()));
        assert!(Instant::now() < deadline, "a: {}, b: {} of 300", got_a.len(), got_b.len());
    }
    assert_eq!(got_a, got_b);
}

/// Consumes until `n` records arrived (bounded).
fn consume_n<C: ConsumerContext>(c: &BaseConsumer<C>, n: usize) -> Vec<Got> {
    consume(c, n, false)
}

/// Consumes `n` records; with `store`, marks each one processed (`store_offset`) so that
/// auto-commit with `enable.auto.offset.store=false` commits exactly these.
fn consume<C: ConsumerContext>(c: &BaseConsumer<C>, n: usize, store: bool) -> Vec<Got> {
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while out.len() < n {
        let m = match c.poll(Duration::from_millis(100)) {
            Some(m) => m.expect("consumer error"),
            None => {
                assert!(Instant::now() < deadline, "{} of {n} records", out.len());
                continue;
            }
        };
        if store {
            c.store_offset_from_message(&m).unwrap();
        }
        out.push(Got {
            partition: m.partition(),
            offset: m.offset(),
            value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
        });
    }
    out
}

/// Polls (serving the consumer's events) until the group's committed offsets, read back with
/// OffsetFetch, are `want`.
fn wait_committed<C: ConsumerContext>(c: &BaseConsumer<C>, want: &BTreeMap<i32, i64>, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        c.poll(Duration::from_millis(50));
        let committed = c.committed(Duration::from_secs(10)).unwrap();
        let at: BTreeMap<i32, i64> = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect();
        if want.iter().all(|(p, o)| at.get(p) == Some(o)) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never stored {want:?}: {at:?}");
    }
}

/// Checks that `batch` continues exactly where the previous phases stopped (per partition),
/// then records where it stopped.
fn continues(next: &mut BTreeMap<i32, i64>, batch: &[Got], what: &str) {
    for g in batch {
        let want = next.get(&g.partition).copied().unwrap_or(0);
        assert_eq!(g.offset, want, "{what}: partition {} resumed at the wrong offset", g.partition);
        next.insert(g.partition, g.offset + 1);
    }
}

#[test]
fn consumption_resumes_at_committed_offsets_across_consumer_and_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start_broker(dir.path());
    let bs = broker.bootstrap();
    create_topic(&bs, "resume", 2);
    produce(&bs, "resume", 2, 50, "r");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();

    // 1. Manual synchronous commit, then the consumer goes away.
    let c = group_consumer(&bs, "resume-group", &[]);
    c.subscribe(&["resume"]).unwrap();
    let batch = consume_n(&c, 30);
    continues(&mut next, &batch, "first consumer");
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(c);

    // 2. A new consumer resumes there; asynchronous commit.
    let c = group_consumer(&bs, "resume-group", &[]);
    c.subscribe(&["resume"]).unwrap();
    let batch = consume_n(&c, 20);
    continues(&mut next, &batch, "after a consumer restart (sync commit)");
    c.commit_consumer_state(CommitMode::Async).unwrap();
    wait_committed(&c, &next, "the async commit");
    drop(c);

    // 3. Clean broker restart; auto-commit.
    assert_eq!(broker.stop(), Some(0));
    broker.restart();
    let bs = broker.bootstrap();
    // Records processed are marked with store_offset; the auto-commit commits those.
    let auto = [
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "100"),
        ("enable.auto.offset.store", "false"),
    ];
    let c = group_consumer(&bs, "resume-group", &auto);
    c.subscribe(&["resume"]).unwrap();
    let batch = consume(&c, 20, true);
    continues(&mut next, &batch, "after a clean broker restart (async commit)");
    wait_committed(&c, &next, "the auto-commit");
    // 4. The broker crashes with the consumer still in the group; a new consumer after the
    // restart resumes at the auto-committed offsets.
    broker.kill9();
    broker.restart();
    // Closed only now: librdkafka's close commits and leaves the group first, and with no
    // broker to answer it would wait for ever.
    drop(c);
    let bs = broker.bootstrap();
    let c = group_consumer(&bs, "resume-group", &[]);
    c.subscribe(&["resume"]).unwrap();
    let batch = consume_n(&c, 30);
    continues(&mut next, &batch, "after kill -9 of the broker (auto commit)");
    assert_eq!(next, BTreeMap::from([(0, 50), (1, 50)]), "every record exactly once");
}

#[test]
fn auto_offset_reset_earliest_latest_and_none_behave_as_in_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let bs = broker.bootstrap();
    create_topic(&bs, "reset", 1);
    produce(&bs, "reset", 1, 5, "old");

    let earliest = group_consumer(&bs, "reset-earliest", &[("auto.offset.reset", "earliest")]);
    earliest.subscribe(&["reset"]).unwrap();
    assert_eq!(consume_n(&earliest, 1)[0].offset, 0);

    // latest: only records produced after the group started reading.
    let latest = group_consumer(&bs, "reset-latest", &[("auto.offset.reset", "latest")]);
    latest.subscribe(&["reset"]).unwrap();
    let deadline = Instant::now() + WAIT;
    let first = loop {
        produce(&bs, "reset", 1, 1, "new");
        if let Some(m) = latest.poll(Duration::from_millis(300)) {
            let m = m.unwrap();
            break (m.offset(), String::from_utf8_lossy(m.payload().unwrap()).into_owned());
        }
        assert!(Instant::now() < deadline, "latest consumer got nothing");
    };
    assert!(first.0 >= 5 && first.1.starts_with("new"), "{first:?}");

    // none (librdkafka: "error"): no committed offset is an error...
    let none = group_consumer(&bs, "reset-none", &[("auto.offset.reset", "error")]);
    none.subscribe(&["reset"]).unwrap();
    let deadline = Instant::now() + WAIT;
    let err = loop {
        match none.poll(Duration::from_millis(100)) {
            Some(Err(e)) => break e,
            Some(Ok(m)) => panic!("consumed offset {} without a committed offset", m.offset()),
            None => assert!(Instant::now() < deadline, "no error for a missing offset"),
        }
    };
    assert!(
        matches!(err, KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)),
        "{err:?}"
    );
    drop(none);
    // ...but a committed offset is used. Commit one outside group management (generation -1,
    // as admin tools do), then consume with the same setting.
    let admin = group_consumer(&bs, "reset-none", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("reset", 0, Offset::Offset(3)).unwrap();
    admin.commit(&tpl, CommitMode::Sync).unwrap();
    drop(admin);
    let none = group_consumer(&bs, "reset-none", &[("auto.offset.reset", "error")]);
    none.subscribe(&["reset"]).unwrap();
    assert_eq!(consume_n(&none, 1)[0].offset, 3);
}

/// Records every revocation a consumer goes through.
#[derive(Clone, Default)]
struct Revocations(Arc<Mutex<Vec<BTreeSet<i32>>>>);

impl ClientContext for Revocations {}

impl ConsumerContext for Revocations {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let set = tpl.elements().iter().map(|e| e.partition()).collect();
            self.0.lock().unwrap().push(set);
        }
    }
}

#[test]
fn cooperative_sticky_rebalances_keep_unaffected_partitions_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let bs = broker.bootstrap();
    create_topic(&bs, "sticky", 6);
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];
    let revoked = Revocations::default();
    let a = group_consumer_with(&bs, "sticky-group", &cooperative, revoked.clone());
    a.subscribe(&["sticky"]).unwrap();
    let deadline = Instant::now() + WAIT;
    while assigned(&a).len() < 6 {
        pump(&[&a]);
        assert!(Instant::now() < deadline, "the first member never got every partition");
    }
    let b = group_consumer_with(&bs, "sticky-group", &cooperative, Revocations::default());
    b.subscribe(&["sticky"]).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut a_min = 6;
    loop {
        pump(&[&a]);
        pump(&[&b]);
        let (sa, sb) = (assigned(&a), assigned(&b));
        a_min = a_min.min(sa.len());
        if sa.len() == 3 && sb.len() == 3 && sa.is_disjoint(&sb) {
            break;
        }
        assert!(Instant::now() < deadline, "no 3/3 split: {sa:?} {sb:?}");
    }
    // The first member only ever gave up the three partitions that moved.
    let revocations = revoked.0.lock().unwrap().clone();
    let moved: BTreeSet<i32> = assigned(&b);
    assert_eq!(revocations, vec![moved], "incremental revocation only");
    assert_eq!(a_min, 3, "the first member kept its other partitions throughout");
}

#[test]
fn static_members_rejoin_without_rebalance_and_a_duplicate_instance_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let bs = broker.bootstrap();
    create_topic(&bs, "static", 4);
    let revoked = Revocations::default();
    let a =
        group_consumer_with(&bs, "static-group", &[("group.instance.id", "i-a")], revoked.clone());
    let b = group_consumer(&bs, "static-group", &[("group.instance.id", "i-b")]);
    a.subscribe(&["static"]).unwrap();
    b.subscribe(&["static"]).unwrap();
    let deadline = Instant::now() + WAIT;
    while !(assigned(&a).len() == 2 && assigned(&b).len() == 2) {
        pump(&[&a]);
        pump(&[&b]);
        assert!(Instant::now() < deadline, "no 2/2 split");
    }
    let (kept_a, kept_b) = (assigned(&a), assigned(&b));
    let revocations_before = revoked.0.lock().unwrap().len();

    // A static member closing does not leave (KIP-345); its restart within the session
    // timeout gets its partitions back with no rebalance for the others.
    drop(b);
    let b2 = group_consumer(&bs, "static-group", &[("group.instance.id", "i-b")]);
    b2.subscribe(&["static"]).unwrap();
    let deadline = Instant::now() + WAIT;
    while assigned(&b2) != kept_b {
        pump(&[&a]);
        pump(&[&b2]);
        assert!(Instant::now() < deadline, "the restarted static member never got {kept_b:?}");
    }
    for _ in 0..10 {
        pump(&[&a]);
    }
    assert_eq!(assigned(&a), kept_a);
    assert_eq!(revoked.0.lock().unwrap().len(), revocations_before, "no rebalance happened");

    // A second live consumer with the same group.instance.id fences the first.
    let b3 = group_consumer(&bs, "static-group", &[("group.instance.id", "i-b")]);
    b3.subscribe(&["static"]).unwrap();
    let deadline = Instant::now() + WAIT;
    let fenced = loop {
        pump(&[&b3]);
        if let Some(Err(e)) = b2.poll(Duration::from_millis(20)) {
            break e;
        }
        assert!(Instant::now() < deadline, "the older instance was never fenced");
    };
    assert!(matches!(fenced, KafkaError::MessageConsumptionFatal(_)), "{fenced:?}");
    let (code, _) = b2.client().fatal_error().expect("a fatal error");
    assert_eq!(code, RDKafkaErrorCode::FencedInstanceId);
}

#[test]
fn metrics_show_lag_falling_to_zero_once_the_group_catches_up() {
    if common::against_kafka() {
        return; // Sluice's own metrics
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let bs = broker.bootstrap();
    create_topic(&bs, "lagging", 2);
    produce(&bs, "lagging", 2, 50, "l");
    let c = group_consumer(&bs, "lag-group", &[]);
    c.subscribe(&["lagging"]).unwrap();
    let mut next = BTreeMap::new();
    continues(&mut next, &consume_n(&c, 30), "lag consumer");
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    let lag = |body: &str| -> i64 {
        body.lines()
            .filter(|l| l.starts_with("sluice_consumer_group_lag{group=\"lag-group\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
            .sum()
    };
    let (_, body) = broker.http_get("/metrics");
    let committed: i64 = next.values().sum();
    // Partitions without a committed offset yet have no lag series: count only committed.
    let expected: i64 = next.keys().map(|_| 50).sum::<i64>() - committed;
    assert_eq!(lag(&body), expected, "{body}");
    assert!(body.contains(r#"sluice_consumer_group_members{group="lag-group"} 1"#), "{body}");
    assert!(body.contains(r#"sluice_consumer_group_state{group="lag-group",state="Stable"} 1"#));
    assert!(body.contains(r#"sluice_consumer_group_rebalances_total{group="lag-group"} 1"#));
    let topic_lag = format!(
        r#"sluice_consumer_group_topic_lag{{group="lag-group",topic="lagging"}} {expected}"#
    );
    assert!(body.contains(&topic_lag), "{topic_lag} in {body}");
    // Lag in seconds: the age of the first record not consumed, where there is one.
    let ages: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("sluice_consumer_group_lag_seconds{group=\"lag-group\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ages.len(), next.len(), "{body}");
    assert!(ages.iter().any(|a| *a > 0.0) && ages.iter().all(|a| *a < 600.0), "{ages:?}");

    continues(&mut next, &consume_n(&c, 100 - 30), "lag consumer");
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    let (_, body) = broker.http_get("/metrics");
    assert_eq!(lag(&body), 0, "{body}");
    for p in 0..2 {
        let line = format!(
            r#"sluice_consumer_group_lag_seconds{{group="lag-group",topic="lagging",partition="{p}"}} 0"#
        );
        assert!(body.contains(&line), "{line} in {body}");
    }
    for p in 0..2 {
        let line = format!(
            r#"sluice_consumer_group_committed_offset{{group="lag-group",topic="lagging",partition="{p}"}} 50"#
        );
        assert!(body.contains(&line), "{line} in {body}");
    }
}

/// Deleting a topic removes the groups' committed offsets for it, as Kafka does: no lag or
/// committed-offset series for it, OffsetFetch of all topics no longer lists it (also after a
/// restart, which replays `__consumer_offsets`); the groups stay (Kafka 4.4 keeps a group whose
/// only offsets were on the topic, until offset retention).
#[test]
fn deleting_a_topic_removes_the_groups_offsets_for_it() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start_broker(dir.path());
    let bs = broker.bootstrap();
    create_topic(&bs, "doomed", 1);
    create_topic(&bs, "kept", 1);
    produce(&bs, "doomed", 1, 10, "d");
    produce(&bs, "kept", 1, 10, "k");
    for (group, topics) in [("both", &["doomed", "kept"][..]), ("only-doomed", &["doomed"][..])] {
        let c = group_consumer(&bs, group, &[]);
        c.subscribe(topics).unwrap();
        consume_n(&c, 10 * topics.len());
        c.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    if !common::against_kafka() {
        let (_, body) = broker.http_get("/metrics");
        assert!(body.contains(r#"group="both",topic="doomed""#), "{body}");
    }

    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &bs).create().unwrap();
    let opts = AdminOptions::new();
    for r in futures::executor::block_on(admin.delete_topics(&["doomed"], &opts)).unwrap() {
        r.unwrap();
    }
    let check = |broker: &BrokerProcess| {
        if !common::against_kafka() {
            let (_, body) = broker.http_get("/metrics");
            assert!(!body.contains(r#"topic="doomed""#), "offsets of a deleted topic:\n{body}");
            assert!(body.contains(r#"group="both",topic="kept""#), "{body}");
        }
        let mut raw = Raw::connect(broker);
        // After a restart the coordinator may still be loading its groups: wait (bounded).
        let deadline = Instant::now() + WAIT;
        loop {
            let listed: kp::ListGroupsResponse =
                raw.call(ApiKey::ListGroups, 4, &kp::ListGroupsRequest::default());
            let groups: Vec<String> =
                listed.groups.iter().map(|g| g.group_id.to_string()).collect();
            if groups.iter().any(|g| g == "only-doomed") {
                break;
            }
            assert!(Instant::now() < deadline, "groups stay: {groups:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Kafka removes the offsets once the deletion reaches its coordinator: wait (bounded).
        for (group, expected) in [("both", vec!["kept"]), ("only-doomed", vec![])] {
            loop {
                let fetched: kp::OffsetFetchResponse = raw.call(
                    ApiKey::OffsetFetch,
                    7,
                    &kp::OffsetFetchRequest::default().with_group_id(gid(group)).with_topics(None),
                );
                let topics: Vec<String> =
                    fetched.topics.iter().map(|t| t.name.to_string()).collect();
                if topics == expected || Instant::now() > deadline {
                    assert_eq!(topics, expected, "{group}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    check(&broker);
    broker.stop();
    broker.restart();
    check(&broker);
}

// ---------------------------------------------------------------------------------------------
// Raw protocol: versions and error codes the clients above do not exercise.

use common::RawConn as Raw;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> kp::GroupId {
    kp::GroupId(s(v))
}

/// JoinGroup v4+ with the KIP-394 round trip; returns (member id, generation).
fn raw_join(raw: &mut Raw, group: &str, version: i16) -> (StrBytes, i32) {
    let protocol = kp::join_group_request::JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]));
    let req = kp::JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![protocol]);
    // Kafka answers COORDINATOR_LOAD_IN_PROGRESS until the group's __consumer_offsets
    // partition is loaded (FindCoordinator already names it): retry, as clients do.
    let deadline = Instant::now() + WAIT;
    let first = loop {
        let first: kp::JoinGroupResponse = raw.call(ApiKey::JoinGroup, version, &req);
        if first.error_code != 14 || Instant::now() > deadline {
            break first;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    assert!(!first.member_id.is_empty());
    let second: kp::JoinGroupResponse =
        raw.call(ApiKey::JoinGroup, version, &req.with_member_id(first.member_id.clone()));
    assert_eq!(second.error_code, 0);
    assert_eq!(second.member_id, first.member_id);
    assert_eq!(second.leader, first.member_id);
    assert_eq!(second.members.len(), 1);
    (second.member_id, second.generation_id)
}

#[test]
fn group_apis_answer_every_version_with_kafkas_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    create_topic(&broker.bootstrap(), "t", 2);
    let mut raw = Raw::connect(&broker);

    // FindCoordinator: v0 creates __consumer_offsets and names this broker; v4 is batched.
    // Kafka answers COORDINATOR_NOT_AVAILABLE while it creates the topic: retry, as clients do.
    let deadline = Instant::now() + WAIT;
    let found = loop {
        let found: kp::FindCoordinatorResponse = raw.call(
            ApiKey::FindCoordinator,
            0,
            &kp::FindCoordinatorRequest::default().with_key(s("raw")),
        );
        if found.error_code != 15 || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((found.error_code, found.port), (0, broker.kafka.port() as i32));
    let batched: kp::FindCoordinatorResponse = raw.call(
        ApiKey::FindCoordinator,
        4,
        &kp::FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b")]),
    );
    assert_eq!(batched.coordinators.len(), 2);
    assert!(batched.coordinators.iter().all(|c| c.error_code == 0 && c.node_id.0 == 1));
    // Sluice has no transaction coordinator: the lookup fails fast (Kafka has one).
    if !common::against_kafka() {
        let txn: kp::FindCoordinatorResponse = raw.call(
            ApiKey::FindCoordinator,
            4,
            &kp::FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("tx")]),
        );
        assert_eq!(
            txn.coordinators[0].error_code, 53,
            "TRANSACTIONAL_ID_AUTHORIZATION_FAILED: transactions fail fast until they exist"
        );
    }
    let md: kp::MetadataResponse = raw.call(
        ApiKey::Metadata,
        12,
        &kp::MetadataRequest::default()
            .with_topics(Some(vec![kp::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(kp::TopicName(s("__consumer_offsets"))))])),
    );
    assert!(md.topics[0].is_internal);
    // offsets.topic.num.partitions: 50 by default; the reference Kafka runs with 1.
    let partitions = if common::against_kafka() { 1 } else { 50 };
    assert_eq!(md.topics[0].partitions.len(), partitions);

    // Join, sync, heartbeat, commit at v9/v5/v4 (the Java 4.x client's versions).
    let (member, generation) = raw_join(&mut raw, "raw", 9);
    let sync: kp::SyncGroupResponse = raw.call(
        ApiKey::SyncGroup,
        5,
        &kp::SyncGroupRequest::default()
            .with_group_id(gid("raw"))
            .with_generation_id(generation)
            .with_member_id(member.clone())
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(vec![kp::sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(member.clone())
                .with_assignment(Bytes::from_static(b"assignment"))]),
    );
    assert_eq!((sync.error_code, sync.assignment.as_ref()), (0, &b"assignment"[..]));
    assert_eq!(sync.protocol_name.as_deref(), Some("range"));
    let hb = |raw: &mut Raw, generation: i32, member: &StrBytes| -> i16 {
        let r: kp::HeartbeatResponse = raw.call(
            ApiKey::Heartbeat,
            4,
            &kp::HeartbeatRequest::default()
                .with_group_id(gid("raw"))
                .with_generation_id(generation)
                .with_member_id(member.clone()),
        );
        r.error_code
    };
    assert_eq!(hb(&mut raw, generation, &member), 0);
    assert_eq!(hb(&mut raw, generation + 1, &member), 22, "ILLEGAL_GENERATION");
    assert_eq!(hb(&mut raw, generation, &s("nobody")), 25, "UNKNOWN_MEMBER_ID");
    let commit = |topic: &str, generation: i32, version: i16, group: &str| {
        kp::OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(member.clone())
            .with_topics(vec![kp::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(kp::TopicName(s(topic)))
                .with_partitions(vec![
                    kp::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(42)
                        .with_committed_leader_epoch(if version >= 6 { 0 } else { -1 })
                        .with_committed_metadata(Some(s("meta"))),
                ])])
    };
    let r: kp::OffsetCommitResponse =
        raw.call(ApiKey::OffsetCommit, 9, &commit("t", generation, 9, "raw"));
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r: kp::OffsetCommitResponse =
        raw.call(ApiKey::OffsetCommit, 9, &commit("nope", generation, 9, "raw"));
    assert_eq!(r.topics[0].partitions[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let r: kp::OffsetCommitResponse =
        raw.call(ApiKey::OffsetCommit, 9, &commit("t", 5, 9, "no-such-group"));
    assert_eq!(r.topics[0].partitions[0].error_code, 69, "v9: GROUP_ID_NOT_FOUND");
    let r: kp::OffsetCommitResponse =
        raw.call(ApiKey::OffsetCommit, 2, &commit("t", 5, 2, "no-such-group"));
    assert_eq!(r.topics[0].partitions[0].error_code, 22, "before v9: ILLEGAL_GENERATION");

    // OffsetFetch: v1 (per topic), v8 (several groups at once), all topics (null).
    let fetch_v1: kp::OffsetFetchResponse = raw.call(
        ApiKey::OffsetFetch,
        1,
        &kp::OffsetFetchRequest::default().with_group_id(gid("raw")).with_topics(Some(vec![
            kp::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(kp::TopicName(s("t")))
                .with_partition_indexes(vec![0, 1]),
        ])),
    );
    let offsets: Vec<i64> =
        fetch_v1.topics[0].partitions.iter().map(|p| p.committed_offset).collect();
    assert_eq!(offsets, vec![-1, 42]);
    let fetch_v8: kp::OffsetFetchResponse = raw.call(
        ApiKey::OffsetFetch,
        8,
        &kp::OffsetFetchRequest::default().with_groups(vec![
            kp::offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(gid("raw"))
                .with_topics(None),
            kp::offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(gid("empty"))
                .with_topics(None),
        ]),
    );
    assert_eq!(fetch_v8.groups.len(), 2);
    let p = &fetch_v8.groups[0].topics[0].partitions[0];
    assert_eq!((p.partition_index, p.committed_offset, p.committed_leader_epoch), (1, 42, 0));
    assert_eq!(p.metadata.as_deref(), Some("meta"));
    assert!(fetch_v8.groups[1].topics.is_empty());

    // ListGroups with a state filter, DescribeGroups old and new.
    let listed: kp::ListGroupsResponse = raw.call(
        ApiKey::ListGroups,
        5,
        &kp::ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
    );
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(
        (listed.groups[0].group_id.as_str(), listed.groups[0].group_state.as_str()),
        ("raw", "Stable")
    );
    let listed: kp::ListGroupsResponse = raw.call(
        ApiKey::ListGroups,
        5,
        &kp::ListGroupsRequest::default().with_states_filter(vec![s("Empty")]),
    );
    assert!(listed.groups.is_empty());
    let described: kp::DescribeGroupsResponse = raw.call(
        ApiKey::DescribeGroups,
        5,
        &kp::DescribeGroupsRequest::default().with_groups(vec![gid("raw"), gid("ghost")]),
    );
    let g = &described.groups[0];
    assert_eq!(
        (g.group_state.as_str(), g.protocol_type.as_str(), g.protocol_data.as_str()),
        ("Stable", "consumer", "range")
    );
    assert_eq!(g.members[0].client_id.as_str(), "raw-test", "the client id of the join");
    assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(g.members[0].member_assignment.as_ref(), b"assignment");
    assert_eq!(
        (described.groups[1].error_code, described.groups[1].group_state.as_str()),
        (0, "Dead")
    );
    let described: kp::DescribeGroupsResponse = raw.call(
        ApiKey::DescribeGroups,
        6,
        &kp::DescribeGroupsRequest::default().with_groups(vec![gid("ghost")]),
    );
    assert_eq!(described.groups[0].error_code, 69, "v6: GROUP_ID_NOT_FOUND");

    // OffsetDelete refuses a subscribed topic; DeleteGroups refuses a group with members.
    let delete_offsets = |raw: &mut Raw| -> kp::OffsetDeleteResponse {
        raw.call(
            ApiKey::OffsetDelete,
            0,
            &kp::OffsetDeleteRequest::default().with_group_id(gid("raw")).with_topics(vec![
                kp::offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(kp::TopicName(s("t")))
                    .with_partitions(vec![
                        kp::offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(1),
                    ]),
            ]),
        )
    };
    let r = delete_offsets(&mut raw);
    assert_eq!(r.topics[0].partitions[0].error_code, 86, "GROUP_SUBSCRIBED_TO_TOPIC");
    let deleted: kp::DeleteGroupsResponse = raw.call(
        ApiKey::DeleteGroups,
        2,
        &kp::DeleteGroupsRequest::default().with_groups_names(vec![gid("raw"), gid("ghost")]),
    );
    // Results are keyed by group id; Kafka does not keep the request's order.
    let mut codes: Vec<(&str, i16)> =
        deleted.results.iter().map(|r| (r.group_id.as_str(), r.error_code)).collect();
    codes.sort();
    assert_eq!(codes, vec![("ghost", 69), ("raw", 68)], "GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP");

    // LeaveGroup v5 (batched): the group becomes empty; then both deletions work.
    let left: kp::LeaveGroupResponse = raw.call(
        ApiKey::LeaveGroup,
        5,
        &kp::LeaveGroupRequest::default().with_group_id(gid("raw")).with_members(vec![
            kp::leave_group_request::MemberIdentity::default().with_member_id(member.clone()),
            kp::leave_group_request::MemberIdentity::default().with_member_id(s("nobody")),
        ]),
    );
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!((left.error_code, codes), (0, vec![0, 25]));
    let r = delete_offsets(&mut raw);
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    let deleted: kp::DeleteGroupsResponse = raw.call(
        ApiKey::DeleteGroups,
        0,
        &kp::DeleteGroupsRequest::default().with_groups_names(vec![gid("raw")]),
    );
    assert_eq!(deleted.results[0].error_code, 0);

    // Old versions: JoinGroup v0 (no KIP-394 round, rebalance timeout = session timeout).
    let protocol = kp::join_group_request::JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0]));
    let v0: kp::JoinGroupResponse = raw.call(
        ApiKey::JoinGroup,
        0,
        &kp::JoinGroupRequest::default()
            .with_group_id(gid("old"))
            .with_session_timeout_ms(10_000)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![protocol]),
    );
    assert_eq!(
        (v0.error_code, v0.generation_id, v0.protocol_name.as_deref()),
        (0, 1, Some("range"))
    );
    let bad: kp::JoinGroupResponse = raw.call(
        ApiKey::JoinGroup,
        5,
        &kp::JoinGroupRequest::default()
            .with_group_id(gid("bad"))
            .with_session_timeout_ms(10)
            .with_rebalance_timeout_ms(10)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer")),
    );
    assert_eq!(
        (bad.error_code, bad.protocol_name.as_deref()),
        (26, Some("")),
        "INVALID_SESSION_TIMEOUT"
    );
    let empty: kp::HeartbeatResponse = raw.call(
        ApiKey::Heartbeat,
        0,
        &kp::HeartbeatRequest::default().with_group_id(gid("")).with_member_id(s("x")),
    );
    assert_eq!(empty.error_code, 24, "INVALID_GROUP_ID");
}
