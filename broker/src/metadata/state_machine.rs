//! The metadata state machine (`RaftStateMachine`): applies records to the [`ClusterImage`].
//!
//! The image lives in memory only; it is rebuilt at start from the latest snapshot plus the
//! committed log entries after it (openraft re-applies them from the saved committed id), so
//! nothing else on disk describes topics. After every applied batch of entries the new image is
//! published on a `watch` channel as an `Arc`.
//!
//! A snapshot is the serialized image together with its `SnapshotMeta`, written atomically to
//! `<data_dir>/__cluster_metadata/snapshot.json`; the same bytes are what a follower would
//! receive. Snapshots are taken by openraft's snapshot policy (see `mod.rs`), after which the
//! raft log before them is purged.
//!
//! [`apply_record`] is the single definition of what a record does. The controller also uses it
//! on a scratch copy of the image to check a whole request before proposing it. It must stay
//! deterministic (no clocks, no randomness) and must not fail: a record that no longer fits the
//! image (a stale fence, say) is skipped with a warning.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, EntryPayload, RaftSnapshotBuilder, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};

use super::image::{BrokerImage, ClusterImage, TopicImage};
use super::log_store::StorageHealth;
pub use super::types::AppliedEntry;
use super::types::{
    MetadataEntry, MetadataLogId, MetadataRecord, MetadataResponse, StorageError, TypeConfig,
};
use crate::fsutil::write_file_atomically;

const SNAPSHOT_FILE: &str = "snapshot.json";

type Meta = SnapshotMeta<u64, BasicNode>;
type Membership = StoredMembership<u64, BasicNode>;

/// Content of the snapshot file and of a transferred snapshot.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: Meta,
    image: ClusterImage,
}

impl StoredSnapshot {
    fn decode(bytes: &[u8]) -> Result<StoredSnapshot, serde_json::Error> {
        let mut s: StoredSnapshot = serde_json::from_slice(bytes)?;
        s.image.reindex();
        Ok(s)
    }
}

/// State shared by the state machine and its snapshot builders.
#[derive(Debug)]
struct SnapshotFiles {
    dir: PathBuf,
    /// Meta of the snapshot in the file; the lock also orders file writes.
    current: Mutex<Option<Meta>>,
    seq: AtomicU64,
    /// Snapshot writes that fail (a full disk) are retried like the log's, not fatal.
    health: Arc<StorageHealth>,
}

impl SnapshotFiles {
    /// Writes the snapshot unless the file already holds a newer one (a snapshot installed
    /// from the leader while this one was being built).
    async fn store(&self, snapshot: &StoredSnapshot, bytes: Vec<u8>) -> Result<(), StorageError> {
        let mut current = self.current.lock().await;
        if let Some(cur) = current.as_ref() {
            if cur.last_log_id > snapshot.meta.last_log_id {
                return Ok(());
            }
        }
        let path = self.dir.join(SNAPSHOT_FILE);
        let signature = snapshot.meta.signature();
        let health = self.health.clone();
        tokio::task::spawn_blocking(move || {
            let write = || write_file_atomically(&path, &bytes);
            health.retry("snapshot", write, || !health.closing(), std::thread::sleep)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r)
        .map_err(|e| StorageIOError::write_snapshot(Some(signature), &e))?;
        *current = Some(snapshot.meta.clone());
        Ok(())
    }
}

/// The metadata state machine.
#[derive(Debug)]
pub(crate) struct StateMachineStore {
    image: Arc<ClusterImage>,
    last_applied: Option<MetadataLogId>,
    last_membership: Membership,
    files: Arc<SnapshotFiles>,
    image_tx: watch::Sender<Arc<ClusterImage>>,
    recent: Arc<std::sync::Mutex<RecentEntries>>,
}

impl StateMachineStore {
    /// The recently applied entries, shared with the controller that serves them.
    pub(crate) fn recent(&self) -> Arc<std::sync::Mutex<RecentEntries>> {
        self.recent.clone()
    }

    /// Opens the state machine in `dir`, starting from the snapshot there if any, and
    /// publishes its image on `image_tx`.
    pub(crate) fn open(
        dir: &Path,
        image_tx: watch::Sender<Arc<ClusterImage>>,
        health: Arc<StorageHealth>,
    ) -> io::Result<StateMachineStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => Some(StoredSnapshot::decode(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is damaged: {e}", path.display()),
                )
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (image, last_applied, last_membership, current) = match stored {
            Some(s) => (
                Arc::new(s.image),
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
                Some(s.meta),
            ),
            None => (Arc::new(ClusterImage::default()), None, Membership::default(), None),
        };
        image_tx.send_replace(image.clone());
        Ok(StateMachineStore {
            image,
            last_applied,
            last_membership,
            files: Arc::new(SnapshotFiles {
                dir: dir.to_path_buf(),
                current: Mutex::new(current),
                seq: AtomicU64::new(0),
                health,
            }),
            image_tx,
            recent: Arc::default(),
        })
    }
}

/// How many applied entries a voter keeps in memory for broker-only nodes that fetch the
/// metadata log; one that is further behind gets the whole image instead.
pub(crate) const RECENT_ENTRIES: usize = 2048;

/// The last [`RECENT_ENTRIES`] applied entries, in index order.
#[derive(Debug, Default)]
pub(crate) struct RecentEntries {
    entries: std::collections::VecDeque<AppliedEntry>,
}

impl RecentEntries {
    fn push(&mut self, entry: AppliedEntry) {
        if self.entries.len() == RECENT_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The entries after index `after`, or `None` when some of them are no longer kept.
    pub(crate) fn after(&self, after: u64) -> Option<Vec<AppliedEntry>> {
        match self.entries.front() {
            Some(first) if first.index <= after + 1 => {
                Some(self.entries.iter().filter(|e| e.index > after).cloned().collect())
            }
            _ => None,
        }
    }
}

/// Applies one entry to `image`: what the state machine and a broker-only node's follower
/// both do. Returns the first producer id of an `AllocateProducerIds` record.
pub(crate) fn apply_entry(image: &mut ClusterImage, entry: &AppliedEntry) -> Option<i64> {
    image.applied_index = entry.index;
    // The leader that appended an entry is the active controller as of that entry; the blank
    // entry each new leader commits makes this track leadership changes.
    image.controller_id = entry.leader;
    let mut first_producer_id = None;
    for record in &entry.records {
        if let Some(first) = apply_record(image, record) {
            first_producer_id = Some(first);
        }
    }
    first_producer_id
}

/// Applies one record to `image`; returns the first producer id for `AllocateProducerIds`.
pub(crate) fn apply_record(image: &mut ClusterImage, record: &MetadataRecord) -> Option<i64> {
    match record {
        MetadataRecord::SetClusterId { cluster_id } => image.cluster_id = cluster_id.clone(),
        MetadataRecord::RegisterBroker {
            id,
            epoch,
            host,
            port,
            rack,
            incarnation,
            listeners,
            admin_port,
        } => {
            let broker = BrokerImage {
                id: *id,
                epoch: *epoch,
                host: host.clone(),
                port: *port,
                rack: rack.clone(),
                fenced: true,
                incarnation: *incarnation,
                listeners: listeners.clone(),
                registered_at: image.applied_index,
                admin_port: *admin_port,
            };
            image.brokers.insert(*id, broker);
        }
        MetadataRecord::UnfenceBroker { id, epoch } | MetadataRecord::FenceBroker { id, epoch } => {
            let fence = matches!(record, MetadataRecord::FenceBroker { .. });
            match image.brokers.get_mut(id) {
                Some(b) if b.epoch == *epoch => b.fenced = fence,
                _ => tracing::warn!(broker = id, epoch, "skipping fence change for a stale epoch"),
            }
        }
        MetadataRecord::CreateTopic { name, id, partitions, configs } => {
            if image.topics.contains_key(name) || image.topic_names_by_id.contains_key(id) {
                tracing::warn!(topic = %name, "skipping CreateTopic for an existing topic");
                return None;
            }
            let topic = TopicImage {
                name: name.clone(),
                id: *id,
                partitions: partitions.clone(),
                configs: configs.clone(),
            };
            image.topic_names_by_id.insert(*id, name.clone());
            image.topics.insert(name.clone(), topic);
        }
        MetadataRecord::CreatePartitions { topic_id, partitions } => {
            let topic = image.topic_names_by_id.get(topic_id).and_then(|n| image.topics.get_mut(n));
            match topic {
                Some(t) => t.partitions.extend(partitions.iter().map(|(i, p)| (*i, p.clone()))),
                None => tracing::warn!("skipping CreatePartitions for an unknown topic id"),
            }
        }
        MetadataRecord::PartitionChange { topic_id, partition, state } => {
            let topic = image.topic_names_by_id.get(topic_id).and_then(|n| image.topics.get_mut(n));
            match topic.and_then(|t| t.partitions.get_mut(partition)) {
                Some(p) => *p = state.clone(),
                None => {
                    tracing::warn!(partition, "skipping PartitionChange for an unknown partition")
                }
            }
        }
        MetadataRecord::ConfigChange { topic, configs } => match image.topics.get_mut(topic) {
            Some(t) => t.configs = configs.clone(),
            None => tracing::warn!(topic = %topic, "skipping ConfigChange for an unknown topic"),
        },
        MetadataRecord::RemoveTopic { id } => match image.topic_names_by_id.remove(id) {
            Some(name) => {
                image.topics.remove(&name);
            }
            None => tracing::warn!("skipping RemoveTopic for an unknown topic id"),
        },
        MetadataRecord::BrokerConfigChange { broker, configs } => {
            if configs.is_empty() {
                image.broker_configs.remove(broker);
            } else {
                image.broker_configs.insert(broker.clone(), configs.clone());
            }
        }
        MetadataRecord::AllocateProducerIds { broker: _, count } => {
            let first = image.next_producer_id;
            image.next_producer_id = first.saturating_add((*count).max(0));
            return Some(first);
        }
    }
    None
}

/// Builds a snapshot of the image as it was when the builder was made.
#[derive(Debug)]
pub(crate) struct SnapshotBuilder {
    image: Arc<ClusterImage>,
    last_applied: Option<MetadataLogId>,
    last_membership: Membership,
    files: Arc<SnapshotFiles>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let seq = self.files.seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match self.last_applied {
            Some(id) => format!("{}-{}-{seq}", id.leader_id.term, id.index),
            None => format!("none-{seq}"),
        };
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, image: (*self.image).clone() };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))?;
        self.files.store(&stored, bytes.clone()).await?;
        Ok(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<MetadataLogId>, Membership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetadataResponse>, StorageError>
    where
        I: IntoIterator<Item = MetadataEntry> + Send,
        I::IntoIter: Send,
    {
        let mut image = (*self.image).clone();
        let mut responses = Vec::new();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let records = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(request) => request.records,
                EntryPayload::Membership(m) => {
                    self.last_membership = Membership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            };
            let applied = AppliedEntry {
                index: entry.log_id.index,
                leader: i32::try_from(entry.log_id.leader_id.node_id).unwrap_or(-1),
                records,
            };
            let first_producer_id = apply_entry(&mut image, &applied);
            recent.push(applied);
            responses.push(MetadataResponse { first_producer_id });
        }
        drop(recent);
        if !responses.is_empty() {
            self.image = Arc::new(image);
            self.image_tx.send_replace(self.image.clone());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            image: self.image.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            files: self.files.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let received = StoredSnapshot::decode(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        // The meta openraft hands us is authoritative; store it with the received image.
        let stored = StoredSnapshot { meta: meta.clone(), image: received.image };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.files.store(&stored, bytes).await?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        let mut image = stored.image;
        image.applied_index = meta.last_log_id.map_or(0, |id| id.index);
        // Entries before the snapshot are not kept: a broker behind it gets the image.
        *self.recent.lock().unwrap_or_else(|e| e.into_inner()) = RecentEntries::default();
        self.image = Arc::new(image);
        self.image_tx.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.files.current.lock().await;
        let Some(meta) = current.clone() else {
            return Ok(None);
        };
        let path = self.files.dir.join(SNAPSHOT_FILE);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::image::PartitionImage;

    fn partition(leader: i32) -> PartitionImage {
        PartitionImage {
            replicas: vec![leader],
            isr: vec![leader],
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            ..Default::default()
        }
    }

    #[test]
    fn records_build_the_image() {
        let mut image = ClusterImage::default();
        let records = vec![
            MetadataRecord::SetClusterId { cluster_id: "abc".into() },
            MetadataRecord::RegisterBroker {
                id: 1,
                epoch: 3,
                host: "h".into(),
                port: 9092,
                rack: None,
                incarnation: [0; 16],
                listeners: Vec::new(),
                admin_port: None,
            },
            MetadataRecord::UnfenceBroker { id: 1, epoch: 2 },
        ];
        for r in &records {
            apply_record(&mut image, r);
        }
        assert!(image.brokers[&1].fenced, "stale epoch does not unfence");
        apply_record(&mut image, &MetadataRecord::UnfenceBroker { id: 1, epoch: 3 });
        assert!(!image.brokers[&1].fenced);

        let id = [7; 16];
        apply_record(
            &mut image,
            &MetadataRecord::CreateTopic {
                name: "t".into(),
                id,
                partitions: BTreeMap::from([(0, partition(1))]),
                configs: BTreeMap::new(),
            },
        );
        apply_record(
            &mut image,
            &MetadataRecord::CreatePartitions {
                topic_id: id,
                partitions: BTreeMap::from([(1, partition(1))]),
            },
        );
        assert_eq!(image.topic_by_id(&id).unwrap().partitions.len(), 2);
        let first =
            apply_record(&mut image, &MetadataRecord::AllocateProducerIds { broker: 1, count: 10 });
        assert_eq!(first, Some(0));
        assert_eq!(image.next_producer_id, 10);
        apply_record(&mut image, &MetadataRecord::RemoveTopic { id });
        assert!(image.topics.is_empty() && image.topic_names_by_id.is_empty());
    }
}
