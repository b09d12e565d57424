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
//! needs at least as many local IPs as there are workers; each IP brings 64,512 ports (one pool
//! per worker and local IP, shared by every service and backend it serves).

use crate::ipmap::IpMap;
use crate::mix::splitmix64;
use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut, RangeInclusive};

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

    /// The port the take after the next `ahead` hands out (0: the next), if as many are free
    /// and none is given back in between.
    #[inline]
    pub fn peek(&self, ahead: u32) -> Option<u16> {
        (ahead < self.free).then(|| self.ring[self.wrap(self.head + ahead) as usize])
    }

    /// Starts loading the word holding `port`'s taken bit (for a `take` or `give_back` to
    /// come: the ports come shuffled, so the word is a cache miss).
    #[inline(always)]
    pub fn prefetch_bit(&self, port: u16) {
        if let Some((word, _)) = self.bit(port) {
            crate::prefetch::prefetch(&self.taken[word]);
        }
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

/// A worker's port pools, one per local IP it owns, and which pool is whose: a session that
/// ends finds its pool by address in one probe (a worker may own dozens of local IPs, and every
/// new session ends one day). Derefs to the pools, by index.
#[derive(Clone, Default)]
pub struct Pools {
    pools: Vec<PortPool>,
    /// Local IP -> index in `pools`.
    by_ip: IpMap<u16>,
}

impl Pools {
    pub fn new(pools: Vec<PortPool>) -> Pools {
        let mut all = Pools::default();
        all.append(pools);
        all
    }

    /// Adds pools after those held (a new snapshot's local IPs); indexes stay as they were.
    pub fn append(&mut self, mut more: Vec<PortPool>) {
        self.pools.append(&mut more);
        self.by_ip = IpMap::new(self.pools.iter().enumerate().map(|(i, p)| (u32::from(p.ip), i as u16)));
    }

    /// The index of `ip`'s pool (the first, were an address given twice).
    #[inline]
    pub fn position(&self, ip: Ipv4Addr) -> Option<usize> {
        self.by_ip.get(u32::from(ip)).map(usize::from)
    }
}

impl Deref for Pools {
    type Target = [PortPool];
    fn deref(&self) -> &[PortPool] {
        &self.pools
    }
}

impl DerefMut for Pools {
    fn deref_mut(&mut self) -> &mut [PortPool] {
        &mut self.pools
    }
}

/// Which worker owns each local IP (as u32), sorted by address: the one rule for the data
/// path (`Snapshot::local_owners`) and for flow rules. A local IP's port space and sessions live
/// on its worker, so a reply addressed to it identifies the worker by its destination alone,
/// and no two workers hand out the same (local IP, port).
///
/// `services`: each live service's local IPs. Every assignment of `previous` that still applies
/// is kept: a local IP never changes hands while it exists. A new local IP goes to a worker that
/// has none of its service yet (lowest first), else to the worker with the fewest local IPs.
/// From nothing, a service's IPs go round the workers by index (`i % workers`).
pub fn owners<'a>(
    services: impl Iterator<Item = &'a [Ipv4Addr]> + Clone,
    workers: usize,
    previous: &[(u32, u16)],
) -> Vec<(u32, u16)> {
    let workers = workers.max(1);
    let present = |ip: u32| services.clone().any(|ips| ips.iter().any(|&l| u32::from(l) == ip));
    let mut owners: Vec<(u32, u16)> =
        previous.iter().copied().filter(|&(ip, w)| (w as usize) < workers && present(ip)).collect();
    let owner = |owners: &[(u32, u16)], ip: u32| owners.iter().find(|&&(a, _)| a == ip).map(|&(_, w)| w);
    for ips in services {
        for &ip in ips {
            let ip = u32::from(ip);
            if owner(&owners, ip).is_some() {
                continue;
            }
            let has = |w: u16| ips.iter().any(|&l| owner(&owners, u32::from(l)) == Some(w));
            let load = |w: u16| owners.iter().filter(|&&(_, o)| o == w).count();
            let w = (0..workers as u16)
                .find(|&w| !has(w))
                .unwrap_or_else(|| (0..workers as u16).min_by_key(|&w| (load(w), w)).unwrap_or(0));
            owners.push((ip, w));
        }
    }
    owners.sort_unstable();
    owners
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
    fn peek_tells_the_takes_to_come() {
        let mut pool = PortPool::new(IP, 5000..=5003, 9);
        assert!(pool.take().is_some() && pool.give_back(pool.ring[0]), "the ring wraps from here");
        let ahead: Vec<Option<u16>> = (0..5).map(|k| pool.peek(k)).collect();
        assert_eq!(ahead[4], None, "four free, no fifth");
        let taken: Vec<Option<u16>> = (0..4).map(|_| pool.take()).collect();
        assert_eq!(ahead[..4], taken[..]);
        let mut fresh = drain(&mut PortPool::new(IP, 5000..=5003, 9));
        fresh.rotate_left(1); // the first port went round, to the end of the ring
        assert_eq!(taken, fresh.into_iter().map(Some).collect::<Vec<_>>());
        assert_eq!((pool.take(), pool.free()), (None, 0));
        assert!(pool.give_back(5002));
        assert_eq!((pool.peek(0), pool.peek(1)), (Some(5002), None));
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
    fn pools_are_found_by_address_after_every_append() {
        let ip = |i: u8| Ipv4Addr::new(198, 18, 2, i);
        let mut pools = Pools::new((1..=3).map(|i| PortPool::new(ip(i), 5000..=5009, 1)).collect());
        pools.append(vec![PortPool::new(ip(9), 5000..=5009, 1), PortPool::new(ip(2), 5000..=5009, 1)]);
        for (i, pool) in pools.iter().enumerate().take(4) {
            assert_eq!(pools.position(pool.ip()), Some(i));
        }
        assert_eq!(pools.position(ip(2)), Some(1), "the first of a repeated address, as a scan finds");
        assert_eq!(pools.position(ip(4)), None);
        assert_eq!(Pools::default().position(ip(1)), None);
    }

    #[test]
    fn local_ips_go_round_the_workers_from_nothing() {
        let ips: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let of = |o: &[(u32, u16)]| o.iter().map(|&(_, w)| w).collect::<Vec<_>>();
        assert_eq!(of(&owners([ips.as_slice()].into_iter(), 2, &[])), [0, 1, 0, 1, 0]);
        assert_eq!(of(&owners([ips.as_slice()].into_iter(), 3, &[])), [0, 1, 2, 0, 1]);
        assert_eq!(of(&owners([ips.as_slice()].into_iter(), 0, &[])), [0, 0, 0, 0, 0]);
        // A second service's IPs start where that service has none, then balance the load.
        let (a, b) = (&ips[..3], &ips[3..]);
        assert_eq!(of(&owners([a, b].into_iter(), 2, &[])), [0, 1, 0, 0, 1]);
    }
}
