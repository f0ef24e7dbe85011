//! The classic group state machine under a hand-made clock and an in-memory record log.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::sync::oneshot;

use super::*;
use crate::group::codec::{decode_group_metadata, decode_key, decode_offset_commit};
use crate::group::{CommitPartition, StorageFailure};

/// Records written by the state machine; fails every write while `fail` is set.
#[derive(Default)]
struct MemLog {
    records: Vec<Record>,
    fail: bool,
}

impl RecordWriter for MemLog {
    fn write(&mut self, records: Vec<Record>, _now_ms: i64) -> Result<(), GroupError> {
        if self.fail {
            return Err(GroupError::Storage(StorageFailure::NotLeader, "injected".into()));
        }
        self.records.extend(records);
        Ok(())
    }
}

impl MemLog {
    fn last_group_metadata(&self) -> GroupMetadataValue {
        let (_, v) = self
            .records
            .iter()
            .rev()
            .find(|(k, _)| matches!(decode_key(k), Ok(RecordKey::GroupMetadata { .. })))
            .expect("a group metadata record");
        decode_group_metadata(v.as_ref().expect("not a tombstone")).unwrap()
    }
}

const DELAY: Duration = Duration::from_millis(100);
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 60_000;

fn cfg() -> GroupConfig {
    GroupConfig { initial_rebalance_delay: DELAY, ..GroupConfig::default() }
}

fn subscription(topics: &[&str]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect());
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&0i16.to_be_bytes());
    sub.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

fn protocols(names: &[&str], topics: &[&str]) -> Vec<(String, Bytes)> {
    names.iter().map(|n| (n.to_string(), subscription(topics))).collect()
}

fn join_req(member_id: &str, instance: Option<&str>, protos: Vec<(String, Bytes)>) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(String::from),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protos,
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

fn range() -> Vec<(String, Bytes)> {
    protocols(&["range"], &["t"])
}

fn ready<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("an answer is ready")
}

fn pending<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) {
    assert!(
        matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "no answer expected yet"
    );
}

fn heartbeat(g: &mut Group, member: &str, generation: i32, now: Now) -> Result<(), GroupError> {
    let req = HeartbeatRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
    };
    g.heartbeat(&req, now)
}

fn sync_req(member: &str, generation: i32, assignments: &[(&str, &[u8])]) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a)))
            .collect(),
    }
}

/// KIP-394 first join: MEMBER_ID_REQUIRED with a new id, then the join with it (parked).
fn join_new(
    g: &mut Group,
    log: &mut MemLog,
    now: Now,
) -> (String, oneshot::Receiver<JoinResponse>) {
    let mut first = g.join(join_req("", None, range()), &cfg(), now, log);
    let Err(GroupError::MemberIdRequired(id)) = ready(&mut first) else {
        panic!("expected MEMBER_ID_REQUIRED")
    };
    assert!(id.starts_with("client-"), "{id}");
    let rx = g.join(join_req(&id, None, range()), &cfg(), now, log);
    (id, rx)
}

/// Runs the initial delayed join to its end (it is extended once when several members joined
/// during the first delay); returns the time it completed.
fn finish_initial_delay(g: &mut Group, log: &mut MemLog, mut now: Now) -> Now {
    for _ in 0..3 {
        now = now.plus(DELAY);
        g.on_timer(&cfg(), now, log);
        if g.state() != GroupState::PreparingRebalance {
            break;
        }
    }
    now
}

/// A stable group of `n` dynamic members, each assigned its index as one byte.
fn stable_group(n: usize) -> (Group, Vec<String>, Now, MemLog) {
    let mut now = Now::system();
    let mut log = MemLog::default();
    let mut g = Group::new("g", now);
    let mut joins = Vec::new();
    for _ in 0..n {
        joins.push(join_new(&mut g, &mut log, now));
    }
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    now = finish_initial_delay(&mut g, &mut log, now);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let ids: Vec<String> = joins.iter().map(|(id, _)| id.clone()).collect();
    let leader = g.leader().unwrap().to_string();
    for (id, rx) in &mut joins {
        let r = ready(rx).unwrap();
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader, leader);
        assert_eq!(r.members.len(), if *id == leader { n } else { 0 });
    }
    let assignments: Vec<(String, Vec<u8>)> =
        ids.iter().enumerate().map(|(i, id)| (id.clone(), vec![i as u8])).collect();
    let refs: Vec<(&str, &[u8])> =
        assignments.iter().map(|(id, a)| (id.as_str(), a.as_slice())).collect();
    let mut syncs = Vec::new();
    for id in ids.iter().filter(|id| **id != leader) {
        let mut rx = g.sync(sync_req(id, 1, &[]), &cfg(), now, &mut log);
        pending(&mut rx);
        syncs.push((id.clone(), rx));
    }
    let rx = g.sync(sync_req(&leader, 1, &refs), &cfg(), now, &mut log);
    syncs.push((leader.clone(), rx));
    assert_eq!(g.state(), GroupState::Stable);
    for (id, mut rx) in syncs {
        let i = ids.iter().position(|x| *x == id).unwrap();
        assert_eq!(ready(&mut rx).unwrap().assignment, Bytes::from(vec![i as u8]));
    }
    (g, ids, now, log)
}

#[test]
fn first_join_requires_a_member_id_then_waits_out_the_initial_delay() {
    let now = Now::system();
    let mut log = MemLog::default();
    let mut g = Group::new("g", now);
    let (id, mut rx) = join_new(&mut g, &mut log, now);
    pending(&mut rx);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // Not before the delay, even though every member has joined.
    g.on_timer(&cfg(), now.plus(DELAY / 2), &mut log);
    pending(&mut rx);
    g.on_timer(&cfg(), now.plus(DELAY), &mut log);
    let r = ready(&mut rx).unwrap();
    assert_eq!(
        (r.generation_id, r.leader.as_str(), r.member_id.as_str()),
        (1, id.as_str(), id.as_str())
    );
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, subscription(&["t"]));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn initial_delay_is_extended_while_members_keep_arriving() {
    let now = Now::system();
    let mut log = MemLog::default();
    let mut g = Group::new("g", now);
    let (_, mut a) = join_new(&mut g, &mut log, now);
    let later = now.plus(DELAY / 2);
    let (_, mut b) = join_new(&mut g, &mut log, later);
    g.on_timer(&cfg(), now.plus(DELAY), &mut log);
    pending(&mut a);
    pending(&mut b);
    g.on_timer(&cfg(), now.plus(DELAY * 2), &mut log);
    assert_eq!(ready(&mut a).unwrap().generation_id, 1);
    assert_eq!(ready(&mut b).unwrap().generation_id, 1);
}

#[test]
fn leader_sync_writes_group_metadata_and_answers_everyone() {
    let (g, ids, _, log) = stable_group(3);
    let v = log.last_group_metadata();
    assert_eq!(v.generation, 1);
    assert_eq!(v.protocol.as_deref(), Some("range"));
    assert_eq!(v.leader.as_deref(), g.leader());
    let mut stored: Vec<(String, Bytes)> =
        v.members.iter().map(|m| (m.member_id.clone(), m.assignment.clone())).collect();
    stored.sort();
    let mut want: Vec<(String, Bytes)> =
        ids.iter().enumerate().map(|(i, id)| (id.clone(), Bytes::from(vec![i as u8]))).collect();
    want.sort();
    assert_eq!(stored, want);
    assert!(v.members.iter().all(|m| m.session_timeout == SESSION_MS
        && m.rebalance_timeout == REBALANCE_MS
        && m.client_host == "/127.0.0.1"));
}

#[test]
fn a_new_member_triggers_a_rebalance_that_completes_when_all_rejoin() {
    let (mut g, ids, now, mut log) = stable_group(1);
    let (b, mut b_rx) = join_new(&mut g, &mut log, now);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    pending(&mut b_rx);
    assert_eq!(heartbeat(&mut g, &ids[0], 1, now), Err(GroupError::RebalanceInProgress));
    let mut a_rx = g.join(join_req(&ids[0], None, range()), &cfg(), now, &mut log);
    let a = ready(&mut a_rx).unwrap();
    let b = {
        let r = ready(&mut b_rx).unwrap();
        assert_eq!(r.member_id, b);
        r
    };
    assert_eq!((a.generation_id, b.generation_id), (2, 2));
    assert_eq!(a.leader, ids[0], "the leader stays");
    assert_eq!(a.members.len(), 2);
    assert!(b.members.is_empty());
    assert_eq!(heartbeat(&mut g, &ids[0], 1, now), Err(GroupError::IllegalGeneration));
    assert_eq!(heartbeat(&mut g, &ids[0], 2, now), Ok(()));
}

#[test]
fn an_expired_session_removes_the_member_and_rebalances() {
    let (mut g, ids, mut now, mut log) = stable_group(2);
    let (alive, dead) = (&ids[0], &ids[1]);
    for _ in 0..4 {
        now = now.plus(Duration::from_millis(SESSION_MS as u64 / 3));
        let _ = heartbeat(&mut g, alive, 1, now);
        g.on_timer(&cfg(), now, &mut log);
    }
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.member_ids(), vec![alive.clone()]);
    assert_eq!(heartbeat(&mut g, dead, 1, now), Err(GroupError::UnknownMemberId));
    let mut rx = g.join(join_req(alive, None, range()), &cfg(), now, &mut log);
    let r = ready(&mut rx).unwrap();
    assert_eq!((r.generation_id, r.leader.as_str(), r.members.len()), (2, alive.as_str(), 1));
}

#[test]
fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped() {
    let (mut g, ids, mut now, mut log) = stable_group(2);
    // The second member changes its subscription: a rebalance starts.
    let mut rx =
        g.join(join_req(&ids[1], None, protocols(&["range"], &["t", "u"])), &cfg(), now, &mut log);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // The first keeps heartbeating (so its session never expires) but never rejoins.
    let step = Duration::from_millis(SESSION_MS as u64 / 2);
    for _ in 0..(REBALANCE_MS / (SESSION_MS / 2)) {
        now = now.plus(step);
        assert_eq!(heartbeat(&mut g, &ids[0], 1, now), Err(GroupError::RebalanceInProgress));
        g.on_timer(&cfg(), now, &mut log);
    }
    let r = ready(&mut rx).unwrap();
    assert_eq!((r.generation_id, r.leader.as_str()), (2, ids[1].as_str()), "a joined member leads");
    assert_eq!(g.member_ids(), vec![ids[1].clone()]);
}

#[test]
fn leaving_rebalances_and_the_last_member_leaving_empties_the_group() {
    let (mut g, ids, now, mut log) = stable_group(2);
    let out = g
        .leave(
            &[LeavingMember { member_id: ids[1].clone(), group_instance_id: None }],
            &cfg(),
            now,
            &mut log,
        )
        .unwrap();
    assert_eq!(out, vec![Ok(ids[1].clone())]);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let mut rx = g.join(join_req(&ids[0], None, range()), &cfg(), now, &mut log);
    assert_eq!(ready(&mut rx).unwrap().generation_id, 2);
    let unknown = LeavingMember { member_id: "nobody".into(), group_instance_id: None };
    let last = LeavingMember { member_id: ids[0].clone(), group_instance_id: None };
    let out = g.leave(&[unknown, last], &cfg(), now, &mut log).unwrap();
    assert_eq!(out, vec![Err(GroupError::UnknownMemberId), Ok(ids[0].clone())]);
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation(), 3);
    let v = log.last_group_metadata();
    assert_eq!((v.generation, v.members.len(), v.protocol.clone()), (3, 0, None));
}

#[test]
fn static_member_rejoining_a_stable_group_keeps_its_assignment_without_rebalance() {
    let now = Now::system();
    let mut log = MemLog::default();
    let mut g = Group::new("g", now);
    // Static members get their id at once: no MEMBER_ID_REQUIRED round.
    let mut rx = g.join(join_req("", Some("i1"), range()), &cfg(), now, &mut log);
    pending(&mut rx);
    g.on_timer(&cfg(), now.plus(DELAY), &mut log);
    let first = ready(&mut rx).unwrap();
    assert!(first.member_id.starts_with("i1-"));
    let mut s =
        g.sync(sync_req(&first.member_id, 1, &[(&first.member_id, b"A")]), &cfg(), now, &mut log);
    assert_eq!(ready(&mut s).unwrap().assignment, Bytes::from_static(b"A"));

    // Restarted with the same group.instance.id: a new member id, same generation.
    let mut rx = g.join(join_req("", Some("i1"), range()), &cfg(), now, &mut log);
    let again = ready(&mut rx).unwrap();
    assert_ne!(again.member_id, first.member_id);
    assert_eq!(again.generation_id, 1);
    assert!(again.skip_assignment, "KIP-814: the static leader must not reassign");
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(log.last_group_metadata().members[0].member_id, again.member_id);
    // The old incarnation is fenced.
    let old = HeartbeatRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: first.member_id.clone(),
        group_instance_id: Some("i1".into()),
    };
    assert_eq!(g.heartbeat(&old, now), Err(GroupError::FencedInstanceId));
    let mut req = sync_req(&again.member_id, 1, &[]);
    req.group_instance_id = Some("i1".into());
    let mut s = g.sync(req, &cfg(), now, &mut log);
    assert_eq!(ready(&mut s).unwrap().assignment, Bytes::from_static(b"A"));
}

#[test]
fn protocol_is_chosen_by_vote_among_protocols_everyone_supports() {
    let now = Now::system();
    let mut log = MemLog::default();
    let mut g = Group::new("g", now);
    let mut a = g.join(
        join_req("", Some("a"), protocols(&["range", "roundrobin"], &["t"])),
        &cfg(),
        now,
        &mut log,
    );
    let mut b = g.join(
        join_req("", Some("b"), protocols(&["roundrobin", "range"], &["t"])),
        &cfg(),
        now,
        &mut log,
    );
    let mut c = g.join(
        join_req("", Some("c"), protocols(&["roundrobin", "sticky"], &["t"])),
        &cfg(),
        now,
        &mut log,
    );
    let now = finish_initial_delay(&mut g, &mut log, now);
    for rx in [&mut a, &mut b, &mut c] {
        assert_eq!(ready(rx).unwrap().protocol_name.as_deref(), Some("roundrobin"));
    }
    // A member that shares no protocol with the group is refused.
    let mut d = g.join(join_req("", None, protocols(&["sticky"], &["t"])), &cfg(), now, &mut log);
    assert_eq!(ready(&mut d), Err(GroupError::InconsistentGroupProtocol));
    let mut other_type = join_req("", None, range());
    other_type.protocol_type = "connect".into();
    let mut e = g.join(other_type, &cfg(), now, &mut log);
    assert_eq!(ready(&mut e), Err(GroupError::InconsistentGroupProtocol));
}

#[test]
fn sync_and_heartbeat_errors_are_kafkas() {
    let (mut g, ids, now, mut log) = stable_group(2);
    let mut s = g.sync(sync_req(&ids[0], 7, &[]), &cfg(), now, &mut log);
    assert_eq!(ready(&mut s), Err(GroupError::IllegalGeneration));
    let mut s = g.sync(sync_req("stranger", 1, &[]), &cfg(), now, &mut log);
    assert_eq!(ready(&mut s), Err(GroupError::UnknownMemberId));
    let mut wrong = sync_req(&ids[0], 1, &[]);
    wrong.protocol_name = Some("roundrobin".into());
    let mut s = g.sync(wrong, &cfg(), now, &mut log);
    assert_eq!(ready(&mut s), Err(GroupError::InconsistentGroupProtocol));
    assert_eq!(heartbeat(&mut g, "stranger", 1, now), Err(GroupError::UnknownMemberId));
    // A follower rejoining with unchanged metadata gets the current generation back.
    let follower = ids.iter().find(|id| Some(id.as_str()) != g.leader()).unwrap().clone();
    let mut rx = g.join(join_req(&follower, None, range()), &cfg(), now, &mut log);
    assert_eq!(ready(&mut rx).unwrap().generation_id, 1);
    assert_eq!(g.state(), GroupState::Stable);
    // The leader rejoining forces a rebalance; a SyncGroup now is too early.
    let leader = g.leader().unwrap().to_string();
    let _rx = g.join(join_req(&leader, None, range()), &cfg(), now, &mut log);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let mut s = g.sync(sync_req(&follower, 1, &[]), &cfg(), now, &mut log);
    assert_eq!(ready(&mut s), Err(GroupError::RebalanceInProgress));
}

#[test]
fn a_failed_assignment_write_fails_every_sync_and_restarts_the_rebalance() {
    let now = Now::system();
    let mut log = MemLog::default();
    let mut g = Group::new("g", now);
    let (a, mut a_rx) = join_new(&mut g, &mut log, now);
    let (b, mut b_rx) = join_new(&mut g, &mut log, now);
    let now = finish_initial_delay(&mut g, &mut log, now);
    let leader = ready(&mut a_rx).unwrap().leader;
    ready(&mut b_rx).unwrap();
    let follower = if leader == a { b } else { a };
    let mut f = g.sync(sync_req(&follower, 1, &[]), &cfg(), now, &mut log);
    pending(&mut f);
    log.fail = true;
    let mut l =
        g.sync(sync_req(&leader, 1, &[(&leader, b"x"), (&follower, b"y")]), &cfg(), now, &mut log);
    assert!(matches!(ready(&mut l), Err(GroupError::Storage(StorageFailure::NotLeader, _))));
    assert!(matches!(ready(&mut f), Err(GroupError::Storage(StorageFailure::NotLeader, _))));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let now = Now::system();
    let mut log = MemLog::default();
    let mut g = Group::new("g", now);
    let (a, mut a_rx) = join_new(&mut g, &mut log, now);
    let (b, mut b_rx) = join_new(&mut g, &mut log, now);
    let t = finish_initial_delay(&mut g, &mut log, now);
    let leader = ready(&mut a_rx).unwrap().leader;
    ready(&mut b_rx).unwrap();
    let follower = if leader == a { b.clone() } else { a.clone() };
    let mut l =
        g.sync(sync_req(&leader, 1, &[(&leader, b"x"), (&follower, b"y")]), &cfg(), t, &mut log);
    ready(&mut l).unwrap();
    // The leader heartbeats; the follower never sends SyncGroup (nor heartbeats).
    let mut now = t;
    while now.at < t.at + Duration::from_millis(REBALANCE_MS as u64) {
        now = now.plus(Duration::from_millis(SESSION_MS as u64 / 2));
        let _ = heartbeat(&mut g, &leader, 1, now);
        g.on_timer(&cfg(), now, &mut log);
    }
    assert_eq!(g.member_ids(), vec![leader]);
    assert_ne!(g.state(), GroupState::Stable);
}

fn commit_req(member: &str, generation: i32, parts: &[(&str, i32, i64)]) -> CommitRequest {
    CommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_ms: None,
        group_id_not_found_if_missing: true,
        offsets: parts
            .iter()
            .map(|(t, p, o)| CommitPartition {
                topic: t.to_string(),
                partition: *p,
                offset: *o,
                leader_epoch: 4,
                metadata: Some("meta".into()),
            })
            .collect(),
    }
}

#[test]
fn offset_commits_are_validated_written_and_fetched() {
    let (mut g, ids, now, mut log) = stable_group(1);
    let before = log.records.len();
    let r = g.commit_offsets(
        &commit_req(&ids[0], 1, &[("t", 0, 10), ("t", 1, 20)]),
        &cfg(),
        now,
        &mut log,
    );
    assert_eq!(r, Ok(vec![Ok(()), Ok(())]));
    assert_eq!(log.records.len(), before + 2);
    let (k, v) = &log.records[before];
    assert_eq!(
        decode_key(k).unwrap(),
        RecordKey::OffsetCommit { group: "g".into(), topic: "t".into(), partition: 0 }
    );
    let v = decode_offset_commit(v.as_ref().unwrap()).unwrap();
    assert_eq!(
        (v.offset, v.leader_epoch, v.metadata.as_str(), v.commit_timestamp),
        (10, 4, "meta", now.ms)
    );
    let fetched = g.fetch_offsets(Some(&[("t".to_string(), vec![0, 1, 2])]));
    let offsets: Vec<Option<i64>> =
        fetched[0].1.iter().map(|(_, o)| o.as_ref().map(|o| o.offset)).collect();
    assert_eq!(offsets, vec![Some(10), Some(20), None]);
    assert_eq!(g.fetch_offsets(None)[0].1.len(), 2);

    assert_eq!(
        g.commit_offsets(&commit_req(&ids[0], 9, &[("t", 0, 1)]), &cfg(), now, &mut log),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        g.commit_offsets(&commit_req("", -1, &[("t", 0, 1)]), &cfg(), now, &mut log),
        Err(GroupError::UnknownMemberId),
        "a simple commit to a group with members"
    );
    let mut big = commit_req(&ids[0], 1, &[("t", 0, 11), ("t", 1, 21)]);
    big.offsets[1].metadata = Some("x".repeat(5000));
    let r = g.commit_offsets(&big, &cfg(), now, &mut log).unwrap();
    assert_eq!(r, vec![Ok(()), Err(GroupError::OffsetMetadataTooLarge)]);
    log.fail = true;
    let r =
        g.commit_offsets(&commit_req(&ids[0], 1, &[("t", 0, 99)]), &cfg(), now, &mut log).unwrap();
    assert!(matches!(r[0], Err(GroupError::Storage(..))));
    let fetched = g.fetch_offsets(Some(&[("t".to_string(), vec![0])]));
    assert_eq!(fetched[0].1[0].1.as_ref().unwrap().offset, 11, "a failed write changes nothing");
}

#[test]
fn commits_during_a_rebalance_follow_kafka() {
    let (mut g, ids, now, mut log) = stable_group(2);
    let mut _rx =
        g.join(join_req(&ids[1], None, protocols(&["range"], &["u"])), &cfg(), now, &mut log);
    // PreparingRebalance: the old generation may still commit (eager consumers do on revoke).
    assert_eq!(
        g.commit_offsets(&commit_req(&ids[0], 1, &[("t", 0, 5)]), &cfg(), now, &mut log),
        Ok(vec![Ok(())])
    );
    let mut rx = g.join(join_req(&ids[0], None, range()), &cfg(), now, &mut log);
    ready(&mut rx).unwrap();
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(
        g.commit_offsets(&commit_req(&ids[0], 2, &[("t", 0, 6)]), &cfg(), now, &mut log),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn simple_commits_work_on_an_empty_group() {
    let now = Now::system();
    let mut log = MemLog::default();
    let mut g = Group::new("g", now);
    let mut req = commit_req("", -1, &[("t", 0, 3)]);
    req.retention_ms = Some(1000);
    assert_eq!(g.commit_offsets(&req, &cfg(), now, &mut log), Ok(vec![Ok(())]));
    let v = decode_offset_commit(log.records[0].1.as_ref().unwrap()).unwrap();
    assert_eq!(v.expire_timestamp, now.ms + 1000, "an explicit retention is stored (value v1)");
    assert_eq!(log.records[0].1.as_ref().unwrap()[..2], [0, 1]);
}

#[test]
fn offset_delete_refuses_subscribed_topics_and_writes_tombstones() {
    let (mut g, ids, now, mut log) = stable_group(1);
    g.commit_offsets(&commit_req(&ids[0], 1, &[("t", 0, 1), ("old", 0, 2)]), &cfg(), now, &mut log)
        .unwrap();
    let r =
        g.delete_offsets(&[("t".into(), 0), ("old".into(), 0), ("old".into(), 7)], now, &mut log);
    assert_eq!(r, Ok(vec![Err(GroupError::GroupSubscribedToTopic), Ok(()), Ok(())]));
    let (k, v) = log.records.last().unwrap();
    assert!(v.is_none());
    assert_eq!(
        decode_key(k).unwrap(),
        RecordKey::OffsetCommit { group: "g".into(), topic: "old".into(), partition: 0 }
    );
    assert_eq!(g.fetch_offsets(None).len(), 1);
}

#[test]
fn only_empty_groups_can_be_deleted() {
    let (mut g, ids, now, mut log) = stable_group(1);
    g.commit_offsets(&commit_req(&ids[0], 1, &[("t", 0, 1), ("t", 1, 2)]), &cfg(), now, &mut log)
        .unwrap();
    assert_eq!(g.tombstones_for_delete(), Err(GroupError::NonEmptyGroup));
    g.leave(
        &[LeavingMember { member_id: ids[0].clone(), group_instance_id: None }],
        &cfg(),
        now,
        &mut log,
    )
    .unwrap();
    let tombstones = g.tombstones_for_delete().unwrap();
    assert_eq!(tombstones.len(), 3, "two offsets and the group metadata");
    assert!(tombstones.iter().all(|(_, v)| v.is_none()));
}

#[test]
fn offsets_expire_by_kafkas_rules() {
    let (mut g, ids, now, mut log) = stable_group(1);
    g.commit_offsets(
        &commit_req(&ids[0], 1, &[("t", 0, 1), ("gone", 0, 2)]),
        &cfg(),
        now,
        &mut log,
    )
    .unwrap();
    let retention = 60_000;
    // Stable consumer group: only topics nobody subscribes to expire.
    let later = now.plus(Duration::from_millis(retention as u64));
    let (records, expired, gone) = g.expire_offsets(later, retention);
    assert_eq!(expired, vec![("gone".to_string(), 0)]);
    assert_eq!((records.len(), gone), (1, false));
    g.remove_offsets(&expired);
    // Empty group: everything expires a retention period after it became empty.
    let left = now.plus(Duration::from_millis(10));
    g.leave(
        &[LeavingMember { member_id: ids[0].clone(), group_instance_id: None }],
        &cfg(),
        left,
        &mut log,
    )
    .unwrap();
    assert_eq!(g.state(), GroupState::Empty);
    let (_, expired, _) =
        g.expire_offsets(left.plus(Duration::from_millis(retention as u64 - 1)), retention);
    assert!(expired.is_empty());
    let (records, expired, gone) =
        g.expire_offsets(left.plus(Duration::from_millis(retention as u64)), retention);
    assert_eq!(expired, vec![("t".to_string(), 0)]);
    assert!(gone, "nothing is left of the group");
    assert_eq!(records.len(), 2, "the offset and the group metadata tombstones");
}

#[test]
fn a_loaded_group_is_stable_and_its_members_must_heartbeat() {
    let (g, ids, now, log) = stable_group(2);
    let metadata = log.last_group_metadata();
    let mut offsets = BTreeMap::new();
    offsets.insert(
        ("t".to_string(), 0),
        CommittedOffset {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1,
            expire_timestamp_ms: None,
        },
    );
    let mut loaded = Group::from_log("g", Some(metadata), offsets, now);
    assert_eq!(loaded.state(), GroupState::Stable);
    assert_eq!(loaded.generation(), 1);
    assert_eq!(loaded.leader(), g.leader());
    let mut log = MemLog::default();
    let mut s = loaded.sync(sync_req(&ids[1], 1, &[]), &cfg(), now, &mut log);
    assert_eq!(ready(&mut s).unwrap().assignment, Bytes::from(vec![1u8]));
    let mid = now.plus(Duration::from_millis(SESSION_MS as u64 / 2));
    assert_eq!(heartbeat(&mut loaded, &ids[0], 1, mid), Ok(()));
    let after = now.plus(Duration::from_millis(SESSION_MS as u64 + 1));
    loaded.on_timer(&cfg(), after, &mut log);
    assert_eq!(loaded.member_ids().len(), 1, "the member that did not heartbeat is gone");
    assert_eq!(loaded.state(), GroupState::PreparingRebalance);
}

#[test]
fn an_unanswered_member_id_expires_and_stops_holding_up_the_join() {
    let (mut g, ids, now, mut log) = stable_group(1);
    let mut first = g.join(join_req("", None, range()), &cfg(), now, &mut log);
    assert!(matches!(ready(&mut first), Err(GroupError::MemberIdRequired(_))));
    // A rebalance now waits for the pending member too.
    let mut rx =
        g.join(join_req(&ids[0], None, protocols(&["range"], &["u"])), &cfg(), now, &mut log);
    pending(&mut rx);
    g.on_timer(&cfg(), now.plus(Duration::from_millis(SESSION_MS as u64)), &mut log);
    assert_eq!(ready(&mut rx).unwrap().generation_id, 2);
}

#[test]
fn next_deadline_never_spins_on_members_parked_in_a_join() {
    let (mut g, ids, now, mut log) = stable_group(2);
    let mut rx =
        g.join(join_req(&ids[0], None, protocols(&["range"], &["u"])), &cfg(), now, &mut log);
    let late = now.plus(Duration::from_millis(SESSION_MS as u64 + 1));
    let _ = heartbeat(&mut g, &ids[1], 1, late);
    g.on_timer(&cfg(), late, &mut log);
    pending(&mut rx);
    assert!(g.next_deadline().unwrap() > late.at, "no deadline left in the past");
}
