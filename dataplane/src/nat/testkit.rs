//! Test helpers: packet builders (always with checksums computed in full) and the addresses of
//! a FULLNAT session, so that every rewrite can be compared byte for byte with a packet built
//! from scratch with the expected fields.

use std::net::Ipv4Addr;

use crate::wire::ipv4::protocol;
use crate::wire::{checksum, icmp, ipv4, tcp, udp};

pub type Endpoint = (Ipv4Addr, u16);

/// The four endpoints of one FULLNAT session.
pub const CLIENT: Endpoint = (Ipv4Addr::new(198, 51, 100, 7), 40123);
pub const VIP: Endpoint = (Ipv4Addr::new(203, 0, 113, 10), 80);
/// Our local address and the local port allocated to the session.
pub const LOCAL: Endpoint = (Ipv4Addr::new(10, 0, 0, 100), 5001);
pub const BACKEND: Endpoint = (Ipv4Addr::new(10, 0, 1, 20), 8080);
/// A router that reports errors.
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

/// Record route with room for two addresses, then end of options: 12 bytes.
pub const IP_OPTIONS: [u8; 12] = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// An IPv4 packet around `l4` (already complete, checksum included), with a correct header.
pub fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let header_len = ipv4::MIN_HEADER_LEN + options.len();
    let mut b = vec![0u8; header_len + l4.len()];
    ipv4::Repr { src, dst, protocol: proto, ttl, payload_len: l4.len() }.emit_with_options(&mut b, options);
    b[header_len..].copy_from_slice(l4);
    b
}

pub fn tcp_packet(src: Endpoint, dst: Endpoint, ttl: u8, flags: tcp::Flags, payload: &[u8], options: &[u8]) -> Vec<u8> {
    let repr = tcp::Repr {
        src_port: src.1,
        dst_port: dst.1,
        seq: 0x1122_3344,
        ack: 0x5566_7788,
        flags,
        window: 29200,
        options: &[2, 4, 0x05, 0xb4],
        payload,
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut l4, src.0, dst.0);
    ip_packet(src.0, dst.0, protocol::TCP, ttl, options, &l4)
}

pub fn udp_packet(
    src: Endpoint,
    dst: Endpoint,
    ttl: u8,
    payload: &[u8],
    with_checksum: bool,
    options: &[u8],
) -> Vec<u8> {
    let repr = udp::Repr { src_port: src.1, dst_port: dst.1, payload };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut l4, src.0, dst.0, with_checksum);
    ip_packet(src.0, dst.0, protocol::UDP, ttl, options, &l4)
}

pub fn icmp_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, options: &[u8], repr: icmp::Repr) -> Vec<u8> {
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut l4);
    ip_packet(src, dst, protocol::ICMP, ttl, options, &l4)
}

pub fn echo_request_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, ident: u16, data: &[u8]) -> Vec<u8> {
    icmp_packet(src, dst, ttl, &[], icmp::Repr::EchoRequest { ident, seq: 3, data })
}

pub fn echo_reply_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, ident: u16, data: &[u8]) -> Vec<u8> {
    icmp_packet(src, dst, ttl, &[], icmp::Repr::EchoReply { ident, seq: 3, data })
}

/// The IP header checksum and the L4 checksum (pseudo header included) of `ip` are exactly
/// what a full recomputation gives; for an ICMP error, the quoted IP header's too.
pub fn assert_checksums_exact(ip: &[u8]) {
    let p = ipv4::Packet::new_checked(ip).expect("a valid IPv4 packet");
    assert_eq!(p.checksum(), checksum::ipv4_header(p.header()), "IP header checksum");
    let (src, dst, l4) = (p.src(), p.dst(), p.payload());
    let len = l4.len() as u16;
    match p.protocol() {
        protocol::TCP => {
            let mut copy = l4.to_vec();
            copy[16..18].fill(0);
            let full = checksum::compute(checksum::pseudo_header(src, dst, protocol::TCP, len), &copy);
            assert_eq!(tcp::Packet::new_checked(l4).unwrap().checksum(), full, "TCP checksum");
        }
        protocol::UDP => {
            let u = udp::Packet::new_checked(l4).unwrap();
            if u.checksum() != 0 {
                let mut copy = l4[..u.len() as usize].to_vec();
                copy[6..8].fill(0);
                let full = checksum::compute(checksum::pseudo_header(src, dst, protocol::UDP, u.len()), &copy);
                assert_eq!(u.checksum(), checksum::udp_on_wire(full), "UDP checksum");
            }
        }
        protocol::ICMP => {
            let mut copy = l4.to_vec();
            copy[2..4].fill(0);
            assert_eq!(icmp::Packet::new_checked(l4).unwrap().checksum(), checksum::compute(0, &copy), "ICMP checksum");
            let m = icmp::Packet::new_checked(l4).unwrap();
            if let Some(quoted) = m.quoted() {
                let header_len = ((quoted[0] & 0x0f) as usize) * 4;
                let stored = u16::from_be_bytes([quoted[10], quoted[11]]);
                assert_eq!(stored, checksum::ipv4_header(&quoted[..header_len]), "quoted IP header checksum");
            }
        }
        _ => {}
    }
}

/// A small deterministic generator for test inputs (xorshift64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    pub fn endpoint(&mut self) -> Endpoint {
        (Ipv4Addr::from(self.next() as u32), self.next() as u16)
    }
}
