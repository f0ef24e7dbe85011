//! The metadata publisher: the one place where committed metadata reaches this broker's
//! partitions and groups (Kafka's `BrokerMetadataPublisher`).
//!
//! Every applied image is handed, in log order, to the replica manager (host new partitions,
//! delete removed ones, take leadership and epoch changes) and to the group coordinator (load
//! or drop the groups of the `__consumer_offsets` partitions this broker leads), and the follower
//! fetchers follow the partitions' leaders (start, move, stop). Then the
//! image's index is marked published, and a controller call made through this broker returns
//! only once its effect is published here: a client that created a topic through a broker can
//! produce to it there at once.
//!
//! It lives in `server/` because it joins layers that must not import each other: `metadata`
//! knows nothing of partitions or groups.

use std::sync::Arc;

use tokio::sync::watch;

use super::Broker;
use crate::group::GroupCoordinator;
use crate::log::LogError;
use crate::metadata::{ClusterImage, MetadataNode};
use crate::replica::fetcher::FetcherManager;
use crate::replica::ReplicaManager;

/// Applies `image` to the partitions and groups, then marks it published.
pub(crate) fn publish(
    image: &ClusterImage,
    metadata: &MetadataNode,
    replicas: &ReplicaManager,
    fetchers: &FetcherManager,
    groups: &Arc<GroupCoordinator>,
) -> Result<(), LogError> {
    let applied = replicas.reconcile(image);
    fetchers.update(image);
    groups.sync_partitions(image);
    metadata.mark_published(image.applied_index);
    applied
}

/// Publishes every new image until shutdown.
pub(crate) async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut images = broker.metadata.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
                let image = images.borrow_and_update().clone();
                let published = publish(
                    &image,
                    &broker.metadata,
                    &broker.replicas,
                    &broker.fetchers,
                    &broker.groups,
                );
                if let Err(e) = published {
                    tracing::error!(error = %e, "applying metadata to partitions failed");
                }
            }
        }
    }
}
