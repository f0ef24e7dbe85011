//! The Services of a cluster: the headless one that gives each broker pod its DNS name
//! (published before the pod is ready, since brokers must find the quorum's voters to become
//! ready at all), the bootstrap one clients start from, and the console one people open (the
//! admin port of the ready brokers: each serves the whole console).

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

pub fn console(c: &Cluster) -> Service {
    use crate::crd::ConsoleServiceType;
    let spec = c.kc.spec.console.as_ref();
    let mut metadata = c.meta(c.console_name());
    if let Some(s) = spec.filter(|s| !s.annotations.is_empty()) {
        metadata.annotations = Some(s.annotations.clone());
    }
    let type_ = spec.and_then(|s| s.service_type).map(|t| match t {
        ConsoleServiceType::ClusterIP => "ClusterIP".into(),
        ConsoleServiceType::NodePort => "NodePort".into(),
        ConsoleServiceType::LoadBalancer => "LoadBalancer".into(),
    });
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_,
            selector: Some(c.selector()),
            ports: Some(vec![port("console", ADMIN_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ConsoleServiceType, ConsoleSpec};

    #[test]
    fn the_console_service_reaches_the_admin_port_with_the_type_asked() {
        let mut kc = crate::resources::tests::cluster("demo", 3);
        let plain = console(&Cluster::new(&kc, "cluster.local").unwrap());
        assert_eq!(plain.metadata.name.as_deref(), Some("demo-console"));
        let spec = plain.spec.unwrap();
        assert_eq!(spec.type_, None, "ClusterIP by default");
        assert_eq!(spec.ports.unwrap()[0].port, ADMIN_PORT);
        let asked = ConsoleSpec {
            service_type: Some(ConsoleServiceType::LoadBalancer),
            annotations: [("a".to_string(), "b".to_string())].into(),
        };
        kc.spec.console = Some(asked);
        let lb = console(&Cluster::new(&kc, "cluster.local").unwrap());
        assert_eq!(lb.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(lb.metadata.annotations.unwrap()["a"], "b");
    }
}
