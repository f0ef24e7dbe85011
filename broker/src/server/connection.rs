//! One client connection: size-prefixed frames in, responses out in request order.
//!
//! Produce requests pipeline: each is appended in arrival order as soon as it is read, and while
//! an acks=all produce waits for its in-sync replicas the connection reads and appends the next
//! ones (up to [`MAX_IN_FLIGHT`]); answers go out in request order. That keeps produce order per
//! connection (Kafka keeps it by handling one request at a time, which makes a client's five
//! in-flight acks=all batches wait for replication one after the other). Every other request
//! runs alone: it starts once the produces before it are answered, and the next frame is read
//! after its answer is written. A produce whose answer closes the connection (a bad frame, a
//! failed acks=0 write) stops the reading: the produces before it are answered, then it closes. A frame that is negative, larger than `socket.request.max.bytes`,
//! truncated, or that does not decode closes this connection only (with a rate-limited log line
//! and a `connections_closed{reason}` count); every other connection keeps being served.
//!
//! Memory follows what clients send, not what they declare: an idle connection holds no buffer
//! (one is reserved once the socket is readable, and dropped when it is empty again); a frame's
//! buffer grows with the bytes that arrive (at most twice what was received, plus one 16 KiB
//! read chunk), never to its declared size up front; and with `queued.max.request.bytes` set,
//! the frames being read or handled on all connections together stay under that bound (a
//! connection waits to read its next frame until there is room, as Kafka mutes a channel).
//! Responses are written straight from their encoded buffer, without a write buffer; a Fetch
//! response's record sets go from the log files to the socket ([`crate::zero_copy`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures::stream::{FuturesOrdered, StreamExt};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

use super::Broker;
use crate::api;
use crate::zero_copy::{self, Part};

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative or above socket.request.max.bytes {1}")]
    Size(i32, usize),
    #[error("frame of {0} bytes is too short for a request header")]
    Short(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {1} of API {0:?}")]
    UnsupportedVersion(ApiKey, i16),
    #[error("malformed {0:?} request: {1}")]
    Malformed(ApiKey, String),
    #[error("cannot encode the {0:?} response: {1}")]
    Encode(ApiKey, String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A request without a response failed; closing is how the client learns of it.
    #[error("{0}")]
    Unanswerable(String),
    /// A log file shrank while a response was sending it (a follower truncating): the rest of
    /// the frame cannot be sent.
    #[error("response cut short: {0}")]
    FileTruncated(std::io::Error),
}

impl FrameError {
    /// The API of the request that failed as a whole, where one was identified.
    fn api(&self) -> Option<ApiKey> {
        match self {
            FrameError::UnsupportedVersion(api, _)
            | FrameError::Malformed(api, _)
            | FrameError::Encode(api, _) => Some(*api),
            FrameError::Unanswerable(_) => Some(ApiKey::Produce),
            _ => None,
        }
    }

    /// Every reason a connection is closed for, in `sluice_connections_closed_total`.
    pub const REASONS: &'static [&'static str] = &[
        "idle",
        "frame_size",
        "short_frame",
        "unknown_api",
        "unsupported_version",
        "malformed_request",
        "encode_error",
        "io_error",
        "acks0_produce_error",
        "file_truncated",
    ];

    fn reason(&self) -> &'static str {
        match self {
            FrameError::Size(..) => "frame_size",
            FrameError::Short(_) => "short_frame",
            FrameError::UnknownApi(_) => "unknown_api",
            FrameError::UnsupportedVersion(..) => "unsupported_version",
            FrameError::Malformed(..) => "malformed_request",
            FrameError::Encode(..) => "encode_error",
            FrameError::Io(_) => "io_error",
            FrameError::Unanswerable(_) => "acks0_produce_error",
            FrameError::FileTruncated(_) => "file_truncated",
        }
    }
}

tokio::task_local! {
    /// The client address of the request being handled: JoinGroup records it as the member's
    /// host (DescribeGroups shows it), without threading it through every handler.
    pub static PEER: SocketAddr;
    /// The name of the listener the request came in on: Metadata, FindCoordinator and
    /// DescribeCluster answer with the endpoints of that listener, as Kafka does.
    static LISTENER: Arc<str>;
}

/// The listener of the request being handled (`PLAINTEXT` outside a connection, in tests).
pub fn current_listener() -> Arc<str> {
    LISTENER.try_with(Arc::clone).unwrap_or_else(|_| Arc::from("PLAINTEXT"))
}

/// Serves one connection until the client closes it, it errs, idles out, or shutdown.
/// `request_memory` is the `queued.max.request.bytes` pool shared by all connections.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    broker: &Broker,
    request_memory: Option<Arc<Semaphore>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (rd, mut wr) = stream.into_split();
    let frames = FrameReader {
        rd,
        buf: BytesMut::new(),
        max: broker.config.socket_request_max_bytes,
        pool: request_memory,
        used: broker.metrics.request_memory_used.clone(),
    };
    let idle = broker.config.connections_max_idle;
    // Produces appended and waiting for their answer, oldest first.
    let mut inflight: FuturesOrdered<Request<'_>> = FuturesOrdered::new();
    // The frame being read; kept across loop turns, as a partly read frame must not be dropped
    // when an in-flight produce completes first.
    let mut reading: Option<Pin<Box<dyn Future<Output = ReadResult> + Send + '_>>> = None;
    let mut frames = Some(frames);
    // A queued answer closes the connection: nothing after it is read (Kafka stops there too).
    let mut closing = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if closing && inflight.is_empty() {
            break;
        }
        if reading.is_none() && !closing && inflight.len() < MAX_IN_FLIGHT {
            if let Some(mut reader) = frames.take() {
                reading = Some(Box::pin(async move {
                    let r = tokio::time::timeout(idle, reader.next()).await;
                    (r, reader)
                }));
            }
        }
        let read = tokio::select! {
            _ = shutdown.changed() => break,
            done = inflight.next(), if !inflight.is_empty() => {
                let done = done.expect("a produce in flight");
                if !write_answer(broker, peer, &mut wr, done).await {
                    break;
                }
                continue;
            }
            read = async { reading.as_mut().expect("reading").await }, if reading.is_some() => read,
        };
        reading = None;
        let (read, reader) = read;
        frames = Some(reader);
        let frame = match read {
            Err(_) => {
                // Nothing came for connections.max.idle.ms: answer what is in flight, close.
                drain(broker, peer, &mut wr, &mut inflight, &mut shutdown).await;
                tracing::debug!(%peer, "closing idle connection");
                broker
                    .metrics
                    .connections_closed
                    .get_or_create(&crate::metrics::ReasonLabels { reason: "idle" })
                    .inc();
                break;
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => {
                // The client closed its side: what it sent before is still answered.
                drain(broker, peer, &mut wr, &mut inflight, &mut shutdown).await;
                tracing::debug!("client closed its side");
                break;
            }
            Ok(Err(e)) => {
                close_with(broker, peer, &e);
                break;
            }
        };
        let Frame { body, pooled } = frame;
        let produce =
            body.len() >= 2 && i16::from_be_bytes([body[0], body[1]]) == ApiKey::Produce as i16;
        // Anything else runs after the produces before it are answered.
        if !produce && !drain(broker, peer, &mut wr, &mut inflight, &mut shutdown).await {
            break;
        }
        // Boxed: the request-handling future is the largest state of this task, and inline it
        // would be held by every idle connection; boxed, it exists only while a request runs
        // (one allocation per request, next to the frame's own).
        let handling = handle_frame(broker, body);
        let mut request: Request<'_> =
            Box::pin(LISTENER.scope(listener.clone(), PEER.scope(peer, handling)));
        if produce {
            // The first poll appends: a produce does all its appends before it first waits,
            // so produces are appended in the order they arrived. Its frame's share of the
            // request memory pool is given back then (the records are in the log; Kafka frees
            // a request's buffer after local handling too).
            let first = futures::poll!(request.as_mut());
            drop(pooled);
            match first {
                Poll::Ready(done) if inflight.is_empty() => {
                    if !write_answer(broker, peer, &mut wr, done).await {
                        break;
                    }
                }
                Poll::Ready(done) => {
                    closing = done.is_err();
                    inflight.push_back(Box::pin(std::future::ready(done)));
                }
                Poll::Pending => inflight.push_back(request),
            }
            continue;
        }
        let done = request.await;
        drop(pooled);
        if !write_answer(broker, peer, &mut wr, done).await {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

/// Answers every in-flight produce, in order; false when the connection must close (an answer
/// that closes it, a failed write, or shutdown).
async fn drain(
    broker: &Broker,
    peer: SocketAddr,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    inflight: &mut FuturesOrdered<Request<'_>>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let done = tokio::select! {
            _ = shutdown.changed() => return false,
            done = inflight.next() => match done {
                Some(done) => done,
                None => return true,
            },
        };
        if !write_answer(broker, peer, wr, done).await {
            return false;
        }
    }
}

/// Produce requests one connection may have appended and not yet answered (Kafka clients send
/// up to `max.in.flight.requests.per.connection`, 5 by default).
pub const MAX_IN_FLIGHT: usize = 8;

/// One request being handled: its encoded answer, none (acks=0), or why the connection closes.
type Request<'a> = Pin<Box<dyn Future<Output = Result<Option<Answer>, FrameError>> + Send + 'a>>;

/// An encoded, size-prefixed response: in memory, with record sets as log file ranges for Fetch.
type Answer = Vec<Part>;

/// A read frame (or the idle timeout), with the reader handed back.
type ReadResult =
    (Result<Result<Option<Frame>, FrameError>, tokio::time::error::Elapsed>, FrameReader);

/// Writes one request's answer; false when the connection must close.
async fn write_answer(
    broker: &Broker,
    peer: SocketAddr,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    done: Result<Option<Answer>, FrameError>,
) -> bool {
    match done {
        Ok(Some(response)) => match zero_copy::send_parts(wr, &response).await {
            Ok(()) => true,
            Err(e) if zero_copy::is_truncation(&e) => {
                close_with(broker, peer, &FrameError::FileTruncated(e));
                false
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "write failed");
                false
            }
        },
        Ok(None) => true,
        Err(e) => {
            close_with(broker, peer, &e);
            false
        }
    }
}

/// At most this many "closing connection" warnings per [`WARN_WINDOW`]; the rest are counted
/// and the count is reported with the next warning let through.
const WARNINGS_PER_WINDOW: u32 = 10;
const WARN_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

static CLOSE_WARNINGS: crate::logging::RateLimit =
    crate::logging::RateLimit::new(WARNINGS_PER_WINDOW, WARN_WINDOW);

fn close_with(broker: &Broker, peer: SocketAddr, e: &FrameError) {
    match e {
        FrameError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            // The client went away: normal life of a connection, not worth a warning.
            tracing::debug!(%peer, error = %e, "client closed the connection");
        }
        _ => {
            let admitted = CLOSE_WARNINGS.admit(Instant::now());
            match admitted {
                Some(0) => tracing::warn!(%peer, error = %e, "closing connection"),
                Some(suppressed) => tracing::warn!(
                    %peer,
                    error = %e,
                    suppressed,
                    "closing connection (similar warnings suppressed since the last one)"
                ),
                None => {}
            }
        }
    }
    broker
        .metrics
        .connections_closed
        .get_or_create(&crate::metrics::ReasonLabels { reason: e.reason() })
        .inc();
    if let Some(api) = e.api() {
        let labels = crate::metrics::ApiLabels { api: api::name(api) };
        broker.metrics.request_errors.get_or_create(&labels).inc();
    }
}

/// Bytes read from the socket at a time, and the largest frame kept in the shared read buffer;
/// larger frames get a buffer of their own that grows as their bytes arrive.
const READ_CHUNK: usize = 16 * 1024;

/// One request frame, with its share of the `queued.max.request.bytes` pool.
struct Frame {
    body: Bytes,
    pooled: Option<PoolShare>,
}

/// Bytes taken from the request memory pool, given back on drop.
struct PoolShare {
    pool: Arc<Semaphore>,
    bytes: usize,
    used: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for PoolShare {
    fn drop(&mut self) {
        self.pool.add_permits(self.bytes);
        self.used.dec_by(self.bytes as i64);
    }
}

/// Reads size-prefixed frames, holding memory only for bytes that have arrived.
struct FrameReader {
    rd: OwnedReadHalf,
    /// Bytes read and not yet handed out; empty and unallocated while the connection idles.
    buf: BytesMut,
    max: usize,
    pool: Option<Arc<Semaphore>>,
    /// `sluice_request_memory_used_bytes`.
    used: prometheus_client::metrics::gauge::Gauge,
}

impl FrameReader {
    /// The next frame; `None` at a clean end of stream (between frames).
    async fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        while self.buf.len() < 4 {
            if !self.fill().await? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if size < 0 || size as usize > self.max {
            return Err(FrameError::Size(size, self.max));
        }
        let size = size as usize;
        let pooled = match &self.pool {
            Some(pool) => {
                // The size is at most socket.request.max.bytes, which the config keeps within
                // the pool and within u32.
                let permit = pool.clone().acquire_many_owned(size as u32).await;
                permit.map_err(|_| std::io::Error::other("request memory pool closed"))?.forget();
                self.used.inc_by(size as i64);
                Some(PoolShare { pool: pool.clone(), bytes: size, used: self.used.clone() })
            }
            None => None,
        };
        self.buf.advance(4);
        let body = if size <= READ_CHUNK {
            if self.buf.len() < size {
                self.buf.reserve(size - self.buf.len());
            }
            while self.buf.len() < size {
                if !self.fill().await? {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
                }
            }
            self.buf.split_to(size).freeze()
        } else {
            self.read_large(size).await?
        };
        if self.buf.is_empty() {
            // Let go of the read chunk: an idle connection holds no buffer.
            self.buf = BytesMut::new();
        }
        Ok(Some(Frame { body, pooled }))
    }

    /// A frame larger than a read chunk, read into a buffer of its own that grows with what has
    /// arrived: at most double, or to hold the bytes already waiting in the socket (which the
    /// kernel holds anyway). A client that declares 100 MiB and sends 10 bytes costs 16 KiB, not
    /// 100 MiB; one that sends 1 MiB at once is read into one buffer without regrowth copies.
    async fn read_large(&mut self, size: usize) -> Result<Bytes, FrameError> {
        let have = self.buf.len().min(size);
        let first = READ_CHUNK.max(2 * have).max(have + self.arrived());
        let mut body: Vec<u8> = Vec::with_capacity(size.min(first));
        body.extend_from_slice(&self.buf[..have]);
        self.buf.advance(have);
        while body.len() < size {
            self.rd.readable().await?;
            if body.len() == body.capacity() {
                let grown = (body.capacity() * 2).max(body.len() + self.arrived());
                body.reserve_exact(size.min(grown) - body.len());
            }
            // Exactly this frame's bytes: whatever follows stays in the socket.
            let missing = size - body.len();
            let mut room = (&mut body).limit(missing);
            match self.rd.try_read_buf(&mut room) {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Bytes::from(body))
    }

    /// Bytes received and not yet read from the socket (`FIONREAD`); 0 if it cannot say.
    fn arrived(&self) -> usize {
        let stream: &TcpStream = self.rd.as_ref();
        rustix::io::ioctl_fionread(stream).map_or(0, |n| n as usize)
    }

    /// Waits until the socket is readable, then reads what is there into `buf` (a read chunk is
    /// reserved only now, so waiting costs no memory). `false` at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        loop {
            self.rd.readable().await?;
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(READ_CHUNK);
            }
            match self.rd.try_read_buf(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Readiness was stale: wait again without holding the chunk.
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Decodes a request, runs it, and encodes the size-prefixed response (`None`: no response,
/// as for acks=0 produce).
async fn handle_frame(broker: &Broker, frame: Bytes) -> Result<Option<Answer>, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Short(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(key).map_err(|_| FrameError::UnknownApi(key))?;
    let Some(range) = api::supported_versions(api_key) else {
        return Err(FrameError::UnsupportedVersion(api_key, version));
    };
    if version < range.0 || version > range.1 {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer in the v0 layout with the supported ranges so the client can
            // retry with a version both sides know.
            let body = api::api_versions::unsupported_version_response();
            return encode_response(api_key, 0, correlation_id, &body).map(|b| Some(memory(b)));
        }
        return Err(FrameError::UnsupportedVersion(api_key, version));
    }
    let mut bytes = frame;
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut bytes, header_version)
        .map_err(|e| FrameError::Malformed(api_key, e.to_string()))?;
    let request = RequestKind::decode(api_key, &mut bytes, version)
        .map_err(|e| FrameError::Malformed(api_key, e.to_string()))?;
    if bytes.has_remaining() && api_key != ApiKey::ApiVersions {
        tracing::debug!(?api_key, trailing = bytes.remaining(), "ignoring trailing request bytes");
    }
    // Nothing of the frame is kept across the handler's waits but what the request still uses
    // (a produce drops its records once appended): the client id gets its own copy.
    drop(bytes);
    let mut header = header;
    header.client_id = header.client_id.map(|id| StrBytes::from_string(id.to_string()));
    // Clients open with ApiVersions: its client id names the connection in the log.
    if api_key == ApiKey::ApiVersions {
        if let Some(id) = &header.client_id {
            tracing::Span::current().record("client", id.as_str());
        }
    }
    let started = Instant::now();
    let response = api::handle(broker, &header, request).await;
    broker.metrics.observe_request(api::name(api_key), started.elapsed().as_secs_f64());
    match response.map_err(|c| FrameError::Unanswerable(c.0))? {
        Some(api::Reply { body, files }) => {
            let api = api::name(api_key);
            api::errors::for_each_error(&body, |code| {
                let labels =
                    crate::metrics::ApiErrorLabels { api, error: api::errors::error_name(code) };
                broker.metrics.error_responses.get_or_create(&labels).inc();
            });
            match &body {
                ResponseKind::Fetch(fetch) if files.iter().any(Option::is_some) => {
                    let header = ResponseHeader::default().with_correlation_id(correlation_id);
                    let header_version = api_key.response_header_version(version);
                    api::fetch_encode::encode(&header, header_version, fetch, &files, version)
                        .map(Some)
                        .map_err(|e| FrameError::Encode(api_key, e.to_string()))
                }
                _ => encode_response(api_key, version, correlation_id, &body)
                    .map(|b| Some(memory(b))),
            }
        }
        None => Ok(None),
    }
}

/// A response encoded in memory, as one part.
fn memory(buf: BytesMut) -> Answer {
    vec![Part::Bytes(buf.freeze())]
}

fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &kafka_protocol::messages::ResponseKind,
) -> Result<BytesMut, FrameError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut buf = BytesMut::with_capacity(1024);
    buf.put_i32(0);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| FrameError::Encode(api_key, e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| FrameError::Encode(api_key, e.to_string()))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}
