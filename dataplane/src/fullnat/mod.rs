//! FULLNAT for one worker: session lookup, scheduling, local port allocation and the rewrite,
//! on the IPv4 packet of a frame whose destination the data path owns (a VIP or a local IP).
//!
//! Owns: the worker's session table, its local port pools, its per-service scheduler state
//! (`part::WorkerPart`, built on the control core) and the next hops cached per session. Reads
//! the published `Snapshot`, whose service slots and backend ids are stable across reloads, so
//! a session checks on every packet that its service and backend are still there and usable.
//! Knows nothing of mbufs: `process` works on `&mut [u8]` and says what to do with the result
//! (`Step`), so every rule is testable on byte arrays. Never allocates, locks or blocks.

mod admit;
mod evict;
mod extras;
mod fast;
mod icmp;
mod open;
pub mod part;
pub mod proxied;
mod retries;
mod sweep;
use sweep::{standing, Standing};
mod syn;
mod sync;
pub mod synproxied;
mod toa;

use std::net::Ipv4Addr;

use crate::counters::{DropReason, WorkerCounters};
use crate::laddr::{Pools, PortPool};
use crate::nat::{self, Inspected, Plain, Refusal};
pub use crate::route::Hop;
use crate::session::{
    tcp_flags, Direction, Due, Endpoint, FlowKey, Hint, InsertError, NewSession, Session, SessionId, SessionTable,
    Touch, EXTRA_PROXY_V2, EXTRA_SYNPROXY, EXTRA_TOA, EXTRA_TOA_DONE, ORIGIN_HERE, WILDCARD,
};
use crate::snapshot::{ClientAddress, Snapshot};
use crate::wire::ipv4::{self, protocol};

pub use evict::Unconfirmed;
pub use part::{PoolLayout, ServiceState, WorkerPart};
pub use proxied::Emit;

/// `Session::backend_index` of a per-datagram session: it has no one backend.
pub const ANY_BACKEND: u16 = u16::MAX;

/// Which L4 checksum the NIC must finish for a packet rewritten for offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadL4 {
    Tcp,
    Udp,
}

/// What to do with the packet `process` was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Rewritten in place: send it to `hop` (to the host's kernel if `hop.to_kernel()`, never
    /// with offload). With `offload`, the NIC must fill the IPv4 header checksum and that L4
    /// checksum; without, every checksum is already right.
    Forward {
        hop: Hop,
        offload: Option<OffloadL4>,
    },
    /// Rewritten in place, and more to do for the client's address (`client_address`): what,
    /// `FullNat::take_extra` says (taken before the next packet); then send it to `hop`.
    /// Apart, so that `Step` stays small for every other packet.
    ForwardExtra {
        hop: Hop,
    },
    /// Untouched: with the client's address it would exceed the MTU of the link to its
    /// backend, and its sender forbids fragmentation. Answer the sender with an ICMP
    /// fragmentation needed (next-hop MTU `mtu`), from the address it sent to.
    TooBig {
        mtu: u16,
        service: u16,
    },
    /// Answered in place (the SYN proxy's SYN+ACK) in `ip_len` bytes: shorten the frame and
    /// send it back to its source.
    Answer {
        ip_len: usize,
    },
    /// Taken in (the backend's side of the SYN proxy's handshake): nothing of it is sent; what
    /// else to do, `FullNat::take_extra` says.
    Absorbed,
    /// Answered in place (echo reply): send it back to the frame's source on its link.
    Bounce,
    /// Turned into a TCP reset of `ip_len` bytes: shorten the frame, send it back to its source.
    Reset {
        ip_len: usize,
    },
    /// Its TTL ran out here: answer with an ICMP time exceeded to the frame's source.
    TimeExceeded,
    /// An ICMP error to a VIP about a session this worker does not have: another worker may
    /// (the error came by another path than the session's packets). Hand it on.
    Elsewhere,
    Drop(DropReason),
}

/// The work a `Step::ForwardExtra` leaves to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// The client's address goes before the payload (`client_address = "proxy-v2"`): grow the
    /// packet by `header` (UDP: `nat::proxy::insert_udp_header`, splitting it in two if it then
    /// exceeds the link's MTU, which it may: checked here; TCP: `insert_tcp_header`, the first
    /// data of a session whose header is not acknowledged yet, which fits), and count the
    /// result for `service` (`ClientAddressResult`).
    Header { header: ClientHeader, service: u16 },
    /// A TCP segment of a `proxy-v2` session: send `Emit` (the PROXY header, into the stream
    /// at its place) first.
    First(Emit),
    /// A TCP segment of a `toa` session before the backend sent data: the TOA option for
    /// `client` goes first among its options (`nat::toa::insert`, which grows it by up to 8
    /// bytes at the front); the result is counted for `service`.
    Toa { client: Endpoint, service: u16 },
    /// SYN proxy: send `first` (the SYN to the backend), if any, and keep the packet, as it
    /// came, until `session`'s handshake with its backend is done.
    Hold { session: SessionId, first: Option<Emit> },
    /// SYN proxy: `session`'s backend answered: send `first` (the ACK completing its
    /// handshake), then hand every packet held for it to `process` again.
    Release { session: SessionId, first: Emit },
    /// SYN proxy: the SYN+ACK that answers a SYN whose frame had no room for it: built in a
    /// new frame and sent back where the SYN came from.
    Answer(crate::nat::shift::Segment),
}

/// What a backend is told of a session: its client, and the VIP the client reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHeader {
    pub client: Endpoint,
    pub vip: Endpoint,
}

impl ClientHeader {
    /// The PROXY protocol v2 header of a UDP datagram.
    pub fn proxy_v2_udp(&self) -> [u8; crate::wire::proxy::PROXY_LEN] {
        self.proxy_v2(crate::wire::proxy::Transport::Udp)
    }

    /// The PROXY protocol v2 header for `transport`.
    pub fn proxy_v2(&self, transport: crate::wire::proxy::Transport) -> [u8; crate::wire::proxy::PROXY_LEN] {
        crate::wire::proxy::proxy(transport, (self.client.ip, self.client.port), (self.vip.ip, self.vip.port))
    }
}

/// `Clone` for fuzzing and tests that need a pristine worker per case.
#[derive(Clone)]
pub struct FullNat {
    sessions: SessionTable,
    pools: Pools,
    /// By pool: the sessions holding its ports unconfirmed, oldest first (`evict`).
    unconfirmed: Vec<Unconfirmed>,
    /// By service slot.
    services: Vec<ServiceState>,
    /// The other workers' counters, for least-connection choices over all workers.
    peers: Vec<std::sync::Arc<WorkerCounters>>,
    /// Scratch for the scheduler: active sessions per member (allocated once).
    active: Vec<u32>,
    /// This worker's rx queue: where RSS must bring its replies.
    queue: u16,
    /// In a cluster: what session sync needs (`enable_sync`).
    sync: Option<Box<sync::SyncSide>>,
    /// TCP sessions whose stream to the backend carries the PROXY header.
    proxied: proxied::ProxiedSessions,
    /// What the last `Step::ForwardExtra` leaves to do.
    extra: Option<Extra>,
    /// Rate windows of new sessions (`admit`).
    admission: admit::Admission,
    /// The SYN proxy: this worker's cookie secret, and its sessions' handshakes and mappings.
    cookies: crate::synproxy::Cookies,
    synproxied: synproxied::SynProxiedSessions,
    /// By service slot: the window scale its backends last showed (`synproxied::CLIENT_SCALE`
    /// until then), which the SYN proxy offers clients.
    learned_scale: Vec<u8>,
    /// Whether plain packets of established sessions take the fast lane (`fast`); off only
    /// for tests and benchmarks that compare the two paths.
    fast_lane: bool,
    /// How far the table has been swept under which snapshot (`sweep`).
    sweep: sweep::Sweep,
    /// Packets the fast lane took (tests: that it is taken at all).
    #[cfg(test)]
    lane_taken: u64,
}

impl FullNat {
    /// State for one worker with room for `capacity` sessions; `part` comes from the control
    /// core's `PoolLayout::part` for the same snapshot.
    pub fn new(part: WorkerPart, capacity: u32, snapshot: &Snapshot) -> FullNat {
        let sessions = SessionTable::with_capacity(capacity, snapshot.timeouts);
        FullNat {
            sessions,
            pools: Pools::new(part.new_pools),
            unconfirmed: part.new_unconfirmed,
            services: part.services,
            peers: Vec::new(),
            active: Vec::with_capacity(crate::snapshot::MAX_BACKENDS),
            queue: part.worker,
            sync: None,
            proxied: proxied::ProxiedSessions::new(capacity),
            extra: None,
            admission: admit::Admission::default(),
            cookies: crate::synproxy::Cookies::new(),
            synproxied: synproxied::SynProxiedSessions::new(capacity),
            learned_scale: vec![synproxied::CLIENT_SCALE; crate::snapshot::MAX_SERVICES],
            fast_lane: true,
            sweep: sweep::Sweep::default(),
            #[cfg(test)]
            lane_taken: 0,
        }
    }

    /// What one worker's state for `capacity` sessions allocates, near enough (the session
    /// table, and with `sync` the sync bookkeeping): checked against the machine's memory
    /// before anything is allocated.
    pub fn bytes_for(capacity: u32, sync: bool) -> u64 {
        let per_session = if sync { 8 } else { 0 };
        SessionTable::bytes_for(capacity) + u64::from(capacity) * per_session
    }

    /// Turns the fast lane (`fast`) on or off: for tests and benchmarks that compare it with the
    /// general path, which handles every packet alone when it is off.
    pub fn set_fast_lane(&mut self, on: bool) {
        self.fast_lane = on;
    }

    /// The other workers' counters (set once at start), so that `wlc` sees every session.
    pub fn set_peers(&mut self, peers: Vec<std::sync::Arc<WorkerCounters>>) {
        self.peers = peers;
    }

    /// Worker `worker` of `workers` on `snapshot`, its part built right here: for tests,
    /// benchmarks and fuzzing (the appliance builds parts on the control core).
    pub fn for_worker(snapshot: &Snapshot, worker: usize, workers: usize, capacity: u32) -> FullNat {
        let part = PoolLayout::new(worker, workers, capacity).part(snapshot);
        FullNat::new(part, capacity, snapshot)
    }

    /// Takes the state built for a new snapshot; returns what it replaces, for the control core
    /// to free. Sessions, pools and their ports carry over.
    pub fn adopt(&mut self, mut part: WorkerPart) -> WorkerPart {
        self.pools.append(std::mem::take(&mut part.new_pools));
        self.unconfirmed.append(&mut part.new_unconfirmed);
        std::mem::swap(&mut self.services, &mut part.services);
        part
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    pub fn port_pools(&self) -> &[PortPool] {
        &self.pools
    }

    /// Publishes each local IP's free ports for the control core.
    pub fn publish_ports(&self, c: &WorkerCounters) {
        for (pool, slot) in self.pools.iter().zip(c.local_ports.iter()) {
            slot.ip.store(u32::from(pool.ip()), std::sync::atomic::Ordering::Relaxed);
            slot.free.set(u64::from(pool.free()));
        }
    }

    /// Expires idle sessions (at most `budget` examined) and gives their local ports back.
    /// Returns how many expired.
    pub fn expire(&mut self, now_ms: u64, budget: usize, c: &WorkerCounters) -> usize {
        self.expire_some(now_ms, budget, c).0
    }

    /// As `expire`; returns how many expired and how many were examined (fewer than `budget`
    /// when nothing more is due), so that a caller can bound expiry by time.
    pub fn expire_some(&mut self, now_ms: u64, budget: usize, c: &WorkerCounters) -> (usize, usize) {
        let pools = &mut self.pools;
        let (n, examined) = self.sessions.expire_counted(now_ms, budget, |s, due| match due {
            Due::Now => end(pools, c, s),
            // Giving its port back reads the port's taken bit: a miss, unless it loads now.
            Due::Next if s.origin == ORIGIN_HERE => {
                if let Some(at) = pools.position(s.local.ip) {
                    pools[at].prefetch_bit(s.local.port);
                }
            }
            Due::Next => {}
        });
        c.sessions_expired.add(n as u64);
        (n, examined)
    }

    /// Segments the worker must send on its own now: PROXY headers due again, and resets of
    /// connections whose header was never acknowledged (those sessions end here).
    pub fn resend_headers(&mut self, now_ms: u64, c: &WorkerCounters, out: &mut Vec<Emit>) {
        let pools = &mut self.pools;
        self.proxied.resend(&mut self.sessions, now_ms, c, out, |s| end(pools, c, s));
        self.synproxied.resend(&mut self.sessions, now_ms, out, |s| end(pools, c, s));
    }

    /// What the last `Step::ForwardExtra` leaves to the worker (once).
    pub fn take_extra(&mut self) -> Option<Extra> {
        self.extra.take()
    }

    /// Returns `ForwardExtra`, leaving `extra` to be taken.
    fn extra(&mut self, hop: Hop, extra: Extra) -> Step {
        self.extra = Some(extra);
        Step::ForwardExtra { hop }
    }

    /// The shift state of TCP `proxy-v2` sessions (tests).
    pub fn proxied(&self) -> &proxied::ProxiedSessions {
        &self.proxied
    }

    /// Stage one of a burst, before `process`: for an IPv4 TCP or UDP packet, its flow's hash
    /// with the index slot on its way into the cache. A cheap look at the header, not a check:
    /// `process` validates everything as before.
    #[inline]
    pub fn prefetch_index(&self, ip: &[u8]) -> Option<u32> {
        let p = ipv4::Packet::new_checked(ip).ok()?;
        let proto = p.protocol();
        let ports = p.payload().get(..4)?;
        if !(proto == protocol::TCP || proto == protocol::UDP) {
            return None;
        }
        let key = FlowKey {
            proto,
            src: Endpoint::new(p.src(), u16::from_be_bytes([ports[0], ports[1]])),
            dst: Endpoint::new(p.dst(), u16::from_be_bytes([ports[2], ports[3]])),
        };
        Some(self.sessions.prefetch_index(&key))
    }

    /// Stage two, once stage one has run over the burst: the session the packet most likely
    /// belongs to (its next hops included) on its way into the cache; the hint to hand to
    /// `process_hashed`.
    #[inline]
    pub fn prefetch_session(&self, hash: u32) -> Hint {
        self.sessions.hint(hash)
    }

    /// Handles the IPv4 packet `ip` (from its header to the end of the frame) addressed to a
    /// VIP or local IP of this data path.
    pub fn process(&mut self, snap: &Snapshot, ip: &mut [u8], now_ms: u64, c: &WorkerCounters) -> Step {
        self.process_hashed(snap, ip, now_ms, c, None)
    }

    /// As `process`, with `hint`: what the burst's stages learnt of this very packet
    /// (`prefetch_index`, then `prefetch_session`, or `Hint::hash_only`), so that its hash is
    /// not computed again and, mostly, the fast lane need not search the index (None: neither).
    pub fn process_hashed(
        &mut self,
        snap: &Snapshot,
        ip: &mut [u8],
        now_ms: u64,
        c: &WorkerCounters,
        hint: Option<Hint>,
    ) -> Step {
        let hash = hint.map(|h| h.hash);
        let mut missed = None;
        if self.fast_lane {
            match self.fast_lane(snap, ip, now_ms, c, hint) {
                fast::Lane::Took(step) => {
                    #[cfg(test)]
                    {
                        self.lane_taken += 1;
                    }
                    return step;
                }
                fast::Lane::NoSession(plain) => missed = Some(plain),
                fast::Lane::General => {}
            }
        }
        self.general(snap, ip, now_ms, c, hash, missed)
    }

    /// The general path: any packet the fast lane left (`missed`: the lane's reading of a
    /// plain packet whose own tuple has no session). Out of line, so that the lane's packets do
    /// not pay for its stack frame.
    #[inline(never)]
    fn general(
        &mut self,
        snap: &Snapshot,
        ip: &mut [u8],
        now_ms: u64,
        c: &WorkerCounters,
        hash: Option<u32>,
        missed: Option<Plain>,
    ) -> Step {
        // What `inspect` says of a plain packet, the lane has read already (`Plain::inspected`).
        let read = missed.map(|p| Ok(p.inspected()));
        debug_assert!(read.is_none() || read == Some(nat::inspect(ip)), "the lane read as inspect does");
        let seen = match read.unwrap_or_else(|| nat::inspect(ip)) {
            Ok(seen) => seen,
            // A ping to us answers whatever its TTL; anything to forward with TTL <= 1 expires.
            Err(Refusal::TtlExpired) if nat::echo_reply(ip).is_ok() => {
                c.icmp_echo_replies.add(1);
                return Step::Bounce;
            }
            Err(Refusal::TtlExpired) => return Step::TimeExceeded,
            Err(refusal) => return Step::Drop(refusal.into()),
        };
        match seen.tuple.proto {
            protocol::TCP | protocol::UDP => self.flow(snap, ip, &seen, now_ms, c, hash, missed.as_ref()),
            protocol::ICMP if snap.links.iter().any(|l| l.owned.is_silent(seen.tuple.dst)) => {
                Step::Drop(DropReason::VipDown)
            }
            protocol::ICMP => self.icmp(snap, ip, &seen, c),
            _ => Step::Drop(DropReason::UnsupportedProtocol),
        }
    }

    /// A TCP or UDP packet `inspect` accepted. `missed`: the fast lane read the packet and found
    /// no session of its own tuple (a new flow), so only the per-datagram lookup is left to do,
    /// and the rewrite may use the lane's reading.
    #[allow(clippy::too_many_arguments)]
    fn flow(
        &mut self,
        snap: &Snapshot,
        ip: &mut [u8],
        seen: &Inspected,
        now_ms: u64,
        c: &WorkerCounters,
        hash: Option<u32>,
        missed: Option<&Plain>,
    ) -> Step {
        let t = seen.tuple;
        let key =
            FlowKey { proto: t.proto, src: Endpoint::new(t.src, t.src_port), dst: Endpoint::new(t.dst, t.dst_port) };
        // The IP length: `ip` runs to the end of the frame, Ethernet padding included.
        let len = u32::from(seen.total_len);
        if let Some((id, dir)) = self.find_hashed(&key, hash, missed.is_some()) {
            let slot = self.sessions.get(id).service as usize;
            if snap.services.get(slot).is_some_and(|s| s.live && !s.quorum) {
                return Step::Drop(DropReason::VipDown);
            }
            if let Standing::Ended = standing(snap, self.sessions.get(id), self.queue) {
                if dir == Direction::Reply {
                    // The backend answers what it was sent before it (or its service) went
                    // away: the answer still reaches the client, and the session ends with the
                    // client's next packet.
                    return self.send(snap, ip, id, dir, t.src, len, now_ms, c, None);
                }
                let old = self.sessions.remove(id);
                end(&mut self.pools, c, &old);
                // A datagram of a flow whose backend went away is scheduled afresh below, and so
                // is a (retransmitted) SYN; any other segment of such a connection gets a reset:
                // the client learns at once.
                if t.proto != protocol::UDP && !open::may_open(t.proto, seen.tcp_flags) {
                    return match nat::tcp_reset(ip) {
                        Ok(ip_len) => Step::Reset { ip_len },
                        Err(_) => Step::Drop(DropReason::NoSession),
                    };
                }
            } else {
                // In a cluster, a state change or a due refresh is sent to the peers.
                let before = self.sync.is_some().then(|| self.sessions.get(id).state);
                match self.sessions.touch(id, dir, seen.tcp_flags, now_ms) {
                    Touch::Ok => {
                        if let Some(before) = before {
                            self.after_touch(id, before, now_ms, c);
                        }
                        return self.send(snap, ip, id, dir, t.src, len, now_ms, c, None);
                    }
                    // A new SYN on a closing connection: the old session makes way for a new one.
                    Touch::Reopen => {
                        let old = self.sessions.remove(id);
                        end(&mut self.pools, c, &old);
                    }
                }
            }
        }
        let Some(service) = snap.vips.service(t.proto, t.dst, t.dst_port) else {
            let reason = if snap.vips.is_vip(t.dst) { DropReason::NoService } else { DropReason::NoSession };
            return Step::Drop(reason);
        };
        if !snap.services[service].quorum {
            return Step::Drop(DropReason::VipDown);
        }
        if t.proto == protocol::TCP && snap.services[service].synproxy {
            return self.syn_proxy(snap, service, ip, key, seen.tcp_flags, now_ms, c);
        }
        if !open::may_open(t.proto, seen.tcp_flags) {
            return Step::Drop(DropReason::NoSession);
        }
        let svc = &snap.services[service];
        if let Some(reason) = self.admission.refuse(service, svc, t.src, now_ms, c, &self.peers) {
            return Step::Drop(reason);
        }
        match self.open(snap, service, key, seen.tcp_flags, now_ms, c) {
            Ok(id) => {
                // What backends learn of the client is fixed for the session's life.
                match snap.services[service].client_address {
                    ClientAddress::ProxyV2 => self.proxied.open(&mut self.sessions, id),
                    ClientAddress::Toa if t.proto == protocol::TCP => self.sessions.get_mut(id).extras |= EXTRA_TOA,
                    _ => {}
                }
                let _ = self.sessions.touch(id, Direction::Forward, seen.tcp_flags, now_ms);
                if self.sync.is_some() {
                    self.after_open(id, now_ms, c);
                }
                self.send(snap, ip, id, Direction::Forward, t.src, len, now_ms, c, missed)
            }
            Err(reason) => Step::Drop(reason),
        }
    }

    /// The session of a packet: by its own tuple, or, for a UDP reply, as a reply to a
    /// per-datagram session (whose reply key has no backend).
    #[inline]
    fn find(&self, key: &FlowKey) -> Option<(SessionId, Direction)> {
        self.find_hashed(key, None, false)
    }

    /// As `find`, with the key's hash when the caller has it; `own_missed`: the key itself is
    /// known to have no session.
    #[inline]
    fn find_hashed(&self, key: &FlowKey, hash: Option<u32>, own_missed: bool) -> Option<(SessionId, Direction)> {
        let own = if own_missed { None } else { self.sessions.lookup_maybe_hashed(hash, key) };
        own.or_else(|| {
            if key.proto != protocol::UDP || !self.sessions.has_wildcards() {
                return None;
            }
            let wildcard = FlowKey { src: WILDCARD, ..*key };
            self.sessions.lookup(&wildcard).filter(|&(_, dir)| dir == Direction::Reply)
        })
    }

    /// Rewrites a packet of session `id` going `dir` and says where it goes. `from` is the
    /// packet's source (for a per-datagram reply: which backend answered); `plain`: the fast
    /// lane's reading of the packet, if it has one (its rewrite leaves the same bytes).
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        snap: &Snapshot,
        ip: &mut [u8],
        id: SessionId,
        dir: Direction,
        from: Ipv4Addr,
        len: u32,
        now_ms: u64,
        c: &WorkerCounters,
        plain: Option<&Plain>,
    ) -> Step {
        let s = *self.sessions.get(id);
        let hops = s.hops;
        let (src, dst, hop, backend) = match dir {
            Direction::Forward if s.backend_index == ANY_BACKEND => {
                // Per datagram: the scheduler picks the backend of this one.
                match self.pick_for_datagram(snap, &s, c) {
                    Some((bid, hop)) => (s.local, snap.backends[bid as usize].endpoint, hop, Some(bid)),
                    None => return Step::Drop(DropReason::NoBackend),
                }
            }
            Direction::Forward => (s.local, s.backend, hops[0], Some(s.backend_index)),
            Direction::Reply if s.backend_index == ANY_BACKEND => {
                // Only a backend of the service may answer a per-datagram flow.
                match member_at(snap, s.service, from, protocol_port(ip)) {
                    Some(id) => (s.vip, s.client, hops[1], Some(id)),
                    None => return Step::Drop(DropReason::NoSession),
                }
            }
            Direction::Reply => (s.vip, s.client, hops[1], Some(s.backend_index)),
        };
        // Sessions with extras (the SYN proxy, `client_address`) are looked at apart, and their
        // checksums kept whole here rather than left to the NIC: the rewrite is not their last edit.
        if s.extras != 0 {
            if let Some(step) = self.before_rewrite(snap, id, &s, dir, ip, hop, len, now_ms, c) {
                return step;
            }
        }
        let offload = if s.extras == 0 { offload_to(snap, hop, s.proto) } else { None };
        let done = match plain {
            Some(p) if s.extras == 0 => {
                debug_assert_eq!(Plain::parse(ip).as_ref(), Some(p), "the packet as the lane read it");
                p.rewrite(ip, (src.ip, src.port), (dst.ip, dst.port), offload.is_some());
                Ok(())
            }
            _ if offload.is_some() => nat::rewrite_for_offload(ip, (src.ip, src.port), (dst.ip, dst.port)),
            _ => nat::rewrite(ip, (src.ip, src.port), (dst.ip, dst.port)),
        };
        if let Err(refusal) = done {
            return Step::Drop(refusal.into());
        }
        count(c, dir, backend, len);
        if s.extras != 0 {
            return self.extras(snap, id, &s, dir, ip, hop, now_ms, c);
        }
        Step::Forward { hop, offload }
    }
}

/// The checksums a packet of `proto` rewritten for `hop` leaves to the NIC: none into the
/// kernel or out of a link without checksum offload.
#[inline]
fn offload_to(snap: &Snapshot, hop: Hop, proto: u8) -> Option<OffloadL4> {
    let on = !hop.to_kernel() && snap.links.get(hop.link_index()).is_some_and(|l| l.checksum_offload);
    on.then_some(if proto == protocol::TCP { OffloadL4::Tcp } else { OffloadL4::Udp })
}

/// Counts a packet of `len` bytes forwarded in `dir`, for `backend` if it has one.
#[inline]
fn count(c: &WorkerCounters, dir: Direction, backend: Option<u16>, len: u32) {
    match dir {
        Direction::Forward => c.forwarded.add(1),
        Direction::Reply => c.replied.add(1),
    }
    if let Some(stats) = backend.and_then(|b| c.backends.get(usize::from(b))) {
        stats.packets[dir.index()].add(1);
        stats.bytes[dir.index()].add(u64::from(len));
    }
}

/// Gives a finished session's local port back (if it came from this worker's pools) and
/// updates the gauges.
fn end(pools: &mut Pools, c: &WorkerCounters, s: &Session) {
    if s.origin != ORIGIN_HERE {
        if let Some(held) = c.held_for(s.origin) {
            held.dec();
        }
    } else if let Some(at) = pools.position(s.local.ip) {
        pools[at].give_back(s.local.port);
        c.set_free_ports(at, pools[at].free());
    }
    if let Some(stats) = c.services.get(s.service as usize) {
        stats.sessions.dec();
    }
    if let Some(stats) = c.backends.get(s.backend_index as usize) {
        if s.origin == ORIGIN_HERE {
            stats.active.dec();
        } else {
            stats.copies.dec();
        }
    }
}

/// The MTU of the path into the host's kernel.
const DEFAULT_MTU: u16 = 1500;

/// The MTU towards `hop`.
#[inline]
pub(crate) fn mtu_of(snap: &Snapshot, hop: Hop) -> u16 {
    if hop.to_kernel() {
        DEFAULT_MTU
    } else {
        snap.links[hop.link_index()].mtu
    }
}

/// Whether the sender of an IPv4 packet `inspect` accepted forbids its fragmentation.
#[inline]
fn dont_fragment(ip: &[u8]) -> bool {
    crate::wire::read_u16(ip, ipv4::offset::FLAGS_FRAG) & ipv4::DONT_FRAGMENT != 0
}

/// The source port of a TCP/UDP packet `inspect` accepted.
#[inline]
fn protocol_port(ip: &[u8]) -> u16 {
    let ihl = ipv4::header_len(ip);
    u16::from_be_bytes([ip[ihl], ip[ihl + 1]])
}

/// The id of the member of service `slot` at `ip:port` (a per-datagram reply's backend).
fn member_at(snap: &Snapshot, slot: u16, ip: Ipv4Addr, port: u16) -> Option<u16> {
    let service = snap.services.get(slot as usize)?;
    let wanted = Endpoint::new(ip, port);
    service.members.iter().copied().find(|&id| snap.backends[id as usize].endpoint == wanted)
}

#[cfg(test)]
mod tests;
