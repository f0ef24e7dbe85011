//! The `Topic` reconciler: the resource is the source of truth, one way. It finds the
//! `KafkaCluster` the spec names in the same namespace, asks its brokers about the one topic the
//! resource names, and lets [`ops::topic::decide`](crate::ops::topic::decide) say what to do:
//! create it, add partitions, set or delete configs, or refuse (a partition decrease, a
//! replication factor change, an invalid spec) with a condition and nothing changed. Topics no
//! resource names (made by clients or other tools) are never looked at.
//!
//! Deletion goes through the finalizer `sluice.io/topic`: with `deletionPolicy: Delete` the
//! topic is deleted from Kafka first (retried while the brokers cannot be reached), with
//! `Retain` it stays. When the `KafkaCluster` is gone or being deleted (as in a namespace
//! deletion) the finalizer is removed at once without asking anything, so it never blocks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::{watcher, Controller};
use kube::{Api, ResourceExt};

use super::{drive, scoped, Context};
use crate::crd::{DeletionPolicy, KafkaCluster, Topic, TopicStatus};
use crate::kafka::{AdminError, Brokers};
use crate::ops::topic::{self as decide_topic, ObservedTopic, TopicAction};
use crate::resources::Cluster;
use crate::status::{self, READY};
use crate::{Error, Result};

/// The finalizer on every `Topic`.
pub const FINALIZER: &str = "sluice.io/topic";
/// How often a topic that matches its spec is looked at again (drift back to the spec), and
/// one that does not yet (a cluster not ready, brokers unreachable, a refusal).
const SETTLED: Duration = Duration::from_secs(60);
const WAITING: Duration = Duration::from_secs(10);
/// Actions taken in one reconcile at most (create, add partitions, alter configs).
const MAX_STEPS: usize = 4;

/// Runs the controller until a termination signal: `Topic`s in `namespace` (every namespace
/// when `None`).
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let api = scoped::<Topic>(&ctx.client, namespace.as_deref());
    let controller = Controller::new(api, watcher::Config::default()).shutdown_on_signal().run(
        reconcile,
        error_policy,
        ctx,
    );
    drive(controller).await;
}

/// The topic's name in Kafka: `spec.topicName`, or the resource's name.
pub fn topic_name(t: &Topic) -> String {
    t.spec.topic_name.clone().unwrap_or_else(|| t.name_any())
}

async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let ns = topic.namespace().ok_or_else(|| Error::Missing(topic.name_any(), "namespace"))?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            Event::Apply(t) => apply(&t, &ctx, &ns).await,
            Event::Cleanup(t) => cleanup(&t, &ctx, &ns).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconciled("Topic", started.elapsed(), result.is_err());
    result
}

/// What the reconcile ends with: the Ready condition.
struct Outcome {
    ready: bool,
    reason: &'static str,
    message: String,
}

impl Outcome {
    fn not_ready(reason: &'static str, message: impl Into<String>) -> Outcome {
        Outcome { ready: false, reason, message: message.into() }
    }
}

async fn apply(t: &Topic, ctx: &Context, ns: &str) -> Result<Action> {
    let name = topic_name(t);
    let mut st = t.status.clone().unwrap_or_default();
    let outcome = bring_to_spec(t, ctx, ns, &name, &mut st).await?;
    let generation = t.metadata.generation;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let before = status::get(&st.conditions, READY).map(|c| (c.status.clone(), c.reason.clone()));
    status::set(
        &mut st.conditions,
        READY,
        outcome.ready,
        outcome.reason,
        &outcome.message,
        generation,
        &now,
    );
    let after = status::get(&st.conditions, READY).map(|c| (c.status.clone(), c.reason.clone()));
    if before != after {
        tracing::info!(namespace = ns, topic = %t.name_any(), kafka_topic = %name,
            reason = outcome.reason, "{}", outcome.message);
    }
    st.observed_generation = generation;
    super::apply_status(&ctx.client, t, st).await?;
    Ok(Action::requeue(if outcome.ready { SETTLED } else { WAITING }))
}

/// Observes the topic and acts until it matches the spec or the spec is refused; `st` gets
/// the topic id and the configs applied.
async fn bring_to_spec(
    t: &Topic,
    ctx: &Context,
    ns: &str,
    name: &str,
    st: &mut TopicStatus,
) -> Result<Outcome> {
    let spec = &t.spec;
    // A spec that can never work is said at once, whatever the cluster's state.
    if let Err(message) = decide_topic::validate_spec(spec, name) {
        return Ok(Outcome::not_ready("InvalidSpec", message));
    }
    let kcs: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), ns);
    let Some(kc) = kcs.get_opt(&spec.cluster).await? else {
        return Ok(Outcome::not_ready(
            "ClusterNotFound",
            format!("no KafkaCluster {} in namespace {ns}", spec.cluster),
        ));
    };
    let kc_ready = kc
        .status
        .as_ref()
        .and_then(|s| status::get(&s.conditions, READY))
        .is_some_and(|c| c.status == "True");
    if !kc_ready || kc.metadata.deletion_timestamp.is_some() {
        return Ok(Outcome::not_ready(
            "ClusterNotReady",
            format!("KafkaCluster {} is not Ready", spec.cluster),
        ));
    }
    let c = Cluster::new(&kc, &ctx.domain)?;
    let mut brokers = Brokers::new(c.broker_addrs(kc.spec.replicas));
    let unreachable = |e: &dyn std::fmt::Display| {
        Outcome::not_ready("BrokersUnreachable", format!("asking the brokers: {e}"))
    };
    let (registered, state) = match brokers.topic(name).await {
        Ok(found) => found,
        Err(e) => return Ok(unreachable(&e)),
    };
    st.topic_id = state.as_ref().map(|s| s.topic_id.clone());
    let mut observed = match &state {
        None => None,
        Some(s) => Some(ObservedTopic {
            partitions: s.partitions,
            replication_factor: s.replication_factor,
            config: match brokers.topic_config(name).await {
                Ok(config) => config,
                Err(e) => return Ok(failed(e)),
            },
        }),
    };
    let mut changed = false;
    for _ in 0..MAX_STEPS {
        let action = decide_topic::decide(
            spec,
            name,
            registered.len(),
            observed.as_ref(),
            &st.applied_config,
        );
        let done = match &action {
            TopicAction::Refuse { reason, message } => {
                return Ok(Outcome::not_ready(reason, message.clone()));
            }
            TopicAction::UpToDate => {
                st.applied_config = spec.config.clone();
                break;
            }
            TopicAction::Create => brokers
                .create_topic(name, spec.partitions, spec.replication_factor, &spec.config)
                .await
                .map(|()| {
                    observed = Some(ObservedTopic {
                        partitions: spec.partitions,
                        replication_factor: spec.replication_factor,
                        config: spec.config.clone(),
                    });
                }),
            TopicAction::AddPartitions(n) => brokers.create_partitions(name, *n).await.map(|()| {
                if let Some(o) = observed.as_mut() {
                    o.partitions = *n;
                }
            }),
            TopicAction::AlterConfig { set, delete } => {
                brokers.alter_topic_config(name, set, delete).await.map(|()| {
                    if let Some(o) = observed.as_mut() {
                        o.config.extend(set.clone());
                        o.config.retain(|k, _| !delete.contains(k));
                    }
                })
            }
        };
        if let Err(e) = done {
            return Ok(failed(e));
        }
        tracing::info!(namespace = ns, kafka_topic = %name, ?action, "topic changed");
        changed = true;
        st.applied_config = spec.config.clone();
    }
    if changed || st.topic_id.is_none() {
        // The topic id of a topic just made (the metadata may lag: the next look fills it).
        if let Ok((_, Some(s))) = brokers.topic(name).await {
            st.topic_id = Some(s.topic_id);
        }
    }
    let Some(o) = observed else {
        return Ok(Outcome::not_ready("Creating", "the topic is not there yet"));
    };
    Ok(Outcome {
        ready: true,
        reason: "Ready",
        message: format!(
            "topic {name}: {} partitions, replication factor {}",
            o.partitions, o.replication_factor
        ),
    })
}

/// A broker refusal or a lost connection, as the status says it.
fn failed(e: AdminError) -> Outcome {
    match e {
        AdminError::Unreachable(e) => {
            Outcome::not_ready("BrokersUnreachable", format!("asking the brokers: {e}"))
        }
        AdminError::Refused { .. } => Outcome::not_ready("KafkaError", e.to_string()),
    }
}

/// The resource is being deleted: delete the topic when the policy says so, then let the
/// finalizer go. Never blocks when the cluster is gone or going.
async fn cleanup(t: &Topic, ctx: &Context, ns: &str) -> Result<Action> {
    let name = topic_name(t);
    if t.spec.deletion_policy == DeletionPolicy::Retain {
        tracing::info!(namespace = ns, kafka_topic = %name, "Topic deleted; the topic is retained");
        return Ok(Action::await_change());
    }
    if decide_topic::validate_name(&name).is_err() {
        // Never made.
        return Ok(Action::await_change());
    }
    let kcs: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), ns);
    let kc = match kcs.get_opt(&t.spec.cluster).await? {
        Some(kc) if kc.metadata.deletion_timestamp.is_none() => kc,
        _ => {
            tracing::info!(namespace = ns, kafka_topic = %name,
                "Topic deleted; its KafkaCluster is gone, nothing to delete");
            return Ok(Action::await_change());
        }
    };
    let c = Cluster::new(&kc, &ctx.domain)?;
    let mut brokers = Brokers::new(c.broker_addrs(kc.spec.replicas));
    brokers.delete_topic(&name).await.map_err(|e| Error::Kafka(e.to_string()))?;
    tracing::info!(namespace = ns, kafka_topic = %name, "Topic deleted; the topic is deleted");
    Ok(Action::await_change())
}

fn error_policy(t: Arc<Topic>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(topic = %t.name_any(), %error, "reconcile failed; retrying in 10 s");
    Action::requeue(WAITING)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TopicSpec;
    use http::{Request, Response};
    use kube::client::Body;

    fn topic(policy: DeletionPolicy) -> Topic {
        let mut t = Topic::new(
            "events",
            TopicSpec {
                cluster: "demo".into(),
                topic_name: None,
                partitions: 3,
                replication_factor: 3,
                config: Default::default(),
                deletion_policy: policy,
            },
        );
        t.metadata.namespace = Some("op".into());
        t
    }

    /// A Delete-policy Topic whose KafkaCluster is gone (a namespace being deleted) lets its
    /// finalizer go after one GET, without a broker to ask.
    #[tokio::test]
    async fn cleanup_never_waits_for_a_cluster_that_is_gone() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let (req, send) = handle.next_request().await.expect("a request");
            assert_eq!(req.method(), "GET");
            assert_eq!(
                req.uri().path(),
                "/apis/sluice.io/v1alpha1/namespaces/op/kafkaclusters/demo"
            );
            let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "kafkaclusters \"demo\" not found"});
            send.send_response(
                Response::builder()
                    .status(404)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        });
        let c = crate::fixtures::context(kube::Client::new(service, "op"));
        let action = cleanup(&topic(DeletionPolicy::Delete), &c, "op").await.unwrap();
        assert_eq!(action, Action::await_change());
        server.await.unwrap();
    }

    /// Retain asks nothing at all.
    #[tokio::test]
    async fn cleanup_of_a_retained_topic_asks_nothing() {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let c = crate::fixtures::context(kube::Client::new(service, "op"));
        let action = cleanup(&topic(DeletionPolicy::Retain), &c, "op").await.unwrap();
        assert_eq!(action, Action::await_change());
    }
}
