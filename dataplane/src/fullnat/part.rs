//! What the control core builds for each worker alongside a snapshot: the worker's mutable
//! per-service state (schedulers with their tables, local port choice) and port pools for
//! local IPs it owns for the first time. Built on the control core, never on a worker, and
//! moved to the worker with the snapshot; the worker hands back what it replaced, so that
//! memory is freed on the control core too.

use std::net::Ipv4Addr;

use crate::laddr::{self, PortPool};
use crate::sched::{self, Scheduler, SchedulerKind};
use crate::snapshot::Snapshot;

/// Maglev lookup table size (prime) unless the service has so many backends that it must grow.
pub const MAGLEV_TABLE_SIZE: u32 = 65537;

/// A worker's mutable state for one service slot.
#[derive(Clone)]
pub struct ServiceState {
    pub scheduler: Scheduler,
    /// Indices into the worker's pools of its local IPs of the service.
    pub pools: Vec<u16>,
    pub next_pool: usize,
}

/// Everything a worker adopts with a snapshot.
pub struct WorkerPart {
    /// The worker's index, which is also its rx queue on every port.
    pub worker: u16,
    /// By service slot, as `Snapshot::services`.
    pub services: Vec<ServiceState>,
    /// Pools to append to the worker's own, in order.
    pub new_pools: Vec<PortPool>,
    /// Their queues of unconfirmed sessions, in the same order.
    pub new_unconfirmed: Vec<super::Unconfirmed>,
}

/// The control core's mirror of one worker's local port pools: their IPs, in the worker's
/// order. Pools are only ever appended (a local IP that leaves keeps its pool, idle), so that
/// indices stay valid for sessions that outlive a reload.
#[derive(Debug, Clone, Default)]
pub struct PoolLayout {
    pub worker: usize,
    pub workers: usize,
    pub ips: Vec<Ipv4Addr>,
    /// The worker's session capacity: no pool has more unconfirmed sessions than that.
    pub sessions: u32,
}

impl PoolLayout {
    pub fn new(worker: usize, workers: usize, sessions: u32) -> PoolLayout {
        PoolLayout { worker, workers, ips: Vec::new(), sessions }
    }

    /// The worker's part for `snap`; extends the layout with any new local IP's pool.
    pub fn part(&mut self, snap: &Snapshot) -> WorkerPart {
        let fresh;
        let owners: &[(u32, u16)] = if snap.local_owners.is_empty() {
            fresh = Snapshot::owners(&snap.services, self.workers, &[]);
            &fresh
        } else {
            snap.local_owners.entries()
        };
        let mine = |ip: Ipv4Addr| owners.iter().any(|&(a, w)| a == u32::from(ip) && w as usize == self.worker);
        let mut new_pools = Vec::new();
        let services = snap
            .services
            .iter()
            .map(|service| {
                let mut pools = Vec::new();
                if service.live {
                    for ip in service.local_ips.iter().copied().filter(|&ip| mine(ip)) {
                        let at = self.ips.iter().position(|&p| p == ip).unwrap_or_else(|| {
                            let seed = u64::from(u32::from(ip)) ^ ((self.worker as u64) << 40) ^ 0x9e37_79b9_7f4a_7c15;
                            new_pools.push(PortPool::new(ip, laddr::DEFAULT_PORTS, seed));
                            self.ips.push(ip);
                            self.ips.len() - 1
                        });
                        pools.push(at as u16);
                    }
                }
                ServiceState { scheduler: scheduler(snap, service), pools, next_pool: self.worker }
            })
            .collect();
        let new_unconfirmed =
            new_pools.iter().map(|p| super::Unconfirmed::for_pool(p.size().min(self.sessions))).collect();
        WorkerPart { worker: self.worker as u16, services, new_pools, new_unconfirmed }
    }
}

/// The scheduler over a service's members, with the weights in force: a backend that is
/// down, draining or removed weighs 0, so it gets no new sessions.
fn scheduler(snap: &Snapshot, service: &crate::snapshot::Service) -> Scheduler {
    let weights: Vec<u32> = service.members.iter().map(|&id| snap.backends[id as usize].effective_weight()).collect();
    let keys = || -> Vec<u64> {
        service
            .members
            .iter()
            .map(|&id| {
                let e = snap.backends[id as usize].endpoint;
                sched::backend_key(std::net::SocketAddrV4::new(e.ip, e.port))
            })
            .collect()
    };
    match service.scheduler {
        SchedulerKind::Maglev => Scheduler::maglev(&weights, &keys(), MAGLEV_TABLE_SIZE),
        SchedulerKind::Sh => Scheduler::sh(&weights, &keys()),
        kind => Scheduler::new(kind, &weights),
    }
}
