//! A worker's sessions: one FULLNAT connection each, found from either side of the balancer.
//!
//! Owns: the `SessionTable` of one worker lcore, its memory (all of it allocated by
//! `SessionTable::with_capacity`), and the timers that expire idle sessions.
//! May touch: `bigmem` for its tables' memory and `route::Hop` as a value it keeps; nothing
//! else. It knows no packets or mbufs, only addresses, flags and next hops, so that every rule
//! here is testable with plain values.
//! Must never, on the packet path (`lookup`, `insert`, `touch`, `remove`, `expire`): allocate,
//! lock, block, make a system call, scan the table, or panic on anything a packet controls.
//!
//! How it is built, and why:
//! - `index`: an open-addressing hash (Robin Hood probing, backward-shift deletion, so no
//!   tombstones ever pile up) holding two keys per session: the client's view
//!   (proto, client, vip) and the backend's view (proto, backend, local). A packet from either
//!   side finds the session in one probe sequence, and the hit says which side it came from.
//!   The hash is seeded per table at random, so clients cannot aim collisions at it.
//! - `wheel`: a timing wheel of `TICK_MS` ticks, doubly linked through the session slab by
//!   index (8 bytes a session, no pointers), plus the slab's free list. A session is filed at
//!   its deadline when created and when its state changes; a packet only writes `last_seen_ms`.
//!   When its slot comes due, a session seen since is re-filed at `last_seen + timeout`
//!   (lazy re-arm), otherwise it expires. So per-packet cost stays a few stores, and expiry
//!   costs O(expired + re-filed + slots advanced), never a scan.
//! - `state`: the TCP state machine (LVS-like, simplified) that picks each session's timeout.
//! - `table`: `SessionTable`, which ties the three together over a slab of `Session`s.

mod index;
mod state;
mod table;
mod wheel;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod table_tests;

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

pub use state::{tcp_flags, State, Touch};
pub use table::{Due, Hint, InsertError, SessionTable, TICK_MS};

use crate::route::Hop;

/// The origin of a session this worker opened (`Session::origin`).
pub const ORIGIN_HERE: u16 = 0;

/// The backend of a per-datagram session, the source of its reply key: replies from any backend
/// find it (`SessionTable::has_wildcards` counts the sessions that have it).
pub const WILDCARD: Endpoint = Endpoint::new(std::net::Ipv4Addr::UNSPECIFIED, 0);

/// One side of a connection as it appears on the wire: an IPv4 address and a TCP/UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl Endpoint {
    pub const fn new(ip: Ipv4Addr, port: u16) -> Endpoint {
        Endpoint { ip, port }
    }
}

impl Default for Endpoint {
    fn default() -> Endpoint {
        Endpoint::new(Ipv4Addr::UNSPECIFIED, 0)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// Lookup key: protocol + the packet's (src, dst) endpoints as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub proto: u8,
    pub src: Endpoint,
    pub dst: Endpoint,
}

/// Which side of the balancer a packet came from. Also the index of `Session::hops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    /// Client -> VIP: matched by the key (proto, client, vip).
    Forward = 0,
    /// Backend -> local address: matched by the key (proto, backend, local).
    Reply = 1,
}

impl Direction {
    #[inline(always)]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// This direction's bit in `Session::seen`.
    #[inline(always)]
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A session's place in its table. Valid from `insert` until `remove` or expiry; never share
/// it across tables or keep it past either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u32);

impl SessionId {
    /// The slab index, for listings and logs.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Idle timeouts, one per state. A session expires when it has been idle (no packet either
/// way) for longer than its state's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Handshake not finished: SYN seen, no established exchange yet.
    pub tcp_syn: Duration,
    pub tcp_established: Duration,
    /// The client sent FIN; the backend may still be answering (LVS's FIN_WAIT).
    pub tcp_fin_wait: Duration,
    /// The backend sent FIN; the client may still be sending (CLOSE_WAIT).
    pub tcp_close_wait: Duration,
    /// Both sent FIN, the last ACK not seen yet (LAST_ACK).
    pub tcp_last_ack: Duration,
    /// Closed both ways: for late segments and retransmitted FINs (TIME_WAIT).
    pub tcp_time_wait: Duration,
    /// Reset by either side, or closed before the handshake finished (LVS's CLOSE).
    pub tcp_closing: Duration,
    /// A UDP flow that sent more than one datagram.
    pub udp: Duration,
    /// A UDP flow of one client datagram so far.
    pub udp_new: Duration,
}

impl Timeouts {
    /// The timeout of each state, at the index of its number.
    pub fn by_state(&self) -> [Duration; 9] {
        State::ALL.map(|s| match s {
            State::Udp => self.udp,
            State::UdpNew => self.udp_new,
            State::TcpSynSent => self.tcp_syn,
            State::TcpEstablished => self.tcp_established,
            State::TcpFinWait => self.tcp_fin_wait,
            State::TcpCloseWait => self.tcp_close_wait,
            State::TcpLastAck => self.tcp_last_ack,
            State::TcpTimeWait => self.tcp_time_wait,
            State::TcpClosing => self.tcp_closing,
        })
    }
}

impl Default for Timeouts {
    /// The config's defaults (`[timeouts]`, `ctrlplane::config::Timeouts`, which the appliance
    /// uses; a test in `src/appliance/snapshot.rs` keeps the two equal): LVS's where they fit
    /// (established 15 min, FIN_WAIT 2 min, CLOSE_WAIT 1 min, LAST_ACK 30 s), shorter for what
    /// a flood fills the table with (handshakes, one-datagram flows), for UDP (30 s) and for
    /// TIME_WAIT, which holds a local port.
    fn default() -> Timeouts {
        Timeouts {
            tcp_syn: Duration::from_secs(30),
            tcp_established: Duration::from_secs(900),
            tcp_fin_wait: Duration::from_secs(120),
            tcp_close_wait: Duration::from_secs(60),
            tcp_last_ack: Duration::from_secs(30),
            tcp_time_wait: Duration::from_secs(10),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(30),
            udp_new: Duration::from_secs(10),
        }
    }
}

/// What `SessionTable::insert` needs to create a session. Counters start at zero: the caller
/// `touch`es the session for the packet that created it, like for any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSession {
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    pub client: Endpoint,
    pub vip: Endpoint,
    /// The local address and port this worker took from its `laddr::PortPool`.
    pub local: Endpoint,
    pub backend: Endpoint,
    pub service: u16,
    pub backend_index: u16,
    /// The TCP flags of the packet that creates it (0 for UDP): they pick the initial state,
    /// see `State::initial`.
    pub tcp_flags: u8,
    /// Next hops towards the backend and towards the client (`Session::hops`).
    pub hops: [Hop; 2],
}

/// One FULLNAT connection: client -> vip is rewritten to local -> backend, and back.
/// Everything a packet of it needs, both keys, ids, state, last seen and both next hops, in one
/// cache line (see the size test), so that a packet costs one miss here however large the
/// table. `Copy` so that `remove` can hand it back whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(align(64))]
pub struct Session {
    /// IP protocol number; 0 in a free slot (`SessionTable::touch` relies on it).
    pub proto: u8,
    /// 0: opened by this worker, its local port taken from this worker's pool (and given back
    /// when it ends). Otherwise a copy of a session another node of the cluster opened (its
    /// node id): its port belongs to that node and is never given back here.
    pub origin: u16,
    pub client: Endpoint,
    pub vip: Endpoint,
    pub local: Endpoint,
    pub backend: Endpoint,
    pub service: u16,
    pub backend_index: u16,
    pub state: State,
    /// Which ways a packet has been seen: bit `1 << Direction::index()` (the TCP state machine
    /// asks whether the other side has spoken); and `SEEN_STALE`.
    pub seen: u8,
    /// Next hops, indexed by `Direction`: towards the backend (forward), towards the client
    /// (reply). Set by whoever opened the session; the table only keeps them.
    pub hops: [Hop; 2],
    /// What more its packets need than the rewrite (`EXTRA_*` bits, set by its opener; 0 for
    /// most): read from this line, so that sessions without extras pay nothing to learn it.
    pub extras: u8,
    pub created_ms: u64,
    pub last_seen_ms: u64,
}

/// `Session::seen`: the last look at this session (`fullnat::sweep`) found that it may not go
/// on as it is (its service or backend gone or down, its local IP no longer this worker's),
/// so the fast lane leaves its packets to the general path. Set in every new session until
/// its opener has looked.
pub const SEEN_STALE: u8 = 0x80;

/// `Session::extras`: the stream to the backend carries the PROXY v2 header before the
/// client's bytes (`fullnat::proxied`).
pub const EXTRA_PROXY_V2: u8 = 1;
/// `Session::extras`: the client's segments carry the TOA option (`nat::toa`)...
pub const EXTRA_TOA: u8 = 2;
/// ... until the backend has sent data (then only a forged option 254 is removed).
pub const EXTRA_TOA_DONE: u8 = 4;
/// `Session::extras`: opened by the SYN proxy; the backend's handshake is Sluice's, and the
/// two handshakes' numbers are mapped (`fullnat::synproxied`).
pub const EXTRA_SYNPROXY: u8 = 8;

impl Session {
    /// The key a packet in `dir` carries on the wire.
    #[inline(always)]
    pub fn key(&self, dir: Direction) -> FlowKey {
        match dir {
            Direction::Forward => FlowKey { proto: self.proto, src: self.client, dst: self.vip },
            Direction::Reply => FlowKey { proto: self.proto, src: self.backend, dst: self.local },
        }
    }
}
