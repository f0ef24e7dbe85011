//! The `KafkaCluster` reconciler: validate the spec, apply the objects the builders make (by
//! server-side apply, owned by the resource so that deleting it deletes them), then observe
//! the StatefulSet and ask the brokers, and write what was seen into the status.
//!
//! A spec that cannot be applied (an unknown broker config key, a value Kafka would refuse)
//! changes nothing: the objects stay as they were and the status says why (condition `Ready`
//! false with reason `InvalidSpec`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::{watcher, Controller};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{drive, scoped, Context};
use crate::crd::{ExternalType, KafkaCluster, KafkaClusterStatus};
use crate::kafka::Brokers;
use crate::ops::roll::{self, BrokerPod, MinIsr, RollStep};
use crate::ops::scale::{self, ScaleStep};
use crate::ops::storage::{self, parse_quantity, Claim, StorageStep};
use crate::ops::ClusterState;
use crate::resources::{configmap, external, pdb, service, servicemonitor, statefulset, Cluster};
use crate::status::{self, DEGRADED, PROGRESSING, READY};
use crate::{Error, Result, MANAGER};

/// How often a cluster is looked at while it is settling, and once it is settled.
const SETTLING: Duration = Duration::from_secs(5);
const SETTLED: Duration = Duration::from_secs(30);

/// Runs the controller until a termination signal: `KafkaCluster`s in `namespace` (every
/// namespace when `None`), woken by changes to them and to what they own.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=sluice-operator");
    let controller =
        Controller::new(scoped::<KafkaCluster>(&client, ns), watcher::Config::default())
            .owns(scoped::<StatefulSet>(&client, ns), owned.clone())
            .owns(scoped::<ConfigMap>(&client, ns), owned.clone())
            .owns(scoped::<Service>(&client, ns), owned)
            .shutdown_on_signal()
            .run(reconcile, error_policy, ctx);
    drive(controller).await;
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
    let result = match fresh(&kc, &ctx).await {
        Ok(Some(kc)) => reconcile_inner(&kc, &ctx).await,
        Ok(None) => {
            ctx.metrics.forget_cluster(&kc.namespace().unwrap_or_default(), &kc.name_any());
            Ok(Action::await_change())
        }
        Err(e) => Err(e),
    };
    ctx.metrics.reconciled("KafkaCluster", started.elapsed(), result.is_err());
    result
}

/// The resource as the API server has it now. The watch cache can lag the status this
/// operator wrote a moment ago, and the status carries what earlier reconciles decided (the
/// brokers being drained, the throttles to lift, the configs applied): a reconcile that
/// started from a stale copy would write that memory away.
async fn fresh(kc: &KafkaCluster, ctx: &Context) -> Result<Option<KafkaCluster>> {
    let ns = kc.namespace().ok_or_else(|| Error::Missing(kc.name_any(), "namespace"))?;
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &ns);
    Ok(api.get_opt(&kc.name_any()).await?)
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
    st.console_url = Some(c.console_url());

    if let Err(problems) = configmap::validate_spec(&kc.spec) {
        let message = format!("the spec is refused, nothing was changed: {}", problems.join("; "));
        status::set(&mut st.conditions, READY, false, "InvalidSpec", &message, generation, &now);
        status::set(&mut st.conditions, DEGRADED, true, "InvalidSpec", &message, generation, &now);
        st.observed_generation = generation;
        super::apply_status(&ctx.client, kc, st).await?;
        return Ok(Action::await_change());
    }

    apply(client, &ns, &configmap::config_map(&c)).await?;
    apply(client, &ns, &service::headless(&c)).await?;
    apply(client, &ns, &service::bootstrap(&c)).await?;
    apply(client, &ns, &service::console(&c)).await?;

    // The StatefulSet's size is the scale decision's: a scale-down keeps the brokers to remove
    // until they are drained.
    let desired = kc.spec.replicas;
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let existing = sts_api.get_opt(&c.name).await?;
    let current = existing.as_ref().and_then(|s| s.spec.replicas).unwrap_or(desired);
    let claim_size = existing
        .as_ref()
        .and_then(|s| s.spec.volume_claim_templates.as_ref()?.first()?.spec.clone()?.resources)
        .and_then(|r| r.requests?.get("storage").cloned())
        .unwrap_or_else(|| kc.spec.storage.size.clone());
    let external = apply_external(&c, ctx, current.max(desired)).await?;
    st.external_bootstrap = external.as_ref().and_then(|e| e.bootstrap.clone());
    let mut brokers = Brokers::new(c.broker_addrs(current));
    let state = match brokers.describe().await {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::debug!(cluster = %c.name, error = %e, "brokers not reachable");
            None
        }
    };
    // Unknown counts as in progress: nothing new starts on a guess.
    let reassigning = match &state {
        Some(_) => brokers.reassigning().await.unwrap_or(true),
        None => false,
    };
    let mut scale =
        scale::next_step(current, desired, &c.voters, state.as_ref(), reassigning, &st.draining);
    match &scale {
        ScaleStep::Reassign { .. } if desired < current => {
            st.draining = (desired..current).collect()
        }
        ScaleStep::Wait(_) | ScaleStep::Reassign { .. } => {}
        ScaleStep::Resize(_) | ScaleStep::Steady | ScaleStep::Refuse(_) => st.draining.clear(),
    }
    let mut size = match scale {
        ScaleStep::Resize(n) => n,
        _ => current,
    };
    // A broker starts only once it knows what to advertise outside.
    let mut unaddressed = None;
    if let Some(e) = external.as_ref().filter(|e| e.addressed < size) {
        unaddressed = Some(format!(
            "waiting for the external address of broker {} (its Service {})",
            e.addressed,
            external::broker_service_name(&c, e.addressed)
        ));
        if existing.is_none() {
            // Nothing to keep running: the StatefulSet is made once every address is known.
            status::set(
                &mut st.conditions,
                READY,
                false,
                "WaitingForExternalAddresses",
                unaddressed.as_deref().unwrap_or_default(),
                generation,
                &now,
            );
            st.operation = unaddressed;
            st.observed_generation = generation;
            super::apply_status(&ctx.client, kc, st).await?;
            return Ok(Action::requeue(SETTLING));
        }
        size = e.addressed.max(current.min(size));
    }
    let sts = apply(client, &ns, &statefulset::statefulset(&c, size, &claim_size)).await?;
    apply(client, &ns, &pdb::pdb(&c)).await?;
    apply_service_monitor(&c, ctx).await?;
    let storage = grow_claims(&c, ctx, size, &claim_size).await?;
    if let ScaleStep::Reassign { moves, why } = &scale {
        tracing::info!(cluster = %c.name, moves = moves.len(), "{why}");
        let throttled = match (kc.spec.reassignment_throttle, &state) {
            (Some(rate), Some(state)) => {
                throttle(&c, &mut st, &mut brokers, state, moves, rate).await
            }
            _ => Ok(()),
        };
        if let Err(e) = throttled {
            scale = ScaleStep::Wait(format!("throttling the moves was refused: {e}"));
        } else if let Err(e) = brokers.reassign(moves).await {
            scale = ScaleStep::Wait(format!("the controller refused the reassignment: {e}"));
        }
    } else if !reassigning && state.is_some() {
        // Nothing moves any more: the throttles this operator set go, as `--verify` lifts them.
        if let Some(t) = st.throttled.clone() {
            match brokers.unthrottle(&t.brokers, &t.topics, |id| c.broker_addr(id)).await {
                Ok(()) => {
                    tracing::info!(cluster = %c.name, "reassignment done: throttles removed");
                    st.throttled = None;
                }
                Err(e) => tracing::warn!(cluster = %c.name, error = %e, "removing throttles"),
            }
        }
    }

    let ready = sts.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    st.ready_brokers = ready;
    st.quorum = state.as_ref().and_then(|s| s.quorum.clone());
    st.under_replicated_partitions = state.as_ref().map(|s| s.under_replicated() as i32);
    st.offline_partitions = state.as_ref().map(|s| s.offline() as i32);
    let mut settled = judge(&mut st, size, state.as_ref(), generation, &now);
    if state.is_some() {
        settled &= apply_run_time_config(kc, &mut st, &mut brokers).await;
    }
    // One operation at a time: no roll while a scale moves data or a volume is resized.
    let resizing = matches!(storage, StorageStep::Grow(_) | StorageStep::Wait(_));
    let rolling =
        matches!(scale, ScaleStep::Steady | ScaleStep::Refuse(_)) && !reassigning && !resizing;
    let roll_step = match rolling {
        true => Some(roll(&c, ctx, &sts, state.as_ref(), &mut brokers).await?),
        false => None,
    };
    let mut ops = operations(
        current,
        &scale,
        reassigning,
        &storage,
        &kc.spec.storage.size.0,
        roll_step.as_ref(),
    );
    if let Some(why) = unaddressed {
        ops.insert(0, ("Scaling", why));
    }
    let reasons: Vec<&str> = ops.iter().map(|(reason, _)| *reason).collect();
    ctx.metrics.cluster(&ns, &c.name, kc.spec.replicas, st.ready_brokers, &reasons);
    let before = st.operation.clone();
    st.operation = (!ops.is_empty())
        .then(|| ops.iter().map(|(_, text)| text.as_str()).collect::<Vec<_>>().join("; "));
    if let Some(op) = &st.operation {
        // A refusal alone is not progress: Progressing is false and says why.
        let refusal = |r: &str| matches!(r, "ScaleDownRefused" | "StorageShrinkRefused");
        let active = ops.iter().find(|(reason, _)| !refusal(reason));
        let reason = active.or(ops.first()).map_or("", |(reason, _)| reason);
        status::set(
            &mut st.conditions,
            PROGRESSING,
            active.is_some(),
            reason,
            op,
            generation,
            &now,
        );
        settled = false;
        if st.operation != before {
            tracing::info!(cluster = %c.name, "{op}");
            let warn = ops.iter().any(|(r, _)| *r == "RollBlocked" || refusal(r));
            event(kc, ctx, warn, reason, op).await;
        }
    }
    st.observed_generation = generation;
    super::apply_status(&ctx.client, kc, st).await?;
    Ok(Action::requeue(if settled { SETTLED } else { SETTLING }))
}

/// What is under way, for the status and Events: (reason, text) per operation, the scale's
/// first, then the storage's, then the roll's.
fn operations(
    current: i32,
    scale: &ScaleStep,
    reassigning: bool,
    storage: &StorageStep,
    size: &str,
    roll: Option<&RollStep>,
) -> Vec<(&'static str, String)> {
    let mut ops = Vec::new();
    match scale {
        ScaleStep::Steady if reassigning => {
            ops.push(("Reassigning", "a partition reassignment is in progress".into()))
        }
        ScaleStep::Steady => {}
        ScaleStep::Resize(n) if *n > current => {
            ops.push(("Scaling", format!("scaling up from {current} to {n} brokers")))
        }
        ScaleStep::Resize(n) => ops.push((
            "Scaling",
            format!("scaling down from {current} to {n} brokers: the removed ones are drained"),
        )),
        ScaleStep::Reassign { why, .. } | ScaleStep::Wait(why) => {
            ops.push(("Scaling", why.clone()))
        }
        ScaleStep::Refuse(why) => ops.push(("ScaleDownRefused", why.clone())),
    }
    match storage {
        StorageStep::Steady => {}
        StorageStep::Grow(claims) => {
            ops.push(("Resizing", format!("growing claims {} to {size}", claims.join(","))))
        }
        StorageStep::Wait(why) => ops.push(("Resizing", why.clone())),
        StorageStep::Refuse(why) => ops.push(("StorageShrinkRefused", why.clone())),
    }
    match roll {
        None | Some(RollStep::Done) => {}
        Some(RollStep::Wait(why)) => {
            ops.push(("Rolling", format!("rolling restart: waiting: {why}")))
        }
        Some(RollStep::Restart { ordinal, why }) => {
            ops.push(("Rolling", format!("rolling restart: restarted broker {ordinal}: {why}")))
        }
        Some(RollStep::Blocked { ordinal, reasons }) => ops.push((
            "RollBlocked",
            format!(
                "rolling restart blocked: broker {ordinal} cannot restart safely: {}",
                reasons.join("; ")
            ),
        )),
    }
    ops
}

/// The brokers' ServiceMonitor: applied when the cluster serves Prometheus Operator's API and
/// the spec wants one, deleted when the spec turns it off.
async fn apply_service_monitor(c: &Cluster<'_>, ctx: &Context) -> Result<()> {
    match ctx.client.list_api_group_resources(servicemonitor::API_VERSION).await {
        Ok(list) if list.resources.iter().any(|r| r.kind == "ServiceMonitor") => {}
        Ok(_) => return Ok(()),
        Err(e) => {
            // Usually 404: no Prometheus Operator here.
            tracing::trace!(error = %e, "no ServiceMonitor API");
            return Ok(());
        }
    }
    let resource = servicemonitor::api_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &c.namespace, &resource);
    if servicemonitor::wanted(c) {
        let obj = servicemonitor::service_monitor(c);
        api.patch(&c.name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&obj)).await?;
        return Ok(());
    }
    delete_if_there(&api, &c.name).await
}

/// Throttles `moves` to `rate` bytes/s (`spec.reassignmentThrottle`) and records what was
/// set in the status, so that it is removed once the moves are done.
async fn throttle(
    c: &Cluster<'_>,
    st: &mut KafkaClusterStatus,
    brokers: &mut Brokers,
    state: &ClusterState,
    moves: &[scale::Move],
    rate: i64,
) -> std::result::Result<(), crate::kafka::AdminError> {
    let t = scale::throttles(&state.partitions, moves);
    // Recorded first: a throttle half set is still removed later.
    let mut done = st.throttled.take().unwrap_or_default();
    done.brokers.extend(&t.brokers);
    done.topics.extend(t.topics.keys().cloned());
    done.brokers.sort();
    done.brokers.dedup();
    done.topics.sort();
    done.topics.dedup();
    st.throttled = Some(done);
    tracing::info!(cluster = %c.name, rate, brokers = ?t.brokers, topics = t.topics.len(), "throttling the moves");
    brokers.throttle(&t, rate, |id| c.broker_addr(id)).await
}

/// What the external listener's Services gave.
struct External {
    /// Brokers 0..addressed know what to advertise outside.
    addressed: i32,
    /// Where clients outside bootstrap from, once known.
    bootstrap: Option<String>,
}

/// The external listener's objects (see `resources::external`) for brokers `0..count`: their
/// Services, the bootstrap Service and the addresses ConfigMap; external Services no longer
/// wanted (brokers removed, or the listener turned off) are deleted. `None` without an
/// external listener.
async fn apply_external(c: &Cluster<'_>, ctx: &Context, count: i32) -> Result<Option<External>> {
    let client = &ctx.client;
    let api: Api<Service> = Api::namespaced(client.clone(), &c.namespace);
    let (label, value) = external::SERVICE_LABEL;
    let selector = format!("{},{label}={value}", c.label_selector());
    let mut wanted = Vec::new();
    let mut result = None;
    if let Some(ext) = external::spec(c) {
        let mut addresses = BTreeMap::new();
        let mut addressed = None;
        for ordinal in 0..count {
            let svc =
                apply(client, &c.namespace, &external::broker_service(c, ext, ordinal)).await?;
            match external::advertised(&svc, ext.type_) {
                Some(address) => {
                    addresses.insert(c.pod_name(ordinal), address);
                }
                None => {
                    addressed.get_or_insert(ordinal);
                }
            }
            wanted.push(external::broker_service_name(c, ordinal));
        }
        let boot = apply(client, &c.namespace, &external::bootstrap_service(c, ext)).await?;
        wanted.push(external::bootstrap_service_name(c));
        apply(client, &c.namespace, &external::config_map(c, addresses)).await?;
        // A NodePort is reached at the address of a Node the brokers run on.
        let mut hosts = Vec::new();
        if ext.type_ == ExternalType::NodePort {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &c.namespace);
            let listed = pods.list(&ListParams::default().labels(&c.label_selector())).await?;
            hosts =
                listed.items.iter().filter_map(|p| p.status.as_ref()?.host_ip.clone()).collect();
            hosts.sort();
            hosts.dedup();
        }
        result = Some(External {
            addressed: addressed.unwrap_or(count),
            bootstrap: external::bootstrap_address(&boot, ext.type_, &hosts),
        });
    }
    let listed = api.list(&ListParams::default().labels(&selector)).await?;
    for svc in listed.items.iter().filter(|s| !wanted.contains(&s.name_any())) {
        tracing::info!(cluster = %c.name, service = %svc.name_any(), "deleting an external Service no longer wanted");
        delete_if_there(&api, &svc.name_any()).await?;
    }
    if result.is_none() && !listed.items.is_empty() {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &c.namespace);
        delete_if_there(&maps, &external::config_map_name(c)).await?;
    }
    Ok(result)
}

/// Deletes `name`; gone already is fine.
async fn delete_if_there<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Grows the brokers' claims to `spec.storage.size` (ops::storage decides): the first `size`
/// brokers' claims, which the StatefulSet made from its template of `template` bytes.
async fn grow_claims(
    c: &Cluster<'_>,
    ctx: &Context,
    size: i32,
    template: &Quantity,
) -> Result<StorageStep> {
    let spec_size = &c.kc.spec.storage.size.0;
    let (Some(want), Some(template)) = (parse_quantity(spec_size), parse_quantity(&template.0))
    else {
        return Ok(StorageStep::Refuse(format!("storage.size '{spec_size}' is not a size")));
    };
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let storage = |q: Option<&BTreeMap<String, Quantity>>| {
        q.and_then(|m| m.get("storage")).and_then(|q| parse_quantity(&q.0))
    };
    // One list for every claim of the cluster; those of brokers beyond `size` (kept after a
    // scale-down) are left as they are.
    let names: Vec<String> = (0..size).map(|i| format!("data-{}", c.pod_name(i))).collect();
    let listed = api.list(&ListParams::default().labels(&c.label_selector())).await?;
    let mut claims = Vec::new();
    for pvc in listed.items {
        let name = pvc.name_any();
        if !names.contains(&name) {
            continue;
        }
        let requested = pvc.spec.as_ref().and_then(|s| s.resources.as_ref());
        let Some(requested) = storage(requested.and_then(|r| r.requests.as_ref())) else {
            continue;
        };
        let capacity = storage(pvc.status.as_ref().and_then(|s| s.capacity.as_ref()));
        claims.push(Claim { name, requested, capacity });
    }
    let step = storage::next_step(want, spec_size, template, &claims);
    if let StorageStep::Grow(names) = &step {
        let patch =
            serde_json::json!({"spec": {"resources": {"requests": {"storage": spec_size}}}});
        for name in names {
            tracing::info!(cluster = %c.name, claim = %name, size = %spec_size, "growing a claim");
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                // The StorageClass does not allow expansion, or a quota: say so, do not loop.
                Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
                    return Ok(StorageStep::Refuse(format!(
                        "growing claim {name} to {spec_size} was refused: {}",
                        e.message
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(step)
}

/// Brings the cluster-wide dynamic configs to `spec.config`'s run-time keys; false while
/// that failed (the status says why, and the next look tries again).
async fn apply_run_time_config(
    kc: &KafkaCluster,
    st: &mut KafkaClusterStatus,
    brokers: &mut Brokers,
) -> bool {
    let want = configmap::run_time_config(&kc.spec);
    let set: BTreeMap<String, String> = want
        .iter()
        .filter(|(k, v)| st.applied_config.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete: Vec<String> =
        st.applied_config.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
    if set.is_empty() && delete.is_empty() {
        return true;
    }
    match brokers.alter_cluster_config(&set, &delete).await {
        Ok(()) => {
            tracing::info!(cluster = %kc.name_any(), ?set, ?delete, "broker configs changed at run time");
            st.applied_config = want;
            true
        }
        Err(e) => {
            tracing::warn!(cluster = %kc.name_any(), error = %e, "changing broker configs at run time");
            false
        }
    }
}

/// One step of a rolling restart (ops::roll decides; this observes and acts): pods whose
/// revision is not the StatefulSet's update revision are restarted one at a time by deleting
/// them, as `updateStrategy: OnDelete` leaves to the operator.
async fn roll(
    c: &Cluster<'_>,
    ctx: &Context,
    sts: &StatefulSet,
    state: Option<&ClusterState>,
    brokers: &mut Brokers,
) -> Result<RollStep> {
    let status = sts.status.clone().unwrap_or_default();
    match (status.observed_generation, sts.metadata.generation) {
        // Brand new: its pods start on the current revision, nothing to roll.
        (None, _) => return Ok(RollStep::Done),
        (Some(seen), Some(generation)) if seen < generation => {
            let why = "the StatefulSet controller has not seen the change yet";
            return Ok(RollStep::Wait(why.into()));
        }
        _ => {}
    }
    let Some(target) = status.update_revision.clone() else {
        return Ok(RollStep::Done);
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let pods = pods_api.list(&ListParams::default().labels(&c.label_selector())).await?;
    let views: Vec<BrokerPod> = pods.items.iter().filter_map(broker_pod).collect();
    if views.iter().all(|p| p.revision == target) {
        return Ok(RollStep::Done);
    }
    let topics: Vec<String> = state
        .map(|s| {
            let mut t: Vec<String> = s.partitions.iter().map(|p| p.topic.clone()).collect();
            t.dedup();
            t
        })
        .unwrap_or_default();
    let default = c.kc.spec.config.get("min.insync.replicas").and_then(|v| v.parse().ok());
    let min_isr = MinIsr {
        default: default.unwrap_or(1),
        topics: brokers.min_isr(&topics).await.unwrap_or_default(),
    };
    let step = roll::next_step(&views, &target, state, &min_isr, &c.voters);
    if let RollStep::Restart { ordinal, why } = &step {
        let name = c.pod_name(*ordinal);
        let uid = pods.items.iter().find(|p| p.metadata.name.as_deref() == Some(&name));
        let uid = uid.and_then(|p| p.metadata.uid.clone());
        tracing::info!(cluster = %c.name, pod = %name, %why, "rolling restart: deleting pod");
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid, resource_version: None }),
            ..DeleteParams::default()
        };
        match pods_api.delete(&name, &params).await {
            Ok(_) => {}
            // Gone or replaced meanwhile: the next look decides again.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(step)
}

/// A pod as the roll sees it; `None` for a pod that is not one of the brokers'.
fn broker_pod(pod: &Pod) -> Option<BrokerPod> {
    let labels = pod.metadata.labels.as_ref()?;
    let ordinal = labels.get(statefulset::POD_INDEX_LABEL)?.parse().ok()?;
    let revision = labels.get("controller-revision-hash")?.clone();
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    const STUCK: &[&str] = &[
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
    ];
    let stuck = status.and_then(|s| s.container_statuses.as_ref()).is_some_and(|cs| {
        cs.iter().any(|c| {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            waiting.and_then(|w| w.reason.as_deref()).is_some_and(|r| STUCK.contains(&r))
        })
    });
    Some(BrokerPod {
        ordinal,
        revision,
        ready,
        stuck,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// Publishes an Event on the cluster (best effort: a lost Event is not worth a retry).
async fn event(kc: &KafkaCluster, ctx: &Context, warning: bool, reason: &str, note: &str) {
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let ev = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        note: Some(note.chars().take(1024).collect()),
        action: match reason {
            r if r.starts_with("Roll") => "Roll",
            "Resizing" | "StorageShrinkRefused" => "Resize",
            _ => "Scale",
        }
        .into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &kc.object_ref(&())).await {
        tracing::debug!(error = %e, "publishing an event");
    }
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

fn error_policy(kc: Arc<KafkaCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %kc.name_any(), %error, "reconcile failed; retrying in 10 s");
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::PartitionState;

    mod reconcile {
        //! Each reconcile branch's requests, against a mocked API server (crate::fixtures).
        use super::super::*;
        use crate::fixtures::{self, Expect};
        use crate::resources::tests::cluster;
        use serde_json::json;

        const NS: &str = "/api/v1/namespaces/kafka";
        const STS: &str = "/apis/apps/v1/namespaces/kafka/statefulsets/demo";
        const STATUS: &str = "/apis/sluice.io/v1alpha1/namespaces/kafka/kafkaclusters/demo/status";

        /// The status patch, answered with the resource carrying that status.
        fn status(kc: &KafkaCluster) -> Expect {
            let mut object = serde_json::to_value(kc).unwrap();
            Expect::new("PATCH", STATUS, move |body, _| {
                object["status"] = body["status"].clone();
                (200, object)
            })
        }

        fn condition<'a>(status: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
            let cs = status["status"]["conditions"].as_array().expect("conditions");
            cs.iter().find(|c| c["type"] == type_).expect("the condition")
        }

        /// A list request, answered with `items`.
        fn list(path: String, items: serde_json::Value) -> Expect {
            Expect::new("GET", path, move |_, _| {
                (200, json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}))
            })
        }

        /// The list of the cluster's claims, answered with `items`.
        fn claims(items: serde_json::Value) -> Expect {
            list(format!("{NS}/persistentvolumeclaims"), items)
        }

        /// The objects a cluster becomes, applied in order; then `after` (claims, events).
        fn applies(sts: Expect, after: Vec<Expect>) -> Vec<Expect> {
            let mut s = vec![
                Expect::echo("PATCH", format!("{NS}/configmaps/demo-config")),
                Expect::echo("PATCH", format!("{NS}/services/demo-brokers")),
                Expect::echo("PATCH", format!("{NS}/services/demo-bootstrap")),
                Expect::echo("PATCH", format!("{NS}/services/demo-console")),
                sts,
                list(format!("{NS}/services"), json!([])),
                Expect::echo("PATCH", STS),
                Expect::echo("PATCH", "/apis/policy/v1/namespaces/kafka/poddisruptionbudgets/demo"),
                Expect::not_found("GET", "/apis/monitoring.coreos.com/v1"),
            ];
            s.extend(after);
            s
        }

        #[tokio::test]
        async fn an_invalid_spec_changes_nothing_and_says_why() {
            let mut kc = cluster("demo", 3);
            kc.spec.config.insert("log.retention.hourz".into(), "1".into());
            let (client, server) = fixtures::client(vec![status(&kc)]);
            let action = reconcile_inner(&kc, &crate::fixtures::context(client)).await.unwrap();
            assert_eq!(action, Action::await_change());
            let seen = server.await.unwrap();
            let ready = condition(&seen[0].body, "Ready");
            assert_eq!(
                (ready["status"].as_str(), ready["reason"].as_str()),
                (Some("False"), Some("InvalidSpec"))
            );
            assert!(ready["message"]
                .as_str()
                .unwrap()
                .contains("did you mean 'log.retention.hours'"));
        }

        #[tokio::test]
        async fn a_new_cluster_is_applied_server_side_and_reported_starting() {
            let kc = cluster("demo", 3);
            let claims = vec![claims(json!([])), status(&kc)];
            let (client, server) = fixtures::client(applies(Expect::not_found("GET", STS), claims));
            let action = reconcile_inner(&kc, &crate::fixtures::context(client)).await.unwrap();
            assert_eq!(action, Action::requeue(SETTLING));
            let seen = server.await.unwrap();
            let sts = &seen[6];
            assert!(
                sts.query.contains("fieldManager=sluice-operator")
                    && sts.query.contains("force=true")
            );
            assert_eq!(sts.body["spec"]["replicas"], 3);
            assert_eq!(sts.body["spec"]["updateStrategy"]["type"], "OnDelete");
            assert_eq!(sts.body["metadata"]["ownerReferences"][0]["kind"], "KafkaCluster");
            let status = &seen.last().unwrap().body;
            assert_eq!(condition(status, "Ready")["reason"], "BrokersStarting");
            assert_eq!(status["status"]["voters"], json!([0, 1, 2]));
            assert_eq!(status["status"]["consoleUrl"], "http://demo-console.kafka.svc:9644/");
        }

        #[tokio::test]
        async fn a_smaller_storage_size_is_refused_and_no_claim_is_touched() {
            let kc = cluster("demo", 3); // 1Gi
            let existing = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "demo", "namespace": "kafka"},
                "spec": {"replicas": 3, "serviceName": "demo-brokers",
                    "selector": {"matchLabels": {}}, "template": {},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"resources": {"requests": {"storage": "10Gi"}}}}]}});
            let claim = |i: i32| {
                json!({"metadata": {"name": format!("data-demo-{i}")},
                    "spec": {"resources": {"requests": {"storage": "10Gi"}}},
                    "status": {"capacity": {"storage": "10Gi"}}})
            };
            let mut after = vec![claims(json!([claim(0), claim(1), claim(2)]))];
            after.push(Expect::new(
                "POST",
                "/apis/events.k8s.io/v1/namespaces/kafka/events",
                |b, _| (201, b.clone()),
            ));
            after.push(status(&kc));
            let sts = Expect::new("GET", STS, move |_, _| (200, existing));
            let (client, server) = fixtures::client(applies(sts, after));
            reconcile_inner(&kc, &crate::fixtures::context(client)).await.unwrap();
            let seen = server.await.unwrap();
            // The template keeps the size the claims were made with.
            let template = &seen[6].body["spec"]["volumeClaimTemplates"][0]["spec"]["resources"];
            assert_eq!(template["requests"]["storage"], "10Gi");
            assert!(seen[9].query.contains("labelSelector="), "claims listed by label");
            let event = &seen[10].body;
            assert_eq!(
                (event["type"].as_str(), event["reason"].as_str()),
                (Some("Warning"), Some("StorageShrinkRefused"))
            );
            let progressing = condition(&seen[11].body, "Progressing");
            assert_eq!(progressing["status"], "False");
            assert!(progressing["message"].as_str().unwrap().contains("claims cannot shrink"));
        }
    }

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
            racks: Default::default(),
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
    fn operations_name_what_is_under_way_scale_first() {
        let blocked = RollStep::Blocked { ordinal: 2, reasons: vec!["t-0 would fall".into()] };
        let ops = operations(
            3,
            &ScaleStep::Refuse("no".into()),
            false,
            &StorageStep::Steady,
            "1Gi",
            Some(&blocked),
        );
        let reasons: Vec<_> = ops.iter().map(|(r, _)| *r).collect();
        assert_eq!(reasons, ["ScaleDownRefused", "RollBlocked"]);
        assert_eq!(
            ops[1].1,
            "rolling restart blocked: broker 2 cannot restart safely: t-0 would fall"
        );
        let ops = operations(
            3,
            &ScaleStep::Resize(5),
            false,
            &StorageStep::Grow(vec!["data-x-0".into()]),
            "2Gi",
            None,
        );
        assert_eq!(ops[0].1, "scaling up from 3 to 5 brokers");
        assert_eq!(ops[1].1, "growing claims data-x-0 to 2Gi");
        assert!(operations(
            3,
            &ScaleStep::Steady,
            false,
            &StorageStep::Steady,
            "1Gi",
            Some(&RollStep::Done)
        )
        .is_empty());
        assert_eq!(
            operations(3, &ScaleStep::Steady, true, &StorageStep::Steady, "1Gi", None)[0].0,
            "Reassigning"
        );
    }

    #[test]
    fn an_under_replicated_partition_degrades_a_ready_cluster() {
        let mut st = KafkaClusterStatus { ready_brokers: 3, ..Default::default() };
        assert!(!judge(&mut st, 3, Some(&state(&[0, 1, 2], &[0, 1], 0)), Some(1), &now()));
        assert_eq!(reason(&st, READY).0, "True");
        assert_eq!(reason(&st, DEGRADED), ("True".into(), "UnderReplicated".into()));
    }
}
