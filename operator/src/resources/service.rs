//! The two Services of a cluster: the headless one that gives each broker pod its DNS name
//! (published before the pod is ready, since brokers must find the quorum's voters to become
//! ready at all), and the bootstrap one clients start from.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};

use super::{Cluster, ADMIN_PORT, CONTROLLER_PORT, KAFKA_PORT};

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// The label that tells the headless Service from the bootstrap one (the ServiceMonitor
/// selects by it).
pub const SERVICE_LABEL: (&str, &str) = ("sluice.io/service", "brokers");

pub fn headless(c: &Cluster) -> Service {
    let mut metadata = c.meta(c.headless_name());
    let labels = metadata.labels.get_or_insert_with(Default::default);
    labels.insert(SERVICE_LABEL.0.into(), SERVICE_LABEL.1.into());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(c.selector()),
            ports: Some(vec![
                port("kafka", KAFKA_PORT),
                port("controller", CONTROLLER_PORT),
                port("admin", ADMIN_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn bootstrap(c: &Cluster) -> Service {
    Service {
        metadata: c.meta(c.bootstrap_name()),
        spec: Some(ServiceSpec {
            selector: Some(c.selector()),
            ports: Some(vec![port("kafka", KAFKA_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
