//! `BrokerConfig`: every setting of a broker, with Kafka's names and defaults.
//!
//! Sources, lowest precedence first: built-in defaults (those of `sluice dev`), a Kafka-style
//! properties file (`--config FILE`, `key=value` lines with Kafka's names such as `node.id`,
//! `listeners`, `log.dirs`, `log.retention.hours`), then `SLUICE_*` environment variables and
//! command-line flags (clap handles those two). Any Kafka property can also be given with
//! `--set key=value` (env `SLUICE_SET`, comma-separated).
//!
//! Any value may refer to a config provider, `${dir:/etc/sluice/external:demo-0}`, as in Kafka
//! (`providers.rs`). The providers a properties file declares serve all of its lines, wherever
//! they are declared, and the command line's values, which may declare more with `--set`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::log::LogConfig;

pub mod catalog;
pub mod kafka;
pub mod listeners;
pub mod providers;

use kafka::{check_kind, closest_name, kafka_broker_key};
pub use listeners::{Listener, ListenerConfig, Roles, Voter};

/// Settings that make a node itself (its id, roles, listeners, quorum, data and admin
/// addresses): whatever starts nodes chooses them per node (`sluice dev --nodes N`, the
/// operator), so a value given for all nodes is not taken.
pub const NODE_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "controller.listener.names",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "cluster.id",
    "log.dirs",
    "log.dir",
    "admin.listener",
];

/// Sluice's own settings, which Kafka does not have.
const SLUICE_KEYS: &[&str] = &[
    "admin.listener",
    "metrics.partition.series.max",
    "console.actions.enable",
    "console.allowed.hosts",
];

/// A configuration the broker cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("{key}: cannot resolve {reference}: {reason}")]
    Unresolved { key: String, reference: String, reason: String },
    #[error(transparent)]
    Log(#[from] crate::log::ConfigError),
}

/// All broker settings.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// `process.roles`, `listeners`, `advertised.listeners`, `controller.listener.names`,
    /// `inter.broker.listener.name`, `listener.security.protocol.map`,
    /// `controller.quorum.voters`.
    pub net: ListenerConfig,
    /// Admin HTTP listener for `/metrics` and health (`127.0.0.1:9644`).
    pub admin_listen: SocketAddr,
    /// `log.dirs` (one directory).
    pub data_dir: PathBuf,
    /// Broker-wide log defaults (`log.segment.bytes`, `log.retention.ms`, ...).
    pub log_defaults: LogConfig,
    /// `num.partitions` (1).
    pub num_partitions: i32,
    /// `default.replication.factor` (1).
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable` (true).
    pub auto_create_topics: bool,
    /// `socket.request.max.bytes` (100 MiB).
    pub socket_request_max_bytes: usize,
    /// `queued.max.request.bytes`: bytes of requests being read or handled at once, all
    /// connections together (-1, Kafka's default: no bound beyond what clients have sent).
    pub queued_max_request_bytes: i64,
    /// `max.connections` (Kafka: unlimited; here 10000).
    pub max_connections: usize,
    /// `max.incremental.fetch.session.cache.slots` (1000): fetch sessions kept (KIP-227).
    pub fetch_session_slots: usize,
    /// `connections.max.idle.ms` (10 minutes).
    pub connections_max_idle: Duration,
    /// `log.retention.check.interval.ms` (5 minutes).
    pub retention_check_interval: Duration,
    /// `cluster.id` to use when formatting a new metadata log (generated when absent).
    pub cluster_id: Option<String>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `metrics.partition.series.max` (Sluice's, 10000): per-partition metric series are
    /// exported while there are at most this many (docs/metrics.md).
    pub metrics_series_max: usize,
    /// `console.actions.enable` (Sluice's, false): the web console may change topics and
    /// reset offsets, not only show them.
    pub console_actions: bool,
    /// `console.allowed.hosts` (Sluice's, empty): host names, besides addresses, `localhost`,
    /// the brokers' and Kubernetes Service names, that the console answers to (a load
    /// balancer's name); a request naming any other host is refused, against DNS rebinding.
    pub console_allowed_hosts: Vec<String>,
    /// `producer.id.expiration.ms` (1 day).
    pub producer_id_expiration: Duration,
    /// `producer.id.expiration.check.interval.ms` (10 minutes).
    pub producer_id_expiration_check: Duration,
    /// The group coordinator's settings (`offsets.topic.num.partitions`,
    /// `group.initial.rebalance.delay.ms`, `offsets.retention.minutes`, ...).
    pub groups: crate::group::GroupConfig,
    /// `replica.lag.time.max.ms` (30 s): a follower that has not caught up for this long
    /// leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// `leader.replication.throttled.rate` and `follower.replication.throttled.rate` (bytes/s,
    /// unlimited by default): see `replica/quota.rs`.
    pub leader_replication_throttled_rate: i64,
    pub follower_replication_throttled_rate: i64,
    /// `broker.heartbeat.interval.ms` (2 s).
    pub broker_heartbeat_interval: Duration,
    /// `broker.session.timeout.ms` (9 s): a broker not heard from for this long is fenced.
    pub broker_session_timeout: Duration,
    /// `auto.leader.rebalance.enable` (true).
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds` (300 s).
    pub leader_imbalance_check_interval: Duration,
    /// Kafka settings Sluice accepts (so a Kafka `server.properties` starts it) but that change
    /// nothing here: thread counts, socket buffers, security, transactions, ...
    pub without_effect: BTreeMap<String, String>,
    /// `config.providers` and `config.providers.<name>.*`, which resolve `${...}` in the values
    /// set after them.
    pub providers: providers::ConfigProviders,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            net: ListenerConfig::default(),
            admin_listen: "127.0.0.1:9644".parse().expect("valid address"),
            data_dir: PathBuf::from("data"),
            log_defaults: LogConfig::default(),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            socket_request_max_bytes: 100 * 1024 * 1024,
            queued_max_request_bytes: -1,
            max_connections: 10_000,
            fetch_session_slots: 1000,
            connections_max_idle: Duration::from_millis(600_000),
            retention_check_interval: Duration::from_millis(300_000),
            cluster_id: None,
            rack: None,
            metrics_series_max: 10_000,
            console_actions: false,
            console_allowed_hosts: Vec::new(),
            producer_id_expiration: Duration::from_millis(86_400_000),
            producer_id_expiration_check: Duration::from_millis(600_000),
            groups: crate::group::GroupConfig::default(),
            replica_lag_time_max: Duration::from_millis(30_000),
            leader_replication_throttled_rate: i64::MAX,
            follower_replication_throttled_rate: i64::MAX,
            broker_heartbeat_interval: Duration::from_millis(2000),
            broker_session_timeout: Duration::from_millis(9000),
            auto_leader_rebalance: true,
            leader_imbalance_check_interval: Duration::from_secs(300),
            without_effect: BTreeMap::new(),
            providers: providers::ConfigProviders::default(),
        }
    }
}

fn positive_millis(key: &str, value: &str) -> Result<Duration, ConfigError> {
    match parse::<u64>(key, value)? {
        0 => Err(ConfigError::Invalid(format!("{key} must be at least 1"))),
        ms => Ok(Duration::from_millis(ms)),
    }
}

/// A replication throttle in bytes per second: 0 or more, as Kafka's `atLeast(0)`.
fn throttle_rate(key: &str, value: &str) -> Result<i64, ConfigError> {
    match parse::<i64>(key, value)? {
        r if r < 0 => Err(ConfigError::Invalid(format!("{key} must be at least 0"))),
        r => Ok(r),
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("invalid value '{value}' for {key}")))
}

/// Whether Sluice applies broker config `key` at run time when it is set as a cluster-wide
/// dynamic config (IncrementalAlterConfigs on the default broker resource): Kafka allows it
/// cluster-wide, and Sluice acts on it without a restart (the log defaults topics inherit, and
/// the replication throttles). Kafka lets more keys change at run time; Sluice stores those but
/// reads them only at start-up, so they need a restart.
pub fn takes_effect_at_run_time(key: &str) -> bool {
    let cluster_wide =
        kafka_broker_key(key).is_some_and(|k| k.dynamic == kafka::Dynamic::ClusterWide);
    let applied =
        matches!(key, "leader.replication.throttled.rate" | "follower.replication.throttled.rate")
            || !matches!(
                LogConfig::default().with_broker_overrides([(key, "1")]),
                Err(crate::log::ConfigError::Unknown(_))
            );
    cluster_wide && applied
}

/// The lines of a Java properties file as (line number, key, value): blank lines and comments
/// (`#`, `!`) skipped, the key ending at the first `=`, `:` or blank, the value without its
/// separator and leading blanks; `None` for a line that is a key alone. Java's escapes and
/// continuation lines are not read. `server.properties` and the file config provider both
/// read files this way.
pub(crate) fn property_lines(text: &str) -> impl Iterator<Item = (usize, &str, Option<&str>)> {
    text.lines().enumerate().filter_map(|(n, line)| {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', '!']) {
            return None;
        }
        let end = line.find(|c: char| c == '=' || c == ':' || c.is_whitespace());
        let Some(end) = end else { return Some((n + 1, line, None)) };
        let (key, rest) = line.split_at(end);
        let rest = rest.trim_start();
        Some((n + 1, key, Some(rest.strip_prefix(['=', ':']).unwrap_or(rest).trim_start())))
    })
}

impl BrokerConfig {
    /// Applies one Kafka-named property, its references to the config providers declared so far
    /// replaced.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        if providers::is_provider_key(key) {
            return self.providers.set(key, value);
        }
        let value = self.providers.resolve(key, value)?;
        let value = value.trim();
        match key {
            "node.id" | "broker.id" => self.node_id = parse(key, value)?,
            "listeners" => self.net.listeners = listeners::parse_listeners(key, value)?,
            "advertised.listeners" => self.net.advertised = listeners::parse_listeners(key, value)?,
            "controller.listener.names" => {
                self.net.controller_names =
                    listeners::split_list(value).map(str::to_ascii_uppercase).collect()
            }
            "inter.broker.listener.name" => {
                self.net.inter_broker_name = Some(value.to_ascii_uppercase())
            }
            "listener.security.protocol.map" => {
                self.net.protocol_map = Some(listeners::parse_protocol_map(value)?)
            }
            "process.roles" => {
                self.net.roles = listeners::parse_roles(value)?;
                self.net.roles_set = true;
            }
            "replica.lag.time.max.ms" => self.replica_lag_time_max = positive_millis(key, value)?,
            "leader.replication.throttled.rate" => {
                self.leader_replication_throttled_rate = throttle_rate(key, value)?
            }
            "follower.replication.throttled.rate" => {
                self.follower_replication_throttled_rate = throttle_rate(key, value)?
            }
            "broker.heartbeat.interval.ms" => {
                self.broker_heartbeat_interval = positive_millis(key, value)?
            }
            "broker.session.timeout.ms" => {
                self.broker_session_timeout = positive_millis(key, value)?
            }
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance = parse(key, value)?,
            "leader.imbalance.check.interval.seconds" => {
                let secs: u64 = parse(key, value)?;
                if secs == 0 {
                    return Err(ConfigError::Invalid(format!("{key} must be at least 1")));
                }
                self.leader_imbalance_check_interval = Duration::from_secs(secs)
            }
            "admin.listener" => self.admin_listen = parse(key, value)?,
            "log.dirs" | "log.dir" => {
                self.data_dir = PathBuf::from(value.split(',').next().unwrap_or(value).trim())
            }
            "controller.quorum.voters" => self.net.voters = listeners::parse_voters(value)?,
            "num.partitions" => {
                self.num_partitions = parse(key, value)?;
                if self.num_partitions < 1 {
                    return Err(ConfigError::Invalid("num.partitions must be at least 1".into()));
                }
            }
            "default.replication.factor" => self.default_replication_factor = parse(key, value)?,
            "auto.create.topics.enable" => self.auto_create_topics = parse(key, value)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = parse(key, value)?,
            "max.connections" => self.max_connections = parse(key, value)?,
            "max.incremental.fetch.session.cache.slots" => {
                self.fetch_session_slots = parse(key, value)?
            }
            "queued.max.request.bytes" => self.queued_max_request_bytes = parse(key, value)?,
            "connections.max.idle.ms" => {
                self.connections_max_idle = Duration::from_millis(parse(key, value)?)
            }
            "log.retention.check.interval.ms" => {
                self.retention_check_interval = Duration::from_millis(parse(key, value)?)
            }
            "cluster.id" => self.cluster_id = Some(value.to_string()),
            "producer.id.expiration.ms" => {
                self.producer_id_expiration = Duration::from_millis(parse(key, value)?)
            }
            "producer.id.expiration.check.interval.ms" => {
                self.producer_id_expiration_check = Duration::from_millis(parse(key, value)?)
            }
            // Empty is no rack (a rack taken from a label that a pod does not have).
            "broker.rack" => self.rack = (!value.is_empty()).then(|| value.to_string()),
            "metrics.partition.series.max" => self.metrics_series_max = parse(key, value)?,
            "console.actions.enable" => self.console_actions = parse(key, value)?,
            "console.allowed.hosts" => {
                self.console_allowed_hosts =
                    listeners::split_list(value).map(str::to_ascii_lowercase).collect()
            }
            k if crate::group::GROUP_CONFIG_KEYS.contains(&k) => {
                self.groups.set(k, value).map_err(ConfigError::Invalid)?
            }
            _ => match self.log_defaults.with_broker_overrides([(key, value)]) {
                Ok(c) => self.log_defaults = c,
                Err(crate::log::ConfigError::Unknown(_)) => {
                    self.accept_without_effect(key, value)?
                }
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }

    /// A setting Kafka has and Sluice does not act on: accepted if its value is one Kafka would
    /// take, and remembered so start-up can say it has no effect. A name Kafka does not know
    /// either is a typo: refused, naming the closest known key.
    fn accept_without_effect(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        if let Some(k) = kafka_broker_key(key) {
            check_kind(key, k.kind, value).map_err(ConfigError::Invalid)?;
        } else if !key.starts_with("listener.name.") {
            let known = catalog::BROKER.iter().map(|k| k.name).chain(SLUICE_KEYS.iter().copied());
            return Err(ConfigError::Invalid(match closest_name(key, known) {
                Some(near) => format!("unknown configuration '{key}' (did you mean '{near}'?)"),
                None => format!("unknown configuration '{key}': neither Kafka nor Sluice has it"),
            }));
        }
        self.without_effect.insert(key.into(), value.into());
        Ok(())
    }

    /// Checks what single settings cannot, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // As Kafka: a request must fit in the pool, or it could never be read.
        if self.queued_max_request_bytes > 0
            && (self.queued_max_request_bytes as u64) < self.socket_request_max_bytes as u64
        {
            return Err(ConfigError::Invalid(format!(
                "queued.max.request.bytes={} must be -1 or at least socket.request.max.bytes={}",
                self.queued_max_request_bytes, self.socket_request_max_bytes
            )));
        }
        if self.node_id < 0 {
            return Err(ConfigError::Invalid(format!(
                "node.id must be at least 0, not {}",
                self.node_id
            )));
        }
        if self.broker_heartbeat_interval >= self.broker_session_timeout {
            return Err(ConfigError::Invalid(format!(
                "broker.heartbeat.interval.ms ({} ms) must be less than broker.session.timeout.ms \
                 ({} ms)",
                self.broker_heartbeat_interval.as_millis(),
                self.broker_session_timeout.as_millis()
            )));
        }
        self.net.validate(self.node_id)?;
        self.providers.validate()?;
        if !self.net.is_single_node(self.node_id) && self.cluster_id.is_none() {
            return Err(ConfigError::Invalid(
                "cluster.id must be set when controller.quorum.voters names several nodes: every \
                 node of the cluster carries the same id"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Applies settings in their order, except that the `config.providers*` ones come first:
    /// as Kafka reads a whole file before it resolves references, a provider serves every value
    /// given with it, before or after it.
    pub fn apply_all<K, V>(
        &mut self,
        settings: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (first, then): (Vec<_>, Vec<_>) =
            settings.into_iter().partition(|(k, _)| providers::is_provider_key(k.as_ref()));
        for (k, v) in first.into_iter().chain(then) {
            self.set(k.as_ref(), v.as_ref())?;
        }
        Ok(())
    }

    /// Applies the `key=value` lines of a properties file ([`property_lines`]).
    pub fn apply_properties(&mut self, text: &str) -> Result<(), ConfigError> {
        let mut settings = Vec::new();
        for (n, key, value) in property_lines(text) {
            let value = value.ok_or_else(|| {
                ConfigError::Invalid(format!("line {n}: expected key=value, got '{key}'"))
            })?;
            settings.push((key, value));
        }
        self.apply_all(settings)
    }

    /// Reads a properties file.
    pub fn apply_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::File { path: path.into(), source })?;
        self.apply_properties(&text)
    }

    /// The settings as Kafka property names and values (DescribeConfigs for the broker).
    pub fn to_props(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("node.id".into(), self.node_id.to_string());
        m.insert("broker.id".into(), self.node_id.to_string());
        let listeners = self
            .net
            .listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, listeners::join_host_port(&l.host, l.port)));
        m.insert("listeners".into(), listeners.collect::<Vec<_>>().join(","));
        m.insert("log.dirs".into(), self.data_dir.display().to_string());
        // Kafka also lists `config.providers.<name>.*`, with no value (it hides the values of
        // keys it has no type for); left out here, since their parameters may be secrets.
        m.insert("config.providers".into(), self.providers.names());
        m.insert("num.partitions".into(), self.num_partitions.to_string());
        m.insert("default.replication.factor".into(), self.default_replication_factor.to_string());
        m.insert("auto.create.topics.enable".into(), self.auto_create_topics.to_string());
        m.insert("socket.request.max.bytes".into(), self.socket_request_max_bytes.to_string());
        m.insert("queued.max.request.bytes".into(), self.queued_max_request_bytes.to_string());
        m.insert(
            "connections.max.idle.ms".into(),
            self.connections_max_idle.as_millis().to_string(),
        );
        m.insert(
            "log.retention.check.interval.ms".into(),
            self.retention_check_interval.as_millis().to_string(),
        );
        m.insert(
            "leader.replication.throttled.rate".into(),
            self.leader_replication_throttled_rate.to_string(),
        );
        m.insert(
            "follower.replication.throttled.rate".into(),
            self.follower_replication_throttled_rate.to_string(),
        );
        m.insert(
            "replica.lag.time.max.ms".into(),
            self.replica_lag_time_max.as_millis().to_string(),
        );
        m.insert(
            "producer.id.expiration.ms".into(),
            self.producer_id_expiration.as_millis().to_string(),
        );
        m.insert(
            "producer.id.expiration.check.interval.ms".into(),
            self.producer_id_expiration_check.as_millis().to_string(),
        );
        for (key, value) in self.groups.to_props() {
            m.insert(key.into(), value);
        }
        for (topic_key, broker_key) in crate::log::config::TOPIC_CONFIGS {
            if let Some(v) = self.log_defaults.to_props().get(topic_key) {
                m.insert((*broker_key).into(), v.clone());
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_file_uses_kafka_names() {
        let mut c = BrokerConfig::default();
        c.apply_properties(
            "# comment\nnode.id=3\nlisteners=PLAINTEXT://0.0.0.0:19092\n\
             advertised.listeners=PLAINTEXT://broker-3.svc:19092\nlog.dirs=/var/lib/sluice\n\
             log.retention.hours=2\nlog.segment.bytes=1048576\nnum.partitions=4\n",
        )
        .unwrap();
        assert_eq!(c.node_id, 3);
        let client = c.net.client_listeners().next().unwrap();
        assert_eq!((client.host.as_str(), client.port), ("0.0.0.0", 19092));
        assert_eq!(c.net.advertised_for(client, 19092), ("broker-3.svc".into(), 19092));
        assert_eq!(c.log_defaults.retention_ms, 7_200_000);
        assert_eq!(c.log_defaults.segment_bytes, 1_048_576);
        assert_eq!(c.num_partitions, 4);
        assert_eq!(c.to_props()["log.retention.ms"], "7200000");
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let mut c = BrokerConfig::default();
        let e = c.apply_properties("node.id=abc").unwrap_err();
        assert!(e.to_string().contains("node.id"), "{e}");
        assert!(c.apply_properties("no.such.setting=1").is_err());
        assert!(c.apply_properties("num.partitions=0").is_err());
    }

    #[test]
    fn every_kafka_broker_config_is_accepted_and_typos_name_the_closest_key() {
        let mut c = BrokerConfig::default();
        // Kafka settings without an effect here: accepted, type-checked, remembered.
        c.apply_properties(
            "num.network.threads=3\nnum.io.threads=8\nsocket.send.buffer.bytes=102400\n\
             transaction.state.log.replication.factor=1\nssl.keystore.password=secret\n\
             listener.name.internal.ssl.keystore.location=/x\n",
        )
        .unwrap();
        assert_eq!(c.without_effect["num.io.threads"], "8");
        assert_eq!(c.without_effect.len(), 6);
        let e = c.apply_properties("num.io.threads=many").unwrap_err().to_string();
        assert!(e.contains("num.io.threads") && e.contains("int"), "{e}");
        // A typo: refused, with the key it probably meant.
        let e = c.apply_properties("num.partition=3").unwrap_err().to_string();
        assert!(e.contains("did you mean 'num.partitions'"), "{e}");
        let e = c.apply_properties("log.retention.hour=3").unwrap_err().to_string();
        assert!(e.contains("did you mean 'log.retention.hours'"), "{e}");
        let e = c.apply_properties("completely.made.up.thing=1").unwrap_err().to_string();
        assert!(e.contains("neither Kafka nor Sluice"), "{e}");
        // Every key of Kafka's catalog is accepted with its own default value.
        for k in catalog::BROKER {
            if let Some(d) = k.default {
                let mut c = BrokerConfig::default();
                if k.name == "log.dir" || k.name == "log.dirs" || k.name.contains("listener") {
                    continue; // addresses and paths: checked by the tests above
                }
                c.set(k.name, d).unwrap_or_else(|e| panic!("{}={d}: {e}", k.name));
            }
        }
    }

    #[test]
    fn run_time_keys_are_cluster_wide_and_acted_on() {
        for key in ["log.retention.ms", "min.insync.replicas", "leader.replication.throttled.rate"]
        {
            assert!(takes_effect_at_run_time(key), "{key}");
        }
        // Static in Kafka; dynamic in Kafka but read by Sluice only at start-up; unknown.
        for key in ["default.replication.factor", "num.io.threads", "log.retention.hourz"] {
            assert!(!takes_effect_at_run_time(key), "{key}");
        }
    }

    #[test]
    fn a_cluster_node_needs_a_cluster_id_and_a_session_longer_than_its_heartbeat() {
        let mut c = BrokerConfig::default();
        c.apply_properties(
            "node.id=2\nlisteners=PLAINTEXT://:19092,CONTROLLER://:19093\n\
             controller.listener.names=CONTROLLER\n\
             controller.quorum.voters=1@a:19093,2@b:19093,3@c:19093\n",
        )
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cluster.id must be set"), "{e}");
        c.apply_properties("cluster.id=MkU3OEVBNTcwNTJENDM2Qk\nbroker.heartbeat.interval.ms=9000")
            .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("broker.session.timeout.ms"), "{e}");
        c.apply_properties("broker.heartbeat.interval.ms=2000").unwrap();
        c.validate().unwrap();
        assert_eq!(c.net.controller_listener().unwrap().port, 19093);
        assert!(c.to_props()["listeners"].contains("CONTROLLER://:19093"));
    }
}
