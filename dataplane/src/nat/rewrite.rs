//! The per-packet FULLNAT translation, and the echo reply, in place.
//!
//! Both addresses sit in the IP header and in the TCP/UDP pseudo header, so their change is
//! summed once (`checksum::Delta`) and applied to both checksums; the TTL change goes to the IP
//! checksum only, the port changes to the L4 checksum only. Nothing is summed over the payload.
//!
//! These functions expect a packet `inspect` accepted. They re-check only what they need in
//! order never to panic and never to write a half-translated packet: on any `Err` the packet is
//! unchanged.

use std::net::Ipv4Addr;

use crate::wire::checksum::{self, Delta};
use crate::wire::icmp::msg_type;
use crate::wire::ipv4::{self, protocol};
use crate::wire::{icmp, tcp, udp};

use super::Refusal;

/// Rewrites addresses and ports of a TCP/UDP packet in place and decrements the TTL, updating
/// the IP and L4 checksums incrementally (RFC 1624). A UDP checksum of 0 (none) stays 0.
///
/// ICMP echo is translated too, its identifier standing for the port (see `Tuple`): a request
/// gets `new_src.1` as identifier, a reply `new_dst.1`; the other port is ignored.
#[inline]
pub fn rewrite(ip: &mut [u8], new_src: (Ipv4Addr, u16), new_dst: (Ipv4Addr, u16)) -> Result<(), Refusal> {
    translate(ip, new_src, new_dst, false)
}

/// As `rewrite`, for a NIC that finishes the checksums on transmit: the IP checksum is set to 0
/// and the TCP/UDP checksum field to the sum of the new pseudo header, not complemented (what
/// DPDK's `rte_ipv4_phdr_cksum` gives). The caller sets the mbuf's IPv4, IP-checksum and
/// TCP/UDP-checksum offload flags, with `l3_len` the IP header length, options included.
///
/// The pseudo header's length is the UDP length field for UDP, the IP payload length for TCP.
/// A UDP datagram that had no checksum leaves with one computed by the NIC (RFC 768 allows a
/// forwarder to add one, and it spares a per-packet choice of offload flags).
/// ICMP echo: NICs do not offload the ICMP checksum, so it is updated here incrementally.
#[inline]
pub fn rewrite_for_offload(ip: &mut [u8], new_src: (Ipv4Addr, u16), new_dst: (Ipv4Addr, u16)) -> Result<(), Refusal> {
    translate(ip, new_src, new_dst, true)
}

#[inline(always)]
fn translate(ip: &mut [u8], new_src: (Ipv4Addr, u16), new_dst: (Ipv4Addr, u16), offload: bool) -> Result<(), Refusal> {
    let mut p = ipv4::Packet::new_checked(ip)?;
    if p.is_fragment() {
        return Err(Refusal::Fragment);
    }
    let (ttl, proto) = (p.ttl(), p.protocol());
    if ttl <= 1 {
        return Err(Refusal::TtlExpired);
    }
    let addrs = Delta::new().u32(p.src().into(), new_src.0.into()).u32(p.dst().into(), new_dst.0.into());
    let ip_checksum = p.checksum();

    let l4 = p.payload_mut();
    match proto {
        protocol::TCP => {
            let l4_len = l4.len() as u16; // within an IP total length, so it fits
            let mut t = tcp::Packet::new_checked(l4)?;
            let value = if offload {
                checksum::pseudo_header(new_src.0, new_dst.0, protocol::TCP, l4_len)
            } else {
                addrs.u16(t.src_port(), new_src.1).u16(t.dst_port(), new_dst.1).apply(t.checksum())
            };
            t.set_src_port(new_src.1).set_dst_port(new_dst.1).set_checksum(value);
        }
        protocol::UDP => {
            let mut u = udp::Packet::new_checked(l4)?;
            let value = if offload {
                checksum::pseudo_header(new_src.0, new_dst.0, protocol::UDP, u.len())
            } else {
                addrs.u16(u.src_port(), new_src.1).u16(u.dst_port(), new_dst.1).apply_udp(u.checksum())
            };
            u.set_src_port(new_src.1).set_dst_port(new_dst.1).set_checksum(value);
        }
        protocol::ICMP => {
            let mut m = icmp::Packet::new_checked(l4)?;
            let ident = match m.msg_type() {
                msg_type::ECHO_REQUEST => new_src.1,
                msg_type::ECHO_REPLY => new_dst.1,
                _ => return Err(Refusal::UnsupportedProtocol),
            };
            // No pseudo header: only the identifier counts.
            let value = checksum::update_u16(m.checksum(), m.echo_ident(), ident);
            m.set_echo_ident(ident).set_checksum(value);
        }
        _ => return Err(Refusal::UnsupportedProtocol),
    }

    let ip_value = if offload {
        0
    } else {
        // TTL shares a 16-bit word with the protocol.
        let old_word = u16::from_be_bytes([ttl, proto]);
        addrs.u16(old_word, old_word - 0x0100).apply(ip_checksum)
    };
    p.set_src(new_src.0).set_dst(new_dst.0).set_ttl(ttl - 1).set_checksum(ip_value);
    Ok(())
}

/// Turns an ICMP echo request to one of our addresses into the echo reply in place: addresses
/// swapped, type 0, TTL 64, checksums updated incrementally. IP options are kept as they came.
/// Any TTL is accepted (the packet is for us, not forwarded). Refuses anything but an
/// unfragmented echo request (`UnsupportedProtocol` for other ICMP types and protocols).
pub fn echo_reply(ip: &mut [u8]) -> Result<(), Refusal> {
    const REPLY_TTL: u8 = 64;
    let mut p = ipv4::Packet::new_checked(ip)?;
    if p.is_fragment() {
        return Err(Refusal::Fragment);
    }
    if p.protocol() != protocol::ICMP {
        return Err(Refusal::UnsupportedProtocol);
    }
    let (src, dst, ttl, ip_checksum) = (p.src(), p.dst(), p.ttl(), p.checksum());

    let mut m = icmp::Packet::new_checked(p.payload_mut())?;
    if m.msg_type() != msg_type::ECHO_REQUEST {
        return Err(Refusal::UnsupportedProtocol);
    }
    let code = m.code();
    let value = checksum::update_u16(
        m.checksum(),
        u16::from_be_bytes([msg_type::ECHO_REQUEST, code]),
        u16::from_be_bytes([msg_type::ECHO_REPLY, code]),
    );
    m.set_msg_type(msg_type::ECHO_REPLY).set_checksum(value);

    // Swapping the addresses leaves the header sum as it was; only the TTL changes it.
    let value = checksum::update_u16(
        ip_checksum,
        u16::from_be_bytes([ttl, protocol::ICMP]),
        u16::from_be_bytes([REPLY_TTL, protocol::ICMP]),
    );
    p.set_src(dst).set_dst(src).set_ttl(REPLY_TTL).set_checksum(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{inspect, Tuple};
    use super::*;
    use crate::wire::tcp::Flags;

    const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n!"; // odd length

    #[test]
    fn tcp_client_to_backend_and_back() {
        for options in [&[][..], &IP_OPTIONS[..]] {
            let mut b = tcp_packet(CLIENT, VIP, 64, Flags::PSH | Flags::ACK, PAYLOAD, options);
            b.extend_from_slice(&[0xee; 4]); // Ethernet padding, left alone
            rewrite(&mut b, LOCAL, BACKEND).unwrap();
            assert_checksums_exact(&b);
            let mut expected = tcp_packet(LOCAL, BACKEND, 63, Flags::PSH | Flags::ACK, PAYLOAD, options);
            expected.extend_from_slice(&[0xee; 4]);
            assert_eq!(b, expected);

            let mut b = tcp_packet(BACKEND, LOCAL, 64, Flags::SYN | Flags::ACK, b"", options);
            rewrite(&mut b, VIP, CLIENT).unwrap();
            assert_checksums_exact(&b);
            assert_eq!(b, tcp_packet(VIP, CLIENT, 63, Flags::SYN | Flags::ACK, b"", options));
        }
    }

    #[test]
    fn udp_both_directions_with_and_without_checksum() {
        for with_checksum in [true, false] {
            let mut b = udp_packet(CLIENT, VIP, 30, PAYLOAD, with_checksum, &IP_OPTIONS);
            rewrite(&mut b, LOCAL, BACKEND).unwrap();
            assert_checksums_exact(&b);
            assert_eq!(b, udp_packet(LOCAL, BACKEND, 29, PAYLOAD, with_checksum, &IP_OPTIONS));

            let mut b = udp_packet(BACKEND, LOCAL, 64, b"answer", with_checksum, &[]);
            rewrite(&mut b, VIP, CLIENT).unwrap();
            assert_checksums_exact(&b);
            assert_eq!(b, udp_packet(VIP, CLIENT, 63, b"answer", with_checksum, &[]));
            if !with_checksum {
                assert_eq!(&b[26..28], &[0, 0], "no checksum stays no checksum");
            }
        }
    }

    /// A payload word chosen so that the packet, once translated, sums to all ones: its
    /// computed checksum is 0.
    fn payload_summing_to_zero_after(src: Endpoint, dst: Endpoint, proto: u8) -> Vec<u8> {
        let mut payload = vec![0x5a, 0x17, 0, 0, 0x33];
        let probe = match proto {
            protocol::UDP => udp_packet(src, dst, 63, &payload, false, &[]),
            _ => tcp_packet(src, dst, 63, Flags::ACK, &payload, &[]),
        };
        let l4 = &probe[20..];
        let mut zeroed = l4.to_vec();
        let at = if proto == protocol::UDP { 6 } else { 16 };
        zeroed[at..at + 2].fill(0);
        let partial =
            checksum::add(checksum::pseudo_header(src.0, dst.0, proto, l4.len() as u16), checksum::sum(&zeroed));
        // The word at payload offset 2 is zero: setting it to !partial brings the sum to ffff.
        payload[2..4].copy_from_slice(&(!partial).to_be_bytes());
        payload
    }

    #[test]
    fn udp_result_of_zero_goes_out_as_ffff() {
        let payload = payload_summing_to_zero_after(LOCAL, BACKEND, protocol::UDP);
        let mut b = udp_packet(CLIENT, VIP, 64, &payload, true, &[]);
        assert_ne!(&b[26..28], &[0xff, 0xff]);
        rewrite(&mut b, LOCAL, BACKEND).unwrap();
        assert_eq!(&b[26..28], &[0xff, 0xff]);
        assert_checksums_exact(&b);
        assert_eq!(b, udp_packet(LOCAL, BACKEND, 63, &payload, true, &[]));
    }

    #[test]
    fn tcp_result_of_zero_stays_zero() {
        let payload = payload_summing_to_zero_after(VIP, CLIENT, protocol::TCP);
        let mut b = tcp_packet(BACKEND, LOCAL, 64, Flags::ACK, &payload, &[]);
        rewrite(&mut b, VIP, CLIENT).unwrap();
        assert_eq!(&b[36..38], &[0, 0], "TCP has no 'none' value: 0 is sent as computed");
        assert_checksums_exact(&b);
    }

    #[test]
    fn icmp_echo_through_a_session() {
        // Client pings the VIP with identifier 0x4242; the session maps it to LOCAL port 5001.
        let mut b = echo_request_packet(CLIENT.0, VIP.0, 64, 0x4242, b"abc");
        rewrite(&mut b, LOCAL, (BACKEND.0, 0)).unwrap();
        assert_checksums_exact(&b);
        assert_eq!(b, echo_request_packet(LOCAL.0, BACKEND.0, 63, LOCAL.1, b"abc"));

        let mut b = echo_reply_packet(BACKEND.0, LOCAL.0, 64, LOCAL.1, b"abc");
        let seen = inspect(&b).unwrap().tuple;
        assert_eq!(seen, Tuple { proto: 1, src: BACKEND.0, src_port: 0, dst: LOCAL.0, dst_port: LOCAL.1 });
        rewrite(&mut b, (VIP.0, 0), (CLIENT.0, 0x4242)).unwrap();
        assert_checksums_exact(&b);
        assert_eq!(b, echo_reply_packet(VIP.0, CLIENT.0, 63, 0x4242, b"abc"));
    }

    /// What the NIC does with the offload flags set: the IP checksum in full, and the L4
    /// checksum as the complement of the sum over the segment, whose checksum field holds the
    /// pseudo-header sum.
    fn nic_finishes(b: &mut [u8]) {
        let mut p = ipv4::Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.checksum(), 0);
        p.fill_checksum();
        let proto = p.protocol();
        let l4 = p.payload_mut();
        let (at, end) = match proto {
            protocol::TCP => (16, l4.len()),
            protocol::UDP => (6, u16::from_be_bytes([l4[4], l4[5]]) as usize),
            _ => return,
        };
        let mut value = !checksum::sum(&l4[..end]);
        if proto == protocol::UDP {
            value = checksum::udp_on_wire(value);
        }
        l4[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    #[test]
    fn offload_leaves_the_right_seeds() {
        let mut b = tcp_packet(CLIENT, VIP, 64, Flags::ACK, PAYLOAD, &IP_OPTIONS);
        rewrite_for_offload(&mut b, LOCAL, BACKEND).unwrap();
        let seed = checksum::pseudo_header(LOCAL.0, BACKEND.0, protocol::TCP, (b.len() - 32) as u16);
        assert_eq!(&b[32 + 16..32 + 18], &seed.to_be_bytes());
        nic_finishes(&mut b);
        assert_eq!(b, tcp_packet(LOCAL, BACKEND, 63, Flags::ACK, PAYLOAD, &IP_OPTIONS));

        for with_checksum in [true, false] {
            let mut b = udp_packet(BACKEND, LOCAL, 64, PAYLOAD, with_checksum, &[]);
            rewrite_for_offload(&mut b, VIP, CLIENT).unwrap();
            nic_finishes(&mut b);
            assert_eq!(b, udp_packet(VIP, CLIENT, 63, PAYLOAD, true, &[]));
        }

        let mut b = echo_request_packet(CLIENT.0, VIP.0, 64, 7, b"abc");
        rewrite_for_offload(&mut b, LOCAL, (BACKEND.0, 0)).unwrap();
        nic_finishes(&mut b);
        assert_eq!(b, echo_request_packet(LOCAL.0, BACKEND.0, 63, LOCAL.1, b"abc"));
    }

    #[test]
    fn random_sessions_match_packets_built_from_scratch() {
        let mut rng = Rng::new(42);
        for _ in 0..2000 {
            let (from, to, new_from, new_to) = (rng.endpoint(), rng.endpoint(), rng.endpoint(), rng.endpoint());
            let payload_len = rng.below(64);
            let payload = rng.bytes(payload_len);
            let ttl = 2 + rng.below(254) as u8;
            let options: &[u8] = if rng.below(2) == 0 { &[] } else { &IP_OPTIONS };
            let flags = Flags(rng.next() as u8);
            let (mut b, expected) = match rng.below(3) {
                0 => (
                    tcp_packet(from, to, ttl, flags, &payload, options),
                    tcp_packet(new_from, new_to, ttl - 1, flags, &payload, options),
                ),
                1 => (
                    udp_packet(from, to, ttl, &payload, true, options),
                    udp_packet(new_from, new_to, ttl - 1, &payload, true, options),
                ),
                _ => (
                    udp_packet(from, to, ttl, &payload, false, options),
                    udp_packet(new_from, new_to, ttl - 1, &payload, false, options),
                ),
            };
            rewrite(&mut b, new_from, new_to).unwrap();
            assert_checksums_exact(&b);
            assert_eq!(b, expected);
        }
    }

    #[test]
    fn refusals_leave_the_packet_unchanged() {
        let cases: Vec<(Vec<u8>, Refusal)> = vec![
            (tcp_packet(CLIENT, VIP, 1, Flags::ACK, b"", &[]), Refusal::TtlExpired),
            (ip_packet(CLIENT.0, VIP.0, 47, 64, &[], &[0; 8]), Refusal::UnsupportedProtocol),
            (ip_packet(CLIENT.0, VIP.0, protocol::TCP, 64, &[], &[0; 12]), Refusal::Truncated),
            (
                icmp_packet(
                    CLIENT.0,
                    VIP.0,
                    64,
                    &[],
                    crate::wire::icmp::Repr::TimeExceeded { code: 0, quoted: &[0; 28] },
                ),
                Refusal::UnsupportedProtocol,
            ),
            (
                {
                    let mut b = udp_packet(CLIENT, VIP, 64, b"", true, &[]);
                    b[6] = 0x20;
                    b
                },
                Refusal::Fragment,
            ),
        ];
        for (packet, refusal) in cases {
            let mut b = packet.clone();
            assert_eq!(rewrite(&mut b, LOCAL, BACKEND), Err(refusal));
            assert_eq!(rewrite_for_offload(&mut b, LOCAL, BACKEND), Err(refusal));
            assert_eq!(b, packet);
        }
    }

    #[test]
    fn echo_reply_in_place() {
        let mut b = echo_request_packet(CLIENT.0, VIP.0, 1, 0x1234, b"odd");
        echo_reply(&mut b).unwrap();
        assert_checksums_exact(&b);
        assert_eq!(b, echo_reply_packet(VIP.0, CLIENT.0, 64, 0x1234, b"odd"));

        let request = icmp_packet(
            CLIENT.0,
            VIP.0,
            200,
            &IP_OPTIONS,
            icmp::Repr::EchoRequest { ident: 9, seq: 8, data: &[1; 56] },
        );
        let mut b = request.clone();
        echo_reply(&mut b).unwrap();
        assert_checksums_exact(&b);
        assert_eq!(
            b,
            icmp_packet(VIP.0, CLIENT.0, 64, &IP_OPTIONS, icmp::Repr::EchoReply { ident: 9, seq: 8, data: &[1; 56] })
        );

        let mut b = echo_reply_packet(VIP.0, CLIENT.0, 64, 1, b"");
        let before = b.clone();
        assert_eq!(echo_reply(&mut b), Err(Refusal::UnsupportedProtocol), "a reply is not answered");
        assert_eq!(b, before);
        let mut b = udp_packet(CLIENT, VIP, 64, b"", true, &[]);
        assert_eq!(echo_reply(&mut b), Err(Refusal::UnsupportedProtocol));
    }
}
