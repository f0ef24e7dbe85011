//! The error codes a response carries, for `sluice_error_responses_total{api,error}`: the
//! top-level code and every per-topic, per-partition, per-group or per-resource one, so an
//! operator sees NOT_LEADER_OR_FOLLOWER on Produce or COORDINATOR_LOAD_IN_PROGRESS on JoinGroup
//! without reading client logs.

use kafka_protocol::messages::ResponseKind;

/// Calls `f` with every non-zero error code in `response`.
pub fn for_each_error(response: &ResponseKind, mut f: impl FnMut(i16)) {
    let mut e = |code: i16| {
        if code != 0 {
            f(code)
        }
    };
    match response {
        ResponseKind::Produce(r) => {
            r.responses.iter().flat_map(|t| &t.partition_responses).for_each(|p| e(p.error_code))
        }
        ResponseKind::Fetch(r) => {
            e(r.error_code);
            r.responses.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code));
        }
        ResponseKind::ListOffsets(r) => {
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code))
        }
        ResponseKind::Metadata(r) => r.topics.iter().for_each(|t| {
            e(t.error_code);
            t.partitions.iter().for_each(|p| e(p.error_code));
        }),
        ResponseKind::OffsetForLeaderEpoch(r) => {
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code))
        }
        ResponseKind::DeleteRecords(r) => {
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code))
        }
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| e(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| e(t.error_code)),
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| e(t.error_code)),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|t| e(t.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|t| e(t.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|t| e(t.error_code))
        }
        ResponseKind::DescribeCluster(r) => e(r.error_code),
        ResponseKind::ApiVersions(r) => e(r.error_code),
        ResponseKind::InitProducerId(r) => e(r.error_code),
        ResponseKind::DescribeLogDirs(r) => {
            e(r.error_code);
            r.results.iter().for_each(|d| e(d.error_code));
        }
        ResponseKind::AlterReplicaLogDirs(r) => {
            r.results.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code))
        }
        ResponseKind::DescribeProducers(r) => {
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code))
        }
        ResponseKind::DescribeTransactions(r) => {
            r.transaction_states.iter().for_each(|t| e(t.error_code))
        }
        ResponseKind::ListTransactions(r) => e(r.error_code),
        ResponseKind::FindCoordinator(r) => {
            e(r.error_code);
            r.coordinators.iter().for_each(|c| e(c.error_code));
        }
        ResponseKind::JoinGroup(r) => e(r.error_code),
        ResponseKind::SyncGroup(r) => e(r.error_code),
        ResponseKind::Heartbeat(r) => e(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            e(r.error_code);
            r.members.iter().for_each(|m| e(m.error_code));
        }
        ResponseKind::OffsetCommit(r) => {
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code))
        }
        ResponseKind::OffsetFetch(r) => {
            e(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code));
            r.groups.iter().for_each(|g| {
                e(g.error_code);
                g.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code));
            });
        }
        ResponseKind::ListGroups(r) => e(r.error_code),
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| e(g.error_code)),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| e(g.error_code)),
        ResponseKind::OffsetDelete(r) => {
            e(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code));
        }
        _ => {}
    }
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`, `NONE` for 0), or the number for
/// unknown ones.
pub fn error_name(code: i16) -> String {
    if code == 0 {
        return "NONE".to_string();
    }
    match kafka_protocol::ResponseError::try_from_code(code).map(|e| format!("{e:?}")) {
        // Codes the crate does not know come back as `Unknown(code)`.
        Some(name) if !name.contains('(') => screaming_snake(&name),
        _ => code.to_string(),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(87), "INVALID_RECORD");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(30000), "30000");
    }
}
