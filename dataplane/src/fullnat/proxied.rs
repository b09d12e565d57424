//! TCP sessions of a `client_address = "proxy-v2"` service: the stream to the backend starts
//! with the PROXY v2 header, 28 bytes Sluice writes at the client's first sequence number once
//! the handshake is complete (a segment of its own, so that protocols where the server speaks
//! first work), and every client byte after it moves 28 on (`nat::shift`).
//!
//! ```text
//!   client SYN (seq C)          ─> at = C + 1; Fast Open data refused
//!   backend SYN+ACK (seq B)     ─> backend_next = B + 1
//!   client's first ACK          ─> header segment (seq at, ack backend_next) first, then the
//!                                  ACK itself with seq + 28: Sent, resent on a timer
//!   backend ACK >= at + 28      ─> Acked
//!   backend's duplicate ACK at  ─> header resent now
//!   MAX_SENDS sends unanswered  ─> a reset to each side, session ended
//! ```
//! Whether a session is shifted is fixed when it opens (`Session::extras`), so a reload that
//! changes `client_address` never shifts a connection half way. Such sessions are not synced to
//! other nodes (their shift is not in the sync records): after a failover their packets find
//! no session there, and their clients a reset, rather than a stream 28 bytes off.
//!
//! Owns: the per-session shift state, in an array by session slot that only these sessions
//! touch (its pages stay unbacked otherwise), and the headers in flight.

use crate::counters::{ClientAddressResult, WorkerCounters};
use crate::nat::shift::{self, Inserted, Segment};
use crate::session::{tcp_flags, Direction, Session, SessionId, SessionTable, EXTRA_PROXY_V2};
use crate::wire::ipv4::{self, protocol};
use crate::wire::proxy::{self, Transport};
use crate::wire::tcp::{self, Flags};
use crate::wire::{read_u16, read_u32};

use super::retries::{Due, Retries};
use super::{ClientHeader, Hop};

/// Bytes the header takes in the stream.
pub const HEADER_LEN: u32 = proxy::PROXY_LEN as u32;
/// Sends of the header (the first included) before the connection is given up.
pub const MAX_SENDS: u8 = 6;
/// The first resend after this long, each next one after twice the last.
pub const FIRST_RESEND_MS: u64 = 200;
/// Duplicate acknowledgements make a resend at most this often.
const DUPACK_RESEND_MS: u64 = 10;

/// Where a shifted session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Phase {
    /// The client's SYN is seen; the header is not sent yet.
    #[default]
    Handshake = 0,
    /// The header is out, not yet acknowledged.
    Sent = 1,
    /// The backend acknowledged the header.
    Acked = 2,
}

/// One session's shift state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Proxied {
    /// The client's initial sequence number + 1: where the header sits.
    pub at: u32,
    /// The backend's initial sequence number + 1 (valid with `backend_seen`).
    pub backend_next: u32,
    pub backend_seen: bool,
    pub phase: Phase,
    /// Sends of the header so far.
    pub sends: u8,
    /// The client's window, as it last advertised it: the header segment's.
    pub window: u16,
    /// When the header was last sent (ms, modulo 2^32).
    pub sent_ms: u32,
}

impl Proxied {
    /// Packed into 16 bytes, so that a fresh array is zero pages the kernel backs only when
    /// written (`vec![0u128; n]`).
    fn pack(self) -> u128 {
        let flags = self.phase as u8 | u8::from(self.backend_seen) << 4;
        u128::from(self.at)
            | u128::from(self.backend_next) << 32
            | u128::from(flags) << 64
            | u128::from(self.sends) << 72
            | u128::from(self.window) << 80
            | u128::from(self.sent_ms) << 96
    }

    fn unpack(v: u128) -> Proxied {
        let flags = (v >> 64) as u8;
        Proxied {
            at: v as u32,
            backend_next: (v >> 32) as u32,
            backend_seen: flags & 0x10 != 0,
            phase: match flags & 0x0f {
                1 => Phase::Sent,
                2 => Phase::Acked,
                _ => Phase::Handshake,
            },
            sends: (v >> 72) as u8,
            window: (v >> 80) as u16,
            sent_ms: (v >> 96) as u32,
        }
    }

    fn inserted(&self) -> Inserted {
        Inserted { at: self.at, len: HEADER_LEN }
    }
}

/// A segment Sluice sends into a connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emit {
    pub hop: Hop,
    pub segment: Segment,
    /// The PROXY header as payload, or none (a reset).
    pub header: Option<ClientHeader>,
}

impl Emit {
    /// The segment's payload.
    pub fn payload(&self) -> Option<[u8; proxy::PROXY_LEN]> {
        self.header.map(|h| h.proxy_v2(Transport::Tcp))
    }
}

/// The shift state of a worker's sessions.
#[derive(Clone)]
pub struct ProxiedSessions {
    by_slot: Vec<u128>,
    /// Headers in flight, resent until acknowledged.
    retries: Retries,
}

/// What a packet of a shifted session becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shifted {
    /// Send it (already adjusted).
    Send,
    /// Send `Emit` first, then it.
    SendAfter(Emit),
    /// Put the header before its data (`nat::proxy::insert_tcp_header`): the client's first
    /// data, while the header is not acknowledged, carries it again at its own place.
    Lead,
}

impl ProxiedSessions {
    pub fn new(capacity: u32) -> ProxiedSessions {
        ProxiedSessions { by_slot: vec![0u128; capacity as usize], retries: Retries::default() }
    }

    fn get(&self, id: SessionId) -> Proxied {
        Proxied::unpack(self.by_slot[id.get() as usize])
    }

    fn set(&mut self, id: SessionId, p: Proxied) {
        self.by_slot[id.get() as usize] = p.pack();
    }

    /// A session opening now tells its backend the client (`EXTRA_PROXY_V2`); a TCP one's
    /// shift state starts afresh.
    pub fn open(&mut self, sessions: &mut SessionTable, id: SessionId) {
        let s = sessions.get_mut(id);
        s.extras |= EXTRA_PROXY_V2;
        if s.proto == protocol::TCP {
            self.set(id, Proxied::default());
        }
    }

    /// A session whose handshakes the SYN proxy made: the client's first sequence number is
    /// `at`, the backend's next `backend_next` (its handshake is done), so the header goes out
    /// with the client's next segment.
    pub fn handshake_done(&mut self, id: SessionId, at: u32, backend_next: u32) {
        let p = Proxied { at, backend_next, backend_seen: true, ..self.get(id) };
        self.set(id, p);
    }

    /// A client's segment to the backend (rewritten already): `ip` adjusted in place. `hop`
    /// is where it goes, and where a header segment goes before it; `mtu` the link's.
    pub fn forward(&mut self, id: SessionId, s: &Session, ip: &mut [u8], hop: Hop, now_ms: u64, mtu: u16) -> Shifted {
        let Some((flags, seq, window)) = tcp_fields(ip) else { return Shifted::Send };
        let mut p = self.get(id);
        if flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN {
            p.at = seq.wrapping_add(1);
            self.set(id, p);
            let _ = shift::refuse_fast_open(ip);
            return Shifted::Send;
        }
        match p.phase {
            Phase::Handshake if flags & tcp_flags::ACK != 0 && p.backend_seen => {
                p.phase = Phase::Sent;
                p.sends = 1;
                p.window = window;
                p.sent_ms = now_ms as u32;
                self.set(id, p);
                self.retries.add(id, s, now_ms + FIRST_RESEND_MS);
                let _ = shift::shift_seq(ip, HEADER_LEN);
                Shifted::SendAfter(header_emit(s, &p, hop))
            }
            Phase::Handshake => Shifted::Send,
            // The client's first data while the header is unacknowledged: the header leads it
            // at `at` (so the data after it sits where the shift puts it anyway).
            Phase::Sent if seq == p.at && has_data(ip) && total_len(ip) + HEADER_LEN as usize <= usize::from(mtu) => {
                p.sends = p.sends.saturating_add(1);
                p.sent_ms = now_ms as u32;
                self.set(id, p);
                Shifted::Lead
            }
            Phase::Sent | Phase::Acked => {
                let _ = shift::shift_seq(ip, HEADER_LEN);
                Shifted::Send
            }
        }
    }

    /// A backend's segment to the client (rewritten already): `ip` adjusted in place.
    pub fn reply(&mut self, id: SessionId, ip: &mut [u8], now_ms: u64) {
        let Some((flags, seq, _)) = tcp_fields(ip) else { return };
        let mut p = self.get(id);
        if flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN | tcp_flags::ACK {
            p.backend_next = seq.wrapping_add(1);
            p.backend_seen = true;
            self.set(id, p);
            return;
        }
        if p.phase == Phase::Handshake {
            return;
        }
        let Ok(Some(ack)) = shift::unshift_ack(ip, p.inserted()) else { return };
        if p.phase == Phase::Sent {
            if p.inserted().acknowledged_by(ack) {
                p.phase = Phase::Acked;
                self.set(id, p);
            } else if ack == p.at
                && flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) == 0
                && (now_ms as u32).wrapping_sub(p.sent_ms) as u64 >= DUPACK_RESEND_MS
            {
                // The backend has bytes past a hole where the header should be: resend now.
                self.retries.now(id, now_ms);
            }
        }
    }

    /// Headers due again, and resets for those sent `MAX_SENDS` times, into `out`; the
    /// sessions given up are removed from `sessions` and handed to `ended`. Scans at most once
    /// a millisecond, and only while headers are in flight.
    pub fn resend(
        &mut self,
        sessions: &mut SessionTable,
        now_ms: u64,
        c: &WorkerCounters,
        out: &mut Vec<Emit>,
        mut ended: impl FnMut(&Session),
    ) {
        let by_slot = &mut self.by_slot;
        self.retries.scan(sessions, EXTRA_PROXY_V2, now_ms, |sessions, id, s, due| {
            let mut p = Proxied::unpack(by_slot[id.get() as usize]);
            if s.proto != protocol::TCP || p.phase != Phase::Sent {
                return Due::Done;
            }
            if !due {
                return Due::Wait;
            }
            if p.sends >= MAX_SENDS {
                out.push(reset(&s, &p, Direction::Forward));
                out.push(reset(&s, &p, Direction::Reply));
                ended(&sessions.remove(id));
                c.client_address(s.service, ClientAddressResult::Reset);
                return Due::Done;
            }
            out.push(header_emit(&s, &p, s.hops[0]));
            p.sends += 1;
            p.sent_ms = now_ms as u32;
            by_slot[id.get() as usize] = p.pack();
            c.client_address(s.service, ClientAddressResult::Resent);
            Due::Again(FIRST_RESEND_MS << (p.sends - 1))
        });
    }

    /// Where session `id`'s header sits, once it went out (for ICMP errors to map back).
    pub fn inserted(&self, id: SessionId) -> Option<Inserted> {
        let p = self.get(id);
        (p.phase != Phase::Handshake).then(|| p.inserted())
    }

    /// Headers in flight (for tests and the dump).
    pub fn in_flight(&self) -> usize {
        self.retries.len()
    }

    /// A shifted session's state (for tests).
    pub fn state(&self, id: SessionId) -> Proxied {
        self.get(id)
    }
}

/// TCP flags, sequence number and window of a TCP packet `inspect` accepted.
fn tcp_fields(ip: &[u8]) -> Option<(u8, u32, u16)> {
    ip.first()?;
    let ihl = ipv4::header_len(ip);
    let t = ip.get(ihl..ihl + tcp::HEADER_LEN)?;
    Some((t[tcp::offset::FLAGS], read_u32(t, tcp::offset::SEQ), read_u16(t, tcp::offset::WINDOW)))
}

/// The IP total length of a packet `inspect` accepted.
fn total_len(ip: &[u8]) -> usize {
    usize::from(read_u16(ip, ipv4::offset::TOTAL_LEN))
}

/// Whether a TCP packet `inspect` accepted carries data.
pub(super) fn has_data(ip: &[u8]) -> bool {
    let ihl = ipv4::header_len(ip);
    total_len(ip) > ihl + tcp::header_len(&ip[ihl..])
}

/// The header segment of session `s`: from its local endpoint to its backend, at `at`.
fn header_emit(s: &Session, p: &Proxied, hop: Hop) -> Emit {
    Emit {
        hop,
        segment: Segment {
            src: (s.local.ip, s.local.port),
            dst: (s.backend.ip, s.backend.port),
            seq: p.at,
            ack: p.backend_next,
            flags: Flags::ACK | Flags::PSH,
            window: p.window,
            options: Default::default(),
        },
        header: Some(ClientHeader { client: s.client, vip: s.vip }),
    }
}

/// A reset for one side of a session whose header was never acknowledged (`Forward`: to the
/// backend, `Reply`: to the client): the backend's
/// stream is at `at` (it has not taken the header), the client's at `backend_next` (a server
/// waiting for the header has sent nothing).
fn reset(s: &Session, p: &Proxied, to: Direction) -> Emit {
    let (src, dst, seq, hop) = match to {
        Direction::Forward => ((s.local.ip, s.local.port), (s.backend.ip, s.backend.port), p.at, s.hops[0]),
        Direction::Reply => ((s.vip.ip, s.vip.port), (s.client.ip, s.client.port), p.backend_next, s.hops[1]),
    };
    let segment = Segment { src, dst, seq, ack: 0, flags: Flags::RST, window: 0, options: Default::default() };
    Emit { hop, segment, header: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_packs_into_sixteen_bytes_and_back() {
        let p = Proxied {
            at: 0xdead_beef,
            backend_next: 0x0102_0304,
            backend_seen: true,
            phase: Phase::Sent,
            sends: 5,
            window: 0xfffe,
            sent_ms: 0x8000_0001,
        };
        assert_eq!(Proxied::unpack(p.pack()), p);
        assert_eq!(Proxied::unpack(0), Proxied::default());
    }
}
