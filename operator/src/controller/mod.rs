//! The reconcile loops and what they share.

pub mod cluster;
pub mod topic;

use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// The objects of kind `K` in `namespace`, or in every namespace when `None`.
pub(crate) fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Drives a controller's stream of reconcile results until it ends (a termination signal). A
/// failed reconcile is only noted here: the error policy has logged it and scheduled a retry.
pub(crate) async fn drive<T, E: std::fmt::Display>(results: impl Stream<Item = Result<T, E>>) {
    results
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
}

/// Writes `status` as `obj`'s status, by server-side apply with the operator's field manager.
pub async fn apply_status<K>(client: &Client, obj: &K, status: impl Serialize) -> crate::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let ns = obj.namespace().ok_or_else(|| crate::Error::Missing(obj.name_any(), "namespace"))?;
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(crate::MANAGER).force();
    api.patch_status(&obj.name_any(), &params, &Patch::Apply(patch)).await?;
    Ok(())
}
