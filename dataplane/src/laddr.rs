//! Local addresses: the (IP, port) pairs a worker puts on the backend side of a FULLNAT
//! session, so that the backend's replies come back to the balancer, and to the right worker.
//!
//! Owns: each worker's `PortPool`s, one per local IP it owns; all memory allocated by `new`.
//! May touch: nothing else. Must never, on the packet path (`take`, `give_back`): allocate,
//! lock, or panic on a port number that came from a packet or a session.
//!
//! Why local IPs are split between workers, not the ports of each IP (DPVS splits ports and
//! steers replies by flow-director rules on destination port bits): a reply's destination
//! address then names its worker by itself, so steering replies needs one rule (or one table
//! entry) per local IP and works on any NIC, and no worker ever needs another's port state. The price is that a service
//! needs at least as many local IPs as there are workers; each IP brings ~64k ports per
//! backend address and port.

use crate::mix::splitmix64;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

/// The default port range of a local IP: every unprivileged port.
pub const DEFAULT_PORTS: RangeInclusive<u16> = 1024..=65535;

/// The ports of one local IP that this worker owns, handed out in a shuffled order. O(1) take
/// and give back.
///
/// Ports are kept in a FIFO ring rather than a stack: a port given back is handed out again
/// only after every other free port, which keeps the old 4-tuple out of use as long as the
/// pool allows (the backend may still hold the old connection in TIME_WAIT). The shuffle makes
/// the ports a client's connections get unpredictable.
#[derive(Clone)]
pub struct PortPool {
    ip: Ipv4Addr,
    first: u16,
    /// Free ports from `head`, `free` of them, wrapping around.
    ring: Box<[u16]>,
    head: u32,
    free: u32,
    /// One bit per port of the range: set while the port is taken.
    taken: Box<[u64]>,
}

impl PortPool {
    /// A pool of every port in `ports`, all free, in an order shuffled by `seed`.
    pub fn new(ip: Ipv4Addr, ports: RangeInclusive<u16>, seed: u64) -> PortPool {
        let first = *ports.start();
        let mut ring: Box<[u16]> = ports.collect();
        // Fisher-Yates.
        let mut state = seed;
        for i in (1..ring.len()).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            ring.swap(i, j);
        }
        let len = ring.len() as u32;
        PortPool { ip, first, ring, head: 0, free: len, taken: vec![0; (len as usize).div_ceil(64)].into_boxed_slice() }
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// A free port, or `None` when all are taken.
    #[inline]
    pub fn take(&mut self) -> Option<u16> {
        if self.free == 0 {
            return None;
        }
        let port = self.ring[self.head as usize];
        let (word, bit) = self.bit(port)?; // always in range: only range ports enter the ring
        self.head = self.wrap(self.head + 1);
        self.free -= 1;
        self.taken[word] |= bit;
        Some(port)
    }

    /// Returns a taken port to the pool. `false`, and nothing changes, for a port that is not
    /// taken (a double release) or not in the range.
    #[inline]
    pub fn give_back(&mut self, port: u16) -> bool {
        let Some((word, bit)) = self.bit(port) else {
            return false;
        };
        if self.taken[word] & bit == 0 {
            return false;
        }
        self.taken[word] &= !bit;
        let tail = self.wrap(self.head + self.free);
        self.ring[tail as usize] = port;
        self.free += 1;
        true
    }

    /// How many ports are free.
    pub fn free(&self) -> u32 {
        self.free
    }

    /// How many ports the pool has, taken or free.
    pub fn size(&self) -> u32 {
        self.ring.len() as u32
    }

    /// Where `port`'s taken bit is; `None` outside the range.
    #[inline(always)]
    fn bit(&self, port: u16) -> Option<(usize, u64)> {
        let offset = port.checked_sub(self.first)? as usize;
        if offset >= self.ring.len() {
            return None;
        }
        Some((offset / 64, 1 << (offset % 64)))
    }

    /// `i` modulo the ring length, for `i < 2 * len`.
    #[inline(always)]
    fn wrap(&self, i: u32) -> u32 {
        let len = self.ring.len() as u32;
        if i >= len {
            i - len
        } else {
            i
        }
    }
}

/// The local IPs of a service that `worker` (of `workers`) owns: IP `i` goes to worker
/// `i % workers`. The sets are disjoint, so a reply, addressed to a local IP, identifies the
/// worker that owns its session by its destination address alone, and no two workers ever
/// hand out the same (local IP, port). Empty if `workers` is 0 or the worker has no IP
/// (fewer IPs than workers: a configuration the control plane should refuse).
pub fn owned_by(local_ips: &[Ipv4Addr], worker: usize, workers: usize) -> Vec<Ipv4Addr> {
    if workers == 0 {
        return Vec::new();
    }
    local_ips.iter().enumerate().filter(|&(i, _)| i % workers == worker).map(|(_, &ip)| ip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn drain(pool: &mut PortPool) -> Vec<u16> {
        std::iter::from_fn(|| pool.take()).collect()
    }

    #[test]
    fn shuffle_covers_the_range_exactly_once() {
        let mut pool = PortPool::new(IP, DEFAULT_PORTS, 7);
        assert_eq!((pool.ip(), pool.size(), pool.free()), (IP, 64512, 64512));
        let order = drain(&mut pool);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1024..=65535).collect::<Vec<u16>>());
        assert_ne!(order, sorted, "shuffled");
        assert_ne!(order, drain(&mut PortPool::new(IP, DEFAULT_PORTS, 8)), "seeded");
        let everything = drain(&mut PortPool::new(IP, 0..=65535, 1));
        assert_eq!(everything.len(), 65536);
    }

    #[test]
    fn exhaustion_and_recovery() {
        let mut pool = PortPool::new(IP, 5000..=5009, 1);
        let ports = drain(&mut pool);
        assert_eq!((ports.len(), pool.free()), (10, 0));
        assert_eq!(pool.take(), None);
        assert!(pool.give_back(ports[3]));
        assert_eq!(pool.take(), Some(ports[3]));
        assert_eq!(pool.take(), None);
        for &port in &ports {
            assert!(pool.give_back(port));
        }
        assert_eq!(pool.free(), 10);
        assert_eq!(drain(&mut pool), ports, "handed out again in the order given back");
    }

    #[test]
    fn a_port_given_back_waits_behind_every_other_free_port() {
        let mut pool = PortPool::new(IP, 5000..=5003, 3);
        let a = pool.take().unwrap();
        assert!(pool.give_back(a));
        let next: Vec<u16> = drain(&mut pool);
        assert_eq!(next.last(), Some(&a));
    }

    #[test]
    fn double_or_foreign_give_back_refused() {
        let mut pool = PortPool::new(IP, 5000..=5009, 1);
        let port = pool.take().unwrap();
        assert!(pool.give_back(port));
        assert!(!pool.give_back(port), "double release");
        assert!(!pool.give_back(4999) && !pool.give_back(5010) && !pool.give_back(0), "out of range");
        let never_taken = (5000..=5009).find(|&p| p != port).unwrap();
        assert!(!pool.give_back(never_taken));
        assert_eq!(pool.free(), 10);
        let mut ports = drain(&mut pool);
        ports.sort_unstable();
        assert_eq!(ports, (5000..=5009).collect::<Vec<u16>>(), "nothing duplicated");
    }

    #[test]
    fn empty_and_single_port_ranges() {
        #[allow(clippy::reversed_empty_ranges)]
        let mut empty = PortPool::new(IP, 2..=1, 1);
        assert_eq!((empty.take(), empty.free(), empty.give_back(1)), (None, 0, false));
        let mut one = PortPool::new(IP, 65535..=65535, 1);
        assert_eq!(one.take(), Some(65535));
        assert_eq!(one.take(), None);
        assert!(one.give_back(65535));
        assert_eq!(one.take(), Some(65535));
    }

    #[test]
    fn local_ips_split_disjointly() {
        let ips: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(owned_by(&ips, 0, 2), [ips[0], ips[2], ips[4]]);
        assert_eq!(owned_by(&ips, 1, 2), [ips[1], ips[3]]);
        assert!(owned_by(&ips, 2, 2).is_empty());
        assert!(owned_by(&ips, 0, 0).is_empty());
        let mut all: Vec<Ipv4Addr> = (0..3).flat_map(|w| owned_by(&ips, w, 3)).collect();
        all.sort();
        assert_eq!(all, ips);
    }
}
