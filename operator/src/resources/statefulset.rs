//! The brokers' StatefulSet. Each pod runs `sluice start` with the cluster's ConfigMap; what
//! differs per broker comes from the pod itself, without a shell (the image has none):
//!
//! - node id: the StatefulSet controller's `apps.kubernetes.io/pod-index` label, through the
//!   downward API into `SLUICE_NODE_ID`;
//! - advertised listeners: the pod's DNS name under the headless Service, built by Kubernetes's
//!   own `$(VAR)` expansion of the args from `POD_NAME` and `POD_NAMESPACE`.
//!
//! `updateStrategy: OnDelete`: the StatefulSet controller never restarts a broker; the operator
//! does, one at a time. The pod template carries the hash of `server.properties`, so a config
//! change gives the StatefulSet a new revision, and pods of the old one are the ones to roll.
//! Pods start in parallel: the quorum's voters must all be up for any of them to be ready.
//! SIGTERM is the broker's controlled shutdown (leadership moved away, then a clean close of
//! the logs); the grace period gives it time.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::server_properties;
use super::external;
use super::{
    Cluster, ADMIN_PORT, CONFIG_MOUNT, CONTROLLER_PORT, DATA_MOUNT, DEFAULT_IMAGE, KAFKA_PORT,
};
use crate::crd::ExternalType;

/// The pod template annotation holding the hash of `server.properties`.
pub const CONFIG_HASH: &str = "sluice.io/config-hash";
/// The broker image's user and group (`scripts/images.sh`).
pub const BROKER_UID: i64 = 65532;
/// The label the StatefulSet controller puts on each pod: its ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// FNV-1a of the properties file, as hex: stable across runs and builds (std's hasher is not).
pub fn config_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort { name: Some(name.into()), container_port: port, ..ContainerPort::default() }
}

/// The broker container.
pub fn broker_container(c: &Cluster) -> Container {
    let spec = &c.kc.spec;
    let host = format!("$(POD_NAME).{}.$(POD_NAMESPACE).svc.{}", c.headless_name(), c.domain);
    let mut advertised =
        format!("PLAINTEXT://{host}:{KAFKA_PORT},CONTROLLER://{host}:{CONTROLLER_PORT}");
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("SLUICE_NODE_ID", &format!("metadata.labels['{POD_INDEX_LABEL}']")),
    ];
    let mut ports = vec![
        port("kafka", KAFKA_PORT),
        port("controller", CONTROLLER_PORT),
        port("admin", ADMIN_PORT),
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_MOUNT.into(),
            ..VolumeMount::default()
        },
    ];
    if let Some(ext) = external::spec(c) {
        advertised = format!("{advertised},{}", external::advertised_listener(ext.type_));
        if ext.type_ == ExternalType::NodePort {
            env.push(field_env("HOST_IP", "status.hostIP"));
        }
        ports.push(port("external", external::EXTERNAL_PORT));
        mounts.push(VolumeMount {
            name: "external".into(),
            mount_path: external::MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let mut args = vec![
        "start".into(),
        "--config".into(),
        format!("{CONFIG_MOUNT}/{}", super::configmap::PROPERTIES_KEY),
        "--advertised".into(),
        advertised,
    ];
    if let Some(rack) = &spec.rack {
        env.push(field_env("SLUICE_RACK", &format!("metadata.labels['{}']", rack.topology_key)));
        args.extend(["--set".into(), "broker.rack=$(SLUICE_RACK)".into()]);
    }
    Container {
        name: "broker".into(),
        image: Some(spec.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into())),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: Some(vec!["sluice".into()]),
        args: Some(args),
        env: Some(env),
        ports: Some(ports),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health/ready".into()),
                port: IntOrString::String("admin".into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(2),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// The ConfigMaps the pods mount: `server.properties`, and the brokers' external addresses
/// when there is an external listener.
fn volumes(c: &Cluster) -> Vec<Volume> {
    let config_map = |name: &str, config_map: String| Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mut volumes = vec![config_map("config", c.config_name())];
    if external::spec(c).is_some() {
        volumes.push(config_map("external", external::config_map_name(c)));
    }
    volumes
}

/// The StatefulSet with `replicas` pods (the scale decision's count) and claims of
/// `claim_size` (the size it was made with: a claim template cannot change; larger sizes are
/// applied to the claims themselves).
pub fn statefulset(c: &Cluster, replicas: i32, claim_size: &Quantity) -> StatefulSet {
    let spec = &c.kc.spec;
    let template = spec.template.clone().unwrap_or_default();
    let mut labels = template.labels.clone();
    labels.extend(c.labels());
    let mut annotations = template.annotations.clone();
    annotations.insert(CONFIG_HASH.into(), config_hash(&server_properties(c)));
    let keep = if spec.storage.delete_claim { "Delete" } else { "Retain" };
    StatefulSet {
        metadata: c.meta(c.name.clone()),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(c.headless_name()),
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(keep.into()),
                    when_scaled: Some(keep.into()),
                },
            ),
            selector: LabelSelector {
                match_labels: Some(c.selector()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![broker_container(c)],
                    // The image runs as 65532; the claim's volume is made writable for it.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(BROKER_UID),
                        run_as_group: Some(BROKER_UID),
                        fs_group: Some(BROKER_UID),
                        ..PodSecurityContext::default()
                    }),
                    termination_grace_period_seconds: Some(
                        template.termination_grace_period_seconds.unwrap_or(60),
                    ),
                    affinity: template.affinity.clone(),
                    // Brokers spread over the racks, as far as the Nodes allow.
                    topology_spread_constraints: spec.rack.as_ref().map(|rack| {
                        vec![TopologySpreadConstraint {
                            max_skew: 1,
                            topology_key: rack.topology_key.clone(),
                            when_unsatisfiable: "ScheduleAnyway".into(),
                            label_selector: Some(LabelSelector {
                                match_labels: Some(c.selector()),
                                ..LabelSelector::default()
                            }),
                            ..TopologySpreadConstraint::default()
                        }]
                    }),
                    tolerations: (!template.tolerations.is_empty())
                        .then(|| template.tolerations.clone()),
                    node_selector: (!template.node_selector.is_empty())
                        .then(|| template.node_selector.clone()),
                    volumes: Some(volumes(c)),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(c.selector()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: spec.storage.storage_class.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".into(), claim_size.clone())])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::cluster;

    #[test]
    fn brokers_take_their_identity_from_the_pod_without_a_shell() {
        let kc = cluster("demo", 3);
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        let b = broker_container(&c);
        assert_eq!(b.command.as_deref(), Some(&["sluice".to_string()][..]));
        let args = b.args.unwrap().join(" ");
        assert!(args.contains(
            "--advertised PLAINTEXT://$(POD_NAME).demo-brokers.$(POD_NAMESPACE).svc.cluster.local:9092,"
        ));
        let env = b.env.unwrap();
        let node_id = env.iter().find(|e| e.name == "SLUICE_NODE_ID").unwrap();
        let path = &node_id.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path;
        assert_eq!(path, "metadata.labels['apps.kubernetes.io/pod-index']");
    }

    #[test]
    fn an_external_listener_is_advertised_from_the_node_and_the_mounted_addresses() {
        let mut kc = cluster("demo", 3);
        kc.spec.listeners = Some(crate::crd::ListenersSpec {
            external: Some(crate::crd::ExternalListener {
                type_: ExternalType::NodePort,
                annotations: Default::default(),
            }),
        });
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        let b = broker_container(&c);
        let args = b.args.unwrap().join(" ");
        assert!(
            args.contains(":9093,EXTERNAL://$(HOST_IP):${dir:/etc/sluice-external:$(POD_NAME)}")
        );
        let env = b.env.unwrap();
        let host = env.iter().find(|e| e.name == "HOST_IP").unwrap();
        let path = &host.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path;
        assert_eq!(path, "status.hostIP");
        assert!(b.ports.unwrap().iter().any(|p| p.container_port == 9094));
        let mount = b.volume_mounts.unwrap();
        assert!(mount.iter().any(|m| m.name == "external" && m.mount_path == external::MOUNT));
        let pod = statefulset(&c, 3, &kc.spec.storage.size).spec.template.spec.unwrap();
        let volume = pod.volumes.unwrap().into_iter().find(|v| v.name == "external").unwrap();
        assert_eq!(volume.config_map.unwrap().name, "demo-external");
        // Without one: no HOST_IP, no mount.
        let plain = cluster("demo", 3);
        let b = broker_container(&Cluster::new(&plain, "cluster.local").unwrap());
        assert!(!b.args.unwrap().join(" ").contains("EXTERNAL"));
        assert!(b.volume_mounts.unwrap().iter().all(|m| m.name != "external"));
    }

    #[test]
    fn a_broker_takes_its_rack_from_its_nodes_zone() {
        let mut kc = cluster("demo", 3);
        let key = "topology.kubernetes.io/zone";
        kc.spec.rack = Some(crate::crd::RackSpec { topology_key: key.into() });
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        let b = broker_container(&c);
        assert!(b.args.unwrap().join(" ").ends_with("--set broker.rack=$(SLUICE_RACK)"));
        let env = b.env.unwrap();
        let rack = env.iter().find(|e| e.name == "SLUICE_RACK").unwrap();
        let path = &rack.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path;
        assert_eq!(path, "metadata.labels['topology.kubernetes.io/zone']");
        let spread = statefulset(&c, 3, &kc.spec.storage.size).spec.template.spec.unwrap();
        assert_eq!(spread.topology_spread_constraints.unwrap()[0].topology_key, key);
    }

    #[test]
    fn the_operator_rolls_and_a_config_change_makes_a_new_revision() {
        let mut kc = cluster("demo", 3);
        let hash = |kc: &crate::crd::KafkaCluster| {
            let c = Cluster::new(kc, "cluster.local").unwrap();
            let s = statefulset(&c, 3, &kc.spec.storage.size).spec;
            assert_eq!(s.update_strategy.unwrap().type_.as_deref(), Some("OnDelete"));
            s.template.metadata.unwrap().annotations.unwrap()[CONFIG_HASH].clone()
        };
        let before = hash(&kc);
        assert_eq!(before, hash(&kc));
        kc.spec.config.insert("log.retention.ms".into(), "1000".into());
        assert_eq!(before, hash(&kc), "applied at run time: no restart");
        kc.spec.config.insert("num.io.threads".into(), "4".into());
        assert_ne!(before, hash(&kc));
    }

    #[test]
    fn claims_are_kept_unless_the_spec_says_delete() {
        let mut kc = cluster("demo", 3);
        let policy = |kc: &crate::crd::KafkaCluster| {
            let c = Cluster::new(kc, "cluster.local").unwrap();
            let p = statefulset(&c, 3, &kc.spec.storage.size)
                .spec
                .persistent_volume_claim_retention_policy
                .unwrap();
            (p.when_deleted.unwrap(), p.when_scaled.unwrap())
        };
        assert_eq!(policy(&kc), ("Retain".into(), "Retain".into()));
        kc.spec.storage.delete_claim = true;
        assert_eq!(policy(&kc), ("Delete".into(), "Delete".into()));
    }
}
