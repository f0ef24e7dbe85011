//! DescribeCluster (0–1): cluster id, controller and brokers. Asking this broker for the
//! controller endpoints (v1 endpoint type 2) answers UNSUPPORTED_ENDPOINT_TYPE, as a Kafka
//! broker does: only controllers answer that.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use crate::api::metadata::{AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS};
use crate::api::strb;
use crate::server::Broker;

pub fn describe_cluster(broker: &Broker, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let image = broker.metadata.image();
    if req.endpoint_type == 2 {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(strb("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")))
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_id(strb(&image.cluster_id))
            .with_controller_id(BrokerId(-1));
    }
    let listener = crate::server::connection::current_listener();
    let brokers = image
        .unfenced_brokers()
        .filter_map(|b| {
            let (host, port) = b.endpoint(&listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(strb(host))
                    .with_port(port as i32)
                    .with_rack(b.rack.as_deref().map(strb))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(strb(&image.cluster_id))
        .with_controller_id(BrokerId(crate::api::metadata::controller_for_clients(
            broker, &image, &listener,
        )))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}
