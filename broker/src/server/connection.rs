//! One client connection: size-prefixed frames in, responses out in request order.
//!
//! Requests on a connection are handled one at a time, as Kafka does: clients may pipeline, and
//! the next request is read only after the previous response is written, which keeps produce
//! order per connection. A frame that is negative, larger than `socket.request.max.bytes`,
//! truncated, or that does not decode closes this connection only (with a log line and a
//! `connections_closed{reason}` count); every other connection keeps being served.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Broker;
use crate::api;

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
}

impl FrameError {
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
        }
    }
}

tokio::task_local! {
    /// The client address of the request being handled: JoinGroup records it as the member's
    /// host (DescribeGroups shows it), without threading it through every handler.
    pub static PEER: SocketAddr;
}

/// Serves one connection until the client closes it, it errs, idles out, or shutdown.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: &Broker,
    mut shutdown: watch::Receiver<bool>,
) {
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let max = broker.config.socket_request_max_bytes;
    let idle = broker.config.connections_max_idle;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let frame = tokio::select! {
            _ = shutdown.changed() => break,
            r = tokio::time::timeout(idle, read_frame(&mut rd, max)) => match r {
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection");
                    broker.metrics.connections_closed.get_or_create(&crate::metrics::ReasonLabels { reason: "idle" }).inc();
                    break;
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    close_with(broker, peer, &e);
                    break;
                }
            },
        };
        match PEER.scope(peer, handle_frame(broker, frame)).await {
            Ok(Some(response)) => {
                if let Err(e) = write_response(&mut wr, &response).await {
                    tracing::debug!(%peer, error = %e, "write failed");
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                close_with(broker, peer, &e);
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
}

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
        _ => tracing::warn!(%peer, error = %e, "closing connection"),
    }
    broker
        .metrics
        .connections_closed
        .get_or_create(&crate::metrics::ReasonLabels { reason: e.reason() })
        .inc();
}

/// Reads one size-prefixed frame; `None` at a clean end of stream.
async fn read_frame<R: AsyncReadExt + Unpin>(
    rd: &mut R,
    max: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut size = [0u8; 4];
    match rd.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > max {
        return Err(FrameError::Size(size, max));
    }
    let mut buf = BytesMut::zeroed(size as usize);
    rd.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

async fn write_response<W: AsyncWriteExt + Unpin>(
    wr: &mut W,
    response: &[u8],
) -> std::io::Result<()> {
    wr.write_all(response).await?;
    wr.flush().await
}

/// Decodes a request, runs it, and encodes the size-prefixed response (`None`: no response,
/// as for acks=0 produce).
async fn handle_frame(broker: &Broker, frame: BytesMut) -> Result<Option<BytesMut>, FrameError> {
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
            return encode_response(api_key, 0, correlation_id, &body).map(Some);
        }
        return Err(FrameError::UnsupportedVersion(api_key, version));
    }
    let mut bytes: Bytes = frame.freeze();
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut bytes, header_version)
        .map_err(|e| FrameError::Malformed(api_key, e.to_string()))?;
    let request = RequestKind::decode(api_key, &mut bytes, version)
        .map_err(|e| FrameError::Malformed(api_key, e.to_string()))?;
    if bytes.has_remaining() && api_key != ApiKey::ApiVersions {
        tracing::debug!(?api_key, trailing = bytes.remaining(), "ignoring trailing request bytes");
    }
    let started = Instant::now();
    let response = api::handle(broker, &header, request).await;
    broker.metrics.observe_request(api::name(api_key), started.elapsed().as_secs_f64());
    match response.map_err(|c| FrameError::Unanswerable(c.0))? {
        Some(body) => encode_response(api_key, version, correlation_id, &body).map(Some),
        None => Ok(None),
    }
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
