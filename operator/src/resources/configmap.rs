//! The brokers' `server.properties`, one file for every broker of a cluster: what differs per
//! broker (node id, advertised names) comes from the pod (see [`super::statefulset`]), and a
//! broker's roles follow from its node id (a voter is `broker,controller`, any other node a
//! broker only; `process.roles` is left unset for that). Config the brokers apply at run
//! time is not in the file: see [`run_time_config`].

use k8s_openapi::api::core::v1::ConfigMap;
use std::collections::BTreeMap;

use sluice_broker::config::takes_effect_at_run_time;

use super::{external, Cluster, ADMIN_PORT, CONTROLLER_PORT, DATA_MOUNT, KAFKA_PORT};
use crate::crd::KafkaClusterSpec;

/// The ConfigMap key holding the properties file.
pub const PROPERTIES_KEY: &str = "server.properties";

/// Keys the operator sets itself besides each node's own (`sluice_broker::config::NODE_KEYS`):
/// a spec that names one is refused.
pub const OPERATOR_KEYS: &[&str] = &["broker.rack", "config.providers"];

/// Whether the operator sets `key` itself.
fn operator_sets(key: &str) -> bool {
    sluice_broker::config::NODE_KEYS.contains(&key) || OPERATOR_KEYS.contains(&key)
}

/// Checks `spec.config` the way a broker would at start-up (the broker's own parser), plus
/// the keys the operator owns, and the rack label. Returns every problem, each naming its key.
pub fn validate_spec(spec: &KafkaClusterSpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut probe = sluice_broker::config::BrokerConfig::default();
    for (key, value) in &spec.config {
        if operator_sets(key) {
            problems.push(format!("config key '{key}' is set by the operator and cannot be given"));
        } else if let Err(e) = probe.set(key, value) {
            problems.push(e.to_string());
        }
    }
    if let Some(rack) = &spec.rack {
        if !crate::crd::RACK_KEYS.contains(&rack.topology_key.as_str()) {
            problems.push(format!(
                "rack.topologyKey '{}' is not a label a pod can read about its Node; use {}",
                rack.topology_key,
                crate::crd::RACK_KEYS.join(" or ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The properties file. Keys are written in a stable order so that the same spec always makes
/// the same file (its hash decides whether brokers must restart).
pub fn server_properties(c: &Cluster) -> String {
    let voters: Vec<String> =
        c.voters.iter().map(|&id| format!("{id}@{}:{CONTROLLER_PORT}", c.pod_host(id))).collect();
    let (mut listeners, mut protocols) = (
        format!("PLAINTEXT://0.0.0.0:{KAFKA_PORT},CONTROLLER://0.0.0.0:{CONTROLLER_PORT}"),
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
    );
    // The external listener; each broker reads its own advertised address from the mounted
    // addresses ConfigMap (see super::external).
    let mut providers = String::new();
    if external::spec(c).is_some() {
        listeners.push_str(&format!(",EXTERNAL://0.0.0.0:{}", external::EXTERNAL_PORT));
        protocols.push_str(",EXTERNAL:PLAINTEXT");
        providers = "config.providers=dir\n\
             config.providers.dir.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider\n"
            .into();
    }
    let mut out = format!(
        "# Written by the Sluice operator for KafkaCluster {name}; edit the resource instead.\n\
         listeners={listeners}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map={protocols}\n\
         {providers}\
         inter.broker.listener.name=PLAINTEXT\n\
         admin.listener=0.0.0.0:{ADMIN_PORT}\n\
         log.dirs={DATA_MOUNT}/data\n\
         cluster.id={id}\n\
         controller.quorum.voters={voters}\n",
        name = c.name,
        id = c.cluster_id,
        voters = voters.join(","),
    );
    for (key, value) in c.kc.spec.config.iter().filter(|(k, _)| !takes_effect_at_run_time(k)) {
        // A value cannot span lines in a properties file; validation has refused none here,
        // but a newline would otherwise smuggle in another key.
        let value = value.replace(['\n', '\r'], " ");
        out.push_str(&format!("{key}={value}\n"));
    }
    out
}

/// The keys of `spec.config` that the brokers apply at run time: the operator sets them as
/// cluster-wide dynamic configs instead of writing them into the file, so changing them
/// restarts nothing (and removing one returns every broker to its default at once).
pub fn run_time_config(spec: &KafkaClusterSpec) -> BTreeMap<String, String> {
    let keys = spec.config.iter().filter(|(k, _)| takes_effect_at_run_time(k));
    keys.map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn config_map(c: &Cluster) -> ConfigMap {
    ConfigMap {
        metadata: c.meta(c.config_name()),
        data: Some(BTreeMap::from([(PROPERTIES_KEY.into(), server_properties(c))])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::cluster;

    #[test]
    fn properties_name_the_voters_by_pod_dns_and_carry_the_spec() {
        let mut kc = cluster("demo", 5);
        kc.spec.config.insert("log.retention.ms".into(), "3600000".into());
        kc.spec.config.insert("default.replication.factor".into(), "3".into());
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        let p = server_properties(&c);
        assert!(p.contains(
            "controller.quorum.voters=0@demo-0.demo-brokers.kafka.svc.cluster.local:9093,\
             1@demo-1.demo-brokers.kafka.svc.cluster.local:9093,\
             2@demo-2.demo-brokers.kafka.svc.cluster.local:9093\n"
        ));
        assert!(p.contains("default.replication.factor=3\n"));
        assert!(!p.contains("log.retention.ms"), "applied at run time, not from the file");
        assert_eq!(run_time_config(&kc.spec).keys().collect::<Vec<_>>(), ["log.retention.ms"]);
        assert!(p.contains(&format!("cluster.id={}\n", c.cluster_id)));
        assert!(!p.contains("process.roles"), "roles follow from the node id");
        assert_eq!(p, server_properties(&c), "the same spec makes the same file");
    }

    #[test]
    fn the_brokers_own_parser_accepts_the_file() {
        let kc = cluster("demo", 3);
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        let mut broker = sluice_broker::config::BrokerConfig::default();
        broker.apply_properties(&server_properties(&c)).unwrap();
        broker.set("node.id", "4").unwrap();
        broker.net.resolve_roles(4);
        broker.validate().unwrap();
        assert!(!broker.net.roles.controller, "node 4 is a broker only");
    }

    #[test]
    fn with_an_external_listener_a_broker_reads_its_address_from_the_mounted_key() {
        let mut kc = cluster("demo", 3);
        kc.spec.listeners = Some(crate::crd::ListenersSpec {
            external: Some(crate::crd::ExternalListener {
                type_: crate::crd::ExternalType::NodePort,
                annotations: Default::default(),
            }),
        });
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        let p = server_properties(&c);
        assert!(p.contains(",EXTERNAL://0.0.0.0:9094\n"), "{p}");
        assert!(p.contains("EXTERNAL:PLAINTEXT\n"), "{p}");
        // The pod's --advertised, as Kubernetes expands it, resolved by the broker's parser
        // against a directory laid out as the ConfigMap mount.
        let mount = tempfile::tempdir().unwrap();
        std::fs::write(mount.path().join("demo-1"), "31001").unwrap();
        let advertised = external::advertised_listener(crate::crd::ExternalType::NodePort)
            .replace("$(HOST_IP)", "10.0.0.7")
            .replace("$(POD_NAME)", "demo-1")
            .replace(external::MOUNT, mount.path().to_str().unwrap());
        let mut broker = sluice_broker::config::BrokerConfig::default();
        broker.apply_properties(&p).unwrap();
        let host = "demo-1.demo-brokers.kafka.svc.cluster.local";
        broker
            .set(
                "advertised.listeners",
                &format!("PLAINTEXT://{host}:9092,CONTROLLER://{host}:9093,{advertised}"),
            )
            .unwrap();
        let ext = broker.net.advertised.iter().find(|l| l.name == "EXTERNAL").unwrap();
        assert_eq!((ext.host.as_str(), ext.port), ("10.0.0.7", 31001));
    }

    #[test]
    fn unknown_and_operator_keys_are_refused_by_name() {
        let mut kc = cluster("demo", 3);
        kc.spec.config.insert("log.retention.hourz".into(), "24".into());
        kc.spec.config.insert("listeners".into(), "PLAINTEXT://:1".into());
        kc.spec.config.insert("num.partitions".into(), "many".into());
        kc.spec.config.insert("compression.type".into(), "zstd".into());
        let problems = validate_spec(&kc.spec).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let all = problems.join("\n");
        assert!(all.contains("did you mean 'log.retention.hours'"), "{all}");
        assert!(all.contains("'listeners' is set by the operator"), "{all}");
        assert!(all.contains("num.partitions"), "{all}");
        kc.spec.config.clear();
        kc.spec.rack = Some(crate::crd::RackSpec { topology_key: "kubernetes.io/hostname".into() });
        let problems = validate_spec(&kc.spec).unwrap_err();
        assert!(problems[0].contains("use topology.kubernetes.io/zone or"), "{problems:?}");
    }
}
