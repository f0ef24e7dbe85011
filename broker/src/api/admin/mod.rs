//! Administrative APIs: topics (CreateTopics, DeleteTopics, CreatePartitions), configs
//! (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs), DescribeCluster, log directories
//! (DescribeLogDirs, AlterReplicaLogDirs), the quorum (DescribeQuorum, ElectLeaders),
//! reassignments (AlterPartitionReassignments, ListPartitionReassignments) and
//! producer/transaction state (DescribeProducers, DescribeTransactions, ListTransactions).
//! Changes go
//! to the active controller; a call returns once this broker's metadata publisher applied its
//! effect, so a client can use a topic here as soon as CreateTopics answers.

pub mod cluster;
pub mod configs;
pub mod log_dirs;
pub mod quorum;
pub mod reassignments;
pub mod topics;
pub mod transactions;
