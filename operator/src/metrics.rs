//! The operator's own metrics on `/metrics` (docs/metrics.md): reconciles per kind, their
//! failures and duration; per KafkaCluster the operations under way (a blocked roll among
//! them) and its brokers; the process's resources and the build.
//!
//! The cluster's labels are `cluster` and `cluster_namespace`: a scrape through a
//! ServiceMonitor adds `namespace` (the operator's own) to every series.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sluice_broker::metrics::{ProcessMetrics, VersionLabels};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster_namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    cluster_namespace: String,
    cluster: String,
    reason: &'static str,
}

/// Every reason an operation can have (`KafkaCluster` status, the Progressing condition).
pub const OPERATIONS: &[&str] = &[
    "Reassigning",
    "Scaling",
    "ScaleDownRefused",
    "Resizing",
    "StorageShrinkRefused",
    "Rolling",
    "RollBlocked",
];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    process: ProcessMetrics,
    reconciles: Family<Kind, Counter>,
    failures: Family<Kind, Counter>,
    duration: Family<Kind, Histogram>,
    operation: Family<OperationLabels, Gauge>,
    ready_brokers: Family<ClusterLabels, Gauge>,
    replicas: Family<ClusterLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            process: ProcessMetrics::default(),
            reconciles: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            operation: Family::default(),
            ready_brokers: Family::default(),
            replicas: Family::default(),
        };
        // At zero from the start: on /metrics before the first reconcile (or failure).
        for kind in ["KafkaCluster", "Topic"] {
            let _ = m.reconciles.get_or_create(&Kind { kind });
            let _ = m.failures.get_or_create(&Kind { kind });
            let _ = m.duration.get_or_create(&Kind { kind });
        }
        m.process.register(&mut m.registry);
        let r = m.registry.sub_registry_with_prefix("sluice_operator");
        let build = Family::<VersionLabels, Gauge>::default();
        build.get_or_create(&VersionLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        r.register("build_info", "1, labelled with the operator's version", build);
        r.register("reconciles", "Reconciles, by resource kind", m.reconciles.clone());
        r.register(
            "reconcile_errors",
            "Reconciles that failed and will be retried, by resource kind",
            m.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by resource kind",
            m.duration.clone(),
        );
        r.register(
            "cluster_operation",
            "1 while the KafkaCluster's operation with this reason is under way (RollBlocked: a \
             roll waits for a broker that cannot restart safely; the status says which)",
            m.operation.clone(),
        );
        r.register(
            "cluster_ready_brokers",
            "Broker pods of the KafkaCluster that are ready",
            m.ready_brokers.clone(),
        );
        r.register("cluster_replicas", "Brokers the KafkaCluster asks for", m.replicas.clone());
        m
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &'static str, took: Duration, failed: bool) {
        let k = Kind { kind };
        self.reconciles.get_or_create(&k).inc();
        if failed {
            self.failures.get_or_create(&k).inc();
        }
        self.duration.get_or_create(&k).observe(took.as_secs_f64());
    }

    /// A KafkaCluster's brokers and the reasons of its operations under way.
    pub fn cluster(&self, namespace: &str, name: &str, replicas: i32, ready: i32, ops: &[&str]) {
        let labels = ClusterLabels { cluster_namespace: namespace.into(), cluster: name.into() };
        self.replicas.get_or_create(&labels).set(replicas.into());
        self.ready_brokers.get_or_create(&labels).set(ready.into());
        for reason in OPERATIONS {
            let labels = OperationLabels {
                cluster_namespace: namespace.into(),
                cluster: name.into(),
                reason,
            };
            self.operation.get_or_create(&labels).set(i64::from(ops.contains(reason)));
        }
    }

    /// Drops a deleted KafkaCluster's series.
    pub fn forget_cluster(&self, namespace: &str, name: &str) {
        let labels = ClusterLabels { cluster_namespace: namespace.into(), cluster: name.into() };
        self.replicas.remove(&labels);
        self.ready_brokers.remove(&labels);
        for reason in OPERATIONS {
            self.operation.remove(&OperationLabels {
                cluster_namespace: namespace.into(),
                cluster: name.into(),
                reason,
            });
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.process.refresh();
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_one_series_per_reason_and_leave_with_the_cluster() {
        let m = Metrics::default();
        m.cluster("kafka", "demo", 3, 2, &["Rolling", "RollBlocked"]);
        let text = m.render();
        let line = |reason: &str, v: u8| {
            format!(
                "sluice_operator_cluster_operation{{cluster_namespace=\"kafka\",cluster=\"demo\",reason=\"{reason}\"}} {v}"
            )
        };
        assert!(text.contains(&line("RollBlocked", 1)), "{text}");
        assert!(text.contains(&line("Scaling", 0)), "{text}");
        assert!(text.contains(
            "sluice_operator_cluster_ready_brokers{cluster_namespace=\"kafka\",cluster=\"demo\"} 2"
        ));
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        m.forget_cluster("kafka", "demo");
        assert!(!m.render().contains("cluster=\"demo\""));
    }
}
