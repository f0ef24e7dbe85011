//! How a broker-only node (`process.roles=broker`) follows the metadata log without voting:
//! it fetches committed entries from the active controller, as KRaft brokers fetch the
//! `__cluster_metadata` log, and applies them to its own image with the state machine's own
//! [`apply_entry`]. A voter answers from the entries it applied recently, or with its whole image
//! when the broker is further behind (a new broker, or one that was away through a snapshot).
//! Each fetch waits up to a second for something new, so a change reaches brokers at once
//! without a flood of empty fetches. Nothing is stored: a restarted broker fetches the image.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::calls::{ControllerCall, ControllerReply, MetadataDelta};
use super::image::ClusterImage;
use super::state_machine::apply_entry;
use super::MetadataNode;

/// How long one fetch waits at the controller for new entries.
pub(crate) const FETCH_WAIT: Duration = Duration::from_secs(1);

/// Fetches and applies the metadata log until shutdown, publishing each new image.
pub(crate) async fn follow(node: MetadataNode, images: watch::Sender<Arc<ClusterImage>>) {
    let mut shutdown = node.inner.shutdown.subscribe();
    let mut image = Arc::new(ClusterImage::default());
    let mut failing = false;
    loop {
        let after = image.applied_index;
        let call =
            ControllerCall::FetchMetadata { after, max_wait_ms: FETCH_WAIT.as_millis() as u64 };
        let fetched = tokio::select! {
            _ = shutdown.changed() => return,
            r = node.send_call(call, FETCH_WAIT * 5, FETCH_WAIT * 5) => r,
        };
        match fetched {
            Ok((ControllerReply::Metadata { leader, delta }, _)) => {
                failing = false;
                node.note_leader(leader);
                let changed = match delta {
                    MetadataDelta::Entries(entries) if entries.is_empty() => false,
                    MetadataDelta::Entries(entries) => {
                        let next = Arc::make_mut(&mut image);
                        for entry in &entries {
                            if entry.index > next.applied_index {
                                apply_entry(next, entry);
                            }
                        }
                        next.applied_index > after
                    }
                    MetadataDelta::Image(mut full) => {
                        full.reindex();
                        image = Arc::new(*full);
                        true
                    }
                };
                if changed {
                    images.send_replace(image.clone());
                }
            }
            Ok((other, _)) => tracing::warn!("unexpected metadata fetch answer {other:?}"),
            Err(e) => {
                if !failing && !node.stopping() {
                    failing = true;
                    tracing::warn!(error = %e, "fetching the metadata log failed; retrying");
                }
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}
