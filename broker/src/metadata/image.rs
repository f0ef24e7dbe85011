//! The cluster image: a read-only, immutable view of all committed metadata.
//!
//! The state machine builds a new [`ClusterImage`] after every applied record batch and
//! publishes it as an `Arc`; readers (the protocol layer, the replica manager) hold on to the
//! `Arc` they got and never see a half-applied batch. Everything here is plain data: the
//! records that change it live in `types.rs`, the code that applies them in
//! `state_machine.rs`.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::log::LogConfig;

/// All committed cluster metadata at one point of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterImage {
    /// Kafka's `cluster.id`: 22 characters of base64url. Empty until the first start sets it.
    pub cluster_id: String,
    /// Broker id of the active controller (the raft leader that committed the latest batch);
    /// -1 before anything was applied.
    pub controller_id: i32,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// Index from topic id to name; rebuilt from `topics`, never serialized.
    #[serde(skip)]
    pub topic_names_by_id: HashMap<[u8; 16], String>,
    /// First producer id not yet handed out by `AllocateProducerIds`.
    pub next_producer_id: i64,
    /// Dynamic broker configs: by broker id, and the cluster-wide defaults under "".
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Index of the last metadata log entry applied to this image (0 before any).
    #[serde(default)]
    pub applied_index: u64,
}

impl Default for ClusterImage {
    fn default() -> Self {
        ClusterImage {
            cluster_id: String::new(),
            controller_id: -1,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_names_by_id: HashMap::new(),
            next_producer_id: 0,
            broker_configs: BTreeMap::new(),
            applied_index: 0,
        }
    }
}

impl ClusterImage {
    /// Every partition of the cluster counted by state: one pass over the image.
    pub fn partition_counts(&self) -> PartitionCounts {
        let mut c = PartitionCounts::default();
        for p in self.topics.values().flat_map(|t| t.partitions.values()) {
            c.partitions += 1;
            c.under_replicated += usize::from(p.under_replicated());
            c.offline += usize::from(p.offline());
            c.reassigning += usize::from(p.reassigning());
        }
        c
    }

    /// The log defaults of broker `node`: the static ones (`static_defaults`, from its config
    /// file) under the cluster-wide dynamic defaults, under its own dynamic configs, as Kafka
    /// orders them. Only the log settings among them (`log.*`, `message.max.bytes`, ...) apply.
    pub fn effective_log_defaults(&self, static_defaults: &LogConfig, node: i32) -> LogConfig {
        let mut config = static_defaults.clone();
        for scope in [String::new(), node.to_string()] {
            for (key, value) in self.broker_configs.get(&scope).into_iter().flatten() {
                if let Ok(c) = config.with_broker_overrides([(key.as_str(), value.as_str())]) {
                    config = c;
                }
            }
        }
        config
    }

    /// The dynamic config `key` of broker `node` and where it comes from: its own (`false`) or
    /// the cluster-wide default (`true`).
    pub fn dynamic_broker_config(&self, node: i32, key: &str) -> Option<(&str, bool)> {
        let own = self.broker_configs.get(&node.to_string()).and_then(|c| c.get(key));
        let default = self.broker_configs.get("").and_then(|c| c.get(key));
        own.map(|v| (v.as_str(), false)).or(default.map(|v| (v.as_str(), true)))
    }

    /// The topic with this name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    /// The topic with this id.
    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<&TopicImage> {
        self.topic_names_by_id.get(id).and_then(|name| self.topics.get(name))
    }

    /// Whether broker `id` is registered and not fenced (may lead and join ISRs).
    pub fn is_unfenced(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Whether an out-of-sync replica may lead `topic`: its own
    /// `unclean.leader.election.enable`, else the cluster-wide dynamic default, else Kafka's
    /// default (false).
    pub fn unclean_allowed(&self, topic: &str) -> bool {
        const KEY: &str = "unclean.leader.election.enable";
        let own = self.topic(topic).and_then(|t| t.configs.get(KEY));
        let cluster = self.broker_configs.get("").and_then(|c| c.get(KEY));
        own.or(cluster).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Registered brokers that are not fenced, in id order.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Rebuilds `topic_names_by_id` from `topics` (after deserializing a snapshot).
    pub(crate) fn reindex(&mut self) {
        self.topic_names_by_id =
            self.topics.values().map(|t| (t.id, t.name.clone())).collect::<HashMap<_, _>>();
    }
}

/// One advertised listener of a broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// One registered broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    /// `node.id`.
    pub id: i32,
    /// Broker epoch: a new, larger one each time the broker registers (each start).
    pub epoch: i64,
    /// Advertised host of the inter-broker listener.
    pub host: String,
    /// Advertised port of the inter-broker listener.
    pub port: u16,
    /// `broker.rack`, used for rack-aware replica placement.
    pub rack: Option<String>,
    /// A fenced broker leads no partition and is not counted for replica placement.
    pub fenced: bool,
    /// Random per process start; a registration that repeats it is a retry.
    #[serde(default)]
    pub incarnation: [u8; 16],
    /// Advertised endpoint of every client listener.
    #[serde(default)]
    pub listeners: Vec<Endpoint>,
    /// Metadata log index of the registration: the broker is caught up (may be unfenced)
    /// once it has applied this far.
    #[serde(default)]
    pub registered_at: u64,
    /// Port of its admin HTTP listener on `host`, when it registered one.
    #[serde(default)]
    pub admin_port: Option<u16>,
}

impl BrokerImage {
    /// `host:port` of its inter-broker listener.
    pub fn addr(&self) -> String {
        crate::config::listeners::join_host_port(&self.host, self.port)
    }

    /// `host:port` of its admin HTTP listener, when it registered one.
    pub fn admin_addr(&self) -> Option<String> {
        Some(crate::config::listeners::join_host_port(&self.host, self.admin_port?))
    }

    /// The advertised endpoint of listener `name`. A registration without listeners (written
    /// before they were recorded) serves every listener at its one address.
    pub fn endpoint(&self, name: &str) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners.iter().find(|e| e.name == name).map(|e| (e.host.as_str(), e.port))
    }
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Topic name.
    pub name: String,
    /// Topic id (a random UUID, as Kafka's `Uuid`).
    pub id: [u8; 16],
    /// Partitions by index; indexes are contiguous from 0.
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// Topic-level config overrides only (Kafka names); defaults come from the broker.
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    /// The effective log config: broker `defaults` with this topic's overrides applied.
    ///
    /// Overrides were validated when they were committed; one that no longer validates (the
    /// broker was downgraded, say) is skipped with a warning instead of failing the topic.
    pub fn log_config(&self, defaults: &LogConfig) -> LogConfig {
        let overrides = self.configs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        match defaults.with_overrides(overrides) {
            Ok(config) => config,
            Err(_) => {
                let mut config = defaults.clone();
                for (key, value) in &self.configs {
                    if let Err(e) = config.set(key, value) {
                        tracing::warn!(topic = %self.name, "ignoring stored topic config: {e}");
                    }
                }
                config
            }
        }
    }

    /// Internal topics (`__consumer_offsets`, ...) start with two underscores.
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }

    /// Replicas per partition (partition 0's, as `kafka-topics --describe` shows it).
    pub fn replication_factor(&self) -> usize {
        self.partitions.get(&0).map_or(0, PartitionImage::replication_factor)
    }

    /// The topic id in Kafka's text form (22 characters of base64url).
    pub fn id_string(&self) -> String {
        uuid_to_string(&self.id)
    }
}

/// One partition's replica set and leadership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// Assigned replicas, preferred leader first. During a reassignment: the target replicas,
    /// then the ones being removed (Kafka's order).
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Current leader broker id, -1 when there is none.
    pub leader: i32,
    /// Bumped on every leader change.
    pub leader_epoch: i32,
    /// Bumped on every change of this partition (leader, ISR, replicas).
    pub partition_epoch: i32,
    /// Replicas a reassignment adds: they follow the leader and must join the ISR before it
    /// completes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment removes once every adding replica is in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// Whether a reassignment of this partition is under way.
    pub fn reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// Replicas, those a reassignment is adding not counted (Kafka's replication factor of a
    /// partition under reassignment: the size of its original replica set).
    pub fn replication_factor(&self) -> usize {
        self.replicas.len().saturating_sub(self.adding_replicas.len())
    }

    /// The ISR is smaller than the replication factor.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replication_factor()
    }

    /// No leader.
    pub fn offline(&self) -> bool {
        self.leader < 0
    }
}

/// The partitions of a cluster by state ([`ClusterImage::partition_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionCounts {
    pub partitions: usize,
    pub under_replicated: usize,
    pub offline: usize,
    pub reassigning: usize,
}

/// Formats a UUID the way Kafka does (`Uuid.toString()`): unpadded base64url, 22 characters.
pub fn uuid_to_string(id: &[u8; 16]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text_form_is_22_chars_of_base64url() {
        let s = uuid_to_string(&[0xff; 16]);
        assert_eq!(s.len(), 22);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn log_config_applies_overrides_and_skips_invalid_ones() {
        let topic = TopicImage {
            name: "t".into(),
            id: [1; 16],
            partitions: BTreeMap::new(),
            configs: BTreeMap::from([
                ("retention.ms".to_string(), "1000".to_string()),
                ("no.such.config".to_string(), "1".to_string()),
            ]),
        };
        let config = topic.log_config(&LogConfig::default());
        assert_eq!(config.retention_ms, 1000);
        assert!(!topic.is_internal());
    }
}
