//! Group state in `__consumer_offsets`: writing records through the replica layer and loading
//! a partition back when this broker becomes its coordinator.
//!
//! Writes go through [`ReplicaManager::append`] with acks=all, exactly like a producer's, so
//! group records get the same durability, replication and HW semantics as any data, and the
//! compacted topic keeps the last record per key. One request's records form one batch, so a
//! commit of several partitions is all or nothing.
//!
//! Loading reads the partition from its log start to its high watermark (records above the HW
//! may still be truncated away on a leader change), decompressing batches if a Kafka tool wrote
//! them compressed, and replays them in order: the last value per key wins and a tombstone
//! deletes. Control batches (transaction markers) and record types Sluice does not use are
//! skipped; an undecodable record is logged and skipped rather than failing the load, since the
//! rest of the partition's groups are still good.

use std::collections::{BTreeMap, HashMap};

use super::codec::{self, GroupMetadataValue, RecordKey};
use super::coordinator::{Record, RecordWriter};
use super::{CommittedOffset, GroupError, StorageFailure};
use crate::log::batch::{build_batch, BatchIter, Compression, KeyValue};
use crate::log::compression::decompress;
use crate::log::record::RecordIter;
use crate::log::validator::AppendOrigin;
use crate::log::{LogError, TopicPartition};
use crate::replica::{ReplicaError, ReplicaManager};

/// Bytes read per step while loading; the log lock is released between steps.
const LOAD_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Upper bound of a decompressed batch while loading.
const MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// Classifies a storage error for the protocol layer (which turns it into the error code
/// Kafka's coordinator answers for a failed group append).
pub fn storage_error(e: &ReplicaError) -> GroupError {
    let kind = match e {
        ReplicaError::UnknownTopicOrPartition | ReplicaError::NotEnoughReplicas { .. } => {
            StorageFailure::Unavailable
        }
        ReplicaError::NotLeader
        | ReplicaError::FencedLeaderEpoch { .. }
        | ReplicaError::UnknownLeaderEpoch { .. } => StorageFailure::NotLeader,
        ReplicaError::Log(LogError::BatchTooLarge { .. }) => StorageFailure::TooLarge,
        ReplicaError::Log(
            LogError::Io { .. } | LogError::CorruptFile { .. } | LogError::Closed(_),
        ) => StorageFailure::NotLeader,
        _ => StorageFailure::Other,
    };
    GroupError::Storage(kind, e.to_string())
}

/// Appends group records to one `__consumer_offsets` partition as leader.
#[derive(Debug)]
pub struct PartitionWriter<'a> {
    pub replicas: &'a ReplicaManager,
    pub tp: TopicPartition,
}

impl RecordWriter for PartitionWriter<'_> {
    fn write(&mut self, records: Vec<Record>, now_ms: i64) -> Result<(), GroupError> {
        let kv: Vec<KeyValue<'_>> =
            records.iter().map(|(k, v)| (Some(k.as_slice()), v.as_deref())).collect();
        let mut batch = build_batch(0, now_ms, &kv);
        self.replicas
            .append(&self.tp, &mut batch, -1, AppendOrigin::Coordinator)
            .map(|_| ())
            .map_err(|e| storage_error(&e))
    }
}

/// What the log says about one group.
#[derive(Debug, Default)]
pub struct LoadedGroup {
    pub metadata: Option<GroupMetadataValue>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

/// Replays one record onto `groups`.
fn apply(groups: &mut HashMap<String, LoadedGroup>, key: &[u8], value: Option<&[u8]>) {
    let key = match codec::decode_key(key) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a __consumer_offsets record with a bad key");
            return;
        }
    };
    match key {
        RecordKey::OffsetCommit { group, topic, partition } => match value {
            None => {
                if let Some(g) = groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            Some(v) => match codec::decode_offset_commit(v) {
                Ok(v) => {
                    let committed = CommittedOffset {
                        offset: v.offset,
                        leader_epoch: v.leader_epoch,
                        metadata: v.metadata,
                        commit_timestamp_ms: v.commit_timestamp,
                        expire_timestamp_ms: (v.expire_timestamp >= 0)
                            .then_some(v.expire_timestamp),
                    };
                    groups.entry(group).or_default().offsets.insert((topic, partition), committed);
                }
                Err(e) => {
                    tracing::warn!(%group, %topic, partition, error = %e, "skipping a bad offset commit record")
                }
            },
        },
        RecordKey::GroupMetadata { group } => match value {
            None => {
                if let Some(g) = groups.get_mut(&group) {
                    g.metadata = None;
                }
            }
            Some(v) => match codec::decode_group_metadata(v) {
                Ok(v) => groups.entry(group).or_default().metadata = Some(v),
                Err(e) => {
                    tracing::warn!(%group, error = %e, "skipping a bad group metadata record")
                }
            },
        },
        RecordKey::Other(version) => {
            tracing::debug!(
                version,
                "skipping a __consumer_offsets record of a type Sluice does not use"
            );
        }
    }
}

/// Replays the record batches in `bytes` onto `groups`; returns the offset after the last
/// complete batch.
fn apply_batches(
    groups: &mut HashMap<String, LoadedGroup>,
    bytes: &[u8],
    mut next: i64,
) -> Result<i64, LogError> {
    for item in BatchIter::new(bytes, true) {
        let (_, batch) = item?;
        next = batch.next_offset();
        if batch.is_control() {
            continue;
        }
        let codec = batch.compression()?;
        let payload = match codec {
            Compression::None => std::borrow::Cow::Borrowed(batch.records_payload()),
            c => std::borrow::Cow::Owned(decompress(
                c,
                batch.records_payload(),
                MAX_DECOMPRESSED_BYTES,
            )?),
        };
        for record in RecordIter::new(&payload, batch.records_count()) {
            let record = record?;
            let Some(key) = record.key else { continue };
            apply(groups, key, record.value);
        }
    }
    Ok(next)
}

/// Reads `tp` from its log start to its high watermark and rebuilds the groups it holds.
pub fn load_partition(
    replicas: &ReplicaManager,
    tp: &TopicPartition,
) -> Result<HashMap<String, LoadedGroup>, ReplicaError> {
    let partition = replicas.get(tp).ok_or(ReplicaError::UnknownTopicOrPartition)?;
    let mut groups: HashMap<String, LoadedGroup> = HashMap::new();
    let (mut offset, end) = {
        let log = partition.log.lock().unwrap_or_else(|e| e.into_inner());
        (log.log_start_offset(), log.high_watermark())
    };
    while offset < end {
        let data = {
            let log = partition.log.lock().unwrap_or_else(|e| e.into_inner());
            log.read(offset, LOAD_CHUNK_BYTES, end)?
        };
        if data.records.is_empty() {
            break;
        }
        let next = apply_batches(&mut groups, &data.records, offset)?;
        if next <= offset {
            break;
        }
        offset = next;
    }
    groups.retain(|_, g| g.metadata.is_some() || !g.offsets.is_empty());
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::codec::{MemberMetadata, OffsetCommitValue};
    use bytes::Bytes;

    fn offset_record(group: &str, topic: &str, p: i32, offset: i64) -> (Vec<u8>, Vec<u8>) {
        let key = codec::encode_key(&RecordKey::OffsetCommit {
            group: group.into(),
            topic: topic.into(),
            partition: p,
        });
        let value = OffsetCommitValue {
            offset,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 10,
            expire_timestamp: -1,
        };
        (key, codec::encode_offset_commit(&value, 3).unwrap())
    }

    #[test]
    fn replay_keeps_the_last_value_and_honours_tombstones() {
        let (k1, v1) = offset_record("g", "t", 0, 5);
        let (_, v2) = offset_record("g", "t", 0, 9);
        let (k3, v3) = offset_record("g", "t", 1, 7);
        let (k4, v4) = offset_record("gone", "t", 0, 1);
        let gkey = codec::encode_key(&RecordKey::GroupMetadata { group: "g".into() });
        let gvalue = codec::encode_group_metadata(
            &GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 2,
                protocol: Some("range".into()),
                leader: Some("m".into()),
                current_state_timestamp: 1,
                members: vec![MemberMetadata {
                    member_id: "m".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout: 1000,
                    session_timeout: 1000,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                }],
            },
            3,
        )
        .unwrap();
        let batch1 = build_batch(
            0,
            10,
            &[
                (Some(&k1), Some(&v1)),
                (Some(&k3), Some(&v3)),
                (Some(&gkey), Some(&gvalue)),
                (Some(&k4), Some(&v4)),
            ],
        );
        let batch2 =
            build_batch(4, 10, &[(Some(&k1), Some(&v2)), (Some(&k3), None), (Some(&k4), None)]);
        let mut groups = HashMap::new();
        let next = apply_batches(&mut groups, &[batch1, batch2].concat(), 0).unwrap();
        assert_eq!(next, 7);
        groups.retain(|_, g| g.metadata.is_some() || !g.offsets.is_empty());
        assert_eq!(groups.len(), 1, "a group whose only offset was deleted is gone");
        let g = &groups["g"];
        assert_eq!(g.metadata.as_ref().unwrap().generation, 2);
        assert_eq!(g.offsets.len(), 1);
        let o = &g.offsets[&("t".to_string(), 0)];
        assert_eq!((o.offset, o.leader_epoch, o.metadata.as_str()), (9, 3, "m"));
    }

    #[test]
    fn compressed_batches_and_foreign_record_types_load() {
        let (k, v) = offset_record("g", "t", 0, 42);
        let plain = build_batch(
            0,
            10,
            &[(Some(&k), Some(&v)), (Some(&[0, 3, 0, 1, b'x'][..]), Some(&b"?"[..]))],
        );
        // Recompress the records section with zstd, as a Kafka tool might have written it.
        let view = crate::log::batch::BatchView::parse(&plain).unwrap();
        let payload =
            crate::log::compression::compress(Compression::Zstd, view.records_payload()).unwrap();
        let mut fields = crate::log::batch::BatchFields::of(&view);
        fields.attributes = Compression::Zstd.id();
        let zstd = crate::log::batch::assemble_batch(&fields, view.records_count(), &payload);
        let mut groups = HashMap::new();
        apply_batches(&mut groups, &zstd, 0).unwrap();
        assert_eq!(groups["g"].offsets[&("t".to_string(), 0)].offset, 42);
    }
}
