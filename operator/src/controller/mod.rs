//! The reconcile loops and what they share.

pub mod cluster;
pub mod topic;

use std::sync::Arc;

use kube::Client;

use crate::metrics::Metrics;

/// What every reconcile gets.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    /// The cluster's DNS domain, for the brokers' pod names (`cluster.local`).
    pub domain: String,
    pub metrics: Arc<Metrics>,
    /// Who publishes the operator's Events.
    pub reporter: kube::runtime::events::Reporter,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("domain", &self.domain).finish_non_exhaustive()
    }
}
