//! ICMP errors Sluice sends as any router would: time exceeded for a packet whose TTL runs out
//! here, fragmentation needed for one that would grow past the link's MTU. Not on the fast path
//! (the caller rate-limits them), so they are built with the `Repr`s and full checksums.

use std::net::Ipv4Addr;

use crate::wire::icmp::{self, msg_type};
use crate::wire::ipv4::{self, protocol};

use super::Refusal;

/// Builds an ICMP time exceeded (type 11 code 0) from `our_addr` to the offending packet's
/// source into `out`, quoting the offending IP header and up to 8 bytes of its payload
/// (RFC 792; RFC 1812 4.3.2.3 allows more, this keeps errors small). TTL 64, TOS 0xc0
/// (precedence "internetwork control", RFC 1812 4.3.2.5). Returns the length of the IP packet
/// written, at most 96 bytes, no Ethernet header.
///
/// Refuses (`IcmpErrorSuppressed`) when RFC 1122 3.2.2 / RFC 1812 4.3.2.7 forbid an error:
/// the packet is an ICMP error (or an unknown ICMP type), or its source is not a unicast host
/// address, or its destination is broadcast or multicast. Non-first fragments: `Fragment`.
/// Rate limiting the errors is the caller's business.
pub fn time_exceeded(offending_ip: &[u8], our_addr: Ipv4Addr, out: &mut [u8]) -> Result<usize, Refusal> {
    error(offending_ip, our_addr, out, |quoted| icmp::Repr::TimeExceeded { code: icmp::exceeded::TTL, quoted })
}

/// As `time_exceeded`, an ICMP destination unreachable, fragmentation needed and DF set (type 3
/// code 4) with next-hop MTU `mtu` (RFC 1191), from `our_addr`.
pub fn frag_needed(offending_ip: &[u8], our_addr: Ipv4Addr, mtu: u16, out: &mut [u8]) -> Result<usize, Refusal> {
    error(offending_ip, our_addr, out, |quoted| icmp::Repr::DestUnreachable {
        code: icmp::unreachable::FRAG_NEEDED,
        next_hop_mtu: mtu,
        quoted,
    })
}

fn error<'a>(
    offending_ip: &'a [u8],
    our_addr: Ipv4Addr,
    out: &mut [u8],
    message: impl FnOnce(&'a [u8]) -> icmp::Repr<'a>,
) -> Result<usize, Refusal> {
    const TTL: u8 = 64;
    const TOS_INTERNETWORK_CONTROL: u8 = 0xc0;
    const QUOTED_PAYLOAD: usize = 8;

    let p = ipv4::Packet::new_checked(offending_ip)?;
    if !p.verify_checksum() {
        return Err(Refusal::BadIpChecksum);
    }
    if p.frag_offset() != 0 {
        return Err(Refusal::Fragment);
    }
    if !is_unicast_host(p.src()) || p.dst().is_broadcast() || p.dst().is_multicast() {
        return Err(Refusal::IcmpErrorSuppressed);
    }
    let payload = p.payload();
    if p.protocol() == protocol::ICMP && !payload.first().is_some_and(|&t| is_informational(t)) {
        return Err(Refusal::IcmpErrorSuppressed);
    }

    let quote_len = p.header_len() + payload.len().min(QUOTED_PAYLOAD);
    let message = message(&offending_ip[..quote_len]);
    let total = ipv4::MIN_HEADER_LEN + message.buffer_len();
    if out.len() < total {
        return Err(Refusal::Truncated);
    }
    let header = ipv4::Repr {
        src: our_addr,
        dst: p.src(),
        protocol: protocol::ICMP,
        ttl: TTL,
        payload_len: message.buffer_len(),
    };
    header.emit(out);
    message.emit(&mut out[ipv4::MIN_HEADER_LEN..total]);
    let mut reply = ipv4::Packet::new_checked(&mut out[..total])?;
    reply.set_tos(TOS_INTERNETWORK_CONTROL).fill_checksum();
    Ok(total)
}

/// A source an error may go to: not 0/8, loopback, multicast, reserved (240/4) or broadcast.
fn is_unicast_host(a: Ipv4Addr) -> bool {
    let first = a.octets()[0];
    first != 0 && !a.is_loopback() && !a.is_multicast() && first < 240
}

/// ICMP query messages, which may be answered with an error (RFC 792, RFC 950).
fn is_informational(t: u8) -> bool {
    matches!(t, msg_type::ECHO_REPLY | msg_type::ECHO_REQUEST | 9 | 10 | 13..=18)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{inspect, quoted_tuple, IcmpKind, Tuple};
    use super::*;
    use crate::wire::tcp::Flags;

    fn build(offending: &[u8]) -> Result<Vec<u8>, Refusal> {
        let mut out = [0u8; 576];
        let n = time_exceeded(offending, VIP.0, &mut out)?;
        Ok(out[..n].to_vec())
    }

    #[test]
    fn quotes_header_and_eight_bytes() {
        for options in [&[][..], &IP_OPTIONS[..]] {
            let offending = tcp_packet(CLIENT, VIP, 1, Flags::ACK, b"a payload longer than 8", options);
            assert_eq!(inspect(&offending), Err(Refusal::TtlExpired));
            let b = build(&offending).unwrap();
            let header_len = 20 + options.len();
            assert_eq!(b.len(), 20 + 8 + header_len + 8);
            assert_checksums_exact(&b);

            let i = inspect(&b).unwrap();
            assert_eq!((i.tuple.src, i.tuple.dst, i.ttl, i.icmp), (VIP.0, CLIENT.0, 64, Some(IcmpKind::Error)));
            let p = ipv4::Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.tos(), 0xc0);
            let m = icmp::Packet::new_checked(p.payload()).unwrap();
            assert!(m.verify_checksum());
            assert_eq!((m.msg_type(), m.code()), (msg_type::TIME_EXCEEDED, icmp::exceeded::TTL));
            assert_eq!(&b[24..28], &[0; 4], "unused");
            assert_eq!(m.quoted(), Some(&offending[..header_len + 8]));
            assert_eq!(
                quoted_tuple(&b),
                Some(Tuple { proto: 6, src: CLIENT.0, src_port: CLIENT.1, dst: VIP.0, dst_port: VIP.1 })
            );
        }
    }

    #[test]
    fn frag_needed_names_the_mtu_and_quotes_the_datagram() {
        let offending = udp_packet(CLIENT, VIP, 64, &[7; 1472], true, &[]);
        let mut out = [0u8; 576];
        let n = frag_needed(&offending, VIP.0, 1472, &mut out).unwrap();
        let b = &out[..n];
        assert_eq!(n, 20 + 8 + 20 + 8);
        assert_checksums_exact(b);
        let p = ipv4::Packet::new_checked(b).unwrap();
        assert_eq!((p.src(), p.dst()), (VIP.0, CLIENT.0));
        let m = icmp::Packet::new_checked(p.payload()).unwrap();
        assert_eq!((m.msg_type(), m.code(), m.next_hop_mtu()), (3, icmp::unreachable::FRAG_NEEDED, 1472));
        assert_eq!(
            quoted_tuple(b),
            Some(Tuple { proto: 17, src: CLIENT.0, src_port: CLIENT.1, dst: VIP.0, dst_port: VIP.1 })
        );
    }

    #[test]
    fn short_payloads_are_quoted_whole() {
        let offending = ip_packet(CLIENT.0, VIP.0, 47, 0, &[], &[1, 2, 3]);
        let b = build(&offending).unwrap();
        assert_eq!(b.len(), 20 + 8 + 23);
        assert_eq!(&b[28..], &offending[..]);
        assert_checksums_exact(&b);
        // Ethernet padding after the offending packet is not quoted.
        let mut padded = offending.clone();
        padded.extend_from_slice(&[0xee; 10]);
        assert_eq!(build(&padded).unwrap(), b);
    }

    #[test]
    fn pings_get_errors_icmp_errors_do_not() {
        let ping = echo_request_packet(CLIENT.0, VIP.0, 1, 5, b"x");
        assert!(build(&ping).is_ok());
        let error = icmp_packet(
            ROUTER,
            VIP.0,
            1,
            &[],
            icmp::Repr::TimeExceeded { code: 0, quoted: &tcp_packet(VIP, CLIENT, 1, Flags::ACK, b"", &[])[..28] },
        );
        assert_eq!(build(&error), Err(Refusal::IcmpErrorSuppressed));
        let unknown = icmp_packet(CLIENT.0, VIP.0, 1, &[], icmp::Repr::EchoRequest { ident: 0, seq: 0, data: b"" });
        let mut unknown = unknown;
        unknown[20] = 42;
        assert_eq!(build(&unknown), Err(Refusal::IcmpErrorSuppressed));
        let empty_icmp = ip_packet(CLIENT.0, VIP.0, protocol::ICMP, 1, &[], &[]);
        assert_eq!(build(&empty_icmp), Err(Refusal::IcmpErrorSuppressed));
    }

    #[test]
    fn no_errors_to_or_about_non_unicast() {
        for src in ["0.0.0.0", "127.0.0.1", "224.0.0.5", "240.0.0.1", "255.255.255.255"] {
            let src = (src.parse().unwrap(), 1000);
            assert_eq!(build(&udp_packet(src, VIP, 1, b"", true, &[])), Err(Refusal::IcmpErrorSuppressed), "{src:?}");
        }
        for dst in ["239.1.2.3", "255.255.255.255"] {
            let dst = (dst.parse().unwrap(), 1000);
            assert_eq!(
                build(&udp_packet(CLIENT, dst, 1, b"", true, &[])),
                Err(Refusal::IcmpErrorSuppressed),
                "{dst:?}"
            );
        }
    }

    #[test]
    fn refusals() {
        let good = udp_packet(CLIENT, VIP, 1, b"hello", true, &[]);
        assert_eq!(build(&good[..10]), Err(Refusal::Truncated));
        let mut b = good.clone();
        b[12] ^= 1;
        assert_eq!(build(&b), Err(Refusal::BadIpChecksum));
        let mut b = good.clone();
        b[7] = 1; // offset 8
        ipv4::Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
        assert_eq!(build(&b), Err(Refusal::Fragment));
        let mut b = good.clone();
        b[6] = 0x20; // first fragment, more to come: answered
        ipv4::Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
        assert!(build(&b).is_ok());
        let mut small = [0u8; 55];
        assert_eq!(time_exceeded(&good, VIP.0, &mut small), Err(Refusal::Truncated));
        assert_eq!(time_exceeded(&good, VIP.0, &mut [0u8; 56]), Ok(56));
    }
}
