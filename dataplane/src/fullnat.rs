//! FULLNAT for one worker: session lookup, scheduling, local port allocation and the rewrite,
//! on the IPv4 packet of a frame whose destination the data path owns (a VIP or a local IP).
//!
//! Owns: the worker's session table, its local port pools, its per-service scheduler state
//! and the next hops cached per session. Reads the published `Snapshot`.
//! Knows nothing of mbufs: `process` works on `&mut [u8]` and says what to do with the result
//! (`Step`), so every rule is testable on byte arrays. Must never allocate, lock or block:
//! all memory is taken in `FullNat::new`.

use std::net::Ipv4Addr;

use crate::counters::{DropReason, WorkerCounters};
use crate::laddr::{self, PortPool};
use crate::nat::{self, IcmpKind, Inspected, Refusal};
use crate::route::NextHop;
use crate::sched::Scheduler;
use crate::session::{tcp_flags, Direction, Endpoint, FlowKey, NewSession, SessionId, SessionTable, Touch};
use crate::snapshot::Snapshot;
use crate::wire::ipv4::{self, protocol};

/// Where a rewritten packet goes: out of link `link` to the neighbour `gateway`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub link: u16,
    pub gateway: Ipv4Addr,
}

impl Hop {
    const NONE: Hop = Hop { link: 0, gateway: Ipv4Addr::UNSPECIFIED };
}

impl From<NextHop> for Hop {
    fn from(h: NextHop) -> Hop {
        Hop { link: h.link as u16, gateway: h.gateway }
    }
}

/// Which L4 checksum the NIC must finish for a packet rewritten for offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadL4 {
    Tcp,
    Udp,
}

/// What to do with the packet `process` was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Rewritten in place: send it to `hop`. With `offload`, the NIC must fill the IPv4 header
    /// checksum and that L4 checksum; without, every checksum is already right.
    Forward { hop: Hop, offload: Option<OffloadL4> },
    /// Answered in place (echo reply): send it back to the frame's source on its link.
    Bounce,
    /// Its TTL ran out here: answer with an ICMP time exceeded to the frame's source.
    TimeExceeded,
    Drop(DropReason),
}

struct ServiceState {
    scheduler: Scheduler,
    /// Indices into `FullNat::pools` of this worker's local IPs of the service.
    pools: Vec<u16>,
    next_pool: usize,
}

pub struct FullNat {
    sessions: SessionTable,
    /// Next hops per session, indexed by `SessionId`: [towards the backend, towards the client].
    hops: Vec<[Hop; 2]>,
    pools: Vec<PortPool>,
    services: Vec<ServiceState>,
}

impl FullNat {
    /// State for worker `worker` of `workers`, with room for `capacity` sessions.
    pub fn new(snapshot: &Snapshot, worker: usize, workers: usize, capacity: u32) -> FullNat {
        let sessions = SessionTable::with_capacity(capacity, snapshot.timeouts);
        let hops = vec![[Hop::NONE; 2]; sessions.capacity()];
        let mut pools: Vec<PortPool> = Vec::new();
        let mut services = Vec::with_capacity(snapshot.services.len());
        for service in &snapshot.services {
            let mut indices = Vec::new();
            for ip in laddr::owned_by(&service.local_ips, worker, workers) {
                let at = pools.iter().position(|p| p.ip() == ip).unwrap_or_else(|| {
                    let seed = u64::from(u32::from(ip)) ^ ((worker as u64) << 40) ^ 0x9e37_79b9_7f4a_7c15;
                    pools.push(PortPool::new(ip, laddr::DEFAULT_PORTS, seed));
                    pools.len() - 1
                });
                indices.push(at as u16);
            }
            services.push(ServiceState {
                scheduler: Scheduler::new(service.scheduler, &service.weights),
                pools: indices,
                next_pool: 0,
            });
        }
        FullNat { sessions, hops, pools, services }
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    pub fn port_pools(&self) -> &[PortPool] {
        &self.pools
    }

    /// Expires idle sessions (at most `budget`) and gives their local ports back.
    pub fn expire(&mut self, now_ms: u64, budget: usize, counters: &WorkerCounters) -> usize {
        let pools = &mut self.pools;
        let n = self.sessions.expire(now_ms, budget, |s| release_port(pools, s.local));
        counters.sessions_expired.add(n as u64);
        n
    }

    /// Handles the IPv4 packet `ip` (from its header to the end of the frame) addressed to a
    /// VIP or local IP of this data path.
    pub fn process(&mut self, snap: &Snapshot, ip: &mut [u8], now_ms: u64, c: &WorkerCounters) -> Step {
        let seen = match nat::inspect(ip) {
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
            protocol::TCP | protocol::UDP => self.flow(snap, ip, &seen, now_ms, c),
            protocol::ICMP => self.icmp(snap, ip, &seen, c),
            _ => Step::Drop(DropReason::UnsupportedProtocol),
        }
    }

    fn flow(&mut self, snap: &Snapshot, ip: &mut [u8], seen: &Inspected, now_ms: u64, c: &WorkerCounters) -> Step {
        let t = seen.tuple;
        let key = FlowKey { proto: t.proto, src: Endpoint::new(t.src, t.src_port), dst: Endpoint::new(t.dst, t.dst_port) };
        // The IP length: `ip` runs to the end of the frame, Ethernet padding included.
        let len = ipv4::Packet::new_checked(&*ip).map_or(0, |p| u32::from(p.total_len()));
        if let Some((id, dir)) = self.sessions.lookup(&key) {
            match self.sessions.touch(id, dir, seen.tcp_flags, len, now_ms) {
                Touch::Ok => return self.send(snap, ip, id, dir, c),
                // A new SYN on a closing connection: the old session makes way for a new one.
                Touch::Reopen => {
                    let old = self.sessions.remove(id);
                    release_port(&mut self.pools, old.local);
                }
            }
        }
        let Some(service) = snap.vips.service(t.proto, t.dst, t.dst_port) else {
            let reason = if snap.vips.is_vip(t.dst) { DropReason::NoService } else { DropReason::NoSession };
            return Step::Drop(reason);
        };
        let opens = t.proto == protocol::UDP
            || seen.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN;
        if !opens {
            return Step::Drop(DropReason::NoSession);
        }
        match self.open(snap, service, key, seen.tcp_flags, now_ms) {
            Ok(id) => {
                c.sessions_created.add(1);
                let _ = self.sessions.touch(id, Direction::Forward, seen.tcp_flags, len, now_ms);
                self.send(snap, ip, id, Direction::Forward, c)
            }
            Err(reason) => Step::Drop(reason),
        }
    }

    /// A new session of `service` for the client flow `key`: backend by the scheduler, local
    /// address and port from this worker's pools, next hops both ways from the routes.
    fn open(&mut self, snap: &Snapshot, service: usize, key: FlowKey, flags: u8, now_ms: u64) -> Result<SessionId, DropReason> {
        // Everything that can refuse the flow whatever the backend comes before the scheduler
        // moves on, so that refused flows do not skew the rotation.
        if self.sessions.len() >= self.sessions.capacity() {
            return Err(DropReason::SessionTableFull);
        }
        let to_client = snap.routes.lookup(key.src.ip).ok_or(DropReason::NoRoute)?;
        let def = &snap.services[service];
        let state = &mut self.services[service];
        let backend_index = state.scheduler.pick().ok_or(DropReason::NoBackend)?;
        let backend = def.backends[backend_index];
        let to_backend = snap.routes.lookup(backend.ip).ok_or(DropReason::NoRoute)?;
        let local = take_port(&mut self.pools, state).ok_or(DropReason::NoLocalPort)?;
        let new = NewSession {
            proto: key.proto,
            client: key.src,
            vip: key.dst,
            local,
            backend,
            service: service as u16,
            backend_index: backend_index as u16,
            tcp_flags: flags,
        };
        match self.sessions.insert(new, now_ms) {
            Ok(id) => {
                self.hops[id.get() as usize] = [to_backend.into(), to_client.into()];
                Ok(id)
            }
            Err(_) => {
                release_port(&mut self.pools, new.local);
                Err(DropReason::SessionTableFull)
            }
        }
    }

    /// Rewrites a packet of session `id` going `dir` and says where it goes.
    fn send(&self, snap: &Snapshot, ip: &mut [u8], id: SessionId, dir: Direction, c: &WorkerCounters) -> Step {
        let s = self.sessions.get(id);
        let ((src, dst), hop) = match dir {
            Direction::Forward => ((s.local, s.backend), self.hops[id.get() as usize][0]),
            Direction::Reply => ((s.vip, s.client), self.hops[id.get() as usize][1]),
        };
        let offload = snap.links[hop.link as usize].checksum_offload;
        let done = if offload {
            nat::rewrite_for_offload(ip, (src.ip, src.port), (dst.ip, dst.port))
        } else {
            nat::rewrite(ip, (src.ip, src.port), (dst.ip, dst.port))
        };
        if let Err(refusal) = done {
            return Step::Drop(refusal.into());
        }
        match dir {
            Direction::Forward => c.forwarded.add(1),
            Direction::Reply => c.replied.add(1),
        }
        let offload = offload.then_some(if s.proto == protocol::TCP { OffloadL4::Tcp } else { OffloadL4::Udp });
        Step::Forward { hop, offload }
    }

    fn icmp(&mut self, _snap: &Snapshot, ip: &mut [u8], seen: &Inspected, c: &WorkerCounters) -> Step {
        match seen.icmp {
            Some(IcmpKind::EchoRequest) => match nat::echo_reply(ip) {
                Ok(()) => {
                    c.icmp_echo_replies.add(1);
                    Step::Bounce
                }
                Err(refusal) => Step::Drop(refusal.into()),
            },
            Some(IcmpKind::Error) => self.relay_error(ip, seen.tuple.dst, c),
            _ => Step::Drop(DropReason::IcmpUnhandled),
        }
    }

    /// An ICMP error about a packet Sluice sent goes to the other side of its session, as if
    /// about the packet that side sent: from the backend side to the client (VIP -> client),
    /// from the client side to the backend (local IP -> backend).
    fn relay_error(&self, ip: &mut [u8], to: Ipv4Addr, c: &WorkerCounters) -> Step {
        let Some(q) = nat::quoted_tuple(ip) else { return Step::Drop(DropReason::IcmpUnhandled) };
        // An error is about a packet its addressee sent: anything else is not about our flow.
        if q.src != to {
            return Step::Drop(DropReason::IcmpUnhandled);
        }
        // The quoted packet went out from us; the packet of the same flow coming in is its reverse.
        let key = FlowKey { proto: q.proto, src: Endpoint::new(q.dst, q.dst_port), dst: Endpoint::new(q.src, q.src_port) };
        let Some((id, dir)) = self.sessions.lookup(&key) else { return Step::Drop(DropReason::NoSession) };
        let s = self.sessions.get(id);
        let hops = self.hops[id.get() as usize];
        let (outer_src, outer_dst, quoted_src, quoted_dst, hop) = match dir {
            Direction::Reply => (s.vip.ip, s.client.ip, s.client, s.vip, hops[1]),
            Direction::Forward => (s.local.ip, s.backend.ip, s.backend, s.local, hops[0]),
        };
        match nat::translate_error(ip, outer_src, outer_dst, (quoted_src.ip, quoted_src.port), (quoted_dst.ip, quoted_dst.port)) {
            Ok(()) => {
                c.icmp_errors_relayed.add(1);
                Step::Forward { hop, offload: None }
            }
            Err(refusal) => Step::Drop(refusal.into()),
        }
    }
}

fn take_port(pools: &mut [PortPool], state: &mut ServiceState) -> Option<Endpoint> {
    let n = state.pools.len();
    for _ in 0..n {
        let pool = &mut pools[state.pools[state.next_pool % n] as usize];
        state.next_pool = (state.next_pool + 1) % n;
        if let Some(port) = pool.take() {
            return Some(Endpoint::new(pool.ip(), port));
        }
    }
    None
}

fn release_port(pools: &mut [PortPool], local: Endpoint) {
    if let Some(pool) = pools.iter_mut().find(|p| p.ip() == local.ip) {
        pool.give_back(local.port);
    }
}

#[cfg(test)]
mod tests;
