//! Giving way when full: the sessions a local IP's ports are held by that have yet to show
//! they are real (`State::unconfirmed`: a handshake not finished, a UDP flow of one datagram),
//! oldest first, so that a new flow can take the place of the oldest of them (conntrack's early
//! drop) when the session table or a local IP's ports run out (`[sessions] when_full = "evict"`).
//!
//! One FIFO per port pool of (session id, low bits of its creation time), filled as sessions are
//! opened: O(1) a session, nothing on the per-packet path. Entries go stale when their session
//! is confirmed, ends, or its slot is reused; they are recognised as such when they reach the
//! head and skipped. The ring has room for twice as many entries as the pool can have sessions
//! (a session holds a port, and a worker holds at most its session capacity); when it is full
//! anyway, the oldest entry makes room, and that session, if still unconfirmed, is left to its
//! (short) timeout.

use super::*;

#[derive(Clone)]
pub struct Unconfirmed {
    ring: Box<[(u32, u32)]>,
    head: usize,
    len: usize,
}

impl Unconfirmed {
    /// A queue for a pool with room for `sessions` sessions (its ports, or the worker's session
    /// capacity if smaller), all its memory allocated here.
    pub fn for_pool(sessions: u32) -> Unconfirmed {
        let room = (2 * sessions as usize).max(2);
        Unconfirmed { ring: vec![(0, 0); room].into_boxed_slice(), head: 0, len: 0 }
    }

    /// Files a session just opened with a port of this pool.
    #[inline]
    pub fn push(&mut self, id: SessionId, created_ms: u64) {
        if self.len == self.ring.len() {
            self.head = self.wrap(self.head + 1);
            self.len -= 1;
        }
        let tail = self.wrap(self.head + self.len);
        self.ring[tail] = (id.get(), created_ms as u32);
        self.len += 1;
    }

    /// `i` modulo the ring's length, for `i` under twice that (a compare, not a division: a
    /// push comes with every new session).
    #[inline(always)]
    fn wrap(&self, i: usize) -> usize {
        if i >= self.ring.len() {
            i - self.ring.len()
        } else {
            i
        }
    }

    /// The oldest session still unconfirmed with a port of `pool`, with its creation time;
    /// stale entries before it are dropped. It stays queued until `pop`.
    pub fn oldest(&mut self, sessions: &SessionTable, pool: Ipv4Addr) -> Option<(SessionId, u64)> {
        while self.len > 0 {
            let (slot, stamp) = self.ring[self.head];
            if let Some((id, s)) = sessions.at_slot(slot as usize) {
                let mine = s.origin == ORIGIN_HERE && s.local.ip == pool;
                if mine && s.state.unconfirmed() && s.created_ms as u32 == stamp {
                    return Some((id, s.created_ms));
                }
            }
            self.pop();
        }
        None
    }

    /// Drops the head entry.
    pub fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % self.ring.len();
            self.len -= 1;
        }
    }
}

impl FullNat {
    /// Ends the oldest unconfirmed session holding a port of one of `service`'s local IPs (or,
    /// with `any_pool`, of any local IP of this worker): room for a new flow. `false` when
    /// there is none.
    pub(super) fn evict_one(&mut self, service: usize, any_pool: bool, c: &WorkerCounters) -> bool {
        let mut best: Option<(usize, SessionId, u64)> = None;
        let own = &self.services[service].pools;
        let candidates: &mut dyn Iterator<Item = usize> =
            if any_pool { &mut (0..self.pools.len()) } else { &mut own.iter().map(|&p| p as usize) };
        for at in candidates {
            let (Some(queue), Some(pool)) = (self.unconfirmed.get_mut(at), self.pools.get(at)) else { continue };
            if let Some((id, created)) = queue.oldest(&self.sessions, pool.ip()) {
                if best.is_none_or(|(_, _, t)| created < t) {
                    best = Some((at, id, created));
                }
            }
        }
        let Some((at, id, _)) = best else { return false };
        self.unconfirmed[at].pop();
        let old = self.sessions.remove(id);
        end(&mut self.pools, c, &old);
        c.sessions_evicted.add(1);
        true
    }
}
