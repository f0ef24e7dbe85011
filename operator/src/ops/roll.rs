//! Which broker may restart next in a rolling restart, as a pure function of what the
//! operator observed: the broker pods (revision, readiness) and the cluster as its brokers
//! describe it (partitions with replicas and ISR, `min.insync.replicas` per topic, the
//! metadata quorum). No I/O, no clock: every branch is a unit test.
//!
//! Rules (Strimzi's KafkaRoller and KafkaAvailability, made stricter where they lost data or
//! looped):
//!
//! 1. One broker at a time: while any broker pod is not ready, or a broker already on the new
//!    revision has a partition it is not in sync for, nothing else restarts. This is how each
//!    step waits for the restarted broker to rejoin every ISR.
//! 2. A pod that is stuck (its container crash-looping or failing to start) is restarted first
//!    and without the checks below: it serves nothing, and its new revision may be the fix.
//!    A pod that runs but is not ready is waited for, never restarted: it may be recovering
//!    its logs, and killing it would start the recovery again.
//! 3. The active controller (the quorum's leader) goes last; the others by ordinal, highest
//!    first.
//! 4. A broker restarts only if no partition it hosts would fall below `min.insync.replicas`:
//!    refused when the partition's ISR is already smaller than its min ISR, or equal to it with
//!    the broker in it. A partition with no more replicas than its min ISR cannot stay
//!    writable through any restart and does not block (RF 1 topics would otherwise block every
//!    roll forever).
//! 5. A voter restarts only if the other voters still hold a caught-up majority
//!    (DescribeQuorum), so the metadata quorum keeps working. A quorum of one or two voters
//!    has no majority without each of them and does not block (as an RF 1 partition).
//!
//! A blocked roll names the broker and each partition (or the quorum) that blocks it, with
//! numbers a person can check; the reconciler puts that in the status and an Event and looks
//! again later, without restarting anything.

use std::collections::BTreeMap;

use super::ClusterState;

/// A broker pod as the roll sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerPod {
    pub ordinal: i32,
    /// Its StatefulSet revision (`controller-revision-hash`).
    pub revision: String,
    pub ready: bool,
    /// Its container is crash-looping or cannot start.
    pub stuck: bool,
    /// Being deleted already.
    pub terminating: bool,
}

/// What the roll does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollStep {
    /// Every pod runs the target revision and is ready.
    Done,
    /// Nothing may restart yet; the reason says what is awaited.
    Wait(String),
    /// Delete this pod (the StatefulSet controller makes it again on the new revision).
    Restart { ordinal: i32, why: String },
    /// The next broker to roll cannot restart safely; each reason names a partition or the
    /// quorum.
    Blocked { ordinal: i32, reasons: Vec<String> },
}

/// Topic `min.insync.replicas`, with the cluster's default for topics without an override.
#[derive(Clone, Debug, Default)]
pub struct MinIsr {
    pub default: i32,
    pub topics: BTreeMap<String, i32>,
}

impl MinIsr {
    pub fn of(&self, topic: &str) -> i32 {
        self.topics.get(topic).copied().unwrap_or(self.default)
    }
}

/// The next step of rolling `pods` to `target` revision. `state` is `None` when no broker
/// answered; `voters` are the quorum's voter ids.
pub fn next_step(
    pods: &[BrokerPod],
    target: &str,
    state: Option<&ClusterState>,
    min_isr: &MinIsr,
    voters: &[i32],
) -> RollStep {
    let stale: Vec<&BrokerPod> = pods.iter().filter(|p| p.revision != target).collect();
    if let Some(p) = pods.iter().find(|p| p.terminating) {
        return RollStep::Wait(format!("broker {} is shutting down", p.ordinal));
    }
    if let Some(p) = stale.iter().filter(|p| p.stuck).max_by_key(|p| p.ordinal) {
        return RollStep::Restart {
            ordinal: p.ordinal,
            why: format!("broker {} is not running (crash-looping or not starting)", p.ordinal),
        };
    }
    if let Some(p) = pods.iter().find(|p| !p.ready) {
        return RollStep::Wait(format!("broker {} is not ready yet", p.ordinal));
    }
    if stale.is_empty() {
        return RollStep::Done;
    }
    let Some(state) = state else {
        return RollStep::Wait("no broker answered: cannot check partitions".into());
    };
    // Brokers already rolled must be back in every ISR before the next one goes.
    for p in pods.iter().filter(|p| p.revision == target) {
        if let Some(part) = state
            .partitions
            .iter()
            .find(|part| part.replicas.contains(&p.ordinal) && !part.isr.contains(&p.ordinal))
        {
            return RollStep::Wait(format!(
                "broker {} is not yet back in the ISR of {}-{}",
                p.ordinal, part.topic, part.partition
            ));
        }
    }
    let leader = state.quorum.as_ref().map(|q| q.leader);
    let next = stale
        .iter()
        .max_by_key(|p| (Some(p.ordinal) != leader, p.ordinal))
        .expect("stale is not empty");
    let reasons = blockers(next.ordinal, state, min_isr, voters);
    if reasons.is_empty() {
        let role = if Some(next.ordinal) == leader { " (the active controller, last)" } else { "" };
        RollStep::Restart {
            ordinal: next.ordinal,
            why: format!(
                "broker {}{role} runs an old revision; {} of {} to go",
                next.ordinal,
                stale.len(),
                pods.len()
            ),
        }
    } else {
        RollStep::Blocked { ordinal: next.ordinal, reasons }
    }
}

/// Why restarting broker `id` now would cost availability; empty when it would not.
pub fn blockers(id: i32, state: &ClusterState, min_isr: &MinIsr, voters: &[i32]) -> Vec<String> {
    let mut reasons = Vec::new();
    for p in state.partitions.iter().filter(|p| p.replicas.contains(&id)) {
        let min = min_isr.of(&p.topic);
        let (isr, replicas) = (p.isr.len() as i32, p.replicas.len() as i32);
        if replicas <= min {
            continue;
        }
        let in_isr = p.isr.contains(&id);
        let isr_list = p.isr.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        if isr < min {
            reasons.push(format!(
                "{}-{} is already below min.insync.replicas={min} (ISR [{isr_list}])",
                p.topic, p.partition
            ));
        } else if isr == min && in_isr {
            reasons.push(format!(
                "{}-{} would fall below min.insync.replicas={min} (ISR [{isr_list}])",
                p.topic, p.partition
            ));
        }
    }
    let majority = voters.len() / 2 + 1;
    if voters.contains(&id) && voters.len() > majority {
        let caught_up = state.quorum.as_ref().map_or(Vec::new(), |q| q.caught_up_voters.clone());
        let others = caught_up.iter().filter(|&&v| v != id && voters.contains(&v)).count();
        if others < majority {
            reasons.push(format!(
                "the metadata quorum would lose its majority: {others} other caught-up voters of \
                 {}, {majority} needed",
                voters.len()
            ));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::QuorumStatus;
    use crate::ops::PartitionState;

    fn pod(ordinal: i32, revision: &str) -> BrokerPod {
        BrokerPod {
            ordinal,
            revision: revision.into(),
            ready: true,
            stuck: false,
            terminating: false,
        }
    }

    fn part(topic: &str, replicas: &[i32], isr: &[i32]) -> PartitionState {
        PartitionState {
            topic: topic.into(),
            partition: 0,
            leader: isr.first().copied().unwrap_or(-1),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    fn state(partitions: Vec<PartitionState>, leader: i32, caught_up: &[i32]) -> ClusterState {
        ClusterState {
            brokers: vec![0, 1, 2],
            partitions,
            quorum: Some(QuorumStatus {
                leader,
                caught_up_voters: caught_up.to_vec(),
                ..QuorumStatus::default()
            }),
            racks: Default::default(),
        }
    }

    fn min2() -> MinIsr {
        MinIsr { default: 2, topics: BTreeMap::new() }
    }

    const VOTERS: &[i32] = &[0, 1, 2];

    #[test]
    fn everything_on_the_target_revision_is_done() {
        let pods = [pod(0, "new"), pod(1, "new"), pod(2, "new")];
        let s = state(vec![part("t", &[0, 1, 2], &[0, 1, 2])], 0, VOTERS);
        assert_eq!(next_step(&pods, "new", Some(&s), &min2(), VOTERS), RollStep::Done);
    }

    #[test]
    fn the_active_controller_goes_last_and_the_others_highest_first() {
        let s = state(vec![part("t", &[0, 1, 2], &[0, 1, 2])], 2, VOTERS);
        let mut pods = vec![pod(0, "old"), pod(1, "old"), pod(2, "old")];
        let order = |pods: &[BrokerPod]| match next_step(pods, "new", Some(&s), &min2(), VOTERS) {
            RollStep::Restart { ordinal, .. } => ordinal,
            other => panic!("{other:?}"),
        };
        assert_eq!(order(&pods), 1);
        pods[1].revision = "new".into();
        assert_eq!(order(&pods), 0);
        pods[0].revision = "new".into();
        assert_eq!(order(&pods), 2, "the quorum leader, last");
    }

    #[test]
    fn one_at_a_time_a_restarted_broker_must_be_ready_and_back_in_every_isr() {
        let pods = [pod(0, "old"), BrokerPod { ready: false, ..pod(1, "new") }, pod(2, "old")];
        let s = state(vec![part("t", &[0, 1, 2], &[0, 2])], 0, VOTERS);
        assert_eq!(
            next_step(&pods, "new", Some(&s), &min2(), VOTERS),
            RollStep::Wait("broker 1 is not ready yet".into())
        );
        let pods = [pod(0, "old"), pod(1, "new"), pod(2, "old")];
        let step = next_step(&pods, "new", Some(&s), &min2(), VOTERS);
        assert_eq!(step, RollStep::Wait("broker 1 is not yet back in the ISR of t-0".into()));
        let s = state(vec![part("t", &[0, 1, 2], &[0, 1, 2])], 0, VOTERS);
        assert!(matches!(
            next_step(&pods, "new", Some(&s), &min2(), VOTERS),
            RollStep::Restart { ordinal: 2, .. }
        ));
    }

    #[test]
    fn a_restart_that_would_break_min_isr_is_blocked_with_the_partitions_named() {
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        // a-0: broker 2 is out of sync, ISR = min ISR; b-0 is already below min ISR; c-0 has
        // RF 2 and its own min ISR of 1; d-0 has RF 2 = min ISR and can never stay writable.
        let mut min = min2();
        min.topics.insert("c".into(), 1);
        let s = state(
            vec![
                part("a", &[0, 1, 2], &[0, 1]),
                part("b", &[0, 1, 2], &[1]),
                part("c", &[1, 2], &[1]),
                part("d", &[1, 2], &[1, 2]),
            ],
            0,
            VOTERS,
        );
        let step = next_step(&pods, "new", Some(&s), &min, VOTERS);
        let RollStep::Blocked { ordinal, reasons } = step else { panic!("{step:?}") };
        assert_eq!(ordinal, 2);
        assert_eq!(reasons, ["b-0 is already below min.insync.replicas=2 (ISR [1])"]);
        assert_eq!(
            blockers(1, &s, &min, VOTERS),
            [
                "a-0 would fall below min.insync.replicas=2 (ISR [0,1])",
                "b-0 is already below min.insync.replicas=2 (ISR [1])",
                "c-0 would fall below min.insync.replicas=1 (ISR [1])",
            ]
        );
    }

    #[test]
    fn a_voter_restarts_only_while_the_others_hold_a_caught_up_majority() {
        let s = state(vec![], 0, &[0, 1]);
        assert!(blockers(2, &s, &min2(), VOTERS).is_empty(), "0 and 1 remain");
        let reasons = blockers(1, &s, &min2(), VOTERS);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("1 other caught-up voters of 3, 2 needed"), "{reasons:?}");
        assert!(blockers(4, &s, &min2(), VOTERS).is_empty(), "a broker only is not a voter");
        // One or two voters: no restart of one keeps a majority, so none waits for it.
        let lone = state(vec![], 0, &[0]);
        assert!(blockers(0, &lone, &min2(), &[0]).is_empty());
        assert!(blockers(1, &state(vec![], 0, &[0, 1]), &min2(), &[0, 1]).is_empty());
    }

    #[test]
    fn a_stuck_pod_is_restarted_first_and_a_running_unready_one_is_waited_for() {
        let stuck = BrokerPod { ready: false, stuck: true, ..pod(0, "old") };
        let pods = [stuck.clone(), pod(1, "old"), pod(2, "old")];
        // Even with no broker answering and the quorum unknown.
        assert!(matches!(
            next_step(&pods, "new", None, &min2(), VOTERS),
            RollStep::Restart { ordinal: 0, .. }
        ));
        let recovering = BrokerPod { ready: false, ..pod(0, "old") };
        let pods = [recovering, pod(1, "old"), pod(2, "old")];
        assert_eq!(
            next_step(&pods, "new", None, &min2(), VOTERS),
            RollStep::Wait("broker 0 is not ready yet".into())
        );
    }

    #[test]
    fn nothing_restarts_while_a_pod_shuts_down_or_no_broker_answers() {
        let pods = [BrokerPod { terminating: true, ..pod(0, "old") }, pod(1, "old")];
        assert!(matches!(next_step(&pods, "new", None, &min2(), VOTERS), RollStep::Wait(_)));
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert!(matches!(next_step(&pods, "new", None, &min2(), VOTERS), RollStep::Wait(_)));
    }
}
