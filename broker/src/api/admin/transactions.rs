//! DescribeProducers (0), DescribeTransactions (0) and ListTransactions (0–2), for
//! `kafka-transactions` and the admin client. Producers are the idempotent producers each
//! partition knows; transactions do not exist yet (see docs/protocol.md), so there are none to
//! list and every transactional id is TRANSACTIONAL_ID_NOT_FOUND.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
};
use kafka_protocol::ResponseError;

use super::super::{replica_error_code, strb};
use crate::log::TopicPartition;
use crate::server::Broker;

/// Transaction states a ListTransactions filter may name (Kafka's `TransactionState`).
const TRANSACTION_STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub fn describe_producers(
    broker: &Broker,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let tp = TopicPartition::new(t.name.as_str(), p);
                    let resp = PartitionResponse::default().with_partition_index(p);
                    match broker.replicas.active_producers(&tp) {
                        Ok(producers) => resp.with_active_producers(
                            producers
                                .into_iter()
                                .map(|(pid, epoch, last_seq, last_ts)| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(pid))
                                        .with_producer_epoch(i32::from(epoch))
                                        .with_last_sequence(last_seq)
                                        .with_last_timestamp(last_ts)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(-1)
                                })
                                .collect(),
                        ),
                        Err(e) => resp
                            .with_error_code(replica_error_code(&e))
                            .with_error_message(Some(strb(&e.to_string()))),
                    }
                })
                .collect();
            TopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

pub fn describe_transactions(req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            TransactionState::default()
                .with_error_code(ResponseError::TransactionalIdNotFound.code())
                .with_transactional_id(id)
                .with_transaction_state(strb(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list_transactions(req: ListTransactionsRequest) -> ListTransactionsResponse {
    let unknown = req
        .state_filters
        .into_iter()
        .filter(|s| !TRANSACTION_STATES.contains(&s.as_str()))
        .collect();
    ListTransactionsResponse::default().with_error_code(0).with_unknown_state_filters(unknown)
}
