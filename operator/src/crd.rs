//! The custom resources, group `sluice.io`, version `v1alpha1`: [`KafkaCluster`] (Strimzi's
//! `Kafka`) and [`Topic`] (Strimzi's `KafkaTopic`). `crdgen` prints their definitions into
//! `crds/`; CI fails when those files differ from these types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Sluice cluster: brokers in a StatefulSet, each a member of the metadata quorum or a
/// broker only, with its data on a claim of its own.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sluice.io",
    version = "v1alpha1",
    kind = "KafkaCluster",
    namespaced,
    status = "KafkaClusterStatus",
    shortname = "kc",
    category = "sluice",
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyBrokers"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Bootstrap","type":"string","jsonPath":".status.bootstrap","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Number of brokers. The first of them (1 or 3, fixed when the cluster is made) are also
    /// the metadata quorum's voters.
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// The broker image; it runs the same `sluice` binary and flags as outside Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// CPU and memory for each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    pub storage: StorageSpec,
    /// Broker properties with Kafka's names (`log.retention.hours: "24"`). A key Sluice does not
    /// know, or one the operator sets itself (listeners, node ids, quorum), is refused in the
    /// status and nothing changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Rack awareness: each broker's `broker.rack` is its Node's value of this label, so that
    /// a partition's replicas land in different racks, and broker pods are spread over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,
    /// What goes into every broker pod besides what the operator sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplate>,
    /// The PodDisruptionBudget over the brokers (default: at most one unavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PodDisruptionBudgetSpec>,
    /// Prometheus scraping of the brokers' `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,
    /// Bytes per second that the replicas the operator moves (scaling) may replicate at, as
    /// `kafka-reassign-partitions --throttle`: set on the brokers and topics involved while the
    /// moves run, removed once they are done. Unthrottled when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub reassignment_throttle: Option<i64>,
    /// The brokers' listeners besides the internal one (`PLAINTEXT`, port 9092, which clients
    /// in the cluster reach through the bootstrap Service and the brokers' pod DNS names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<ListenersSpec>,
    /// The brokers' web console (every broker serves it on its admin port 9644), reached
    /// through the Service `<cluster>-console`. Its actions (creating topics, resetting
    /// offsets) stay off unless `config` sets `console.actions.enable: "true"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleSpec>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSpec {
    /// The console Service's type: `ClusterIP` (the default; `kubectl port-forward`),
    /// `NodePort` or `LoadBalancer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ConsoleServiceType>,
    /// Annotations on the console Service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConsoleServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenersSpec {
    /// Access from outside Kubernetes: a listener `EXTERNAL` (port 9094, plaintext) on every
    /// broker, reached through a Service of its own per broker (`<cluster>-external-<ordinal>`)
    /// and one to bootstrap from (`<cluster>-external-bootstrap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalListener>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalListener {
    /// `NodePort`: each broker advertises the address of the Node its pod runs on and its own
    /// Service's node port. `LoadBalancer`: each broker advertises its own Service's load
    /// balancer address; a broker starts only once that address exists.
    #[serde(rename = "type")]
    pub type_: ExternalType,
    /// Annotations on the external Services (a cloud's load balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExternalType {
    NodePort,
    LoadBalancer,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// A ServiceMonitor (Prometheus Operator) for the brokers, when the cluster has its CRD
    /// (default true).
    #[serde(default = "yes")]
    pub service_monitor: bool,
    /// How often Prometheus scrapes (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each broker's claim (`10Gi`). It can grow (the claims are expanded in place);
    /// it cannot shrink.
    pub size: Quantity,
    /// The StorageClass of the claims; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Delete the claims (and the data) when the cluster is deleted or scaled down. Default
    /// false: claims outlive the cluster, as Strimzi's `deleteClaim`.
    #[serde(default)]
    pub delete_claim: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// `topology.kubernetes.io/zone` or `topology.kubernetes.io/region`: the Node labels
    /// Kubernetes copies onto each pod it binds (PodTopologyLabelsAdmission), where the broker
    /// reads them through the downward API.
    pub topology_key: String,
}

/// The Node labels a pod can read about its Node.
pub const RACK_KEYS: &[&str] = &["topology.kubernetes.io/zone", "topology.kubernetes.io/region"];

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Seconds a broker has for its controlled shutdown (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    /// Brokers that may be unavailable at once through voluntary disruptions.
    #[serde(default = "one")]
    pub max_unavailable: i32,
}

fn one() -> i32 {
    1
}

/// What the operator saw and did; written by server-side apply, field manager
/// `sluice-operator`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// The generation of the spec this status answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, each with a reason and a message.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The Kafka cluster id (from the resource's uid, fixed for its life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Node ids of the metadata quorum's voters, fixed when the cluster was made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<i32>,
    /// Broker pods that are ready.
    #[serde(default)]
    pub ready_brokers: i32,
    /// `host:port` of the bootstrap Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// The web console of the brokers inside the cluster (`kubectl port-forward
    /// svc/<name>-console 9644` reaches it from outside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// Where clients outside Kubernetes bootstrap from (`spec.listeners.external`): the load
    /// balancer's `host:port`, or each broker Node's address with the node port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_bootstrap: Option<String>,
    /// The metadata quorum as DescribeQuorum reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumStatus>,
    /// Partitions whose ISR is smaller than their replica set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_replicated_partitions: Option<i32>,
    /// Partitions without a leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_partitions: Option<i32>,
    /// The broker configs of `spec.config` the operator has set cluster-wide at run time
    /// (the ones Sluice applies without a restart).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_config: BTreeMap<String, String>,
    /// The replication throttles the operator set for its moves (`reassignmentThrottle`),
    /// removed once no reassignment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<ThrottledStatus>,
    /// The brokers being drained before a scale-down removes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draining: Vec<i32>,
    /// The roll, scale or resize under way, and what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThrottledStatus {
    /// Brokers with `leader.replication.throttled.rate` and `follower.replication.throttled.rate`.
    pub brokers: Vec<i32>,
    /// Topics with `leader.replication.throttled.replicas` and
    /// `follower.replication.throttled.replicas`.
    pub topics: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuorumStatus {
    /// The active controller (the quorum's leader).
    pub leader: i32,
    pub epoch: i32,
    /// The metadata log's high watermark.
    pub high_watermark: i64,
    /// Voters whose log end is at the leader's high watermark.
    pub caught_up_voters: Vec<i32>,
    /// Brokers registered and unfenced, as Metadata lists them.
    pub brokers: Vec<i32>,
}

/// A topic on a [`KafkaCluster`] of the same namespace. The resource is the source of truth:
/// the operator makes the topic agree with it, and never the other way.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sluice.io",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "kt",
    category = "sluice",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","jsonPath":".spec.partitions"}"#,
    printcolumn = r#"{"name":"RF","type":"integer","jsonPath":".spec.replicationFactor"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// The name of the `KafkaCluster` in this namespace.
    pub cluster: String,
    /// The topic's name in Kafka; the resource's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    #[schemars(range(min = 1))]
    pub partitions: i32,
    #[schemars(range(min = 1))]
    pub replication_factor: i32,
    /// Topic configs with Kafka's names (`retention.ms: "86400000"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// What deleting the resource does to the topic: `Retain` (default) leaves it in Kafka,
    /// `Delete` deletes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The topic's id in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// The topic configs of `spec.config` the operator has set. A key that leaves the spec is
    /// deleted from the topic only when it is here: keys other tools set are left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_config: BTreeMap<String, String>,
}

/// The CRDs, in the order `crdgen` writes them.
pub fn crds(
) -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![KafkaCluster::crd(), Topic::crd()]
}
