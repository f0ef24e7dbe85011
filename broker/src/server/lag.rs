//! High watermarks for consumer lag of partitions this broker does not host.
//!
//! A group's coordinator knows its committed offsets; the high watermark it subtracts them from
//! is the leader's, as `kafka-consumer-groups` measures it, or that of a replica here that is in
//! sync (its HW follows the leader's by one fetch round). A replica out of the ISR may be far
//! behind, so for it, and for partitions not hosted here, [`run`] asks their leaders every
//! [`INTERVAL`] with ListOffsets (latest, read-uncommitted: the HW), one request per leader, as
//! kminion and Burrow do from outside. Nothing is asked while every committed partition has an
//! in-sync replica here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_client::KafkaConnection;
use tokio::sync::watch;

use super::Broker;
use crate::log::TopicPartition;

/// How often the leaders are asked.
pub const INTERVAL: Duration = Duration::from_secs(10);
pub(crate) const LIST_OFFSETS_VERSION: i16 = 7;
const TIMEOUT: Duration = Duration::from_secs(5);

/// The last high watermarks the leaders answered.
#[derive(Debug, Default)]
pub struct RemoteHighWatermarks(Mutex<HashMap<TopicPartition, i64>>);

impl RemoteHighWatermarks {
    pub fn snapshot(&self) -> HashMap<TopicPartition, i64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, hws: HashMap<TopicPartition, i64>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = hws;
    }
}

/// The high watermark a group's lag on `tp` is measured against: the local replica's when it
/// leads or is in sync, else the one its leader last answered (`/metrics` and the console both
/// use it).
pub fn high_watermark(
    replicas: &crate::replica::ReplicaManager,
    remote: &HashMap<TopicPartition, i64>,
    tp: &TopicPartition,
) -> Option<i64> {
    match in_sync_here(replicas, tp) {
        Some(p) => Some(p.log.lock().unwrap_or_else(|e| e.into_inner()).high_watermark()),
        None => remote.get(tp).copied(),
    }
}

/// One committed offset of a group and how far it is behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub tp: TopicPartition,
    pub committed: i64,
    /// `None` when neither a replica here nor the leader told it.
    pub hw: Option<i64>,
}

impl PartitionLag {
    pub fn lag(&self) -> Option<i64> {
        self.hw.map(|hw| (hw - self.committed).max(0))
    }
}

/// The lag of each committed offset `(topic, partition, offset)` of a group
/// ([`high_watermark`]).
pub fn group_lag(
    replicas: &crate::replica::ReplicaManager,
    remote: &HashMap<TopicPartition, i64>,
    offsets: &[(String, i32, i64)],
) -> Vec<PartitionLag> {
    offsets
        .iter()
        .map(|(topic, partition, committed)| {
            let tp = TopicPartition::new(topic.clone(), *partition);
            let hw = high_watermark(replicas, remote, &tp);
            PartitionLag { tp, committed: *committed, hw }
        })
        .collect()
}

/// The sum of the known lags; `None` when none is known.
pub fn total_lag(lags: &[PartitionLag]) -> Option<i64> {
    lags.iter().filter_map(PartitionLag::lag).reduce(|a, b| a + b)
}

/// The replica of `tp` here when it leads or is in the ISR.
fn in_sync_here(
    replicas: &crate::replica::ReplicaManager,
    tp: &TopicPartition,
) -> Option<Arc<crate::replica::Partition>> {
    let node = replicas.node_id();
    replicas.get(tp).filter(|p| {
        let state = p.state();
        state.leader == node || state.isr.contains(&node)
    })
}

/// Refreshes `broker.remote_hw` every [`INTERVAL`] until shutdown.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut connections: HashMap<String, KafkaConnection> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
        let wanted = by_leader(&broker);
        let mut hws = HashMap::new();
        for (addr, partitions) in wanted {
            let request = list_offsets_request(&partitions, -1);
            if !connections.contains_key(&addr) {
                let id = format!("sluice-lag-{}", broker.node_id());
                match KafkaConnection::connect(&addr, &id, TIMEOUT).await {
                    Ok(c) => _ = connections.insert(addr.clone(), c),
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "lag: leader unreachable");
                        continue;
                    }
                }
            }
            let Some(conn) = connections.get_mut(&addr) else { continue };
            let answer = conn
                .call::<_, ListOffsetsResponse>(
                    ApiKey::ListOffsets,
                    LIST_OFFSETS_VERSION,
                    &request,
                    TIMEOUT,
                )
                .await;
            match answer {
                Ok(response) => {
                    for t in response.topics {
                        for p in t.partitions.into_iter().filter(|p| p.error_code == 0) {
                            let tp = TopicPartition::new(t.name.to_string(), p.partition_index);
                            hws.insert(tp, p.offset);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "lag: ListOffsets failed");
                    connections.remove(&addr);
                }
            }
        }
        broker.remote_hw.replace(hws);
    }
}

/// The committed partitions of the groups coordinated here without an in-sync replica here, by
/// their leader's address.
fn by_leader(broker: &Broker) -> BTreeMap<String, BTreeMap<String, BTreeSet<i32>>> {
    let image = broker.metadata.image();
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<i32>>> = BTreeMap::new();
    for g in broker.groups.snapshots() {
        for (topic, partition, _) in g.offsets {
            let tp = TopicPartition::new(topic, partition);
            if in_sync_here(&broker.replicas, &tp).is_some() {
                continue;
            }
            let leader = image
                .topics
                .get(&tp.topic)
                .and_then(|t| t.partitions.get(&partition))
                .and_then(|p| image.brokers.get(&p.leader))
                .filter(|b| !b.fenced);
            let Some(leader) = leader else { continue };
            let addr = leader.addr();
            out.entry(addr).or_default().entry(tp.topic).or_default().insert(partition);
        }
    }
    out
}

/// ListOffsets, as a consumer asks it, of `partitions` (by topic) at `timestamp` (-1: the
/// latest, the HW; -2: the earliest; else the first offset at or after that time).
pub(crate) fn list_offsets_request<'a, P>(
    partitions: impl IntoIterator<Item = (&'a String, P)>,
    timestamp: i64,
) -> ListOffsetsRequest
where
    P: IntoIterator<Item = &'a i32>,
{
    let topics = partitions
        .into_iter()
        .map(|(topic, ps)| {
            let ps = ps.into_iter().map(|&p| {
                ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp)
            });
            ListOffsetsTopic::default()
                .with_name(StrBytes::from_string(topic.clone()).into())
                .with_partitions(ps.collect())
        })
        .collect();
    ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(topics)
}
