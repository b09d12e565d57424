//! A worker's sessions: one FULLNAT connection each, found from either side of the balancer.
//!
//! Owns: the `SessionTable` of one worker lcore, its memory (all of it allocated by
//! `SessionTable::with_capacity`), and the timers that expire idle sessions.
//! May touch: nothing outside itself; it knows no packets or mbufs, only addresses, flags and
//! lengths, so that every rule here is testable with plain values.
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
pub use table::{InsertError, SessionTable, TICK_MS};

/// The origin of a session this worker opened (`Session::origin`).
pub const ORIGIN_HERE: u16 = 0;

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

/// Which side of the balancer a packet came from. Also the index of `Session::packets`/`bytes`.
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
    /// FIN or RST seen: long enough for the last ACKs and retransmitted FINs to get through.
    pub tcp_closing: Duration,
    pub udp: Duration,
}

impl Default for Timeouts {
    /// LVS's defaults where they fit (established 15 min, UDP 5 min); a shorter handshake
    /// timeout than LVS's 2 min, since half-open sessions are what a SYN flood fills the table with.
    fn default() -> Timeouts {
        Timeouts {
            tcp_syn: Duration::from_secs(30),
            tcp_established: Duration::from_secs(900),
            tcp_closing: Duration::from_secs(30),
            udp: Duration::from_secs(300),
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
}

/// One FULLNAT connection: client -> vip is rewritten to local -> backend, and back.
/// `Copy` so that `remove` can hand it back whole. Kept at 80 bytes (see the size test):
/// ten million of them must fit in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Session {
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
    pub created_ms: u64,
    pub last_seen_ms: u64,
    /// Indexed by `Direction`.
    pub packets: [u64; 2],
    /// Indexed by `Direction`; IP lengths as the caller counts them.
    pub bytes: [u64; 2],
}

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
