//! Access from outside Kubernetes (`spec.listeners.external`): every broker gets a listener
//! `EXTERNAL` on port 9094, a Service of its own that selects only its pod (Kafka clients
//! talk to each partition's leader, so each broker needs an address of its own), and the
//! cluster a Service to bootstrap from.
//!
//! What a broker advertises on `EXTERNAL` is only known once its Service exists: the node port
//! the API server picked, or the address the load balancer got. The operator writes it into
//! the ConfigMap `<cluster>-external`, one key per broker pod, mounted into every broker pod;
//! the broker reads its own key at start through Kafka's `DirectoryConfigProvider`
//! (`${dir:<mount>:<pod name>}` in `--advertised`), so one pod template serves every broker:
//!
//! - `NodePort`: the key holds the port; the host is the Node's address (`status.hostIP`,
//!   through the downward API), as a client outside reaches the Node;
//! - `LoadBalancer`: the key holds `host:9094`, the load balancer's address.
//!
//! A broker whose address is not known yet is not started (the StatefulSet does not grow
//! past it). Server-side apply leaves an allocated node port alone, so a broker's address
//! stays the same for the life of its Service.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Cluster;
use crate::crd::{ExternalListener, ExternalType};

/// The external listener's port on every broker (and on each load balancer).
pub const EXTERNAL_PORT: i32 = 9094;
/// Where the addresses ConfigMap is mounted in a broker pod.
pub const MOUNT: &str = "/etc/sluice-external";
/// The label every external Service carries (the operator finds them by it).
pub const SERVICE_LABEL: (&str, &str) = ("sluice.io/service", "external");
/// The label the StatefulSet controller puts on each pod: its name.
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// The cluster's external listener, if the spec asks for one.
pub fn spec<'a>(c: &'a Cluster) -> Option<&'a ExternalListener> {
    c.kc.spec.listeners.as_ref()?.external.as_ref()
}

pub fn broker_service_name(c: &Cluster, ordinal: i32) -> String {
    format!("{}-external-{ordinal}", c.name)
}

pub fn bootstrap_service_name(c: &Cluster) -> String {
    format!("{}-external-bootstrap", c.name)
}

pub fn config_map_name(c: &Cluster) -> String {
    format!("{}-external", c.name)
}

fn service(
    c: &Cluster,
    ext: &ExternalListener,
    name: String,
    selector: BTreeMap<String, String>,
) -> Service {
    let mut metadata = c.meta(name);
    metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(SERVICE_LABEL.0.into(), SERVICE_LABEL.1.into());
    if !ext.annotations.is_empty() {
        metadata.annotations = Some(ext.annotations.clone());
    }
    let type_ = match ext.type_ {
        ExternalType::NodePort => "NodePort",
        ExternalType::LoadBalancer => "LoadBalancer",
    };
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("external".into()),
                port: EXTERNAL_PORT,
                target_port: Some(IntOrString::Int(EXTERNAL_PORT)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Broker `ordinal`'s own Service: it selects that pod alone.
pub fn broker_service(c: &Cluster, ext: &ExternalListener, ordinal: i32) -> Service {
    let mut selector = c.selector();
    selector.insert(POD_NAME_LABEL.into(), c.pod_name(ordinal));
    service(c, ext, broker_service_name(c, ordinal), selector)
}

/// The Service clients outside bootstrap from: every broker.
pub fn bootstrap_service(c: &Cluster, ext: &ExternalListener) -> Service {
    service(c, ext, bootstrap_service_name(c), c.selector())
}

/// What a broker behind `svc` advertises, as the ConfigMap holds it: the node port, or the
/// load balancer's `host:port`; `None` until the API server or the load balancer has given it.
pub fn advertised(svc: &Service, type_: ExternalType) -> Option<String> {
    match type_ {
        ExternalType::NodePort => node_port(svc).map(|p| p.to_string()),
        ExternalType::LoadBalancer => lb_host(svc).map(|h| format!("{h}:{EXTERNAL_PORT}")),
    }
}

fn node_port(svc: &Service) -> Option<i32> {
    svc.spec.as_ref()?.ports.as_ref()?.iter().find_map(|p| p.node_port)
}

fn lb_host(svc: &Service) -> Option<String> {
    let ingress = svc.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?;
    ingress.ip.clone().or_else(|| ingress.hostname.clone()).filter(|h| !h.is_empty())
}

/// Where clients outside bootstrap from: the load balancer's `host:port`, or `host:nodePort`
/// for each of `node_hosts` (the Nodes the brokers run on).
pub fn bootstrap_address(
    svc: &Service,
    type_: ExternalType,
    node_hosts: &[String],
) -> Option<String> {
    match type_ {
        ExternalType::LoadBalancer => advertised(svc, type_),
        ExternalType::NodePort => {
            let port = node_port(svc)?;
            let hosts: Vec<String> = node_hosts.iter().map(|h| format!("{h}:{port}")).collect();
            (!hosts.is_empty()).then(|| hosts.join(","))
        }
    }
}

/// The ConfigMap of the brokers' external addresses, one key per broker pod.
pub fn config_map(c: &Cluster, addresses: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: c.meta(config_map_name(c)),
        data: Some(addresses),
        ..ConfigMap::default()
    }
}

/// The `EXTERNAL` entry of a broker's `--advertised`, for Kubernetes to expand (`$(VAR)`) and
/// the broker's config provider to resolve (`${dir:...}`).
pub fn advertised_listener(type_: ExternalType) -> String {
    let own = format!("${{dir:{MOUNT}:$(POD_NAME)}}");
    match type_ {
        ExternalType::NodePort => format!("EXTERNAL://$(HOST_IP):{own}"),
        ExternalType::LoadBalancer => format!("EXTERNAL://{own}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::cluster;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};

    fn external(type_: ExternalType) -> ExternalListener {
        ExternalListener { type_, annotations: BTreeMap::from([("a".into(), "b".into())]) }
    }

    #[test]
    fn each_broker_gets_a_service_of_its_own() {
        let kc = cluster("demo", 3);
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        let svc = broker_service(&c, &external(ExternalType::NodePort), 2);
        assert_eq!(svc.metadata.name.as_deref(), Some("demo-external-2"));
        assert_eq!(svc.metadata.annotations.as_ref().unwrap()["a"], "b");
        assert_eq!(svc.metadata.labels.as_ref().unwrap()["sluice.io/service"], "external");
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.selector.as_ref().unwrap()[POD_NAME_LABEL], "demo-2");
        assert_eq!(spec.ports.unwrap()[0].port, EXTERNAL_PORT);
        let boot = bootstrap_service(&c, &external(ExternalType::LoadBalancer)).spec.unwrap();
        assert_eq!(boot.type_.as_deref(), Some("LoadBalancer"));
        assert!(!boot.selector.unwrap().contains_key(POD_NAME_LABEL));
    }

    #[test]
    fn a_broker_advertises_its_node_port_or_its_load_balancer() {
        let kc = cluster("demo", 3);
        let c = Cluster::new(&kc, "cluster.local").unwrap();
        let mut svc = broker_service(&c, &external(ExternalType::LoadBalancer), 0);
        assert_eq!(advertised(&svc, ExternalType::NodePort), None);
        assert_eq!(advertised(&svc, ExternalType::LoadBalancer), None);
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(31001);
        assert_eq!(advertised(&svc, ExternalType::NodePort).as_deref(), Some("31001"));
        assert_eq!(advertised(&svc, ExternalType::LoadBalancer), None, "no address yet");
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    hostname: Some("lb.example".into()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        });
        assert_eq!(
            advertised(&svc, ExternalType::LoadBalancer).as_deref(),
            Some("lb.example:9094")
        );
        let hosts = ["10.0.0.1".to_string(), "10.0.0.2".to_string()];
        assert_eq!(
            bootstrap_address(&svc, ExternalType::NodePort, &hosts).as_deref(),
            Some("10.0.0.1:31001,10.0.0.2:31001")
        );
        assert_eq!(
            bootstrap_address(&svc, ExternalType::LoadBalancer, &hosts).as_deref(),
            Some("lb.example:9094")
        );
    }

    #[test]
    fn the_advertised_listener_reads_the_pods_own_key() {
        assert_eq!(
            advertised_listener(ExternalType::NodePort),
            "EXTERNAL://$(HOST_IP):${dir:/etc/sluice-external:$(POD_NAME)}"
        );
        assert_eq!(
            advertised_listener(ExternalType::LoadBalancer),
            "EXTERNAL://${dir:/etc/sluice-external:$(POD_NAME)}"
        );
    }
}
