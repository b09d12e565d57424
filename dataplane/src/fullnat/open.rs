//! Opening sessions: which packets may, how the backend, local address and next hops are
//! chosen, and the per-datagram choice for `per_packet` services.

use super::*;
use crate::sched::{flow_hash, turn, Flow};
use crate::session::{tcp_flags, NewSession};

/// Which of a service's next sessions a session just opened prefetches for (`prefetch_ahead`):
/// the one after next, so that its lines have a whole packet's time more to arrive.
const REPLY_AHEAD: usize = 2;

/// Local ports tried for one new session when a copy of another node's session holds the
/// first ones towards the same backend.
const PORT_TRIES: usize = 4;
/// Unconfirmed sessions one new flow may end for want of a port (a port steered to this
/// worker's queue may take more than one).
const EVICTIONS_PER_FLOW: usize = 4;

/// Any UDP datagram opens a session; of TCP, only a SYN without ACK or RST.
#[inline]
pub(super) fn may_open(proto: u8, flags: u8) -> bool {
    proto == protocol::UDP || flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN
}

impl FullNat {
    /// A new session of `service` for the client flow `key`: backend by the scheduler (none for
    /// a per-datagram service), local address and port from this worker's pools, next hops
    /// both ways from the routes.
    pub(super) fn open(
        &mut self,
        snap: &Snapshot,
        service: usize,
        key: FlowKey,
        flags: u8,
        now_ms: u64,
        c: &WorkerCounters,
    ) -> Result<SessionId, DropReason> {
        // Everything that can refuse the flow whatever the backend comes before the scheduler
        // moves on, so that refused flows do not skew the rotation.
        let evict = snap.evict_when_full;
        if self.sessions.len() >= self.sessions.capacity() && !(evict && self.evict_one(service, true, c)) {
            return Err(DropReason::SessionTableFull);
        }
        let to_client = snap.routes.lookup(key.src.ip).ok_or(DropReason::NoRoute)?;
        let def = &snap.services[service];
        let (backend_index, backend, to_backend) = if def.per_packet {
            (ANY_BACKEND, WILDCARD, Hop::NONE)
        } else {
            let id = self.pick(snap, service, key.src, c).ok_or(DropReason::NoBackend)?;
            let b = &snap.backends[id as usize];
            (id, b.endpoint, b.hop.ok_or(DropReason::NoRoute)?)
        };
        // With RSS steering on the backend's port, the local port is chosen so that the reply's
        // hash lands on this worker's queue.
        let rss =
            if def.per_packet { None } else { snap.links.get(to_backend.link_index()).and_then(|l| l.rss.as_deref()) };
        let (mut tries, mut evictions) = (0, 0);
        while tries < PORT_TRIES {
            let state = &mut self.services[service];
            let taken = match rss {
                Some(rss) => {
                    let (to, owner) = (std::net::SocketAddrV4::new(backend.ip, backend.port), self.queue);
                    let steered = take_port(&mut self.pools, state, c, |pool| {
                        rss.choose_port(to, pool.ip(), owner, rss.tries_bound(owner), pool).ok().map(|p| p.port)
                    });
                    if steered.is_some() {
                        c.rss_steered.add(1);
                    }
                    steered
                }
                None => take_port(&mut self.pools, state, c, PortPool::take),
            };
            let Some((local, pool)) = taken else {
                // Every port is held: the oldest unconfirmed session of the service's local IPs
                // gives its port up (a steered port may need a few).
                if evict && evictions < EVICTIONS_PER_FLOW && self.evict_one(service, false, c) {
                    evictions += 1;
                    continue;
                }
                return Err(DropReason::NoLocalPort);
            };
            tries += 1;
            let new = NewSession {
                proto: key.proto,
                client: key.src,
                vip: key.dst,
                local,
                backend,
                service: service as u16,
                backend_index,
                tcp_flags: flags,
                hops: [to_backend, to_client.into()],
            };
            match self.sessions.insert(new, now_ms) {
                Ok(id) => {
                    self.restand(snap, id);
                    if self.sessions.get(id).state.unconfirmed() {
                        if let Some(queue) = self.unconfirmed.get_mut(pool) {
                            queue.push(id, now_ms);
                        }
                    }
                    c.sessions_created.add(1);
                    if let Some(stats) = c.services.get(service) {
                        stats.created.add(1);
                        stats.sessions.inc();
                    }
                    if let Some(stats) = c.backends.get(backend_index as usize) {
                        stats.sessions.add(1);
                        stats.active.inc();
                    }
                    if rss.is_none() {
                        self.prefetch_ahead(snap, service);
                    }
                    return Ok(id);
                }
                Err(error) => {
                    self.pools[pool].give_back(local.port);
                    c.set_free_ports(pool, self.pools[pool].free());
                    // The port is held towards this backend by a copy of a session another node
                    // opened (or this node, before it restarted): try the next one.
                    if error != InsertError::DuplicateKey(Direction::Reply) {
                        return Err(DropReason::SessionTableFull);
                    }
                }
            }
        }
        Err(DropReason::NoLocalPort)
    }

    /// Starts loading what a session of the service `REPLY_AHEAD` sessions on will wait for,
    /// as far as it is known already: its local port (the pools take turns and hand their
    /// ports out in order) and that port's taken bit, and the index slot of its reply key where
    /// its backend is known too: the scheduler's pick that many picks on when that does not
    /// depend on the flow (rr, wrr), or none (per datagram). Inserting the reply key and taking
    /// the port are otherwise cache misses the new session waits for (its forward key's slot
    /// the burst's stages prefetched); this way they load while the packets in between are
    /// handled. Not much further ahead: a pool prefetching for its own next take, dozens of
    /// sessions on, found the line gone again in the appliance. Only a hint: a wrong guess
    /// (another service's flow in between, a port steered by RSS) costs a wasted prefetch.
    #[inline]
    fn prefetch_ahead(&self, snap: &Snapshot, service: usize) {
        let (def, state) = (&snap.services[service], &self.services[service]);
        // The session `REPLY_AHEAD` opens on: the pools take turns, so its pool is that many
        // turns on, and its port comes after the ones that pool hands out before it.
        let turns = REPLY_AHEAD - 1;
        let n = state.pools.len().max(1);
        let Some(&pool) = state.pools.get(turn(state.next_pool, turns, n)) else { return };
        let Some(pool) = self.pools.get(pool as usize) else { return };
        let Some(port) = pool.peek(if turns < n { 0 } else { (turns / n) as u32 }) else { return };
        pool.prefetch_bit(port);
        let backend = if def.per_packet {
            WILDCARD
        } else {
            let next = state.scheduler.peek(turns).and_then(|at| def.members.get(at));
            match next.and_then(|&id| snap.backends.get(id as usize)) {
                Some(b) => b.endpoint,
                None => return,
            }
        };
        let key = FlowKey { proto: def.proto, src: backend, dst: Endpoint::new(pool.ip(), port) };
        self.sessions.prefetch_index(&key);
    }

    /// The backend id for a new session of `service` from `client`.
    fn pick(&mut self, snap: &Snapshot, service: usize, client: Endpoint, c: &WorkerCounters) -> Option<u16> {
        let members = &snap.services[service].members;
        self.active.clear();
        // Only least-connection looks at the load: reading other workers' gauges costs misses.
        if snap.services[service].scheduler == crate::sched::SchedulerKind::Wlc {
            self.active.extend(members.iter().map(|&id| active_sessions(c, &self.peers, id)));
        }
        let flow = Flow {
            client: client.ip,
            hash: flow_hash(snap.services[service].proto, client.ip, client.port),
            active: &self.active,
        };
        let at = self.services[service].scheduler.pick(&flow)?;
        members.get(at).copied()
    }

    /// Per datagram: a backend for this one datagram of session `s`, and the next hop to it.
    pub(super) fn pick_for_datagram(&mut self, snap: &Snapshot, s: &Session, c: &WorkerCounters) -> Option<(u16, Hop)> {
        let id = self.pick(snap, s.service as usize, s.client, c)?;
        Some((id, snap.backends[id as usize].hop?))
    }
}

/// Active sessions of backend `id` over this worker and the other workers (`peers`), copies of
/// other nodes' sessions counted once (`counters::backend_active`).
fn active_sessions(own: &WorkerCounters, peers: &[std::sync::Arc<WorkerCounters>], id: u16) -> u32 {
    let all = std::iter::once(own).chain(peers.iter().map(|p| &**p));
    crate::counters::backend_active(all, id).min(u64::from(u32::MAX)) as u32
}

/// A local address and port from the service's pools on this worker, taking turns over the
/// pools, and the index of its pool; `choose` takes a port from one pool (or says it has none
/// that fits).
fn take_port(
    pools: &mut [PortPool],
    state: &mut ServiceState,
    c: &WorkerCounters,
    mut choose: impl FnMut(&mut PortPool) -> Option<u16>,
) -> Option<(Endpoint, usize)> {
    let n = state.pools.len();
    for _ in 0..n {
        let at = state.pools[turn(state.next_pool, 0, n)] as usize;
        state.next_pool = turn(state.next_pool, 1, n);
        let pool = &mut pools[at];
        if let Some(port) = choose(pool) {
            c.set_free_ports(at, pool.free());
            return Some((Endpoint::new(pool.ip(), port), at));
        }
    }
    None
}
