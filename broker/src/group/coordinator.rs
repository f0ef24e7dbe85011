//! The classic group state machine (Kafka's `ClassicGroup` and the classic half of
//! `GroupMetadataManager`), one [`Group`] at a time, with no I/O and no clock of its own.
//!
//! Every operation takes the current time ([`Now`]) and a [`RecordWriter`] for the records it
//! must make durable (group metadata after a leader's SyncGroup, committed offsets, tombstones)
//! before it answers. Answers that may have to wait for other members (JoinGroup until the
//! join phase completes, SyncGroup until the leader's assignment is written) are delivered
//! through `oneshot` channels the caller awaits outside the lock. Timeouts are deadlines stored
//! here ([`Group::next_deadline`]); the owner calls [`Group::on_timer`] when one passes, so the
//! whole machine is driven by tests with a hand-made clock.
//!
//! States and transitions, as in Kafka:
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / rebalance timeout──▶ CompletingRebalance
//!   ▲                  ▲      │ (no member left)                               │ leader's sync
//!   └──────────────────┼──────┘                                                ▼ written
//!                      └──────── member joins, leaves, fails or changes ──── Stable
//! Dead: deleted (DeleteGroups, or expired offsets of an empty group); removed from the shard.
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::codec::{self, GroupMetadataValue, MemberMetadata, OffsetCommitValue, RecordKey};
use super::{
    CommitRequest, CommittedOffset, GroupConfig, GroupDescription, GroupError, GroupListing,
    GroupSnapshot, GroupState, HeartbeatRequest, JoinRequest, JoinResult, JoinedMember,
    LeavingMember, MemberDescription, SyncRequest, SyncResult, TopicOffsets,
};

/// The protocol type of Kafka consumers; only their subscriptions are decoded (OffsetDelete and
/// offset expiry need the subscribed topics).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// How long a new member may wait in a JoinGroup before it is dropped: its socket is parked and
/// it sends no heartbeats, so a client that went away would otherwise stay a member forever
/// (Kafka's `group.classic.new.member.join.timeout.ms`, 5 minutes).
pub const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The time now, both as a monotonic instant (deadlines) and wall-clock milliseconds (record
/// timestamps, offset retention).
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub at: Instant,
    pub ms: i64,
}

impl Now {
    /// The system clock.
    pub fn system() -> Now {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Now { at: Instant::now(), ms }
    }

    /// This time plus `d` (tests step a hand-made clock with it).
    pub fn plus(self, d: Duration) -> Now {
        Now { at: self.at + d, ms: self.ms + d.as_millis() as i64 }
    }
}

/// One record for `__consumer_offsets`: key, and value or `None` for a tombstone.
pub type Record = (Vec<u8>, Option<Vec<u8>>);

/// Makes records durable in the group's `__consumer_offsets` partition, all or nothing.
pub trait RecordWriter {
    fn write(&mut self, records: Vec<Record>, now_ms: i64) -> Result<(), GroupError>;
}

/// The answer to a JoinGroup.
pub type JoinResponse = Result<JoinResult, GroupError>;
/// The answer to a SyncGroup.
pub type SyncResponse = Result<SyncResult, GroupError>;

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    /// Supported protocols in the member's order of preference, with its metadata for each.
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncResponse>>,
    /// Joined in the current rebalance and not yet part of a generation.
    is_new: bool,
    /// When the member is dropped unless it heartbeats (`None`: not armed, as while it waits
    /// in a JoinGroup or SyncGroup).
    heartbeat_deadline: Option<Instant>,
}

impl Member {
    fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }

    fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    fn awaiting_sync(&self) -> bool {
        self.sync_waiter.is_some()
    }

    /// Members parked in a JoinGroup or SyncGroup cannot heartbeat and are kept, except new
    /// members (see [`NEW_MEMBER_JOIN_TIMEOUT`]).
    fn heartbeat_satisfied(&self) -> bool {
        !self.is_new && (self.awaiting_join() || self.awaiting_sync())
    }

    fn complete_join(&mut self, response: JoinResponse) -> bool {
        match self.join_waiter.take() {
            Some(tx) => {
                let _ = tx.send(response);
                true
            }
            None => false,
        }
    }

    fn complete_sync(&mut self, response: SyncResponse) -> bool {
        match self.sync_waiter.take() {
            Some(tx) => {
                let _ = tx.send(response);
                true
            }
            None => false,
        }
    }
}

/// One classic group with its committed offsets.
#[derive(Debug)]
pub struct Group {
    id: String,
    state: GroupState,
    previous_state: GroupState,
    /// When the group entered its current state (ms); stored in the group metadata and the base
    /// of offset expiry for empty groups.
    state_timestamp_ms: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, with the time they expire if the
    /// client does not join with them.
    pending_members: HashMap<String, Instant>,
    /// `group.instance.id` → member id of the static members.
    static_members: HashMap<String, String>,
    /// When the join phase is completed (or, in the initial delayed join, re-examined).
    join_deadline: Option<Instant>,
    /// During the initial delayed join: the rebalance time left after the current delay.
    initial_remaining: Option<Duration>,
    new_member_added: bool,
    /// Members of this generation that have not sent their SyncGroup yet.
    pending_sync: HashSet<String>,
    sync_deadline: Option<Instant>,
    offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// The earliest deadline the owner's timer queue holds for this group.
    pub(crate) scheduled: Option<Instant>,
}

fn send_join(tx: oneshot::Sender<JoinResponse>, response: JoinResponse) {
    let _ = tx.send(response);
}

fn send_sync(tx: oneshot::Sender<SyncResponse>, response: SyncResponse) {
    let _ = tx.send(response);
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// A consumer protocol message (`int16` version, then the message): its version and the rest.
fn consumer_protocol(bytes: &[u8]) -> Option<(i16, Bytes)> {
    let version = i16::from_be_bytes(bytes.get(..2)?.try_into().ok()?);
    Some((version, Bytes::copy_from_slice(&bytes[2..])))
}

/// The topics in a consumer's subscription (`ConsumerProtocolSubscription`); `None` when the
/// metadata does not parse.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let (version, mut buf) = consumer_protocol(metadata)?;
    // Newer clients may write a version this crate does not know; every version starts the
    // same way, so the highest known one reads the topics.
    let version = version.clamp(0, 3);
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(sub.topics.iter().map(|t| t.to_string()).collect())
}

/// The partitions a consumer's assignment (`ConsumerProtocolAssignment`, versions 0 to 3) gives
/// it, by topic; `None` when it does not parse.
pub fn assigned_partitions(assignment: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    use kafka_protocol::messages::ConsumerProtocolAssignment;
    use kafka_protocol::protocol::Decodable;
    let (version, mut buf) = consumer_protocol(assignment)?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).ok()?;
    Some(a.assigned_partitions.into_iter().map(|t| (t.topic.to_string(), t.partitions)).collect())
}

impl Group {
    /// A new, empty group.
    pub fn new(id: impl Into<String>, now: Now) -> Group {
        Group {
            id: id.into(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: now.ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            join_deadline: None,
            initial_remaining: None,
            new_member_added: false,
            pending_sync: HashSet::new(),
            sync_deadline: None,
            offsets: BTreeMap::new(),
            scheduled: None,
        }
    }

    /// A group as loaded from `__consumer_offsets`: Stable with its members if it had any
    /// (each gets a fresh session timeout), else Empty.
    pub fn from_log(
        id: impl Into<String>,
        metadata: Option<GroupMetadataValue>,
        offsets: BTreeMap<(String, i32), CommittedOffset>,
        now: Now,
    ) -> Group {
        let mut g = Group::new(id, now);
        g.offsets = offsets;
        let Some(v) = metadata else { return g };
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
        g.protocol = v.protocol;
        g.leader = v.leader;
        if v.current_state_timestamp >= 0 {
            g.state_timestamp_ms = v.current_state_timestamp;
        }
        for m in v.members {
            let session = millis(m.session_timeout);
            if let Some(instance) = &m.group_instance_id {
                g.static_members.insert(instance.clone(), m.member_id.clone());
            }
            let protocols =
                g.protocol.clone().map(|p| vec![(p, m.subscription.clone())]).unwrap_or_default();
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: session,
                    rebalance_timeout: millis(m.rebalance_timeout),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocols,
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    is_new: false,
                    heartbeat_deadline: Some(now.at + session),
                },
            );
        }
        if g.leader.as_ref().is_some_and(|l| !g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        g.previous_state = g.state;
        g
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The current generation (0 before the first).
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The protocol chosen for the current generation.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The leader's member id.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// The member ids, sorted.
    pub fn member_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// A group with neither members nor offsets can be dropped from memory.
    pub fn is_forgettable(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.offsets.is_empty()
    }

    fn transition(&mut self, to: GroupState, now: Now) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now.ms;
    }

    fn rebalance_timeout(&self) -> Duration {
        self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.values().all(Member::awaiting_join) && self.pending_members.is_empty()
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Empty | GroupState::CompletingRebalance | GroupState::Stable
        )
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(name, _)| self.members.values().all(|m| m.supports(name)))
        }
    }

    /// Kafka's vote: each member votes for its most preferred protocol that every member
    /// supports; the most votes win (ties go to the leader's preference).
    fn select_protocol(&self) -> Option<String> {
        let first = self.leader.as_ref().and_then(|l| self.members.get(l));
        let first = first.or_else(|| self.members.values().next())?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let v = votes.get(c).copied().unwrap_or(0);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((c, v));
            }
        }
        best.map(|(c, _)| c.to_string())
    }

    fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(GroupError::UnknownMemberId),
                Some(existing) if existing != member_id => Err(GroupError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if !self.members.contains_key(member_id) => Err(GroupError::UnknownMemberId),
            None => Ok(()),
        }
    }

    fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member; a JoinGroup or SyncGroup it has in flight gets UNKNOWN_MEMBER_ID.
    fn remove_member(&mut self, id: &str) {
        let Some(mut m) = self.members.remove(id) else { return };
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
        m.complete_join(Err(GroupError::UnknownMemberId));
        m.complete_sync(Err(GroupError::UnknownMemberId));
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else { return false };
        if self.members.get(&leader).is_some_and(Member::awaiting_join) {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    fn current_members(&self) -> Vec<JoinedMember> {
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(self.protocol.as_deref()),
            })
            .collect()
    }

    fn join_result(
        &self,
        member_id: &str,
        with_members: bool,
        skip_assignment: bool,
    ) -> JoinResult {
        JoinResult {
            member_id: member_id.to_string(),
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment,
            members: if with_members { self.current_members() } else { Vec::new() },
        }
    }

    /// The group metadata record, with `assignments` instead of the members' current ones.
    fn metadata_record(&self, assignments: Option<&HashMap<String, Bytes>>) -> Record {
        let value = GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout.as_millis() as i32,
                    session_timeout: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata_for(self.protocol.as_deref()),
                    assignment: assignments
                        .and_then(|a| a.get(&m.id).cloned())
                        .unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        };
        let key = codec::encode_key(&RecordKey::GroupMetadata { group: self.id.clone() });
        let value = codec::encode_group_metadata(&value, codec::GROUP_METADATA_VALUE_VERSION)
            .expect("supported version");
        (key, Some(value))
    }

    fn offset_key(&self, topic: &str, partition: i32) -> Vec<u8> {
        codec::encode_key(&RecordKey::OffsetCommit {
            group: self.id.clone(),
            topic: topic.to_string(),
            partition,
        })
    }

    fn reschedule_heartbeat(&mut self, member_id: &str, now: Now) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline = Some(now.at + m.session_timeout);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Rebalance machinery.

    fn prepare_rebalance(&mut self, cfg: &GroupConfig, now: Now, log: &mut dyn RecordWriter) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate(GroupError::RebalanceInProgress, now);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let initial = self.state == GroupState::Empty;
        self.transition(GroupState::PreparingRebalance, now);
        if initial {
            // A new group: give the other members of a starting application time to join, so
            // they do not each cause a rebalance (`group.initial.rebalance.delay.ms`).
            let delay = cfg.initial_rebalance_delay;
            self.join_deadline = Some(now.at + delay);
            self.initial_remaining = Some(self.rebalance_timeout().saturating_sub(delay));
            self.new_member_added = false;
        } else if self.has_all_members_joined() {
            self.complete_join(now, log);
        } else {
            self.join_deadline = Some(now.at + self.rebalance_timeout());
            self.initial_remaining = None;
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) {
        if self.can_rebalance() {
            self.prepare_rebalance(cfg, now, log);
        } else {
            self.maybe_complete_join_phase(now, log);
        }
    }

    /// Completes the join phase once every member rejoined, except during the initial delay.
    fn maybe_complete_join_phase(&mut self, now: Now, log: &mut dyn RecordWriter) {
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now, log);
        }
    }

    /// Ends the join phase: members that did not rejoin (dynamic ones) are dropped, the
    /// generation advances, the protocol is chosen and every joined member is answered (the
    /// leader with everyone's metadata).
    fn complete_join(&mut self, now: Now, log: &mut dyn RecordWriter) {
        self.join_deadline = None;
        self.initial_remaining = None;
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in not_rejoined {
            tracing::info!(group = %self.id, member = %id, "removing member that did not rejoin");
            self.remove_member(&id);
        }
        if self.state == GroupState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for them (or for their
            // sessions to expire) for another rebalance timeout.
            self.join_deadline = Some(now.at + self.rebalance_timeout());
            return;
        }
        self.generation += 1;
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol = None;
            self.transition(GroupState::Empty, now);
            tracing::info!(group = %self.id, generation = self.generation, "group is now empty");
            if let Err(e) = log.write(vec![self.metadata_record(None)], now.ms) {
                // The previous generation stays in the log; it had no live members either.
                tracing::warn!(group = %self.id, error = %e, "writing empty group metadata failed");
            }
            return;
        }
        self.protocol = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now);
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = ?self.protocol,
            "join phase complete"
        );
        let leader = self.leader.clone().unwrap_or_default();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result(&id, id == leader, false);
            let m = self.members.get_mut(&id).expect("member");
            m.complete_join(Ok(result));
            m.heartbeat_deadline = Some(now.at + m.session_timeout);
            m.is_new = false;
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some(now.at + self.rebalance_timeout());
    }

    /// Answers every pending SyncGroup with `error` and forgets the members' assignments.
    fn reset_and_propagate(&mut self, error: GroupError, now: Now) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if m.complete_sync(Err(error.clone())) {
                m.heartbeat_deadline = Some(now.at + m.session_timeout);
            }
        }
    }

    fn propagate_assignment(&mut self, now: Now) {
        let protocol_type = self.protocol_type.clone();
        let protocol_name = self.protocol.clone();
        for m in self.members.values_mut() {
            let result = SyncResult {
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment: m.assignment.clone(),
            };
            if m.complete_sync(Ok(result)) {
                m.heartbeat_deadline = Some(now.at + m.session_timeout);
            }
        }
    }

    /// After a member is gone: rebalance, or finish a join phase that waited for it.
    fn after_member_removed(&mut self, cfg: &GroupConfig, now: Now, log: &mut dyn RecordWriter) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(cfg, now, log)
            }
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now, log)
            }
            _ => {}
        }
    }

    // -----------------------------------------------------------------------------------------
    // Requests.

    /// JoinGroup. The answer arrives on the returned channel: at once for errors and for
    /// members of a stable generation, else when the join phase completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) -> oneshot::Receiver<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        if self.state == GroupState::Dead {
            send_join(tx, Err(GroupError::CoordinatorNotAvailable));
        } else if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            send_join(tx, Err(GroupError::InconsistentGroupProtocol));
        } else if req.member_id.is_empty() {
            self.join_new_member(req, tx, cfg, now, log);
        } else if self.pending_members.contains_key(&req.member_id) {
            self.pending_members.remove(&req.member_id);
            let id = req.member_id.clone();
            self.add_member_and_rebalance(req, id, tx, cfg, now, log);
        } else if let Err(e) =
            self.validate_member(&req.member_id, req.group_instance_id.as_deref())
        {
            send_join(tx, Err(e));
        } else {
            self.join_existing_member(req, tx, cfg, now, log);
        }
        rx
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        tx: oneshot::Sender<JoinResponse>,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) {
        if self.state != GroupState::PreparingRebalance && self.members.len() >= cfg.max_size {
            send_join(tx, Err(GroupError::GroupMaxSizeReached));
            return;
        }
        if self.state == GroupState::PreparingRebalance
            && self.members.values().filter(|m| m.awaiting_join()).count() >= cfg.max_size
        {
            send_join(tx, Err(GroupError::GroupMaxSizeReached));
            return;
        }
        match req.group_instance_id.clone() {
            Some(instance) => {
                let new_id = new_member_id(&instance);
                match self.static_members.get(&instance).cloned() {
                    Some(old_id) => {
                        self.replace_static_member(req, old_id, new_id, tx, cfg, now, log)
                    }
                    None => self.add_member_and_rebalance(req, new_id, tx, cfg, now, log),
                }
            }
            None => {
                let new_id = new_member_id(&req.client_id);
                if req.require_known_member_id {
                    // KIP-394: hand out the id first, so a client that retries its first join
                    // does not leave members behind that each delay the rebalance.
                    self.pending_members
                        .insert(new_id.clone(), now.at + millis(req.session_timeout_ms));
                    send_join(tx, Err(GroupError::MemberIdRequired(new_id)));
                } else {
                    self.add_member_and_rebalance(req, new_id, tx, cfg, now, log);
                }
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        id: String,
        tx: oneshot::Sender<JoinResponse>,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) {
        let member = Member {
            id,
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: millis(req.session_timeout_ms),
            rebalance_timeout: millis(req.rebalance_timeout_ms),
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            is_new: true,
            heartbeat_deadline: Some(now.at + NEW_MEMBER_JOIN_TIMEOUT),
        };
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty
        {
            self.new_member_added = true;
        }
        self.add_member(member);
        self.maybe_prepare_rebalance_or_complete_join(cfg, now, log);
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        tx: oneshot::Sender<JoinResponse>,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) {
        let Some(mut member) = self.members.remove(&old_id) else {
            send_join(tx, Err(GroupError::UnknownMemberId));
            return;
        };
        // The old incarnation is fenced: whatever it still waits for ends with
        // FENCED_INSTANCE_ID.
        member.complete_join(Err(GroupError::FencedInstanceId));
        member.complete_sync(Err(GroupError::FencedInstanceId));
        let old = (member.protocols.clone(), member.rebalance_timeout, member.session_timeout);
        member.id = new_id.clone();
        member.protocols = req.protocols;
        member.rebalance_timeout = millis(req.rebalance_timeout_ms);
        member.session_timeout = millis(req.session_timeout_ms);
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.heartbeat_deadline = Some(now.at + member.session_timeout);
        member.join_waiter = Some(tx);
        let instance = req.group_instance_id.clone().unwrap_or_default();
        self.static_members.insert(instance.clone(), new_id.clone());
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);

        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol {
                    // Same protocol: no rebalance, the member keeps its assignment (it gets it
                    // back with SyncGroup). Persist the new member id first.
                    match log.write(vec![self.metadata_record(None)], now.ms) {
                        Ok(()) => {
                            let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                            // KIP-814: a static leader learns the members but must not assign.
                            let result = if req.supports_skip_assignment {
                                self.join_result(&new_id, is_leader, is_leader)
                            } else {
                                self.join_result(&new_id, false, false)
                            };
                            if let Some(m) = self.members.get_mut(&new_id) {
                                m.complete_join(Ok(result));
                            }
                        }
                        Err(e) => {
                            // Revert to the old member id.
                            let mut m = self.members.remove(&new_id).expect("just inserted");
                            m.id = old_id.clone();
                            (m.protocols, m.rebalance_timeout, m.session_timeout) = old;
                            m.complete_join(Err(e));
                            self.static_members.insert(instance, old_id.clone());
                            if was_leader {
                                self.leader = Some(old_id.clone());
                            }
                            self.members.insert(old_id, m);
                        }
                    }
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(cfg, now, log);
                }
            }
            // The leader may already be assigning with the old member id: start over.
            GroupState::CompletingRebalance => self.prepare_rebalance(cfg, now, log),
            _ => self.maybe_complete_join_phase(now, log),
        }
    }

    fn join_existing_member(
        &mut self,
        req: JoinRequest,
        tx: oneshot::Sender<JoinResponse>,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) {
        let id = req.member_id.clone();
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let matches = self.members.get(&id).is_some_and(|m| m.protocols == req.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(req, tx, cfg, now, log)
            }
            GroupState::CompletingRebalance if matches => {
                // A retry of a join whose answer was lost: answer with the current generation.
                send_join(tx, Ok(self.join_result(&id, is_leader, false)));
            }
            GroupState::Stable if matches && !is_leader => {
                send_join(tx, Ok(self.join_result(&id, false, false)));
            }
            // A leader's rejoin forces a rebalance: it is how a consumer leader reacts to
            // changes only it sees (new partitions of a subscribed topic).
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(req, tx, cfg, now, log)
            }
            GroupState::Empty | GroupState::Dead => send_join(tx, Err(GroupError::UnknownMemberId)),
        }
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        tx: oneshot::Sender<JoinResponse>,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) {
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.protocols = req.protocols;
            m.rebalance_timeout = millis(req.rebalance_timeout_ms);
            m.session_timeout = millis(req.session_timeout_ms);
            // A second join from the same member replaces the first (whose client gave up).
            m.join_waiter = Some(tx);
        }
        self.maybe_prepare_rebalance_or_complete_join(cfg, now, log);
    }

    /// SyncGroup. The leader's assignment is written to the log before anyone gets theirs.
    pub fn sync(
        &mut self,
        req: SyncRequest,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) -> oneshot::Receiver<SyncResponse> {
        let (tx, rx) = oneshot::channel();
        if self.state == GroupState::Dead {
            send_sync(tx, Err(GroupError::CoordinatorNotAvailable));
            return rx;
        }
        if let Err(e) = self.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            send_sync(tx, Err(e));
            return rx;
        }
        if req.generation_id != self.generation {
            send_sync(tx, Err(GroupError::IllegalGeneration));
            return rx;
        }
        let type_mismatch = req.protocol_type.is_some() && req.protocol_type != self.protocol_type;
        let name_mismatch = req.protocol_name.is_some() && req.protocol_name != self.protocol;
        if type_mismatch || name_mismatch {
            send_sync(tx, Err(GroupError::InconsistentGroupProtocol));
            return rx;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => send_sync(tx, Err(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => send_sync(tx, Err(GroupError::RebalanceInProgress)),
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(&req.member_id);
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.sync_waiter = Some(tx);
                }
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    // Members the leader left out get an empty assignment.
                    let assignments: HashMap<String, Bytes> = self
                        .members
                        .keys()
                        .map(|id| (id.clone(), given.get(id).cloned().unwrap_or_default()))
                        .collect();
                    match log.write(vec![self.metadata_record(Some(&assignments))], now.ms) {
                        Ok(()) => {
                            for (id, a) in assignments {
                                if let Some(m) = self.members.get_mut(&id) {
                                    m.assignment = a;
                                }
                            }
                            self.propagate_assignment(now);
                            self.transition(GroupState::Stable, now);
                        }
                        Err(e) => {
                            self.reset_and_propagate(e, now);
                            self.maybe_prepare_rebalance_or_complete_join(cfg, now, log);
                        }
                    }
                }
            }
            GroupState::Stable => {
                self.pending_sync.remove(&req.member_id);
                self.reschedule_heartbeat(&req.member_id, now);
                let assignment = self
                    .members
                    .get(&req.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                send_sync(
                    tx,
                    Ok(SyncResult {
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol.clone(),
                        assignment,
                    }),
                );
            }
        }
        rx
    }

    /// Heartbeat: keeps the member's session alive and tells it when to rejoin.
    pub fn heartbeat(&mut self, req: &HeartbeatRequest, now: Now) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.reschedule_heartbeat(&req.member_id, now);
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_heartbeat(&req.member_id, now);
                Ok(())
            }
        }
    }

    /// LeaveGroup: one result per leaving member (members may also be named by instance id
    /// alone, as admin tools do).
    pub fn leave(
        &mut self,
        leaving: &[LeavingMember],
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) -> Result<Vec<Result<String, GroupError>>, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        let mut removed = Vec::new();
        for l in leaving {
            if l.member_id.is_empty() {
                match l.group_instance_id.as_ref().and_then(|i| self.static_members.get(i)) {
                    Some(id) => {
                        removed.push(id.clone());
                        results.push(Ok(id.clone()));
                    }
                    None => results.push(Err(GroupError::UnknownMemberId)),
                }
            } else if self.pending_members.remove(&l.member_id).is_some() {
                results.push(Ok(l.member_id.clone()));
            } else {
                match self.validate_member(&l.member_id, l.group_instance_id.as_deref()) {
                    Ok(()) => {
                        removed.push(l.member_id.clone());
                        results.push(Ok(l.member_id.clone()));
                    }
                    Err(e) => results.push(Err(e)),
                }
            }
        }
        let any = !removed.is_empty();
        for id in removed {
            tracing::info!(group = %self.id, member = %id, "member left the group");
            self.remove_member(&id);
        }
        if any {
            self.after_member_removed(cfg, now, log);
        } else if self.state == GroupState::PreparingRebalance && self.has_all_members_joined() {
            // A pending member left: the join phase may have been waiting for it.
            self.complete_join(now, log);
        }
        Ok(results)
    }

    /// OffsetCommit validation, as Kafka does for classic groups.
    fn validate_offset_commit(&self, req: &CommitRequest) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if req.generation_id < 0 && self.state == GroupState::Empty {
            // Admin tools and consumers without group management commit this way.
            return Ok(());
        }
        if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
            self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
            if req.generation_id != self.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            // The member has its new generation but not its assignment yet.
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// OffsetCommit: a whole-request error, or one result per partition (in request order).
    pub fn commit_offsets(
        &mut self,
        req: &CommitRequest,
        cfg: &GroupConfig,
        now: Now,
        log: &mut dyn RecordWriter,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.validate_offset_commit(req)?;
        let mut results = Vec::with_capacity(req.offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (i, p) in req.offsets.iter().enumerate() {
            let metadata = p.metadata.clone().unwrap_or_default();
            if metadata.len() > cfg.offset_metadata_max_bytes {
                results.push(Err(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            let committed = CommittedOffset {
                offset: p.offset,
                leader_epoch: p.leader_epoch,
                metadata,
                commit_timestamp_ms: now.ms,
                expire_timestamp_ms: req.retention_ms.map(|r| now.ms.saturating_add(r)),
            };
            let (version, expire) = match committed.expire_timestamp_ms {
                Some(e) => (codec::OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY, e),
                None => (codec::OFFSET_COMMIT_VALUE_VERSION, -1),
            };
            let value = OffsetCommitValue {
                offset: committed.offset,
                leader_epoch: committed.leader_epoch,
                metadata: committed.metadata.clone(),
                commit_timestamp: committed.commit_timestamp_ms,
                expire_timestamp: expire,
            };
            let value = codec::encode_offset_commit(&value, version).expect("supported version");
            records.push((self.offset_key(&p.topic, p.partition), Some(value)));
            accepted.push((i, committed));
            results.push(Ok(()));
        }
        if !records.is_empty() {
            if let Err(e) = log.write(records, now.ms) {
                for (i, _) in &accepted {
                    results[*i] = Err(e.clone());
                }
                return Ok(results);
            }
            for (i, committed) in accepted {
                let p = &req.offsets[i];
                self.offsets.insert((p.topic.clone(), p.partition), committed);
            }
        }
        Ok(results)
    }

    /// OffsetFetch: the committed offsets of `topics` (each with its partitions), or of every
    /// partition with an offset when `None`.
    pub fn fetch_offsets(&self, topics: Option<&[(String, Vec<i32>)]>) -> TopicOffsets {
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(t, parts)| {
                    let found =
                        parts.iter().map(|&p| (p, self.offsets.get(&(t.clone(), p)).cloned()));
                    (t.clone(), found.collect())
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                for ((t, p), o) in &self.offsets {
                    by_topic.entry(t.clone()).or_default().push((*p, Some(o.clone())));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// Topics the members subscribe to, if the group is a consumer group whose subscriptions
    /// all parse.
    fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            let metadata = m.metadata_for(self.protocol.as_deref());
            topics.extend(subscribed_topics(&metadata)?);
        }
        Some(topics)
    }

    /// OffsetDelete: removes committed offsets of topics the group does not consume.
    pub fn delete_offsets(
        &mut self,
        partitions: &[(String, i32)],
        now: Now,
        log: &mut dyn RecordWriter,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        match self.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty => {}
            _ if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) => {
                return Err(GroupError::NonEmptyGroup)
            }
            _ => {}
        }
        let subscribed = if self.state == GroupState::Empty {
            BTreeSet::new()
        } else {
            self.subscribed_topics().unwrap_or_default()
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        let mut deleting = Vec::new();
        for (topic, p) in partitions {
            if subscribed.contains(topic) {
                results.push(Err(GroupError::GroupSubscribedToTopic));
                continue;
            }
            results.push(Ok(()));
            if self.offsets.contains_key(&(topic.clone(), *p)) {
                records.push((self.offset_key(topic, *p), None));
                deleting.push((results.len() - 1, (topic.clone(), *p)));
            }
        }
        if !records.is_empty() {
            if let Err(e) = log.write(records, now.ms) {
                for (i, _) in &deleting {
                    results[*i] = Err(e.clone());
                }
                return Ok(results);
            }
            for (_, key) in deleting {
                self.offsets.remove(&key);
            }
        }
        Ok(results)
    }

    /// DeleteGroups: only an empty group may go. Returns the tombstones to write; the caller
    /// writes them and drops the group.
    pub fn tombstones_for_delete(&self) -> Result<Vec<Record>, GroupError> {
        match self.state {
            GroupState::Empty | GroupState::Dead => {}
            _ => return Err(GroupError::NonEmptyGroup),
        }
        let mut records: Vec<Record> =
            self.offsets.keys().map(|(t, p)| (self.offset_key(t, *p), None)).collect();
        records
            .push((codec::encode_key(&RecordKey::GroupMetadata { group: self.id.clone() }), None));
        Ok(records)
    }

    /// Marks the group deleted: anything still waiting is told to find the coordinator again.
    pub fn mark_dead(&mut self, now: Now) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            if let Some(m) = self.members.get_mut(&id) {
                m.complete_join(Err(GroupError::CoordinatorNotAvailable));
                m.complete_sync(Err(GroupError::CoordinatorNotAvailable));
            }
        }
        self.transition(GroupState::Dead, now);
    }

    /// Fails everything in flight with `error` (the coordinator is moving away or stopping).
    pub fn fail_waiters(&mut self, error: GroupError) {
        for m in self.members.values_mut() {
            m.complete_join(Err(error.clone()));
            m.complete_sync(Err(error.clone()));
        }
    }

    /// Offset retention (`offsets.retention.minutes`), with Kafka's rules: offsets of an empty
    /// consumer group expire a retention period after it became empty; offsets of a stable
    /// consumer group expire only for topics nobody subscribes to any more, a retention period
    /// after their commit; offsets of a group without protocol (manual commits) expire a
    /// retention period after their commit; an explicit expire timestamp (OffsetCommit v2–v4
    /// retention time) is honoured. Returns the tombstones to write, the expired partitions,
    /// and whether the group itself is now gone (empty, no offsets).
    pub fn expire_offsets(
        &self,
        now: Now,
        retention_ms: i64,
    ) -> (Vec<Record>, Vec<(String, i32)>, bool) {
        // What an offset's age is measured from: its commit, or when the group became empty.
        let since_empty = match self.protocol_type.as_deref() {
            None => None,
            Some(_) if self.state == GroupState::Empty => Some(self.state_timestamp_ms),
            Some(CONSUMER_PROTOCOL_TYPE) if self.state == GroupState::Stable => None,
            Some(_) => return (Vec::new(), Vec::new(), false),
        };
        let base = |o: &CommittedOffset| since_empty.unwrap_or(o.commit_timestamp_ms);
        let subscribed = if self.state == GroupState::Stable {
            match self.subscribed_topics() {
                Some(t) => t,
                None => return (Vec::new(), Vec::new(), false),
            }
        } else {
            BTreeSet::new()
        };
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|((topic, _), _)| !subscribed.contains(topic))
            .filter(|(_, o)| match o.expire_timestamp_ms {
                Some(at) => now.ms >= at,
                None => now.ms - base(o) >= retention_ms,
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut records: Vec<Record> =
            expired.iter().map(|(t, p)| (self.offset_key(t, *p), None)).collect();
        let gone = self.state == GroupState::Empty
            && self.members.is_empty()
            && expired.len() == self.offsets.len();
        if gone {
            records.push((
                codec::encode_key(&RecordKey::GroupMetadata { group: self.id.clone() }),
                None,
            ));
        }
        (records, expired, gone)
    }

    /// Forgets offsets whose tombstones were written.
    /// Tombstones for every committed offset of `topics` (deleted topics, as Kafka's
    /// coordinator removes them) and the offsets they remove. The group itself stays, as in
    /// Kafka 4.4 (checked with the same steps): an empty group without offsets goes when
    /// offset retention says so, not with the topic.
    pub fn offsets_of_deleted_topics(
        &self,
        topics: &BTreeSet<String>,
    ) -> (Vec<Record>, Vec<(String, i32)>, bool) {
        let removed: Vec<(String, i32)> =
            self.offsets.keys().filter(|(t, _)| topics.contains(t)).cloned().collect();
        let records = removed.iter().map(|(t, p)| (self.offset_key(t, *p), None)).collect();
        (records, removed, false)
    }

    pub fn remove_offsets(&mut self, expired: &[(String, i32)]) {
        for k in expired {
            self.offsets.remove(k);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Timers.

    /// The earliest time at which [`Group::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter_map(|m| m.heartbeat_deadline);
        members
            .chain(self.pending_members.values().copied())
            .chain(self.join_deadline)
            .chain(self.sync_deadline)
            .min()
    }

    /// Runs every timeout that has passed: pending member ids, member sessions, the join phase
    /// (or the initial delay) and the sync phase.
    pub fn on_timer(&mut self, cfg: &GroupConfig, now: Now, log: &mut dyn RecordWriter) {
        let expired: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, &at)| at <= now.at)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "pending member id expired");
            self.pending_members.remove(&id);
            if self.state == GroupState::PreparingRebalance && self.has_all_members_joined() {
                self.complete_join(now, log);
            }
        }

        let due: Vec<String> = self
            .members
            .values()
            .filter(|m| m.heartbeat_deadline.is_some_and(|at| at <= now.at))
            .map(|m| m.id.clone())
            .collect();
        for id in due {
            let Some(m) = self.members.get_mut(&id) else { continue };
            if m.heartbeat_satisfied() {
                // Parked in a join or sync: the session restarts when it is answered.
                m.heartbeat_deadline = None;
                continue;
            }
            tracing::info!(group = %self.id, member = %id, "member session expired; removing it");
            self.remove_member(&id);
            self.after_member_removed(cfg, now, log);
        }

        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|at| at <= now.at)
        {
            match self.initial_remaining {
                Some(remaining) if self.new_member_added && !remaining.is_zero() => {
                    // Members keep arriving: extend the initial delay, within the rebalance
                    // timeout.
                    self.new_member_added = false;
                    let delay = cfg.initial_rebalance_delay.min(remaining);
                    self.initial_remaining = Some(remaining.saturating_sub(delay));
                    self.join_deadline = Some(now.at + delay);
                }
                _ => self.complete_join(now, log),
            }
        } else if self.state != GroupState::PreparingRebalance {
            self.join_deadline = None;
        }

        if self.sync_deadline.is_some_and(|at| at <= now.at) {
            self.sync_deadline = None;
            if matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable)
                && !self.pending_sync.is_empty()
            {
                let missing: Vec<String> = self.pending_sync.drain().collect();
                for id in &missing {
                    tracing::info!(group = %self.id, member = %id, "member did not sync in time");
                    self.remove_member(id);
                }
                self.prepare_rebalance(cfg, now, log);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Views.

    /// ListGroups' view of the group.
    pub fn listing(&self) -> GroupListing {
        GroupListing {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            state: self.state,
        }
    }

    /// DescribeGroups: members' metadata and assignments only while Stable, as Kafka.
    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                self.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members: self
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(self.protocol.as_deref())
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    /// What `/metrics` shows of the group.
    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            group_id: self.id.clone(),
            state: self.state,
            members: self.members.len(),
            generation: self.generation,
            offsets: self.offsets.iter().map(|((t, p), o)| (t.clone(), *p, o.offset)).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
