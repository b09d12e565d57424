//! `SessionTable`: a slab of `Session`s, the flow index over both of each session's keys, and
//! the timing wheel that expires them. One per worker, owned outright: no lock, no atomics.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;

use super::index::FlowIndex;
use super::state::{keeps, next_state, State, Touch};
use super::wheel::Wheel;
use super::{Direction, FlowKey, NewSession, Session, SessionId, Timeouts, SEEN_STALE, WILDCARD};
use crate::bigmem::BigArray;

/// The timing wheel's tick: sessions expire at most this late (given `expire` is called often
/// enough and with enough budget), and never early.
pub const TICK_MS: u64 = 100;

/// Wheel slots are sized to the longest timeout, up to this many (109 minutes at 100 ms);
/// sessions with longer timeouts are re-filed once per turn.
const MAX_WHEEL_SLOTS: u64 = 1 << 16;

/// How many sessions an expiry walk looks ahead of the one it expires (records and links).
const LOOK_AHEAD: usize = 6;
/// How many of those have their index slots loading (at most `LOOK_AHEAD`).
const HASH_AHEAD: usize = 3;

/// Why `insert` refused a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Every session is in use.
    TableFull,
    /// A live session already has this session's key in that direction: `Forward`, the client
    /// flow has a session; `Reply`, the (backend, local address and port) pair is in use.
    DuplicateKey(Direction),
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::TableFull => f.write_str("session table full"),
            InsertError::DuplicateKey(Direction::Forward) => f.write_str("client flow already has a session"),
            InsertError::DuplicateKey(Direction::Reply) => {
                f.write_str("local address and port in use for that backend")
            }
        }
    }
}

impl std::error::Error for InsertError {}

#[derive(Clone)]
pub struct SessionTable {
    sessions: BigArray<Session>,
    index: FlowIndex,
    wheel: Wheel,
    /// Idle timeout in ms, indexed by `State`.
    timeout_ms: [u64; 9],
    timeouts: Timeouts,
    /// Live sessions whose backend is `WILDCARD` (per-datagram sessions, whose replies are
    /// looked up by that source): while none is, no packet needs that lookup.
    wildcards: u32,
}

impl SessionTable {
    /// The most sessions one table can hold (ids and the index's entries must fit 32 bits).
    pub const MAX_CAPACITY: u32 = 1 << 28;

    /// A table for `capacity` sessions, with all its memory allocated (and written) here:
    /// about 93 bytes a session. Hashes with a random seed.
    ///
    /// # Panics
    /// If `capacity` exceeds `MAX_CAPACITY`; the configuration checks that first.
    pub fn with_capacity(capacity: u32, timeouts: Timeouts) -> SessionTable {
        SessionTable::with_seed(capacity, timeouts, RandomState::new().hash_one(0x5e55_1011u64))
    }

    /// Like `with_capacity`, with a chosen hash seed: for tests and benchmarks that must repeat.
    pub fn with_seed(capacity: u32, timeouts: Timeouts, seed: u64) -> SessionTable {
        assert!(capacity <= Self::MAX_CAPACITY, "session capacity {capacity} over {}", Self::MAX_CAPACITY);
        let timeout_ms = timeouts.by_state().map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let longest = timeout_ms.iter().copied().max().unwrap_or(0);
        let slots = (longest / TICK_MS).saturating_add(2).min(MAX_WHEEL_SLOTS) as u32;
        SessionTable {
            sessions: BigArray::new(capacity as usize, Session::default()),
            index: FlowIndex::new(2 * capacity as usize, seed),
            wheel: Wheel::new(capacity, slots),
            timeout_ms,
            timeouts,
            wildcards: 0,
        }
    }

    /// Whether any live session has the backend `WILDCARD` (see `wildcards`).
    #[inline(always)]
    pub fn has_wildcards(&self) -> bool {
        self.wildcards > 0
    }

    /// The session a packet with `key` belongs to, and the side it came from.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(SessionId, Direction)> {
        self.find(self.index.hash(key), key)
    }

    /// As `lookup`, with `hash` the key's hash as `prefetch_index` returned it (checked in
    /// debug builds): a burst hashes each packet once.
    #[inline]
    pub fn lookup_hashed(&self, hash: u32, key: &FlowKey) -> Option<(SessionId, Direction)> {
        debug_assert_eq!(hash, self.index.hash(key), "a hash that is not the key's");
        self.find(hash, key)
    }

    /// `lookup_hashed` when the caller has the hash, `lookup` when not.
    #[inline(always)]
    pub fn lookup_maybe_hashed(&self, hash: Option<u32>, key: &FlowKey) -> Option<(SessionId, Direction)> {
        match hash {
            Some(hash) => self.lookup_hashed(hash, key),
            None => self.lookup(key),
        }
    }

    /// Stage one of a burst: the hash of `key`, its index slot on its way into the cache.
    #[inline]
    pub fn prefetch_index(&self, key: &FlowKey) -> u32 {
        let hash = self.index.hash(key);
        self.index.prefetch(hash);
        hash
    }

    /// Stage two: the session a lookup under `hash` will most likely find on its way into the
    /// cache (one line: all a packet of it reads and writes, unless its state changes); returns
    /// its id. Run after `prefetch_index` had time.
    #[inline]
    pub fn prefetch_session(&self, hash: u32) -> Option<SessionId> {
        let (id, _) = decode(self.hint(hash).guess?);
        Some(SessionId(id))
    }

    /// `prefetch_session`, keeping what it found for `lookup_hinted`.
    #[inline]
    pub fn hint(&self, hash: u32) -> Hint {
        let guess = self.index.first_under(hash);
        if let Some(entry) = guess {
            crate::prefetch::prefetch(&self.sessions[decode(entry).0 as usize]);
        }
        Hint { hash, guess }
    }

    /// `lookup` of `key` with what the burst's stages learnt of it: the index entry stage two
    /// found, if the session there (now: packets before this one may have changed the table)
    /// has this very key, since a key has one session at most and a free slot none; otherwise
    /// the index, searched under the hint's hash, or the key's when there is no hint.
    #[inline(always)]
    pub fn lookup_hinted(&self, hint: Option<Hint>, key: &FlowKey) -> Option<(SessionId, Direction)> {
        if let Some(entry) = hint.and_then(|h| h.guess) {
            let (id, dir) = decode(entry);
            if self.sessions[id as usize].key(dir) == *key {
                return Some((SessionId(id), dir));
            }
        }
        self.lookup_maybe_hashed(hint.map(|h| h.hash), key)
    }

    /// Creates a session in the state `new.tcp_flags` opens (`State::initial`), due to expire
    /// after that state's timeout unless touched. Refused, with nothing changed, if the table is
    /// full or either key is already in use.
    #[inline]
    pub fn insert(&mut self, new: NewSession, now_ms: u64) -> Result<SessionId, InsertError> {
        debug_assert_ne!(new.proto, 0, "protocol 0 marks a free slot");
        if self.wheel.live() as usize == self.sessions.len() {
            return Err(InsertError::TableFull);
        }
        let forward = FlowKey { proto: new.proto, src: new.client, dst: new.vip };
        let reply = FlowKey { proto: new.proto, src: new.backend, dst: new.local };
        if reply == forward {
            return Err(InsertError::DuplicateKey(Direction::Reply));
        }
        let (forward_hash, reply_hash) = (self.index.hash(&forward), self.index.hash(&reply));
        // The reply key's slot is a cache miss for a new session (the forward key's was looked
        // up just before): it loads while the forward key is checked.
        self.index.prefetch(reply_hash);
        if self.find(forward_hash, &forward).is_some() {
            return Err(InsertError::DuplicateKey(Direction::Forward));
        }
        if self.find(reply_hash, &reply).is_some() {
            return Err(InsertError::DuplicateKey(Direction::Reply));
        }
        let state = State::initial(new.proto, new.tcp_flags);
        self.wheel.sync(now_ms / TICK_MS);
        let Some(id) = self.wheel.alloc(due_tick(now_ms, self.timeout_ms[state.index()])) else {
            return Err(InsertError::TableFull);
        };
        self.sessions[id as usize] = Session {
            proto: new.proto,
            origin: super::ORIGIN_HERE,
            client: new.client,
            vip: new.vip,
            local: new.local,
            backend: new.backend,
            service: new.service,
            backend_index: new.backend_index,
            state,
            // Not looked at yet (`fullnat::sweep`): the fast lane leaves it alone until then.
            seen: SEEN_STALE,
            hops: new.hops,
            extras: 0,
            created_ms: now_ms,
            last_seen_ms: now_ms,
        };
        // The next session's record: written by the next insert, a miss unless it loads now.
        if let Some(next) = self.wheel.next_free() {
            crate::prefetch::prefetch(&self.sessions[next as usize]);
        }
        self.wildcards += u32::from(new.backend == WILDCARD);
        // Room is certain: the index holds 2 * capacity entries and this id was free.
        let stored_forward = self.index.insert(forward_hash, encode(id, Direction::Forward));
        let stored_reply = self.index.insert(reply_hash, encode(id, Direction::Reply));
        debug_assert!(stored_forward && stored_reply);
        Ok(SessionId(id))
    }

    /// A live session. An id that is no longer live reads whatever that slot holds.
    #[inline(always)]
    pub fn get(&self, id: SessionId) -> &Session {
        &self.sessions[id.0 as usize]
    }

    /// A live session, for what the caller keeps in it (`service`, `backend_index`). It must
    /// not change the key fields (`proto`, `client`, `vip`, `local`, `backend`): the index
    /// finds sessions by them. States change through `touch`, which re-files the timer.
    #[inline(always)]
    pub fn get_mut(&mut self, id: SessionId) -> &mut Session {
        &mut self.sessions[id.0 as usize]
    }

    /// Records a packet seen in `dir` with `tcp_flags` (0 for UDP): last seen, which ways have
    /// spoken, and the TCP state transition, which re-files the session's timer. A packet costs
    /// a few stores to the session's own cache line; only a state change touches the wheel.
    /// `Touch::Reopen` (nothing recorded) for a client SYN on a closing session. A stale id is
    /// ignored (a free slot's protocol is 0).
    #[inline(always)]
    pub fn touch(&mut self, id: SessionId, dir: Direction, tcp_flags: u8, now_ms: u64) -> Touch {
        let Some(session) = self.sessions.get_mut(id.0 as usize) else {
            return Touch::Ok;
        };
        // Nearly every packet: a state the packet cannot change (`state::keeps`), only seen.
        if session.proto != 0 && keeps(session.state, tcp_flags) {
            session.seen |= dir.bit();
            session.last_seen_ms = session.last_seen_ms.max(now_ms);
            return Touch::Ok;
        }
        self.touch_changing(id, dir, tcp_flags, now_ms)
    }

    /// `touch` where the state may change.
    #[inline(never)]
    fn touch_changing(&mut self, id: SessionId, dir: Direction, tcp_flags: u8, now_ms: u64) -> Touch {
        let session = &mut self.sessions[id.0 as usize];
        if session.proto == 0 {
            return Touch::Ok;
        }
        let reply_seen = session.seen & Direction::Reply.bit() != 0;
        let forward_seen = session.seen & Direction::Forward.bit() != 0;
        let Some(state) = next_state(session.state, dir, tcp_flags, reply_seen, forward_seen) else {
            return Touch::Reopen;
        };
        session.seen |= dir.bit();
        session.last_seen_ms = session.last_seen_ms.max(now_ms);
        if state != session.state {
            session.state = state;
            self.wheel.refile(id.0, due_tick(session.last_seen_ms, self.timeout_ms[state.index()]));
        }
        Touch::Ok
    }

    /// Sets what a peer's record says of a session: its state, the last time it was seen (never
    /// earlier than this table saw it), and its origin; re-files its timer. A stale id is
    /// ignored.
    pub fn refresh(&mut self, id: SessionId, state: State, last_seen_ms: u64, origin: u16) {
        if !self.wheel.is_live(id.0) {
            return;
        }
        let session = &mut self.sessions[id.0 as usize];
        session.state = state;
        session.origin = origin;
        session.last_seen_ms = session.last_seen_ms.max(last_seen_ms);
        let due = due_tick(session.last_seen_ms, self.timeout_ms[state.index()]);
        self.wheel.refile(id.0, due);
    }

    /// The idle timeout of `state`, in ms.
    pub fn timeout_ms(&self, state: State) -> u64 {
        self.timeout_ms[state.index()]
    }

    /// The live session in slab slot `slot`, if any: for walks a few slots at a time.
    pub fn at_slot(&self, slot: usize) -> Option<(SessionId, &Session)> {
        let session = self.sessions.get(slot)?;
        self.wheel.is_live(slot as u32).then_some((SessionId(slot as u32), session))
    }

    /// Removes a live session and returns it, so that the caller can give back its local port.
    ///
    /// # Panics
    /// If `id` is not live (removed or expired already): a caller's bug, never a packet's.
    #[inline]
    pub fn remove(&mut self, id: SessionId) -> Session {
        let session = &self.sessions[id.0 as usize];
        let hashes =
            [self.index.hash(&session.key(Direction::Forward)), self.index.hash(&session.key(Direction::Reply))];
        self.remove_hashed(id, hashes)
    }

    /// `remove`, with the hashes of the session's keys (forward, reply) known.
    #[inline]
    fn remove_hashed(&mut self, id: SessionId, hashes: [u32; 2]) -> Session {
        assert!(self.wheel.is_live(id.0), "remove of a session that is not live: {id:?}");
        let session = self.sessions[id.0 as usize];
        for (dir, hash) in [Direction::Forward, Direction::Reply].into_iter().zip(hashes) {
            debug_assert_eq!(hash, self.index.hash(&session.key(dir)));
            let removed = self.index.remove(hash, encode(id.0, dir));
            debug_assert!(removed, "{dir:?} key of {id:?} missing from the index");
        }
        self.wheel.release(id.0);
        self.wildcards -= u32::from(session.backend == WILDCARD);
        self.sessions[id.0 as usize].proto = 0;
        session
    }

    /// Expires the sessions idle for longer than their state's timeout, calling `on_expired`
    /// with each before it goes (to give back its local port). Examines at most `budget`
    /// sessions, expired or re-filed, so one call's work is bounded; what is left waits for
    /// the next call. Cost: O(examined + wheel slots advanced), never a scan of the table.
    /// Returns how many expired.
    ///
    /// Exact within one tick: a session never expires before it has been idle for longer than
    /// its timeout, and once it has, it expires at the next `TICK_MS` boundary (at the first
    /// call from then on with budget to reach it).
    pub fn expire(&mut self, now_ms: u64, budget: usize, mut on_expired: impl FnMut(&Session)) -> usize {
        self.expire_counted(now_ms, budget, |s, due| {
            if due == Due::Now {
                on_expired(s)
            }
        })
        .0
    }

    /// As `expire`, with `on_due` told of each session that expires (`Due::Now`) and, first,
    /// of the one likely to expire next (`Due::Next`: to start loading what ending it will
    /// touch); returns how many expired and how many were examined (expired or re-filed):
    /// fewer than `budget` means nothing more is due.
    ///
    /// The walk looks ahead along the wheel slot's list, so that each session's cache misses
    /// (its record and links `LOOK_AHEAD` steps ahead, its index slots `HASH_AHEAD` steps
    /// ahead) overlap the work on those before it instead of following it: expiring a session
    /// otherwise waits for some five misses in a row, about as long as opening one.
    pub fn expire_counted(
        &mut self,
        now_ms: u64,
        budget: usize,
        mut on_due: impl FnMut(&Session, Due),
    ) -> (usize, usize) {
        let now_tick = now_ms / TICK_MS;
        self.wheel.sync(now_tick);
        let (mut expired, mut examined) = (0, 0);
        // The sessions after the one due now along its slot's list, nearest first, with their
        // keys' hashes once hashed (those that will expire).
        let mut ahead = [(0u32, None::<[u32; 2]>); LOOK_AHEAD];
        let mut len = 0;
        while examined < budget {
            let Some(id) = self.wheel.next_due(now_tick) else {
                break;
            };
            examined += 1;
            let mut hashes = None;
            if len > 0 && ahead[0].0 == id {
                hashes = ahead[0].1;
                ahead.copy_within(1..len, 0);
                len -= 1;
            } else {
                len = 0; // the walk left the list it looked along (its slot ended)
            }
            // The one `LOOK_AHEAD` steps on: its record and links start loading (its links
            // were asked for a step ago, when the one before it came in sight).
            let mut last = if len > 0 { ahead[len - 1].0 } else { id };
            while len < LOOK_AHEAD {
                let Some(next) = self.wheel.after(last) else { break };
                self.wheel.prefetch(next);
                crate::prefetch::prefetch(&self.sessions[next as usize]);
                ahead[len] = (next, None);
                len += 1;
                last = next;
            }
            // The one `HASH_AHEAD` steps on: its record has had time to load; if it will
            // expire, its keys are hashed and their index slots start loading.
            if len >= HASH_AHEAD {
                let (next, ready) = &mut ahead[HASH_AHEAD - 1];
                let s = &self.sessions[*next as usize];
                if ready.is_none() && self.is_idle(s, now_ms) {
                    let h = [self.index.hash(&s.key(Direction::Forward)), self.index.hash(&s.key(Direction::Reply))];
                    self.index.prefetch(h[0]);
                    self.index.prefetch(h[1]);
                    on_due(s, Due::Next);
                    *ready = Some(h);
                }
            }
            let session = &self.sessions[id as usize];
            if self.is_idle(session, now_ms) {
                on_due(session, Due::Now);
                match hashes {
                    Some(hashes) => self.remove_hashed(SessionId(id), hashes),
                    None => self.remove(SessionId(id)),
                };
                expired += 1;
            } else {
                // Seen since it was filed: lazy re-arm at its real deadline.
                let due = due_tick(session.last_seen_ms, self.timeout_ms[session.state.index()]);
                self.wheel.refile(id, due);
            }
        }
        (expired, examined)
    }

    /// Whether `session` has been idle for longer than its state's timeout at `now_ms`.
    #[inline(always)]
    fn is_idle(&self, session: &Session, now_ms: u64) -> bool {
        now_ms.saturating_sub(session.last_seen_ms) > self.timeout_ms[session.state.index()]
    }

    pub fn len(&self) -> usize {
        self.wheel.live() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.sessions.len()
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The live sessions in slab order. Walks the whole slab: for listings, not the packet path.
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &Session)> + '_ {
        self.sessions
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.wheel.is_live(i as u32))
            .map(|(i, session)| (SessionId(i as u32), session))
    }

    /// Calls `f` for the live sessions among slots `from .. from + slots`; returns where the
    /// next call should start, 0 when the slab has been walked to its end. Lets a worker list
    /// its sessions a little at a time between bursts.
    pub fn scan(&self, from: usize, slots: usize, mut f: impl FnMut(&Session)) -> usize {
        let (range, next) = self.scan_range(from, slots);
        for i in range.filter(|&i| self.wheel.is_live(i as u32)) {
            f(&self.sessions[i]);
        }
        next
    }

    /// `scan`, with each live session to change (`fullnat::sweep`'s mark; the key fields must
    /// stay as they are, as for `get_mut`).
    pub fn scan_mut(&mut self, from: usize, slots: usize, mut f: impl FnMut(&mut Session)) -> usize {
        let (range, next) = self.scan_range(from, slots);
        for i in range {
            if self.wheel.is_live(i as u32) {
                f(&mut self.sessions[i]);
            }
        }
        next
    }

    /// The slots a scan of `slots` from `from` looks at, and where the next one starts (0 at
    /// the end of the slab).
    fn scan_range(&self, from: usize, slots: usize) -> (std::ops::Range<usize>, usize) {
        let end = from.saturating_add(slots).min(self.sessions.len());
        (from.min(end)..end, if end >= self.sessions.len() { 0 } else { end })
    }

    /// What a table of `capacity` sessions allocates, near enough (the wheel's slots aside):
    /// to refuse, before any allocation, a capacity the machine cannot hold.
    pub fn bytes_for(capacity: u32) -> u64 {
        let n = u64::from(capacity);
        n * std::mem::size_of::<Session>() as u64 + FlowIndex::bytes_for(2 * capacity as usize) as u64 + n * 8
    }

    /// Entries in the flow index: two a live session (tests).
    #[cfg(test)]
    pub(super) fn index_entries(&self) -> usize {
        self.index.len()
    }

    /// What the table allocated: the slab, the index and the wheel's links.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.sessions) + self.index.memory_bytes() + self.wheel.memory_bytes()
    }

    #[inline(always)]
    fn find(&self, hash: u32, key: &FlowKey) -> Option<(SessionId, Direction)> {
        let entry = self.index.find(hash, |entry| {
            let (id, dir) = decode(entry);
            self.sessions[id as usize].key(dir) == *key
        })?;
        let (id, dir) = decode(entry);
        Some((SessionId(id), dir))
    }
}

impl fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTable")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("wheel_slots", &self.wheel.slots())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// Which session `SessionTable::expire_counted` tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The one likely to expire next: what ending it touches may start loading.
    Next,
    /// It expired: it is removed once the call returns.
    Now,
}

/// What a burst's first two stages learnt of a packet's flow (`SessionTable::hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// The key's hash (`prefetch_index`).
    pub hash: u32,
    /// The first index entry under it when stage two ran, if any.
    guess: Option<u32>,
}

impl Hint {
    /// A hint of the hash alone (stage two not run).
    pub const fn hash_only(hash: u32) -> Hint {
        Hint { hash, guess: None }
    }
}

/// Index entries: session index and direction in one `u32` (ids stay below 2^28).
#[inline(always)]
fn encode(id: u32, dir: Direction) -> u32 {
    (id << 1) | dir as u32
}

#[inline(always)]
fn decode(entry: u32) -> (u32, Direction) {
    let dir = if entry & 1 == 0 { Direction::Forward } else { Direction::Reply };
    (entry >> 1, dir)
}

/// The tick at whose start a session last seen at `last_seen_ms` has been idle for longer than
/// `timeout_ms`: the first ms past its deadline, rounded up to a tick boundary.
#[inline(always)]
fn due_tick(last_seen_ms: u64, timeout_ms: u64) -> u64 {
    last_seen_ms.saturating_add(timeout_ms).saturating_add(1).div_ceil(TICK_MS)
}
