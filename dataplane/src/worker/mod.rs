//! The poll loop of one worker lcore. For each port: receive a burst on this worker's queue;
//! classify; answer and learn ARP; run FULLNAT on IPv4 for owned addresses and send the result
//! to its next hop (resolving it by ARP, holding a few packets meanwhile); pass the rest to the
//! kernel exception path; send what the kernel transmits out of the port. Between bursts:
//! session expiry, the sweep of the sessions' standing under a new snapshot, the timers of
//! PROXY headers and SYN-proxy handshakes, and neighbour timers.
//! Drops are counted by reason. What FULLNAT leaves more work for (the client's address, the
//! SYN proxy) is in `extras`; neighbours and next hops in `neighbours`.
//!
//! Owns: its queues on every port, its tx buffers, its sessions, local ports, neighbours and
//! counters. Must never lock or block, and allocates only mbufs for the few packets it builds
//! (ARP requests, ICMP errors, PROXY headers, SYN-proxy segments); with `IdleMode::Adaptive` it
//! sleeps only after many empty polls.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::classify::{answer_arp, classify, Verdict};
use crate::counters::{wait_bucket, ClientAddressResult, DropReason, WorkerCounters, WAIT_BOUNDS_US};
use crate::dpdk::{self, L4Checksum, Mbuf, PoolHandle, RingConsumer, RingProducer, RingQueue, RxBurst, TxQueue};
use crate::dump::{DumpBox, Dumper};
use crate::fullnat::{ClientHeader, Emit, Extra, FullNat, Hop, OffloadL4, Step, WorkerPart};
use crate::neigh::{NeighbourConfig, Neighbours};
use crate::publish::{Mailbox, Update};
use crate::session::{Endpoint, Hint, SessionId};
use crate::snapshot::Snapshot;
use crate::wire::{ethernet, ipv4, MacAddr};

mod clock;
mod extras;
mod icmp;
mod neighbours;

use clock::{in_slices, inverse, ms_of, timed};
use extras::{Held, HELD_FOR_HANDSHAKES};
use icmp::{IcmpError, TokenBucket, ICMP_ERRORS_PER_SECOND};
use neighbours::NextHopCache;
pub use neighbours::{Learned, NeighbourInbox, NEIGHBOUR_INBOX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMode {
    /// Poll without pause: lowest latency, one core at 100%.
    Busy,
    /// After `IDLE_POLLS_BEFORE_SLEEP` empty polls, sleep, doubling up to `MAX_IDLE_SLEEP`.
    Adaptive,
}

const IDLE_POLLS_BEFORE_SLEEP: u32 = 256;
const MIN_IDLE_SLEEP: Duration = Duration::from_micros(16);
const MAX_IDLE_SLEEP: Duration = Duration::from_micros(1024);
/// The kernel side of the exception path is polled at most this often: reading a tap is a
/// system call even when it is empty, so it goes on a timer rather than into every loop; the
/// kernel's packets (ARP, BGP, health checks, ssh) wait this long at most.
const KERNEL_POLL_INTERVAL: Duration = Duration::from_micros(50);
/// Packets held per neighbour while ARP resolves it (a burst of new flows to a backend not yet
/// resolved on this worker), and over all neighbours: held packets are mbufs, which a burst
/// towards many unresolved neighbours must not exhaust.
const HELD_PER_NEIGHBOUR: usize = 256;
const HELD_IN_ALL: usize = 2048;
/// Expiry's share of one poll loop: sessions are looked at in chunks until this much time
/// has gone (at least one chunk a loop), so that mass expiry after a flood never stalls
/// receive, and a quiet worker still keeps up with any rate of expiry.
const EXPIRE_SLICE: Duration = Duration::from_micros(20);
const EXPIRE_CHUNK: usize = 32;
/// The standing sweep's share of one poll loop (`sweep`), in chunks of slots: a chunk of
/// live sessions each a cache miss stays within a few microseconds.
const SWEEP_SLICE: Duration = Duration::from_micros(10);
const SWEEP_CHUNK: usize = 64;
const ETH: usize = ethernet::HEADER_LEN;
/// One loop in this many times its drivers' calls (`WorkerCounters::driver_cycles`): a TSC
/// read costs tens of cycles in a VM, and a sample tells the share as well.
pub const TIMED_EVERY: u32 = 8;
const _: () = assert!(TIMED_EVERY.is_power_of_two());
/// Housekeeping runs in the first loop after this much time since it last ran (`Worker::run`).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_micros(10);

struct LinkQueues {
    port: u16,
    kernel_port: u16,
    to_port: TxQueue,
    to_kernel: TxQueue,
}

/// What a worker is given at start.
pub struct WorkerSetup {
    pub index: usize,
    pub queue: u16,
    /// The first snapshot and this worker's part of it (taken by `Worker::new`).
    pub snapshot: Arc<Snapshot>,
    pub part: Option<WorkerPart>,
    /// Rings to the other workers, by their index (`None` at this worker's own index), and
    /// from them: replies for a local IP another worker owns are handed over (redirect).
    pub rings_out: Vec<Option<RingProducer>>,
    pub rings_in: Vec<RingConsumer>,
    /// Every worker's inbox of neighbours learned by the others (this one's at `index`): ARP
    /// replies arrive on whichever queue the NIC picks, and every worker needs them.
    pub neighbours: Vec<Arc<NeighbourInbox>>,
    /// Where later snapshots arrive.
    pub mailbox: Arc<Mailbox>,
    /// Where session listings are asked for.
    pub dumps: Arc<DumpBox>,
    /// Every worker's counters, this one's included (at `index`).
    pub all_counters: Vec<Arc<WorkerCounters>>,
    pub counters: Arc<WorkerCounters>,
    pub idle: IdleMode,
    pub stop: Arc<AtomicBool>,
    pub pool: PoolHandle,
    pub session_capacity: u32,
    /// Announce VIPs and local IPs by gratuitous ARP at start (one worker does it).
    pub announce: bool,
    /// In a cluster: session sync with the other nodes.
    pub sync: Option<crate::sync::SyncSetup>,
}

pub struct Worker {
    setup: WorkerSetup,
    queues: Vec<LinkQueues>,
    nat: FullNat,
    neigh: Neighbours<Mbuf>,
    /// 2^64 / the TSC's cycles a ms, for `ms_of`.
    ms_per_tsc: u64,
    /// `HOUSEKEEPING_INTERVAL` in TSC cycles.
    housekeeping_cycles: u64,
    /// `EXPIRE_SLICE` in TSC cycles.
    expire_cycles: u64,
    /// `KERNEL_POLL_INTERVAL` in TSC cycles.
    kernel_poll_cycles: u64,
    /// `SWEEP_SLICE` in TSC cycles.
    sweep_cycles: u64,
    /// `counters::WAIT_BOUNDS_US` in TSC cycles.
    wait_bounds: [u64; WAIT_BOUNDS_US.len()],
    icmp_budget: TokenBucket,
    /// What the stages learnt of each packet of the burst in hand, by position (`prefetch_burst`).
    hints: [Option<Hint>; dpdk::BURST],
    /// Whether this loop times the drivers' calls (one in `TIMED_EVERY`), and the TSC cycles
    /// they took so far (`timed`).
    timing: bool,
    driver_cycles: u64,
    dumper: Dumper,
    /// Bursts on their way to other workers, by their index.
    handoff: Vec<RingQueue>,
    /// Segments FULLNAT's timers asked for in one loop (`resend_headers`).
    emits: Vec<Emit>,
    /// Client packets of SYN-proxied sessions waiting for their backend's handshake.
    held: Vec<Held>,
    /// ARP requests the neighbour timers asked for in one loop (room for every neighbour).
    requests: Vec<(usize, Ipv4Addr)>,
    /// Recent next hops and their MACs, valid for one neighbour-table generation: most traffic
    /// goes to a handful of next hops, and this spares the table's hash on every packet.
    next_hops: NextHopCache,
    /// `SLUICE_FAILPOINT=worker-panic-on-reload`: the worker panics when it takes a new
    /// snapshot, so that tests can see what a worker's failure does to the appliance.
    panic_on_reload: bool,
}

/// The failpoint that makes workers panic on their next snapshot (tests only).
pub const FAILPOINT_PANIC_ON_RELOAD: &str = "worker-panic-on-reload";

impl Worker {
    /// Allocates everything the worker will use (sessions, pools, neighbour table).
    pub fn new(mut setup: WorkerSetup) -> Worker {
        let queues = setup
            .snapshot
            .links
            .iter()
            .map(|l| LinkQueues {
                port: l.port,
                kernel_port: l.kernel_port,
                to_port: TxQueue::new(l.port, setup.queue),
                to_kernel: TxQueue::new(l.kernel_port, setup.queue),
            })
            .collect();
        let part = setup.part.take().expect("a worker gets its part once");
        let mut nat = FullNat::new(part, setup.session_capacity, &setup.snapshot);
        let peers = setup.all_counters.iter().enumerate().filter(|&(i, _)| i != setup.index).map(|(_, c)| c.clone());
        nat.set_peers(peers.collect());
        if let Some(sync) = setup.sync.clone() {
            nat.enable_sync(sync);
        }
        nat.publish_ports(&setup.counters);
        // A burst of new flows to a neighbour not yet resolved is held, not dropped (Linux holds
        // up to 208 KB of packets per unresolved neighbour).
        let neigh = Neighbours::new(NeighbourConfig {
            hold_per_entry: HELD_PER_NEIGHBOUR,
            hold_total: HELD_IN_ALL,
            ..NeighbourConfig::default()
        });
        let icmp_budget = TokenBucket::new(ICMP_ERRORS_PER_SECOND);
        let tsc_per_ms = (dpdk::tsc_hz() / 1000).max(1);
        let expire_cycles = tsc_per_ms * EXPIRE_SLICE.as_micros() as u64 / 1000;
        let kernel_poll_cycles = tsc_per_ms * KERNEL_POLL_INTERVAL.as_micros() as u64 / 1000;
        let handoff = setup.rings_out.iter().map(|_| RingQueue::default()).collect();
        let requests = Vec::with_capacity(NeighbourConfig::default().capacity);
        let next_hops = NextHopCache::new();
        Worker {
            setup,
            queues,
            nat,
            neigh,
            ms_per_tsc: inverse(tsc_per_ms),
            housekeeping_cycles: tsc_per_ms * HOUSEKEEPING_INTERVAL.as_micros() as u64 / 1000,
            expire_cycles,
            kernel_poll_cycles,
            sweep_cycles: tsc_per_ms * SWEEP_SLICE.as_micros() as u64 / 1000,
            wait_bounds: WAIT_BOUNDS_US.map(|us| tsc_per_ms * us / 1000),
            icmp_budget,
            hints: [None; dpdk::BURST],
            timing: false,
            driver_cycles: 0,
            dumper: Dumper::default(),
            handoff,
            emits: Vec::with_capacity(64),
            held: Vec::with_capacity(HELD_FOR_HANDSHAKES),
            requests,
            next_hops,
            panic_on_reload: std::env::var("SLUICE_FAILPOINT").is_ok_and(|f| f == FAILPOINT_PANIC_ON_RELOAD),
        }
    }

    /// Polls until `stop` is set.
    ///
    /// A loop reads the TSC once, at its start: the time from one start to the next is the
    /// previous loop's, accounted then (a TSC read costs tens of cycles in a VM, and a loop
    /// with a few packets pays it per packet). Housekeeping (a new snapshot, session sync,
    /// expiry, the standing sweep, PROXY header resends, session dumps, other workers'
    /// neighbours, neighbour timers) runs once `HOUSEKEEPING_INTERVAL` has gone since it last
    /// did, not in every loop: each of those looks at a queue or a list even with nothing to
    /// do, which loops of a few packets paid per packet, and ten microseconds later changes
    /// nothing.
    pub fn run(mut self) {
        let mut snap = self.setup.snapshot.clone();
        if self.setup.announce {
            self.announce(&snap);
        }
        let mut rx = RxBurst::default();
        let mut empty_polls = 0u32;
        let mut sleep = MIN_IDLE_SLEEP;
        let mut kernel_due = 0u64;
        let mut loops = 0u32;
        // The last loop's start, whether it timed its drivers, found work and how many packets,
        // until it is accounted; and the start of the poll before it, since when its packets
        // may have waited.
        let mut last: Option<(u64, bool, bool, usize)> = None;
        let mut before_last = dpdk::tsc();
        let mut housekeeping_at = 0u64;
        while !self.setup.stop.load(Ordering::Relaxed) {
            let started = dpdk::tsc();
            if let Some((then, timing, busy, packets)) = last.take() {
                let stay = started.wrapping_sub(before_last);
                self.account(started.wrapping_sub(then), busy, timing, packets, stay);
                before_last = then;
            }
            self.timing = loops & (TIMED_EVERY - 1) == 0;
            let housekeeping = started.wrapping_sub(housekeeping_at) >= self.housekeeping_cycles;
            if housekeeping {
                housekeeping_at = started;
            }
            loops = loops.wrapping_add(1);
            // A loop's time includes taking a new snapshot: packets wait for that too.
            if housekeeping {
                if let Some(update) = self.setup.mailbox.take() {
                    snap = self.adopt(snap, update);
                }
            }
            let now = self.ms_of(started);
            let mut work = 0;
            let kernel_turn = started >= kernel_due;
            if kernel_turn {
                kernel_due = started.wrapping_add(self.kernel_poll_cycles);
            }
            for i in 0..self.queues.len() {
                work += self.poll_port(&snap, i, &mut rx, now);
                if kernel_turn {
                    work += self.poll_kernel(&snap, i, &mut rx, now);
                }
            }
            for r in 0..self.setup.rings_in.len() {
                work += self.poll_ring(&snap, r, &mut rx, now);
            }
            let packets = work;
            if housekeeping {
                work += self.nat.sync_step(&snap, now, &self.setup.counters);
                self.expire(now);
                self.sweep(&snap);
                self.resend_headers(&snap, now);
                self.dumper.step(&self.setup.dumps, self.nat.sessions(), now);
                self.learn_from_others(&snap, now);
                self.neighbour_timers(&snap, now);
            }
            self.flush();
            last = Some((started, self.timing, work > 0, packets));
            if work > 0 {
                empty_polls = 0;
                sleep = MIN_IDLE_SLEEP;
            } else if self.setup.idle == IdleMode::Adaptive {
                empty_polls += 1;
                if empty_polls >= IDLE_POLLS_BEFORE_SLEEP {
                    // This loop ends before the sleep: the sleep is no loop's time.
                    self.account(dpdk::tsc().wrapping_sub(started), false, self.timing, 0, 0);
                    // What the next loop finds came after this poll.
                    before_last = started;
                    last = None;
                    std::thread::sleep(sleep);
                    sleep = (sleep * 2).min(MAX_IDLE_SLEEP);
                }
            }
        }
    }

    /// Counts a finished loop that took `spent` TSC cycles: `work`, whether it found any;
    /// `timing`, whether it timed its drivers' calls; `packets`, how many it took, each of which
    /// was in the worker for `stay` cycles at most (since the poll before this loop's).
    #[inline]
    fn account(&mut self, spent: u64, work: bool, timing: bool, packets: usize, stay: u64) {
        let driver_cycles = std::mem::take(&mut self.driver_cycles);
        let c = &self.setup.counters;
        c.polls.add(1);
        c.cycles.add(spent);
        if spent > c.longest_loop_cycles.get() {
            c.longest_loop_cycles.set(spent);
        }
        if packets > 0 {
            c.packet_wait[wait_bucket(&self.wait_bounds, stay)].add(packets as u64);
            c.packet_wait_cycles.add(stay.saturating_mul(packets as u64));
        }
        if work {
            c.busy_polls.add(1);
            c.busy_cycles.add(spent);
            if timing {
                c.timed_busy_cycles.add(spent);
                c.driver_cycles.add(driver_cycles);
            }
        }
    }

    /// The ms clock at TSC `tsc`: a multiply by the precomputed inverse of the TSC's cycles a
    /// ms rather than a division (some forty cycles, every loop).
    #[inline(always)]
    fn ms_of(&self, tsc: u64) -> u64 {
        ms_of(tsc, self.ms_per_tsc)
    }

    /// Expires idle sessions for at most `EXPIRE_SLICE` (one chunk at least; `in_slices`).
    fn expire(&mut self, now: u64) {
        let (nat, c) = (&mut self.nat, &*self.setup.counters);
        in_slices(EXPIRE_CHUNK, self.expire_cycles, || nat.expire_some(now, EXPIRE_CHUNK, c).1);
    }

    /// Sweeps the sessions' standing under `snap` (`FullNat::sweep_some`) for at most
    /// `SWEEP_SLICE`, one chunk at least (`in_slices`); once the table is swept under `snap`,
    /// one compare.
    fn sweep(&mut self, snap: &Snapshot) {
        let nat = &mut self.nat;
        in_slices(SWEEP_CHUNK, self.sweep_cycles, || nat.sweep_some(snap, SWEEP_CHUNK));
    }

    /// Switches to a new snapshot between bursts; the old one goes back to the control core.
    fn adopt(&mut self, old: Arc<Snapshot>, update: Update) -> Arc<Snapshot> {
        assert!(!self.panic_on_reload, "failpoint SLUICE_FAILPOINT={FAILPOINT_PANIC_ON_RELOAD}");
        let generation = update.snapshot.generation;
        let old_part = self.nat.adopt(update.part);
        self.nat.publish_ports(&self.setup.counters);
        let snapshot = update.snapshot;
        if self.setup.announce {
            self.announce_changes(&old, &snapshot);
        }
        self.setup.snapshot = snapshot.clone();
        self.setup.mailbox.retire(generation, Update { snapshot: old, part: old_part });
        snapshot
    }

    /// Before a burst is handled one packet at a time: every flow's index slot is prefetched,
    /// then every session the index names, so that the burst's cache misses overlap instead of
    /// each packet waiting for its own (at a million flows, four times fewer nanoseconds a
    /// packet in `cargo bench -p dataplane --bench fullnat`). Also for a few flows: the index is
    /// sized for the table's capacity, so even 1,024 flows' slots lie on 2,048 lines scattered
    /// over megabytes, and a profile of the worker over memif found half of `process`'s time
    /// waiting on the index slot.
    /// What they found stays in `hints`, by position in the burst, for `process_hashed`: each
    /// packet is hashed once, and the fast lane checks the session stage two found before it
    /// searches the index.
    fn prefetch_burst(&mut self, rx: &RxBurst) {
        for (hint, frame) in self.hints.iter_mut().zip(rx.frames()) {
            let ipv4 = frame.get(12..14) == Some(&[0x08, 0x00]);
            *hint = frame.get(ETH..).filter(|_| ipv4).and_then(|ip| self.nat.prefetch_index(ip)).map(Hint::hash_only);
        }
        for hint in self.hints[..rx.remaining()].iter_mut().flatten() {
            *hint = self.nat.prefetch_session(hint.hash);
        }
    }

    fn poll_port(&mut self, snap: &Snapshot, i: usize, rx: &mut RxBurst, now: u64) -> usize {
        let (port, queue) = (self.queues[i].port, self.setup.queue);
        let n = timed(self.timing, &mut self.driver_cycles, || rx.receive(port, queue));
        self.setup.counters.rx_packets.add(n as u64);
        self.prefetch_burst(rx);
        let link = &snap.links[i];
        for (k, mut m) in rx.by_ref().enumerate() {
            match classify(m.data(), &link.owned) {
                Verdict::Local => {
                    let hint = self.hints[k];
                    self.fullnat(snap, i, m, now, false, hint)
                }
                Verdict::ArpRequestForUs { sender_ip, sender_mac } => {
                    self.learn(snap, i, sender_ip, sender_mac, now, false);
                    if answer_arp(m.data_mut(), link.mac) {
                        self.setup.counters.arp_replies.add(1);
                        self.send(i, m);
                    } else {
                        self.setup.counters.count_drop(DropReason::Malformed, 1);
                    }
                }
                Verdict::Arp { sender_ip, sender_mac } => {
                    // A reply (to us: the port only takes our MAC and broadcasts) may answer one
                    // of our requests, maybe another worker's; other ARP may only update what
                    // is known. Nothing creates a neighbour but our own need of one.
                    let reply = m.data().get(ETH + 6..ETH + 8) == Some(&[0, 2]);
                    self.learn(snap, i, sender_ip, sender_mac, now, reply);
                    self.send_to_kernel(i, m);
                }
                Verdict::Kernel => self.send_to_kernel(i, m),
                Verdict::Drop(reason) => self.setup.counters.count_drop(reason, 1),
            }
        }
        n
    }

    /// Packets other workers received for this worker's local IPs.
    fn poll_ring(&mut self, snap: &Snapshot, r: usize, rx: &mut RxBurst, now: u64) -> usize {
        let ring = &self.setup.rings_in[r];
        let n = timed(self.timing, &mut self.driver_cycles, || rx.receive_ring(ring));
        self.setup.counters.redirected_in.add(n as u64);
        self.prefetch_burst(rx);
        for (k, m) in rx.by_ref().enumerate() {
            match snap.links.iter().position(|l| l.port == m.port()) {
                Some(link) => {
                    let hint = self.hints[k];
                    self.fullnat(snap, link, m, now, true, hint)
                }
                None => self.setup.counters.count_drop(DropReason::Malformed, 1),
            }
        }
        n
    }

    /// What the host's kernel sends out of link `i`. Mostly it leaves by the port as it is; but
    /// the host's own traffic to an address the data path answers for (a backend running on
    /// this host replying to a local IP, the host using a VIP) goes through FULLNAT as if it
    /// had come in, and the kernel's ARP requests for such addresses are answered here.
    fn poll_kernel(&mut self, snap: &Snapshot, i: usize, rx: &mut RxBurst, now: u64) -> usize {
        let (port, queue) = (self.queues[i].kernel_port, self.setup.queue);
        let n = timed(self.timing, &mut self.driver_cycles, || rx.receive(port, queue));
        self.setup.counters.from_kernel.add(n as u64);
        let link = &snap.links[i];
        for mut m in rx.by_ref() {
            match classify(m.data(), &link.owned) {
                Verdict::Local if answers(m.data(), &link.owned) => self.fullnat(snap, i, m, now, false, None),
                Verdict::ArpRequestForUs { .. } if answer_arp(m.data_mut(), link.mac) => {
                    self.setup.counters.arp_replies.add(1);
                    self.send_to_kernel(i, m);
                }
                _ => self.send(i, m),
            }
        }
        n
    }

    /// FULLNAT for a frame to one of our addresses; `handed`: it came from another worker;
    /// `hint`: what `prefetch_burst` learnt of it, if anything.
    fn fullnat(&mut self, snap: &Snapshot, link: usize, mut m: Mbuf, now: u64, handed: bool, hint: Option<Hint>) {
        if let Some(owner) = self.owner_elsewhere(snap, &m) {
            let ring = self.setup.rings_out[owner].as_ref().expect("a ring to every other worker");
            self.setup.counters.redirected_out.add(1);
            let refused = self.handoff[owner].push(ring, m);
            self.setup.counters.count_drop(DropReason::RedirectFull, refused as u64);
            return;
        }
        let c = &*self.setup.counters;
        if m.rx_checksum_bad() {
            c.count_drop(DropReason::BadChecksum, 1);
            return;
        }
        let step = match m.data_mut().get_mut(ETH..) {
            Some(ip) => self.nat.process_hashed(snap, ip, now, c, hint),
            None => Step::Drop(DropReason::Truncated),
        };
        match step {
            Step::Forward { hop, offload } => {
                if let Some(l4) = offload {
                    let l3_len = ipv4::header_len(&m.data()[ETH..]) as u16;
                    let l4 = if l4 == OffloadL4::Tcp { L4Checksum::Tcp } else { L4Checksum::Udp };
                    m.request_tx_checksums(ETH as u8, l3_len, l4);
                }
                self.transmit(snap, m, hop, now);
            }
            Step::ForwardExtra { hop } => match self.nat.take_extra() {
                Some(Extra::Header { header, service }) => self.forward_with_header(snap, m, hop, header, service, now),
                Some(Extra::Toa { client, service }) => self.forward_with_toa(snap, m, hop, client, service, now),
                Some(Extra::First(first)) => {
                    self.emit(snap, &first, now);
                    self.transmit(snap, m, hop, now);
                }
                Some(Extra::Hold { session, first }) => {
                    if let Some(first) = first {
                        self.emit(snap, &first, now);
                    }
                    self.hold(session, link, m, now);
                }
                // Only with `Absorbed`; the packet goes nowhere.
                Some(other @ (Extra::Release { .. } | Extra::Answer(_))) => {
                    self.absorbed(snap, link, &m, Some(other), now)
                }
                None => self.transmit(snap, m, hop, now),
            },
            Step::Answer { ip_len } => {
                if m.set_len((ETH + ip_len) as u16) {
                    bounce(m.data_mut(), snap.links[link].mac);
                    self.send(link, m);
                } else {
                    c.count_drop(DropReason::Truncated, 1);
                }
            }
            Step::Absorbed => {
                let extra = self.nat.take_extra();
                self.absorbed(snap, link, &m, extra, now);
            }
            Step::TooBig { mtu, service } => {
                c.count_drop(DropReason::TooBig, 1);
                self.client_address(service, ClientAddressResult::TooBig);
                self.icmp_error(snap, link, &m, IcmpError::FragNeeded { mtu }, now);
            }
            Step::Bounce => {
                bounce(m.data_mut(), snap.links[link].mac);
                self.send(link, m);
            }
            Step::Reset { ip_len } => {
                if m.set_len((ETH + ip_len) as u16) {
                    bounce(m.data_mut(), snap.links[link].mac);
                    self.send(link, m);
                } else {
                    c.count_drop(DropReason::NoSession, 1);
                }
            }
            Step::TimeExceeded => {
                c.count_drop(DropReason::TtlExpired, 1);
                self.icmp_error(snap, link, &m, IcmpError::TimeExceeded, now);
            }
            Step::Elsewhere => self.hand_on(m, handed),
            Step::Drop(reason) => c.count_drop(reason, 1),
        }
    }

    /// An ICMP error about a session this worker does not have goes round the other workers,
    /// one after the other, until the owner takes it or it is back before the first (which the
    /// mbuf's tag names): errors are few, and copies to every worker would cost more.
    fn hand_on(&mut self, mut m: Mbuf, handed: bool) {
        let workers = self.handoff.len();
        let c = &self.setup.counters;
        if workers < 2 {
            c.count_drop(DropReason::NoSession, 1);
            return;
        }
        if !handed {
            m.set_tag(self.setup.index as u32);
        }
        let next = (self.setup.index + 1) % workers;
        if next == m.tag() as usize {
            c.count_drop(DropReason::NoSession, 1);
            return;
        }
        let ring = self.setup.rings_out[next].as_ref().expect("a ring to every other worker");
        c.icmp_handed_over.add(1);
        let refused = self.handoff[next].push(ring, m);
        c.count_drop(DropReason::RedirectFull, refused as u64);
    }

    /// The other worker owning the local IP `m` is addressed to, if any (several workers only).
    #[inline]
    fn owner_elsewhere(&self, snap: &Snapshot, m: &Mbuf) -> Option<usize> {
        if self.handoff.len() < 2 {
            return None;
        }
        let d = m.data().get(ETH + 16..ETH + 20)?;
        let owner = snap.owner_of(Ipv4Addr::new(d[0], d[1], d[2], d[3]))? as usize;
        (owner != self.setup.index && owner < self.handoff.len()).then_some(owner)
    }

    #[inline]
    fn send(&mut self, link: usize, m: Mbuf) {
        let refused = self.queues[link].to_port.push(m);
        self.setup.counters.count_drop(DropReason::TxFull, refused as u64);
    }

    #[inline]
    fn send_to_kernel(&mut self, link: usize, m: Mbuf) {
        self.setup.counters.to_kernel.add(1);
        let refused = self.queues[link].to_kernel.push(m);
        self.setup.counters.count_drop(DropReason::ExceptionFull, refused as u64);
    }

    fn flush(&mut self) {
        let start = if self.timing { dpdk::tsc() } else { 0 };
        let c = &self.setup.counters;
        for q in &mut self.queues {
            c.count_drop(DropReason::TxFull, q.to_port.flush() as u64);
            c.count_drop(DropReason::ExceptionFull, q.to_kernel.flush() as u64);
        }
        for (queue, ring) in self.handoff.iter_mut().zip(&self.setup.rings_out) {
            if let Some(ring) = ring {
                c.count_drop(DropReason::RedirectFull, queue.flush(ring) as u64);
            }
        }
        if self.timing {
            self.driver_cycles += dpdk::tsc().wrapping_sub(start);
        }
    }
}

/// Whether the IPv4 frame's destination is one the data path answers for (owned, not silent).
#[inline]
fn answers(frame: &[u8], owned: &crate::classify::OwnedAddrs) -> bool {
    frame.get(ETH + 16..ETH + 20).is_some_and(|d| !owned.is_silent(Ipv4Addr::new(d[0], d[1], d[2], d[3])))
}

/// Sets the Ethernet addresses of a frame we send.
#[inline]
fn address(frame: &mut [u8], to: MacAddr, from: MacAddr) {
    frame[0..6].copy_from_slice(&to.0);
    frame[6..12].copy_from_slice(&from.0);
}

/// Sends a frame back where it came from: its source becomes the destination.
#[inline]
fn bounce(frame: &mut [u8], our_mac: MacAddr) {
    let mut to = [0u8; 6];
    to.copy_from_slice(&frame[6..12]);
    address(frame, MacAddr(to), our_mac);
}
