//! Standing once a snapshot, not once a packet. Whether a session may go on (`standing`, and
//! its service's quorum) changes only with the snapshot, yet the fast lane asked it of every
//! packet: some 65 instructions under callgrind, and three more cache lines (the service, the
//! backend, the local IPs' owners). Instead, between bursts, the worker sweeps the table a few
//! slots at a time (`sweep_some`) and marks each live session that may not go on
//! (`SEEN_STALE`), clearing the mark of those that may; a session opened, or changed by a peer,
//! is looked at as it is stored (`restand`), and one not yet looked at carries the mark. Once
//! the sweep has walked the whole table under the snapshot in force, the fast lane reads the
//! mark instead of asking; before, or for a packet under any other snapshot, it asks as it did.
//! The general path never reads the mark: it asks `standing` itself, so a marked session is
//! handled exactly as before, only not by the lane. `standing`, the check itself, is here too.

use super::{FullNat, ANY_BACKEND};
use crate::session::{Session, SessionId, ORIGIN_HERE, SEEN_STALE};
use crate::snapshot::{BackendState, Snapshot};

/// Where the sweep is: the generation of the snapshot the whole table was last swept under,
/// and how far the sweep under a newer one has got.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Sweep {
    done: Option<u64>,
    walk: Option<(u64, usize)>,
}

impl FullNat {
    /// Looks at up to `slots` slots of the table under `snap`, a sweep under a new snapshot
    /// starting again from the first; returns how many it looked at, fewer than `slots` once
    /// the whole table has been swept under `snap` (then 0, at once).
    pub fn sweep_some(&mut self, snap: &Snapshot, slots: usize) -> usize {
        if self.sweep.done == Some(snap.generation) {
            return 0;
        }
        let from = match self.sweep.walk {
            Some((generation, at)) if generation == snap.generation => at,
            _ => 0,
        };
        let worker = self.queue;
        let next = self.sessions.scan_mut(from, slots, |s| mark(s, stands(snap, s, worker)));
        if next == 0 {
            self.sweep = Sweep { done: Some(snap.generation), walk: None };
            self.sessions.capacity().saturating_sub(from)
        } else {
            self.sweep.walk = Some((snap.generation, next));
            next - from
        }
    }

    /// Whether the whole table has been swept under `snap`: the fast lane may read the marks.
    #[inline(always)]
    pub(super) fn swept(&self, snap: &Snapshot) -> bool {
        self.sweep.done == Some(snap.generation)
    }

    /// Looks at session `id` under `snap` now: after it is opened or a peer changed it.
    pub(super) fn restand(&mut self, snap: &Snapshot, id: SessionId) {
        let worker = self.queue;
        let s = self.sessions.get_mut(id);
        let ok = stands(snap, s, worker);
        mark(s, ok);
    }
}

/// Whether `s` may go on under `snap` by the fast lane's lights: its service has its quorum
/// and `standing` finds it live.
#[inline(always)]
pub(super) fn stands(snap: &Snapshot, s: &Session, worker: u16) -> bool {
    let quorum = snap.services.get(usize::from(s.service)).is_some_and(|service| service.quorum);
    quorum && matches!(standing(snap, s, worker), Standing::Live)
}

#[inline(always)]
fn mark(s: &mut Session, ok: bool) {
    if ok {
        s.seen &= !SEEN_STALE;
    } else {
        s.seen |= SEEN_STALE;
    }
}

/// Whether a session may go on under the snapshot in force.
pub(super) enum Standing {
    Live,
    /// Its service or backend is gone, or its backend is down with `on_failure = "remove"`.
    Ended,
}

/// Checks a session against the snapshot in force: its service, its backend, and, for a
/// session opened here, its local IP (still this worker's: one removed by a reload ends its
/// sessions; a copy of another node's session has that node's local IP).
#[inline]
pub(super) fn standing(snap: &Snapshot, s: &Session, worker: u16) -> Standing {
    if s.origin == ORIGIN_HERE && !snap.local_owners.is_empty() && snap.owner_of(s.local.ip) != Some(worker) {
        return Standing::Ended;
    }
    let Some(service) = snap.services.get(s.service as usize) else { return Standing::Ended };
    if !service.live || service.vip != s.vip || service.proto != s.proto {
        return Standing::Ended;
    }
    if s.backend_index == ANY_BACKEND {
        return Standing::Live;
    }
    match snap.backends.get(s.backend_index as usize) {
        Some(b) if b.live && b.service == s.service && b.endpoint == s.backend => {
            if b.state == BackendState::Down && service.remove_on_failure {
                Standing::Ended
            } else {
                Standing::Live
            }
        }
        _ => Standing::Ended,
    }
}
