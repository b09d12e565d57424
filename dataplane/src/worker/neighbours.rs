//! A worker's side of neighbour resolution: sending to a next hop (from a small cache of
//! MACs, else the table, else held while ARP resolves it), learning from ARP frames and from
//! the other workers, the table's timers, ARP requests and gratuitous announcements.

use std::net::Ipv4Addr;

use super::*;
use crate::classify::{arp_request, MIN_FRAME_LEN};
use crate::neigh::Event;

/// A neighbour one worker learned, for the others.
#[derive(Debug, Clone, Copy)]
pub struct Learned {
    pub link: u16,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// An ARP reply to us (may confirm what we asked), or other ARP (may only update a MAC).
    pub reply: bool,
}

/// Neighbours learned by other workers, waiting to be taken (lock-free, bounded: when it is
/// full the news is dropped, and the worker learns by its own ARP request instead).
pub type NeighbourInbox = crossbeam_queue::ArrayQueue<Learned>;

/// Size of each worker's neighbour inbox.
pub const NEIGHBOUR_INBOX: usize = 256;

/// Entries of the next-hop cache, a power of two: 16 KiB, room for the few gateways of routed
/// traffic and for some hundreds of clients on a connected prefix, each its own next hop (with
/// 64 entries, 250 such clients missed it on most packets and paid a hash lookup each).
const NEXT_HOP_CACHE: usize = 1024;
const _: () = assert!(NEXT_HOP_CACHE.is_power_of_two());

/// A direct-mapped cache of (link, gateway) -> MAC.
pub(super) struct NextHopCache {
    pub(super) generation: u64,
    pub(super) entries: [(u64, MacAddr); NEXT_HOP_CACHE],
}

impl NextHopCache {
    pub(super) fn new() -> NextHopCache {
        NextHopCache { generation: u64::MAX, entries: [(0, MacAddr::default()); NEXT_HOP_CACHE] }
    }

    #[inline]
    pub(super) fn key(hop: Hop) -> u64 {
        (u64::from(hop.link) << 32) | u64::from(u32::from(hop.gateway)) | (1 << 63)
    }

    #[inline]
    pub(super) fn slot(key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - NEXT_HOP_CACHE.trailing_zeros())) as usize
    }
}

impl Worker {
    /// Sends `m` (an IPv4 frame) to `hop`, or holds it while ARP resolves the neighbour.
    pub(super) fn transmit(&mut self, snap: &Snapshot, mut m: Mbuf, hop: Hop, now: u64) {
        let link = hop.link_index();
        if hop.to_kernel() {
            // To this host's own address: its kernel, through the exception path.
            let mac = snap.links[link].mac;
            address(m.data_mut(), mac, mac);
            self.send_to_kernel(link, m);
            return;
        }
        let cache = &mut self.next_hops;
        if cache.generation != self.neigh.generation() {
            cache.generation = self.neigh.generation();
            cache.entries.iter_mut().for_each(|e| e.0 = 0);
        }
        let key = NextHopCache::key(hop);
        let slot = NextHopCache::slot(key);
        let known = if cache.entries[slot].0 == key {
            Some(cache.entries[slot].1)
        } else {
            let found = self.neigh.use_mac(link, hop.gateway);
            if let Some(mac) = found {
                cache.entries[slot] = (key, mac);
            }
            found
        };
        if let Some(mac) = known {
            address(m.data_mut(), mac, snap.links[link].mac);
            self.send(link, m);
            return;
        }
        match self.neigh.hold(link, hop.gateway, m, now) {
            Ok(true) => self.request(snap, link, hop.gateway),
            Ok(false) => {}
            Err(_dropped) => self.setup.counters.count_drop(DropReason::NeighbourUnresolved, 1),
        }
    }

    /// What an ARP frame says of its sender (`reply`: an answer to us), for the neighbours this
    /// worker and the others have asked for; it creates none. Other workers hear of it: ARP
    /// arrives on whichever queue the NIC picks.
    pub(super) fn learn(&mut self, snap: &Snapshot, link: usize, ip: Ipv4Addr, mac: MacAddr, now: u64, reply: bool) {
        if ip.is_unspecified() {
            return; // an ARP probe (RFC 5227) says nothing about a neighbour
        }
        for (w, inbox) in self.setup.neighbours.iter().enumerate() {
            if w != self.setup.index {
                let _ = inbox.push(Learned { link: link as u16, ip, mac, reply });
            }
        }
        self.learn_here(snap, link, ip, mac, now, reply);
    }

    /// Takes the neighbours other workers learned.
    pub(super) fn learn_from_others(&mut self, snap: &Snapshot, now: u64) {
        let index = self.setup.index;
        while let Some(l) = self.setup.neighbours.get(index).and_then(|inbox| inbox.pop()) {
            self.learn_here(snap, l.link as usize, l.ip, l.mac, now, l.reply);
        }
    }

    pub(super) fn learn_here(
        &mut self,
        snap: &Snapshot,
        link: usize,
        ip: Ipv4Addr,
        mac: MacAddr,
        now: u64,
        reply: bool,
    ) {
        let (queues, counters) = (&mut self.queues, &*self.setup.counters);
        let events = &mut |event| neighbour_event(snap, queues, counters, event);
        self.neigh.update(link, ip, mac, reply, now, events);
    }

    pub(super) fn neighbour_timers(&mut self, snap: &Snapshot, now: u64) {
        let mut requests = std::mem::take(&mut self.requests);
        requests.clear();
        let (queues, counters) = (&mut self.queues, &*self.setup.counters);
        self.neigh.tick(now, &mut |event| match event {
            // Capacity for every neighbour was reserved at start: this never allocates.
            Event::SendRequest { link, ip } => requests.push((link, ip)),
            other => neighbour_event(snap, queues, counters, other),
        });
        for &(link, ip) in &requests {
            self.request(snap, link, ip);
        }
        self.requests = requests;
        self.setup.counters.neighbours.set(self.neigh.len() as u64);
    }

    /// Broadcasts an ARP request for `ip` on `link` from the host's address there.
    pub(super) fn request(&mut self, snap: &Snapshot, link: usize, ip: Ipv4Addr) {
        let l = &snap.links[link];
        let Some(source) = l.source_for(ip) else { return };
        if self.send_arp(link, l.mac, source, ip) {
            self.setup.counters.arp_requests_sent.add(1);
        }
    }

    /// Gratuitous ARP for every VIP and local IP on the links that answer for them.
    pub(super) fn announce(&mut self, snap: &Snapshot) {
        for (i, link) in snap.links.iter().enumerate() {
            for ip in link.owned.iter().filter(|&ip| !link.owned.is_silent(ip)) {
                self.send_arp(i, link.mac, ip, ip);
            }
        }
        self.flush();
    }

    /// Gratuitous ARP for the addresses that answer in `new` but did not in `old`: a VIP that
    /// regained its quorum, one added by a reload. Routers and clients that cached another MAC
    /// for it (a director it replaces, keepalived's VRRP master) learn this one at once.
    pub(super) fn announce_changes(&mut self, old: &Snapshot, new: &Snapshot) {
        for (i, link) in new.links.iter().enumerate() {
            let answered = |ip| old.links.get(i).is_some_and(|o| o.owned.contains(ip) && !o.owned.is_silent(ip));
            for ip in link.owned.iter().filter(|&ip| !link.owned.is_silent(ip) && !answered(ip)) {
                self.send_arp(i, link.mac, ip, ip);
            }
        }
    }

    pub(super) fn send_arp(&mut self, link: usize, mac: MacAddr, source: Ipv4Addr, target: Ipv4Addr) -> bool {
        let Some(mut m) = Mbuf::alloc(self.setup.pool) else {
            self.setup.counters.count_drop(DropReason::NoMbuf, 1);
            return false;
        };
        let Some(buf) = m.append(MIN_FRAME_LEN as u16) else { return false };
        let frame: &mut [u8; MIN_FRAME_LEN] = buf.try_into().expect("appended MIN_FRAME_LEN");
        arp_request(frame, mac, source, target);
        self.send(link, m);
        true
    }
}

fn neighbour_event(snap: &Snapshot, queues: &mut [LinkQueues], c: &WorkerCounters, event: Event<Mbuf>) {
    match event {
        Event::Release { mac, mut packet, link } => {
            address(packet.data_mut(), mac, snap.links[link].mac);
            c.count_drop(DropReason::TxFull, queues[link].to_port.push(packet) as u64);
        }
        Event::Dropped { packet } => {
            drop(packet);
            c.count_drop(DropReason::NeighbourUnresolved, 1);
        }
        Event::SendRequest { .. } => {}
    }
}
