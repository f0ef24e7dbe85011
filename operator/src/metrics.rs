//! The operator's own metrics on `/metrics`: reconciles per kind, their failures and duration.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Kind, Counter>,
    failures: Family<Kind, Counter>,
    duration: Family<Kind, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sluice_operator");
        let reconciles = Family::<Kind, Counter>::default();
        let failures = Family::<Kind, Counter>::default();
        let duration = Family::<Kind, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register("reconciles", "Reconciles, by resource kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and will be retried, by resource kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by resource kind",
            duration.clone(),
        );
        Metrics { registry, reconciles, failures, duration }
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

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
