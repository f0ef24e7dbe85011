//! InitProducerId (0–5) for idempotent producers, and the producer-id allocator behind it.
//!
//! Producer ids come from blocks of [`BLOCK_SIZE`] allocated through the metadata quorum
//! (`AllocateProducerIds` records), so no two brokers ever hand out the same id; each broker
//! serves ids from its current block. A new idempotent producer gets a fresh id with epoch 0;
//! later epoch bumps are the client's (KIP-360: the producer bumps its epoch itself and the
//! partition accepts the new epoch from sequence 0). Transactional ids are not supported yet:
//! such requests answer TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients treat as fatal.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use tokio::sync::Mutex;

use super::metadata_error_code;
use crate::metadata::MetadataNode;
use crate::server::Broker;

/// Producer ids reserved per quorum round trip (Kafka reserves 1000 per block too).
pub const BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids from blocks allocated through the metadata quorum.
#[derive(Debug, Default)]
pub struct ProducerIdAllocator {
    /// Next id to hand out and the end (exclusive) of the current block.
    block: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub async fn next(
        &self,
        metadata: &MetadataNode,
    ) -> Result<i64, crate::metadata::MetadataError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let first = metadata.allocate_producer_ids(BLOCK_SIZE).await?;
            *block = (first, first + BLOCK_SIZE);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}

pub async fn handle(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let response =
        InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // As in Kafka: an id without an epoch (or the reverse) is malformed; a full id and epoch
    // from a producer without a transactional id is ignored, and the producer gets a new id.
    if (req.producer_id.0 == -1) != (req.producer_epoch == -1) {
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    match broker.producer_ids.next(&broker.metadata).await {
        Ok(id) => {
            response.with_error_code(0).with_producer_id(ProducerId(id)).with_producer_epoch(0)
        }
        Err(e) => response.with_error_code(metadata_error_code(&e)),
    }
}
