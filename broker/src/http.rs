//! Admin HTTP endpoint: `/metrics` (Prometheus text), `/health/live`, `/health/ready`,
//! `/debug/metadata` (the applied metadata image as JSON) and the web console with its JSON API
//! (`crate::console`).
//!
//! A deliberately small HTTP/1.1 server: one request per connection, `Connection: close`, a
//! head of at most [`MAX_HEAD`] bytes and a `Content-Length` body of at most [`MAX_BODY`]. A
//! request must arrive within [`READ_TIMEOUT`] and is answered within [`ANSWER_TIMEOUT`]; at
//! most [`MAX_CONNECTIONS`] are open at once (more are closed at once), and at most
//! [`MAX_CONSOLE`] console requests run at once (more are answered 503), so that slow or many
//! clients never keep `/health` and `/metrics` from answering. The operator serves its
//! `/metrics` and `/health` through [`serve_routes`]. Readiness means the Kafka listener is
//! accepting, the metadata quorum has a leader and the controller has unfenced this broker.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::server::Broker;

/// Most bytes of a request line and headers.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most bytes of a request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Connections open at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 512;
/// Console requests (`/`, `/assets`, `/api`) served at once; more are answered 503.
pub const MAX_CONSOLE: usize = 32;
/// Time a client gets to send its whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a request gets to be answered (an action waits for the controller, leaders and a
/// coordinator).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed request. Path and query are percent-decoded; header names are lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path's segments, each decoded on its own (so `%2F` stays inside a segment).
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of query parameter `key`.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The path's segments as `&str`s, for matching.
    pub fn path(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Cow<'static, [u8]>,
}

impl Response {
    pub fn new(
        status: u16,
        content_type: &'static str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Self {
        Response { status, content_type, headers: Vec::new(), body: body.into() }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status, "text/plain; charset=utf-8", body.into().into_bytes())
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Response::new(status, "application/json", body).with_header("Cache-Control", "no-store")
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn not_found() -> Self {
        Response::text(404, "not found\n")
    }
}

/// The reason phrase of the status codes this server answers with.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    }
}

type Handler = Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// Serves the broker's endpoints until `shutdown` changes.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let console = Arc::new(Semaphore::new(MAX_CONSOLE));
    let handler: Handler = Arc::new(move |req| {
        let (broker, console) = (broker.clone(), console.clone());
        Box::pin(async move { route(&broker, &console, req).await })
    });
    serve_with(listener, handler, shutdown).await
}

/// Serves requests with `route` until `shutdown` changes (the operator's `/metrics` and
/// `/health`).
pub async fn serve_routes<F>(listener: TcpListener, route: F, shutdown: watch::Receiver<bool>)
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    let handler: Handler = Arc::new(move |req| Box::pin(std::future::ready(route(&req))));
    serve_with(listener, handler, shutdown).await
}

async fn serve_with(listener: TcpListener, handler: Handler, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Over the cap the connection closes unanswered, at once.
                    let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let _ = handle(stream, &handler).await;
                        drop(permit);
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

async fn route(broker: &Arc<Broker>, console: &Arc<Semaphore>, req: Request) -> Response {
    let path = req.path();
    match (req.method.as_str(), path.as_slice()) {
        ("GET", ["metrics"]) => Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            broker.render_metrics().into_bytes(),
        ),
        ("GET", ["health", "live"]) => Response::text(200, "ok\n"),
        ("GET", ["health", "ready"]) => {
            if broker.is_ready() {
                Response::text(200, "ready\n")
            } else {
                Response::text(503, "not ready\n")
            }
        }
        // The committed metadata as this node applied it: tests compare nodes with it, and a
        // person can see what a broker believes.
        ("GET", ["debug", "metadata"]) => {
            let image = broker.metadata.image();
            let body = serde_json::to_vec_pretty(&*image).unwrap_or_default();
            Response::new(200, "application/json", body)
        }
        _ => match console.clone().try_acquire_owned() {
            Ok(_slot) => crate::console::route(broker, &req).await,
            Err(_) => Response::text(503, "the console is busy: try again\n")
                .with_header("Retry-After", "1"),
        },
    }
}

/// Why a request could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The connection closed before a whole request arrived.
    Closed,
    /// The request did not arrive within [`READ_TIMEOUT`].
    TimedOut,
    Malformed(&'static str),
    HeadTooLarge,
    BodyTooLarge,
}

impl ParseError {
    fn response(&self) -> Option<Response> {
        match self {
            ParseError::Closed => None,
            ParseError::TimedOut => Some(Response::text(408, "request not received in time\n")),
            ParseError::Malformed(why) => Some(Response::text(400, format!("{why}\n"))),
            ParseError::HeadTooLarge => Some(Response::text(431, "request head too large\n")),
            ParseError::BodyTooLarge => {
                Some(Response::text(413, format!("request body over {MAX_BODY} bytes\n")))
            }
        }
    }
}

async fn handle(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let request = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Ok(r) => r,
        Err(_) => Err(ParseError::TimedOut),
    };
    let response = match request {
        Ok(req) => match tokio::time::timeout(ANSWER_TIMEOUT, handler(req)).await {
            Ok(r) => r,
            Err(_) => Response::text(504, "no answer in time\n"),
        },
        Err(e) => match e.response() {
            Some(r) => {
                let written = tokio::time::timeout(READ_TIMEOUT, write_response(&mut stream, &r));
                let _ = written.await;
                let _ = stream.shutdown().await;
                // What the client still sends is read and dropped (for a moment, a bounded
                // amount): closing with unread bytes would reset the connection and lose the
                // answer.
                let mut rest = (&mut stream).take(1 << 20);
                let mut sink = tokio::io::sink();
                let drain = tokio::io::copy(&mut rest, &mut sink);
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                return Ok(());
            }
            None => return Ok(()),
        },
    };
    tokio::time::timeout(ANSWER_TIMEOUT, write_response(&mut stream, &response))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    stream.shutdown().await
}

async fn write_response(stream: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&r.body).await
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, ParseError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return Err(ParseError::HeadTooLarge);
        }
        let n = stream.read(&mut chunk).await.map_err(|_| ParseError::Closed)?;
        if n == 0 {
            return Err(ParseError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(ParseError::HeadTooLarge);
    }
    let mut req = parse_head(&buf[..head_end])?;
    let length = match req.header("content-length") {
        Some(v) => {
            v.trim().parse::<usize>().map_err(|_| ParseError::Malformed("bad Content-Length"))?
        }
        None => 0,
    };
    if req.header("transfer-encoding").is_some() {
        return Err(ParseError::Malformed("chunked bodies are not accepted; send Content-Length"));
    }
    if length > MAX_BODY {
        return Err(ParseError::BodyTooLarge);
    }
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut chunk).await.map_err(|_| ParseError::Closed)?;
        if n == 0 {
            return Err(ParseError::Closed);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    req.body = body;
    Ok(req)
}

/// Parses a request line and headers (without the blank line that ends them).
pub fn parse_head(head: &[u8]) -> Result<Request, ParseError> {
    let head = std::str::from_utf8(head)
        .map_err(|_| ParseError::Malformed("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed("bad request line"));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Err(ParseError::Malformed("bad request line"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with('/') {
        return Err(ParseError::Malformed("the request target must be a path"));
    }
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect::<Option<Vec<_>>>()
        .ok_or(ParseError::Malformed("bad percent-encoding in the path"))?;
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(ParseError::Malformed("bad percent-encoding in the query"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ParseError::Malformed("bad header line"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Request { method: method.to_string(), segments, query, headers, body: Vec::new() })
}

/// Decodes `%XX` escapes (and `+` as a space in a query); `None` for a bad escape or bytes
/// that are not UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_query_and_headers() {
        let req = parse_head(
            b"GET /api/v1/groups/a%2Fb%20c?after=x%3Dy&limit=5&flag HTTP/1.1\r\nHost: h\r\nX-Sluice-Console:  1 ",
        )
        .unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path(), ["api", "v1", "groups", "a/b c"]);
        assert_eq!(req.query("after"), Some("x=y"));
        assert_eq!(req.query("limit"), Some("5"));
        assert_eq!(req.query("flag"), Some(""));
        assert_eq!(req.query("none"), None);
        assert_eq!(req.header("x-sluice-console"), Some("1"));
        assert_eq!(req.header("host"), Some("h"));
    }

    #[test]
    fn rejects_malformed_heads() {
        for head in [
            &b"GET"[..],
            b"GET /x",
            b"GET x HTTP/1.1",
            b"GET /x HTTP/2 extra",
            b"GET /%zz HTTP/1.1",
            b"GET /x?a=%f HTTP/1.1",
            b"GET /%+5 HTTP/1.1",
            b"GET /%ff HTTP/1.1",
            b"GET /x HTTP/1.1\r\nno colon",
            b"GET /x SPDY/3",
        ] {
            assert!(
                matches!(parse_head(head), Err(ParseError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn root_has_no_segments_and_plus_is_a_space_only_in_queries() {
        let req = parse_head(b"GET /a+b/?q=c+d HTTP/1.0").unwrap();
        assert_eq!(req.path(), ["a+b"]);
        assert_eq!(req.query("q"), Some("c d"));
        assert!(parse_head(b"GET / HTTP/1.1").unwrap().segments.is_empty());
    }

    async fn exchange(request: &[u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, stop_rx) = watch::channel(false);
        let handler: Handler = Arc::new(|req: Request| {
            let body =
                format!("{} {:?} {}", req.method, req.segments, String::from_utf8_lossy(&req.body));
            Box::pin(std::future::ready(Response::text(200, body)))
        });
        tokio::spawn(serve_with(listener, handler, stop_rx));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn reads_bodies_by_content_length_and_caps_them() {
        let got = exchange(b"POST /a/b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.ends_with("POST [\"a\", \"b\"] hello"), "{got}");
        let big = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        let got = exchange(big.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 413 "), "{got}");
        let got = exchange(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD + 1000));
        let got = exchange(huge.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
    }
}
