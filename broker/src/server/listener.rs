//! Accept loop: one task per connection, at most `max.connections` at once, with back-off on
//! accept errors (e.g. out of file descriptors) instead of spinning. A connection task that
//! panics is a bug: it is logged at ERROR and counted (`sluice_panics_total{task}`), never
//! dropped silently.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{connection, Broker};
use crate::metrics::TaskLabels;

/// Accepts until shutdown, then waits for open connections to finish their current request.
pub async fn run(
    listener: TcpListener,
    name: Arc<str>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections.max(1)));
    let request_memory = (broker.config.queued_max_request_bytes > 0).then(|| {
        let bytes = usize::try_from(broker.config.queued_max_request_bytes).unwrap_or(usize::MAX);
        Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS)))
    });
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                let request_memory = request_memory.clone();
                let name = name.clone();
                // Every line a connection logs carries its peer, listener and client id.
                let span = tracing::info_span!(
                    "conn",
                    %peer,
                    listener = %name,
                    client = tracing::field::Empty
                );
                connections.spawn(
                    async move {
                        // Counted down on drop, so a panicking connection is not left counted.
                        let _open = OpenConnection::new(&broker, permit);
                        connection::serve(stream, peer, name, &broker, request_memory, shutdown)
                            .await;
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
        // Reap finished connection tasks so the set does not grow without bound.
        while let Some(done) = connections.try_join_next() {
            report_panic(&broker, done);
        }
    }
    drop(listener);
    while let Some(done) = connections.join_next().await {
        report_panic(&broker, done);
    }
}

fn report_panic(broker: &Broker, done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".into());
            tracing::error!(panic = %message, "a connection task panicked (a bug); connection closed");
            broker.metrics.panics.get_or_create(&TaskLabels { task: "connection" }).inc();
        }
    }
}

/// An open connection in the metrics and in `max.connections`, for as long as it lives.
struct OpenConnection<'a> {
    broker: &'a Broker,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<'a> OpenConnection<'a> {
    fn new(broker: &'a Broker, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        broker.metrics.connections.inc();
        broker.metrics.connections_total.inc();
        OpenConnection { broker, _permit: permit }
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.broker.metrics.connections.dec();
    }
}
