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
//! content type (and, as every API request, a `Host` of the cluster: [`super::host_allowed`]).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsResponse, OffsetCommitRequest, OffsetCommitResponse,
};
use kafka_protocol::ResponseError;
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
    if !req.body.is_empty()
        && !req.header("content-type").is_some_and(|c| c.starts_with("application/json"))
    {
        return Err(error(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be application/json"));
    }
    Ok(())
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

fn result(resource: &str, code: i16, message: Option<&str>) -> Value {
    json!({ "resource": resource, "error_code": code, "error": error_name(code), "message": message })
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
        .map(|t| result(t.name.as_str(), t.error_code, t.error_message.as_deref()))
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
        .map(|r| result(r.name.as_str(), r.error_code, r.error_message.as_deref()))
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
            .with_resource_type(crate::api::admin::configs::RESOURCE_TOPIC)
            .with_resource_name(strb(topic))
            .with_configs(configs)])
        .with_validate_only(b["validate_only"] == true);
    let response = crate::api::admin::configs::incremental_alter_configs(broker, request).await;
    let results = response
        .responses
        .iter()
        .map(|r| result(r.resource_name.as_str(), r.error_code, r.error_message.as_deref()))
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
            result(&name, r.error_code, r.error_message.as_deref())
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
    let addr = b.addr();
    let mut conn = KafkaConnection::connect(&addr, "sluice-console", TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    conn.call(api, version, request, TIMEOUT).await.map_err(|e| e.to_string())
}

/// Resets the committed offsets of an inactive group on every partition it has committed (or
/// of the topics given) to the earliest or latest offset, or the first at or after a time (the
/// end where no record is that late), as `kafka-consumer-groups --reset-offsets` does: only
/// while the group is Empty, or Dead (unknown) with the topics named.
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
    let named = b.get("topics").and_then(Value::as_array);
    let current = match super::read::group(broker, group).await {
        Ok(g) => g,
        // A group nobody has used is Dead: it may be given offsets for the topics named.
        Err(e) if e.name == "GROUP_ID_NOT_FOUND" && named.is_some() => {
            json!({ "state": "Dead", "offsets": [] })
        }
        Err(e) => return Err(e),
    };
    if current["state"] != "Empty" && current["state"] != "Dead" {
        let message = format!(
            "Offsets can only be reset while the group {group} is inactive (Empty), but its \
             state is {}: stop its consumers first",
            current["state"].as_str().unwrap_or("unknown")
        );
        let code = ResponseError::NonEmptyGroup.code();
        return Ok(answer(vec![result(group, code, Some(&message))], None));
    }
    let image = broker.metadata.image();
    let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    match named {
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
                let p = o["partition"].as_i64().unwrap_or(0) as i32;
                partitions.entry(topic).or_default().push(p);
            }
        }
    }
    if partitions.is_empty() {
        let message = format!("group {group} has no committed offsets; name the topics to reset");
        return Err(error(400, "INVALID_REQUEST", message));
    }
    // Where to: ListOffsets to every partition's leader, all at once.
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    let mut results = Vec::new();
    for (topic, ps) in &partitions {
        for &p in ps {
            match image.topics.get(topic).and_then(|t| t.partitions.get(&p)).map(|p| p.leader) {
                Some(leader) if leader >= 0 => {
                    by_leader.entry(leader).or_default().entry(topic.clone()).or_default().push(p)
                }
                _ => {
                    let code = ResponseError::LeaderNotAvailable.code();
                    results.push(result(&format!("{topic}-{p}"), code, None));
                }
            }
        }
    }
    let asks = by_leader.iter().map(|(&leader, topics)| {
        let image = &image;
        async move {
            let wanted = list_offsets(image, leader, topics, timestamp).await?;
            // A time after the last record has no offset: those go to the end.
            let latest = if timestamp >= 0 && wanted.values().any(|r| matches!(r, Ok(o) if *o < 0))
            {
                Some(list_offsets(image, leader, topics, -1).await?)
            } else {
                None
            };
            Ok::<_, ConsoleError>((wanted, latest))
        }
    });
    let mut targets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for answer in futures::future::join_all(asks).await {
        let (wanted, latest) = answer?;
        for (key, offset) in wanted {
            let offset = match (offset, &latest) {
                (Ok(o), Some(latest)) if o < 0 => latest.get(&key).cloned().unwrap_or(Err(-1)),
                (o, _) => o,
            };
            match offset {
                Ok(o) if o >= 0 => _ = targets.insert(key, o),
                Ok(_) | Err(_) => {
                    let code = offset.err().filter(|&c| c > 0);
                    let code = code.unwrap_or(ResponseError::LeaderNotAvailable.code());
                    results.push(result(&format!("{}-{}", key.0, key.1), code, None));
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
    let topics = topics
        .into_iter()
        .map(|(t, ps)| {
            OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(ps)
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(strb(group).into())
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(strb(""))
        .with_topics(topics);
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
            let name = format!("{}-{}", t.name.as_str(), p.partition_index);
            results.push(result(&name, p.error_code, None));
        }
    }
    Ok(answer(results, Some(("offsets", Value::Array(planned)))))
}

/// ListOffsets of `topics` at `timestamp` on their leader: each partition's offset (-1: none
/// at that time) or its error code.
async fn list_offsets(
    image: &ClusterImage,
    leader: i32,
    topics: &BTreeMap<String, Vec<i32>>,
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), Result<i64, i16>>, ConsoleError> {
    let request = crate::server::lag::list_offsets_request(topics, timestamp);
    let version = crate::server::lag::LIST_OFFSETS_VERSION;
    let answer: ListOffsetsResponse =
        kafka_call(image, leader, ApiKey::ListOffsets, version, &request)
            .await
            .map_err(|e| error(502, "LEADER_NOT_AVAILABLE", format!("broker {leader}: {e}")))?;
    let mut out = BTreeMap::new();
    for t in answer.topics {
        for p in t.partitions {
            let offset = if p.error_code == 0 { Ok(p.offset) } else { Err(p.error_code) };
            out.insert((t.name.to_string(), p.partition_index), offset);
        }
    }
    Ok(out)
}
