//! Every API at every version the broker advertises gets a well-formed response: a request is
//! sent for each (API, version) in ApiVersions, with real content (an existing topic and
//! partition), and the response must decode at that version with the right correlation id. A
//! response field that a version cannot carry would make encoding fail and close the
//! connection, which this test turns into a failure. An advertised API without a case here fails
//! the test too, so new APIs must be added.

mod common;

use bytes::Bytes;
use common::BrokerProcess;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}
fn tn(x: &str) -> TopicName {
    TopicName(s(x))
}

/// Sends `body` and decodes the response as `key` at `version`.
fn call(c: &mut common::RawConn, key: ApiKey, version: i16, body: &RequestKind) -> ResponseKind {
    let mut resp = c.call_with(key, version, |buf| {
        body.encode(buf, version).unwrap_or_else(|e| panic!("encoding {key:?} v{version}: {e}"))
    });
    ResponseKind::decode(key, &mut resp, version)
        .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response: {e}"))
}

fn records() -> Bytes {
    common::client_batch(&[(Some(b"k"), Some(b"v"))]).freeze()
}

/// A request with real content for `key` at `version`.
fn request(key: ApiKey, v: i16, topic_id: uuid::Uuid) -> RequestKind {
    const T: &str = "versions";
    match key {
        ApiKey::ApiVersions => RequestKind::ApiVersions(if v >= 3 {
            ApiVersionsRequest::default()
                .with_client_software_name(s("t"))
                .with_client_software_version(s("1"))
        } else {
            ApiVersionsRequest::default()
        }),
        ApiKey::Metadata => RequestKind::Metadata(
            MetadataRequest::default()
                .with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(tn(T)))
                ]))
                .with_allow_auto_topic_creation(true),
        ),
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
                produce_request::TopicProduceData::default().with_name(tn(T)).with_partition_data(
                    vec![produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records()))],
                ),
            ]),
        ),
        ApiKey::Fetch => {
            let mut p = fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20);
            if v >= 9 {
                p = p.with_current_leader_epoch(0);
            }
            let mut t = fetch_request::FetchTopic::default().with_partitions(vec![p]);
            t = if v >= 13 { t.with_topic_id(topic_id) } else { t.with_topic(tn(T)) };
            let mut r =
                FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_topics(vec![t]);
            if v >= 3 {
                r = r.with_max_bytes(1 << 20);
            }
            if v >= 7 {
                r = r.with_session_epoch(-1);
            }
            if v >= 15 {
                r = r.with_replica_state(
                    fetch_request::ReplicaState::default().with_replica_id((-1).into()),
                );
            } else {
                r = r.with_replica_id((-1).into());
            }
            RequestKind::Fetch(r)
        }
        ApiKey::ListOffsets => RequestKind::ListOffsets(
            ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(tn(T)).with_partitions(
                    vec![list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)],
                ),
            ]),
        ),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochRequest::default().with_replica_id((-1).into()).with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(tn(T))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_leader_epoch(0),
                    ]),
            ]),
        ),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(
            DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(tn(T))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(0),
                    ]),
            ]),
        ),
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_validate_only(true)
                .with_timeout_ms(5000)
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(tn(&format!("new-{v}")))
                    .with_num_partitions(2)
                    .with_replication_factor(1)
                    .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1000")))])]),
        ),
        // A timeout as clients send (Kafka's controller times out at once on 0).
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(if v >= 6 {
            DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(tn("missing")))])
        } else {
            DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topic_names(vec![tn("missing")])
        }),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_validate_only(true)
                .with_timeout_ms(5000)
                // No assignments (null), as clients send for automatic placement.
                .with_topics(vec![create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(tn(T))
                    .with_count(3)
                    .with_assignments(None)]),
        ),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(
            DescribeConfigsRequest::default()
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(T)),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("")),
                ])
                .with_include_synonyms(v >= 1)
                .with_include_documentation(v >= 3),
        ),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(
            AlterConfigsRequest::default().with_validate_only(true).with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(T))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("5000")))]),
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1"))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("log.retention.ms"))
                        .with_value(Some(s("5000")))]),
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s(""))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("node.id"))
                        .with_value(Some(s("2")))]),
            ]),
        ),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_validate_only(true).with_resources(
                vec![incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(T))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("5000"))),
                    ])],
            ),
        ),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        ),
        ApiKey::DescribeQuorum => {
            RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(tn("__cluster_metadata"))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0),
                    ]),
            ]))
        }
        // The only replica already leads: a preferred election is not needed.
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(
            ElectLeadersRequest::default().with_timeout_ms(10_000).with_topic_partitions(Some(
                vec![elect_leaders_request::TopicPartitions::default()
                    .with_topic(tn(T))
                    .with_partitions(vec![0])],
            )),
        ),
        // Cancelling where nothing moves: NO_REASSIGNMENT_IN_PROGRESS.
        ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(
                vec![alter_partition_reassignments_request::ReassignableTopic::default()
                    .with_name(tn(T))
                    .with_partitions(vec![
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(0),
                    ])],
            ),
        ),
        ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(
            ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000),
        ),
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ),
        ApiKey::DescribeLogDirs => {
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None))
        }
        ApiKey::AlterReplicaLogDirs => {
            RequestKind::AlterReplicaLogDirs(AlterReplicaLogDirsRequest::default().with_dirs(vec![
                alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                    .with_path(s("/no-such-log-dir"))
                    .with_topics(vec![
                        alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                            .with_name(tn(T))
                            .with_partitions(vec![0]),
                    ]),
            ]))
        }
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(tn(T))
                    .with_partition_indexes(vec![0]),
            ]))
        }
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("versions-tx"))]),
        ),
        ApiKey::ListTransactions => {
            RequestKind::ListTransactions(ListTransactionsRequest::default())
        }
        // Consumer groups. Joins complete at once (the broker runs with no initial rebalance
        // delay); the other membership calls name an unknown member and get Kafka's error.
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("versions-group")])
        } else {
            FindCoordinatorRequest::default().with_key(s("versions-group"))
        }),
        ApiKey::JoinGroup => {
            let protocol = join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b'v', 0, 0, 0, 0]));
            let r = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&format!("versions-join-v{v}"))))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(s(""))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![protocol]);
            // Static members (v5+) join at once; dynamic ones from v4 first get a member id.
            RequestKind::JoinGroup(if v >= 5 { r.with_group_instance_id(Some(s("i"))) } else { r })
        }
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(GroupId(s("versions-none")))
                .with_generation_id(1)
                .with_member_id(s("nobody")),
        ),
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(GroupId(s("versions-none")))
                .with_generation_id(1)
                .with_member_id(s("nobody")),
        ),
        ApiKey::LeaveGroup => {
            let r = LeaveGroupRequest::default().with_group_id(GroupId(s("versions-none")));
            RequestKind::LeaveGroup(if v >= 3 {
                r.with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s("nobody"))
                ])
            } else {
                r.with_member_id(s("nobody"))
            })
        }
        // A commit outside group management (generation -1), as admin tools make.
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s("versions-commit")))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(s(""))
                .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(tn(T))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(1)
                            .with_committed_metadata(Some(s("m"))),
                    ])]),
        ),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(if v >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("versions-commit")))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(tn(T))
                            .with_partition_indexes(vec![0]),
                    ])),
            ])
        } else {
            OffsetFetchRequest::default().with_group_id(GroupId(s("versions-commit"))).with_topics(
                Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(tn(T))
                    .with_partition_indexes(vec![0])]),
            )
        }),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(
            DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("versions-commit"))])
                .with_include_authorized_operations(v >= 3),
        ),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("versions-missing"))]),
        ),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("versions-commit")))
                .with_topics(vec![offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(tn(T))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ])]),
        ),
        other => panic!("advertised API {other:?} has no case in broker_versions.rs: add one"),
    }
}

/// Checks the response carries no error where none is expected.
fn check(key: ApiKey, v: i16, resp: &ResponseKind) {
    let ctx = format!("{key:?} v{v}");
    match resp {
        ResponseKind::ApiVersions(r) => assert_eq!(r.error_code, 0, "{ctx}"),
        ResponseKind::Metadata(r) => assert_eq!(r.topics[0].error_code, 0, "{ctx}"),
        ResponseKind::Produce(r) => {
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "{ctx}")
        }
        ResponseKind::Fetch(r) => {
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "{ctx}");
            assert!(p.records.as_ref().is_some_and(|b| !b.is_empty()), "{ctx}: records returned");
        }
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "{ctx}");
            assert!(p.offset > 0, "{ctx}");
        }
        ResponseKind::OffsetForLeaderEpoch(r) => {
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "{ctx}")
        }
        ResponseKind::DeleteRecords(r) => {
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "{ctx}")
        }
        ResponseKind::CreateTopics(r) => assert_eq!(r.topics[0].error_code, 0, "{ctx}"),
        ResponseKind::DeleteTopics(r) => {
            assert_eq!(r.responses[0].error_code, 3, "{ctx}: UNKNOWN_TOPIC_OR_PARTITION")
        }
        ResponseKind::CreatePartitions(r) => assert_eq!(r.results[0].error_code, 0, "{ctx}"),
        ResponseKind::DescribeConfigs(r) => {
            assert_eq!(r.results[0].error_code, 0, "{ctx}");
            assert!(!r.results[0].configs.is_empty(), "{ctx}");
            assert_eq!(r.results[1].error_code, 0, "{ctx}");
        }
        ResponseKind::AlterConfigs(r) => {
            assert_eq!(r.responses[0].error_code, 0, "{ctx}");
            assert_eq!(r.responses[1].error_code, 0, "{ctx}: a dynamic broker config");
            assert_eq!(r.responses[2].error_code, 42, "{ctx}: node.id is not dynamic");
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            assert_eq!(r.responses[0].error_code, 0, "{ctx}")
        }
        ResponseKind::DescribeCluster(r) => assert_eq!(r.error_code, 0, "{ctx}"),
        ResponseKind::DescribeQuorum(r) => {
            assert_eq!(r.error_code, 0, "{ctx}");
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.error_code, p.current_voters.len()), (0, 1), "{ctx}");
            assert!(p.high_watermark > 0 && p.leader_epoch > 0, "{ctx}: {p:?}");
        }
        ResponseKind::ElectLeaders(r) => {
            assert_eq!(r.error_code, 0, "{ctx}");
            let p = &r.replica_election_results[0].partition_result[0];
            assert_eq!(p.error_code, 84, "{ctx}: ELECTION_NOT_NEEDED");
        }
        ResponseKind::AlterPartitionReassignments(r) => {
            assert_eq!(r.error_code, 0, "{ctx}");
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 85, "{ctx}: NO_REASSIGNMENT_IN_PROGRESS");
        }
        ResponseKind::ListPartitionReassignments(r) => {
            assert_eq!((r.error_code, r.topics.len()), (0, 0), "{ctx}: nothing moves")
        }
        ResponseKind::InitProducerId(r) => assert_eq!(r.error_code, 0, "{ctx}"),
        ResponseKind::DescribeLogDirs(r) => {
            assert_eq!((r.error_code, r.results.len()), (0, 1), "{ctx}");
            assert!(!r.results[0].topics.is_empty(), "{ctx}: the partitions hosted here");
        }
        ResponseKind::AlterReplicaLogDirs(r) => {
            assert_eq!(r.results[0].partitions[0].error_code, 57, "{ctx}: LOG_DIR_NOT_FOUND")
        }
        ResponseKind::DescribeProducers(r) => {
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "{ctx}")
        }
        // Kafka answers at its transaction coordinator only (NOT_COORDINATOR elsewhere; see
        // log_dir_producer_and_transaction_apis_answer_as_kafka); Sluice has none.
        ResponseKind::DescribeTransactions(r) if common::against_kafka() => {
            assert_eq!(r.transaction_states[0].error_code, 16, "{ctx}: NOT_COORDINATOR")
        }
        ResponseKind::DescribeTransactions(r) => {
            assert_eq!(r.transaction_states[0].error_code, 105, "{ctx}: TRANSACTIONAL_ID_NOT_FOUND")
        }
        ResponseKind::ListTransactions(r) => assert_eq!(r.error_code, 0, "{ctx}"),
        ResponseKind::FindCoordinator(r) if v >= 4 => {
            assert_eq!(r.coordinators[0].error_code, 0, "{ctx}");
            assert_eq!(r.coordinators[0].node_id.0, 1, "{ctx}");
        }
        ResponseKind::FindCoordinator(r) => {
            assert_eq!((r.error_code, r.node_id.0), (0, 1), "{ctx}")
        }
        ResponseKind::JoinGroup(r) if v == 4 => {
            assert_eq!(r.error_code, 79, "{ctx}: MEMBER_ID_REQUIRED")
        }
        ResponseKind::JoinGroup(r) => {
            assert_eq!((r.error_code, r.generation_id, r.members.len()), (0, 1, 1), "{ctx}");
            assert_eq!(r.leader, r.member_id, "{ctx}");
            assert_eq!(r.members[0].group_instance_id.is_some(), v >= 5, "{ctx}");
        }
        // From v5 protocol type and name are mandatory (the request has none).
        ResponseKind::SyncGroup(r) if v >= 5 => {
            assert_eq!(r.error_code, 23, "{ctx}: INCONSISTENT_GROUP_PROTOCOL")
        }
        ResponseKind::SyncGroup(r) => assert_eq!(r.error_code, 25, "{ctx}: UNKNOWN_MEMBER_ID"),
        ResponseKind::Heartbeat(r) => assert_eq!(r.error_code, 25, "{ctx}: UNKNOWN_MEMBER_ID"),
        ResponseKind::LeaveGroup(r) if v >= 3 => {
            assert_eq!((r.error_code, r.members[0].error_code), (0, 25), "{ctx}")
        }
        ResponseKind::LeaveGroup(r) => assert_eq!(r.error_code, 25, "{ctx}: UNKNOWN_MEMBER_ID"),
        ResponseKind::OffsetCommit(r) => {
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "{ctx}")
        }
        // OffsetCommit (earlier in the advertised order) stored offset 1.
        ResponseKind::OffsetFetch(r) if v >= 8 => {
            let p = &r.groups[0].topics[0].partitions[0];
            assert_eq!(
                (r.groups[0].error_code, p.error_code, p.committed_offset),
                (0, 0, 1),
                "{ctx}"
            );
        }
        ResponseKind::OffsetFetch(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!((r.error_code, p.error_code, p.committed_offset), (0, 0, 1), "{ctx}");
        }
        ResponseKind::ListGroups(r) => {
            assert_eq!(r.error_code, 0, "{ctx}");
            assert!(r.groups.iter().any(|g| g.group_id.as_str() == "versions-commit"), "{ctx}");
        }
        ResponseKind::DescribeGroups(r) => {
            let g = &r.groups[0];
            assert_eq!((g.error_code, g.group_state.as_str()), (0, "Empty"), "{ctx}");
        }
        ResponseKind::DeleteGroups(r) => {
            assert_eq!(r.results[0].error_code, 69, "{ctx}: GROUP_ID_NOT_FOUND")
        }
        ResponseKind::OffsetDelete(r) => {
            assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0), "{ctx}")
        }
        _ => {}
    }
}

#[test]
fn every_advertised_api_version_answers() {
    let dir = tempfile::tempdir().unwrap();
    // No initial rebalance delay: JoinGroup cases complete at once.
    let broker = BrokerProcess::start(dir.path(), &["--set", "group.initial.rebalance.delay.ms=0"]);
    let mut c = common::RawConn::connect(&broker);
    // The topic used by every case, created through Metadata auto-creation.
    // (Kafka answers LEADER_NOT_AVAILABLE, without an id, while it creates the topic.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let topic_id = loop {
        let md =
            call(&mut c, ApiKey::Metadata, 12, &request(ApiKey::Metadata, 12, uuid::Uuid::nil()));
        let ResponseKind::Metadata(md) = md else { panic!() };
        let id = md.topics[0].topic_id;
        if (!id.is_nil() && md.topics[0].error_code == 0) || std::time::Instant::now() > deadline {
            break id;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(!topic_id.is_nil());
    let ResponseKind::ApiVersions(versions) =
        call(&mut c, ApiKey::ApiVersions, 3, &request(ApiKey::ApiVersions, 3, topic_id))
    else {
        panic!()
    };
    // Against Kafka (reference mode), the versions Sluice implements, each checked for Kafka's
    // answer; against Sluice, what it advertises.
    let ranges: Vec<(ApiKey, i16, i16)> = if common::against_kafka() {
        sluice_broker::api::SUPPORTED.to_vec()
    } else {
        versions
            .api_keys
            .iter()
            .map(|a| (ApiKey::try_from(a.api_key).unwrap(), a.min_version, a.max_version))
            .collect()
    };
    let mut calls = 0;
    for &(key, min, max) in &ranges {
        for v in min..=max {
            // Produce first so Fetch, ListOffsets and DeleteRecords have data.
            if key != ApiKey::Produce {
                call(&mut c, ApiKey::Produce, 9, &request(ApiKey::Produce, 9, topic_id));
            }
            // Coordinators load after the first lookup: a group call or InitProducerId may meet
            // COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE, which clients retry.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let resp = loop {
                let resp = call(&mut c, key, v, &request(key, v, topic_id));
                let loading = match &resp {
                    ResponseKind::JoinGroup(r) => r.error_code == 14,
                    ResponseKind::InitProducerId(r) => r.error_code == 14,
                    ResponseKind::FindCoordinator(r) => {
                        r.error_code == 15 || r.coordinators.iter().any(|c| c.error_code == 15)
                    }
                    _ => false,
                };
                if !loading || std::time::Instant::now() > deadline {
                    break resp;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            };
            check(key, v, &resp);
            calls += 1;
        }
    }
    assert!(calls > 60, "{calls} calls");
}
