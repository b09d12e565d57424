//! The gate of the FULLNAT path: is this IPv4 packet one we can translate, and what is its
//! 5-tuple? Checks in the order a router would (header, checksum, fragments), then the L4
//! header, and only last the TTL: `TtlExpired` thus means "a valid packet whose TTL ran out",
//! the one case where the caller may answer with `time_exceeded`.
//!
//! L4 checksums are not verified here: the rewrite updates them incrementally, so a segment
//! that arrived corrupted leaves still corrupted and the end host drops it.

use crate::wire::icmp::msg_type;
use crate::wire::ipv4::protocol;
use crate::wire::{icmp, ipv4, tcp, udp};

use super::{IcmpKind, Inspected, Refusal, Tuple};

/// Validates the IPv4 packet at the start of `ip` (Ethernet padding may follow its total
/// length) and returns its tuple. Never panics, never allocates.
pub fn inspect(ip: &[u8]) -> Result<Inspected, Refusal> {
    let p = ipv4::Packet::new_checked(ip)?;
    if !p.verify_checksum() {
        return Err(Refusal::BadIpChecksum);
    }
    if p.is_fragment() {
        return Err(Refusal::Fragment);
    }
    let (proto, src, dst, l4) = (p.protocol(), p.src(), p.dst(), p.payload());
    let mut tcp_flags = 0;
    let mut icmp_kind = None;
    let (src_port, dst_port) = match proto {
        protocol::TCP => {
            let t = tcp::Packet::new_checked(l4)?;
            tcp_flags = t.flags().bits();
            (t.src_port(), t.dst_port())
        }
        protocol::UDP => {
            let u = udp::Packet::new_checked(l4)?;
            (u.src_port(), u.dst_port())
        }
        protocol::ICMP => {
            let m = icmp::Packet::new_checked(l4)?;
            let (kind, ports) = match m.msg_type() {
                msg_type::ECHO_REQUEST => (IcmpKind::EchoRequest, (m.echo_ident(), 0)),
                msg_type::ECHO_REPLY => (IcmpKind::EchoReply, (0, m.echo_ident())),
                t if msg_type::is_relayed_error(t) => (IcmpKind::Error, (0, 0)),
                _ => (IcmpKind::Other, (0, 0)),
            };
            icmp_kind = Some(kind);
            ports
        }
        _ => return Err(Refusal::UnsupportedProtocol),
    };
    if p.ttl() <= 1 {
        return Err(Refusal::TtlExpired);
    }
    Ok(Inspected {
        tuple: Tuple { proto, src, src_port, dst, dst_port },
        header_len: p.header_len(),
        total_len: p.total_len(),
        ttl: p.ttl(),
        tcp_flags,
        icmp: icmp_kind,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::wire::icmp::unreachable;
    use crate::wire::tcp::Flags;

    fn refix_ip_checksum(b: &mut [u8]) {
        ipv4::Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
    }

    #[test]
    fn tcp_tuple_flags_and_padding() {
        let mut b = tcp_packet(CLIENT, VIP, 64, Flags::SYN, b"", &[]);
        b.extend_from_slice(&[0; 6]); // Ethernet padding
        let i = inspect(&b).unwrap();
        assert_eq!(i.tuple, Tuple { proto: 6, src: CLIENT.0, src_port: CLIENT.1, dst: VIP.0, dst_port: VIP.1 });
        assert_eq!((i.header_len, i.ttl, i.tcp_flags, i.icmp), (20, 64, Flags::SYN.bits(), None));
    }

    #[test]
    fn udp_with_ip_options() {
        let b = udp_packet(BACKEND, LOCAL, 9, b"dns", true, &IP_OPTIONS);
        let i = inspect(&b).unwrap();
        assert_eq!(i.tuple, Tuple { proto: 17, src: BACKEND.0, src_port: BACKEND.1, dst: LOCAL.0, dst_port: LOCAL.1 });
        assert_eq!((i.header_len, i.ttl, i.tcp_flags), (32, 9, 0));
    }

    #[test]
    fn icmp_kinds_and_echo_ports() {
        let req = inspect(&echo_request_packet(CLIENT.0, VIP.0, 64, 0x4242, b"ping")).unwrap();
        assert_eq!(req.icmp, Some(IcmpKind::EchoRequest));
        assert_eq!((req.tuple.src_port, req.tuple.dst_port), (0x4242, 0));
        let rep = inspect(&echo_reply_packet(VIP.0, CLIENT.0, 64, 0x4242, b"ping")).unwrap();
        assert_eq!(rep.icmp, Some(IcmpKind::EchoReply));
        assert_eq!(rep.tuple, req.tuple.reversed(), "a reply's tuple reverses its request's");

        let quoted = udp_packet(LOCAL, BACKEND, 63, b"x", true, &[]);
        let err = icmp_packet(
            BACKEND.0,
            LOCAL.0,
            64,
            &[],
            icmp::Repr::DestUnreachable { code: unreachable::PORT, next_hop_mtu: 0, quoted: &quoted },
        );
        let e = inspect(&err).unwrap();
        assert_eq!(e.icmp, Some(IcmpKind::Error));
        assert_eq!((e.tuple.proto, e.tuple.src_port, e.tuple.dst_port), (1, 0, 0));

        let mut other = echo_request_packet(CLIENT.0, VIP.0, 64, 1, b"");
        other[20] = 13; // timestamp request
        assert_eq!(inspect(&other).unwrap().icmp, Some(IcmpKind::Other));
    }

    #[test]
    fn refusals() {
        let good = tcp_packet(CLIENT, VIP, 64, Flags::ACK, b"data", &[]);
        assert_eq!(inspect(&good[..19]), Err(Refusal::Truncated));
        assert_eq!(inspect(&good[..good.len() - 1]), Err(Refusal::Truncated), "total length beyond buffer");

        let mut b = good.clone();
        b[0] = 0x65;
        assert_eq!(inspect(&b), Err(Refusal::BadHeader), "version 6");
        let mut b = good.clone();
        b[0] = 0x44;
        assert_eq!(inspect(&b), Err(Refusal::BadHeader), "header length 16");

        let mut b = good.clone();
        b[15] ^= 1;
        assert_eq!(inspect(&b), Err(Refusal::BadIpChecksum));

        for frag in [0x2000u16, 0x0001, 0x4001] {
            let mut b = good.clone();
            b[6..8].copy_from_slice(&frag.to_be_bytes());
            refix_ip_checksum(&mut b);
            assert_eq!(inspect(&b), Err(Refusal::Fragment), "flags/offset {frag:#x}");
        }
        let mut b = good.clone();
        b[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
        refix_ip_checksum(&mut b);
        assert!(inspect(&b).is_ok(), "DF alone is fine");

        for ttl in [0, 1] {
            let b = tcp_packet(CLIENT, VIP, ttl, Flags::ACK, b"data", &[]);
            assert_eq!(inspect(&b), Err(Refusal::TtlExpired));
        }
        assert!(inspect(&tcp_packet(CLIENT, VIP, 2, Flags::ACK, b"", &[])).is_ok());

        let b = ip_packet(CLIENT.0, VIP.0, 47, 64, &[], &[0; 8]); // GRE
        assert_eq!(inspect(&b), Err(Refusal::UnsupportedProtocol));
        let b = ip_packet(CLIENT.0, VIP.0, 47, 1, &[], &[0; 8]);
        assert_eq!(inspect(&b), Err(Refusal::UnsupportedProtocol), "protocol before TTL");
    }

    #[test]
    fn l4_length_refusals() {
        // TCP: less than a header; data offset below 5; options beyond the segment.
        let b = ip_packet(CLIENT.0, VIP.0, protocol::TCP, 64, &[], &[0; 19]);
        assert_eq!(inspect(&b), Err(Refusal::Truncated));
        let mut seg = [0u8; 20];
        seg[12] = 0x40;
        assert_eq!(inspect(&ip_packet(CLIENT.0, VIP.0, protocol::TCP, 64, &[], &seg)), Err(Refusal::BadHeader));
        seg[12] = 0x60;
        assert_eq!(inspect(&ip_packet(CLIENT.0, VIP.0, protocol::TCP, 64, &[], &seg)), Err(Refusal::Truncated));

        // UDP: less than a header; length field below 8; length field beyond the IP payload.
        let b = ip_packet(CLIENT.0, VIP.0, protocol::UDP, 64, &[], &[0; 7]);
        assert_eq!(inspect(&b), Err(Refusal::Truncated));
        let mut dgram = [0u8; 12];
        dgram[5] = 7;
        assert_eq!(inspect(&ip_packet(CLIENT.0, VIP.0, protocol::UDP, 64, &[], &dgram)), Err(Refusal::BadHeader));
        dgram[5] = 13;
        assert_eq!(inspect(&ip_packet(CLIENT.0, VIP.0, protocol::UDP, 64, &[], &dgram)), Err(Refusal::Truncated));
        dgram[5] = 12;
        assert!(inspect(&ip_packet(CLIENT.0, VIP.0, protocol::UDP, 64, &[], &dgram)).is_ok());

        // ICMP: less than a header.
        let b = ip_packet(CLIENT.0, VIP.0, protocol::ICMP, 64, &[], &[8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(inspect(&b), Err(Refusal::Truncated));

        // The L4 header is looked for within the IP total length, not in the padding after it.
        let mut b = ip_packet(CLIENT.0, VIP.0, protocol::UDP, 64, &[], &[]);
        b.extend_from_slice(&udp_packet(CLIENT, VIP, 64, b"", true, &[])[20..]);
        assert_eq!(inspect(&b), Err(Refusal::Truncated));
    }
}
