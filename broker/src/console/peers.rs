//! Asking other brokers' admin servers for what only they hold (`/api/v1/local/*`).
//!
//! A plain HTTP/1.1 GET per question over a new connection (the server answers one request per
//! connection), bounded by [`TIMEOUT`]; the questions to different brokers go out at once. A
//! broker that registered no admin port, or does not answer in time, is reported as
//! unavailable and the page is served without its part.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{error, ConsoleError};
use crate::metadata::ClusterImage;

/// How long a peer gets to answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes of a peer's answer.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// `GET path` on broker `id`'s admin server: its JSON answer, 200 or not.
pub async fn get_any(image: &ClusterImage, id: i32, path: &str) -> Result<(u16, Value), String> {
    let addr = image.brokers.get(&id).and_then(|b| b.admin_addr());
    let addr = addr.ok_or("registered no admin port")?;
    match tokio::time::timeout(TIMEOUT, get_at(&addr, path)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer from {addr} within {TIMEOUT:?}")),
    }
}

/// `GET path` on broker `id`'s admin server, answered 200 with JSON.
pub async fn get(image: &ClusterImage, id: i32, path: &str) -> Result<Value, String> {
    match get_any(image, id, path).await? {
        (200, v) => Ok(v),
        (status, v) => Err(format!("broker {id} answered {status} to {path}: {v}")),
    }
}

async fn get_at(addr: &str, path: &str) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("{addr}: {e}"))?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER as u64 + 1)
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr}: answer without a head"))?;
    let status = std::str::from_utf8(&answer[..at])
        .ok()
        .and_then(|head| head.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}: answer without a status"))?;
    let body = serde_json::from_slice(&answer[at + 4..])
        .map_err(|e| format!("{addr} answered {status} to {path}, not JSON: {e}"))?;
    Ok((status, body))
}

/// `GET path` on every broker of `ids` at once: the answers by id, and the ids that gave none.
pub async fn get_all(
    image: &ClusterImage,
    ids: impl IntoIterator<Item = (i32, String)>,
) -> (Vec<(i32, Value)>, Vec<i32>) {
    let asks = ids.into_iter().map(|(id, path)| async move { (id, get(image, id, &path).await) });
    let mut answers = Vec::new();
    let mut unavailable = Vec::new();
    for (id, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok(v) => answers.push((id, v)),
            Err(e) => {
                tracing::debug!(broker = id, error = %e, "console: peer did not answer");
                unavailable.push(id);
            }
        }
    }
    unavailable.sort_unstable();
    (answers, unavailable)
}

/// `GET path` on broker `id`, which owns the answer (`who`: "the leader", "the coordinator"):
/// its answer marked as served by `served_by`, its own error passed on, or `unreachable` (a
/// Kafka error name) when it gave none.
pub async fn forward(
    image: &ClusterImage,
    id: i32,
    path: &str,
    served_by: i32,
    who: &str,
    unreachable: &str,
) -> Result<Value, ConsoleError> {
    match get_any(image, id, path).await {
        Ok((200, mut v)) if v.is_object() => {
            v["served_by"] = serde_json::json!(served_by);
            Ok(v)
        }
        Ok((status, v)) if v["error"].is_string() => Err(error(
            status,
            v["error"].as_str().unwrap_or_default(),
            v["message"].as_str().unwrap_or_default(),
        )),
        Ok((status, v)) => {
            Err(error(502, unreachable, format!("{who}, broker {id}, answered {status}: {v}")))
        }
        Err(e) => Err(error(502, unreachable, format!("{who}, broker {id}, did not answer: {e}"))),
    }
}
