//! The brokers' ServiceMonitor (Prometheus Operator's `monitoring.coreos.com/v1`), made when
//! the cluster serves that API and `spec.metrics.serviceMonitor` is not false: Prometheus then
//! scrapes every broker's `/metrics` on the admin port, through the headless Service. The
//! type is not compiled in: it is applied as a dynamic object.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use super::service::SERVICE_LABEL;
use super::Cluster;

/// The API group and version of ServiceMonitor.
pub const API_VERSION: &str = "monitoring.coreos.com/v1";

pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// Whether the spec asks for one (it does unless it says `serviceMonitor: false`).
pub fn wanted(c: &Cluster) -> bool {
    c.kc.spec.metrics.as_ref().is_none_or(|m| m.service_monitor)
}

pub fn service_monitor(c: &Cluster) -> DynamicObject {
    let interval = c.kc.spec.metrics.as_ref().and_then(|m| m.interval.clone());
    let mut selector = c.selector();
    selector.insert(SERVICE_LABEL.0.into(), SERVICE_LABEL.1.into());
    let mut obj = DynamicObject::new(&c.name, &api_resource()).within(&c.namespace);
    obj.metadata = c.meta(c.name.clone());
    obj.data = serde_json::json!({
        "spec": {
            "selector": {"matchLabels": selector},
            "endpoints": [{
                "port": "admin",
                "path": "/metrics",
                "interval": interval.unwrap_or_else(|| "30s".into()),
            }],
        }
    });
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::cluster;

    #[test]
    fn it_scrapes_the_admin_port_of_the_headless_service_only() {
        let kc = cluster("demo", 3);
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        assert!(wanted(&c));
        let sm = serde_json::to_value(service_monitor(&c)).unwrap();
        assert_eq!(sm["apiVersion"], API_VERSION);
        assert_eq!(sm["kind"], "ServiceMonitor");
        assert_eq!(sm["spec"]["endpoints"][0]["port"], "admin");
        assert_eq!(sm["spec"]["selector"]["matchLabels"]["sluice.io/service"], "brokers");
        let headless = crate::resources::service::headless(&c);
        let labels = headless.metadata.labels.unwrap();
        assert_eq!(labels["sluice.io/service"], "brokers");
        let bootstrap = crate::resources::service::bootstrap(&c);
        assert!(!bootstrap.metadata.labels.unwrap().contains_key("sluice.io/service"));
    }
}
