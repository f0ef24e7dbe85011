//! ISR changes on this broker's partitions: the leader's AlterPartition requests go to the
//! controller one by one (a refused one is asked again at the next chance), and every half
//! `replica.lag.time.max.ms` the leader looks for followers that fell behind, as Kafka's
//! ReplicaManager does.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::Broker;

/// Starts the sender of ISR changes and the periodic shrink check.
pub(crate) fn start(broker: &Arc<Broker>, shutdown: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    broker.replicas.set_isr_sender(tx);
    let sender = {
        let broker = broker.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    _ = shutdown.changed() => return,
                    c = rx.recv() => match c { Some(c) => c, None => return },
                };
                let ask = broker.metadata.alter_partition(crate::metadata::AlterPartition {
                    broker: -1,
                    broker_epoch: -1,
                    topic_id: change.topic_id,
                    partition: change.tp.partition,
                    leader_epoch: change.leader_epoch,
                    partition_epoch: change.partition_epoch,
                    new_isr: change.new_isr.clone(),
                    new_isr_epochs: change.new_isr_epochs.clone(),
                });
                // A call may wait for a controller for a while: shutdown does not wait for it.
                let result = tokio::select! {
                    _ = shutdown.changed() => return,
                    r = ask => r,
                };
                if let Err(e) = result {
                    tracing::info!(partition = %change.tp, isr = ?change.new_isr, error = %e, "ISR change refused");
                    broker.replicas.isr_change_failed(&change.tp);
                }
            }
        })
    };
    let checker = {
        let broker = broker.clone();
        let mut shutdown = shutdown.clone();
        let lag = broker.config.replica_lag_time_max;
        tokio::spawn(async move {
            let every = (lag / 2).max(std::time::Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                broker.replicas.check_isr(lag.as_millis() as i64);
            }
        })
    };
    vec![sender, checker]
}
