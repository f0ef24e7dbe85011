//! The follower's side of fetch sessions (KIP-227; Kafka's `FetchSessionHandler`). One full
//! fetch opens a session on the leader; from then on each round names only the partitions
//! whose fetch position changed (offset, epochs, log start) and forgets the ones this follower
//! no longer fetches (a partition paused after a refusal, or held back by the follower
//! throttle, is forgotten, or the leader would go on reading it from the session). The leader
//! answers only the partitions with something new, so 1,000 quiet partitions cost a few bytes
//! per round instead of a full request and response.
//!
//! Any failure starts over with a full fetch: a top-level error (an unknown session asks for a
//! new one; any other error also closes the old one), a lost connection, or a leader that did
//! not keep the session (`session_id` 0 after a full fetch: its cache is full, so the next
//! round asks again). The leader's side is `api::fetch_session`.
//!
//! Pure bookkeeping; [`super::fetcher`] does the I/O.

use std::collections::BTreeMap;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};

use kafka_protocol::ResponseError;

/// Session epochs (Kafka's `FetchMetadata`), on both sides of a session: 0 opens one with a
/// full fetch, -1 fetches in full without one.
pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

/// The epoch after `epoch` (Kafka's `FetchMetadata.nextEpoch`): past `i32::MAX` it wraps to 1.
pub fn next_epoch(epoch: i32) -> i32 {
    match epoch {
        FINAL_EPOCH => FINAL_EPOCH,
        i32::MAX => 1,
        e => e + 1,
    }
}

/// A partition by topic id and index, as sessions from Fetch v13 on know it.
pub type PartitionId = ([u8; 16], i32);

/// What one round fetches, by partition.
pub type Wanted = BTreeMap<PartitionId, FetchPartition>;

/// The session this follower has with one leader.
#[derive(Debug, Default)]
pub struct Session {
    /// The leader's id for it; 0 while there is none.
    id: i32,
    /// The next request's epoch: 0 opens a session with a full fetch.
    epoch: i32,
    /// What the leader's session holds after the last request.
    sent: Wanted,
}

/// The session fields and partitions of one Fetch request.
#[derive(Debug)]
pub struct Round {
    pub session_id: i32,
    pub epoch: i32,
    pub topics: Vec<FetchTopic>,
    pub forgotten: Vec<ForgottenTopic>,
}

impl Session {
    /// The request for this round: everything `wanted` when opening a session, else what
    /// changed since the last request and what was dropped.
    pub fn build(&mut self, wanted: Wanted) -> Round {
        let full = self.id == 0 || self.epoch == INITIAL_EPOCH;
        let (send, forgotten): (Vec<(&PartitionId, &FetchPartition)>, Vec<PartitionId>) = if full {
            (wanted.iter().collect(), Vec::new())
        } else {
            let send = wanted.iter().filter(|(id, p)| self.sent.get(*id) != Some(*p)).collect();
            let forgotten = self.sent.keys().filter(|id| !wanted.contains_key(*id)).copied();
            (send, forgotten.collect())
        };
        let round = Round {
            session_id: self.id,
            epoch: if full { INITIAL_EPOCH } else { self.epoch },
            topics: group(send, |topic_id, partitions| {
                FetchTopic::default()
                    .with_topic_id(uuid::Uuid::from_bytes(topic_id))
                    .with_partitions(partitions.into_iter().cloned().collect())
            }),
            forgotten: group(forgotten.iter().map(|id| (id, &id.1)), |topic_id, partitions| {
                ForgottenTopic::default()
                    .with_topic_id(uuid::Uuid::from_bytes(topic_id))
                    .with_partitions(partitions.into_iter().copied().collect())
            }),
        };
        self.sent = wanted;
        round
    }

    /// The leader answered the last request with this top-level error and session id.
    pub fn answered(&mut self, error_code: i16, session_id: i32) {
        if error_code == ResponseError::FetchSessionIdNotFound.code() {
            *self = Session::default();
        } else if error_code != 0 {
            self.failed();
        } else if self.id == 0 || self.epoch == INITIAL_EPOCH {
            // A full fetch: the leader kept a session, or (cache full) did not.
            self.id = session_id;
            self.epoch = if session_id == 0 { INITIAL_EPOCH } else { next_epoch(INITIAL_EPOCH) };
        } else if session_id == 0 {
            // The leader dropped the session (it emptied): open another.
            *self = Session::default();
        } else {
            self.epoch = next_epoch(self.epoch);
        }
    }

    /// The request failed (connection lost, timeout): the next one is full, and closes the old
    /// session if the leader still has it.
    pub fn failed(&mut self) {
        self.epoch = INITIAL_EPOCH;
    }
}

/// Groups partitions (in id order, so one topic's are adjacent) into topics.
fn group<'a, P: 'a, T>(
    partitions: impl IntoIterator<Item = (&'a PartitionId, &'a P)>,
    topic: impl Fn([u8; 16], Vec<&'a P>) -> T,
) -> Vec<T> {
    let mut topics = Vec::new();
    let mut current: Option<([u8; 16], Vec<&'a P>)> = None;
    for ((topic_id, _), p) in partitions {
        match &mut current {
            Some((id, ps)) if id == topic_id => ps.push(p),
            _ => {
                if let Some((id, ps)) = current.take() {
                    topics.push(topic(id, ps));
                }
                current = Some((*topic_id, vec![p]));
            }
        }
    }
    if let Some((id, ps)) = current {
        topics.push(topic(id, ps));
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(parts: &[(u8, i32, i64)]) -> Wanted {
        parts
            .iter()
            .map(|&(t, p, offset)| {
                let fetch = FetchPartition::default().with_partition(p).with_fetch_offset(offset);
                (([t; 16], p), fetch)
            })
            .collect()
    }

    /// (topic byte, partition, offset) of a round's partitions, and its forgotten ones.
    type Named = (Vec<(u8, i32, i64)>, Vec<(u8, i32)>);

    fn named(r: &Round) -> Named {
        let sent = r
            .topics
            .iter()
            .flat_map(|t| {
                let b = t.topic_id.as_bytes()[0];
                t.partitions.iter().map(move |p| (b, p.partition, p.fetch_offset))
            })
            .collect();
        let forgotten = r
            .forgotten
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic_id.as_bytes()[0], p)))
            .collect();
        (sent, forgotten)
    }

    #[test]
    fn opens_with_a_full_fetch_then_sends_only_changes() {
        let mut s = Session::default();
        let r = s.build(want(&[(1, 0, 10), (1, 1, 20), (2, 0, 5)]));
        assert_eq!((r.session_id, r.epoch), (0, 0));
        assert_eq!(named(&r).0, vec![(1, 0, 10), (1, 1, 20), (2, 0, 5)]);
        assert_eq!(r.topics.len(), 2, "one topic's partitions together");
        s.answered(0, 77);

        // Nothing changed: an empty incremental request.
        let r = s.build(want(&[(1, 0, 10), (1, 1, 20), (2, 0, 5)]));
        assert_eq!((r.session_id, r.epoch), (77, 1));
        assert_eq!(named(&r), (vec![], vec![]));
        s.answered(0, 77);

        // One offset moved, one partition dropped, one added.
        let r = s.build(want(&[(1, 0, 10), (1, 1, 25), (3, 4, 0)]));
        assert_eq!((r.session_id, r.epoch), (77, 2));
        assert_eq!(named(&r), (vec![(1, 1, 25), (3, 4, 0)], vec![(2, 0)]));
        s.answered(0, 77);
        assert_eq!(s.build(want(&[(1, 0, 10), (1, 1, 25), (3, 4, 0)])).epoch, 3);
    }

    #[test]
    fn every_failure_starts_over_with_a_full_fetch() {
        let wanted = || want(&[(1, 0, 10), (1, 1, 20)]);
        let open = |s: &mut Session| {
            s.build(wanted());
            s.answered(0, 9);
            assert_eq!(s.build(wanted()).epoch, 1);
        };
        // An unknown session: a new one, without naming the old.
        let mut s = Session::default();
        open(&mut s);
        s.answered(ResponseError::FetchSessionIdNotFound.code(), 0);
        let r = s.build(wanted());
        assert_eq!((r.session_id, r.epoch, named(&r).0.len()), (0, 0, 2));

        // A wrong epoch, or a lost connection: full, closing the old one.
        for fail in [|s: &mut Session| s.answered(71, 0), |s: &mut Session| s.failed()] {
            let mut s = Session::default();
            open(&mut s);
            s.answered(0, 9);
            fail(&mut s);
            let r = s.build(wanted());
            assert_eq!((r.session_id, r.epoch, named(&r).0.len()), (9, 0, 2));
            s.answered(0, 12);
            assert_eq!((s.id, s.epoch), (12, 1));
        }

        // The leader's cache is full: full fetches until it keeps one.
        let mut s = Session::default();
        s.build(wanted());
        s.answered(0, 0);
        let r = s.build(wanted());
        assert_eq!((r.session_id, r.epoch, named(&r).0.len()), (0, 0, 2));

        // The leader dropped an emptied session: open another.
        let mut s = Session::default();
        open(&mut s);
        s.answered(0, 0);
        assert_eq!(s.build(wanted()).epoch, 0);
    }

    #[test]
    fn epochs_and_log_start_count_as_changes() {
        let mut s = Session::default();
        let base = want(&[(1, 0, 10)]);
        s.build(base.clone());
        s.answered(0, 5);
        for change in [
            |p: &mut FetchPartition| p.current_leader_epoch = 3,
            |p: &mut FetchPartition| p.last_fetched_epoch = 2,
            |p: &mut FetchPartition| p.log_start_offset = 4,
        ] {
            let mut next = base.clone();
            change(next.get_mut(&([1; 16], 0)).expect("partition"));
            assert_eq!(named(&s.build(next)).0, vec![(1, 0, 10)]);
            s.answered(0, 5);
            // And back: changed again.
            assert_eq!(named(&s.build(base.clone())).0, vec![(1, 0, 10)]);
            s.answered(0, 5);
        }
    }
}
