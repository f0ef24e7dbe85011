//! Partition reassignment (KIP-455, Kafka's AlterPartitionReassignments): pure decisions,
//! image in, partition state out.
//!
//! Moving a partition from its current replicas to `target` happens in three steps, as in
//! Kafka's KRaft controller:
//! 1. Grow: the replica set becomes `target` followed by the replicas being removed, with
//!    `adding = target − current` and `removing = current − target`. The ISR is unchanged.
//! 2. Catch up: the added replicas follow the leader like any other; the leader puts each in
//!    the ISR once it has caught up (AlterPartition).
//! 3. Complete, in the same change that puts the last adding replica in the ISR (at once when
//!    nothing is added): the replica set becomes `target` and the removed replicas leave the
//!    ISR, under a new leader epoch so that they are fenced at once. If the leader was among
//!    them, the first target replica in the ISR that is unfenced leads. A reassignment that
//!    shrinks the replica set also waits for every target replica to be in the ISR (Kafka
//!    4.3's rule, KAFKA-19975); one that would leave no ISR or no leader waits for a later
//!    change.
//!
//! A new target during a reassignment starts from the grown replica set: what is not in the
//! new target is removed, and a replica still being added stays an adding replica (so it
//! must catch up before anything completes); the same target again changes nothing. Cancelling
//! (no target) takes the adding replicas out of the replica set and the ISR again (when that
//! leaves no ISR, only a topic with `unclean.leader.election.enable` may revert, with the first
//! live replica alone in the ISR). Removed replicas delete their copy once they see the
//! completed state (the replica manager drops every partition the image no longer places on
//! it).

use std::collections::BTreeSet;

use super::image::{ClusterImage, PartitionImage};
use super::MetadataError;

/// Kafka's checks of a manual replica list (topic creation, reassignment): not empty, no
/// broker twice, every broker registered.
pub(crate) fn check_assignment(
    image: &ClusterImage,
    replicas: &[i32],
) -> Result<(), MetadataError> {
    let err = |msg: String| Err(MetadataError::InvalidReplicaAssignment(msg));
    if replicas.is_empty() {
        return err("The manual partition assignment includes an empty replica list.".into());
    }
    let mut seen = BTreeSet::new();
    for &b in replicas {
        if !seen.insert(b) {
            return err(format!(
                "The manual partition assignment includes the broker {b} more than once."
            ));
        }
        if !image.brokers.contains_key(&b) {
            return err(format!(
                "The manual partition assignment includes broker {b}, but no such broker is \
                 registered."
            ));
        }
    }
    Ok(())
}

fn without(list: &[i32], gone: &[i32]) -> Vec<i32> {
    list.iter().copied().filter(|r| !gone.contains(r)).collect()
}

/// The new state of `topic`-`partition` for a reassignment to `target`, or for cancelling the
/// ongoing one (`None`); `Ok(None)` when nothing changes. `allow_rf_change` false refuses a
/// target of another size than the current replica set (KIP-860).
pub(crate) fn plan_reassignment(
    image: &ClusterImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_rf_change: bool,
) -> Result<Option<PartitionImage>, MetadataError> {
    let p = image
        .topic(topic)
        .and_then(|t| t.partitions.get(&partition))
        .ok_or_else(|| MetadataError::UnknownTopic(topic.to_owned()))?;
    let Some(target) = target else {
        return cancel(image, topic, partition, p).map(Some);
    };
    check_assignment(image, target)?;
    // The size the partition will have: an ongoing reassignment's target counts.
    let pending = p.replicas.len() - p.removing_replicas.len();
    if !allow_rf_change && target.len() != pending {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "The replication factor is changed from {pending} to {}",
            target.len()
        )));
    }
    let original = without(&p.replicas, &p.adding_replicas);
    let removing = without(&p.replicas, target);
    let mut grown = p.clone();
    grown.replicas = target.iter().copied().chain(removing.iter().copied()).collect();
    grown.adding_replicas = without(target, &original);
    grown.removing_replicas = removing;
    if grown == *p {
        return Ok(None);
    }
    grown.partition_epoch += 1;
    Ok(Some(complete_if_caught_up(image, grown)))
}

/// Reverts an ongoing reassignment: the adding replicas leave the replica set and the ISR.
fn cancel(
    image: &ClusterImage,
    topic: &str,
    partition: i32,
    p: &PartitionImage,
) -> Result<PartitionImage, MetadataError> {
    if !p.reassigning() {
        return Err(MetadataError::NoReassignmentInProgress);
    }
    let replicas = without(&p.replicas, &p.adding_replicas);
    let mut isr = without(&p.isr, &p.adding_replicas);
    if isr.is_empty() {
        let live = replicas.iter().copied().find(|r| image.is_unfenced(*r));
        match live.filter(|_| image.unclean_allowed(topic)) {
            Some(r) => isr.push(r),
            None => {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "Unable to revert partition assignment for {topic}:{partition} because it \
                     would require an unclean leader election."
                )))
            }
        }
    }
    let mut reverted = p.clone();
    reverted.replicas = replicas;
    reverted.isr = isr;
    reverted.adding_replicas.clear();
    reverted.removing_replicas.clear();
    reverted.partition_epoch += 1;
    // The adding replicas leave: a new leader epoch fences them, as at completion.
    reverted.leader_epoch += 1;
    if !reverted.isr.contains(&p.leader) {
        let next = reverted
            .replicas
            .iter()
            .copied()
            .find(|r| reverted.isr.contains(r) && image.is_unfenced(*r));
        reverted.leader = next.unwrap_or(-1);
    }
    Ok(reverted)
}

/// `p` with its reassignment completed, when every adding replica is in the ISR (every target
/// replica, when the replica set shrinks) and the result keeps an ISR and a leader; otherwise
/// `p` as it is. The caller bumps the partition epoch for the change this is part of.
pub(crate) fn complete_if_caught_up(image: &ClusterImage, p: PartitionImage) -> PartitionImage {
    let in_isr = |list: &[i32]| list.iter().all(|r| p.isr.contains(r));
    if !p.reassigning() || !in_isr(&p.adding_replicas) {
        return p;
    }
    let replicas = without(&p.replicas, &p.removing_replicas);
    if p.removing_replicas.len() > p.adding_replicas.len() && !in_isr(&replicas) {
        return p;
    }
    let isr = without(&p.isr, &p.removing_replicas);
    let leader = if isr.contains(&p.leader) {
        p.leader
    } else {
        match replicas.iter().copied().find(|r| isr.contains(r) && image.is_unfenced(*r)) {
            Some(leader) => leader,
            None => return p,
        }
    };
    // Removed replicas are fenced by a new leader epoch even when the leader stays.
    let bump = leader != p.leader || !p.removing_replicas.is_empty();
    PartitionImage {
        leader_epoch: p.leader_epoch + i32::from(bump),
        leader,
        replicas,
        isr,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        partition_epoch: p.partition_epoch,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::image::{BrokerImage, TopicImage};

    fn image(fenced: &[i32], p: PartitionImage) -> ClusterImage {
        let mut image = ClusterImage::default();
        for id in 1..=5 {
            image.brokers.insert(
                id,
                BrokerImage {
                    id,
                    epoch: 1,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    fenced: fenced.contains(&id),
                    incarnation: [0; 16],
                    listeners: Vec::new(),
                    registered_at: 0,
                    admin_port: None,
                },
            );
        }
        let t = TopicImage {
            name: "t".into(),
            id: [1; 16],
            partitions: BTreeMap::from([(0, p)]),
            configs: BTreeMap::new(),
        };
        image.topics.insert("t".into(), t);
        image.reindex();
        image
    }

    fn part(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionImage {
        PartitionImage {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 5,
            partition_epoch: 9,
            ..Default::default()
        }
    }

    fn plan(img: &ClusterImage, target: Option<&[i32]>) -> Result<PartitionImage, MetadataError> {
        plan_reassignment(img, "t", 0, target, true).map(|p| p.expect("a change"))
    }

    #[test]
    fn a_move_grows_the_replica_set_then_completes_when_the_added_replica_is_in_sync() {
        let img = image(&[], part(&[1, 2, 3], &[1, 2, 3], 1));
        let grown = plan(&img, Some(&[2, 3, 4])).unwrap();
        assert_eq!(grown.replicas, [2, 3, 4, 1], "target first, then the removed replica");
        assert_eq!(
            (grown.adding_replicas.as_slice(), grown.removing_replicas.as_slice()),
            (&[4][..], &[1][..])
        );
        assert_eq!(grown.isr, [1, 2, 3], "the ISR is unchanged");
        assert_eq!((grown.leader, grown.leader_epoch, grown.partition_epoch), (1, 5, 10));

        // Replica 4 caught up: the leader's AlterPartition puts it in the ISR.
        let mut caught_up = grown.clone();
        caught_up.isr = vec![2, 3, 4, 1];
        let done = complete_if_caught_up(&img, caught_up);
        assert_eq!(done.replicas, [2, 3, 4]);
        assert_eq!(done.isr, [2, 3, 4]);
        assert!(!done.reassigning());
        assert_eq!((done.leader, done.leader_epoch), (2, 6), "the removed leader hands over");
        let mut listed_again = img.clone();
        listed_again.topics.get_mut("t").unwrap().partitions.insert(0, grown.clone());
        let again = plan_reassignment(&listed_again, "t", 0, Some(&[2, 3, 4]), false).unwrap();
        assert_eq!(again, None, "the same target again changes nothing");
        let back = plan(&listed_again, Some(&[1, 2, 3])).unwrap();
        assert_eq!(
            (back.replicas.as_slice(), back.isr.as_slice()),
            (&[1, 2, 3][..], &[1, 2, 3][..])
        );
        assert!(!back.reassigning(), "going back to the old replicas completes at once");
    }

    #[test]
    fn completion_waits_while_an_added_replica_is_out_of_sync_or_no_leader_is_possible() {
        let img = image(&[], part(&[1, 2, 3], &[1, 2, 3], 1));
        let grown = plan(&img, Some(&[4, 5])).unwrap();
        let mut half = grown.clone();
        half.isr = vec![4, 1, 2, 3];
        assert_eq!(complete_if_caught_up(&img, half.clone()), half, "replica 5 is still behind");

        // Both added, but both fenced: no one could lead, so the old leader stays.
        let fenced = image(&[4, 5], part(&[1, 2, 3], &[1, 2, 3], 1));
        let mut all = grown;
        all.isr = vec![4, 5, 1, 2, 3];
        assert_eq!(complete_if_caught_up(&fenced, all.clone()), all);
        assert_eq!(complete_if_caught_up(&img, all).replicas, [4, 5]);
    }

    #[test]
    fn removing_or_reordering_replicas_completes_at_once() {
        let img = image(&[], part(&[1, 2, 3], &[1, 2, 3], 1));
        let shrunk = plan(&img, Some(&[3, 2])).unwrap();
        assert_eq!((shrunk.replicas.as_slice(), shrunk.isr.as_slice()), (&[3, 2][..], &[2, 3][..]));
        assert_eq!((shrunk.leader, shrunk.leader_epoch), (3, 6));
        let reordered = plan(&img, Some(&[3, 2, 1])).unwrap();
        assert_eq!(reordered.replicas, [3, 2, 1]);
        assert_eq!((reordered.leader, reordered.leader_epoch), (1, 5), "no epoch bump");
        let dropped = plan(&img, Some(&[1, 2])).unwrap();
        assert_eq!((dropped.leader, dropped.leader_epoch), (1, 6), "the removed one is fenced");
        // A smaller replica set waits for every target replica to be in sync.
        let lagging = image(&[], part(&[1, 2, 3], &[1, 3], 1));
        let waiting = plan(&lagging, Some(&[1, 2])).unwrap();
        assert!(waiting.reassigning(), "replica 2 is out of sync");
        assert_eq!(plan_reassignment(&img, "t", 0, Some(&[1, 2, 3]), true).unwrap(), None);
    }

    #[test]
    fn a_new_target_starts_from_the_grown_set_and_cancel_reverts() {
        let img = image(&[], part(&[1, 2, 3], &[1, 2, 3], 1));
        let grown = plan(&img, Some(&[2, 3, 4])).unwrap();
        let img2 = image(&[], grown.clone());
        let again = plan(&img2, Some(&[2, 3, 5])).unwrap();
        assert_eq!(again.replicas, [2, 3, 5, 4, 1]);
        assert_eq!(
            (again.adding_replicas.as_slice(), again.removing_replicas.as_slice()),
            (&[5][..], &[4, 1][..])
        );

        let mut with_added_in_isr = grown;
        with_added_in_isr.adding_replicas = vec![4];
        with_added_in_isr.isr = vec![1, 2, 3];
        let img3 = image(&[], with_added_in_isr);
        let reverted = plan(&img3, None).unwrap();
        assert_eq!(reverted.replicas, [2, 3, 1], "the adding replica leaves, order kept");
        assert!(!reverted.reassigning());
        assert!(matches!(plan(&img, None), Err(MetadataError::NoReassignmentInProgress)));
    }

    #[test]
    fn cancel_elects_again_when_an_added_replica_led() {
        let mut p = part(&[4, 1], &[4], 4);
        p.adding_replicas = vec![4];
        p.removing_replicas = vec![1];
        let mut img = image(&[], p.clone());
        assert!(matches!(plan(&img, None), Err(MetadataError::InvalidReplicaAssignment(_))));
        let unclean = ("unclean.leader.election.enable".to_string(), "true".to_string());
        img.topics.get_mut("t").unwrap().configs.extend([unclean]);
        let forced = plan(&img, None).unwrap();
        assert_eq!(
            (forced.replicas.as_slice(), forced.isr.as_slice(), forced.leader),
            (&[1][..], &[1][..], 1)
        );
        p.isr = vec![4, 1];
        let reverted = plan(&image(&[], p), None).unwrap();
        assert_eq!((reverted.replicas.as_slice(), reverted.isr.as_slice()), (&[1][..], &[1][..]));
        assert_eq!((reverted.leader, reverted.leader_epoch), (1, 6));
    }

    #[test]
    fn bad_targets_get_kafkas_errors() {
        let img = image(&[], part(&[1, 2, 3], &[1, 2, 3], 1));
        for target in [&[][..], &[1, 1, 2][..], &[1, 2, 9][..]] {
            let r = plan(&img, Some(target));
            assert!(
                matches!(r, Err(MetadataError::InvalidReplicaAssignment(_))),
                "{target:?}: {r:?}"
            );
        }
        let r = plan_reassignment(&img, "t", 0, Some(&[1, 2]), false);
        assert!(matches!(r, Err(MetadataError::InvalidReplicationFactor(_))), "{r:?}");
        assert!(plan_reassignment(&img, "t", 0, Some(&[3, 1, 2]), false).is_ok());
        let r = plan_reassignment(&img, "t", 7, Some(&[1]), true);
        assert!(matches!(r, Err(MetadataError::UnknownTopic(_))), "{r:?}");
    }
}
