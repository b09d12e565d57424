//! TCP sessions of a `synproxy = true` service: the worker answers the client's SYN itself
//! with a cookie (`synproxy::Cookies`, no state kept), and only an ACK that carries a valid
//! cookie opens a session; then Sluice makes the backend's handshake on the client's behalf,
//! with the client's own options (from the cookie and the timestamp), holding the client's
//! packets meanwhile, and from then on maps the two handshakes' numbers (`nat::syn::Mapping`).
//!
//! ```text
//!   client SYN            ─> SYN+ACK from the VIP, seq = cookie       (nothing kept)
//!   client ACK (cookie)   ─> session opened; SYN to the backend; the ACK held
//!   client packets        ─> held (a few, by the worker) until ...
//!   backend SYN+ACK       ─> ACK to the backend, mapping known: Established; held released
//!   backend RST instead   ─> RST to the client, session ended
//!   no SYN+ACK            ─> SYN resent after 1, 2, 4 s; then a reset to the client
//! ```
//! Owns: the per-session state, in an array by session slot that only these sessions touch,
//! and the SYNs in flight.

use crate::nat::shift::Segment;
use crate::nat::syn::{self, Mapping, Options};
use crate::session::{tcp_flags, Session, SessionId, SessionTable, EXTRA_SYNPROXY};
use crate::synproxy::SynOptions;
use crate::wire::tcp::{self, Flags};
use crate::wire::{ipv4, read_u16, read_u32};

use super::retries::{Due, Retries};
use super::{Emit, Hop};

/// The window scale Sluice offers a client that offered one, until a backend of the service
/// has shown its own (Linux's usual); then the backends' (`FullNat::learned_scale`), so that
/// clients negotiate what they would without the proxy.
pub const CLIENT_SCALE: u8 = 7;
/// The MSS Sluice offers clients in its SYN+ACK.
pub const OFFERED_MSS: u16 = 1460;
/// Sends of the SYN to the backend before the client gets a reset.
pub const MAX_SYNS: u8 = 4;
const FIRST_RESEND_MS: u64 = 1000;

/// One session's handshake and mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynProxied {
    pub cookie: u32,
    pub client_isn: u32,
    /// The client's timestamp value in its ACK (0 without timestamps).
    pub client_tsval: u32,
    /// Sluice's timestamp value in the SYN+ACK, which the client's ACK echoed.
    pub our_tsval: u32,
    pub mapping: Mapping,
    /// The client's window in its ACK (its own scale).
    pub window: u16,
    pub mss: u16,
    /// The client's window scale, if it offered one (and timestamps carried it).
    pub client_ws: Option<u8>,
    pub sack: bool,
    pub timestamps: bool,
    pub established: bool,
    pub syns: u8,
}

impl SynProxied {
    fn pack(self) -> [u64; 4] {
        let flags = u64::from(self.sack)
            | u64::from(self.timestamps) << 1
            | u64::from(self.established) << 2
            | u64::from(self.client_ws.is_some()) << 3;
        [
            u64::from(self.cookie) | u64::from(self.client_isn) << 32,
            u64::from(self.client_tsval) | u64::from(self.our_tsval) << 32,
            u64::from(self.mapping.seq) | u64::from(self.mapping.ts) << 32,
            u64::from(self.window)
                | u64::from(self.mss) << 16
                | u64::from(self.client_ws.unwrap_or(0)) << 32
                | u64::from(self.mapping.backend_scale) << 40
                | u64::from(self.mapping.client_scale) << 48
                | flags << 56
                | u64::from(self.syns.min(15)) << 60,
        ]
    }

    fn unpack(v: [u64; 4]) -> SynProxied {
        let flags = (v[3] >> 56) & 0x0f;
        SynProxied {
            cookie: v[0] as u32,
            client_isn: (v[0] >> 32) as u32,
            client_tsval: v[1] as u32,
            our_tsval: (v[1] >> 32) as u32,
            mapping: Mapping {
                seq: v[2] as u32,
                ts: (v[2] >> 32) as u32,
                backend_scale: (v[3] >> 40) as u8,
                client_scale: (v[3] >> 48) as u8,
            },
            window: v[3] as u16,
            mss: (v[3] >> 16) as u16,
            client_ws: (flags & 8 != 0).then_some((v[3] >> 32) as u8),
            sack: flags & 1 != 0,
            timestamps: flags & 2 != 0,
            established: flags & 4 != 0,
            syns: (v[3] >> 60) as u8,
        }
    }
}

/// What the backend's answer to Sluice's SYN comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Its SYN+ACK: send `Emit` (the ACK that completes its handshake), then the held packets.
    Established(Emit),
    /// A reset: send `Emit` (a reset) to the client; the session ends.
    Refused(Emit),
    /// Anything else while the handshake is under way: dropped.
    Ignored,
}

/// The SYN proxy's state of a worker's sessions.
#[derive(Clone)]
pub struct SynProxiedSessions {
    by_slot: Vec<[u64; 4]>,
    /// SYNs to backends in flight, resent until answered.
    retries: Retries,
}

impl SynProxiedSessions {
    pub fn new(capacity: u32) -> SynProxiedSessions {
        // Zero pages: backed only where a SYN-proxied session writes.
        SynProxiedSessions { by_slot: vec![[0u64; 4]; capacity as usize], retries: Retries::default() }
    }

    pub fn get(&self, id: SessionId) -> SynProxied {
        SynProxied::unpack(self.by_slot[id.get() as usize])
    }

    fn set(&mut self, id: SessionId, p: SynProxied) {
        self.by_slot[id.get() as usize] = p.pack();
    }

    /// A session opened by a valid cookie: its state, and the SYN to send to the backend (by
    /// `hop`).
    pub fn open(&mut self, sessions: &mut SessionTable, id: SessionId, p: SynProxied, hop: Hop, now_ms: u64) -> Emit {
        let s = sessions.get_mut(id);
        s.extras |= EXTRA_SYNPROXY;
        let s = *s;
        let p = SynProxied { syns: 1, ..p };
        self.set(id, p);
        self.retries.add(id, &s, now_ms + FIRST_RESEND_MS);
        syn_emit(&s, &p, hop)
    }

    /// A backend's packet while the handshake is under way (`ip`, not rewritten).
    pub fn answer(&mut self, id: SessionId, s: &Session, ip: &[u8]) -> Answered {
        let ihl = ipv4::header_len(ip);
        let Some(t) = ip.get(ihl..ihl + 20) else { return Answered::Ignored };
        let (flags, seq, ack) = (t[tcp::offset::FLAGS], read_u32(t, tcp::offset::SEQ), read_u32(t, tcp::offset::ACK));
        let mut p = self.get(id);
        if flags & tcp_flags::RST != 0 {
            return Answered::Refused(reset_to_client(s, &p));
        }
        if flags & (tcp_flags::SYN | tcp_flags::ACK) != tcp_flags::SYN | tcp_flags::ACK
            || ack != p.client_isn.wrapping_add(1)
        {
            return Answered::Ignored;
        }
        let Ok(offer) = syn::offer(ip) else { return Answered::Ignored };
        let backend_ts = syn::timestamp(ip);
        p.mapping.seq = p.cookie.wrapping_sub(seq);
        p.mapping.ts = backend_ts.map_or(0, |(val, _)| p.our_tsval.wrapping_sub(val));
        p.mapping.backend_scale = if p.client_ws.is_some() { offer.window_scale.unwrap_or(0) } else { 0 };
        p.mapping.client_scale = if p.client_ws.is_some() { p.mapping.client_scale } else { 0 };
        p.established = true;
        self.set(id, p);
        let timestamp = backend_ts.filter(|_| p.timestamps).map(|(val, _)| (p.client_tsval, val));
        Answered::Established(Emit {
            hop: s.hops[0],
            segment: Segment {
                src: (s.local.ip, s.local.port),
                dst: (s.backend.ip, s.backend.port),
                seq: p.client_isn.wrapping_add(1),
                ack: seq.wrapping_add(1),
                flags: Flags::ACK,
                window: p.window,
                options: Options::timestamp(timestamp),
            },
            header: None,
        })
    }

    /// SYNs due again, and resets to clients whose backend never answered, into `out`; the
    /// sessions given up are removed and handed to `ended`. At most once a millisecond, and
    /// only while SYNs are in flight.
    pub fn resend(
        &mut self,
        sessions: &mut SessionTable,
        now_ms: u64,
        out: &mut Vec<Emit>,
        mut ended: impl FnMut(&Session),
    ) {
        let by_slot = &mut self.by_slot;
        self.retries.scan(sessions, EXTRA_SYNPROXY, now_ms, |sessions, id, s, due| {
            let mut p = SynProxied::unpack(by_slot[id.get() as usize]);
            if p.established {
                return Due::Done;
            }
            if !due {
                return Due::Wait;
            }
            if p.syns >= MAX_SYNS {
                out.push(reset_to_client(&s, &p));
                ended(&sessions.remove(id));
                return Due::Done;
            }
            out.push(syn_emit(&s, &p, s.hops[0]));
            p.syns += 1;
            by_slot[id.get() as usize] = p.pack();
            Due::Again(FIRST_RESEND_MS << (p.syns - 1))
        });
    }
}

/// The SYN to the backend of session `s`: the client's initial sequence number and options.
fn syn_emit(s: &Session, p: &SynProxied, hop: Hop) -> Emit {
    let timestamp = p.timestamps.then_some((p.client_tsval, 0));
    Emit {
        hop,
        segment: Segment {
            src: (s.local.ip, s.local.port),
            dst: (s.backend.ip, s.backend.port),
            seq: p.client_isn,
            ack: 0,
            flags: Flags::SYN,
            window: 0xffff,
            options: Options::syn(p.mss, p.client_ws, p.sack, timestamp),
        },
        header: None,
    }
}

/// A reset to the client of a session whose backend refused or never answered: at the
/// sequence number the client expects (the cookie + 1).
fn reset_to_client(s: &Session, p: &SynProxied) -> Emit {
    Emit {
        hop: s.hops[1],
        segment: Segment {
            src: (s.vip.ip, s.vip.port),
            dst: (s.client.ip, s.client.port),
            seq: p.cookie.wrapping_add(1),
            ack: 0,
            flags: Flags::RST,
            window: 0,
            options: Options::default(),
        },
        header: None,
    }
}

/// The state of a session a valid cookie opens, from the client's ACK (`ip`) and what the
/// cookie and its timestamp echo say of the SYN.
pub fn from_ack(ip: &[u8], cookie: u32, mss: u16, echoed: Option<SynOptions>) -> Option<SynProxied> {
    let ihl = ipv4::header_len(ip);
    let t = ip.get(ihl..ihl + 20)?;
    let ts = syn::timestamp(ip);
    let options = echoed.unwrap_or_default();
    Some(SynProxied {
        // The scale offered the client, until the backend's is known.
        mapping: Mapping { client_scale: options.offered_scale, ..Mapping::default() },
        cookie,
        client_isn: read_u32(t, tcp::offset::SEQ).wrapping_sub(1),
        client_tsval: ts.map_or(0, |(val, _)| val),
        our_tsval: ts.map_or(0, |(_, ecr)| ecr),
        window: read_u16(t, tcp::offset::WINDOW),
        mss,
        client_ws: options.window_scale,
        sack: options.sack,
        timestamps: ts.is_some() && echoed.is_some(),
        established: false,
        syns: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_packs_into_thirty_two_bytes_and_back() {
        let p = SynProxied {
            cookie: 0xdead_beef,
            client_isn: 0xffff_fff0,
            client_tsval: 7,
            our_tsval: 0x8000_0040,
            mapping: Mapping { seq: 0x1234_5678, ts: 0x9abc_def0, backend_scale: 9, client_scale: 7 },
            window: 64240,
            mss: 1460,
            client_ws: Some(7),
            sack: true,
            timestamps: true,
            established: true,
            syns: 3,
        };
        assert_eq!(SynProxied::unpack(p.pack()), p);
        assert_eq!(SynProxied::unpack([0; 4]), SynProxied::default());
        let none = SynProxied { client_ws: None, ..p };
        assert_eq!(SynProxied::unpack(none.pack()), none);
    }
}
