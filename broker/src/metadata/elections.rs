//! Leader elections and broker fencing: pure decisions, image in, records out.
//!
//! Kafka's rules (ReplicationControlManager, PartitionChangeBuilder), reduced to what Sluice
//! needs:
//! - A leader comes from the ISR, in replica order (the preferred replica first), and must be
//!   an unfenced broker. Only when no ISR member can lead and the topic has
//!   `unclean.leader.election.enable=true` may an out-of-sync replica lead, with an ISR of itself.
//! - Fencing a broker (session expired, controlled shutdown) moves leadership of its partitions
//!   to another ISR member, or leaves them leaderless (-1) when there is none. It also leaves
//!   the ISR of partitions where others remain; the last ISR member stays, so that it can lead
//!   again when it returns (Kafka keeps it too, and never elects from an empty ISR).
//! - Unfencing elects a leader for every leaderless partition the broker can lead.
//! - Preferred-leader election (ElectLeaders, the periodic auto-rebalance) hands leadership back
//!   to the first replica when it is unfenced and in the ISR.
//!
//! Every leader change bumps the leader epoch; every change bumps the partition epoch.

use super::image::{ClusterImage, PartitionImage};
use super::reassignment::complete_if_caught_up;
use super::state_machine::apply_record;
use super::types::AlterPartition;
use super::types::MetadataRecord;
use super::MetadataError;

/// The leader and ISR a partition gets now, or `None` when no replica may lead.
pub(crate) fn elect(
    image: &ClusterImage,
    p: &PartitionImage,
    unclean: bool,
) -> Option<(i32, Vec<i32>)> {
    let clean = p.replicas.iter().find(|r| p.isr.contains(r) && image.is_unfenced(**r));
    if let Some(&leader) = clean {
        return Some((leader, p.isr.clone()));
    }
    if unclean {
        let leader = *p.replicas.iter().find(|r| image.is_unfenced(**r))?;
        return Some((leader, vec![leader]));
    }
    None
}

/// `p` led by `leader` with ISR `isr`: a new leader epoch and partition epoch.
fn led_by(p: &PartitionImage, leader: i32, isr: Vec<i32>) -> PartitionImage {
    PartitionImage {
        leader,
        isr,
        leader_epoch: p.leader_epoch + 1,
        partition_epoch: p.partition_epoch + 1,
        ..p.clone()
    }
}

fn change(
    image: &ClusterImage,
    topic: &str,
    partition: i32,
    state: PartitionImage,
) -> MetadataRecord {
    let topic_id = image.topics[topic].id;
    MetadataRecord::PartitionChange { topic_id, partition, state }
}

/// Records that fence broker `id` (at `epoch`) and move its leaderships away.
pub(crate) fn plan_fence(image: &ClusterImage, id: i32, epoch: i64) -> Vec<MetadataRecord> {
    let fence = MetadataRecord::FenceBroker { id, epoch };
    let mut scratch = image.clone();
    apply_record(&mut scratch, &fence);
    let mut records = vec![fence];
    for topic in scratch.topics.values() {
        for (&index, p) in &topic.partitions {
            let in_isr = p.isr.contains(&id);
            if p.leader != id && !(in_isr && p.isr.len() > 1) {
                continue;
            }
            let mut next = p.clone();
            if in_isr && p.isr.len() > 1 {
                next.isr.retain(|&r| r != id);
            }
            if p.leader == id {
                let unclean = scratch.unclean_allowed(&topic.name);
                match elect(&scratch, &next, unclean) {
                    Some((leader, isr)) => {
                        next.leader = leader;
                        next.isr = isr;
                    }
                    None => next.leader = -1,
                }
                next.leader_epoch += 1;
            }
            next.partition_epoch += 1;
            records.push(change(&scratch, &topic.name, index, next));
        }
    }
    records
}

/// Records that unfence broker `id` (at `epoch`) and elect leaders for the leaderless
/// partitions it can lead.
pub(crate) fn plan_unfence(image: &ClusterImage, id: i32, epoch: i64) -> Vec<MetadataRecord> {
    let unfence = MetadataRecord::UnfenceBroker { id, epoch };
    let mut scratch = image.clone();
    apply_record(&mut scratch, &unfence);
    let mut records = vec![unfence];
    for topic in scratch.topics.values() {
        for (&index, p) in &topic.partitions {
            if p.leader >= 0 || !p.replicas.contains(&id) {
                continue;
            }
            if let Some((leader, isr)) = elect(&scratch, p, scratch.unclean_allowed(&topic.name)) {
                records.push(change(&scratch, &topic.name, index, led_by(p, leader, isr)));
            }
        }
    }
    records
}

/// A leader's ISR change (Kafka's AlterPartition, KIP-497/903), checked against the image:
/// the leader must be the partition's leader at `leader_epoch` with a current broker epoch, the
/// partition must still be at `partition_epoch` (else the leader decided on an old state), the
/// new ISR must hold the leader and only replicas, and a member it adds must be an unfenced
/// broker. The ISR keeps replica order; the partition epoch is bumped.
pub(crate) fn plan_alter_partition(
    image: &ClusterImage,
    request: &AlterPartition,
) -> Result<MetadataRecord, MetadataError> {
    let AlterPartition {
        broker,
        broker_epoch,
        topic_id,
        partition,
        leader_epoch,
        partition_epoch,
        ref new_isr,
        ref new_isr_epochs,
    } = *request;
    match image.brokers.get(&broker) {
        Some(b) if b.epoch == broker_epoch && !b.fenced => {}
        _ => {
            return Err(MetadataError::StaleBrokerEpoch(format!(
                "Broker {broker} at epoch {broker_epoch} is not a live registration"
            )))
        }
    }
    let topic = image.topic_by_id(&topic_id).ok_or(MetadataError::UnknownTopicId)?;
    let p = topic
        .partitions
        .get(&partition)
        .ok_or_else(|| MetadataError::UnknownTopic(topic.name.clone()))?;
    if p.leader != broker || p.leader_epoch != leader_epoch {
        return Err(MetadataError::FencedLeaderEpoch(format!(
            "{}-{partition}: broker {broker} at leader epoch {leader_epoch} does not lead it \
             (leader {} at epoch {})",
            topic.name, p.leader, p.leader_epoch
        )));
    }
    if p.partition_epoch != partition_epoch {
        return Err(MetadataError::InvalidUpdateVersion(format!(
            "{}-{partition} is at partition epoch {}, not {partition_epoch}",
            topic.name, p.partition_epoch
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    if !new_isr.contains(&broker)
        || new_isr.iter().any(|r| !p.replicas.contains(r) || !seen.insert(*r))
    {
        return Err(MetadataError::InvalidRequest(format!(
            "{}-{partition}: the ISR {new_isr:?} must hold the leader and only replicas {:?}",
            topic.name, p.replicas
        )));
    }
    if let Some(r) = new_isr.iter().find(|r| !p.isr.contains(r) && !image.is_unfenced(**r)) {
        return Err(MetadataError::IneligibleReplica(format!(
            "{}-{partition}: broker {r} is fenced or shutting down and cannot join the ISR",
            topic.name
        )));
    }
    for (r, epoch) in new_isr_epochs.iter().filter(|(r, _)| !p.isr.contains(r)) {
        let registered = image.brokers.get(r).map_or(-1, |b| b.epoch);
        if *epoch != registered {
            return Err(MetadataError::IneligibleReplica(format!(
                "{}-{partition}: broker {r} fetched at broker epoch {epoch}, but its registration \
                 is at {registered}",
                topic.name
            )));
        }
    }
    let mut next = p.clone();
    next.isr = p.replicas.iter().copied().filter(|r| new_isr.contains(r)).collect();
    next.partition_epoch += 1;
    // The ISR change that brings in the last replica a reassignment adds completes it.
    let next = complete_if_caught_up(image, next);
    Ok(change(image, &topic.name, partition, next))
}

/// The outcome of a preferred-leader election for one partition (Kafka's ElectLeaders errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Preferred {
    /// Leadership moves to the preferred replica.
    Elected(MetadataRecord),
    /// The preferred replica already leads (ELECTION_NOT_NEEDED).
    NotNeeded,
    /// The preferred replica is fenced or out of sync (PREFERRED_LEADER_NOT_AVAILABLE).
    NotAvailable,
}

/// Unclean election for one partition (ElectLeaders UNCLEAN): only a partition without a
/// leader gets one, possibly out of sync.
pub(crate) fn plan_unclean(image: &ClusterImage, topic: &str, partition: i32) -> Option<Preferred> {
    let p = image.topic(topic)?.partitions.get(&partition)?;
    if p.leader >= 0 {
        return Some(Preferred::NotNeeded);
    }
    Some(match elect(image, p, true) {
        Some((leader, isr)) => {
            Preferred::Elected(change(image, topic, partition, led_by(p, leader, isr)))
        }
        None => Preferred::NotAvailable,
    })
}

/// Preferred-leader election for one partition.
pub(crate) fn plan_preferred(
    image: &ClusterImage,
    topic: &str,
    partition: i32,
) -> Option<Preferred> {
    let p = image.topic(topic)?.partitions.get(&partition)?;
    let preferred = *p.replicas.first()?;
    Some(if p.leader == preferred {
        Preferred::NotNeeded
    } else if p.isr.contains(&preferred) && image.is_unfenced(preferred) {
        let next = led_by(p, preferred, p.isr.clone());
        Preferred::Elected(change(image, topic, partition, next))
    } else {
        Preferred::NotAvailable
    })
}

/// Preferred-leader elections for every partition whose preferred replica could lead but does
/// not (the periodic auto-rebalance).
pub(crate) fn plan_rebalance(image: &ClusterImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for &index in topic.partitions.keys() {
            if let Some(Preferred::Elected(r)) = plan_preferred(image, &topic.name, index) {
                records.push(r);
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::image::{BrokerImage, TopicImage};

    fn image(brokers: &[(i32, bool)], partitions: &[(Vec<i32>, Vec<i32>, i32)]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for &(id, fenced) in brokers {
            let b = BrokerImage {
                id,
                epoch: 5,
                host: "h".into(),
                port: 1,
                rack: None,
                fenced,
                incarnation: [0; 16],
                listeners: Vec::new(),
                registered_at: 0,
                admin_port: None,
            };
            image.brokers.insert(id, b);
        }
        let partitions = partitions
            .iter()
            .enumerate()
            .map(|(i, (replicas, isr, leader))| {
                let p = PartitionImage {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: 3,
                    partition_epoch: 7,
                    ..Default::default()
                };
                (i as i32, p)
            })
            .collect();
        let t = TopicImage { name: "t".into(), id: [1; 16], partitions, configs: BTreeMap::new() };
        image.topic_names_by_id.insert(t.id, "t".into());
        image.topics.insert("t".into(), t);
        image
    }

    fn after(image: &ClusterImage, records: &[MetadataRecord]) -> ClusterImage {
        let mut image = image.clone();
        for r in records {
            apply_record(&mut image, r);
        }
        image
    }

    fn part(image: &ClusterImage, i: i32) -> &PartitionImage {
        &image.topics["t"].partitions[&i]
    }

    #[test]
    fn fencing_the_only_replica_leaves_the_partition_leaderless_with_its_isr() {
        let img = image(&[(1, false), (2, false)], &[(vec![1], vec![1], 1), (vec![2], vec![2], 2)]);
        let next = after(&img, &plan_fence(&img, 1, 5));
        assert!(next.brokers[&1].fenced);
        let p = part(&next, 0);
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch),
            (-1, vec![1], 4, 8)
        );
        assert_eq!(part(&next, 1), part(&img, 1), "other brokers' partitions untouched");

        // It comes back: unfencing makes it lead again under a new epoch.
        let back = after(&next, &plan_unfence(&next, 1, 5));
        let p = part(&back, 0);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 5, 9));
    }

    #[test]
    fn fencing_a_leader_elects_the_next_in_sync_unfenced_replica() {
        let img = image(
            &[(1, false), (2, true), (3, false)],
            &[
                (vec![1, 2, 3], vec![1, 2, 3], 1),
                (vec![3, 1], vec![3, 1], 3),
                (vec![1, 2], vec![1], 1),
            ],
        );
        let next = after(&img, &plan_fence(&img, 1, 5));
        let p = part(&next, 0);
        assert_eq!((p.leader, p.isr.clone()), (3, vec![2, 3]), "2 is fenced: skipped");
        let p = part(&next, 1);
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (3, vec![3], 3),
            "follower leaves ISR"
        );
        assert_eq!(part(&next, 2).leader, -1, "2 is out of sync: no unclean election");
    }

    #[test]
    fn unclean_election_only_when_the_topic_allows_it() {
        let mut img = image(&[(1, false), (2, false)], &[(vec![1, 2], vec![1], 1)]);
        img.topics
            .get_mut("t")
            .unwrap()
            .configs
            .insert("unclean.leader.election.enable".into(), "true".into());
        let next = after(&img, &plan_fence(&img, 1, 5));
        let p = part(&next, 0);
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn unclean_election_on_request_only_for_leaderless_partitions() {
        let img = image(
            &[(1, true), (2, false)],
            &[(vec![1, 2], vec![1], -1), (vec![2], vec![2], 2), (vec![1], vec![1], -1)],
        );
        let Some(Preferred::Elected(r)) = plan_unclean(&img, "t", 0) else { panic!() };
        let next = after(&img, &[r]);
        assert_eq!((part(&next, 0).leader, part(&next, 0).isr.clone()), (2, vec![2]));
        assert_eq!(plan_unclean(&img, "t", 1), Some(Preferred::NotNeeded));
        assert_eq!(plan_unclean(&img, "t", 2), Some(Preferred::NotAvailable), "1 is fenced");
    }

    #[test]
    fn isr_changes_are_checked_against_epochs_and_fencing() {
        let img = image(&[(1, false), (2, false), (3, true)], &[(vec![1, 2, 3], vec![1], 1)]);
        let plan = |broker: i32,
                    broker_epoch: i64,
                    leader_epoch: i32,
                    partition_epoch: i32,
                    isr: &[i32]| {
            let request = AlterPartition {
                broker,
                broker_epoch,
                topic_id: [1; 16],
                partition: 0,
                leader_epoch,
                partition_epoch,
                new_isr: isr.to_vec(),
                new_isr_epochs: Default::default(),
            };
            plan_alter_partition(&img, &request)
        };
        let r = plan(1, 5, 3, 7, &[2, 1]).unwrap();
        let next = after(&img, &[r]);
        let p = part(&next, 0);
        assert_eq!((p.isr.clone(), p.partition_epoch, p.leader_epoch), (vec![1, 2], 8, 3));
        assert!(matches!(plan(1, 4, 3, 7, &[1, 2]), Err(MetadataError::StaleBrokerEpoch(_))));
        assert!(matches!(plan(2, 5, 3, 7, &[1, 2]), Err(MetadataError::FencedLeaderEpoch(_))));
        assert!(matches!(plan(1, 5, 2, 7, &[1, 2]), Err(MetadataError::FencedLeaderEpoch(_))));
        assert!(matches!(plan(1, 5, 3, 6, &[1, 2]), Err(MetadataError::InvalidUpdateVersion(_))));
        assert!(matches!(plan(1, 5, 3, 7, &[2]), Err(MetadataError::InvalidRequest(_))));
        assert!(matches!(plan(1, 5, 3, 7, &[1, 4]), Err(MetadataError::InvalidRequest(_))));
        assert!(matches!(plan(1, 5, 3, 7, &[1, 3]), Err(MetadataError::IneligibleReplica(_))));
        // KIP-903: a joining member's fetch must be from its current registration.
        let joining = |epoch: i64| AlterPartition {
            broker: 1,
            broker_epoch: 5,
            topic_id: [1; 16],
            partition: 0,
            leader_epoch: 3,
            partition_epoch: 7,
            new_isr: vec![1, 2],
            new_isr_epochs: [(2, epoch)].into(),
        };
        assert!(plan_alter_partition(&img, &joining(5)).is_ok());
        let stale = plan_alter_partition(&img, &joining(4));
        assert!(matches!(stale, Err(MetadataError::IneligibleReplica(_))), "{stale:?}");
    }

    #[test]
    fn a_stale_epoch_fences_nothing() {
        let img = image(&[(1, false)], &[(vec![1], vec![1], 1)]);
        let next = after(&img, &plan_fence(&img, 1, 4));
        assert!(!next.brokers[&1].fenced);
    }

    #[test]
    fn preferred_election_returns_leadership_to_the_first_replica() {
        let img = image(
            &[(1, false), (2, false), (3, true)],
            &[
                (vec![1, 2], vec![1, 2], 2),
                (vec![1, 2], vec![2], 2),
                (vec![3, 1], vec![3, 1], 1),
                (vec![1], vec![1], 1),
            ],
        );
        assert!(matches!(plan_preferred(&img, "t", 0), Some(Preferred::Elected(_))));
        assert_eq!(plan_preferred(&img, "t", 1), Some(Preferred::NotAvailable), "out of sync");
        assert_eq!(plan_preferred(&img, "t", 2), Some(Preferred::NotAvailable), "fenced");
        assert_eq!(plan_preferred(&img, "t", 3), Some(Preferred::NotNeeded));
        assert_eq!(plan_preferred(&img, "t", 9), None);
        let next = after(&img, &plan_rebalance(&img));
        assert_eq!((part(&next, 0).leader, part(&next, 0).leader_epoch), (1, 4));
        assert_eq!(part(&next, 1).leader, 2);
    }
}
