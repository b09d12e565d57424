//! RSS steering: choose each session's local port so that the NIC's own receive-side scaling
//! delivers the backend's replies to the rx queue of the worker that owns the session.
//!
//! Owns: a port's RSS key (as a Toeplitz table) and redirection table, both read-only after
//! `new`. May touch: a worker's `PortPool` (through `PortSource`), only to take and give back
//! ports. Must never, in `queue`, `lands_on` or `choose_port`: allocate, lock, block, or panic.
//!
//! A reply from a backend comes back as backend:port -> local:port. With TCP/UDP hashing on,
//! the NIC computes the Toeplitz hash of (src addr, dst addr, src port, dst port) =
//! (backend, local, backend port, local port) and delivers it to rx queue
//! `reta[hash % reta.len()]` (NIC tables have power-of-two sizes, so this is the hash's low
//! bits, as the hardware takes them). All but the local port are fixed once the backend is
//! scheduled, so the worker tries free ports of its local IP until one lands on its own queue.
//!
//! Cost: with `s` of the table's `n` entries on the owner's queue, a port lands with
//! probability `p = s / n` (1/Q for Q queues spread evenly), so `1 / p` tries on average, each a
//! pool take, two table lookups (the hash of the fixed part is computed once: the hash is linear)
//! and, for a rejected port, a give back: about 4.5 ns per try, 35 ns per choice with 8 queues
//! (release build, on the 2.7 GHz test machine), paid once per new session.
//! `tries_bound` allows `TRIES_PER_EXPECTED / p` tries; all miss with probability
//! `(1 - p) ^ (16 / p) < e^-16`, about 1e-7. (4 / p tries, the first idea, would fail up to
//! 1.8% of the time: 1.4% with 8 queues.) On failure every rejected port is back in the pool
//! and `choose_port` says why; the caller counts it under that reason and either refuses the
//! new connection or takes an unsteered port and lets the software redirect carry its replies.
//!
//! What RSS steering cannot steer: packets the NIC hashes on addresses only (IP fragments,
//! ICMP errors about a session) land on `queue_by_addresses`, whatever the port; and a port
//! whose RSS is off (one queue, or a driver without RSS) delivers everything to queue 0. Those
//! need the software redirect.
//!
//! The key and table must be the ones the port really uses, read back from it after it is
//! configured (drivers have different default keys; `MS_DEFAULT_KEY` is only Intel's). A port
//! whose key or table changes later breaks the steering of every session open at that time.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::toeplitz::{ipv4_input, ipv4_tuple_input, Toeplitz, IPV4_TUPLE_DST_PORT};
use crate::laddr::PortPool;

/// How many times the expected number of tries `tries_bound` allows.
pub const TRIES_PER_EXPECTED: u32 = 16;

/// A port's RSS configuration, and what follows from it: the rx queue of any IPv4 tuple.
#[derive(Debug, Clone)]
pub struct RssSteering {
    key: Vec<u8>,
    /// The rx queue of each redirection-table entry; never empty.
    reta: Vec<u16>,
    toeplitz: Toeplitz,
    /// Entries of `reta` per queue id.
    shares: Vec<u32>,
}

/// A port that lands on the owner's queue, and how many ports were taken to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteeredPort {
    pub port: u16,
    pub tries: u32,
}

/// Why no steered port was found. Every port taken was given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoiceError {
    /// No redirection-table entry points at the owner's queue: no port can ever land there (a
    /// configuration error: the port has fewer RSS queues than workers). Nothing was taken.
    NotInReta,
    /// The pool ran out of free ports after `tries` rejected ones.
    PoolEmpty { tries: u32 },
    /// None of `tries` ports landed on the owner's queue.
    NoneLanded { tries: u32 },
}

/// Where candidate ports come from and rejected ones go back to.
///
/// `choose_port` gives each rejected port back before it takes the next one, so a source should
/// not hand out the port it just got back again right away (`PortPool`, a FIFO, hands it out
/// only after every other free port; a stack would offer the same port until the bound).
pub trait PortSource {
    fn next_free(&mut self) -> Option<u16>;
    fn give_back(&mut self, port: u16);
}

impl PortSource for PortPool {
    #[inline]
    fn next_free(&mut self) -> Option<u16> {
        self.take()
    }

    #[inline]
    fn give_back(&mut self, port: u16) {
        // Always accepted: the port came from `take` and was not given back since.
        PortPool::give_back(self, port);
    }
}

/// A `PortSource` from two closures.
struct Closures<N, G>(N, G);

impl<N: FnMut() -> Option<u16>, G: FnMut(u16)> PortSource for Closures<N, G> {
    #[inline]
    fn next_free(&mut self) -> Option<u16> {
        (self.0)()
    }

    #[inline]
    fn give_back(&mut self, port: u16) {
        (self.1)(port)
    }
}

impl RssSteering {
    /// The steering of a port with RSS key `key` and redirection table `reta` (the rx queue of
    /// each entry, in entry order). An empty table stands for a port without RSS: everything
    /// on queue 0. Allocates (the Toeplitz table: 1 KiB per key byte); build it off the packet
    /// path and share it read-only.
    pub fn new(key: &[u8], reta: Vec<u16>) -> RssSteering {
        let reta = if reta.is_empty() { vec![0] } else { reta };
        let queues = reta.iter().map(|&q| usize::from(q) + 1).max().unwrap_or(1);
        let mut shares = vec![0u32; queues];
        for &q in &reta {
            shares[usize::from(q)] += 1;
        }
        RssSteering { key: key.to_vec(), reta, toeplitz: Toeplitz::new(key), shares }
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The redirection table: `[0]` for a port without RSS.
    pub fn reta(&self) -> &[u16] {
        &self.reta
    }

    /// The NIC's RSS hash of a TCP or UDP packet with this tuple.
    #[inline]
    pub fn hash(&self, src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> u32 {
        self.toeplitz.hash(&ipv4_tuple_input(src, dst, src_port, dst_port))
    }

    /// The queue the NIC delivers a packet with this tuple to.
    #[inline]
    pub fn queue(&self, src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> u16 {
        self.queue_of_hash(self.hash(src, dst, src_port, dst_port))
    }

    /// The queue of a packet the NIC hashes on its addresses only (fragments, ICMP).
    #[inline]
    pub fn queue_by_addresses(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        self.queue_of_hash(self.toeplitz.hash(&ipv4_input(src, dst)))
    }

    /// Whether a reply from backend `backend` to `local:port` reaches `owner`'s queue.
    #[inline]
    pub fn lands_on(&self, backend: SocketAddrV4, local: Ipv4Addr, port: u16, owner: u16) -> bool {
        self.queue(*backend.ip(), local, backend.port(), port) == owner
    }

    /// How many redirection-table entries point at `queue`.
    pub fn share(&self, queue: u16) -> u32 {
        self.shares.get(usize::from(queue)).copied().unwrap_or(0)
    }

    /// The tries `choose_port` should allow for `owner`: `TRIES_PER_EXPECTED` times the
    /// expected number (table size / owner's share), rounded up; 0 if no entry is the owner's.
    pub fn tries_bound(&self, owner: u16) -> u32 {
        let share = self.share(owner);
        if share == 0 {
            return 0;
        }
        let entries = u32::try_from(self.reta.len()).unwrap_or(u32::MAX);
        TRIES_PER_EXPECTED.saturating_mul(entries).div_ceil(share)
    }

    /// A free port of `local` (from `source`) whose replies from `backend` land on `owner`'s
    /// queue, within `max_tries` ports taken (`tries_bound(owner)` is the suggested bound).
    /// Each rejected port is given back to `source` before the next is taken.
    pub fn choose_port(
        &self,
        backend: SocketAddrV4,
        local: Ipv4Addr,
        owner: u16,
        max_tries: u32,
        source: &mut impl PortSource,
    ) -> Result<SteeredPort, PortChoiceError> {
        if self.share(owner) == 0 {
            return Err(PortChoiceError::NotInReta);
        }
        // The hash with local port 0; each candidate XORs in its two bytes' contribution.
        let base = self.hash(*backend.ip(), local, backend.port(), 0);
        for tries in 1..=max_tries {
            let Some(port) = source.next_free() else {
                return Err(PortChoiceError::PoolEmpty { tries: tries - 1 });
            };
            let [high, low] = port.to_be_bytes();
            let hash =
                base ^ self.toeplitz.byte(IPV4_TUPLE_DST_PORT, high) ^ self.toeplitz.byte(IPV4_TUPLE_DST_PORT + 1, low);
            if self.queue_of_hash(hash) == owner {
                return Ok(SteeredPort { port, tries });
            }
            source.give_back(port);
        }
        Err(PortChoiceError::NoneLanded { tries: max_tries })
    }

    /// `choose_port` with the source as two closures: `next_free` takes a candidate port,
    /// `give_back` returns a rejected one.
    pub fn choose_port_with(
        &self,
        backend: SocketAddrV4,
        local: Ipv4Addr,
        owner: u16,
        max_tries: u32,
        next_free: impl FnMut() -> Option<u16>,
        give_back: impl FnMut(u16),
    ) -> Result<SteeredPort, PortChoiceError> {
        self.choose_port(backend, local, owner, max_tries, &mut Closures(next_free, give_back))
    }

    #[inline]
    fn queue_of_hash(&self, hash: u32) -> u16 {
        // `reta` is never empty.
        self.reta[hash as usize % self.reta.len()]
    }
}

#[cfg(test)]
#[path = "rss_tests.rs"]
mod tests;
