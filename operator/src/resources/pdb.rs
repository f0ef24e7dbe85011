//! The PodDisruptionBudget: a node drain (or anything else using the eviction API) takes at
//! most `maxUnavailable` brokers at once (default one). The operator's own restarts do not go
//! through evictions: they delete one pod at a time, after checking its partitions.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Cluster;

pub fn pdb(c: &Cluster) -> PodDisruptionBudget {
    let max = c.kc.spec.pod_disruption_budget.as_ref().map_or(1, |p| p.max_unavailable);
    PodDisruptionBudget {
        metadata: c.meta(c.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max)),
            selector: Some(LabelSelector {
                match_labels: Some(c.selector()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
