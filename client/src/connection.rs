//! One connection to a Kafka listener: [`KafkaConnection`] sends one request at a time and
//! reads its response; every step is bounded by a timeout, and any failure drops the connection
//! (the caller opens a new one).

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted (a fetch response is bounded by its request's `max_bytes`).
const MAX_RESPONSE: usize = 128 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("{api:?} to {addr}: {source}")]
    Io { api: ApiKey, addr: String, source: std::io::Error },
    #[error("{api:?} to {addr} timed out after {timeout:?}")]
    Timeout { api: ApiKey, addr: String, timeout: Duration },
    #[error("{api:?} to {addr}: bad response: {reason}")]
    Protocol { api: ApiKey, addr: String, reason: String },
}

/// One connection to a Kafka listener.
#[derive(Debug)]
pub struct KafkaConnection {
    stream: TcpStream,
    addr: String,
    client_id: StrBytes,
    next_correlation_id: i32,
}

impl KafkaConnection {
    /// Connects to `addr` (host:port) within `timeout`.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<KafkaConnection, ClientError> {
        let connect = TcpStream::connect(addr);
        let stream = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(ClientError::Connect { addr: addr.into(), source }),
            Err(_) => {
                let source = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                return Err(ClientError::Connect { addr: addr.into(), source });
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(KafkaConnection {
            stream,
            addr: addr.into(),
            client_id: StrBytes::from_string(client_id.into()),
            next_correlation_id: 0,
        })
    }

    /// The address this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` as `api` version `version` and decodes the response, all within
    /// `timeout`.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        let protocol =
            |reason: String| ClientError::Protocol { api, addr: self.addr.clone(), reason };
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut frame, api.request_header_version(version))
            .map_err(|e| protocol(format!("encoding the header: {e}")))?;
        request.encode(&mut frame, version).map_err(|e| protocol(format!("encoding: {e}")))?;
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let len = self.stream.read_i32().await?;
            if len < 0 || len as usize > MAX_RESPONSE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("response length {len}"),
                ));
            }
            let mut body = vec![0u8; len as usize];
            self.stream.read_exact(&mut body).await?;
            Ok(bytes::Bytes::from(body))
        };
        let mut body = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(body)) => body,
            Ok(Err(source)) => {
                return Err(ClientError::Io { api, addr: self.addr.clone(), source })
            }
            Err(_) => return Err(ClientError::Timeout { api, addr: self.addr.clone(), timeout }),
        };
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .map_err(|e| protocol(format!("decoding the header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(protocol(format!(
                "correlation id {} for request {correlation_id}",
                header.correlation_id
            )));
        }
        let response = Resp::decode(&mut body, version).map_err(|e| protocol(format!("{e}")))?;
        if body.has_remaining() {
            return Err(protocol(format!("{} trailing bytes", body.remaining())));
        }
        Ok(response)
    }
}
