//! Outgoing connections to controllers: raft RPCs to other voters, and controller calls.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use tokio::net::TcpStream;

use super::{read_frame, write_frame, Hello, Reply, Request, CONNECT_TIMEOUT};
use crate::metadata::calls::{ControllerCall, ControllerReply};
use crate::metadata::types::TypeConfig;
use crate::metadata::MetadataError;

/// Why a round trip failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RoundTripError {
    /// Nothing was sent: the peer is down, unreachable or refused the hello.
    #[error("cannot connect to metadata node at {addr}: {source}")]
    NotSent { addr: String, source: io::Error },
    /// The request may have reached the peer, but no answer came back.
    #[error("no answer from metadata node at {addr}: {source}")]
    Lost { addr: String, source: io::Error },
}

/// Opens a connection and exchanges hellos.
async fn connect(addr: &str, hello: &Hello) -> Result<TcpStream, RoundTripError> {
    let open = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        write_frame(&mut stream, hello).await?;
        match read_frame::<Reply>(&mut stream).await? {
            Reply::Hello(Ok(())) => Ok(stream),
            Reply::Hello(Err(why)) => Err(io::Error::new(io::ErrorKind::PermissionDenied, why)),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected a hello answer, got {other:?}"),
            )),
        }
    };
    let not_sent = |source| RoundTripError::NotSent { addr: addr.to_string(), source };
    match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(not_sent(e)),
        Err(_) => Err(not_sent(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))),
    }
}

/// Sends `request` on `stream` and reads the reply within `ttl`.
async fn exchange(
    stream: &mut TcpStream,
    addr: &str,
    request: &Request,
    ttl: Duration,
) -> Result<Reply, RoundTripError> {
    let io = async {
        write_frame(stream, request).await?;
        read_frame::<Reply>(stream).await
    };
    let lost = |source| RoundTripError::Lost { addr: addr.to_string(), source };
    match tokio::time::timeout(ttl, io).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(lost(e)),
        Err(_) => Err(lost(io::Error::new(io::ErrorKind::TimedOut, format!("after {ttl:?}")))),
    }
}

/// Creates raft clients for other voters.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    hello: Arc<Hello>,
    /// Each voter's address from `controller.quorum.voters`. As in Kafka, the configuration
    /// names where a voter is now: the addresses in the log's membership are those of the day
    /// the quorum formed, and a voter may have moved since (new ports for `sluice dev` on
    /// picked ports, a new host).
    voters: Arc<BTreeMap<u64, String>>,
    /// Whether each voter answered the last connection attempt: a voter going down or coming
    /// back is logged once, not at every retry (openraft's own lines are silenced for that).
    reachable: Arc<Mutex<HashMap<u64, bool>>>,
}

impl Network {
    pub(crate) fn new(hello: Arc<Hello>, voters: BTreeMap<u64, String>) -> Network {
        Network { hello, voters: Arc::new(voters), reachable: Arc::default() }
    }
}

/// A raft client for one other voter: one connection, reopened after any failure.
#[derive(Debug)]
pub(crate) struct PeerClient {
    target: u64,
    addr: String,
    hello: Arc<Hello>,
    conn: Option<TcpStream>,
    reachable: Arc<Mutex<HashMap<u64, bool>>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: self.voters.get(&target).unwrap_or(&node.addr).clone(),
            hello: self.hello.clone(),
            conn: None,
            reachable: self.reachable.clone(),
        }
    }
}

impl PeerClient {
    async fn call<E: std::error::Error>(
        &mut self,
        request: Request,
        option: &RPCOption,
    ) -> Result<Reply, RPCError<u64, BasicNode, E>> {
        if self.conn.is_none() {
            let connected = connect(&self.addr, &self.hello).await;
            let was = self
                .reachable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(self.target, connected.is_ok());
            match connected {
                Ok(stream) => {
                    if was == Some(false) {
                        tracing::info!(node = self.target, addr = %self.addr, "metadata node reachable again");
                    }
                    self.conn = Some(stream);
                }
                Err(e) => {
                    if was != Some(false) {
                        tracing::warn!(node = self.target, "{e}");
                    }
                    return Err(RPCError::Unreachable(Unreachable::new(&e)));
                }
            }
        }
        let stream = self.conn.as_mut().expect("connected above");
        match exchange(stream, &self.addr, &request, option.hard_ttl()).await {
            Ok(reply) => Ok(reply),
            Err(e) => {
                self.conn = None;
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }

    fn unexpected<E: std::error::Error>(&mut self, reply: Reply) -> RPCError<u64, BasicNode, E> {
        self.conn = None;
        let e = io::Error::new(io::ErrorKind::InvalidData, format!("unexpected reply {reply:?}"));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(Request::AppendEntries(rpc), &option).await? {
            Reply::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(remote(self.target, &self.addr, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Reply::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(remote(self.target, &self.addr, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Reply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(remote(self.target, &self.addr, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }
}

fn remote<E: std::error::Error>(
    target: u64,
    addr: &str,
    e: E,
) -> openraft::error::RemoteError<u64, BasicNode, E> {
    openraft::error::RemoteError::new_with_node(target, BasicNode { addr: addr.to_string() }, e)
}

/// Idle connections kept per controller.
const POOL_PER_ADDR: usize = 8;
/// An idle connection older than this is closed rather than reused: the server closes
/// connections idle for [`super::IDLE_TIMEOUT`], and a request sent on one it just closed would
/// come back as a lost call.
const POOL_MAX_IDLE: Duration = Duration::from_secs(60);

/// Controller calls to any controller, over pooled connections (a heartbeat never waits
/// behind a slow metadata write on the same connection).
#[derive(Debug)]
pub(crate) struct ControllerClient {
    hello: Arc<Hello>,
    idle: Mutex<HashMap<String, Vec<(TcpStream, std::time::Instant)>>>,
}

/// Whether a pooled connection is still open: the peer sent nothing since its last answer, so
/// a read finds nothing waiting unless it closed (EOF) or failed.
fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl ControllerClient {
    pub(crate) fn new(hello: Arc<Hello>) -> ControllerClient {
        ControllerClient { hello, idle: Mutex::new(HashMap::new()) }
    }

    /// This process's incarnation id (also its broker registration's).
    pub(crate) fn incarnation(&self) -> [u8; 16] {
        self.hello.incarnation
    }

    /// Sends `call` to the controller at `addr` and waits at most `ttl` for its answer.
    pub(crate) async fn call(
        &self,
        addr: &str,
        call: ControllerCall,
        ttl: Duration,
    ) -> Result<Result<(ControllerReply, u64), MetadataError>, RoundTripError> {
        let pooled = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let list = idle.entry(addr.to_string()).or_default();
            // Closed by the peer (a restart) or idle too long: drop them here.
            list.retain(|(s, since)| since.elapsed() < POOL_MAX_IDLE && still_open(s));
            list.pop().map(|(s, _)| s)
        };
        let mut stream = match pooled {
            Some(s) => s,
            None => connect(addr, &self.hello).await?,
        };
        let request = Request::Controller(call);
        match exchange(&mut stream, addr, &request, ttl).await? {
            Reply::Controller(r) => {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = idle.entry(addr.to_string()).or_default();
                if list.len() < POOL_PER_ADDR {
                    list.push((stream, std::time::Instant::now()));
                }
                Ok(r)
            }
            other => Err(RoundTripError::Lost {
                addr: addr.to_string(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected reply {other:?}"),
                ),
            }),
        }
    }
}
