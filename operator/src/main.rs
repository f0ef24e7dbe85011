//! `sluice-operator`: runs the controllers against the Kubernetes API server found the usual
//! way (in a pod: its service account; outside: `KUBECONFIG` or `~/.kube/config`), and serves
//! `/metrics`, `/health/live` and `/health/ready` on `--http`.

use sluice_broker::http::{Request, Response};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use sluice_broker::logging::LogFormat;
use sluice_operator::controller::{self, Context};
use sluice_operator::lease;
use sluice_operator::metrics::Metrics;

#[derive(Debug, Parser)]
#[command(version, about = "Sluice's Kubernetes operator")]
struct Args {
    /// Watch this namespace only (default: every namespace).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// The cluster's DNS domain, part of each broker's advertised name.
    #[arg(long, env = "KUBERNETES_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Address of the metrics and health endpoint.
    #[arg(long, env = "SLUICE_OPERATOR_HTTP", default_value = "0.0.0.0:8080")]
    http: String,
    /// Take part in leader election, so that one of several replicas acts at a time.
    #[arg(long, env = "SLUICE_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Log lines as text or JSON (`RUST_LOG` sets the levels, per module too).
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The namespace of the leader election Lease (in a pod: its own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
}

/// The Lease the operator's replicas share.
const LEASE: &str = "sluice-operator";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sluice_broker::logging::init(args.log_format, "info,kube=warn");
    let client = kube::Client::try_default().await.context("connecting to Kubernetes")?;
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(&args.http)
        .await
        .with_context(|| format!("binding --http {}", args.http))?;
    let (_stop_http, stop) = tokio::sync::watch::channel(false);
    let http_metrics = metrics.clone();
    tokio::spawn(sluice_broker::http::serve_routes(
        listener,
        move |req: &Request| match (req.method.as_str(), req.path().as_slice()) {
            ("GET", ["metrics"]) => Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                http_metrics.render().into_bytes(),
            ),
            ("GET", ["health", "live" | "ready"]) => Response::text(200, "ok\n"),
            _ => Response::not_found(),
        },
        stop,
    ));
    tracing::info!(namespace = ?args.namespace, http = %args.http, "sluice-operator started");
    let reporter = kube::runtime::events::Reporter {
        controller: sluice_operator::MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let identity = match std::env::var("POD_NAME") {
        Ok(pod) => pod,
        Err(_) => format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()),
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &args.lease_namespace);
    let lost = match args.leader_election {
        true => Some(lease::acquire(leases.clone(), LEASE, &identity).await),
        false => None,
    };
    let ctx = Arc::new(Context { client, domain: args.cluster_domain, metrics, reporter });
    let controllers = async {
        tokio::join!(
            controller::cluster::run(ctx.clone(), args.namespace.clone()),
            controller::topic::run(ctx, args.namespace),
        )
    };
    match lost {
        Some(lost) => tokio::select! {
            _ = controllers => lease::release(&leases, LEASE, &identity).await,
            why = lost => {
                // Another replica may act now: stop at once rather than race it.
                tracing::error!(%why, "lost leadership; exiting");
                std::process::exit(1);
            }
        },
        None => {
            controllers.await;
        }
    }
    tracing::info!("sluice-operator stopped");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "sluice-operator".into())
}
