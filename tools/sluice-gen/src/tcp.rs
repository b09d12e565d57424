//! Synthetic TCP for `--mode tcp`: short connections that a FULLNAT with TCP state tracking sees
//! open, carry data and close, kept by neither end in any table.
//!
//! ```text
//! client                      balancer                      backend side
//! SYN (MSS)            ─────────────────────────────►  SYN-ACK (MSS)
//! ACK+PSH "GET ..."    ◄────── (SYN-ACK) ──────────    
//!                      ─────────────────────────────►  ACK+PSH+FIN "HTTP/1.0 200 ..."
//! FIN+ACK              ◄────── (response) ─────────    
//!                      ─────────────────────────────►  ACK          (connection done)
//! ```
//! Both ends are stateless: every answer is derived from the segment it answers (sequence and
//! acknowledgement numbers), and the client's initial sequence number is its SYN's TSC >> 6,
//! so the response, which acknowledges ISN + 1 + request length, tells when the SYN left:
//! connection latency without a connection table (wraps after 2^38 cycles, ~100 s at 2.7 GHz).

use std::net::{Ipv4Addr, SocketAddrV4};

use dataplane::wire::tcp::{Flags, Repr as TcpRepr};
use dataplane::wire::{ethernet, ipv4, tcp, MacAddr};

use super::reply::{BadReason, Expect};
use super::udp::TTL;

pub const REQUEST: &[u8] = b"GET /sluice-gen HTTP/1.0\r\n\r\n";
pub const RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
/// Maximum segment size 1460, on every SYN and SYN-ACK.
const MSS_OPTION: [u8; 4] = [2, 4, 0x05, 0xb4];
const WINDOW: u16 = 65535;
const ISN_SHIFT: u32 = 6;
const IP_AT: usize = ethernet::HEADER_LEN;
const TCP_AT: usize = IP_AT + ipv4::MIN_HEADER_LEN;
/// Buffer room every frame written here fits in (the largest is the response).
pub const FRAME_ROOM: usize = 128;
const _: () = assert!(TCP_AT + tcp::HEADER_LEN + RESPONSE.len() <= FRAME_ROOM);

/// The client's initial sequence number for a SYN sent at TSC `tsc`.
#[inline]
pub fn isn(tsc: u64) -> u32 {
    (tsc >> ISN_SHIFT) as u32
}

/// Cycles from the SYN with `isn` to TSC `now` (64-cycle resolution).
#[inline]
pub fn elapsed_cycles(isn_sent: u32, now: u64) -> u64 {
    u64::from(isn(now).wrapping_sub(isn_sent)) << ISN_SHIFT
}

/// The backend side's initial sequence number towards a client tuple: any stable value will do.
fn server_isn(peer: Ipv4Addr, port: u16) -> u32 {
    (u32::from(peer) ^ (u32::from(port) << 16)).wrapping_mul(0x9e37_79b1)
}

/// The fields of a received segment that an answer needs.
struct Segment {
    peer_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: Flags,
    payload_len: u32,
    is_response: bool,
}

fn parse(frame: &[u8]) -> Result<Segment, BadReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| BadReason::Malformed)?;
    let ip = ipv4::Packet::new_checked(eth.payload()).map_err(|_| BadReason::Malformed)?;
    if ip.is_fragment() || eth.ethertype() != ethernet::ethertype::IPV4 {
        return Err(BadReason::Malformed);
    }
    if ip.protocol() != ipv4::protocol::TCP {
        return Err(BadReason::WrongProtocol);
    }
    let seg = tcp::Packet::new_checked(ip.payload()).map_err(|_| BadReason::Malformed)?;
    if !ip.verify_checksum() || !seg.verify_checksum(ip.src(), ip.dst()) {
        return Err(BadReason::BadChecksum);
    }
    Ok(Segment {
        peer_mac: eth.source(),
        src: ip.src(),
        dst: ip.dst(),
        sport: seg.src_port(),
        dport: seg.dst_port(),
        seq: seg.seq(),
        ack: seg.ack(),
        flags: seg.flags(),
        payload_len: seg.payload().len() as u32,
        is_response: seg.payload() == RESPONSE,
    })
}

/// An answer to `to`: addresses and ports swapped, the Ethernet destination the sender.
struct Answer<'a> {
    flags: Flags,
    seq: u32,
    ack: u32,
    options: &'a [u8],
    payload: &'a [u8],
}

/// Writes Ethernet + IPv4 + TCP from `src`:`sport` to `dst`:`dport` into `frame` (at least
/// `FRAME_ROOM` bytes), zero-padded to 60 bytes; returns the frame length.
#[allow(clippy::too_many_arguments)]
fn write(
    frame: &mut [u8],
    to: MacAddr,
    from: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    a: Answer,
) -> usize {
    let segment = TcpRepr {
        src_port: sport,
        dst_port: dport,
        seq: a.seq,
        ack: a.ack,
        flags: a.flags,
        window: WINDOW,
        options: a.options,
        payload: a.payload,
    };
    let len = TCP_AT + segment.buffer_len();
    let padded = len.max(super::udp::MIN_FRAME);
    frame[len..padded].fill(0);
    let mut eth = ethernet::Frame::new_checked(&mut frame[..]).expect("room for a header");
    eth.set_destination(to).set_source(from).set_ethertype(ethernet::ethertype::IPV4);
    let ip = ipv4::Repr { src, dst, protocol: ipv4::protocol::TCP, ttl: TTL, payload_len: segment.buffer_len() };
    ip.emit(&mut frame[IP_AT..]);
    segment.emit(&mut frame[TCP_AT..], src, dst);
    padded
}

/// Writes the SYN of client `src`:`sport` to the VIP, sent at TSC `tsc`; returns the length.
pub fn syn(
    frame: &mut [u8],
    client_mac: MacAddr,
    peer_mac: MacAddr,
    src: Ipv4Addr,
    sport: u16,
    vip: SocketAddrV4,
    tsc: u64,
) -> usize {
    let a = Answer { flags: Flags::SYN, seq: isn(tsc), ack: 0, options: &MSS_OPTION, payload: &[] };
    write(frame, peer_mac, client_mac, src, *vip.ip(), sport, vip.port(), a)
}

/// What the client side did with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStep {
    /// A SYN-ACK: the frame now holds ACK + request, `len` bytes.
    Request(usize),
    /// The response with FIN: the frame now holds our FIN-ACK; the connection took `cycles`.
    Completed { len: usize, cycles: u64 },
    /// The backend's ACK of our FIN: nothing to send.
    Closed,
}

/// Handles a segment received by the client side at TSC `now`, rewriting `frame` (its first
/// `len` bytes received, at least `FRAME_ROOM` bytes of room) into the answer if there is one.
pub fn client_step(
    frame: &mut [u8],
    len: usize,
    our_mac: MacAddr,
    expect: &Expect,
    now: u64,
) -> Result<ClientStep, BadReason> {
    let s = parse(&frame[..len])?;
    if s.src != *expect.vip.ip() || s.sport != expect.vip.port() {
        return Err(BadReason::WrongSource);
    }
    match expect.space.flow_of(s.dst, s.dport) {
        Some(flow) if flow < expect.flows => {}
        _ => return Err(BadReason::UnknownDestination),
    }
    let f = s.flags;
    let answer = |frame: &mut [u8], a: Answer| write(frame, s.peer_mac, our_mac, s.dst, s.src, s.dport, s.sport, a);
    if f.contains(Flags::RST) {
        Err(BadReason::Reset)
    } else if f == Flags::SYN | Flags::ACK {
        let a = Answer {
            flags: Flags::ACK | Flags::PSH,
            seq: s.ack,
            ack: s.seq.wrapping_add(1),
            options: &[],
            payload: REQUEST,
        };
        Ok(ClientStep::Request(answer(frame, a)))
    } else if f.contains(Flags::FIN | Flags::ACK) && !f.contains(Flags::SYN) && s.is_response {
        let sent = s.ack.wrapping_sub(1 + REQUEST.len() as u32);
        let a = Answer {
            flags: Flags::FIN | Flags::ACK,
            seq: s.ack,
            ack: s.seq.wrapping_add(s.payload_len + 1),
            options: &[],
            payload: &[],
        };
        let len = answer(frame, a);
        Ok(ClientStep::Completed { len, cycles: elapsed_cycles(sent, now) })
    } else if f == Flags::ACK && s.payload_len == 0 {
        Ok(ClientStep::Closed)
    } else {
        Err(BadReason::UnexpectedSegment)
    }
}

/// `--mode syn`: whether `frame` is a SYN+ACK from the VIP to one of our tuples, answering a
/// SYN of ours; the cycles since that SYN left (its ISN is its TSC).
pub fn syn_ack(frame: &[u8], expect: &Expect, now: u64) -> Result<u64, BadReason> {
    let s = parse(frame)?;
    if s.src != *expect.vip.ip() || s.sport != expect.vip.port() {
        return Err(BadReason::WrongSource);
    }
    match expect.space.flow_of(s.dst, s.dport) {
        Some(flow) if flow < expect.flows => {}
        _ => return Err(BadReason::UnknownDestination),
    }
    if s.flags.contains(Flags::RST) {
        return Err(BadReason::Reset);
    }
    if !s.flags.contains(Flags::SYN | Flags::ACK) {
        return Err(BadReason::UnexpectedSegment);
    }
    Ok(elapsed_cycles(s.ack.wrapping_sub(1), now))
}

/// Handles a segment received by the backend side: a SYN gets a SYN-ACK, a request the
/// response with FIN, a FIN its ACK. Returns the length of the answer written into `frame`
/// (first `len` bytes received, at least `FRAME_ROOM` bytes of room).
pub fn serve(frame: &mut [u8], len: usize, our_mac: MacAddr) -> Result<usize, BadReason> {
    let s = parse(&frame[..len])?;
    let f = s.flags;
    let answer = |frame: &mut [u8], a: Answer| write(frame, s.peer_mac, our_mac, s.dst, s.src, s.dport, s.sport, a);
    if f.contains(Flags::RST) {
        Err(BadReason::Reset)
    } else if f.contains(Flags::SYN) && !f.contains(Flags::ACK) {
        let seq = server_isn(s.src, s.sport);
        let a = Answer {
            flags: Flags::SYN | Flags::ACK,
            seq,
            ack: s.seq.wrapping_add(1),
            options: &MSS_OPTION,
            payload: &[],
        };
        Ok(answer(frame, a))
    } else if f.contains(Flags::FIN) {
        let a = Answer {
            flags: Flags::ACK,
            seq: s.ack,
            ack: s.seq.wrapping_add(s.payload_len + 1),
            options: &[],
            payload: &[],
        };
        Ok(answer(frame, a))
    } else if s.payload_len > 0 && f.contains(Flags::ACK) {
        let flags = Flags::ACK | Flags::PSH | Flags::FIN;
        let a = Answer { flags, seq: s.ack, ack: s.seq.wrapping_add(s.payload_len), options: &[], payload: RESPONSE };
        Ok(answer(frame, a))
    } else {
        Err(BadReason::UnexpectedSegment)
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
