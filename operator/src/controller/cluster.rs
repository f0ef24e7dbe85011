//! The `KafkaCluster` reconciler: validate the spec, apply the objects the builders make (by
//! server-side apply, owned by the resource so that deleting it deletes them), then observe
//! the StatefulSet and ask the brokers, and write what was seen into the status.
//!
//! A spec that cannot be applied (an unknown broker config key, a value Kafka would refuse)
//! changes nothing: the objects stay as they were and the status says why (condition `Ready`
//! false with reason `InvalidSpec`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Context;
use crate::crd::{KafkaCluster, KafkaClusterStatus};
use crate::kafka::{self, ClusterState};
use crate::resources::{configmap, pdb, service, statefulset, Cluster};
use crate::status::{self, DEGRADED, PROGRESSING, READY};
use crate::{Error, Result, MANAGER};

/// How often a cluster is looked at while it is settling, and once it is settled.
const SETTLING: Duration = Duration::from_secs(5);
const SETTLED: Duration = Duration::from_secs(30);

/// Runs the controller until a termination signal: `KafkaCluster`s in `namespace` (every
/// namespace when `None`), woken by changes to them and to what they own.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let ns = namespace;
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=sluice-operator");
    Controller::new(scoped::<KafkaCluster>(&client, ns.clone()), watcher::Config::default())
        .owns(scoped::<StatefulSet>(&client, ns.clone()), owned.clone())
        .owns(scoped::<ConfigMap>(&client, ns.clone()), owned.clone())
        .owns(scoped::<Service>(&client, ns), owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
}

fn scoped<K>(client: &kube::Client, namespace: Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), &ns),
        None => Api::all(client.clone()),
    }
}

/// Server-side apply of `obj`, owned by the operator's field manager; forced, since the
/// operator is the only writer of what it manages.
async fn apply<K>(client: &kube::Client, ns: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj)).await?)
}

async fn reconcile(kc: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&kc, &ctx).await;
    ctx.metrics.reconciled("KafkaCluster", started.elapsed(), result.is_err());
    result
}

async fn reconcile_inner(kc: &KafkaCluster, ctx: &Context) -> Result<Action> {
    let c = Cluster::new(kc, &ctx.domain)?;
    let client = &ctx.client;
    let ns = c.namespace.clone();
    let generation = kc.metadata.generation;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut st = kc.status.clone().unwrap_or_default();
    st.cluster_id = Some(c.cluster_id.clone());
    st.voters = c.voters.clone();
    st.bootstrap = Some(c.bootstrap_addr());

    if let Err(problems) = configmap::validate_config(&kc.spec) {
        let message =
            format!("spec.config is refused, nothing was changed: {}", problems.join("; "));
        status::set(&mut st.conditions, READY, false, "InvalidSpec", &message, generation, &now);
        status::set(&mut st.conditions, DEGRADED, true, "InvalidSpec", &message, generation, &now);
        st.observed_generation = generation;
        write_status(kc, ctx, st).await?;
        return Ok(Action::await_change());
    }

    apply(client, &ns, &configmap::config_map(&c)).await?;
    apply(client, &ns, &service::headless(&c)).await?;
    apply(client, &ns, &service::bootstrap(&c)).await?;
    let sts = apply(client, &ns, &statefulset::statefulset(&c, kc.spec.replicas)).await?;
    apply(client, &ns, &pdb::pdb(&c)).await?;

    let replicas = kc.spec.replicas;
    let ready = sts.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    st.ready_brokers = ready;
    let state = match kafka::describe(c.broker_addrs(replicas)).await {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::debug!(cluster = %c.name, error = %e, "brokers not reachable");
            None
        }
    };
    st.quorum = state.as_ref().and_then(|s| s.quorum.clone());
    st.under_replicated_partitions = state.as_ref().map(|s| s.under_replicated() as i32);
    st.offline_partitions = state.as_ref().map(|s| s.offline() as i32);
    let settled = judge(&mut st, replicas, state.as_ref(), generation, &now);
    st.observed_generation = generation;
    write_status(kc, ctx, st).await?;
    Ok(Action::requeue(if settled { SETTLED } else { SETTLING }))
}

/// Sets the conditions from what was observed; true when the cluster is ready and healthy.
fn judge(
    st: &mut KafkaClusterStatus,
    replicas: i32,
    state: Option<&ClusterState>,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let ready = st.ready_brokers;
    let registered = state.map_or(0, |s| s.brokers.len() as i32);
    let cs = &mut st.conditions;
    let (is_ready, reason, message) = match state {
        _ if ready < replicas => {
            (false, "BrokersStarting", format!("{ready}/{replicas} broker pods ready"))
        }
        None => (false, "BrokersUnreachable", "no broker answered a Metadata request".into()),
        Some(_) if registered < replicas => (
            false,
            "BrokersRegistering",
            format!("{registered}/{replicas} brokers registered with the controller"),
        ),
        Some(s) if s.quorum.is_none() => {
            (false, "NoQuorum", "the metadata quorum has no leader".into())
        }
        Some(s) if s.offline() > 0 => {
            (false, "OfflinePartitions", format!("{} partitions have no leader", s.offline()))
        }
        Some(_) => (true, "Ready", format!("{ready}/{replicas} brokers ready")),
    };
    status::set(cs, READY, is_ready, reason, &message, generation, now);
    let progress_reason = if is_ready { "Settled" } else { reason };
    status::set(cs, PROGRESSING, !is_ready, progress_reason, &message, generation, now);
    let under = state.map_or(0, |s| s.under_replicated());
    let (degraded, reason, message) = match state {
        Some(s) if s.offline() > 0 => {
            (true, "OfflinePartitions", format!("{} partitions have no leader", s.offline()))
        }
        Some(_) if under > 0 => (
            true,
            "UnderReplicated",
            format!("{under} partitions have fewer in-sync replicas than replicas"),
        ),
        _ => (false, "Healthy", String::new()),
    };
    status::set(cs, DEGRADED, degraded, reason, message, generation, now);
    is_ready && !degraded
}

async fn write_status(kc: &KafkaCluster, ctx: &Context, st: KafkaClusterStatus) -> Result<()> {
    let ns = kc.namespace().ok_or_else(|| Error::Missing(kc.name_any(), "namespace"))?;
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": "sluice.io/v1alpha1",
        "kind": "KafkaCluster",
        "status": st,
    });
    api.patch_status(&kc.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(patch))
        .await?;
    Ok(())
}

fn error_policy(kc: Arc<KafkaCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %kc.name_any(), %error, "reconcile failed; retrying in 10 s");
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::PartitionState;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(100).unwrap())
    }

    fn state(brokers: &[i32], isr: &[i32], leader: i32) -> ClusterState {
        ClusterState {
            brokers: brokers.to_vec(),
            partitions: vec![PartitionState {
                topic: "t".into(),
                partition: 0,
                leader,
                replicas: vec![0, 1, 2],
                isr: isr.to_vec(),
            }],
            quorum: Some(Default::default()),
        }
    }

    fn reason(st: &KafkaClusterStatus, t: &str) -> (String, String) {
        let c = status::get(&st.conditions, t).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn ready_needs_pods_registrations_a_quorum_and_leaders() {
        let mut st = KafkaClusterStatus { ready_brokers: 2, ..Default::default() };
        assert!(!judge(&mut st, 3, None, Some(1), &now()));
        assert_eq!(reason(&st, READY), ("False".into(), "BrokersStarting".into()));
        assert_eq!(reason(&st, PROGRESSING), ("True".into(), "BrokersStarting".into()));
        st.ready_brokers = 3;
        assert!(!judge(&mut st, 3, None, Some(1), &now()));
        assert_eq!(reason(&st, READY).1, "BrokersUnreachable");
        assert!(!judge(&mut st, 3, Some(&state(&[0, 1], &[0, 1, 2], 0)), Some(1), &now()));
        assert_eq!(reason(&st, READY).1, "BrokersRegistering");
        let mut leaderless = state(&[0, 1, 2], &[0], -1);
        assert!(!judge(&mut st, 3, Some(&leaderless), Some(1), &now()));
        assert_eq!(reason(&st, READY).1, "OfflinePartitions");
        assert_eq!(reason(&st, DEGRADED), ("True".into(), "OfflinePartitions".into()));
        leaderless.quorum = None;
        judge(&mut st, 3, Some(&leaderless), Some(1), &now());
        assert_eq!(reason(&st, READY).1, "NoQuorum");
        assert!(judge(&mut st, 3, Some(&state(&[0, 1, 2], &[0, 1, 2], 0)), Some(1), &now()));
        assert_eq!(reason(&st, READY), ("True".into(), "Ready".into()));
        assert_eq!(reason(&st, PROGRESSING).0, "False");
        assert_eq!(reason(&st, DEGRADED), ("False".into(), "Healthy".into()));
    }

    #[test]
    fn an_under_replicated_partition_degrades_a_ready_cluster() {
        let mut st = KafkaClusterStatus { ready_brokers: 3, ..Default::default() };
        assert!(!judge(&mut st, 3, Some(&state(&[0, 1, 2], &[0, 1], 0)), Some(1), &now()));
        assert_eq!(reason(&st, READY).0, "True");
        assert_eq!(reason(&st, DEGRADED), ("True".into(), "UnderReplicated".into()));
    }
}
