//! Consumer group APIs: FindCoordinator (0–6), JoinGroup (0–9), SyncGroup (0–5), Heartbeat
//! (0–4), LeaveGroup (0–5), OffsetCommit (2–9), OffsetFetch (1–9), ListGroups (0–5),
//! DescribeGroups (0–6), DeleteGroups (0–2) and OffsetDelete (0).
//!
//! Requests become calls on [`crate::group::GroupCoordinator`]; its [`GroupError`]s become
//! Kafka's codes here, with Kafka's per-API twists: a failed group-metadata append answers
//! COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR / UNKNOWN_SERVER_ERROR and a too-large offset
//! commit INVALID_COMMIT_OFFSET_SIZE; JoinGroup errors before v7 carry an empty protocol name
//! (null is not encodable there); OffsetFetch v1 reports group errors on every partition, v2–v7
//! at the top, v8+ per group; DescribeGroups of an unknown group is `Dead` (plus
//! GROUP_ID_NOT_FOUND from v6). Only FindCoordinator key type 0 (groups) is served. Share
//! groups answer COORDINATOR_NOT_AVAILABLE, as a Kafka broker without that coordinator does;
//! transactions are not implemented either, and their lookup answers the non-retriable
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED so that a transactional producer fails at once (the
//! Java client and librdkafka treat it as fatal) instead of retrying forever.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, RequestHeader, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::strb;
use crate::group::{
    self, CommitPartition, CommitRequest, CommittedOffset, GroupError, GroupState, JoinRequest,
    LeavingMember, StorageFailure, SyncRequest,
};
use crate::server::Broker;

/// Per topic, each partition's error code, or `None` for partitions handed to the coordinator
/// (their codes come from its answer, in order).
type PartitionCodes = Vec<(StrBytes, Vec<(i32, Option<i16>)>)>;

/// Group ACL operations reported when asked (no authorizer: all allowed): READ, DELETE,
/// DESCRIBE.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Kafka's error code for a group error.
pub fn group_error_code(e: &GroupError) -> i16 {
    let code = match e {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::MemberIdRequired(_) => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        // Kafka's `appendGroupMetadataErrorToResponseError`.
        GroupError::Storage(kind, _) => match kind {
            StorageFailure::Unavailable => ResponseError::CoordinatorNotAvailable,
            StorageFailure::NotLeader => ResponseError::NotCoordinator,
            StorageFailure::TooLarge | StorageFailure::Other => ResponseError::UnknownServerError,
        },
    };
    code.code()
}

/// OffsetCommit's variant: Kafka answers a too-large commit with INVALID_COMMIT_OFFSET_SIZE.
fn commit_error_code(e: &GroupError) -> i16 {
    match e {
        GroupError::Storage(StorageFailure::TooLarge, _) => {
            ResponseError::InvalidCommitOffsetSize.code()
        }
        e => group_error_code(e),
    }
}

/// The client's address as Kafka reports it (`InetAddress.toString()`: `/` and the IP).
fn client_host() -> String {
    crate::server::connection::PEER
        .try_with(|p| format!("/{}", p.ip()))
        .unwrap_or_else(|_| "/unknown".to_string())
}

fn opt_string(s: Option<StrBytes>) -> Option<String> {
    s.map(|s| s.to_string())
}

// ---------------------------------------------------------------------------------------------
// FindCoordinator.

/// The message of every answer to a transactional request.
pub const TRANSACTIONS_UNSUPPORTED: &str =
    "transactions are not supported by Sluice yet: remove transactional.id from the producer";

/// Looks up the coordinator of one key: `(node id, host, port)` or `(error code, message)`.
async fn find_one(
    broker: &Broker,
    key_type: i8,
    key: &str,
    version: i16,
) -> Result<(i32, String, i32), (i16, String)> {
    let unavailable = |msg: &str| (ResponseError::CoordinatorNotAvailable.code(), msg.to_string());
    match key_type {
        0 => {}
        1 => {
            return Err((
                ResponseError::TransactionalIdAuthorizationFailed.code(),
                TRANSACTIONS_UNSUPPORTED.to_string(),
            ))
        }
        2 if version >= 6 => {
            return Err(unavailable("share groups are not supported by this broker"))
        }
        _ => {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("unsupported coordinator key type {key_type} in version {version}"),
            ))
        }
    }
    let fail = |e: GroupError| (group_error_code(&e), e.to_string());
    broker.groups.ensure_offsets_topic().await.map_err(fail)?;
    let node = broker.groups.coordinator_for(key).map_err(fail)?;
    let image = broker.metadata.image();
    let listener = crate::server::connection::current_listener();
    match image.brokers.get(&node).filter(|b| !b.fenced).and_then(|b| b.endpoint(&listener)) {
        Some((host, port)) => Ok((node, host.to_string(), port as i32)),
        None => Err(fail(GroupError::CoordinatorNotAvailable)),
    }
}

/// FindCoordinator (0–6): one key before v4, a batch from v4.
pub async fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in req.coordinator_keys {
            let c = Coordinator::default().with_key(key.clone());
            coordinators.push(match find_one(broker, req.key_type, &key, version).await {
                Ok((node, host, port)) => c
                    .with_node_id(BrokerId(node))
                    .with_host(strb(&host))
                    .with_port(port)
                    .with_error_message(None),
                Err((code, msg)) => c
                    .with_node_id(BrokerId(-1))
                    .with_host(strb(""))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(Some(strb(&msg))),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let key_type = if version >= 1 { req.key_type } else { 0 };
    match find_one(broker, key_type, &req.key, version).await {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(strb(&host))
            .with_port(port)
            .with_error_message(None),
        Err((code, msg)) => FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(Some(strb(&msg)))
            .with_node_id(BrokerId(-1))
            .with_host(strb(""))
            .with_port(-1),
    }
}

// ---------------------------------------------------------------------------------------------
// Membership.

/// JoinGroup (0–9); waits until the join phase completes.
pub async fn join_group(
    broker: &Broker,
    header: &RequestHeader,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let member_id = req.member_id.clone();
    let domain = JoinRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt_string(req.group_instance_id),
        client_id: header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        client_host: client_host(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout bounds the rebalance, as in Kafka.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    // Before v7 the protocol name is not nullable.
    let name = |n: Option<String>| match n {
        Some(n) => Some(strb(&n)),
        None if version < 7 => Some(strb("")),
        None => None,
    };
    let group_id = domain.group_id.clone();
    // What the join wrote to `__consumer_offsets` (a static member's replacement, an emptied
    // group) is answered once the in-sync replicas have it, as Kafka stores group metadata
    // with acks=all.
    let joined = match broker.groups.join(domain).await {
        Ok(r) => broker.groups.wait_replicated(&group_id).await.map(|()| r),
        Err(e) => Err(e),
    };
    match joined {
        Ok(r) => {
            let members = r
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(strb(&m.member_id))
                        .with_group_instance_id(if version >= 5 {
                            m.group_instance_id.as_deref().map(strb)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect();
            JoinGroupResponse::default()
                .with_generation_id(r.generation_id)
                .with_protocol_type(r.protocol_type.as_deref().map(strb))
                .with_protocol_name(name(r.protocol_name))
                .with_leader(strb(&r.leader))
                .with_skip_assignment(version >= 9 && r.skip_assignment)
                .with_member_id(strb(&r.member_id))
                .with_members(members)
        }
        Err(e) => {
            let member_id = match &e {
                GroupError::MemberIdRequired(id) => strb(id),
                _ => member_id,
            };
            JoinGroupResponse::default()
                .with_error_code(group_error_code(&e))
                .with_generation_id(-1)
                .with_protocol_type(None)
                .with_protocol_name(name(None))
                .with_leader(strb(""))
                .with_member_id(member_id)
        }
    }
}

/// SyncGroup (0–5); waits for the leader's assignment.
pub async fn sync_group(broker: &Broker, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    // From v5 the protocol type and name are mandatory: without them Kafka answers
    // INCONSISTENT_GROUP_PROTOCOL before looking at the group (`areMandatoryProtocolTypeAndNamePresent`).
    if version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::InconsistentGroupProtocol.code());
    }
    let domain = SyncRequest {
        group_id: req.group_id.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: opt_string(req.group_instance_id),
        protocol_type: if version >= 5 { opt_string(req.protocol_type) } else { None },
        protocol_name: if version >= 5 { opt_string(req.protocol_name) } else { None },
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let group_id = domain.group_id.clone();
    // The leader's assignment is stored in `__consumer_offsets`; every member's answer waits
    // until the in-sync replicas have it, so a coordinator failover cannot lose an assignment
    // a member already works with (Kafka answers SyncGroup from its append callback).
    let synced = match broker.groups.sync(domain).await {
        Ok(r) => broker.groups.wait_replicated(&group_id).await.map(|()| r),
        Err(e) => Err(e),
    };
    match synced {
        Ok(r) => SyncGroupResponse::default()
            .with_protocol_type(r.protocol_type.as_deref().map(strb))
            .with_protocol_name(r.protocol_name.as_deref().map(strb))
            .with_assignment(r.assignment),
        Err(e) => SyncGroupResponse::default().with_error_code(group_error_code(&e)),
    }
}

/// Heartbeat (0–4).
pub fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    let domain = group::HeartbeatRequest {
        group_id: req.group_id.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: opt_string(req.group_instance_id),
    };
    let code = match broker.groups.heartbeat(domain) {
        Ok(()) => 0,
        Err(e) => group_error_code(&e),
    };
    HeartbeatResponse::default().with_error_code(code)
}

/// LeaveGroup (0–5): one member before v3, a batch (with per-member errors) from v3.
pub fn leave_group(broker: &Broker, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = req.group_id.to_string();
    if version < 3 {
        let member =
            LeavingMember { member_id: req.member_id.to_string(), group_instance_id: None };
        let code = match broker.groups.leave(&group_id, vec![member]) {
            Ok(results) => match results.into_iter().next() {
                Some(Err(e)) => group_error_code(&e),
                _ => 0,
            },
            Err(e) => group_error_code(&e),
        };
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let leaving: Vec<LeavingMember> = req
        .members
        .iter()
        .map(|m| LeavingMember {
            member_id: m.member_id.to_string(),
            group_instance_id: opt_string(m.group_instance_id.clone()),
        })
        .collect();
    match broker.groups.leave(&group_id, leaving) {
        Ok(results) => {
            let members = req
                .members
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    // Kafka echoes the request's member id, "" for a removal by instance id
                    // (the Java admin client matches results on it).
                    let resp = MemberResponse::default()
                        .with_group_instance_id(m.group_instance_id)
                        .with_member_id(m.member_id);
                    match r {
                        Ok(_) => resp,
                        Err(e) => resp.with_error_code(group_error_code(&e)),
                    }
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
        Err(e) => LeaveGroupResponse::default().with_error_code(group_error_code(&e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Offsets.

/// OffsetCommit (2–9): partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION without
/// reaching the coordinator, as in Kafka.
pub async fn offset_commit(
    broker: &Broker,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let image = broker.metadata.image();
    let mut offsets = Vec::new();
    // Per topic: its partitions' results, `None` for those handed to the coordinator.
    let mut layout: PartitionCodes = Vec::new();
    for t in req.topics {
        let name = t.name.to_string();
        let known = image.topic(&name).is_some();
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            if !known {
                parts
                    .push((p.partition_index, Some(ResponseError::UnknownTopicOrPartition.code())));
                continue;
            }
            parts.push((p.partition_index, None));
            offsets.push(CommitPartition {
                topic: name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: opt_string(p.committed_metadata),
            });
        }
        layout.push((t.name.0, parts));
    }
    let results: Result<Vec<Result<(), GroupError>>, GroupError> = if offsets.is_empty() {
        Ok(Vec::new())
    } else {
        broker.groups.commit_offsets(CommitRequest {
            group_id: req.group_id.to_string(),
            generation_id: req.generation_id_or_member_epoch,
            member_id: req.member_id.to_string(),
            group_instance_id: opt_string(req.group_instance_id),
            retention_ms: (version <= 4 && req.retention_time_ms != -1)
                .then_some(req.retention_time_ms),
            group_id_not_found_if_missing: version >= 9,
            offsets,
        })
    };
    // The commit is acknowledged once every in-sync replica of the group's __consumer_offsets
    // partition has it (as Kafka appends offsets with acks=all); until then a coordinator
    // failover could lose it.
    let results = match results {
        Ok(r) if r.iter().any(Result::is_ok) => {
            match broker.groups.wait_replicated(req.group_id.as_str()).await {
                Ok(()) => Ok(r),
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    // A group-level error applies to every partition that went to the coordinator.
    let (group_code, per_partition) = match &results {
        Ok(r) => {
            (None, r.iter().map(|r| r.as_ref().err().map(commit_error_code).unwrap_or(0)).collect())
        }
        Err(e) => (Some(commit_error_code(e)), Vec::new()),
    };
    let mut codes = per_partition.into_iter();
    let topics = layout
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(index, code)| {
                    let code = code.or(group_code).unwrap_or_else(|| codes.next().unwrap_or(0));
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(kafka_protocol::messages::TopicName(name))
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's OffsetFetch result.
type FetchedOffsets = Result<crate::group::TopicOffsets, GroupError>;

/// `(offset, leader epoch, metadata)` of a partition; -1, -1 and "" when nothing is committed,
/// as Kafka answers.
fn offset_fields(o: Option<&CommittedOffset>) -> (i64, i32, Option<StrBytes>) {
    match o {
        Some(o) => (o.offset, o.leader_epoch, Some(strb(&o.metadata))),
        None => (-1, -1, Some(strb(""))),
    }
}

fn requested_topics<T>(
    topics: Option<Vec<T>>,
    split: impl Fn(T) -> (String, Vec<i32>),
) -> Option<Vec<(String, Vec<i32>)>> {
    topics.map(|ts| ts.into_iter().map(split).collect())
}

/// OffsetFetch v8+: several groups, each with its own error.
fn offset_fetch_groups(broker: &Broker, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let topics = requested_topics(g.topics, |t| (t.name.to_string(), t.partition_indexes));
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            let found: FetchedOffsets = broker.groups.fetch_offsets(&g.group_id, topics);
            match found {
                Err(e) => group.with_error_code(group_error_code(&e)),
                Ok(found) => group.with_topics(
                    found
                        .into_iter()
                        .map(|(name, parts)| {
                            let partitions = parts
                                .iter()
                                .map(|(i, o)| {
                                    let (offset, epoch, metadata) = offset_fields(o.as_ref());
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(*i)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(metadata)
                                })
                                .collect();
                            OffsetFetchResponseTopics::default()
                                .with_name(super::topic_name(&name))
                                .with_partitions(partitions)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

fn fetched_partition(
    version: i16,
    index: i32,
    o: Option<&CommittedOffset>,
) -> OffsetFetchResponsePartition {
    let (offset, epoch, metadata) = offset_fields(o);
    OffsetFetchResponsePartition::default()
        .with_partition_index(index)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(if version >= 5 { epoch } else { -1 })
        .with_metadata(metadata)
}

/// OffsetFetch (1–9).
pub fn offset_fetch(broker: &Broker, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        return offset_fetch_groups(broker, req);
    }
    let requested = requested_topics(req.topics, |t| (t.name.to_string(), t.partition_indexes));
    let topic = |name: &str, partitions| {
        OffsetFetchResponseTopic::default()
            .with_name(super::topic_name(name))
            .with_partitions(partitions)
    };
    match broker.groups.fetch_offsets(&req.group_id, requested.clone()) {
        Ok(found) => OffsetFetchResponse::default().with_topics(
            found
                .iter()
                .map(|(name, parts)| {
                    topic(
                        name,
                        parts
                            .iter()
                            .map(|(i, o)| fetched_partition(version, *i, o.as_ref()))
                            .collect(),
                    )
                })
                .collect(),
        ),
        Err(e) if version < 2 => {
            // v1 has no top-level error: every requested partition carries it.
            let code = group_error_code(&e);
            OffsetFetchResponse::default().with_topics(
                requested
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, parts)| {
                        let partitions = parts
                            .into_iter()
                            .map(|i| fetched_partition(version, i, None).with_error_code(code))
                            .collect();
                        topic(&name, partitions)
                    })
                    .collect(),
            )
        }
        Err(e) => OffsetFetchResponse::default().with_error_code(group_error_code(&e)),
    }
}

/// OffsetDelete (0): partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION.
pub fn offset_delete(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let image = broker.metadata.image();
    let mut wanted = Vec::new();
    let mut layout: PartitionCodes = Vec::new();
    for t in req.topics {
        let name = t.name.to_string();
        let topic = image.topic(&name);
        let parts = t
            .partitions
            .into_iter()
            .map(|p| {
                let exists = topic.is_some_and(|t| t.partitions.contains_key(&p.partition_index));
                if exists {
                    wanted.push((name.clone(), p.partition_index));
                    (p.partition_index, None)
                } else {
                    (p.partition_index, Some(ResponseError::UnknownTopicOrPartition.code()))
                }
            })
            .collect();
        layout.push((t.name.0, parts));
    }
    match broker.groups.delete_offsets(&req.group_id, wanted) {
        Err(e) => OffsetDeleteResponse::default().with_error_code(group_error_code(&e)),
        Ok(results) => {
            let mut codes =
                results.into_iter().map(|r| r.err().map(|e| group_error_code(&e)).unwrap_or(0));
            let topics = layout
                .into_iter()
                .map(|(name, parts)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(kafka_protocol::messages::TopicName(name))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(i, code)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(i)
                                        .with_error_code(
                                            code.unwrap_or_else(|| codes.next().unwrap_or(0)),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Administration.

/// ListGroups (0–5), with the state filter (v4+) and type filter (v5).
pub fn list_groups(broker: &Broker, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = if version >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    // Every group here is a classic group.
    let classic_wanted = version < 5
        || req.types_filter.is_empty()
        || req.types_filter.iter().any(|t| t.eq_ignore_ascii_case("classic"));
    match broker.groups.list_groups() {
        Err(e) => ListGroupsResponse::default().with_error_code(group_error_code(&e)),
        Ok(groups) => {
            let groups = groups
                .into_iter()
                .filter(|_| classic_wanted)
                .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
                .map(|g| {
                    ListedGroup::default()
                        .with_group_id(GroupId(strb(&g.group_id)))
                        .with_protocol_type(strb(&g.protocol_type))
                        .with_group_state(strb(g.state.name()))
                        .with_group_type(strb("classic"))
                })
                .collect();
            ListGroupsResponse::default().with_groups(groups)
        }
    }
}

/// DescribeGroups (0–6).
pub fn describe_groups(
    broker: &Broker,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let operations = if version >= 3 && req.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        OPERATIONS_OMITTED
    };
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(operations);
            match broker.groups.describe_group(&id) {
                Err(e) => described
                    .with_error_code(group_error_code(&e))
                    .with_error_message((version >= 6).then(|| strb(&e.to_string())))
                    .with_authorized_operations(OPERATIONS_OMITTED),
                Ok(None) => {
                    let dead = described
                        .with_group_state(strb(GroupState::Dead.name()))
                        .with_authorized_operations(OPERATIONS_OMITTED);
                    if version >= 6 {
                        dead.with_error_code(ResponseError::GroupIdNotFound.code())
                            .with_error_message(Some(strb(&format!("Group {} not found.", &*id))))
                    } else {
                        dead
                    }
                }
                Ok(Some(d)) => described
                    .with_group_state(strb(d.state.name()))
                    .with_protocol_type(strb(&d.protocol_type))
                    .with_protocol_data(strb(&d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(strb(&m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        m.group_instance_id.as_deref().map(strb)
                                    } else {
                                        None
                                    })
                                    .with_client_id(strb(&m.client_id))
                                    .with_client_host(strb(&m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups (0–2).
pub fn delete_groups(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|id| {
            let code = match broker.groups.delete_group(&id) {
                Ok(()) => 0,
                Err(e) => group_error_code(&e),
            };
            DeletableGroupResult::default().with_group_id(id).with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
