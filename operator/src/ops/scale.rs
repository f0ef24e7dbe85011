//! Scaling a cluster, as a pure function of the StatefulSet's size, the spec's and the cluster
//! as its brokers describe it. No I/O: every branch is a unit test.
//!
//! - **Up**: the StatefulSet grows at once; the new brokers (node ids from their ordinals,
//!   brokers only: the voters stay the first ones) register, and once every broker is
//!   registered and no reassignment is running, a broker that hosts nothing while others host
//!   partitions gets its share: replicas move from the most loaded brokers to the least loaded
//!   (partition reassignment, each move keeping the partition's other replicas and its
//!   preferred leader where it stays) until no broker hosts more than one replica above another.
//! - **Down**: refused before anything changes when a broker to remove is a quorum voter, or a
//!   topic's replication factor is above the brokers that would remain (Strimzi's users meet
//!   the latter as a scale-down that fails half-way). Otherwise the brokers to remove are
//!   drained first: each of their replicas moves to the least loaded remaining broker not
//!   already holding that partition; the StatefulSet shrinks only once they host nothing and
//!   no reassignment is running.
//!
//! One reassignment at a time: while the brokers report one in progress, the scale waits.

use std::collections::{BTreeMap, BTreeSet};

use super::{ClusterState, PartitionState};

/// A partition's new replica list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// What a throttled reassignment sets, as `kafka-reassign-partitions --throttle` does: the
/// replication rate on every broker a moving partition is on or goes to, and per topic the
/// replicas that send (`leader.replication.throttled.replicas`: a moving partition's current
/// replicas) and those that receive (`follower.replication.throttled.replicas`: its new ones),
/// as `partition:broker` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Throttles {
    pub brokers: Vec<i32>,
    /// Topic -> (leader list, follower list).
    pub topics: BTreeMap<String, (String, String)>,
}

/// The throttles for `moves` of `partitions`.
pub fn throttles(partitions: &[PartitionState], moves: &[Move]) -> Throttles {
    let mut brokers = BTreeSet::new();
    let mut lists: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for m in moves {
        let current = partitions
            .iter()
            .find(|p| p.topic == m.topic && p.partition == m.partition)
            .map_or(&[][..], |p| &p.replicas[..]);
        let (leaders, followers) = lists.entry(m.topic.clone()).or_default();
        leaders.extend(current.iter().map(|b| format!("{}:{b}", m.partition)));
        let adding = m.replicas.iter().filter(|b| !current.contains(b));
        followers.extend(adding.map(|b| format!("{}:{b}", m.partition)));
        brokers.extend(current.iter().chain(&m.replicas).copied());
    }
    Throttles {
        brokers: brokers.into_iter().collect(),
        topics: lists.into_iter().map(|(t, (l, f))| (t, (l.join(","), f.join(",")))).collect(),
    }
}

/// What scaling does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleStep {
    /// Nothing to do: the StatefulSet has the spec's size and the brokers are balanced.
    Steady,
    /// Set the StatefulSet's replicas to this (a scale-up, or a drained scale-down).
    Resize(i32),
    /// Start these reassignments; `why` says what for.
    Reassign { moves: Vec<Move>, why: String },
    /// Wait; the reason says for what.
    Wait(String),
    /// The spec's size cannot be reached safely; nothing changes.
    Refuse(String),
}

/// The next scaling step. `current` is the StatefulSet's replicas, `desired` the spec's;
/// `reassigning` is true while the brokers report a reassignment in progress; `draining` the
/// brokers whose drain this operator started (kept in the status).
pub fn next_step(
    current: i32,
    desired: i32,
    voters: &[i32],
    state: Option<&ClusterState>,
    reassigning: bool,
    draining: &[i32],
) -> ScaleStep {
    if desired > current {
        return ScaleStep::Resize(desired);
    }
    if desired < current {
        return scale_down(current, desired, voters, state, reassigning, draining);
    }
    let Some(state) = state else { return ScaleStep::Steady };
    let brokers: Vec<i32> = (0..current).collect();
    if reassigning || brokers.iter().any(|b| !state.brokers.contains(b)) {
        return ScaleStep::Steady;
    }
    let load = load(&state.partitions, &brokers);
    let empty: Vec<i32> = brokers.iter().copied().filter(|b| load[b] == 0).collect();
    if empty.is_empty() || load.values().all(|&n| n == 0) {
        return ScaleStep::Steady;
    }
    let moves = rebalance(&state.partitions, &brokers, &state.racks);
    if moves.is_empty() {
        return ScaleStep::Steady;
    }
    let why = format!(
        "brokers {} host no partitions: moving {} replicas onto them",
        list(&empty),
        moved_replicas(&state.partitions, &moves)
    );
    ScaleStep::Reassign { moves, why }
}

fn scale_down(
    current: i32,
    desired: i32,
    voters: &[i32],
    state: Option<&ClusterState>,
    reassigning: bool,
    draining: &[i32],
) -> ScaleStep {
    let removed: Vec<i32> = (desired..current).collect();
    let voters_removed: Vec<i32> = removed.iter().copied().filter(|b| voters.contains(b)).collect();
    if !voters_removed.is_empty() {
        return ScaleStep::Refuse(format!(
            "scale-down to {desired} refused: brokers {} are metadata quorum voters, which stay \
             for the cluster's life; the smallest size is {}",
            list(&voters_removed),
            voters.iter().max().map_or(1, |m| m + 1)
        ));
    }
    let Some(state) = state else {
        return ScaleStep::Wait("no broker answered: cannot check what the brokers host".into());
    };
    if reassigning {
        return ScaleStep::Wait(format!(
            "draining brokers {}: a reassignment is in progress",
            list(&removed)
        ));
    }
    // Checked before the drain starts, not during it: while replicas move, a partition lists
    // its old and new replicas together, and a broker's view may lag the controller's just
    // after a move completes, so its replica count says nothing about its replication factor.
    let started = draining == removed.as_slice();
    let mut too_wide: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &state.partitions {
        if !started && p.replicas.len() > desired as usize {
            too_wide.insert(&p.topic, p.replicas.len());
        }
    }
    if !too_wide.is_empty() {
        let topics: Vec<String> =
            too_wide.iter().map(|(t, rf)| format!("{t} (replication factor {rf})")).collect();
        return ScaleStep::Refuse(format!(
            "scale-down to {desired} refused: the drain could not complete, {} {} more \
             replicas than the {desired} brokers that would remain",
            topics.join(", "),
            if topics.len() == 1 { "has" } else { "have" }
        ));
    }
    let hosted: Vec<&PartitionState> = state
        .partitions
        .iter()
        .filter(|p| p.replicas.iter().any(|r| removed.contains(r)))
        .collect();
    if hosted.is_empty() {
        return ScaleStep::Resize(desired);
    }
    let keep: Vec<i32> = (0..desired).filter(|b| state.brokers.contains(b)).collect();
    let moves = drain(&state.partitions, &removed, &keep, &state.racks);
    if keep.len() < desired as usize {
        return ScaleStep::Wait(format!(
            "draining brokers {}: only brokers {} of the remaining ones are registered",
            list(&removed),
            list(&keep)
        ));
    }
    if moves.len() < hosted.len() {
        // Only a partition still listing a finished move's replicas together has no room.
        return ScaleStep::Wait(format!(
            "draining brokers {}: waiting for the last moves to settle",
            list(&removed)
        ));
    }
    let why = format!(
        "draining brokers {} before removing them: {} partitions to move",
        list(&removed),
        moves.len()
    );
    ScaleStep::Reassign { moves, why }
}

/// Replicas per broker (every one of `brokers`, zero included).
fn load(partitions: &[PartitionState], brokers: &[i32]) -> BTreeMap<i32, usize> {
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    for r in partitions.iter().flat_map(|p| &p.replicas) {
        if let Some(n) = load.get_mut(r) {
            *n += 1;
        }
    }
    load
}

/// The least loaded of `candidates` (lowest id among equals).
fn least_loaded(load: &BTreeMap<i32, usize>, candidates: impl Iterator<Item = i32>) -> Option<i32> {
    candidates.min_by_key(|b| (load.get(b).copied().unwrap_or(0), *b))
}

/// Whether broker `b` would be a partition's second replica in its rack, next to `others`.
fn shares_rack(
    racks: &BTreeMap<i32, String>,
    b: i32,
    mut others: impl Iterator<Item = i32>,
) -> bool {
    racks.get(&b).is_some_and(|rack| others.any(|o| racks.get(&o) == Some(rack)))
}

/// Moves taking every replica on `removed` to the least loaded broker of `keep` that does not
/// hold the partition yet, in a rack none of its other replicas is in where there is one; a
/// partition that cannot be placed is left out.
pub fn drain(
    partitions: &[PartitionState],
    removed: &[i32],
    keep: &[i32],
    racks: &BTreeMap<i32, String>,
) -> Vec<Move> {
    let mut load = load(partitions, keep);
    let mut moves = Vec::new();
    for p in partitions.iter().filter(|p| p.replicas.iter().any(|r| removed.contains(r))) {
        let mut replicas = p.replicas.clone();
        let mut placed = true;
        for slot in 0..replicas.len() {
            if !removed.contains(&replicas[slot]) {
                continue;
            }
            let free: Vec<i32> = keep.iter().copied().filter(|b| !replicas.contains(b)).collect();
            let others = |b: i32| {
                let others = replicas.iter().enumerate().filter(|(i, _)| *i != slot);
                shares_rack(racks, b, others.map(|(_, &o)| o).filter(|o| !removed.contains(o)))
            };
            let spread: Vec<i32> = free.iter().copied().filter(|&b| !others(b)).collect();
            let pool = if spread.is_empty() { free } else { spread };
            match least_loaded(&load, pool.into_iter()) {
                Some(to) => {
                    // In place: the preferred leader stays first unless it is the one leaving.
                    replicas[slot] = to;
                    *load.entry(to).or_default() += 1;
                }
                None => placed = false,
            }
        }
        if placed {
            moves.push(Move { topic: p.topic.clone(), partition: p.partition, replicas });
        }
    }
    moves
}

/// Moves that spread replicas over `brokers` until the most loaded broker hosts at most one
/// more than the least loaded (as far as racks allow): each takes one replica from the most
/// loaded broker to the least loaded one that does not hold that partition, and never puts two
/// of a partition's replicas in one rack.
pub fn rebalance(
    partitions: &[PartitionState],
    brokers: &[i32],
    racks: &BTreeMap<i32, String>,
) -> Vec<Move> {
    let mut load = load(partitions, brokers);
    let mut placement: Vec<Vec<i32>> = partitions.iter().map(|p| p.replicas.clone()).collect();
    // What each broker hosts, as (leads it, partition index): follower replicas first, so that
    // leaders move as little as possible. An index, so a move does not scan every partition.
    let mut hosted: BTreeMap<i32, BTreeSet<(bool, usize)>> =
        brokers.iter().map(|&b| (b, BTreeSet::new())).collect();
    for (i, replicas) in placement.iter().enumerate() {
        for (slot, b) in replicas.iter().enumerate() {
            if let Some(set) = hosted.get_mut(b) {
                set.insert((slot == 0, i));
            }
        }
    }
    // A partition on `from` that `to` does not hold and may take (racks).
    let pick =
        |placement: &[Vec<i32>], hosted: &BTreeMap<i32, BTreeSet<(bool, usize)>>, from, to| {
            hosted[&from].iter().copied().find(|&(_, i)| {
                let r = &placement[i];
                !r.contains(&to)
                    && !shares_rack(racks, to, r.iter().copied().filter(|&b| b != from))
            })
        };
    // Each move goes from a broker to one with at least two replicas fewer, so the spread
    // only narrows and the loop ends; the most loaded donor and least loaded receiver that
    // racks allow go first.
    loop {
        let mut donors: Vec<(usize, i32)> = load.iter().map(|(&b, &n)| (n, b)).collect();
        donors.sort_by_key(|&(n, b)| (std::cmp::Reverse(n), b));
        let mut receivers = donors.clone();
        receivers.sort_by_key(|&(n, b)| (n, b));
        let found = donors.iter().find_map(|&(dn, from)| {
            receivers
                .iter()
                .filter(|&&(rn, _)| dn > rn + 1)
                .find_map(|&(_, to)| pick(&placement, &hosted, from, to).map(|k| (k, from, to)))
        });
        let Some(((leads, i), from, to)) = found else { break };
        let slot = placement[i].iter().position(|&b| b == from).expect("holds it");
        placement[i][slot] = to;
        hosted.get_mut(&from).expect("broker").remove(&(leads, i));
        hosted.get_mut(&to).expect("broker").insert((leads, i));
        *load.get_mut(&from).expect("broker") -= 1;
        *load.get_mut(&to).expect("broker") += 1;
    }
    partitions
        .iter()
        .zip(placement)
        .filter(|(p, r)| &p.replicas != r)
        .map(|(p, replicas)| Move { topic: p.topic.clone(), partition: p.partition, replicas })
        .collect()
}

fn moved_replicas(partitions: &[PartitionState], moves: &[Move]) -> usize {
    moves
        .iter()
        .map(|m| {
            let before =
                partitions.iter().find(|p| p.topic == m.topic && p.partition == m.partition);
            let before = before.map(|p| p.replicas.clone()).unwrap_or_default();
            m.replicas.iter().filter(|r| !before.contains(r)).count()
        })
        .sum()
}

fn list(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(topic: &str, partition: i32, replicas: &[i32]) -> PartitionState {
        PartitionState {
            topic: topic.into(),
            partition,
            leader: replicas[0],
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
        }
    }

    fn state(brokers: &[i32], partitions: Vec<PartitionState>) -> ClusterState {
        ClusterState { brokers: brokers.to_vec(), partitions, ..ClusterState::default() }
    }

    /// Six partitions of RF 3 on brokers 0-2, as a three-broker cluster places them.
    fn three_broker_topic() -> Vec<PartitionState> {
        (0..6).map(|i| part("t", i, &[i % 3, (i + 1) % 3, (i + 2) % 3])).collect()
    }

    fn apply(partitions: &[PartitionState], moves: &[Move]) -> Vec<PartitionState> {
        partitions
            .iter()
            .map(|p| {
                let m = moves.iter().find(|m| m.topic == p.topic && m.partition == p.partition);
                m.map_or(p.clone(), |m| part(&p.topic, p.partition, &m.replicas))
            })
            .collect()
    }

    const VOTERS: &[i32] = &[0, 1, 2];

    #[test]
    fn a_throttled_move_limits_its_senders_and_receivers() {
        let parts = [part("a", 0, &[0, 1, 2]), part("a", 1, &[1, 2, 0]), part("b", 0, &[2, 0, 1])];
        let moves = [
            Move { topic: "a".into(), partition: 0, replicas: vec![0, 1, 3] },
            Move { topic: "a".into(), partition: 1, replicas: vec![1, 4, 0] },
        ];
        let t = throttles(&parts, &moves);
        assert_eq!(t.brokers, [0, 1, 2, 3, 4]);
        assert_eq!(t.topics.len(), 1, "b does not move");
        assert_eq!(t.topics["a"], ("0:0,0:1,0:2,1:1,1:2,1:0".into(), "0:3,1:4".into()));
    }

    #[test]
    fn scale_up_grows_first_then_moves_replicas_onto_the_new_brokers() {
        let parts = three_broker_topic();
        let s = state(&[0, 1, 2], parts.clone());
        assert_eq!(next_step(3, 5, VOTERS, Some(&s), false, &[]), ScaleStep::Resize(5));
        // Not all registered yet: wait (Steady until they are).
        assert_eq!(next_step(5, 5, VOTERS, Some(&s), false, &[]), ScaleStep::Steady);
        let s = state(&[0, 1, 2, 3, 4], parts.clone());
        let ScaleStep::Reassign { moves, why } = next_step(5, 5, VOTERS, Some(&s), false, &[])
        else {
            panic!()
        };
        assert!(why.starts_with("brokers 3,4 host no partitions"), "{why}");
        let after = apply(&parts, &moves);
        let l = load(&after, &[0, 1, 2, 3, 4]);
        let (min, max) = (l.values().min().unwrap(), l.values().max().unwrap());
        assert!(max - min <= 1, "{l:?}");
        for p in &after {
            let mut r = p.replicas.clone();
            r.sort();
            r.dedup();
            assert_eq!(r.len(), 3, "no broker twice in {p:?}");
        }
        // Balanced now: nothing more to do; nor while a reassignment runs.
        assert_eq!(
            next_step(5, 5, VOTERS, Some(&state(&[0, 1, 2, 3, 4], after)), false, &[]),
            ScaleStep::Steady
        );
        assert_eq!(next_step(5, 5, VOTERS, Some(&s), true, &[]), ScaleStep::Steady);
    }

    #[test]
    fn a_rebalance_moves_followers_before_leaders() {
        let parts = vec![part("t", 0, &[0, 1]), part("t", 1, &[1, 0])];
        let moves = rebalance(&parts, &[0, 1, 2], &BTreeMap::new());
        assert_eq!(moves.len(), 1);
        // Broker 0 (most loaded, lowest id) gives up a partition it follows: t-1.
        assert_eq!(moves[0], Move { topic: "t".into(), partition: 1, replicas: vec![1, 2] });
    }

    #[test]
    fn moves_keep_a_partitions_replicas_in_different_racks() {
        let racks: BTreeMap<i32, String> = [(0, "a"), (1, "b"), (2, "c"), (3, "a"), (4, "b")]
            .map(|(b, r)| (b, r.to_string()))
            .into();
        // Drain broker 3 (rack a) off [3, 1, 2]: broker 0 is the only one in rack a.
        let parts = vec![part("t", 0, &[3, 1, 2]), part("u", 0, &[0, 1]), part("u", 1, &[0, 2])];
        let moves = drain(&parts, &[3], &[0, 1, 2, 4], &racks);
        assert_eq!(
            moves[0].replicas,
            vec![0, 1, 2],
            "rack a again, though 0 is loaded and 4 is not"
        );
        // Without racks the least loaded broker takes it.
        assert_eq!(drain(&parts, &[3], &[0, 1, 2, 4], &BTreeMap::new())[0].replicas, vec![4, 1, 2]);
        // Spreading onto broker 4 (rack b) takes no replica of a partition already in rack b.
        let parts = vec![
            part("v", 0, &[0, 1]),
            part("v", 1, &[0, 1]),
            part("w", 0, &[0]),
            part("w", 1, &[0]),
        ];
        let moves = rebalance(&parts, &[0, 1, 4], &racks);
        let moved: Vec<(&str, i32, &[i32])> =
            moves.iter().map(|m| (m.topic.as_str(), m.partition, m.replicas.as_slice())).collect();
        assert_eq!(moved, [("w", 0, &[4][..]), ("w", 1, &[4][..])]);
        // Zones a, b, c with broker 3 new in zone a: RF 3 partitions span the three zones, so
        // broker 3 can only take over from broker 0, its zone's other broker.
        let parts: Vec<PartitionState> =
            (0..6).map(|i| part("x", i, &[i % 3, (i + 1) % 3, (i + 2) % 3])).collect();
        let moves = rebalance(&parts, &[0, 1, 2, 3], &racks);
        let after = apply(&parts, &moves);
        let l = load(&after, &[0, 1, 2, 3]);
        assert_eq!((l[&0], l[&3]), (3, 3), "{l:?}");
        assert!(after.iter().all(|p| p.replicas.iter().filter(|b| racks[b] == "a").count() == 1));
    }

    #[test]
    fn scale_down_drains_then_shrinks() {
        let parts: Vec<PartitionState> =
            (0..10).map(|i| part("t", i, &[i % 5, (i + 1) % 5, (i + 2) % 5])).collect();
        let s = state(&[0, 1, 2, 3, 4], parts.clone());
        let ScaleStep::Reassign { moves, why } = next_step(5, 3, VOTERS, Some(&s), false, &[])
        else {
            panic!()
        };
        assert!(why.starts_with("draining brokers 3,4"), "{why}");
        let after = apply(&parts, &moves);
        assert!(after.iter().all(|p| p.replicas.iter().all(|r| *r < 3)), "{after:?}");
        assert!(after.iter().all(|p| p.replicas.len() == 3));
        for p in after.iter().filter(|p| p.replicas[0] < 3) {
            let before = parts.iter().find(|b| b.partition == p.partition).unwrap();
            if before.replicas[0] < 3 {
                assert_eq!(p.replicas[0], before.replicas[0], "a staying leader stays first");
            }
        }
        assert!(matches!(next_step(5, 3, VOTERS, Some(&s), true, &[]), ScaleStep::Wait(_)));
        let drained = state(&[0, 1, 2, 3, 4], after);
        assert_eq!(next_step(5, 3, VOTERS, Some(&drained), false, &[3, 4]), ScaleStep::Resize(3));
    }

    #[test]
    fn a_drain_that_cannot_complete_is_refused_before_anything_changes() {
        let s = state(&[0, 1, 2, 3], vec![part("orders", 0, &[0, 1, 3]), part("logs", 0, &[3, 0])]);
        let step = next_step(4, 2, &[0], Some(&s), false, &[]);
        assert_eq!(
            step,
            ScaleStep::Refuse(
                "scale-down to 2 refused: the drain could not complete, orders (replication \
                 factor 3) has more replicas than the 2 brokers that would remain"
                    .into()
            )
        );
        let step = next_step(3, 2, VOTERS, Some(&s), false, &[]);
        let ScaleStep::Refuse(why) = step else { panic!("{step:?}") };
        assert!(why.contains("brokers 2 are metadata quorum voters"), "{why}");
        assert!(why.contains("the smallest size is 3"), "{why}");
    }

    #[test]
    fn a_drain_under_way_is_not_refused_for_the_replicas_a_move_lists_together() {
        // Mid-move, t-0 lists its old and new replicas: 4 of them, more than 3 brokers.
        let s = state(&[0, 1, 2, 3, 4], vec![part("t", 0, &[0, 1, 2, 3])]);
        assert!(matches!(next_step(5, 3, VOTERS, Some(&s), false, &[]), ScaleStep::Refuse(_)));
        let step = next_step(5, 3, VOTERS, Some(&s), false, &[3, 4]);
        let settle =
            ScaleStep::Wait("draining brokers 3,4: waiting for the last moves to settle".into());
        assert_eq!(step, settle);
    }

    #[test]
    fn nothing_moves_without_the_brokers_answering_or_all_of_them_registered() {
        assert!(matches!(next_step(5, 3, VOTERS, None, false, &[]), ScaleStep::Wait(_)));
        assert_eq!(next_step(3, 3, VOTERS, None, false, &[]), ScaleStep::Steady);
        let parts = vec![part("t", 0, &[3, 4, 0])];
        let s = state(&[0, 3, 4], parts);
        assert!(
            matches!(next_step(5, 3, VOTERS, Some(&s), false, &[]), ScaleStep::Wait(w) if w.contains("only brokers 0"))
        );
    }

    #[test]
    fn an_empty_cluster_is_balanced() {
        let s = state(&[0, 1, 2, 3], vec![]);
        assert_eq!(next_step(4, 4, VOTERS, Some(&s), false, &[]), ScaleStep::Steady);
    }
}
