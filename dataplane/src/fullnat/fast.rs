//! The fast lane of `FullNat::process`: a plain packet (`nat::Plain`: IPv4 without options, TCP
//! or UDP) of an established session that needs nothing but the rewrite, the case of nearly
//! every packet a balancer forwards. It reads the headers at fixed offsets and the session by
//! reference, and takes the packet only where the general path would forward it: anything else
//! (no session, a session with extras or per-datagram scheduling, its service or backend gone
//! or its VIP down, a client SYN reopening a closed connection) is left, with nothing changed,
//! to the general path, which handles the packet as if the lane were not there (told only, when
//! the lane found no session of the tuple's own, that and the lane's reading of the packet,
//! which `inspect` would return alike: `nat::plain`'s tests hold the two readers to that).
//! The state machine, the standing check, the sync hook and the counters are the general
//! path's own; the standing check is read from the session's mark once the table has been
//! swept under the packet's snapshot (`sweep`).
//!
//! `FullNat::set_fast_lane(false)` turns it off, so that the tests can replay the same traffic
//! through both paths and compare every step, byte and counter (`tests/fast_lane.rs`), and the
//! benchmark can show what it saves.

use super::sweep::stands;
use super::{count, offload_to, FullNat, Step, ANY_BACKEND};
use crate::counters::WorkerCounters;
use crate::nat::Plain;
use crate::session::{Direction, Endpoint, FlowKey, Hint, Touch, SEEN_STALE};
use crate::snapshot::Snapshot;

/// What the fast lane made of a packet.
pub(super) enum Lane {
    /// Taken: the packet's step.
    Took(Step),
    /// A plain packet whose own tuple has no session (a new flow, mostly), and the lane's
    /// reading of it: the general path handles it without reading and checking the header or
    /// looking the same tuple up again, and rewrites it as the lane would.
    NoSession(Plain),
    /// Not the lane's: the general path handles it from the start.
    General,
}

impl FullNat {
    /// The packet's step if it takes the fast lane; otherwise, with nothing changed, what the
    /// general path may skip. `hint`: what the burst's stages learnt of the packet, if anything.
    #[inline(always)]
    pub(super) fn fast_lane(
        &mut self,
        snap: &Snapshot,
        ip: &mut [u8],
        now_ms: u64,
        c: &WorkerCounters,
        hint: Option<Hint>,
    ) -> Lane {
        let Some(p) = Plain::parse(ip) else { return Lane::General };
        let key =
            FlowKey { proto: p.proto, src: Endpoint::new(p.src, p.src_port), dst: Endpoint::new(p.dst, p.dst_port) };
        let Some((id, dir)) = self.sessions.lookup_hinted(hint, &key) else { return Lane::NoSession(p) };
        let s = self.sessions.get(id);
        if s.extras != 0 || s.backend_index == ANY_BACKEND {
            return Lane::General;
        }
        // Whether it may go on: the sweep's mark once the table is swept under this snapshot.
        let live = if self.swept(snap) { s.seen & SEEN_STALE == 0 } else { stands(snap, s, self.queue) };
        if !live {
            return Lane::General;
        }
        let before = s.state;
        if self.sessions.touch(id, dir, p.tcp_flags, now_ms) == Touch::Reopen {
            return Lane::General;
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
        Lane::Took(Step::Forward { hop, offload })
    }
}
