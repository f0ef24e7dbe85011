//! What the console can change, when `console.actions.enable=true`: create a topic, add
//! partitions, change or remove topic configs, delete a topic, reset an inactive group's
//! offsets.
//!
//! Each action is the Kafka request a client would send, handed to the same handler (topics,
//! configs) or sent over the Kafka protocol to the broker that must answer it (ListOffsets to
//! each partition's leader, OffsetCommit to the group's coordinator), so validation, error
//! codes and messages are Kafka's. Answers are `{ok, results: [{resource, error_code, error,
//! message}]}`.
//!
//! A request must carry `X-Sluice-Console: 1` (a form on another site cannot send a custom
//! header without a preflight, which is never approved) and, when it has a body, a JSON
//! content type; its `Host` must be an address, `localhost`, a registered broker host or a
//! cluster Service name, so that a page on a rebound DNS name cannot reach it.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest,
    OffsetCommitResponse,
};
use serde_json::{json, Value};
use sluice_client::KafkaConnection;

use super::{error, ConsoleError};
use crate::api::errors::error_name;
use crate::api::{strb, topic_name};
use crate::http::Request;
use crate::metadata::ClusterImage;
use crate::server::Broker;

/// How long an action waits for the controller, a leader or the coordinator.
const TIMEOUT: Duration = Duration::from_secs(10);
const RESOURCE_TOPIC: i8 = 2;
const NON_EMPTY_GROUP: i16 = 68;

/// The checks every action passes first.
pub fn check(broker: &Broker, req: &Request) -> Result<(), ConsoleError> {
    if !broker.config.console_actions {
        return Err(error(
            403,
            "ACTIONS_DISABLED",
            "The console is read-only: start the brokers with console.actions.enable=true to \
             change topics and offsets from it",
        ));
    }
    if req.header("x-sluice-console") != Some("1") {
        return Err(error(403, "FORBIDDEN", "actions need the header X-Sluice-Console: 1"));
    }
    let host = req.header("host").unwrap_or("");
    if !host_allowed(&broker.metadata.image(), host) {
        return Err(error(403, "FORBIDDEN", format!("actions are not taken for host {host}")));
    }
    if !req.body.is_empty()
        && !req.header("content-type").is_some_and(|c| c.starts_with("application/json"))
    {
        return Err(error(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be application/json"));
    }
    Ok(())
}

/// Whether `host` (a `Host` header) names this cluster: an IP address, `localhost`, a
/// registered broker's host, or a Kubernetes Service or pod name.
fn host_allowed(image: &ClusterImage, host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6.split(']').next().is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".svc")
        || name.ends_with(".svc.cluster.local")
        || image.brokers.values().any(|b| b.host.eq_ignore_ascii_case(name))
}

fn body(req: &Request) -> Result<Value, ConsoleError> {
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| error(400, "INVALID_REQUEST", format!("the body is not JSON: {e}")))
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, ConsoleError> {
    v.get(key)
        .filter(|f| !f.is_null())
        .ok_or_else(|| error(400, "INVALID_REQUEST", format!("{key} is required")))
}

fn int(v: &Value, key: &str) -> Result<i64, ConsoleError> {
    field(v, key)?
        .as_i64()
        .ok_or_else(|| error(400, "INVALID_REQUEST", format!("{key} must be a number")))
}

/// The string form of a config value given as a string, number or boolean.
fn config_value(v: &Value) -> Result<String, ConsoleError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(error(400, "INVALID_REQUEST", "config values are strings")),
    }
}

fn result(resource: &str, code: i16, message: Option<String>) -> Value {
    let name = if code == 0 { "NONE".to_string() } else { error_name(code) };
    json!({
        "resource": resource, "error_code": code, "error": name,
        "message": message,
    })
}

/// The answer of an action: 200 when every result is free of errors, 400 otherwise.
pub fn answer(results: Vec<Value>, extra: Option<(&str, Value)>) -> (u16, Value) {
    let ok = results.iter().all(|r| r["error_code"] == 0);
    let mut v = json!({ "ok": ok, "results": results });
    if let Some((k, extra)) = extra {
        v[k] = extra;
    }
    (if ok { 200 } else { 400 }, v)
}

pub async fn create_topic(broker: &Broker, req: &Request) -> Result<(u16, Value), ConsoleError> {
    let b = body(req)?;
    let name = field(&b, "name")?.as_str().unwrap_or_default().to_string();
    let mut configs = Vec::new();
    if let Some(map) = b.get("configs").and_then(Value::as_object) {
        for (k, v) in map {
            configs.push(
                CreatableTopicConfig::default()
                    .with_name(strb(k))
                    .with_value(Some(strb(&config_value(v)?))),
            );
        }
    }
    let partitions = b.get("partitions").and_then(Value::as_i64).unwrap_or(-1);
    let rf = b.get("replication_factor").and_then(Value::as_i64).unwrap_or(-1);
    let topic = CreatableTopic::default()
        .with_name(topic_name(&name))
        .with_num_partitions(i32::try_from(partitions).unwrap_or(i32::MAX))
        .with_replication_factor(i16::try_from(rf).unwrap_or(i16::MAX))
        .with_configs(configs);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_validate_only(b["validate_only"] == true);
    let response = crate::api::admin::topics::create_topics(broker, request, 7).await;
    let results = response
        .topics
        .iter()
        .map(|t| {
            result(t.name.as_str(), t.error_code, t.error_message.as_ref().map(|m| m.to_string()))
        })
        .collect();
    Ok(answer(results, None))
}

pub async fn add_partitions(
    broker: &Broker,
    topic: &str,
    req: &Request,
) -> Result<(u16, Value), ConsoleError> {
    let b = body(req)?;
    let count = int(&b, "count")?;
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(i32::try_from(count).unwrap_or(i32::MAX))])
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_validate_only(b["validate_only"] == true);
    let response = crate::api::admin::topics::create_partitions(broker, request).await;
    let results = response
        .results
        .iter()
        .map(|r| {
            result(r.name.as_str(), r.error_code, r.error_message.as_ref().map(|m| m.to_string()))
        })
        .collect();
    Ok(answer(results, None))
}

pub async fn alter_configs(
    broker: &Broker,
    topic: &str,
    req: &Request,
) -> Result<(u16, Value), ConsoleError> {
    let b = body(req)?;
    let mut configs = Vec::new();
    for (k, v) in b.get("set").and_then(Value::as_object).into_iter().flatten() {
        configs.push(
            AlterableConfig::default()
                .with_name(strb(k))
                .with_config_operation(0)
                .with_value(Some(strb(&config_value(v)?))),
        );
    }
    for k in b.get("delete").and_then(Value::as_array).into_iter().flatten() {
        let k =
            k.as_str().ok_or_else(|| error(400, "INVALID_REQUEST", "delete lists config names"))?;
        configs.push(AlterableConfig::default().with_name(strb(k)).with_config_operation(1));
    }
    if configs.is_empty() {
        return Err(error(400, "INVALID_REQUEST", "nothing to set or delete"));
    }
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(strb(topic))
            .with_configs(configs)])
        .with_validate_only(b["validate_only"] == true);
    let response = crate::api::admin::configs::incremental_alter_configs(broker, request).await;
    let results = response
        .responses
        .iter()
        .map(|r| {
            result(
                r.resource_name.as_str(),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect();
    Ok(answer(results, None))
}

pub async fn delete_topic(broker: &Broker, topic: &str) -> Result<(u16, Value), ConsoleError> {
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name(topic)))])
        .with_timeout_ms(TIMEOUT.as_millis() as i32);
    let response = crate::api::admin::topics::delete_topics(broker, request, 6).await;
    let results = response
        .responses
        .iter()
        .map(|r| {
            let name = r.name.as_ref().map_or(topic.to_string(), |n| n.to_string());
            result(&name, r.error_code, r.error_message.as_ref().map(|m| m.to_string()))
        })
        .collect();
    Ok(answer(results, None))
}

/// One Kafka request to broker `id` through its inter-broker listener.
async fn kafka_call<Req, Resp>(
    image: &ClusterImage,
    id: i32,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> Result<Resp, String>
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    let b = image.brokers.get(&id).ok_or_else(|| format!("broker {id} is not registered"))?;
    let addr = crate::config::listeners::join_host_port(&b.host, b.port);
    let mut conn = KafkaConnection::connect(&addr, "sluice-console", TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    conn.call(api, version, request, TIMEOUT).await.map_err(|e| e.to_string())
}

/// Resets the committed offsets of an inactive group on every partition it has committed (or
/// of the topics given) to the earliest or latest offset, or the first at or after a time.
pub async fn reset_offsets(
    broker: &Broker,
    group: &str,
    req: &Request,
) -> Result<(u16, Value), ConsoleError> {
    let b = body(req)?;
    let timestamp = match field(&b, "to")?.as_str() {
        Some("earliest") => -2,
        Some("latest") => -1,
        Some("timestamp") => {
            let ts = int(&b, "timestamp_ms")?;
            if ts < 0 {
                return Err(error(400, "INVALID_REQUEST", "timestamp_ms must be at least 0"));
            }
            ts
        }
        _ => return Err(error(400, "INVALID_REQUEST", "to is earliest, latest or timestamp")),
    };
    let dry_run = b["dry_run"] == true;
    let current = super::read::group(broker, group).await?;
    if current["state"] != "Empty" {
        let message = format!(
            "Offsets can only be reset while the group {group} is inactive (Empty), but its \
             state is {}: stop its consumers first",
            current["state"].as_str().unwrap_or("unknown")
        );
        return Ok(answer(vec![result(group, NON_EMPTY_GROUP, Some(message))], None));
    }
    let image = broker.metadata.image();
    let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    match b.get("topics").and_then(Value::as_array) {
        Some(topics) => {
            for t in topics {
                let t = t.as_str().unwrap_or_default();
                let topic = image.topics.get(t).ok_or_else(|| super::read::unknown_topic(t))?;
                partitions.insert(t.to_string(), topic.partitions.keys().copied().collect());
            }
        }
        None => {
            for o in current["offsets"].as_array().into_iter().flatten() {
                let topic = o["topic"].as_str().unwrap_or_default().to_string();
                partitions
                    .entry(topic)
                    .or_default()
                    .push(o["partition"].as_i64().unwrap_or(0) as i32);
            }
        }
    }
    if partitions.is_empty() {
        return Err(error(
            400,
            "INVALID_REQUEST",
            format!("group {group} has no committed offsets; name the topics to reset"),
        ));
    }
    // Where to: ListOffsets to each partition's leader.
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    let mut results = Vec::new();
    for (topic, ps) in &partitions {
        for &p in ps {
            match image.topics.get(topic).and_then(|t| t.partitions.get(&p)).map(|p| p.leader) {
                Some(leader) if leader >= 0 => {
                    by_leader.entry(leader).or_default().entry(topic.clone()).or_default().push(p)
                }
                _ => results.push(result(
                    &format!("{topic}-{p}"),
                    5,
                    Some("the partition has no leader".into()),
                )),
            }
        }
    }
    let mut targets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (leader, topics) in &by_leader {
        let ask = |ts: i64| {
            let topics = topics
                .iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default().with_name(topic_name(t)).with_partitions(
                        ps.iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_timestamp(ts)
                            })
                            .collect(),
                    )
                })
                .collect();
            ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(topics)
        };
        let answer: ListOffsetsResponse =
            kafka_call(&image, *leader, ApiKey::ListOffsets, 7, &ask(timestamp))
                .await
                .map_err(|e| error(502, "LEADER_NOT_AVAILABLE", format!("broker {leader}: {e}")))?;
        // A time after the last record has no offset: those go to the end, as Kafka's tool does.
        let mut latest = None;
        for t in answer.topics {
            for p in t.partitions {
                let key = (t.name.to_string(), p.partition_index);
                if p.error_code != 0 {
                    results.push(result(&format!("{}-{}", key.0, key.1), p.error_code, None));
                } else if p.offset < 0 {
                    if latest.is_none() {
                        let l: ListOffsetsResponse =
                            kafka_call(&image, *leader, ApiKey::ListOffsets, 7, &ask(-1))
                                .await
                                .map_err(|e| {
                                    error(
                                        502,
                                        "LEADER_NOT_AVAILABLE",
                                        format!("broker {leader}: {e}"),
                                    )
                                })?;
                        latest = Some(l);
                    }
                    let end = latest
                        .iter()
                        .flat_map(|l| &l.topics)
                        .filter(|lt| lt.name == t.name)
                        .flat_map(|lt| &lt.partitions)
                        .find(|lp| lp.partition_index == p.partition_index)
                        .map(|lp| lp.offset);
                    targets.insert(key, end.unwrap_or(0));
                } else {
                    targets.insert(key, p.offset);
                }
            }
        }
    }
    let planned: Vec<Value> = targets
        .iter()
        .map(|((t, p), o)| json!({"topic": t, "partition": p, "offset": o}))
        .collect();
    if dry_run || !results.is_empty() {
        return Ok(answer(results, Some(("offsets", Value::Array(planned)))));
    }
    // The commit, as a client outside the group makes it (generation -1, no member): the
    // coordinator refuses it unless the group is still empty.
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in &targets {
        topics.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(crate::api::strb(group).into())
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(strb(""))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(ps)
                })
                .collect(),
        );
    let coordinator = broker
        .groups
        .coordinator_for(group)
        .map_err(|e| error(503, "COORDINATOR_NOT_AVAILABLE", e.to_string()))?;
    let committed: OffsetCommitResponse =
        kafka_call(&image, coordinator, ApiKey::OffsetCommit, 8, &request).await.map_err(|e| {
            error(502, "COORDINATOR_NOT_AVAILABLE", format!("broker {coordinator}: {e}"))
        })?;
    for t in committed.topics {
        for p in t.partitions {
            results.push(result(
                &format!("{}-{}", t.name.as_str(), p.partition_index),
                p.error_code,
                None,
            ));
        }
    }
    Ok(answer(results, Some(("offsets", Value::Array(planned)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_the_cluster_only() {
        let mut image = ClusterImage::default();
        image.brokers.insert(
            1,
            crate::metadata::image::BrokerImage {
                id: 1,
                epoch: 0,
                host: "broker-0.brokers.ns".into(),
                port: 9092,
                rack: None,
                fenced: false,
                incarnation: [0; 16],
                listeners: Vec::new(),
                registered_at: 0,
                admin_port: Some(9644),
            },
        );
        for ok in [
            "127.0.0.1:9644",
            "10.0.0.7",
            "[::1]:9644",
            "localhost:80",
            "broker-0.brokers.ns:9644",
            "c-console.ns.svc:9644",
            "c-console.ns.svc.cluster.local",
        ] {
            assert!(host_allowed(&image, ok), "{ok}");
        }
        for bad in
            ["", "evil.example:9644", "localhost.evil.example", "[evil]:1", "svc.evil.example"]
        {
            assert!(!host_allowed(&image, bad), "{bad}");
        }
    }
}
