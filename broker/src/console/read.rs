//! The console's read API: what every page shows, and the `/local` answers peers give.
//!
//! Metadata (brokers, topics, partitions, ISR) comes from this broker's image, which every
//! broker holds. What only one broker knows comes from it: offsets and sizes from each
//! partition's leader, groups, committed offsets and lag from each group's coordinator, disk
//! and traffic from each broker for its own share ([`super::peers`]). Lists are paged over the
//! image's ordered maps, so a page costs its own size, not the cluster's.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::{error, page_limit, ConsoleError};
use crate::group::GroupState;
use crate::log::TopicPartition;
use crate::metadata::image::PartitionImage;
use crate::metadata::ClusterImage;
use crate::server::lag::{group_lag, total_lag};
use crate::server::Broker;

/// The brokers to ask, other than this one, each with the path to ask.
fn others(broker: &Broker, image: &ClusterImage, path: &str) -> Vec<(i32, String)> {
    image
        .brokers
        .keys()
        .filter(|&&id| id != broker.node_id())
        .map(|&id| (id, path.to_string()))
        .collect()
}

pub async fn cluster(broker: &Broker) -> Value {
    let image = broker.metadata.image();
    let (answers, unavailable) =
        super::peers::get_all(&image, others(broker, &image, "/api/v1/local/broker")).await;
    let mut disks: HashMap<i32, Value> =
        answers.into_iter().map(|(id, v)| (id, v["disk"].clone())).collect();
    disks.insert(broker.node_id(), local_broker(broker)["disk"].clone());
    let brokers: Vec<Value> = image
        .brokers
        .values()
        .map(|b| {
            json!({
                "id": b.id, "host": b.host, "port": b.port, "rack": b.rack, "fenced": b.fenced,
                "epoch": b.epoch,
                "console_url": b.admin_addr().map(|a| format!("http://{a}/")),
                "disk": disks.get(&b.id).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let counts = broker.console.counts(&image);
    let quorum = match tokio::time::timeout(
        super::peers::TIMEOUT,
        broker.metadata.describe_quorum(),
    )
    .await
    {
        Ok(Ok(q)) => json!({
            "leader": q.leader_id, "term": q.leader_epoch, "high_watermark": q.high_watermark,
            "voters": q.voters.iter().map(|v| v.id).collect::<Vec<_>>(),
            "observers": q.observers.iter().map(|v| v.id).collect::<Vec<_>>(),
        }),
        _ => {
            let (term, leader, _) = broker.metadata.raft_metrics();
            json!({ "leader": leader, "term": term, "voters": null, "observers": null })
        }
    };
    json!({
        "cluster_id": image.cluster_id,
        "served_by": broker.node_id(),
        "unavailable": unavailable,
        "controller_id": image.controller_id,
        "applied_index": image.applied_index,
        "quorum": quorum,
        "brokers": brokers,
        "counts": {
            "brokers": image.brokers.len(), "topics": image.topics.len(),
            "partitions": counts.partitions, "under_replicated": counts.under_replicated,
            "offline": counts.offline, "reassigning": counts.reassigning,
        },
        "actions_enabled": broker.config.console_actions,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// This broker's disk: the volume of its data directory and the bytes its logs take.
pub fn local_broker(broker: &Broker) -> Value {
    let (capacity, free) = crate::fsutil::volume_bytes(&broker.config.data_dir);
    let stats = broker.console.stats();
    json!({
        "id": broker.node_id(),
        "disk": { "used_bytes": stats.log_bytes, "free_bytes": free, "capacity_bytes": capacity },
        "stats_refreshed_at_ms": stats.refreshed_at_ms,
    })
}

pub async fn topics(broker: &Broker, req: &crate::http::Request) -> Result<Value, ConsoleError> {
    let image = broker.metadata.image();
    let limit = page_limit(req, 50)?;
    let prefix = req.query("prefix").unwrap_or("");
    let after = req.query("after");
    let internal = req.query("internal") != Some("false");
    let start = match after {
        Some(a) => std::ops::Bound::Excluded(a.to_string()),
        None => std::ops::Bound::Included(prefix.to_string()),
    };
    let mut page = Vec::new();
    let mut more = false;
    for (name, t) in image.topics.range((start, std::ops::Bound::Unbounded)) {
        if !name.starts_with(prefix) {
            if name.as_str() > prefix {
                break;
            }
            continue;
        }
        if !internal && t.is_internal() {
            continue;
        }
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(t);
    }
    let total = if prefix.is_empty() && internal {
        image.topics.len()
    } else {
        image
            .topics
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .filter(|(_, t)| internal || !t.is_internal())
            .count()
    };
    let names: Vec<&str> = page.iter().map(|t| t.name.as_str()).collect();
    // Each question names at most about 8 KiB of topics (a request head holds 16).
    let mut asks = Vec::new();
    let mut chunk = String::new();
    for (i, name) in names.iter().enumerate() {
        if !chunk.is_empty() {
            chunk.push(',');
        }
        chunk.push_str(&super::encode(name));
        if chunk.len() > 8 * 1024 || i == names.len() - 1 {
            let path = format!("/api/v1/local/topics?names={}", std::mem::take(&mut chunk));
            asks.extend(others(broker, &image, &path));
        }
    }
    let (answers, mut unavailable) = super::peers::get_all(&image, asks).await;
    unavailable.dedup();
    let mut shares: Vec<Value> = answers.into_iter().map(|(_, v)| v).collect();
    shares.push(local_topics(broker, &names));
    let items: Vec<Value> = page
        .iter()
        .map(|t| {
            let under = t.partitions.values().filter(|p| p.under_replicated()).count();
            let offline = t.partitions.values().filter(|p| p.offline()).count();
            let sum = |key: &str| -> Value {
                let values: Vec<f64> =
                    shares.iter().filter_map(|s| s["topics"][&t.name][key].as_f64()).collect();
                if values.is_empty() {
                    Value::Null
                } else if key == "size_bytes" {
                    json!(values.iter().sum::<f64>() as u64)
                } else {
                    json!(values.iter().sum::<f64>())
                }
            };
            json!({
                "name": t.name, "id": t.id_string(), "partitions": t.partitions.len(),
                "replication_factor": t.replication_factor(),
                "internal": t.is_internal(), "under_replicated": under, "offline": offline,
                "size_bytes": sum("size_bytes"), "bytes_in_per_s": sum("bytes_in_per_s"),
                "bytes_out_per_s": sum("bytes_out_per_s"), "messages_in_per_s": sum("messages_in_per_s"),
            })
        })
        .collect();
    let next = if more { page.last().map(|t| json!(t.name)) } else { None };
    Ok(json!({
        "items": items, "next": next.unwrap_or(Value::Null), "total": total,
        "served_by": broker.node_id(), "unavailable": unavailable,
    }))
}

/// This broker's share of some topics: the size of the partitions it leads and its traffic.
pub fn local_topics(broker: &Broker, names: &[&str]) -> Value {
    let stats = broker.console.stats();
    let mut topics = Map::new();
    for name in names {
        if let Some(s) = stats.topics.get(*name) {
            topics.insert(
                name.to_string(),
                json!({
                    "size_bytes": s.led_bytes, "bytes_in_per_s": s.bytes_in_per_s,
                    "bytes_out_per_s": s.bytes_out_per_s, "messages_in_per_s": s.messages_in_per_s,
                }),
            );
        }
    }
    json!({
        "id": broker.node_id(), "topics": topics, "stats_refreshed_at_ms": stats.refreshed_at_ms,
    })
}

pub fn topic(broker: &Broker, name: &str) -> Result<Value, ConsoleError> {
    let image = broker.metadata.image();
    let t = image.topics.get(name).ok_or_else(|| unknown_topic(name))?;
    let configs =
        crate::api::admin::configs::describe_topic_entries(broker, &t.configs, None, false);
    let configs: Vec<Value> = configs
        .iter()
        .map(|c| {
            json!({
                "name": c.name.as_str(),
                "value": if c.is_sensitive { None } else { c.value.as_ref().map(|v| v.as_str()) },
                "source": crate::api::admin::configs::source_name(c.config_source),
                "read_only": c.read_only, "sensitive": c.is_sensitive,
            })
        })
        .collect();
    Ok(json!({
        "name": t.name, "id": t.id_string(), "partitions": t.partitions.len(),
        "replication_factor": t.replication_factor(),
        "internal": t.is_internal(), "configs": configs, "served_by": broker.node_id(),
    }))
}

pub fn unknown_topic(name: &str) -> ConsoleError {
    error(404, "UNKNOWN_TOPIC_OR_PARTITION", format!("Topic {name} does not exist"))
}

pub async fn partitions(
    broker: &Broker,
    name: &str,
    req: &crate::http::Request,
) -> Result<Value, ConsoleError> {
    let image = broker.metadata.image();
    let t = image.topics.get(name).ok_or_else(|| unknown_topic(name))?;
    let limit = page_limit(req, 100)?;
    let from = match req.query("from") {
        Some(f) => f
            .parse::<i32>()
            .map_err(|_| error(400, "INVALID_REQUEST", "from must be a partition number"))?,
        None => 0,
    };
    let only_under = req.query("under_replicated") == Some("true");
    let mut page: Vec<(i32, &PartitionImage)> = Vec::new();
    let mut next = None;
    for (&id, p) in t.partitions.range(from..) {
        if only_under && !p.under_replicated() {
            continue;
        }
        if page.len() == limit {
            next = Some(id);
            break;
        }
        page.push((id, p));
    }
    // One question per leader, for the partitions it leads on this page.
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (id, p) in &page {
        if p.leader >= 0 {
            by_leader.entry(p.leader).or_default().push(*id);
        }
    }
    let mut offsets: HashMap<i32, Value> = HashMap::new();
    let mut asks = Vec::new();
    for (leader, ids) in &by_leader {
        if *leader == broker.node_id() {
            for v in local_partition_list(broker, name, ids) {
                offsets.insert(v["partition"].as_i64().unwrap_or(-1) as i32, v);
            }
        } else {
            let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
            let path = format!(
                "/api/v1/local/partitions?topic={}&ids={}",
                super::encode(name),
                ids.join(",")
            );
            asks.push((*leader, path));
        }
    }
    let (answers, unavailable) = super::peers::get_all(&image, asks).await;
    for (_, v) in answers {
        for item in v["items"].as_array().into_iter().flatten() {
            offsets.insert(item["partition"].as_i64().unwrap_or(-1) as i32, item.clone());
        }
    }
    let items: Vec<Value> = page
        .iter()
        .map(|(id, p)| {
            let o = offsets.get(id).filter(|o| o["leader"] == json!(true));
            let field = |k: &str| o.map_or(Value::Null, |o| o[k].clone());
            json!({
                "partition": id, "leader": p.leader, "leader_epoch": p.leader_epoch,
                "replicas": p.replicas, "isr": p.isr, "adding": p.adding_replicas,
                "removing": p.removing_replicas, "under_replicated": p.under_replicated(),
                "offline": p.offline(),
                "log_start": field("log_start"), "hw": field("hw"), "leo": field("leo"),
                "size_bytes": field("size_bytes"), "followers": field("followers"),
            })
        })
        .collect();
    Ok(json!({
        "items": items, "next": next, "total": t.partitions.len(),
        "served_by": broker.node_id(), "unavailable": unavailable,
    }))
}

/// Offsets and size of the replicas of `topic` hosted here among `ids`; `leader` says whether
/// this broker leads it (only a leader's HW is the partition's).
pub fn local_partition_list(broker: &Broker, topic: &str, ids: &[i32]) -> Vec<Value> {
    let now = crate::replica::now_ms();
    ids.iter()
        .filter_map(|&id| {
            let p = broker.replicas.get(&TopicPartition::new(topic.to_string(), id))?;
            let leader = p.state().leader == broker.node_id();
            let (log_start, hw, leo, size) = {
                let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
                let (start, end) = (log.log_start_offset(), log.log_end_offset());
                (start, log.high_watermark(), end, log.size_bytes())
            };
            let followers: Vec<Value> = if leader {
                let mut f: Vec<_> = p.followers().into_iter().collect();
                f.sort_by_key(|(id, _)| *id);
                f.into_iter()
                    .map(|(id, f)| {
                        json!({
                            "id": id, "leo": f.log_end_offset, "lag": (leo - f.log_end_offset).max(0),
                            "last_fetch_ms_ago":
                                (f.last_fetch_ms > 0).then(|| (now - f.last_fetch_ms).max(0)),
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Some(json!({
                "partition": id, "leader": leader, "log_start": log_start, "hw": hw, "leo": leo,
                "size_bytes": size, "followers": followers,
            }))
        })
        .collect()
}

/// The groups this broker coordinates, with state, members and total lag.
pub fn local_groups(broker: &Broker) -> Result<Vec<Value>, ConsoleError> {
    let listings = broker
        .groups
        .list_groups()
        .map_err(|e| error(503, "COORDINATOR_LOAD_IN_PROGRESS", e.to_string()))?;
    let snapshots: HashMap<String, crate::group::GroupSnapshot> =
        broker.groups.snapshots().into_iter().map(|s| (s.group_id.clone(), s)).collect();
    let remote = broker.remote_hw.snapshot();
    Ok(listings
        .into_iter()
        .filter(|l| l.state != GroupState::Dead)
        .map(|l| {
            let snap = snapshots.get(&l.group_id);
            let total = snap.map(|s| total_lag(&group_lag(&broker.replicas, &remote, &s.offsets)));
            json!({
                "group_id": l.group_id, "state": l.state.name(), "protocol_type": l.protocol_type,
                "members": snap.map_or(0, |s| s.members), "coordinator": broker.node_id(),
                "total_lag": total.flatten(),
            })
        })
        .collect())
}

pub async fn groups(broker: &Broker, req: &crate::http::Request) -> Result<Value, ConsoleError> {
    let image = broker.metadata.image();
    let limit = page_limit(req, 50)?;
    let (answers, unavailable) =
        super::peers::get_all(&image, others(broker, &image, "/api/v1/local/groups")).await;
    let mut all: BTreeMap<String, Value> = BTreeMap::new();
    for item in
        answers.into_iter().flat_map(|(_, v)| v["items"].as_array().cloned().unwrap_or_default())
    {
        if let Some(id) = item["group_id"].as_str() {
            all.insert(id.to_string(), item);
        }
    }
    for item in local_groups(broker)? {
        all.insert(item["group_id"].as_str().unwrap_or_default().to_string(), item);
    }
    let total = all.len();
    let start = match req.query("after") {
        Some(a) => std::ops::Bound::Excluded(a.to_string()),
        None => std::ops::Bound::Unbounded,
    };
    let mut items: Vec<Value> = all
        .range((start, std::ops::Bound::Unbounded))
        .take(limit + 1)
        .map(|(_, v)| v.clone())
        .collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|v| v["group_id"].clone())
    } else {
        None
    };
    Ok(json!({
        "items": items, "next": next, "total": total, "served_by": broker.node_id(),
        "unavailable": unavailable,
    }))
}

pub async fn group(broker: &Broker, id: &str) -> Result<Value, ConsoleError> {
    let coordinator = broker
        .groups
        .coordinator_for(id)
        .map_err(|e| error(503, "COORDINATOR_NOT_AVAILABLE", e.to_string()))?;
    if coordinator == broker.node_id() {
        let mut v = local_group(broker, id)?;
        v["served_by"] = json!(broker.node_id());
        return Ok(v);
    }
    let image = broker.metadata.image();
    let path = format!("/api/v1/local/groups/{}", super::encode(id));
    let unreachable = "COORDINATOR_NOT_AVAILABLE";
    super::peers::forward(
        &image,
        coordinator,
        &path,
        broker.node_id(),
        "the coordinator",
        unreachable,
    )
    .await
}

/// A group this broker coordinates: members with their assignments, offsets and lag, and the
/// lag of the last minutes.
pub fn local_group(broker: &Broker, id: &str) -> Result<Value, ConsoleError> {
    let description = broker
        .groups
        .describe_group(id)
        .map_err(|e| error(503, "NOT_COORDINATOR", e.to_string()))?
        .filter(|d| d.state != GroupState::Dead)
        .ok_or_else(|| error(404, "GROUP_ID_NOT_FOUND", format!("Group {id} does not exist")))?;
    let committed = broker
        .groups
        .fetch_offsets(id, None)
        .map_err(|e| error(503, "NOT_COORDINATOR", e.to_string()))?;
    let offsets: Vec<(String, i32, i64)> = committed
        .into_iter()
        .flat_map(|(t, ps)| {
            ps.into_iter().filter_map(move |(p, c)| c.map(|c| (t.clone(), p, c.offset)))
        })
        .collect();
    let lags = group_lag(&broker.replicas, &broker.remote_hw.snapshot(), &offsets);
    let members: Vec<Value> = description
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id, "instance_id": m.group_instance_id,
                "client_id": m.client_id, "host": m.client_host,
                "assignment": super::assignment(&description.protocol_type, &m.assignment),
            })
        })
        .collect();
    Ok(json!({
        "group_id": description.group_id, "state": description.state.name(),
        "protocol_type": description.protocol_type, "protocol": description.protocol,
        "coordinator": broker.node_id(), "members": members,
        "offsets": lags.iter().map(|l| json!({
            "topic": l.tp.topic, "partition": l.tp.partition, "committed": l.committed, "hw": l.hw,
            "lag": l.lag(),
        })).collect::<Vec<_>>(),
        "total_lag": total_lag(&lags),
        "lag_history": broker.console.lag_history(id),
    }))
}
