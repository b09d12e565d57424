//! The ARP neighbour table of one worker lcore: (link, IPv4 address) -> MAC, the packets held
//! while a neighbour is being resolved, and the timers that retransmit, refresh and forget.
//!
//! Owns: its entries and the packets it holds. Touches nothing else: it reports what must happen
//! (send an ARP request, release or drop a held packet) as `Event`s through a callback; the caller
//! builds the frames and counts the drops. Never locks or blocks, and never allocates after `new`:
//! - entries live in a slab of `capacity` slots, found through a `HashMap<link:ip as u64, slot>`
//!   (hashed by a randomly seeded `mix::MixHasher`: the worker asks it for next hops its own
//!   cache misses, for every new client on a connected prefix) created with room for twice
//!   the capacity: never more than half full, std's hashbrown then
//!   clears its tombstones in place (a rare O(capacity) pass) instead of growing, which
//!   `churn_allocates_nothing_after_new` checks;
//! - held packets live in one preallocated array, `hold_per_entry` places per slot (`held`).
//!
//! Life of an entry (r = retry_ms, m = max_retries, R = reachable_ms, times from the event):
//! - Pending: created by `hold` (the data path needs this next hop), whose caller sends the
//!   first request. Requests are retransmitted at r, 2r, .. m*r; at (m+1)*r with no answer the
//!   held packets are `Dropped` and it is forgotten. Nothing else creates entries in the data
//!   path: ARP the table did not ask for (`update`) only changes entries it has, so spoofed
//!   senders cannot fill it.
//! - Reachable: its MAC confirmed (an answer to our request). R later it turns Stale.
//! - Stale: `lookup` still answers with the MAC. If it is used (`use_mac`) within r, a refresh
//!   request goes out then and every r after, m in all, until an answer makes it Reachable
//!   again (else it is forgotten); if it is not used, it is forgotten at r. So only neighbours
//!   in use are kept, and a neighbour's own ARP traffic never keeps it alive.
//! - An unsolicited ARP from a known neighbour with a new MAC updates the MAC and makes the
//!   entry Stale (Linux does the same): used, it is confirmed by a request of ours.
//!
//! Timers: every deadline is `now + r` or `now + R`, so two FIFO lists, one per duration, stay
//! sorted by deadline by appending alone (`timer`). Arming is O(1) and `tick` pops due heads
//! only: O(due entries) per call, two comparisons when nothing is due.

mod held;
mod timer;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::mix::BuildMix;
use crate::wire::MacAddr;
use held::Held;
use timer::{Timer, Timers};

/// Neighbour table settings. `Default` gives the values in the comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// How long a confirmed MAC is used without question: 30_000.
    pub reachable_ms: u64,
    /// Interval between requests for one neighbour: 1_000 (raised to 1 if 0).
    pub retry_ms: u64,
    /// Unanswered requests before giving up (see the module comment): 3.
    pub max_retries: u32,
    /// Packets held per unresolved neighbour: 4 (raised to 1 if 0).
    pub hold_per_entry: usize,
    /// Packets held over all neighbours at most: 4096.
    pub hold_total: usize,
    /// Neighbours per worker, all preallocated: 4096.
    pub capacity: usize,
}

impl Default for NeighbourConfig {
    fn default() -> Self {
        NeighbourConfig {
            reachable_ms: 30_000,
            retry_ms: 1_000,
            max_retries: 3,
            hold_per_entry: 4,
            hold_total: 4096,
            capacity: 4096,
        }
    }
}

/// What the table knows of a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Its MAC, reachable or stale.
    Known(MacAddr),
    /// Being resolved.
    Pending,
    /// No entry.
    Unknown,
}

/// What the caller must do, reported by `learn` and `tick`.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<P> {
    /// Send an ARP request for `ip` out of `link`.
    SendRequest { link: usize, ip: Ipv4Addr },
    /// `packet` was waiting for `mac`: send it out of `link`.
    Release { mac: MacAddr, packet: P, link: usize },
    /// Resolution failed: drop `packet` and count it.
    Dropped { packet: P },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// `requests`: sent so far, the caller's first one included.
    Pending {
        requests: u32,
    },
    Reachable {
        mac: MacAddr,
    },
    /// `requests`: refresh requests sent since it went stale; `used`: looked up since.
    Stale {
        mac: MacAddr,
        requests: u32,
        used: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Neighbour {
    link: usize,
    ip: Ipv4Addr,
    state: State,
}

pub struct Neighbours<P> {
    config: NeighbourConfig,
    /// `key(link, ip)` -> slot.
    index: HashMap<u64, u32, BuildMix>,
    slots: Vec<Neighbour>,
    /// Free slot numbers, a stack that never outgrows its initial capacity.
    free: Vec<u32>,
    held: Held<P>,
    timers: Timers,
    /// Changes whenever a known MAC may have changed or gone: caches of `lookup` results are
    /// valid while it stays the same.
    generation: u64,
}

/// One u64 to hash on the per-packet path (link indices are far below 2^32).
#[inline]
fn key(link: usize, ip: Ipv4Addr) -> u64 {
    (link as u64) << 32 | u64::from(u32::from(ip))
}

impl<P> Neighbours<P> {
    /// Allocates everything the table will ever use.
    pub fn new(config: NeighbourConfig) -> Self {
        let config = NeighbourConfig {
            retry_ms: config.retry_ms.max(1),
            hold_per_entry: config.hold_per_entry.max(1),
            hold_total: config.hold_total.max(1),
            capacity: config.capacity.min(u32::MAX as usize - 1),
            ..config
        };
        let n = config.capacity;
        let free_slot = Neighbour { link: 0, ip: Ipv4Addr::UNSPECIFIED, state: State::Free };
        Neighbours {
            config,
            index: HashMap::with_capacity_and_hasher(2 * n, BuildMix::random()),
            slots: vec![free_slot; n],
            free: (0..n as u32).rev().collect(),
            held: Held::new(n, config.hold_per_entry, config.hold_total),
            timers: Timers::new(n),
            generation: 0,
        }
    }

    /// The MAC to send to, if known (reachable or stale). O(1); the per-packet call.
    #[inline]
    pub fn lookup(&self, link: usize, ip: Ipv4Addr) -> Option<MacAddr> {
        match self.state(link, ip) {
            Lookup::Known(mac) => Some(mac),
            _ => None,
        }
    }

    /// As `lookup`, for a packet about to be sent: a stale neighbour that is used gets refreshed.
    #[inline]
    pub fn use_mac(&mut self, link: usize, ip: Ipv4Addr) -> Option<MacAddr> {
        let &i = self.index.get(&key(link, ip))?;
        match &mut self.slots[i as usize].state {
            State::Reachable { mac } => Some(*mac),
            State::Stale { mac, used, .. } => {
                *used = true;
                Some(*mac)
            }
            _ => None,
        }
    }

    /// What the table knows of `ip` on `link`.
    pub fn state(&self, link: usize, ip: Ipv4Addr) -> Lookup {
        match self.index.get(&key(link, ip)).map(|&i| self.slots[i as usize].state) {
            Some(State::Reachable { mac } | State::Stale { mac, .. }) => Lookup::Known(mac),
            Some(State::Pending { .. }) => Lookup::Pending,
            Some(State::Free) | None => Lookup::Unknown,
        }
    }

    /// No MAC yet: keep `packet` until resolution (up to hold_per_entry per neighbour; beyond
    /// that, and when the table is full, the packet comes back in Err for the caller to drop and
    /// count). Ok(true) means a new entry was created and an ARP request must go out now.
    /// A neighbour whose MAC is known also hands the packet back: `lookup` first.
    pub fn hold(&mut self, link: usize, ip: Ipv4Addr, packet: P, now_ms: u64) -> Result<bool, P> {
        let (i, created) = match self.index.get(&key(link, ip)) {
            Some(&i) => (i as usize, false),
            None => match self.alloc(link, ip) {
                Some(i) => {
                    self.timers.arm(i, Timer::Retry, now_ms.saturating_add(self.config.retry_ms));
                    (i, true)
                }
                None => return Err(packet),
            },
        };
        match self.slots[i].state {
            State::Pending { .. } => self.held.push(i, packet).map(|()| created),
            _ => Err(packet),
        }
    }

    /// Records `ip`'s MAC on `link` as confirmed, creating the entry if need be (not when the
    /// table is full): for configured neighbours and tests. Held packets for it are emitted as
    /// Release events, in the order they were held.
    pub fn learn(&mut self, link: usize, ip: Ipv4Addr, mac: MacAddr, now_ms: u64, events: &mut impl FnMut(Event<P>)) {
        let i = match self.index.get(&key(link, ip)) {
            Some(&i) => i as usize,
            None => match self.alloc(link, ip) {
                Some(i) => i,
                None => return,
            },
        };
        self.confirm(i, mac, now_ms, events);
    }

    /// What an ARP frame from `ip` on `link` says, for a neighbour already in the table (none is
    /// created). `reply`: an ARP reply addressed to us. A pending entry is resolved by any ARP
    /// from its address; a stale one we asked about is confirmed by a reply; otherwise a new MAC
    /// replaces the old and the entry turns stale (confirmed by our request if it is used).
    pub fn update(
        &mut self,
        link: usize,
        ip: Ipv4Addr,
        mac: MacAddr,
        reply: bool,
        now_ms: u64,
        events: &mut impl FnMut(Event<P>),
    ) {
        let Some(&i) = self.index.get(&key(link, ip)) else { return };
        let i = i as usize;
        match self.slots[i].state {
            State::Pending { .. } => self.confirm(i, mac, now_ms, events),
            State::Stale { requests, .. } if reply && requests > 0 => self.confirm(i, mac, now_ms, events),
            State::Reachable { mac: old } | State::Stale { mac: old, .. } if old != mac => {
                self.generation = self.generation.wrapping_add(1);
                self.slots[i].state = State::Stale { mac, requests: 0, used: false };
                self.timers.arm(i, Timer::Retry, now_ms.saturating_add(self.config.retry_ms));
            }
            _ => {}
        }
    }

    /// See the field: compare it to tell whether a cached `lookup` still holds.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Slot `i` has `mac`, confirmed now: Reachable, and its held packets go out.
    fn confirm(&mut self, i: usize, mac: MacAddr, now_ms: u64, events: &mut impl FnMut(Event<P>)) {
        if !matches!(self.slots[i].state, State::Reachable { mac: old } | State::Stale { mac: old, .. } if old == mac) {
            self.generation = self.generation.wrapping_add(1);
        }
        let link = self.slots[i].link;
        self.slots[i].state = State::Reachable { mac };
        self.timers.arm(i, Timer::Reachable, now_ms.saturating_add(self.config.reachable_ms));
        self.held.drain(i, |packet| events(Event::Release { mac, packet, link }));
    }

    /// Timers (see the module comment for the schedule). Call it every poll loop: it does nothing
    /// but two comparisons when nothing is due, and O(due entries) otherwise. After a long pause
    /// each due entry acts once and restarts its timer from `now_ms`: no catching up.
    pub fn tick(&mut self, now_ms: u64, events: &mut impl FnMut(Event<P>)) {
        while let Some(i) = self.timers.pop_due(Timer::Retry, now_ms) {
            match self.slots[i].state {
                State::Pending { requests } if requests <= self.config.max_retries => {
                    self.slots[i].state = State::Pending { requests: requests + 1 };
                    self.send_request(i, now_ms, events);
                }
                State::Stale { .. } => self.refresh(i, now_ms, events),
                _ => self.forget(i, events),
            }
        }
        while let Some(i) = self.timers.pop_due(Timer::Reachable, now_ms) {
            if let State::Reachable { mac } = self.slots[i].state {
                // Caches of the MAC go, so that the next packet to it says it is in use.
                self.generation = self.generation.wrapping_add(1);
                self.slots[i].state = State::Stale { mac, requests: 0, used: false };
                self.timers.arm(i, Timer::Retry, now_ms.saturating_add(self.config.retry_ms));
            }
        }
    }

    /// Neighbours in the table, pending ones included.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every neighbour as (link, ip, MAC if known), for the control plane. Walks all slots.
    pub fn entries(&self) -> impl Iterator<Item = (usize, Ipv4Addr, Option<MacAddr>)> + '_ {
        self.slots.iter().filter_map(|n| match n.state {
            State::Free => None,
            State::Pending { .. } => Some((n.link, n.ip, None)),
            State::Reachable { mac } | State::Stale { mac, .. } => Some((n.link, n.ip, Some(mac))),
        })
    }

    /// A stale neighbour is due: if it was used, ask again (forget it after `max_retries`
    /// requests); if not, forget it.
    fn refresh(&mut self, i: usize, now_ms: u64, events: &mut impl FnMut(Event<P>)) {
        match self.slots[i].state {
            State::Stale { mac, requests, used: true } if requests < self.config.max_retries => {
                self.slots[i].state = State::Stale { mac, requests: requests + 1, used: true };
                self.send_request(i, now_ms, events);
            }
            _ => self.forget(i, events),
        }
    }

    fn send_request(&mut self, i: usize, now_ms: u64, events: &mut impl FnMut(Event<P>)) {
        let Neighbour { link, ip, .. } = self.slots[i];
        events(Event::SendRequest { link, ip });
        self.timers.arm(i, Timer::Retry, now_ms.saturating_add(self.config.retry_ms));
    }

    fn alloc(&mut self, link: usize, ip: Ipv4Addr) -> Option<usize> {
        let i = self.free.pop()?;
        self.slots[i as usize] = Neighbour { link, ip, state: State::Pending { requests: 1 } };
        self.index.insert(key(link, ip), i);
        Some(i as usize)
    }

    /// Frees slot `i`; packets still held there are reported `Dropped`.
    fn forget(&mut self, i: usize, events: &mut impl FnMut(Event<P>)) {
        self.generation = self.generation.wrapping_add(1);
        self.timers.disarm(i);
        self.held.drain(i, |packet| events(Event::Dropped { packet }));
        let Neighbour { link, ip, .. } = self.slots[i];
        self.index.remove(&key(link, ip));
        self.slots[i].state = State::Free;
        self.free.push(i as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const MAC2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn table(capacity: usize) -> Neighbours<u32> {
        Neighbours::new(NeighbourConfig { capacity, ..NeighbourConfig::default() })
    }

    fn tick(t: &mut Neighbours<u32>, now: u64) -> Vec<Event<u32>> {
        let mut out = Vec::new();
        t.tick(now, &mut |e| out.push(e));
        out
    }

    fn learn(t: &mut Neighbours<u32>, link: usize, ip: Ipv4Addr, mac: MacAddr, now: u64) -> Vec<Event<u32>> {
        let mut out = Vec::new();
        t.learn(link, ip, mac, now, &mut |e| out.push(e));
        out
    }

    fn request(link: usize, ip: Ipv4Addr) -> Event<u32> {
        Event::SendRequest { link, ip }
    }

    #[test]
    fn resolve_flow() {
        let mut t = table(8);
        assert_eq!(t.hold(0, A, 1, 0), Ok(true), "first packet: send a request");
        assert_eq!(t.hold(0, A, 2, 5), Ok(false));
        assert_eq!((t.lookup(0, A), t.state(0, A), t.len()), (None, Lookup::Pending, 1));
        let released = learn(&mut t, 0, A, MAC, 10);
        let release = |packet| Event::Release { mac: MAC, packet, link: 0 };
        assert_eq!(released, vec![release(1), release(2)], "in the order held");
        assert_eq!((t.lookup(0, A), t.state(0, A)), (Some(MAC), Lookup::Known(MAC)));
        assert_eq!(tick(&mut t, 1_010), vec![], "a reachable neighbour has no retry timer");
        assert_eq!(t.entries().collect::<Vec<_>>(), vec![(0, A, Some(MAC))]);
    }

    #[test]
    fn hold_limit() {
        let mut t = table(8);
        for packet in 1..=4 {
            assert!(t.hold(0, A, packet, 0).is_ok());
        }
        assert_eq!(t.hold(0, A, 5, 0), Err(5));
        assert_eq!(learn(&mut t, 0, A, MAC, 1).len(), 4);
        assert_eq!(t.hold(0, A, 6, 2), Err(6), "known: the caller should have used lookup");
    }

    #[test]
    fn retries_then_dropped() {
        let mut t = table(8);
        assert_eq!(t.hold(0, A, 1, 0), Ok(true));
        assert_eq!(t.hold(0, A, 2, 500), Ok(false));
        assert_eq!(tick(&mut t, 999), vec![]);
        for now in [1_000, 2_000, 3_000] {
            assert_eq!(tick(&mut t, now), vec![request(0, A)], "at {now}");
            assert_eq!(tick(&mut t, now + 999), vec![]);
        }
        assert_eq!(tick(&mut t, 4_000), vec![Event::Dropped { packet: 1 }, Event::Dropped { packet: 2 }]);
        assert_eq!((t.state(0, A), t.len()), (Lookup::Unknown, 0));
        assert_eq!(t.hold(0, A, 3, 4_001), Ok(true), "a new attempt starts afresh");
    }

    fn update(t: &mut Neighbours<u32>, ip: Ipv4Addr, mac: MacAddr, reply: bool, now: u64) -> Vec<Event<u32>> {
        let mut out = Vec::new();
        t.update(0, ip, mac, reply, now, &mut |e| out.push(e));
        out
    }

    #[test]
    fn a_stale_neighbour_in_use_is_refreshed_by_our_requests() {
        let mut t = table(8);
        learn(&mut t, 0, A, MAC, 0);
        let g = t.generation();
        assert_eq!(tick(&mut t, 30_000), vec![], "stale: nothing asked until it is used");
        assert_ne!(t.generation(), g, "caches drop it, so that the next packet marks it used");
        assert_eq!(t.use_mac(0, A), Some(MAC), "stale is still used");
        assert_eq!(tick(&mut t, 30_999), vec![]);
        assert_eq!(tick(&mut t, 31_000), vec![request(0, A)]);
        assert_eq!(tick(&mut t, 32_000), vec![request(0, A)]);
        assert_eq!(update(&mut t, A, MAC2, true, 32_200), vec![], "the answer; nothing was held");
        assert_eq!(t.lookup(0, A), Some(MAC2), "the MAC may change");
        assert_eq!(tick(&mut t, 62_199), vec![], "confirmed: nothing for reachable_ms");
        tick(&mut t, 62_200);
        t.use_mac(0, A);
        let asked: usize = (62_300..=67_000).step_by(100).map(|now| tick(&mut t, now).len()).sum();
        assert_eq!(asked, 3, "max_retries requests unanswered");
        assert_eq!((t.lookup(0, A), t.len()), (None, 0), "then forgotten");
    }

    #[test]
    fn a_stale_neighbour_nobody_uses_is_forgotten_whatever_it_says() {
        let mut t = table(8);
        learn(&mut t, 0, A, MAC, 0);
        learn(&mut t, 0, B, MAC2, 0);
        tick(&mut t, 30_000);
        assert_eq!(update(&mut t, A, MAC, false, 30_500), vec![], "its broadcasts do not refresh it");
        assert_eq!(update(&mut t, A, MAC, true, 30_600), vec![], "nor an answer we did not ask for");
        t.use_mac(0, B);
        let asked: Vec<_> = (30_100..=31_000).step_by(100).flat_map(|now| tick(&mut t, now)).collect();
        assert_eq!(asked, vec![request(0, B)], "only B, in use, is asked for");
        assert_eq!((t.lookup(0, A), t.lookup(0, B), t.len()), (None, Some(MAC2), 1));
    }

    #[test]
    fn arp_we_did_not_ask_for_creates_nothing() {
        let mut t = table(8);
        for n in 0..100u32 {
            let spoofed = Ipv4Addr::from(0x0a00_0100 + n);
            assert_eq!(update(&mut t, spoofed, MAC, n % 2 == 0, 10), vec![]);
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.hold(0, A, 1, 0), Ok(true));
        let release = Event::Release { mac: MAC, packet: 1, link: 0 };
        assert_eq!(update(&mut t, A, MAC, false, 5), vec![release], "any ARP from a pending neighbour resolves it");
        assert_eq!(t.state(0, A), Lookup::Known(MAC));
    }

    #[test]
    fn an_unsolicited_new_mac_replaces_the_old_and_must_be_confirmed() {
        let mut t = table(8);
        learn(&mut t, 0, A, MAC, 0);
        assert_eq!(update(&mut t, A, MAC, false, 10), vec![]);
        assert_eq!(t.lookup(0, A), Some(MAC));
        let g = t.generation();
        update(&mut t, A, MAC2, false, 20);
        assert_eq!((t.lookup(0, A), t.generation() != g), (Some(MAC2), true));
        t.use_mac(0, A);
        assert_eq!(tick(&mut t, 1_020), vec![request(0, A)], "stale and in use: asked at once");
    }

    #[test]
    fn table_full_hands_packets_back() {
        let mut t = table(2);
        assert_eq!(t.hold(0, A, 1, 0), Ok(true));
        assert_eq!(t.hold(0, B, 2, 0), Ok(true));
        assert_eq!(t.hold(0, C, 3, 0), Err(3));
        assert_eq!(learn(&mut t, 0, C, MAC, 0), vec![], "not recorded");
        assert_eq!((t.state(0, C), t.len()), (Lookup::Unknown, 2));
        let dropped = (1..=4).flat_map(|s| tick(&mut t, s * 1_000)).filter(|e| matches!(e, Event::Dropped { .. }));
        assert_eq!(dropped.count(), 2, "A and B given up");
        assert_eq!(t.hold(0, C, 4, 4_000), Ok(true), "freed slots are reused");

        let mut empty = table(0);
        assert_eq!(empty.hold(0, A, 1, 0), Err(1));
        assert_eq!(learn(&mut empty, 0, A, MAC, 0), vec![]);
        assert_eq!((tick(&mut empty, u64::MAX), empty.len()), (vec![], 0));
    }

    #[test]
    fn same_ip_on_two_links_is_two_neighbours() {
        let mut t = table(8);
        assert_eq!(t.hold(0, A, 1, 0), Ok(true));
        assert_eq!(t.hold(1, A, 2, 0), Ok(true));
        assert_eq!(learn(&mut t, 1, A, MAC2, 1), vec![Event::Release { mac: MAC2, packet: 2, link: 1 }]);
        assert_eq!((t.lookup(0, A), t.lookup(1, A)), (None, Some(MAC2)));
        let mut entries: Vec<_> = t.entries().collect();
        entries.sort_by_key(|&(link, ip, _)| (link, ip));
        assert_eq!(entries, vec![(0, A, None), (1, A, Some(MAC2))]);
        assert_eq!(learn(&mut t, 2, A, MAC, 2), vec![], "gleaned: a third neighbour, known at once");
        assert_eq!((t.lookup(2, A), t.len()), (Some(MAC), 3));
    }

    #[test]
    fn degenerate_settings_neither_panic_nor_spin() {
        let config = NeighbourConfig {
            retry_ms: 0,
            max_retries: 0,
            hold_per_entry: 0,
            capacity: 4,
            reachable_ms: 0,
            hold_total: 1,
        };
        let mut t: Neighbours<u32> = Neighbours::new(config);
        assert_eq!(t.hold(0, A, 1, 0), Ok(true), "one packet is always held");
        assert_eq!(tick(&mut t, 0), vec![]);
        assert_eq!(tick(&mut t, 1), vec![Event::Dropped { packet: 1 }]);
        learn(&mut t, 0, A, MAC, 5);
        assert_eq!((tick(&mut t, 5), t.len()), (vec![], 1), "stale");
        t.use_mac(0, A);
        assert_eq!((tick(&mut t, 6), t.len()), (vec![], 0), "max_retries 0: forgotten, not asked for");
    }

    #[test]
    fn churn_allocates_nothing_after_new() {
        let config = NeighbourConfig {
            reachable_ms: 200,
            retry_ms: 50,
            max_retries: 1,
            hold_per_entry: 2,
            hold_total: 112,
            capacity: 56,
        };
        let mut t = Neighbours::new(config);
        let vecs = |t: &Neighbours<u32>| (t.free.capacity(), t.held.capacity(), t.slots.capacity());
        let (before, index_before, mut created) = (vecs(&t), t.index.capacity(), 0);
        for n in 0..20_000u32 {
            let (link, ip, now) = ((n % 3) as usize, Ipv4Addr::from(0x0a00_0000 + n / 2), u64::from(n));
            created += usize::from(t.hold(link, ip, n, now) == Ok(true));
            if n % 4 == 0 {
                learn(&mut t, link, ip, MAC, now);
            }
            tick(&mut t, now);
            // Tombstones lower a hash map's reported capacity; only growing would raise it.
            assert!(t.index.capacity() <= index_before, "the index grew at {n}");
        }
        assert!(created > 5_000, "{created} entries made: the table churned");
        assert_eq!(vecs(&t), before);
    }
}
