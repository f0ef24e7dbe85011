//! The metadata quorum's transport on the controller listener.
//!
//! One TCP protocol carries both the raft RPCs between voters (vote, append-entries,
//! install-snapshot) and controller calls from brokers (registration, heartbeats, forwarded
//! metadata writes, DescribeQuorum). A frame is a big-endian u32 length and that many bytes of
//! JSON; frames above [`MAX_FRAME`] close the connection. Every connection opens with a
//! [`Hello`] naming the caller's cluster id, node id and voter list: a node of another cluster
//! or with a different voter list is refused with a message naming both values, before any raft
//! message is read, since voters that disagree on the voter set could elect two leaders.
//!
//! - [`client`]: openraft's `RaftNetworkFactory` (one connection per replication stream) and
//!   the [`client::ControllerClient`] that finds the active controller and forwards calls to it.
//! - [`server`]: the accept loop that answers both.
//!
//! JSON keeps the frames readable in a packet capture and costs little here: the metadata log
//! carries a few records per admin operation, not client data.

pub(crate) mod client;
pub(crate) mod server;

use std::io;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::calls::{ControllerCall, ControllerReply};
use super::types::TypeConfig;
use super::MetadataError;

/// Largest frame either side accepts (a snapshot chunk or an append of many records).
pub(crate) const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Largest hello frame.
pub(crate) const MAX_HELLO: usize = 64 * 1024;
/// Connections the controller listener serves at once; more wait to be accepted.
pub(crate) const MAX_CONNECTIONS: usize = 512;
/// How long opening a connection (TCP connect and hello) may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection that sends nothing for this long is closed by the server. Raft heartbeats keep
/// replication connections busy; idle controller-call connections are reopened on demand.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The first frame of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) cluster_id: String,
    pub(crate) node_id: i32,
    /// `controller.quorum.voters` in canonical form (`id@host:port`, sorted by id).
    pub(crate) voters: String,
    /// Random per process start: two processes with one node id show as two incarnations.
    pub(crate) incarnation: [u8; 16],
    /// The port a voter serves its controller listener on (advertised); `None` for a node
    /// that serves none (broker-only).
    #[serde(default)]
    pub(crate) controller_port: Option<u16>,
}

impl Hello {
    /// Why `self` (the server) refuses `peer`, if it does.
    pub(crate) fn refuse(&self, peer: &Hello) -> Option<String> {
        if peer.cluster_id != self.cluster_id {
            return Some(format!(
                "node {} belongs to cluster '{}', this node to cluster '{}'",
                peer.node_id, peer.cluster_id, self.cluster_id
            ));
        }
        if peer.voters != self.voters {
            return Some(format!(
                "node {} has controller.quorum.voters={} but this node has {}; every node must \
                 list the same voters",
                peer.node_id, peer.voters, self.voters
            ));
        }
        // A voter whose controller listener is not where the voter list says: a second process
        // with the same node.id, or a wrong voter entry. Only the port can be compared (hosts
        // may be names, addresses or a wildcard).
        let entry = format!("{}@", peer.node_id);
        let listed = self.voters.split(',').find(|v| v.starts_with(&entry));
        let listed_port: Option<u16> =
            listed.and_then(|v| v.rsplit_once(':')).and_then(|(_, p)| p.parse().ok());
        if let (Some(port), Some(listed_port), Some(listed)) =
            (peer.controller_port, listed_port, listed)
        {
            if port != listed_port {
                return Some(format!(
                    "node {} serves its controller listener on port {port}, but \
                     controller.quorum.voters lists {listed}: two nodes may share node.id {}, or \
                     its voter entry is wrong",
                    peer.node_id, peer.node_id
                ));
            }
        }
        None
    }
}

/// What a client sends after the hello.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Vote(VoteRequest<u64>),
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Controller(ControllerCall),
}

/// What the server answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The answer to the hello: `Err` carries why the connection is refused.
    Hello(Result<(), String>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// A controller call's result and the metadata log index the caller must have applied to
    /// see its effect.
    Controller(Result<(ControllerReply, u64), MetadataError>),
}

/// Writes one frame.
pub(crate) async fn write_frame<T: Serialize>(stream: &mut TcpStream, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a metadata frame of {} bytes exceeds the limit of {MAX_FRAME}", body.len()),
        ));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

/// Reads one frame; an oversized or undecodable frame is `InvalidData`.
pub(crate) async fn read_frame<T: DeserializeOwned>(stream: &mut TcpStream) -> io::Result<T> {
    read_frame_within(stream, MAX_FRAME).await
}

/// [`read_frame`] with a smaller limit: the hello, read before the peer is known, may not make
/// the server allocate more than [`MAX_HELLO`].
pub(crate) async fn read_frame_within<T: DeserializeOwned>(
    stream: &mut TcpStream,
    max: usize,
) -> io::Result<T> {
    let len = stream.read_u32().await? as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a metadata frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidData, format!("undecodable metadata frame: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(cluster: &str, node: i32, voters: &str, port: Option<u16>) -> Hello {
        Hello {
            cluster_id: cluster.into(),
            node_id: node,
            voters: voters.into(),
            incarnation: [0; 16],
            controller_port: port,
        }
    }

    #[test]
    fn peers_of_another_cluster_voter_set_or_voter_address_are_refused() {
        let voters = "1@a:9093,2@b:9093,3@c:9093";
        let me = hello("abc", 1, voters, Some(9093));
        assert_eq!(me.refuse(&hello("abc", 2, voters, Some(9093))), None);
        assert_eq!(me.refuse(&hello("abc", 4, voters, None)), None, "a broker-only node");
        let why = me.refuse(&hello("xyz", 2, voters, Some(9093))).unwrap();
        assert!(why.contains("'xyz'") && why.contains("'abc'"), "{why}");
        let why = me.refuse(&hello("abc", 2, "1@a:9093,2@b:9093", Some(9093))).unwrap();
        assert!(why.contains("same voters"), "{why}");
        let why = me.refuse(&hello("abc", 2, voters, Some(9999))).unwrap();
        assert!(why.contains("may share node.id 2") && why.contains("2@b:9093"), "{why}");
    }
}
