//! Admin calls to a cluster through its bootstrap addresses.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::{ClientError, KafkaConnection};

/// Calls to any broker of a cluster. The connection that answered last is kept; after a
/// failure the next call tries the bootstrap addresses again, in order, starting after the one
/// that failed (so one dead broker does not stop every call).
#[derive(Debug)]
pub struct Admin {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    conn: Option<KafkaConnection>,
    next: usize,
}

impl Admin {
    /// An admin client for `bootstrap` (host:port addresses); each connect and each call is
    /// bounded by `timeout`. Nothing connects until the first call.
    pub fn new(bootstrap: Vec<String>, client_id: &str, timeout: Duration) -> Admin {
        Admin { bootstrap, client_id: client_id.into(), timeout, conn: None, next: 0 }
    }

    /// The address of the broker the last call went to, if it is still connected.
    pub fn connected_to(&self) -> Option<&str> {
        self.conn.as_ref().map(|c| c.addr())
    }

    /// Sends `request` as `api` version `version` to a broker and decodes its response. On
    /// failure the connection is dropped and the error of the last address tried is returned.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let response = conn.call(api, version, request, self.timeout).await?;
        self.conn = Some(conn);
        Ok(response)
    }

    /// Sends the same request to one broker, by address (DescribeQuorum and per-broker checks
    /// ask a particular node); the connection is not kept.
    pub async fn call_at<Req: Encodable, Resp: Decodable>(
        &self,
        addr: &str,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let mut conn = KafkaConnection::connect(addr, &self.client_id, self.timeout).await?;
        conn.call(api, version, request, self.timeout).await
    }

    async fn connect(&mut self) -> Result<KafkaConnection, ClientError> {
        let mut last = None;
        for _ in 0..self.bootstrap.len() {
            let addr = &self.bootstrap[self.next % self.bootstrap.len()];
            self.next = (self.next + 1) % self.bootstrap.len();
            match KafkaConnection::connect(addr, &self.client_id, self.timeout).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Connect {
            addr: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no bootstrap address"),
        }))
    }
}
