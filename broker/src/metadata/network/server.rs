//! The controller listener: answers raft RPCs from other voters and controller calls from
//! brokers. A connection that sends a bad hello, an oversized or undecodable frame is closed
//! with one log line; nothing it sent reaches raft.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{
    read_frame, read_frame_within, write_frame, Hello, Reply, Request, CONNECT_TIMEOUT,
    IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_HELLO,
};
use crate::metadata::controller::Controller;
use crate::metadata::types::MetadataRaft;

/// What the server answers with.
pub(crate) struct ServerContext {
    pub(crate) hello: Hello,
    pub(crate) raft: MetadataRaft,
    pub(crate) controller: Arc<Controller>,
    /// Open connections by peer node id and incarnation.
    pub(crate) peers: Mutex<HashMap<i32, HashMap<[u8; 16], usize>>>,
}

/// Counts a peer's open connection for as long as it lives.
struct PeerConnection<'a> {
    ctx: &'a ServerContext,
    node: i32,
    incarnation: [u8; 16],
}

impl<'a> PeerConnection<'a> {
    /// Registers the connection; logs when another process with the same node id has one open.
    fn open(ctx: &'a ServerContext, hello: &Hello, peer: SocketAddr) -> Self {
        let mut peers = ctx.peers.lock().unwrap_or_else(|e| e.into_inner());
        let by_incarnation = peers.entry(hello.node_id).or_default();
        let others =
            by_incarnation.iter().filter(|(i, n)| **i != hello.incarnation && **n > 0).count();
        if others > 0 && !by_incarnation.contains_key(&hello.incarnation) {
            tracing::error!(
                %peer,
                node = hello.node_id,
                "two processes claim node id {} at once (another one is still connected): two \
                 nodes may share a node.id, or a restarted node's old connections linger",
                hello.node_id
            );
        }
        *by_incarnation.entry(hello.incarnation).or_default() += 1;
        PeerConnection { ctx, node: hello.node_id, incarnation: hello.incarnation }
    }
}

impl Drop for PeerConnection<'_> {
    fn drop(&mut self) {
        let mut peers = self.ctx.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(by_incarnation) = peers.get_mut(&self.node) {
            if let Some(n) = by_incarnation.get_mut(&self.incarnation) {
                *n -= 1;
                if *n == 0 {
                    by_incarnation.remove(&self.incarnation);
                }
            }
            if by_incarnation.is_empty() {
                peers.remove(&self.node);
            }
        }
    }
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext").field("hello", &self.hello).finish_non_exhaustive()
    }
}

/// Accepts until shutdown; open connections are dropped then.
pub(crate) async fn serve(
    listener: TcpListener,
    ctx: Arc<ServerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    connection(stream, peer, &ctx).await
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, ctx: &ServerContext) {
    let hello = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        read_frame_within::<Hello>(&mut stream, MAX_HELLO),
    )
    .await
    {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "controller listener: closing a connection with a bad hello");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "controller listener: closing a connection that sent no hello");
            return;
        }
    };
    if let Some(why) = ctx.hello.refuse(&hello) {
        tracing::error!(%peer, "controller listener: refusing a connection: {why}");
        let _ = write_frame(&mut stream, &Reply::Hello(Err(why))).await;
        return;
    }
    if write_frame(&mut stream, &Reply::Hello(Ok(()))).await.is_err() {
        return;
    }
    let _counted = PeerConnection::open(ctx, &hello, peer);
    loop {
        let request = match tokio::time::timeout(IDLE_TIMEOUT, read_frame::<Request>(&mut stream))
            .await
        {
            Err(_) => return,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
            Ok(Err(e)) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    tracing::warn!(%peer, node = hello.node_id, error = %e, "controller listener: closing the connection");
                }
                return;
            }
            Ok(Ok(r)) => r,
        };
        let reply = match request {
            Request::Vote(r) => Reply::Vote(ctx.raft.vote(r).await),
            Request::AppendEntries(r) => Reply::AppendEntries(ctx.raft.append_entries(r).await),
            Request::InstallSnapshot(r) => {
                Reply::InstallSnapshot(ctx.raft.install_snapshot(r).await)
            }
            Request::Controller(call) => Reply::Controller(ctx.controller.handle(call).await),
        };
        if write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}
