//! `BrokerConfig`: every setting of a broker, with Kafka's names and defaults.
//!
//! Sources, lowest precedence first: built-in defaults (those of `sluice dev`), a Kafka-style
//! properties file (`--config FILE`, `key=value` lines with Kafka's names such as `node.id`,
//! `listeners`, `log.dirs`, `log.retention.hours`), then `SLUICE_*` environment variables and
//! command-line flags (clap handles those two). Any Kafka property can also be given with
//! `--set key=value` (env `SLUICE_SET`, comma-separated).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::log::LogConfig;

pub mod catalog;
pub mod kafka;

use kafka::{check_kind, closest_name, kafka_broker_key};

/// Sluice's own settings, which Kafka does not have.
const SLUICE_KEYS: &[&str] = &["admin.listener"];

/// A configuration the broker cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Log(#[from] crate::log::ConfigError),
}

/// All broker settings.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// `listeners`: the Kafka listener (`127.0.0.1:9092`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// `advertised.listeners`: host and port given to clients; defaults to the bound address.
    pub advertised: Option<(String, u16)>,
    /// Admin HTTP listener for `/metrics` and health (`127.0.0.1:9644`).
    pub admin_listen: SocketAddr,
    /// `log.dirs` (one directory).
    pub data_dir: PathBuf,
    /// `controller.quorum.voters` as `id@host:port` entries (empty: this node alone).
    pub quorum_voters: Vec<String>,
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
    /// `connections.max.idle.ms` (10 minutes).
    pub connections_max_idle: Duration,
    /// `log.retention.check.interval.ms` (5 minutes).
    pub retention_check_interval: Duration,
    /// `cluster.id` to use when formatting a new metadata log (generated when absent).
    pub cluster_id: Option<String>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `producer.id.expiration.ms` (1 day).
    pub producer_id_expiration: Duration,
    /// `producer.id.expiration.check.interval.ms` (10 minutes).
    pub producer_id_expiration_check: Duration,
    /// The group coordinator's settings (`offsets.topic.num.partitions`,
    /// `group.initial.rebalance.delay.ms`, `offsets.retention.minutes`, ...).
    pub groups: crate::group::GroupConfig,
    /// Kafka settings Sluice accepts (so a Kafka `server.properties` starts it) but that change
    /// nothing here: thread counts, socket buffers, security, transactions, ...
    pub without_effect: BTreeMap<String, String>,
    /// `listeners` and `advertised.listeners` as given, resolved once `controller.listener.names`
    /// is known too (it may come later in a file).
    listeners_raw: Option<String>,
    advertised_raw: Option<String>,
    controller_listener_names: Vec<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            listen: "127.0.0.1:9092".parse().expect("valid address"),
            advertised: None,
            admin_listen: "127.0.0.1:9644".parse().expect("valid address"),
            data_dir: PathBuf::from("data"),
            quorum_voters: Vec::new(),
            log_defaults: LogConfig::default(),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            socket_request_max_bytes: 100 * 1024 * 1024,
            queued_max_request_bytes: -1,
            max_connections: 10_000,
            connections_max_idle: Duration::from_millis(600_000),
            retention_check_interval: Duration::from_millis(300_000),
            cluster_id: None,
            rack: None,
            producer_id_expiration: Duration::from_millis(86_400_000),
            producer_id_expiration_check: Duration::from_millis(600_000),
            groups: crate::group::GroupConfig::default(),
            without_effect: BTreeMap::new(),
            listeners_raw: None,
            advertised_raw: None,
            controller_listener_names: Vec::new(),
        }
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("invalid value '{value}' for {key}")))
}

/// Strips a `PLAINTEXT://` (or any `NAME://`) prefix from a listener.
fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn listener_addr(value: &str) -> &str {
    let first = value.split(',').next().unwrap_or(value).trim();
    first.split_once("://").map(|(_, a)| a).unwrap_or(first)
}

fn parse_host_port(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let addr = listener_addr(value);
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| ConfigError::Invalid(format!("{key} must be host:port, got '{value}'")))?;
    Ok((host.trim_matches(['[', ']']).to_string(), parse(key, port)?))
}

impl BrokerConfig {
    /// Applies one Kafka-named property.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        match key {
            "node.id" | "broker.id" => self.node_id = parse(key, value)?,
            "listeners" => {
                self.listeners_raw = Some(value.to_string());
                self.resolve_listeners()?;
            }
            "advertised.listeners" => {
                self.advertised_raw = Some(value.to_string());
                self.resolve_listeners()?;
            }
            "controller.listener.names" => {
                self.controller_listener_names = split_list(value);
                self.resolve_listeners()?;
                self.without_effect.insert(key.into(), value.into());
            }
            "admin.listener" => self.admin_listen = parse(key, value)?,
            "log.dirs" | "log.dir" => {
                self.data_dir = PathBuf::from(value.split(',').next().unwrap_or(value).trim())
            }
            "controller.quorum.voters" => {
                self.quorum_voters = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
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
            "broker.rack" => self.rack = Some(value.to_string()),
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

    /// Picks the client listener: the first of `listeners` that is not a controller listener
    /// (`controller.listener.names`), and its entry in `advertised.listeners` (matched by
    /// listener name, else the first non-controller entry). `PLAINTEXT://:9092` (no host) binds
    /// every interface, as in Kafka.
    fn resolve_listeners(&mut self) -> Result<(), ConfigError> {
        let controller = &self.controller_listener_names;
        let pick =
            |key: &str, raw: &str, want: Option<&str>| -> Result<(String, String), ConfigError> {
                let entries: Vec<(String, String)> = split_list(raw)
                    .into_iter()
                    .map(|e| match e.split_once("://") {
                        Some((name, addr)) => (name.trim().to_string(), addr.trim().to_string()),
                        None => ("PLAINTEXT".to_string(), e),
                    })
                    .filter(|(name, _)| !controller.iter().any(|c| c == name))
                    .collect();
                entries
                    .iter()
                    .find(|(name, _)| want.is_none_or(|w| w == name))
                    .or_else(|| entries.first())
                    .cloned()
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!(
                        "{key}={raw} has no client listener (all are in controller.listener.names)"
                    ))
                    })
            };
        let mut name = None;
        if let Some(raw) = self.listeners_raw.clone() {
            let (n, addr) = pick("listeners", &raw, None)?;
            let addr = if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr };
            self.listen = parse("listeners", &addr)?;
            name = Some(n);
        }
        if let Some(raw) = self.advertised_raw.clone() {
            let (_, addr) = pick("advertised.listeners", &raw, name.as_deref())?;
            self.advertised = Some(parse_host_port("advertised.listeners", &addr)?);
        }
        Ok(())
    }

    /// Checks what single settings cannot: the quorum is this node alone until the metadata
    /// quorum grows voters, so a voter list naming other nodes is refused rather than ignored.
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
        const KEY: &str = "controller.quorum.voters";
        let voter = match self.quorum_voters.as_slice() {
            [] => return Ok(()),
            [voter] => voter,
            _ => return Err(self.not_one_voter()),
        };
        let (id, endpoint) = voter.split_once('@').ok_or_else(|| {
            ConfigError::Invalid(format!("{KEY} entries are id@host:port, got '{voter}'"))
        })?;
        parse_host_port(KEY, endpoint)?;
        if parse::<i32>(KEY, id)? != self.node_id {
            return Err(self.not_one_voter());
        }
        Ok(())
    }

    fn not_one_voter(&self) -> ConfigError {
        ConfigError::Invalid(format!(
            "controller.quorum.voters={}: this build runs a one-voter quorum, whose only voter \
             is this node (node.id={}); multi-node quorums are not supported yet",
            self.quorum_voters.join(","),
            self.node_id
        ))
    }

    /// Applies `key=value` lines of a properties file (`#` and `!` start comments).
    pub fn apply_properties(&mut self, text: &str) -> Result<(), ConfigError> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (k, v) = line.split_once(['=', ':']).ok_or_else(|| {
                ConfigError::Invalid(format!("line {}: expected key=value, got '{line}'", n + 1))
            })?;
            self.set(k.trim(), v)?;
        }
        Ok(())
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
        m.insert("listeners".into(), format!("PLAINTEXT://{}", self.listen));
        m.insert("log.dirs".into(), self.data_dir.display().to_string());
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
        assert_eq!(c.listen.port(), 19092);
        assert_eq!(c.advertised, Some(("broker-3.svc".into(), 19092)));
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
    fn listeners_pick_the_client_listener_by_name() {
        let mut c = BrokerConfig::default();
        c.apply_properties(
            "listeners=CONTROLLER://127.0.0.1:9093,PLAINTEXT://:19092\n\
             advertised.listeners=CONTROLLER://ctl:9093,PLAINTEXT://broker-0.svc:19092\n\
             controller.listener.names=CONTROLLER\n",
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:19092".parse().unwrap());
        assert_eq!(c.advertised, Some(("broker-0.svc".into(), 19092)));
        let e = c.apply_properties("listeners=CONTROLLER://127.0.0.1:9093").unwrap_err();
        assert!(e.to_string().contains("no client listener"), "{e}");
    }

    #[test]
    fn quorum_voters_other_than_this_node_are_refused() {
        let mut c = BrokerConfig::default();
        c.apply_properties("node.id=1\ncontroller.quorum.voters=1@localhost:9093").unwrap();
        c.validate().unwrap();
        c.apply_properties("controller.quorum.voters=1@a:9093,2@b:9093,3@c:9093").unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("one-voter"), "{e}");
        c.apply_properties("controller.quorum.voters=2@b:9093").unwrap();
        assert!(c.validate().is_err());
        c.apply_properties("controller.quorum.voters=b:9093").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("id@host:port"));
    }
}
