//! Whether a new flow may open a session, checked before anything is allocated for it: the
//! service's `deny` and `allow` client prefixes, its session limit over all workers, its new
//! sessions a second, and each client address's new sessions a second.
//!
//! Rates are counted per worker in one-second windows, each worker allowing its share of the
//! limit (the limit over the workers, rounded up): a flood spread over the workers by RSS meets
//! the whole limit, and no worker ever asks another. Client addresses are counted in a table of
//! fixed size per worker (`CLIENT_SLOTS`, by hash): memory stays bounded whatever the number of
//! sources; two addresses that share a slot take it from each other, which at worst lets one
//! of them through again.

use std::net::Ipv4Addr;

use crate::counters::{DropReason, WorkerCounters};
use crate::snapshot::{Service, MAX_SERVICES};

/// Client addresses counted at once per worker.
pub const CLIENT_SLOTS: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    second: u64,
    count: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct ClientWindow {
    client: u32,
    service: u16,
    window: Window,
}

/// One worker's rate windows.
#[derive(Clone)]
pub struct Admission {
    services: Vec<Window>,
    clients: Vec<ClientWindow>,
}

impl Default for Admission {
    fn default() -> Admission {
        Admission {
            services: vec![Window::default(); MAX_SERVICES],
            clients: vec![ClientWindow::default(); CLIENT_SLOTS],
        }
    }
}

/// `limit` shared over `workers`, rounded up (0: no limit).
fn share(limit: u32, workers: usize) -> u32 {
    limit.div_ceil(workers.max(1) as u32)
}

impl Window {
    /// Counts one more in the second `second`; false if the window already holds `limit`.
    fn take(&mut self, second: u64, limit: u32) -> bool {
        if self.second != second {
            *self = Window { second, count: 0 };
        }
        if self.count >= limit {
            return false;
        }
        self.count += 1;
        true
    }
}

/// Whether the service's `deny` names `client`, or its `allow` does not.
#[inline]
pub fn denied(svc: &Service, client: Ipv4Addr) -> bool {
    svc.deny.contains(client) || !(svc.allow.is_empty() || svc.allow.contains(client))
}

impl Admission {
    /// Why a flow from `client` may not open a session of service `slot` (`svc`) now, if it
    /// may not. `this` and `peers`: the workers' counters (sessions of the service).
    pub fn refuse(
        &mut self,
        slot: usize,
        svc: &Service,
        client: Ipv4Addr,
        now_ms: u64,
        this: &WorkerCounters,
        peers: &[std::sync::Arc<WorkerCounters>],
    ) -> Option<DropReason> {
        if denied(svc, client) {
            return Some(DropReason::Denied);
        }
        let limits = svc.limits;
        let workers = peers.len() + 1;
        if limits.max_sessions > 0 {
            let held = |c: &WorkerCounters| c.services.get(slot).map_or(0, |s| s.sessions.get());
            let sessions = held(this) + peers.iter().map(|p| held(p)).sum::<u64>();
            if sessions >= u64::from(limits.max_sessions) {
                return Some(DropReason::LimitSessions);
            }
        }
        let second = now_ms / 1000;
        if limits.per_client_new_sessions_per_second > 0 {
            let ip = u32::from(client);
            let at = (ip.wrapping_mul(0x9e37_79b9) ^ u32::from(slot as u16)) as usize % CLIENT_SLOTS;
            let entry = &mut self.clients[at];
            if entry.client != ip || entry.service != slot as u16 {
                *entry = ClientWindow { client: ip, service: slot as u16, window: Window::default() };
            }
            if !entry.window.take(second, share(limits.per_client_new_sessions_per_second, workers)) {
                return Some(DropReason::LimitRate);
            }
        }
        if limits.new_sessions_per_second > 0 {
            let window = self.services.get_mut(slot)?;
            if !window.take(second, share(limits.new_sessions_per_second, workers)) {
                return Some(DropReason::LimitRate);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_to_its_limit_each_second() {
        let mut w = Window::default();
        assert_eq!((0..5).filter(|_| w.take(7, 3)).count(), 3);
        assert!(w.take(8, 3), "a new second, a new window");
        assert_eq!(share(10, 3), 4);
        assert_eq!(share(1, 4), 1);
    }
}
