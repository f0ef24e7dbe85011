//! Administrative APIs: topics (CreateTopics, DeleteTopics, CreatePartitions), configs
//! (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs), DescribeCluster, log directories
//! (DescribeLogDirs, AlterReplicaLogDirs) and producer/transaction state (DescribeProducers,
//! DescribeTransactions, ListTransactions). Changes go
//! through the metadata quorum; once committed, the local partitions are reconciled before the
//! response is sent, so a client can use a topic as soon as CreateTopics answers.

pub mod cluster;
pub mod configs;
pub mod log_dirs;
pub mod topics;
pub mod transactions;
