//! The broker process: start-up, the Kafka listener, and orderly shutdown.
//!
//! Layering follows mini-redis: [`listener`] accepts connections under a connection cap,
//! [`connection`] reads frames and answers each request in order, `crate::api` turns requests
//! into operations on partitions ([`crate::replica`]) and metadata ([`crate::metadata`]).
//! Shutdown is a `watch` broadcast: the listener stops accepting, connections finish the request
//! in hand, then logs are closed cleanly (clean-shutdown marker) and the quorum stops.

pub mod connection;
mod isr;
pub mod lag;
pub mod listener;
mod publisher;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::log::manager::{BackgroundHandle, LogManager, ManagerIntervals};
use crate::log::SystemClock;
use crate::metadata::{Endpoint, MetadataConfig, MetadataNode, VoterAddress};
use crate::metrics::Metrics;
use crate::replica::ReplicaManager;

/// How long a stopping broker waits for the controller to move its leaderships away.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of a running broker.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub logs: Arc<LogManager>,
    pub replicas: Arc<ReplicaManager>,
    /// Follower fetchers, one per leader broker.
    pub fetchers: Arc<crate::replica::fetcher::FetcherManager>,
    pub metadata: MetadataNode,
    pub metrics: Metrics,
    /// Producer ids for InitProducerId, from blocks allocated through the quorum.
    pub producer_ids: crate::api::init_producer_id::ProducerIdAllocator,
    /// Consumer groups and committed offsets (`__consumer_offsets`).
    pub groups: Arc<crate::group::GroupCoordinator>,
    /// High watermarks of partitions not hosted here, for consumer lag.
    pub remote_hw: lag::RemoteHighWatermarks,
    /// Fetch sessions (KIP-227).
    pub fetch_sessions: std::sync::Mutex<crate::api::fetch_session::SessionCache>,
    /// The web console's sampled sizes, rates and lag history.
    pub console: crate::console::ConsoleState,
    ready: AtomicBool,
}

impl Broker {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Ready: accepting Kafka connections, with a running metadata quorum that has a leader.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
            && self.metadata.raft_alive()
            && !self.metadata.storage_stalled()
            && self.logs.dir_failing().is_none()
            && self.metadata.raft_metrics().1.is_some()
            && !self.metadata.is_fenced()
    }

    pub fn render_metrics(&self) -> String {
        self.metrics.render(crate::metrics::Scrape {
            replicas: &self.replicas,
            metadata: &self.metadata,
            groups: &self.groups,
            remote_hw: self.remote_hw.snapshot(),
            data_dir: &self.config.data_dir,
            fetch_sessions: {
                let cache = self.fetch_sessions.lock().unwrap_or_else(|e| e.into_inner());
                let (sessions, partitions) = cache.size();
                (sessions, partitions, cache.evictions)
            },
        })
    }
}

/// Whether peers reach an admin listener bound to `ip` at this broker's inter-broker `host`:
/// it listens everywhere, or on that very address, or both are loopback. Only then is its port
/// registered (the console asks peers on it); otherwise peers would knock on a closed door.
fn admin_reachable(ip: std::net::IpAddr, host: &str) -> bool {
    let host_ip = if host.eq_ignore_ascii_case("localhost") {
        Some(std::net::IpAddr::from([127, 0, 0, 1]))
    } else {
        host.trim_matches(|c| c == '[' || c == ']').parse().ok()
    };
    ip.is_unspecified()
        || host_ip == Some(ip)
        || (ip.is_loopback() && host_ip.is_some_and(|h| h.is_loopback()))
}

/// A started broker: its addresses and the means to stop it.
#[derive(Debug)]
pub struct RunningBroker {
    /// The first client listener's bound address (none on a controller-only node).
    pub kafka_addr: Option<SocketAddr>,
    /// Every client listener: name and bound address.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The controller listener's bound address, when this node serves one.
    pub controller_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    background: Option<BackgroundHandle>,
}

/// Starts a broker: opens the data directory, the metadata quorum and both listeners.
pub async fn start(config: BrokerConfig) -> anyhow::Result<RunningBroker> {
    let never = std::future::pending::<()>();
    let started = start_unless_stopped(config, std::pin::pin!(never)).await?;
    Ok(started.expect("start-up is not stopped without a stop signal"))
}

/// [`start`], except that `stop` resolving while the node waits for its metadata quorum (a
/// cluster node waits as long as it takes) ends start-up: the logs are closed cleanly and the
/// answer is `None`.
pub async fn start_unless_stopped(
    mut config: BrokerConfig,
    mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<Option<RunningBroker>> {
    config.net.resolve_roles(config.node_id);
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let mut client_listeners = Vec::new();
    for spec in config.net.client_listeners() {
        let listener = TcpListener::bind(spec.bind_addr())
            .await
            .with_context(|| format!("binding listener {} on {}", spec.name, spec.bind_addr()))?;
        let bound = listener.local_addr()?;
        let (host, port) = config.net.advertised_for(spec, bound.port());
        let endpoint = Endpoint { name: spec.name.clone(), host, port };
        client_listeners.push((listener, bound, endpoint));
    }
    let controller_listener = match config.net.controller_listener() {
        Some(spec) => Some(TcpListener::bind(spec.bind_addr()).await.with_context(|| {
            format!("binding the controller listener {} on {}", spec.name, spec.bind_addr())
        })?),
        None => None,
    };
    let controller_addr = controller_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener {}", config.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let endpoints: Vec<Endpoint> = client_listeners.iter().map(|(_, _, e)| e.clone()).collect();
    // A controller-only node registers no endpoint; the controller listener stands in.
    let inter_broker = config
        .net
        .inter_broker_listener()
        .and_then(|name| endpoints.iter().find(|e| e.name == name))
        .or(endpoints.first())
        .cloned()
        .or_else(|| {
            let addr = controller_addr?;
            Some(Endpoint { name: String::new(), host: addr.ip().to_string(), port: addr.port() })
        })
        .context("no client listener and no controller listener")?;
    let kafka_addr = client_listeners.first().map(|(_, addr, _)| *addr);

    let defaults = config.log_defaults.clone();
    let data_dir = config.data_dir.clone();
    let (logs, reports) = {
        let defaults = defaults.clone();
        tokio::task::spawn_blocking(move || {
            LogManager::open(&data_dir, defaults.clone(), Arc::new(SystemClock), |_| {
                defaults.clone()
            })
        })
        .await??
    };
    let recovered: u64 = reports.iter().map(|(_, r)| r.bytes_truncated).sum();
    tracing::info!(
        logs = reports.len(),
        clean = logs.had_clean_shutdown(),
        bytes_truncated = recovered,
        "opened data directory"
    );
    if !config.without_effect.is_empty() {
        let keys: Vec<&str> = config.without_effect.keys().map(String::as_str).collect();
        tracing::info!(
            keys = %keys.join(", "),
            "Kafka settings accepted for compatibility that have no effect in Sluice"
        );
    }
    let logs = Arc::new(logs);

    let metadata_config = MetadataConfig {
        node_id: config.node_id,
        data_dir: config.data_dir.clone(),
        cluster_id: config.cluster_id.clone(),
        host: inter_broker.host.clone(),
        port: inter_broker.port,
        listeners: endpoints,
        admin_port: admin_reachable(admin_addr.ip(), &inter_broker.host)
            .then_some(admin_addr.port()),
        voters: config
            .net
            .voters
            .iter()
            .map(|v| VoterAddress { id: v.id, host: v.host.clone(), port: v.port })
            .collect(),
        controller_port: config
            .net
            .controller_listener()
            .zip(controller_addr)
            .map(|(spec, bound)| config.net.advertised_for(spec, bound.port()).1),
        voter: config.net.roles.controller,
        broker: config.net.roles.broker,
        heartbeat_interval: config.broker_heartbeat_interval,
        session_timeout: config.broker_session_timeout,
        rebalance_interval: config
            .auto_leader_rebalance
            .then_some(config.leader_imbalance_check_interval),
        rack: config.rack.clone(),
        defaults: defaults.clone(),
        num_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
    };
    let metadata = tokio::select! {
        m = MetadataNode::start_with_listener(metadata_config, controller_listener) => {
            m.context("starting the metadata quorum")?
        }
        _ = stop.as_mut() => {
            tracing::info!("stopped while starting");
            tokio::task::spawn_blocking(move || logs.shutdown()).await??;
            return Ok(None);
        }
    };

    let replicas =
        Arc::new(ReplicaManager::new(config.node_id, logs.clone(), defaults).with_throttle_rates(
            config.leader_replication_throttled_rate,
            config.follower_replication_throttled_rate,
        ));
    let groups = crate::group::GroupCoordinator::new(
        config.groups.clone(),
        config.node_id,
        replicas.clone(),
        metadata.clone(),
    );
    let fetchers =
        Arc::new(crate::replica::fetcher::FetcherManager::new(config.node_id, replicas.clone()));
    publisher::publish(&metadata.image(), &metadata, &replicas, &fetchers, &groups)
        .context("loading partitions from metadata")?;

    let background = logs.start_background(ManagerIntervals {
        retention_check: config.retention_check_interval,
        producer_id_expiration: config.producer_id_expiration,
        producer_id_expiration_check: config.producer_id_expiration_check,
        ..ManagerIntervals::default()
    });
    let metrics = Metrics::new(config.metrics_series_max, logs.flush_latency().clone());
    // Series that count events exist at zero from the start, so that their names are on
    // /metrics (dashboards and alerts find them) before the first event.
    let _ = metrics.panics.get_or_create(&crate::metrics::TaskLabels { task: "connection" });
    for reason in connection::FrameError::REASONS {
        let _ = metrics.connections_closed.get_or_create(&crate::metrics::ReasonLabels { reason });
    }
    for (api, _, _) in crate::api::SUPPORTED {
        let labels = crate::metrics::ApiLabels { api: crate::api::name(*api) };
        let _ = metrics.request_errors.get_or_create(&labels);
    }
    let fetch_sessions = std::sync::Mutex::new(crate::api::fetch_session::SessionCache::new(
        config.fetch_session_slots,
    ));
    let broker = Arc::new(Broker {
        config,
        logs,
        replicas,
        fetchers,
        metadata,
        metrics,
        producer_ids: Default::default(),
        groups,
        remote_hw: Default::default(),
        fetch_sessions,
        console: Default::default(),
        ready: AtomicBool::new(false),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = isr::start(&broker, &shutdown_rx);
    tasks.extend([
        tokio::spawn(publisher::run(broker.clone(), shutdown_rx.clone())),
        broker.groups.start(shutdown_rx.clone()),
        tokio::spawn(crate::http::serve(admin_listener, broker.clone(), shutdown_rx.clone())),
        tokio::spawn(lag::run(broker.clone(), shutdown_rx.clone())),
        tokio::spawn(crate::console::run(broker.clone(), shutdown_rx.clone())),
    ]);
    // The publisher runs meanwhile: metadata changes (and heartbeats, which report how far they
    // are published) do not wait for the groups to load.
    if !broker.groups.wait_loaded(Duration::from_secs(60)).await {
        tracing::warn!("group coordinator partitions still loading after 60 s");
    }
    let mut listeners = Vec::new();
    for (listener, bound, endpoint) in client_listeners {
        listeners.push((endpoint.name.clone(), bound));
        let name: Arc<str> = endpoint.name.into();
        tasks.push(tokio::spawn(listener::run(
            listener,
            name,
            broker.clone(),
            shutdown_rx.clone(),
        )));
    }
    broker.ready.store(true, Ordering::SeqCst);
    tracing::info!(?kafka_addr, %admin_addr, node_id = broker.node_id(), "broker started");
    Ok(Some(RunningBroker {
        kafka_addr,
        listeners,
        controller_addr,
        admin_addr,
        broker,
        shutdown,
        tasks,
        background: Some(background),
    }))
}

impl RunningBroker {
    /// Stops accepting, lets connections finish the request in hand, closes every log cleanly
    /// (writing the clean-shutdown marker) and stops the metadata quorum.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        self.broker.ready.store(false, Ordering::SeqCst);
        // Controlled shutdown: the controller moves this broker's leaderships away first, and
        // the publisher applies that, so clients move on before the listeners close.
        if self.broker.metadata.controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT).await {
            tracing::info!("controlled shutdown: leaderships moved");
        }
        let _ = self.shutdown.send(true);
        // Parked JoinGroup/SyncGroup requests end now, so connections can finish.
        self.broker.groups.shutdown();
        self.broker.fetchers.shutdown();
        for task in self.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(30), task).await.is_err() {
                tracing::warn!("a server task did not stop within 30 s");
            }
        }
        if let Some(bg) = self.background.take() {
            tokio::task::spawn_blocking(move || bg.stop()).await?;
        }
        let logs = self.broker.logs.clone();
        tokio::task::spawn_blocking(move || logs.shutdown()).await??;
        self.broker.metadata.shutdown().await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Runs a broker until `stop` resolves, then shuts it down cleanly.
pub async fn run(
    config: BrokerConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut stop = std::pin::pin!(stop);
    let Some(running) = start_unless_stopped(config, stop.as_mut()).await? else {
        return Ok(());
    };
    // Machine-readable line for scripts and tests that start the binary on port 0.
    let mut line = String::from("sluice ready");
    if let Some(addr) = running.kafka_addr {
        line.push_str(&format!(" kafka={addr}"));
    }
    line.push_str(&format!(" admin={}", running.admin_addr));
    if let Some(addr) = running.controller_addr {
        line.push_str(&format!(" controller={addr}"));
    }
    for (name, addr) in &running.listeners {
        line.push_str(&format!(" listener.{name}={addr}"));
    }
    println!("{line}");
    stop.await;
    running.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::admin_reachable;

    #[test]
    fn the_admin_port_is_registered_only_where_peers_reach_it() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(admin_reachable(ip("0.0.0.0"), "broker-0.brokers.ns.svc"));
        assert!(admin_reachable(ip("::"), "10.0.0.7"));
        assert!(admin_reachable(ip("127.0.0.1"), "127.0.0.1"));
        assert!(admin_reachable(ip("127.0.0.1"), "localhost"));
        assert!(admin_reachable(ip("10.0.0.7"), "10.0.0.7"));
        assert!(!admin_reachable(ip("127.0.0.1"), "broker-0.example"));
        assert!(!admin_reachable(ip("127.0.0.1"), "10.0.0.7"));
        assert!(!admin_reachable(ip("10.0.0.8"), "10.0.0.7"));
    }
}
