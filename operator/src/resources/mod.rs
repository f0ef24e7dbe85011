//! Pure builders: a [`KafkaCluster`] in, the Kubernetes objects that run it out. Nothing here
//! talks to the API server, so every object can be checked in unit tests.
//!
//! Names, for a cluster `N` in namespace `NS`:
//!
//! | object | name |
//! |---|---|
//! | StatefulSet, PodDisruptionBudget | `N` (pods `N-0`, `N-1`, ...; node id = ordinal) |
//! | headless Service (pod DNS) | `N-brokers` (`N-0.N-brokers.NS.svc.cluster.local`) |
//! | bootstrap Service (clients) | `N-bootstrap` (`N-bootstrap.NS.svc:9092`) |
//! | ConfigMap | `N-config` (`server.properties`) |
//! | claims | `data-N-0`, ... |
//! | external Services (`spec.listeners.external`) | `N-external-0`, ..., `N-external-bootstrap` |
//! | external addresses ConfigMap | `N-external` (one key per broker pod) |

pub mod configmap;
pub mod external;
pub mod pdb;
pub mod service;
pub mod servicemonitor;
pub mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use crate::crd::KafkaCluster;
use crate::{Error, Result};

/// The client listener's port.
pub const KAFKA_PORT: i32 = 9092;
/// The metadata quorum's listener port.
pub const CONTROLLER_PORT: i32 = 9093;
/// The admin HTTP port: `/metrics`, `/health/ready`.
pub const ADMIN_PORT: i32 = 9644;
/// Where the broker keeps its data (the claim's mount point).
pub const DATA_MOUNT: &str = "/var/lib/sluice";
/// Where the ConfigMap is mounted.
pub const CONFIG_MOUNT: &str = "/etc/sluice";
/// The broker image when the spec names none.
pub const DEFAULT_IMAGE: &str = concat!("sluice:", env!("CARGO_PKG_VERSION"));

/// A cluster as the builders see it: the resource, plus what the operator fixed for it (its
/// Kafka cluster id and quorum voters, both kept in the status once chosen).
#[derive(Clone, Debug)]
pub struct Cluster<'a> {
    pub kc: &'a KafkaCluster,
    pub name: String,
    pub namespace: String,
    pub cluster_id: String,
    pub voters: Vec<i32>,
    /// The cluster's DNS domain (`cluster.local`).
    pub domain: String,
}

impl<'a> Cluster<'a> {
    /// The cluster's view for the builders: the cluster id and voters from the status when
    /// they are there, else chosen now (see [`initial_voters`], [`cluster_id`]).
    pub fn new(kc: &'a KafkaCluster, domain: &str) -> Result<Cluster<'a>> {
        let namespace = kc.namespace().ok_or_else(|| Error::Missing(kc.name_any(), "namespace"))?;
        let uid = kc.uid().ok_or_else(|| Error::Missing(kc.name_any(), "uid"))?;
        let status = kc.status.as_ref();
        let cluster_id =
            status.and_then(|s| s.cluster_id.clone()).unwrap_or_else(|| cluster_id(&uid));
        let voters = match status.map(|s| s.voters.clone()) {
            Some(v) if !v.is_empty() => v,
            _ => initial_voters(kc.spec.replicas),
        };
        Ok(Cluster {
            kc,
            name: kc.name_any(),
            namespace,
            cluster_id,
            voters,
            domain: domain.into(),
        })
    }

    pub fn headless_name(&self) -> String {
        format!("{}-brokers", self.name)
    }

    pub fn bootstrap_name(&self) -> String {
        format!("{}-bootstrap", self.name)
    }

    /// The Service of the brokers' web console (any broker serves all of it).
    pub fn console_name(&self) -> String {
        format!("{}-console", self.name)
    }

    pub fn config_name(&self) -> String {
        format!("{}-config", self.name)
    }

    pub fn pod_name(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// The DNS name a broker advertises: its pod's name under the headless Service.
    pub fn pod_host(&self, ordinal: i32) -> String {
        format!(
            "{}.{}.{}.svc.{}",
            self.pod_name(ordinal),
            self.headless_name(),
            self.namespace,
            self.domain
        )
    }

    /// `host:port` of broker `ordinal`'s client listener.
    pub fn broker_addr(&self, ordinal: i32) -> String {
        format!("{}:{KAFKA_PORT}", self.pod_host(ordinal))
    }

    /// `host:port` of every broker's client listener, by ordinal, for `count` brokers.
    pub fn broker_addrs(&self, count: i32) -> Vec<String> {
        (0..count).map(|i| self.broker_addr(i)).collect()
    }

    /// The address clients bootstrap from.
    pub fn bootstrap_addr(&self) -> String {
        format!("{}.{}.svc:{KAFKA_PORT}", self.bootstrap_name(), self.namespace)
    }

    /// The web console's address inside the cluster.
    pub fn console_url(&self) -> String {
        format!("http://{}.{}.svc:{ADMIN_PORT}/", self.console_name(), self.namespace)
    }

    /// The labels that select this cluster's broker pods (the StatefulSet's selector: never
    /// changed once made).
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/instance".into(), self.name.clone()),
            ("app.kubernetes.io/component".into(), "broker".into()),
        ])
    }

    /// [`Cluster::selector`] as a label selector (`k=v,k=v`), for lists: the broker pods, and
    /// their claims (the claim template carries the same labels).
    pub fn label_selector(&self) -> String {
        self.selector().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }

    /// Labels on every object the operator makes for this cluster.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector();
        labels.insert("app.kubernetes.io/name".into(), "sluice".into());
        labels.insert("app.kubernetes.io/managed-by".into(), crate::MANAGER.into());
        labels
    }

    /// Metadata of an object named `name` owned by the cluster (deleted with it).
    pub fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner()]),
            ..ObjectMeta::default()
        }
    }

    fn owner(&self) -> OwnerReference {
        OwnerReference {
            api_version: "sluice.io/v1alpha1".into(),
            kind: "KafkaCluster".into(),
            name: self.name.clone(),
            uid: self.kc.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// The quorum's voters for a new cluster of `replicas` brokers: the first three, or the first
/// one when there are fewer than three (an even count survives no more failures than one
/// fewer). They stay the voters for the cluster's life: changing them would need a quorum
/// reconfiguration (KIP-853), which Sluice does not do.
pub fn initial_voters(replicas: i32) -> Vec<i32> {
    if replicas >= 3 {
        vec![0, 1, 2]
    } else {
        vec![0]
    }
}

/// The Kafka cluster id for a resource: its uid's 16 bytes in URL-safe base64 without padding,
/// the form Kafka's `kafka-storage random-uuid` prints (22 characters).
pub fn cluster_id(uid: &str) -> String {
    use base64::Engine;
    let bytes = match uuid::Uuid::parse_str(uid) {
        Ok(u) => *u.as_bytes(),
        // Not a UUID (only in hand-made test objects): still stable for the same uid.
        Err(_) => {
            let mut b = [0u8; 16];
            for (i, c) in uid.bytes().enumerate() {
                b[i % 16] ^= c;
            }
            b
        }
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::{KafkaClusterSpec, StorageSpec};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    /// A cluster resource as the API server would hand it over.
    pub fn cluster(name: &str, replicas: i32) -> KafkaCluster {
        let mut kc = KafkaCluster::new(
            name,
            KafkaClusterSpec {
                replicas,
                image: None,
                image_pull_policy: None,
                resources: None,
                storage: StorageSpec {
                    size: Quantity("1Gi".into()),
                    storage_class: None,
                    delete_claim: false,
                },
                config: BTreeMap::new(),
                rack: None,
                template: None,
                pod_disruption_budget: None,
                metrics: None,
                listeners: None,
                console: None,
                reassignment_throttle: None,
            },
        );
        kc.metadata.namespace = Some("kafka".into());
        kc.metadata.uid = Some("4bd2a2d6-4b7e-4a53-8d73-0d5c1f0e9a11".into());
        kc.metadata.generation = Some(1);
        kc
    }

    #[test]
    fn names_follow_the_table() {
        let kc = cluster("demo", 3);
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        assert_eq!(c.pod_host(2), "demo-2.demo-brokers.kafka.svc.cluster.local");
        assert_eq!(c.bootstrap_addr(), "demo-bootstrap.kafka.svc:9092");
        assert_eq!(c.console_url(), "http://demo-console.kafka.svc:9644/");
        assert_eq!(c.meta("x".into()).owner_references.unwrap()[0].uid, kc.uid().unwrap());
    }

    #[test]
    fn voters_are_fixed_once_chosen() {
        assert_eq!(initial_voters(1), vec![0]);
        assert_eq!(initial_voters(2), vec![0]);
        assert_eq!(initial_voters(3), vec![0, 1, 2]);
        assert_eq!(initial_voters(7), vec![0, 1, 2]);
        // A cluster made with one broker and scaled to five keeps its one voter.
        let mut kc = cluster("demo", 5);
        kc.status = Some(crate::crd::KafkaClusterStatus { voters: vec![0], ..Default::default() });
        assert_eq!(Cluster::new(&kc, "cluster.local").unwrap().voters, vec![0]);
    }

    #[test]
    fn cluster_id_is_the_uid_in_kafkas_form() {
        let id = cluster_id("4bd2a2d6-4b7e-4a53-8d73-0d5c1f0e9a11");
        assert_eq!(id.len(), 22);
        assert_eq!(id, cluster_id("4bd2a2d6-4b7e-4a53-8d73-0d5c1f0e9a11"));
        assert_ne!(id, cluster_id("5bd2a2d6-4b7e-4a53-8d73-0d5c1f0e9a11"));
    }
}
