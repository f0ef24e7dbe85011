//! Raft transport of the metadata quorum (`RaftNetworkFactory`).
//!
//! The quorum has a single voter today, and a one-voter raft never sends an RPC: the leader
//! commits on its own. Any remote target therefore means a configuration the broker cannot
//! serve yet, and every RPC to it fails with `Unreachable` and a message saying so. The
//! multi-broker issue replaces this with a real transport (vote, append-entries and snapshot
//! RPCs on the controller listener).

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::types::TypeConfig;

/// Why an RPC to another metadata node failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "metadata node {target} ({addr}) is unreachable: this broker runs a single-voter metadata \
     quorum and has no transport to other metadata nodes yet"
)]
pub(crate) struct NoTransport {
    target: u64,
    addr: String,
}

/// Creates clients for other metadata nodes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Network;

/// A client for one other metadata node; every call fails with `Unreachable`.
#[derive(Debug)]
pub(crate) struct PeerClient {
    target: u64,
    addr: String,
}

impl PeerClient {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<u64, BasicNode, E> {
        let err = NoTransport { target: self.target, addr: self.addr.clone() };
        RPCError::Unreachable(Unreachable::new(&err))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient { target, addr: node.addr.clone() }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(self.unreachable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rpc_to_a_remote_node_is_unreachable_with_a_clear_message() {
        let mut client = Network.new_client(2, &BasicNode { addr: "broker-2:9092".into() }).await;
        let rpc = VoteRequest::new(openraft::Vote::new(1, 1), None);
        let err = client.vote(rpc, RPCOption::new(std::time::Duration::from_secs(1))).await;
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("metadata node 2 (broker-2:9092) is unreachable"), "{msg}");
    }
}
