//! Per-worker counters: one cache-line-aligned block per worker, written only by that worker
//! (plain load + store, no locked instruction) and read with relaxed loads by the control core,
//! which sums them. Every packet the data path drops is counted here under a `DropReason`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::limits::{MAX_BACKENDS, MAX_SERVICES};

/// A counter with a single writer. `add` is not atomic against other writers, by design.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value with a single writer that goes up and down (active sessions, free ports).
#[derive(Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline(always)]
    pub fn inc(&self) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    #[inline(always)]
    pub fn dec(&self) {
        self.0.store(self.0.load(Ordering::Relaxed).saturating_sub(1), Ordering::Relaxed);
    }

    #[inline(always)]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker's figures for one backend id (`snapshot::Backend`).
#[derive(Default)]
pub struct BackendStats {
    /// Sessions opened on this node, in this worker's table.
    pub active: Gauge,
    /// Copies of other nodes' sessions to it in this worker's table: every worker holds a copy
    /// of each (`fullnat::sync`), so over the workers each counts once (`backend_active`).
    pub copies: Gauge,
    pub sessions: Counter,
    /// Indexed by `session::Direction`: to the backend, from the backend.
    pub packets: [Counter; 2],
    pub bytes: [Counter; 2],
}

/// One worker's figures for one service slot.
#[derive(Default)]
pub struct ServiceStats {
    pub created: Counter,
    pub sessions: Gauge,
    /// SYN proxy cookies: sent, valid, invalid (`SYNPROXY_RESULTS`).
    pub synproxy: [Counter; 3],
    /// By `ClientAddressResult`: what became of the client's address on the way to a backend.
    pub client_address: [Counter; ClientAddressResult::ALL.len()],
}

/// The `result` labels of `sluice_synproxy_total`, by index of `ServiceStats::synproxy`.
pub const SYNPROXY_RESULTS: [&str; 3] = ["sent", "valid", "invalid"];

/// `sluice_client_address_total{service,result}`: for a service with `client_address`, what
/// each packet that should have carried the client's address got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum ClientAddressResult {
    /// The header went in.
    Added,
    /// The header went in, and the datagram left as two fragments to fit the link.
    Fragmented,
    /// The datagram would not fit the link with the header and says not to fragment: the
    /// client got an ICMP fragmentation needed, the datagram was dropped (`too_big`).
    TooBig,
    /// No room in the packet buffer for the header: dropped (`no_room`).
    NoRoom,
    /// TCP: the header sent again, unacknowledged after a timeout or on duplicate
    /// acknowledgements.
    Resent,
    /// TCP: the header unacknowledged after `proxied::MAX_SENDS` sends: both sides reset.
    Reset,
    /// TOA: the option went in in place of SACK blocks of the client's.
    SackDropped,
}

impl ClientAddressResult {
    pub const ALL: [ClientAddressResult; 7] = [
        ClientAddressResult::Added,
        ClientAddressResult::Fragmented,
        ClientAddressResult::TooBig,
        ClientAddressResult::NoRoom,
        ClientAddressResult::Resent,
        ClientAddressResult::Reset,
        ClientAddressResult::SackDropped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClientAddressResult::Added => "added",
            ClientAddressResult::Fragmented => "fragmented",
            ClientAddressResult::TooBig => "too_big",
            ClientAddressResult::NoRoom => "no_room",
            ClientAddressResult::Resent => "resent",
            ClientAddressResult::Reset => "reset",
            ClientAddressResult::SackDropped => "sack_dropped",
        }
    }
}

impl ServiceStats {
    #[inline]
    pub fn client_address(&self, result: ClientAddressResult) {
        self.client_address[result as usize].add(1);
    }
}

/// Free ports of one of the worker's local IPs (`ip` 0: unused slot).
#[derive(Default)]
pub struct LocalPortStats {
    pub ip: AtomicU32,
    pub free: Gauge,
}

/// Local IPs a worker can own, over all services.
pub const MAX_LOCAL_IPS: usize = 256;

/// Why the data path dropped a packet. The metric label is `name()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// An Ethernet or ARP frame too short or with fields the format does not allow.
    Malformed,
    /// An IPv4 packet shorter than its headers or length fields say.
    Truncated,
    /// An IPv4, TCP or UDP header field the format does not allow.
    BadHeader,
    BadIpChecksum,
    /// The NIC found a bad checksum on receipt (with rx checksum offload).
    BadChecksum,
    /// FULLNAT needs the ports, which only a first fragment has.
    Fragment,
    /// TTL would reach 0 here (an ICMP time exceeded goes back where allowed).
    TtlExpired,
    /// Not TCP, UDP or ICMP.
    UnsupportedProtocol,
    /// ICMP to a VIP or local IP that is neither an echo request nor an error about a session.
    IcmpUnhandled,
    /// A VIP address on a protocol/port that no service has.
    NoService,
    /// No session for a packet that cannot open one (a reply to a local IP, TCP without SYN,
    /// an ICMP error about an unknown flow), or whose session ended with its backend.
    NoSession,
    /// The service has no backend with weight > 0.
    NoBackend,
    /// The VIP's service has fewer healthy backends than `min_active`: it does not answer.
    VipDown,
    /// This worker's local IPs of the service have no free port.
    NoLocalPort,
    /// The session table is full.
    SessionTableFull,
    /// No route to the backend or the client.
    NoRoute,
    /// The next hop did not answer ARP in time, or too many packets were waiting for it.
    NeighbourUnresolved,
    /// No mbuf for a packet the data path builds (ARP request, ICMP error).
    NoMbuf,
    /// The port's tx queue refused the packet.
    TxFull,
    /// The kernel exception path refused the packet.
    ExceptionFull,
    /// The ring to the worker owning the packet's local IP was full.
    RedirectFull,
    /// Bigger than the link's MTU once the client's address went in (`client_address`), and
    /// not to be fragmented (DF), or in need of more than two fragments; or no buffer room for
    /// the header.
    TooBig,
    /// A new flow from a client the service's `deny` names, or its `allow` does not.
    Denied,
    /// A new flow of a service at its `max_sessions`.
    LimitSessions,
    /// A new flow over the service's `new_sessions_per_second` or its client's
    /// `per_client_new_sessions_per_second`.
    LimitRate,
    /// An ACK to a `synproxy` service with no session and no valid cookie (a forged one, or
    /// one for a SYN answered more than two periods ago).
    SynproxyBadCookie,
    /// A client packet while the SYN proxy made the backend's handshake, with the worker's
    /// room for such packets full (the client sends it again).
    HoldFull,
}

impl DropReason {
    pub const ALL: [DropReason; 27] = [
        DropReason::Malformed,
        DropReason::Truncated,
        DropReason::BadHeader,
        DropReason::BadIpChecksum,
        DropReason::BadChecksum,
        DropReason::Fragment,
        DropReason::TtlExpired,
        DropReason::UnsupportedProtocol,
        DropReason::IcmpUnhandled,
        DropReason::NoService,
        DropReason::NoSession,
        DropReason::NoBackend,
        DropReason::VipDown,
        DropReason::NoLocalPort,
        DropReason::SessionTableFull,
        DropReason::NoRoute,
        DropReason::NeighbourUnresolved,
        DropReason::NoMbuf,
        DropReason::TxFull,
        DropReason::ExceptionFull,
        DropReason::RedirectFull,
        DropReason::TooBig,
        DropReason::Denied,
        DropReason::LimitSessions,
        DropReason::LimitRate,
        DropReason::SynproxyBadCookie,
        DropReason::HoldFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Truncated => "truncated",
            DropReason::BadHeader => "bad_header",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::Fragment => "fragment",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::IcmpUnhandled => "icmp_unhandled",
            DropReason::NoService => "no_service",
            DropReason::NoSession => "no_session",
            DropReason::NoBackend => "no_backend",
            DropReason::VipDown => "vip_down",
            DropReason::NoLocalPort => "no_local_port",
            DropReason::SessionTableFull => "session_table_full",
            DropReason::NoRoute => "no_route",
            DropReason::NeighbourUnresolved => "neighbour_unresolved",
            DropReason::NoMbuf => "no_mbuf",
            DropReason::TxFull => "tx_full",
            DropReason::ExceptionFull => "exception_full",
            DropReason::RedirectFull => "redirect_full",
            DropReason::TooBig => "too_big",
            DropReason::Denied => "denied",
            DropReason::LimitSessions => "limit_sessions",
            DropReason::LimitRate => "limit_rate",
            DropReason::SynproxyBadCookie => "synproxy_bad_cookie",
            DropReason::HoldFull => "hold_full",
        }
    }
}

impl From<crate::nat::Refusal> for DropReason {
    fn from(r: crate::nat::Refusal) -> DropReason {
        use crate::nat::Refusal;
        match r {
            Refusal::Truncated => DropReason::Truncated,
            Refusal::BadHeader => DropReason::BadHeader,
            Refusal::BadIpChecksum => DropReason::BadIpChecksum,
            Refusal::Fragment => DropReason::Fragment,
            Refusal::TtlExpired | Refusal::IcmpErrorSuppressed => DropReason::TtlExpired,
            Refusal::UnsupportedProtocol => DropReason::UnsupportedProtocol,
        }
    }
}

/// The upper bounds of `WorkerCounters::packet_wait`'s buckets, in microseconds.
pub const WAIT_BOUNDS_US: [u64; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// The bucket of `WorkerCounters::packet_wait` for a stay of `cycles` TSC cycles, given
/// `WAIT_BOUNDS_US` in TSC cycles: the first bound it does not exceed, or the last bucket.
#[inline]
pub fn wait_bucket(bounds: &[u64; WAIT_BOUNDS_US.len()], cycles: u64) -> usize {
    bounds.partition_point(|&bound| bound < cycles)
}

/// Everything one worker counts.
#[repr(align(64))]
pub struct WorkerCounters {
    pub polls: Counter,
    /// Polls that found at least one packet.
    pub busy_polls: Counter,
    /// TSC cycles spent in polls, and in polls that found packets: the busy ratio is
    /// busy_cycles / cycles (the share of the worker's time that went into packets).
    pub cycles: Counter,
    pub busy_cycles: Counter,
    /// A sample of the busy loops (one in `worker::TIMED_EVERY`): their cycles, and those of
    /// them spent inside the drivers' receive and transmit calls (ports, kernel taps, rings
    /// between workers). Their ratio is the drivers' share of `busy_cycles`; the rest is
    /// Sluice's own work on the packets.
    pub timed_busy_cycles: Counter,
    pub driver_cycles: Counter,
    pub rx_packets: Counter,
    pub arp_replies: Counter,
    pub to_kernel: Counter,
    pub from_kernel: Counter,
    /// Packets rewritten and sent on, each way.
    pub forwarded: Counter,
    pub replied: Counter,
    pub sessions_created: Counter,
    pub sessions_expired: Counter,
    /// Unconfirmed sessions ended to make room for a new flow (`[sessions] when_full`).
    pub sessions_evicted: Counter,
    /// The longest poll loop so far, in TSC cycles (a gauge that only rises).
    pub longest_loop_cycles: Gauge,
    /// `sluice_worker_packet_wait_seconds`: packets by the bucket of their longest possible
    /// stay in the worker (`WAIT_BOUNDS_US`, then the rest), and the sum of those stays in TSC
    /// cycles. A packet's stay is bounded by the time from the start of the poll before the one
    /// that received it (it arrived after that poll emptied the queue, unless the queue held
    /// more than a burst) to the start of the loop after it (its transmit was flushed by then).
    pub packet_wait: [Counter; WAIT_BOUNDS_US.len() + 1],
    pub packet_wait_cycles: Counter,
    /// ICMP errors to a VIP handed to the next worker in search of their session.
    pub icmp_handed_over: Counter,
    /// Entries in the worker's neighbour table, pending ones included.
    pub neighbours: Gauge,
    pub icmp_echo_replies: Counter,
    pub icmp_errors_relayed: Counter,
    pub icmp_time_exceeded_sent: Counter,
    pub arp_requests_sent: Counter,
    /// Packets handed to the worker owning their local IP, and taken from other workers.
    pub redirected_out: Counter,
    pub redirected_in: Counter,
    /// New sessions whose local port was chosen for RSS to bring replies here.
    pub rss_steered: Counter,
    /// Session sync: updates handed to the engine, updates that did not fit its queue, peers'
    /// records installed or refreshed, and refused.
    pub sync_updates: Counter,
    pub sync_lost: Counter,
    pub sync_installed: Counter,
    pub sync_refused: Counter,
    /// Copies of other nodes' sessions, by the node that opened them.
    pub sync_held: [HeldFor; MAX_PEERS],
    drops: [Counter; DropReason::ALL.len()],
    /// By backend id.
    pub backends: Box<[BackendStats]>,
    /// By service slot.
    pub services: Box<[ServiceStats]>,
    /// By the worker's local port pool index.
    pub local_ports: Box<[LocalPortStats]>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        fn table<T: Default>(n: usize) -> Box<[T]> {
            (0..n).map(|_| T::default()).collect()
        }
        WorkerCounters {
            polls: Counter::default(),
            busy_polls: Counter::default(),
            cycles: Counter::default(),
            busy_cycles: Counter::default(),
            timed_busy_cycles: Counter::default(),
            driver_cycles: Counter::default(),
            rx_packets: Counter::default(),
            arp_replies: Counter::default(),
            to_kernel: Counter::default(),
            from_kernel: Counter::default(),
            forwarded: Counter::default(),
            replied: Counter::default(),
            sessions_created: Counter::default(),
            sessions_expired: Counter::default(),
            sessions_evicted: Counter::default(),
            longest_loop_cycles: Gauge::default(),
            packet_wait: Default::default(),
            packet_wait_cycles: Counter::default(),
            icmp_handed_over: Counter::default(),
            neighbours: Gauge::default(),
            icmp_echo_replies: Counter::default(),
            icmp_errors_relayed: Counter::default(),
            icmp_time_exceeded_sent: Counter::default(),
            arp_requests_sent: Counter::default(),
            redirected_out: Counter::default(),
            redirected_in: Counter::default(),
            rss_steered: Counter::default(),
            sync_updates: Counter::default(),
            sync_lost: Counter::default(),
            sync_installed: Counter::default(),
            sync_refused: Counter::default(),
            sync_held: Default::default(),
            drops: Default::default(),
            backends: table(MAX_BACKENDS),
            services: table(MAX_SERVICES),
            local_ports: table(MAX_LOCAL_IPS),
        }
    }
}

/// Sessions to backend `id` over the workers `all`: each worker's own, and each copy of another
/// node's session once (every worker holds it). Relaxed reads: exact enough for least-connection
/// choices and for the operator's view.
pub fn backend_active<'a>(all: impl Iterator<Item = &'a WorkerCounters>, id: u16) -> u64 {
    let (mut own, mut copies, mut workers) = (0, 0, 0);
    for c in all {
        workers += 1;
        if let Some(b) = c.backends.get(id as usize) {
            own += b.active.get();
            copies += b.copies.get();
        }
    }
    own + copies / workers.max(1)
}

/// Nodes whose sessions a worker counts copies of, at most.
pub const MAX_PEERS: usize = 16;

/// Copies held for one node: the node (0 while the slot is free) and how many.
#[derive(Default)]
pub struct HeldFor {
    pub node: AtomicU32,
    pub count: Gauge,
}

impl WorkerCounters {
    /// Counts what became of the client's address for a packet of service `service`.
    #[inline]
    pub fn client_address(&self, service: u16, result: ClientAddressResult) {
        if let Some(stats) = self.services.get(usize::from(service)) {
            stats.client_address(result);
        }
    }

    /// Publishes the free ports left on this worker's local IP at `at` (`FullNat::pools` order).
    #[inline]
    pub fn set_free_ports(&self, at: usize, free: u32) {
        if let Some(slot) = self.local_ports.get(at) {
            slot.free.set(u64::from(free));
        }
    }

    /// The gauge of copies held for `node`, claiming a free slot for a node seen first; `None`
    /// when `MAX_PEERS` nodes have slots already. Written by the worker alone.
    pub fn held_for(&self, node: u16) -> Option<&Gauge> {
        let node = u32::from(node);
        if let Some(slot) = self.sync_held.iter().find(|h| h.node.load(Ordering::Relaxed) == node) {
            return Some(&slot.count);
        }
        let free = self.sync_held.iter().find(|h| h.node.load(Ordering::Relaxed) == 0)?;
        free.node.store(node, Ordering::Relaxed);
        Some(&free.count)
    }

    /// Counts `n` packets dropped for `reason`. Callers pass what a push or flush refused,
    /// nearly always 0: that costs a predicted branch here, not a store to the counter's line
    /// per packet.
    #[inline(always)]
    pub fn count_drop(&self, reason: DropReason, n: u64) {
        if n != 0 {
            self.drops[reason as usize].add(n);
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_fill_their_own_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 64);
        assert_eq!(std::mem::size_of::<WorkerCounters>() % 64, 0);
        let c = WorkerCounters::default();
        assert_eq!(
            (c.backends.len(), c.services.len(), c.local_ports.len()),
            (MAX_BACKENDS, MAX_SERVICES, MAX_LOCAL_IPS)
        );
    }

    #[test]
    fn gauges_go_both_ways_and_never_below_zero() {
        let g = Gauge::default();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
        g.dec();
        g.dec();
        assert_eq!(g.get(), 0);
    }

    #[test]
    fn a_stay_goes_to_the_first_bucket_it_does_not_exceed() {
        // 1,000 TSC cycles a microsecond.
        let bounds = WAIT_BOUNDS_US.map(|us| us * 1000);
        assert_eq!(wait_bucket(&bounds, 0), 0);
        assert_eq!(wait_bucket(&bounds, 1000), 0, "a bound is its bucket's (le)");
        assert_eq!(wait_bucket(&bounds, 1001), 1);
        assert_eq!(wait_bucket(&bounds, 16_000), 4);
        assert_eq!(wait_bucket(&bounds, 16_001), 5);
        assert_eq!(wait_bucket(&bounds, 4_096_000), WAIT_BOUNDS_US.len() - 1);
        assert_eq!(wait_bucket(&bounds, 4_096_001), WAIT_BOUNDS_US.len(), "past the last bound: +Inf");
        assert_eq!(wait_bucket(&bounds, u64::MAX), WAIT_BOUNDS_US.len());
        assert!(WAIT_BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_reason_has_its_slot() {
        let c = WorkerCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            c.count_drop(*r, i as u64 + 1);
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(c.dropped(*r), i as u64 + 1);
        }
    }
}
