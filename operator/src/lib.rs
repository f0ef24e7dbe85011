//! Sluice's Kubernetes operator (kube-rs): `KafkaCluster` resources become brokers in a
//! StatefulSet with their Services, config and disruption budget, and `Topic` resources become
//! topics on the cluster they name (one way: the resource is the source of truth; topics no
//! resource names are never touched). The layout follows kube-rs's controller-rs:
//!
//! - `crd`: the resource types (`crdgen` prints them into `crds/`);
//! - `resources`: pure builders, spec in, Kubernetes objects out;
//! - `controller`: reconcile loops, `cluster` applying what the builders make by server-side
//!   apply, `topic` creating, growing, configuring and (with `deletionPolicy: Delete`)
//!   deleting topics behind the finalizer `sluice.io/topic`;
//! - `ops`: pure decisions (may this broker restart now? what blocks it? what does this
//!   topic need?);
//! - `kafka`: what the operator asks the brokers, over the Kafka protocol (`sluice-client`);
//! - `status`: conditions;
//! - `lease`: leader election, so that one replica of the operator acts at a time;
//! - `metrics`: the operator's own metrics.

pub mod controller;
pub mod crd;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod kafka;
pub mod lease;
pub mod metrics;
pub mod ops;
pub mod resources;
pub mod status;

/// The field manager of everything the operator applies, and its name in events.
pub const MANAGER: &str = "sluice-operator";

/// Why a reconcile failed; the controller retries after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0} has no {1}")]
    Missing(String, &'static str),
    #[error("serializing {0}: {1}")]
    Serialize(&'static str, serde_json::Error),
    #[error("brokers: {0}")]
    Kafka(String),
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
