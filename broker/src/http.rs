//! Admin HTTP endpoint: `/metrics` (Prometheus text), `/health/live`, `/health/ready` and
//! `/debug/metadata` (the applied metadata image as JSON).
//!
//! A deliberately small HTTP/1.1 server ([`serve_routes`], which the operator uses too): one
//! GET per connection, `Connection: close`. Readiness means the Kafka listener is accepting,
//! the metadata quorum has a leader and the controller has unfenced this broker.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::server::Broker;

/// An answer: status line, content type, body.
pub type Reply = (&'static str, &'static str, String);

/// Serves the broker's endpoints until `shutdown` changes.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    serve_routes(listener, move |method, path| route(&broker, method, path), shutdown).await
}

/// Serves GET requests with `route(method, path)` until `shutdown` changes (the operator's
/// `/metrics` and `/health` use it too).
pub async fn serve_routes<F>(listener: TcpListener, route: F, mut shutdown: watch::Receiver<bool>)
where
    F: Fn(&str, &str) -> Reply + Send + Sync + 'static,
{
    let route = Arc::new(route);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let route = route.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(10), handle(stream, &*route)).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn route(broker: &Broker, method: &str, path: &str) -> Reply {
    match (method, path) {
        ("GET", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", broker.render_metrics())
        }
        ("GET", "/health/live") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/health/ready") => {
            if broker.is_ready() {
                ("200 OK", "text/plain", "ready\n".to_string())
            } else {
                ("503 Service Unavailable", "text/plain", "not ready\n".to_string())
            }
        }
        // The committed metadata as this node applied it: tests compare nodes with it, and a
        // person can see what a broker believes.
        ("GET", "/debug/metadata") => {
            let image = broker.metadata.image();
            let body = serde_json::to_string_pretty(&*image).unwrap_or_default();
            ("200 OK", "application/json", body)
        }
        ("GET", _) => not_found(),
        _ => ("405 Method Not Allowed", "text/plain", "method not allowed\n".to_string()),
    }
}

/// The answer to a path nobody serves.
pub fn not_found() -> Reply {
    ("404 Not Found", "text/plain", "not found\n".to_string())
}

async fn handle<F>(mut stream: TcpStream, route: &F) -> std::io::Result<()>
where
    F: Fn(&str, &str) -> Reply,
{
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    // Read until the end of the request head (bodies are not accepted).
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || len == buf.len() {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = route(method, path);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
