//! Named listeners, process roles and quorum voters, with Kafka's names and rules.
//!
//! `listeners=PLAINTEXT://:9092,INTERNAL://10.0.0.5:9094,CONTROLLER://:9093` binds every entry;
//! the ones named in `controller.listener.names` carry the metadata quorum (raft and controller
//! calls), the others serve Kafka clients. Each client listener advertises its own host:port
//! (`advertised.listeners`, by name; the bound address when absent), and a client is answered
//! with the endpoints of the listener it connected to. `inter.broker.listener.name` picks the
//! listener other brokers use (replication).
//!
//! A node may be a broker, a controller (a voter of the metadata quorum) or both; a broker-only
//! node reaches the controllers at the addresses in `controller.quorum.voters`.
//!
//! Each setting is parsed alone when it is set; [`ListenerConfig::validate`] checks the
//! combination once every source is applied, naming the key at fault.

use std::collections::BTreeMap;

use super::ConfigError;

/// One `NAME://host:port` entry. An empty host binds every interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, upper-cased as Kafka normalises it.
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// `host:port` for binding (an empty host binds every interface).
    pub fn bind_addr(&self) -> String {
        let host = if self.host.is_empty() { "0.0.0.0" } else { &self.host };
        join_host_port(host, self.port)
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One `controller.quorum.voters` entry: `id@host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn addr(&self) -> String {
        join_host_port(&self.host, self.port)
    }
}

/// `process.roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Roles { broker: true, controller: true }
    }
}

/// Everything about listeners, roles and voters.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// `process.roles` (`broker,controller`).
    pub roles: Roles,
    /// Whether `process.roles` was set; when it was not, [`ListenerConfig::resolve_roles`]
    /// derives the roles from the node id.
    pub roles_set: bool,
    /// `listeners` (`PLAINTEXT://127.0.0.1:9092`).
    pub listeners: Vec<Listener>,
    /// `advertised.listeners`, by name; a listener without an entry advertises its bound address.
    pub advertised: Vec<Listener>,
    /// `controller.listener.names`.
    pub controller_names: Vec<String>,
    /// `inter.broker.listener.name`; the first client listener when unset.
    pub inter_broker_name: Option<String>,
    /// `listener.security.protocol.map` when set explicitly.
    pub protocol_map: Option<BTreeMap<String, String>>,
    /// `controller.quorum.voters`; empty means this node alone, as `sluice dev` runs.
    pub voters: Vec<Voter>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            roles: Roles::default(),
            roles_set: false,
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            advertised: Vec::new(),
            controller_names: Vec::new(),
            inter_broker_name: None,
            protocol_map: None,
            voters: Vec::new(),
        }
    }
}

/// Security protocols Kafka knows; only PLAINTEXT is served.
const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

fn invalid(msg: String) -> ConfigError {
    ConfigError::Invalid(msg)
}

/// The items of a comma-separated list, trimmed, empty ones left out.
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Parses `host:port` (host may be empty or a bracketed IPv6 literal).
pub fn parse_host_port(key: &str, addr: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("{key}: '{addr}' is not host:port")))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid(format!("{key}: '{addr}' has an invalid port '{port}'")))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Parses a `listeners`-style list; an entry without `NAME://` is PLAINTEXT.
pub fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in split_list(value) {
        let (name, addr) = match entry.split_once("://") {
            Some((n, a)) => (n.trim().to_ascii_uppercase(), a.trim()),
            None => ("PLAINTEXT".to_string(), entry),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(format!("{key}: '{entry}' has an invalid listener name")));
        }
        let (host, port) = parse_host_port(key, addr)?;
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(format!("{key}: listener name {name} appears more than once")));
        }
        out.push(Listener { name, host, port });
    }
    Ok(out)
}

/// Parses `controller.quorum.voters`.
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    const KEY: &str = "controller.quorum.voters";
    let mut out: Vec<Voter> = Vec::new();
    for entry in split_list(value) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| invalid(format!("{KEY} entries are id@host:port, got '{entry}'")))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| invalid(format!("{KEY}: '{entry}' has an invalid node id")))?;
        let (host, port) = parse_host_port(KEY, addr.trim())?;
        if host.is_empty() {
            return Err(invalid(format!("{KEY}: '{entry}' has no host")));
        }
        if out.iter().any(|v| v.id == id) {
            return Err(invalid(format!("{KEY}: node id {id} appears more than once")));
        }
        out.push(Voter { id, host, port });
    }
    Ok(out)
}

/// Parses `process.roles`.
pub fn parse_roles(value: &str) -> Result<Roles, ConfigError> {
    let mut roles = Roles { broker: false, controller: false };
    for role in split_list(value) {
        match role {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => {
                return Err(invalid(format!(
                    "process.roles: unknown role '{other}' (expected broker, controller or both)"
                )))
            }
        }
    }
    if !roles.broker && !roles.controller {
        return Err(invalid("process.roles must name broker, controller or both".into()));
    }
    Ok(roles)
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
pub fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    let mut map = BTreeMap::new();
    for entry in split_list(value) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| invalid(format!("{KEY} entries are NAME:PROTOCOL, got '{entry}'")))?;
        let protocol = protocol.trim().to_ascii_uppercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(invalid(format!("{KEY}: unknown security protocol '{protocol}'")));
        }
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

impl ListenerConfig {
    fn is_controller_listener(&self, name: &str) -> bool {
        self.controller_names.iter().any(|c| c == name)
    }

    /// The listeners that serve Kafka clients, in `listeners` order.
    pub fn client_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners.iter().filter(|l| !self.is_controller_listener(&l.name))
    }

    /// The listener this node serves the metadata quorum on: the first of
    /// `controller.listener.names`, when this node is a controller with voters configured.
    pub fn controller_listener(&self) -> Option<&Listener> {
        if !self.roles.controller || self.voters.is_empty() {
            return None;
        }
        let name = self.controller_names.first()?;
        self.listeners.iter().find(|l| &l.name == name)
    }

    /// The name of the listener other brokers use.
    pub fn inter_broker_listener(&self) -> Option<&str> {
        self.inter_broker_name
            .as_deref()
            .or_else(|| self.client_listeners().next().map(|l| l.name.as_str()))
    }

    /// The advertised host and port of listener `name`, given the port it is bound to.
    pub fn advertised_for(&self, listener: &Listener, bound_port: u16) -> (String, u16) {
        match self.advertised.iter().find(|a| a.name == listener.name) {
            Some(a) => (a.host.clone(), a.port),
            None => {
                let host = if listener.host.is_empty() { "0.0.0.0" } else { &listener.host };
                (host.to_string(), bound_port)
            }
        }
    }

    /// Whether this node runs alone: no voters, or itself as the only one.
    pub fn is_single_node(&self, node_id: i32) -> bool {
        match self.voters.as_slice() {
            [] => true,
            [v] => v.id == node_id,
            _ => false,
        }
    }

    fn protocol_of(&self, name: &str) -> Option<String> {
        if let Some(map) = &self.protocol_map {
            return map.get(name).cloned();
        }
        // Kafka's default map names each protocol after itself, and (KRaft) maps the
        // controller listeners to PLAINTEXT unless the map was set explicitly.
        if PROTOCOLS.contains(&name) {
            Some(name.to_string())
        } else if self.is_controller_listener(name) {
            Some("PLAINTEXT".into())
        } else {
            None
        }
    }

    /// Without `process.roles`, a node's roles follow from its id, so that one config file
    /// serves every node of a cluster (the operator's ConfigMap): a node in
    /// `controller.quorum.voters` is a broker and a controller; any other node is a broker
    /// only, and does not bind or advertise the controller listeners that file names (Kafka
    /// would refuse both). Kafka requires `process.roles` in KRaft mode; set it and it is taken
    /// as it is.
    pub fn resolve_roles(&mut self, node_id: i32) {
        if self.roles_set || self.voters.is_empty() || self.voters.iter().any(|v| v.id == node_id) {
            return;
        }
        self.roles = Roles { broker: true, controller: false };
        let names = self.controller_names.clone();
        self.listeners.retain(|l| !names.contains(&l.name));
        self.advertised.retain(|l| !names.contains(&l.name));
    }

    /// Checks the combination of settings, naming the key at fault.
    pub fn validate(&self, node_id: i32) -> Result<(), ConfigError> {
        const MAP: &str = "listener.security.protocol.map";
        for l in &self.listeners {
            match self.protocol_of(&l.name) {
                None => {
                    return Err(invalid(format!(
                        "{MAP} has no entry for listener {} (add {}:PLAINTEXT)",
                        l.name, l.name
                    )))
                }
                Some(p) if p != "PLAINTEXT" => {
                    return Err(invalid(format!(
                        "{MAP} maps listener {} to {p}; Sluice serves PLAINTEXT listeners only",
                        l.name
                    )))
                }
                Some(_) => {}
            }
        }
        for a in &self.advertised {
            if !self.listeners.iter().any(|l| l.name == a.name) {
                return Err(invalid(format!(
                    "advertised.listeners names listener {} which is not in listeners",
                    a.name
                )));
            }
            if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
                return Err(invalid(format!(
                    "advertised.listeners: {} cannot advertise the non-routable address '{}'",
                    a.name, a.host
                )));
            }
        }
        if self.roles.broker && self.client_listeners().next().is_none() {
            return Err(invalid(
                "listeners has no client listener: every entry is in controller.listener.names"
                    .into(),
            ));
        }
        if let Some(name) = &self.inter_broker_name {
            if self.is_controller_listener(name) || !self.listeners.iter().any(|l| &l.name == name)
            {
                return Err(invalid(format!(
                    "inter.broker.listener.name={name} must name a client listener in listeners"
                )));
            }
        }
        self.validate_quorum(node_id)
    }

    fn validate_quorum(&self, node_id: i32) -> Result<(), ConfigError> {
        const VOTERS: &str = "controller.quorum.voters";
        let voters = self.voters.iter().map(|v| format!("{}@{}", v.id, v.addr()));
        let voters = voters.collect::<Vec<_>>().join(",");
        let is_voter = self.voters.iter().any(|v| v.id == node_id);
        if self.voters.is_empty() {
            return if self.roles == Roles::default() {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{VOTERS} is required when process.roles is not broker,controller"
                )))
            };
        }
        if self.voters.len() % 2 == 0 {
            return Err(invalid(format!(
                "{VOTERS}={voters} has {} voters; use an odd number (1, 3 or 5): an even count \
                 survives no more failures than one voter fewer",
                self.voters.len()
            )));
        }
        if self.roles.controller && !is_voter {
            return Err(invalid(format!(
                "process.roles includes controller, so node.id {node_id} must be one of \
                 {VOTERS}={voters}"
            )));
        }
        if !self.roles.controller && is_voter {
            return Err(invalid(format!(
                "node.id {node_id} is in {VOTERS}={voters}, so process.roles must include \
                 controller"
            )));
        }
        if self.controller_names.is_empty() {
            return Err(invalid(format!(
                "controller.listener.names must be set when {VOTERS} is set"
            )));
        }
        let first = &self.controller_names[0];
        let bound = self.listeners.iter().any(|l| &l.name == first);
        if self.roles.controller && !bound {
            return Err(invalid(format!(
                "controller.listener.names={first} must name an entry of listeners on a controller"
            )));
        }
        if !self.roles.controller && bound {
            return Err(invalid(format!(
                "listeners must not contain the controller listener {first} when process.roles \
                 is broker"
            )));
        }
        if !self.roles.broker {
            if let Some(l) = self.client_listeners().next() {
                return Err(invalid(format!(
                    "listeners must only contain controller listeners (controller.listener.names) \
                     when process.roles is controller, but {} is not one",
                    l.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &[(&str, &str)]) -> Result<ListenerConfig, ConfigError> {
        let mut c = ListenerConfig::default();
        for (k, v) in text {
            match *k {
                "listeners" => c.listeners = parse_listeners(k, v)?,
                "advertised.listeners" => c.advertised = parse_listeners(k, v)?,
                "controller.listener.names" => {
                    c.controller_names = split_list(v).map(str::to_ascii_uppercase).collect()
                }
                "inter.broker.listener.name" => c.inter_broker_name = Some(v.to_string()),
                "listener.security.protocol.map" => c.protocol_map = Some(parse_protocol_map(v)?),
                "controller.quorum.voters" => c.voters = parse_voters(v)?,
                "process.roles" => {
                    c.roles = parse_roles(v)?;
                    c.roles_set = true;
                }
                _ => panic!("{k}"),
            }
        }
        c.validate(1)?;
        Ok(c)
    }

    fn err(text: &[(&str, &str)]) -> String {
        config(text).unwrap_err().to_string()
    }

    const THREE: (&str, &str) = ("controller.quorum.voters", "1@a:9093,2@b:9093,3@c:9093");
    const CTL: (&str, &str) = ("controller.listener.names", "CONTROLLER");

    #[test]
    fn a_pod_with_internal_external_and_controller_listeners() {
        let c = config(&[
            ("listeners", "INTERNAL://:9092,EXTERNAL://:9094,CONTROLLER://:9093"),
            ("advertised.listeners", "INTERNAL://b-1.svc:9092,EXTERNAL://1.2.3.4:31001"),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("inter.broker.listener.name", "INTERNAL"),
            CTL,
            THREE,
        ])
        .unwrap();
        let names: Vec<&str> = c.client_listeners().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["INTERNAL", "EXTERNAL"]);
        assert_eq!(c.controller_listener().unwrap().port, 9093);
        assert_eq!(c.advertised_for(&c.listeners[1], 9094), ("1.2.3.4".into(), 31001));
        assert_eq!(c.inter_broker_listener(), Some("INTERNAL"));
        assert!(!c.is_single_node(1));
    }

    #[test]
    fn bad_combinations_name_the_key() {
        assert!(
            err(&[("listeners", "EXTERNAL://:9094")]).contains("no entry for listener EXTERNAL")
        );
        assert!(err(&[("listeners", "SSL://:9094")]).contains("PLAINTEXT listeners only"));
        assert!(err(&[THREE]).contains("controller.listener.names must be set"));
        assert!(err(&[("listeners", "PLAINTEXT://:9092"), CTL, THREE])
            .contains("must name an entry of listeners"));
        assert!(err(&[("controller.quorum.voters", "2@b:9093"), CTL]).contains("must be one of"));
        assert!(err(&[("controller.quorum.voters", "1@a:1,2@b:1")]).contains("odd number"));
        assert!(
            err(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")]).contains("non-routable")
        );
        assert!(err(&[("advertised.listeners", "OTHER://h:1")]).contains("not in listeners"));
        assert!(err(&[("inter.broker.listener.name", "NOPE")]).contains("inter.broker"));
        assert!(
            err(&[("listeners", "CONTROLLER://:9093"), CTL, THREE]).contains("no client listener")
        );
        assert!(err(&[("process.roles", "broker")]).contains("is required"));
        assert!(err(&[("process.roles", "broker"), THREE, CTL]).contains("must include controller"));
        assert!(err(&[
            ("process.roles", "controller"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            CTL,
            THREE
        ])
        .contains("must only contain controller listeners"));
        assert!(config(&[("controller.quorum.voters", "1@a:1,1@b:1")]).is_err());
        assert!(config(&[("controller.quorum.voters", "a:1")]).is_err());
        assert!(config(&[("process.roles", "router")]).is_err());
        assert!(config(&[("listeners", "PLAINTEXT://:x")]).is_err());
        assert!(config(&[("listeners", "A://:1,a://:2")])
            .unwrap_err()
            .to_string()
            .contains("more than once"));
    }

    #[test]
    fn without_process_roles_one_file_serves_voters_and_brokers() {
        let node = |id: i32| {
            let advertised = "PLAINTEXT://n.example:9092,CONTROLLER://n.example:9093";
            let mut c = ListenerConfig {
                listeners: parse_listeners("l", "PLAINTEXT://:9092,CONTROLLER://:9093").unwrap(),
                advertised: parse_listeners("a", advertised).unwrap(),
                controller_names: vec!["CONTROLLER".into()],
                voters: parse_voters("0@a:9093,1@b:9093,2@c:9093").unwrap(),
                ..Default::default()
            };
            c.resolve_roles(id);
            c.validate(id).map(|()| c)
        };
        let voter = node(1).unwrap();
        assert_eq!(voter.roles, Roles::default());
        assert!(voter.controller_listener().is_some());
        let broker = node(4).unwrap();
        assert_eq!(broker.roles, Roles { broker: true, controller: false });
        assert!(broker.controller_listener().is_none());
        assert_eq!(broker.listeners.len(), 1, "the controller listener is not bound");
        assert_eq!(broker.advertised.len(), 1, "nor advertised");
        // Set explicitly, the roles are taken as they are, and Kafka's rules apply.
        let mut explicit = node(1).unwrap();
        explicit.roles_set = true;
        explicit.resolve_roles(4);
        assert!(explicit.validate(4).unwrap_err().to_string().contains("must be one of"));
    }

    #[test]
    fn broker_only_and_controller_only_nodes() {
        let voters = ("controller.quorum.voters", "2@a:9093,3@b:9093,4@c:9093");
        let broker = config(&[("process.roles", "broker"), voters, CTL]).unwrap();
        assert!(broker.controller_listener().is_none(), "a broker serves no controller listener");
        assert_eq!(broker.client_listeners().count(), 1);
        let e = err(&[
            ("process.roles", "broker"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            voters,
            CTL,
        ]);
        assert!(e.contains("must not contain the controller listener"), "{e}");
        let controller = config(&[
            ("process.roles", "controller"),
            ("listeners", "CONTROLLER://:9093"),
            ("controller.quorum.voters", "1@a:9093,2@b:9093,3@c:9093"),
            CTL,
        ])
        .unwrap();
        assert_eq!(controller.controller_listener().unwrap().port, 9093);
        assert_eq!(controller.client_listeners().count(), 0);
    }

    #[test]
    fn dev_defaults_are_one_plaintext_listener_and_no_voters() {
        let c = config(&[]).unwrap();
        assert!(c.is_single_node(1));
        assert!(c.controller_listener().is_none());
        assert_eq!(c.listeners[0].bind_addr(), "127.0.0.1:9092");
        assert_eq!(join_host_port("::1", 5), "[::1]:5");
    }
}
