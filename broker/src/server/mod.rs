//! The broker process: start-up, the Kafka listener, and orderly shutdown.
//!
//! Layering follows mini-redis: [`listener`] accepts connections under a connection cap,
//! [`connection`] reads frames and answers each request in order, `crate::api` turns requests
//! into operations on partitions ([`crate::replica`]) and metadata ([`crate::metadata`]).
//! Shutdown is a `watch` broadcast: the listener stops accepting, connections finish the request
//! in hand, then logs are closed cleanly (clean-shutdown marker) and the quorum stops.

pub mod connection;
pub mod listener;

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
use crate::metadata::{MetadataConfig, MetadataNode};
use crate::metrics::Metrics;
use crate::replica::ReplicaManager;

/// Shared state of a running broker.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// Host and port this broker gives to clients.
    pub advertised: (String, u16),
    pub logs: Arc<LogManager>,
    pub replicas: Arc<ReplicaManager>,
    pub metadata: MetadataNode,
    pub metrics: Metrics,
    /// Producer ids for InitProducerId, from blocks allocated through the quorum.
    pub producer_ids: crate::api::init_producer_id::ProducerIdAllocator,
    /// Consumer groups and committed offsets (`__consumer_offsets`).
    pub groups: Arc<crate::group::GroupCoordinator>,
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
    }

    pub fn render_metrics(&self) -> String {
        self.metrics.set_groups(&self.groups.snapshots(), &self.replicas);
        self.metrics.raft_alive.set(i64::from(self.metadata.raft_alive()));
        self.metrics.metadata_storage_stalled.set(i64::from(self.metadata.storage_stalled()));
        self.metrics.log_dir_failing.set(i64::from(self.logs.dir_failing().is_some()));
        self.metrics.render(&self.replicas, self.metadata.raft_metrics())
    }
}

/// A started broker: its addresses and the means to stop it.
#[derive(Debug)]
pub struct RunningBroker {
    pub kafka_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    background: Option<BackgroundHandle>,
}

/// Starts a broker: opens the data directory, the metadata quorum and both listeners.
pub async fn start(config: BrokerConfig) -> anyhow::Result<RunningBroker> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let kafka_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the Kafka listener {}", config.listen))?;
    let kafka_addr = kafka_listener.local_addr()?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener {}", config.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let advertised = config
        .advertised
        .clone()
        .unwrap_or_else(|| (kafka_addr.ip().to_string(), kafka_addr.port()));

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

    let metadata = MetadataNode::start(MetadataConfig {
        node_id: config.node_id,
        data_dir: config.data_dir.clone(),
        cluster_id: config.cluster_id.clone(),
        host: advertised.0.clone(),
        port: advertised.1,
        rack: config.rack.clone(),
        defaults: defaults.clone(),
        num_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
    })
    .await
    .context("starting the metadata quorum")?;

    let replicas = Arc::new(ReplicaManager::new(config.node_id, logs.clone(), defaults));
    replicas.reconcile(&metadata.image()).context("loading partitions from metadata")?;
    let groups = crate::group::GroupCoordinator::new(
        config.groups.clone(),
        config.node_id,
        replicas.clone(),
        metadata.clone(),
    );
    groups.sync_partitions(&metadata.image());
    if !groups.wait_loaded(Duration::from_secs(60)).await {
        tracing::warn!("group coordinator partitions still loading after 60 s");
    }

    let background = logs.start_background(ManagerIntervals {
        retention_check: config.retention_check_interval,
        producer_id_expiration: config.producer_id_expiration,
        producer_id_expiration_check: config.producer_id_expiration_check,
        ..ManagerIntervals::default()
    });
    let broker = Arc::new(Broker {
        config,
        advertised,
        logs,
        replicas,
        metadata,
        metrics: Metrics::new(),
        producer_ids: Default::default(),
        groups,
        ready: AtomicBool::new(false),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(reconcile_on_change(broker.clone(), shutdown_rx.clone())),
        broker.groups.start(shutdown_rx.clone()),
        tokio::spawn(crate::http::serve(admin_listener, broker.clone(), shutdown_rx.clone())),
        tokio::spawn(listener::run(kafka_listener, broker.clone(), shutdown_rx)),
    ];
    broker.ready.store(true, Ordering::SeqCst);
    tracing::info!(%kafka_addr, %admin_addr, node_id = broker.node_id(), "broker started");
    Ok(RunningBroker {
        kafka_addr,
        admin_addr,
        broker,
        shutdown,
        tasks,
        background: Some(background),
    })
}

/// Applies every new metadata image to the hosted partitions.
async fn reconcile_on_change(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut images = broker.metadata.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
                let image = images.borrow_and_update().clone();
                if let Err(e) = broker.replicas.reconcile(&image) {
                    tracing::error!(error = %e, "applying metadata to partitions failed");
                }
                broker.groups.sync_partitions(&image);
            }
        }
    }
}

impl RunningBroker {
    /// Stops accepting, lets connections finish the request in hand, closes every log cleanly
    /// (writing the clean-shutdown marker) and stops the metadata quorum.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        self.broker.ready.store(false, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        // Parked JoinGroup/SyncGroup requests end now, so connections can finish.
        self.broker.groups.shutdown();
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
    let running = start(config).await?;
    // Machine-readable line for scripts and tests that start the binary on port 0.
    println!("sluice ready kafka={} admin={}", running.kafka_addr, running.admin_addr);
    stop.await;
    running.shutdown().await
}
