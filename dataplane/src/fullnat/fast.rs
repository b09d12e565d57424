//! The fast lane of `FullNat::process`: a plain packet (`nat::Plain`: IPv4 without options, TCP
//! or UDP) of an established session that needs nothing but the rewrite, the case of nearly
//! every packet a balancer forwards. It reads the headers at fixed offsets and the session by
//! reference, and takes the packet only where the general path would forward it: anything else
//! (no session, a session with extras or per-datagram scheduling, its service or backend gone
//! or its VIP down, a client SYN reopening a closed connection) returns `None` with nothing
//! changed, and the general path handles the packet as if the lane were not there. The state
//! machine, the standing check, the sync hook and the counters are the general path's own.
//!
//! `FullNat::set_fast_lane(false)` turns it off, so that the tests can replay the same traffic
//! through both paths and compare every step, byte and counter (`tests/fast_lane.rs`), and the
//! benchmark can show what it saves.

use super::{count, offload_to, standing, FullNat, Standing, Step, ANY_BACKEND};
use crate::counters::WorkerCounters;
use crate::nat::Plain;
use crate::session::{Direction, Endpoint, FlowKey, Touch};
use crate::snapshot::Snapshot;

impl FullNat {
    /// The step for `ip` if it takes the fast lane; `None`, with nothing changed, if the
    /// general path must handle it. `hash`: the key's hash from `prefetch_index`, if known.
    #[inline(always)]
    pub(super) fn fast_lane(
        &mut self,
        snap: &Snapshot,
        ip: &mut [u8],
        now_ms: u64,
        c: &WorkerCounters,
        hash: Option<u32>,
    ) -> Option<Step> {
        let p = Plain::parse(ip)?;
        let key =
            FlowKey { proto: p.proto, src: Endpoint::new(p.src, p.src_port), dst: Endpoint::new(p.dst, p.dst_port) };
        let (id, dir) = match hash {
            Some(hash) => self.sessions.lookup_hashed(hash, &key),
            None => self.sessions.lookup(&key),
        }?;
        let s = self.sessions.get(id);
        if s.extras != 0 || s.backend_index == ANY_BACKEND {
            return None;
        }
        let live = snap.services.get(usize::from(s.service)).is_some_and(|service| service.quorum);
        if !live || !matches!(standing(snap, s, self.queue), Standing::Live) {
            return None;
        }
        let before = s.state;
        if self.sessions.touch(id, dir, p.tcp_flags, now_ms) == Touch::Reopen {
            return None;
        }
        if self.sync.is_some() {
            self.after_touch(id, before, now_ms, c);
        }
        let s = self.sessions.get(id);
        let (src, dst, hop) = match dir {
            Direction::Forward => (s.local, s.backend, s.hops[0]),
            Direction::Reply => (s.vip, s.client, s.hops[1]),
        };
        let offload = offload_to(snap, hop, p.proto);
        p.rewrite(ip, (src.ip, src.port), (dst.ip, dst.port), offload.is_some());
        count(c, dir, Some(s.backend_index), u32::from(p.total_len));
        Some(Step::Forward { hop, offload })
    }
}
