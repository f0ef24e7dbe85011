//! Fetch sessions (KIP-227): the broker remembers what a client fetches, so its next requests
//! name only the partitions whose fetch position changed, and the responses carry only the
//! partitions with something new. A consumer of 1,000 quiet partitions then sends and receives a
//! few bytes per poll instead of about 40 KB.
//!
//! The rules are Kafka's (`FetchSession.scala`, `FetchMetadata`):
//! - session id 0 is "no session"; epoch 0 (INITIAL) asks for a full fetch that creates a
//!   session, epoch -1 (FINAL) for a full fetch without one; a full request naming a session
//!   closes it. Any other epoch is incremental: an unknown session answers
//!   FETCH_SESSION_ID_NOT_FOUND, a wrong epoch INVALID_FETCH_SESSION_EPOCH, and a request whose
//!   version disagrees with the session about topic ids (v13+) FETCH_SESSION_TOPIC_ID_ERROR;
//! - an incremental request adds or updates the partitions it names and removes the forgotten
//!   ones; every partition of the session is read, and a partition is answered when it has
//!   records, its high watermark or log start offset changed, or it has an error or a
//!   diverging epoch (an error also forgets its high watermark, so it is answered again when
//!   the error clears); partitions that returned records move to the end of the session, so
//!   `max_bytes` is shared round-robin;
//! - the cache holds `max.incremental.fetch.session.cache.slots` sessions. When full, a new
//!   session may evict the least recently used one if it was idle for 120 s, or else the least
//!   valuable by (follower, partitions, id), where consumers' sessions and sessions older than
//!   120 s are candidates for a follower, and only sessions older than 120 s for a consumer.
//!
//! Everything here is decision logic over an injected time; [`super::fetch`] does the reads.

use std::collections::{BTreeMap, HashMap};

use crate::replica::session::{next_epoch, FINAL_EPOCH, INITIAL_EPOCH};

/// Kafka's `MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS`.
pub const EVICTION_MS: i64 = 120_000;

/// A partition as a session knows it: by topic id from Fetch v13, by name before.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub topic_id: [u8; 16],
    pub topic: String,
    pub partition: i32,
}

/// What a request asks of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

/// What a response said of one partition, as far as sessions care.
#[derive(Clone, Copy, Debug, Default)]
pub struct Answered {
    pub records: usize,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub error: bool,
    pub diverging: bool,
}

#[derive(Clone, Debug)]
struct Cached {
    params: Params,
    high_watermark: i64,
    log_start_offset: i64,
    /// Position in the session's order (partitions that returned records move to the end).
    seq: u64,
}

#[derive(Debug)]
struct Session {
    epoch: i32,
    privileged: bool,
    uses_topic_ids: bool,
    created_ms: i64,
    last_used_ms: i64,
    partitions: HashMap<Key, Cached>,
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

impl Session {
    fn push(&mut self, key: Key, params: Params, hw: i64, log_start: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.partitions.get(&key) {
            self.order.remove(&old.seq);
        }
        self.order.insert(seq, key.clone());
        self.partitions
            .insert(key, Cached { params, high_watermark: hw, log_start_offset: log_start, seq });
    }

    fn move_to_end(&mut self, key: &Key) {
        let seq = self.next_seq;
        if let Some(c) = self.partitions.get_mut(key) {
            self.next_seq += 1;
            self.order.remove(&c.seq);
            c.seq = seq;
            self.order.insert(seq, key.clone());
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(c) = self.partitions.remove(key) {
            self.order.remove(&c.seq);
        }
    }

    /// The eviction rank: lower goes first.
    fn rank(&self, id: i32) -> (bool, usize, i32) {
        (self.privileged, self.partitions.len(), id)
    }
}

/// How a Fetch request is to be served.
#[derive(Debug, PartialEq)]
pub enum Context {
    /// Read what the request names; answer with no session (FINAL, or a full request that
    /// emptied nothing to keep).
    Sessionless,
    /// Read what the request names; then [`SessionCache::create`] a session from the answer.
    Full,
    /// Read these partitions (the whole session, in its order); then
    /// [`SessionCache::select`] what to answer.
    Incremental { id: i32, epoch: i32, partitions: Vec<(Key, Params)> },
    /// Answer only this error (and this session id).
    Error { code: i16, session_id: i32 },
}

/// `FETCH_SESSION_ID_NOT_FOUND`, `INVALID_FETCH_SESSION_EPOCH`, `FETCH_SESSION_TOPIC_ID_ERROR`.
pub const SESSION_NOT_FOUND: i16 = 70;
pub const INVALID_EPOCH: i16 = 71;
pub const TOPIC_ID_ERROR: i16 = 106;

/// The broker's fetch sessions.
#[derive(Debug)]
pub struct SessionCache {
    slots: usize,
    sessions: HashMap<i32, Session>,
    ids: std::collections::hash_map::RandomState,
    counter: u64,
    /// Sessions evicted to make room, for the metrics.
    pub evictions: u64,
}

impl SessionCache {
    pub fn new(slots: usize) -> Self {
        SessionCache {
            slots,
            sessions: HashMap::new(),
            ids: Default::default(),
            counter: 0,
            evictions: 0,
        }
    }

    /// Sessions cached, and partitions in them.
    pub fn size(&self) -> (usize, usize) {
        (self.sessions.len(), self.sessions.values().map(|s| s.partitions.len()).sum())
    }

    /// Classifies a request (and applies an incremental one to its session).
    #[allow(clippy::too_many_arguments)]
    pub fn new_context(
        &mut self,
        session_id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        requested: &[(Key, Params)],
        forgotten: &[Key],
        now_ms: i64,
    ) -> Context {
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if session_id != 0 {
                self.sessions.remove(&session_id);
            }
            return if epoch == FINAL_EPOCH { Context::Sessionless } else { Context::Full };
        }
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Context::Error { code: SESSION_NOT_FOUND, session_id: 0 };
        };
        if session.epoch != epoch {
            return Context::Error { code: INVALID_EPOCH, session_id: 0 };
        }
        if session.uses_topic_ids != uses_topic_ids {
            return Context::Error { code: TOPIC_ID_ERROR, session_id: 0 };
        }
        for (key, params) in requested {
            match session.partitions.get_mut(key) {
                Some(c) => c.params = *params,
                None => session.push(key.clone(), *params, -1, -1),
            }
        }
        for key in forgotten {
            session.remove(key);
        }
        if session.partitions.is_empty() {
            self.sessions.remove(&session_id);
            return Context::Sessionless;
        }
        session.last_used_ms = now_ms;
        session.epoch = next_epoch(session.epoch);
        let partitions =
            session.order.values().map(|k| (k.clone(), session.partitions[k].params)).collect();
        Context::Incremental { id: session_id, epoch: session.epoch, partitions }
    }

    /// After a full fetch with epoch 0: caches its partitions with what was answered. The new
    /// session's id, or 0 when the cache is full and nothing may be evicted.
    pub fn create(
        &mut self,
        privileged: bool,
        uses_topic_ids: bool,
        partitions: &[(Key, Params, Answered)],
        now_ms: i64,
    ) -> i32 {
        if self.slots == 0 {
            return 0;
        }
        if self.sessions.len() >= self.slots
            && !self.try_evict(privileged, partitions.len(), now_ms)
        {
            return 0;
        }
        let mut session = Session {
            epoch: next_epoch(INITIAL_EPOCH),
            privileged,
            uses_topic_ids,
            created_ms: now_ms,
            last_used_ms: now_ms,
            partitions: HashMap::with_capacity(partitions.len()),
            order: BTreeMap::new(),
            next_seq: 0,
        };
        for (key, params, answered) in partitions {
            let hw = if answered.error { -1 } else { answered.high_watermark };
            session.push(key.clone(), *params, hw, answered.log_start_offset);
        }
        let id = self.new_id();
        self.sessions.insert(id, session);
        id
    }

    /// Kafka's `tryEvict`: a stale session first, else the least valuable one the newcomer
    /// outranks.
    fn try_evict(&mut self, privileged: bool, size: usize, now_ms: i64) -> bool {
        let lru = self.sessions.iter().min_by_key(|(id, s)| (s.last_used_ms, **id));
        if let Some((&id, s)) = lru {
            if now_ms - s.last_used_ms > EVICTION_MS {
                self.sessions.remove(&id);
                self.evictions += 1;
                return true;
            }
        }
        let old = |s: &Session| now_ms - s.created_ms > EVICTION_MS;
        let candidate = self
            .sessions
            .iter()
            .filter(|(_, s)| if privileged { !s.privileged || old(s) } else { old(s) })
            .map(|(&id, s)| s.rank(id))
            .min();
        match candidate {
            Some(rank) if (privileged, size, 0) >= rank => {
                self.sessions.remove(&rank.2);
                self.evictions += 1;
                true
            }
            _ => false,
        }
    }

    fn new_id(&mut self) -> i32 {
        use std::hash::{BuildHasher, Hasher};
        loop {
            self.counter += 1;
            let mut h = self.ids.build_hasher();
            h.write_u64(self.counter);
            let id = (h.finish() & 0x7fff_ffff) as i32;
            if id > 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// After an incremental fetch: which of the partitions read (in the order given) the
    /// response carries, updating the session's cached high watermarks and order. `Err` with
    /// INVALID_FETCH_SESSION_EPOCH when another request of the same session came in between.
    pub fn select(
        &mut self,
        id: i32,
        epoch: i32,
        answered: &[(Key, Answered)],
    ) -> Result<Vec<bool>, i16> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Err(SESSION_NOT_FOUND);
        };
        if session.epoch != epoch {
            return Err(INVALID_EPOCH);
        }
        let mut include = Vec::with_capacity(answered.len());
        for (key, a) in answered {
            let Some(c) = session.partitions.get_mut(key) else {
                include.push(false);
                continue;
            };
            let mut respond = a.records > 0 || a.diverging;
            if c.high_watermark != a.high_watermark {
                respond = true;
                c.high_watermark = a.high_watermark;
            }
            if c.log_start_offset != a.log_start_offset {
                respond = true;
                c.log_start_offset = a.log_start_offset;
            }
            if a.error {
                respond = true;
                c.high_watermark = -1;
            }
            if a.records > 0 {
                session.move_to_end(key);
            }
            include.push(respond);
        }
        Ok(include)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> Key {
        Key { topic_id: [0; 16], topic: "t".into(), partition: p }
    }

    fn params(offset: i64) -> Params {
        Params {
            fetch_offset: offset,
            max_bytes: 1 << 20,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
        }
    }

    fn quiet(hw: i64) -> Answered {
        Answered { high_watermark: hw, log_start_offset: 0, ..Default::default() }
    }

    /// A session of partitions 0..n, every one answered with HW 10.
    fn session(cache: &mut SessionCache, n: i32, privileged: bool, now: i64) -> i32 {
        let parts: Vec<_> = (0..n).map(|p| (key(p), params(0), quiet(10))).collect();
        cache.create(privileged, false, &parts, now)
    }

    fn incremental(cache: &mut SessionCache, id: i32, epoch: i32, now: i64) -> Context {
        cache.new_context(id, epoch, false, &[], &[], now)
    }

    #[test]
    fn epochs_advance_and_a_repeat_or_unknown_session_is_refused() {
        let mut cache = SessionCache::new(10);
        assert_eq!(cache.new_context(0, INITIAL_EPOCH, false, &[], &[], 0), Context::Full);
        let id = session(&mut cache, 3, false, 0);
        assert!(id > 0);
        let Context::Incremental { epoch, partitions, .. } = incremental(&mut cache, id, 1, 1)
        else {
            panic!()
        };
        assert_eq!(epoch, 2);
        assert_eq!(partitions.len(), 3);
        // The same epoch again (a retried request) and a made-up session.
        assert_eq!(
            incremental(&mut cache, id, 1, 2),
            Context::Error { code: INVALID_EPOCH, session_id: 0 }
        );
        assert_eq!(
            incremental(&mut cache, id.wrapping_add(1).max(1), 2, 2),
            Context::Error { code: SESSION_NOT_FOUND, session_id: 0 }
        );
        // Session id 0 with a positive epoch: not found, as Kafka answers.
        assert_eq!(
            incremental(&mut cache, 0, 5, 2),
            Context::Error { code: SESSION_NOT_FOUND, session_id: 0 }
        );
        // Topic ids must match the session's mode.
        assert_eq!(
            cache.new_context(id, 2, true, &[], &[], 3),
            Context::Error { code: TOPIC_ID_ERROR, session_id: 0 }
        );
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(FINAL_EPOCH), FINAL_EPOCH);
    }

    #[test]
    fn full_requests_close_the_session_they_name() {
        let mut cache = SessionCache::new(10);
        let id = session(&mut cache, 2, false, 0);
        assert_eq!(cache.new_context(id, FINAL_EPOCH, false, &[], &[], 1), Context::Sessionless);
        assert_eq!(cache.size(), (0, 0));
        let id = session(&mut cache, 2, false, 0);
        assert_eq!(cache.new_context(id, INITIAL_EPOCH, false, &[], &[], 1), Context::Full);
        assert_eq!(cache.size(), (0, 0));
    }

    #[test]
    fn requests_update_add_and_forget_partitions_and_an_emptied_session_goes() {
        let mut cache = SessionCache::new(10);
        let id = session(&mut cache, 2, false, 0);
        let ctx = cache.new_context(
            id,
            1,
            false,
            &[(key(1), params(50)), (key(7), params(3))],
            &[key(0)],
            1,
        );
        let Context::Incremental { partitions, .. } = ctx else { panic!() };
        assert_eq!(partitions, vec![(key(1), params(50)), (key(7), params(3))]);
        let ctx = cache.new_context(id, 2, false, &[], &[key(1), key(7)], 2);
        assert_eq!(ctx, Context::Sessionless);
        assert_eq!(cache.size(), (0, 0));
    }

    #[test]
    fn only_partitions_with_news_are_answered_and_errors_are_answered_again() {
        let mut cache = SessionCache::new(10);
        let id = session(&mut cache, 4, false, 0);
        let Context::Incremental { epoch, .. } = incremental(&mut cache, id, 1, 1) else {
            panic!()
        };
        let answered = vec![
            (key(0), quiet(10)),                              // nothing new
            (key(1), quiet(11)),                              // HW moved
            (key(2), Answered { records: 100, ..quiet(10) }), // records
            (key(3), Answered { error: true, ..quiet(10) }),  // error
        ];
        assert_eq!(cache.select(id, epoch, &answered).unwrap(), vec![false, true, true, true]);
        // The partition with records went to the end; the error forgot its HW, so once it clears
        // the partition is answered again, and then no more.
        let Context::Incremental { epoch, partitions, .. } = incremental(&mut cache, id, epoch, 2)
        else {
            panic!()
        };
        let order: Vec<i32> = partitions.iter().map(|(k, _)| k.partition).collect();
        assert_eq!(order, vec![0, 1, 3, 2]);
        let answered = vec![
            (key(0), quiet(10)),
            (key(1), quiet(11)),
            (key(3), quiet(10)),
            (key(2), quiet(10)),
        ];
        assert_eq!(cache.select(id, epoch, &answered).unwrap(), vec![false, false, true, false]);
        // A duplicate of an old request gets the epoch error at answer time too.
        assert_eq!(cache.select(id, epoch - 1, &answered), Err(INVALID_EPOCH));
    }

    #[test]
    fn a_full_cache_evicts_stale_sessions_then_less_valuable_old_ones() {
        let mut cache = SessionCache::new(2);
        let a = session(&mut cache, 5, false, 0);
        let b = session(&mut cache, 1, false, 0);
        // Young sessions: a consumer cannot evict, a follower can evict a consumer's.
        assert_eq!(session(&mut cache, 9, false, 1000), 0);
        let f = session(&mut cache, 2, true, 1000);
        assert!(f > 0);
        assert_eq!(cache.size().0, 2);
        assert!(!cache.sessions.contains_key(&b), "the smaller consumer session goes first");
        assert!(cache.sessions.contains_key(&a));
        // A follower outranks any consumer session, however large and recently used...
        let _ = incremental(&mut cache, a, 1, 100_000);
        let g = session(&mut cache, 1, true, 100_000);
        assert!(g > 0 && !cache.sessions.contains_key(&a));
        // ...but not a young follower session: a third follower waits.
        assert_eq!(session(&mut cache, 9, true, 100_000), 0);
        // After 120 s without use, the least recently used session goes for anyone.
        let c = session(&mut cache, 1, false, 1000 + EVICTION_MS + 1);
        assert!(c > 0);
        assert!(!cache.sessions.contains_key(&f), "the idle follower session was evicted");
        assert!(cache.sessions.contains_key(&g));
        assert_eq!(cache.evictions, 3);
    }

    #[test]
    fn old_sessions_may_be_evicted_by_larger_consumers() {
        let mut cache = SessionCache::new(1);
        let a = session(&mut cache, 3, false, 0);
        let now = EVICTION_MS + 10;
        let _ = incremental(&mut cache, a, 1, now); // used recently, but created long ago
        assert_eq!(session(&mut cache, 2, false, now), 0, "fewer partitions do not outrank it");
        assert!(session(&mut cache, 4, false, now) > 0);
    }

    #[test]
    fn ids_are_positive_and_unique() {
        let mut cache = SessionCache::new(5000);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5000 {
            let id = session(&mut cache, 1, false, 0);
            assert!(id > 0 && seen.insert(id));
        }
        assert_eq!(session(&mut cache, 1, false, 0), 0, "full, and nothing evictable");
    }
}
