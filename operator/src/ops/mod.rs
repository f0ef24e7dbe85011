//! Pure decisions about running clusters, apart from the I/O that observes and acts: each is a
//! function of what was observed, tested branch by branch. What they read about a cluster is
//! [`ClusterState`], which `kafka.rs` fills from the brokers' answers.

use std::collections::BTreeMap;

use crate::crd::QuorumStatus;

pub mod roll;
pub mod scale;
pub mod storage;
pub mod topic;

/// One partition as Metadata reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// -1 when the partition has no leader (offline).
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A cluster as its brokers describe it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterState {
    /// Registered (unfenced) brokers.
    pub brokers: Vec<i32>,
    pub partitions: Vec<PartitionState>,
    pub quorum: Option<QuorumStatus>,
    /// `broker.rack` of the brokers that have one.
    pub racks: BTreeMap<i32, String>,
}

impl ClusterState {
    pub fn under_replicated(&self) -> usize {
        self.partitions.iter().filter(|p| p.isr.len() < p.replicas.len()).count()
    }

    pub fn offline(&self) -> usize {
        self.partitions.iter().filter(|p| p.leader < 0).count()
    }
}
