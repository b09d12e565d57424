//! Relaying ICMP errors through FULLNAT. An error about a translated packet quotes that packet
//! as it was sent (addresses and ports of one side), so it must be translated to the other
//! side, the quoted packet included, or the receiving stack will not match it to its socket;
//! path MTU discovery through the balancer depends on it.
//!
//! The quoted packet is the start of the original: its IP header and at least 8 bytes of L4
//! (RFC 792), often more (RFC 1812 allows up to 576 bytes in all), so its total length exceeds
//! what is quoted and is not checked against it.

use std::net::Ipv4Addr;

use crate::wire::checksum::Delta;
use crate::wire::icmp;
use crate::wire::ipv4::{self, protocol};
use crate::wire::{read_u16, write_u16};

use super::{read_u32, write_u32, Refusal, Tuple};

/// Offsets inside a quoted packet.
mod quoted {
    use crate::wire::{ipv4, tcp, udp};
    pub use ipv4::offset::{CHECKSUM, DST, FLAGS_FRAG, PROTOCOL, SRC, VER_IHL};
    /// Bytes of L4 header every error quotes: the ports, and UDP's whole header.
    pub const MIN_L4: usize = 8;
    /// Relative to the L4 header.
    pub const SRC_PORT: usize = tcp::offset::SRC_PORT;
    pub const DST_PORT: usize = tcp::offset::DST_PORT;
    pub const TCP_CHECKSUM: usize = tcp::offset::CHECKSUM;
    pub const UDP_CHECKSUM: usize = udp::offset::CHECKSUM;
}

/// A quoted TCP/UDP packet that passed `check_quote`.
#[derive(Clone, Copy)]
struct Quote {
    header_len: usize,
    proto: u8,
}

/// An IPv4 header of at least 20 bytes plus 8 bytes of TCP or UDP, from the first fragment.
#[inline]
fn check_quote(q: &[u8]) -> Result<Quote, Refusal> {
    if q.len() < ipv4::MIN_HEADER_LEN {
        return Err(Refusal::Truncated);
    }
    if q[quoted::VER_IHL] >> 4 != 4 {
        return Err(Refusal::BadHeader);
    }
    let header_len = ((q[quoted::VER_IHL] & 0x0f) as usize) * 4;
    if header_len < ipv4::MIN_HEADER_LEN {
        return Err(Refusal::BadHeader);
    }
    if q.len() < header_len + quoted::MIN_L4 {
        return Err(Refusal::Truncated);
    }
    if read_u16(q, quoted::FLAGS_FRAG) & 0x1fff != 0 {
        return Err(Refusal::Fragment); // no ports in a later fragment
    }
    match q[quoted::PROTOCOL] {
        proto @ (protocol::TCP | protocol::UDP) => Ok(Quote { header_len, proto }),
        _ => Err(Refusal::UnsupportedProtocol),
    }
}

/// For an ICMP error (types 3, 11, 12): the tuple of the TCP/UDP packet it quotes, as that
/// packet was sent (so reversed, it is the tuple of the session's other direction).
/// `None` for anything else, or if the quote is too short to hold the ports.
pub fn quoted_tuple(ip: &[u8]) -> Option<Tuple> {
    let p = ipv4::Packet::new_checked(ip).ok()?;
    if p.protocol() != protocol::ICMP || p.is_fragment() {
        return None;
    }
    let m = icmp::Packet::new_checked(p.payload()).ok()?;
    if !m.is_relayed_error() {
        return None;
    }
    let q = m.data();
    let quote = check_quote(q).ok()?;
    Some(Tuple {
        proto: quote.proto,
        src: Ipv4Addr::from(read_u32(q, quoted::SRC)),
        src_port: read_u16(q, quote.header_len + quoted::SRC_PORT),
        dst: Ipv4Addr::from(read_u32(q, quoted::DST)),
        dst_port: read_u16(q, quote.header_len + quoted::DST_PORT),
    })
}

/// Translates an ICMP error about a session to the session's other side, in place: outer
/// source and destination replaced and TTL decremented; in the quoted packet, addresses and
/// ports replaced, its IP header checksum updated, and its TCP/UDP checksum updated when the
/// quote holds it (a UDP checksum of 0 stays 0). The frag-needed MTU is left as it is.
///
/// All checksums are updated incrementally, the ICMP one included: unlike a recomputation,
/// that keeps an error message damaged on its way in detectably damaged.
/// On any `Err` the packet is unchanged.
pub fn translate_error(
    ip: &mut [u8],
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    quoted_src: (Ipv4Addr, u16),
    quoted_dst: (Ipv4Addr, u16),
) -> Result<(), Refusal> {
    let mut p = ipv4::Packet::new_checked(ip)?;
    if p.is_fragment() {
        return Err(Refusal::Fragment);
    }
    if p.protocol() != protocol::ICMP {
        return Err(Refusal::UnsupportedProtocol);
    }
    let ttl = p.ttl();
    if ttl <= 1 {
        return Err(Refusal::TtlExpired);
    }
    let outer = Delta::new().u32(p.src().into(), outer_src.into()).u32(p.dst().into(), outer_dst.into());
    let ip_checksum = p.checksum();

    let mut m = icmp::Packet::new_checked(p.payload_mut())?;
    if !m.is_relayed_error() {
        return Err(Refusal::UnsupportedProtocol);
    }
    let icmp_checksum = m.checksum();
    let quote = check_quote(m.data())?;
    let changed = translate_quote(m.data_mut(), quote, quoted_src, quoted_dst);
    m.set_checksum(changed.apply(icmp_checksum));

    let old_word = u16::from_be_bytes([ttl, protocol::ICMP]);
    let value = outer.u16(old_word, old_word - 0x0100).apply(ip_checksum);
    p.set_src(outer_src).set_dst(outer_dst).set_ttl(ttl - 1).set_checksum(value);
    Ok(())
}

/// Rewrites a checked quote in place and returns the change of its bytes (all fields touched
/// lie at even offsets of the ICMP message), for the ICMP checksum.
fn translate_quote(q: &mut [u8], quote: Quote, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Delta {
    let l4 = quote.header_len;
    let addrs = Delta::new().u32(read_u32(q, quoted::SRC), src.0.into()).u32(read_u32(q, quoted::DST), dst.0.into());
    let ports =
        Delta::new().u16(read_u16(q, l4 + quoted::SRC_PORT), src.1).u16(read_u16(q, l4 + quoted::DST_PORT), dst.1);

    let old_ip_checksum = read_u16(q, quoted::CHECKSUM);
    let new_ip_checksum = addrs.apply(old_ip_checksum);
    write_u32(q, quoted::SRC, src.0.into());
    write_u32(q, quoted::DST, dst.0.into());
    write_u16(q, quoted::CHECKSUM, new_ip_checksum);
    write_u16(q, l4 + quoted::SRC_PORT, src.1);
    write_u16(q, l4 + quoted::DST_PORT, dst.1);
    let mut changed = addrs.plus(ports).u16(old_ip_checksum, new_ip_checksum);

    let at = l4 + if quote.proto == protocol::TCP { quoted::TCP_CHECKSUM } else { quoted::UDP_CHECKSUM };
    if q.len() >= at + 2 {
        let old = read_u16(q, at);
        let l4_change = addrs.plus(ports);
        let new = if quote.proto == protocol::UDP { l4_change.apply_udp(old) } else { l4_change.apply(old) };
        write_u16(q, at, new);
        changed = changed.u16(old, new);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{inspect, rewrite, IcmpKind};
    use super::*;
    use crate::wire::icmp::{exceeded, unreachable, Repr};
    use crate::wire::tcp::Flags;

    const DATA: &[u8] = b"some application data, odd length";

    /// A session's packet in both versions: as one side sends it (`original`, which the other
    /// side's error must turn back into) and as we forward it (`forwarded`, which the error
    /// quotes). TTLs as the packets leave us.
    struct Case {
        original: Vec<u8>,
        forwarded: Vec<u8>,
    }

    fn case(proto: u8, from: Endpoint, to: Endpoint, new_from: Endpoint, new_to: Endpoint, options: &[u8]) -> Case {
        let build = |src, dst| match proto {
            protocol::TCP => tcp_packet(src, dst, 63, Flags::PSH | Flags::ACK, DATA, options),
            _ => udp_packet(src, dst, 63, DATA, true, options),
        };
        let mut forwarded = build(from, to);
        forwarded[8] = 64;
        ipv4::Packet::new_checked(&mut forwarded[..]).unwrap().fill_checksum();
        rewrite(&mut forwarded, new_from, new_to).unwrap();
        assert_eq!(forwarded, build(new_from, new_to));
        Case { original: build(from, to), forwarded }
    }

    fn error_repr(kind: u8, quoted: &[u8]) -> Repr<'_> {
        match kind {
            0 => Repr::DestUnreachable { code: unreachable::PORT, next_hop_mtu: 0, quoted },
            1 => Repr::DestUnreachable { code: unreachable::FRAG_NEEDED, next_hop_mtu: 1400, quoted },
            _ => Repr::TimeExceeded { code: exceeded::TTL, quoted },
        }
    }

    /// Relays every kind of error about `c`, for every quote length from the minimum to the
    /// whole packet, and compares with the error built from scratch about `c.original`.
    fn relay_all(
        c: &Case,
        reporter: Ipv4Addr,
        to_us: Ipv4Addr,
        outer_src: Ipv4Addr,
        outer_dst: Ipv4Addr,
        options: &[u8],
    ) {
        let quoted_header = 20 + options.len();
        let new = inspect(&c.original).unwrap().tuple;
        let sent = inspect(&c.forwarded).unwrap().tuple;
        for kind in 0..3 {
            for quote_len in quoted_header + 8..=c.forwarded.len() {
                let mut b = icmp_packet(reporter, to_us, 200, options, error_repr(kind, &c.forwarded[..quote_len]));
                assert_eq!(inspect(&b).unwrap().icmp, Some(IcmpKind::Error));
                assert_eq!(quoted_tuple(&b), Some(sent));
                translate_error(&mut b, outer_src, outer_dst, (new.src, new.src_port), (new.dst, new.dst_port))
                    .unwrap();

                let mut expected_quote = c.original[..quote_len].to_vec();
                let tcp_checksum_hi = quoted_header + 16;
                if new.proto == protocol::TCP && quote_len == tcp_checksum_hi + 1 {
                    // Half a checksum quoted: it cannot be updated, and is left as it was.
                    expected_quote[tcp_checksum_hi] = c.forwarded[tcp_checksum_hi];
                }
                let expected = icmp_packet(outer_src, outer_dst, 199, options, error_repr(kind, &expected_quote));
                assert_eq!(b, expected, "kind {kind}, quote {quote_len}");
                assert_checksums_exact(&b);
                assert_eq!(quoted_tuple(&b), Some(new));
                if kind == 1 {
                    assert_eq!(icmp::Packet::new_checked(&b[20 + options.len()..]).unwrap().next_hop_mtu(), 1400);
                }
            }
        }
    }

    #[test]
    fn errors_from_the_backend_side_reach_the_client() {
        for proto in [protocol::TCP, protocol::UDP] {
            for options in [&[][..], &IP_OPTIONS[..]] {
                // The client's packet went out as LOCAL -> BACKEND; the backend, or a router on
                // the way, reports to LOCAL; the client must see VIP report about CLIENT -> VIP.
                let c = case(proto, CLIENT, VIP, LOCAL, BACKEND, options);
                relay_all(&c, BACKEND.0, LOCAL.0, VIP.0, CLIENT.0, options);
                relay_all(&c, ROUTER, LOCAL.0, VIP.0, CLIENT.0, options);
            }
        }
    }

    #[test]
    fn errors_from_the_client_side_reach_the_backend() {
        for proto in [protocol::TCP, protocol::UDP] {
            for options in [&[][..], &IP_OPTIONS[..]] {
                // The backend's answer went out as VIP -> CLIENT; a router near the client
                // reports to the VIP; the backend must see LOCAL report about BACKEND -> LOCAL.
                let c = case(proto, BACKEND, LOCAL, VIP, CLIENT, options);
                relay_all(&c, ROUTER, VIP.0, LOCAL.0, BACKEND.0, options);
            }
        }
    }

    #[test]
    fn quoted_udp_without_checksum_keeps_none() {
        let original = udp_packet(CLIENT, VIP, 63, DATA, false, &[]);
        let forwarded = udp_packet(LOCAL, BACKEND, 63, DATA, false, &[]);
        let repr = |q| Repr::DestUnreachable { code: unreachable::PORT, next_hop_mtu: 0, quoted: q };
        let mut b = icmp_packet(BACKEND.0, LOCAL.0, 64, &[], repr(&forwarded[..]));
        translate_error(&mut b, VIP.0, CLIENT.0, CLIENT, VIP).unwrap();
        assert_eq!(b, icmp_packet(VIP.0, CLIENT.0, 63, &[], repr(&original[..])));
        assert_eq!(&b[28 + 26..28 + 28], &[0, 0]);
    }

    #[test]
    fn damage_stays_detectable() {
        let forwarded = udp_packet(LOCAL, BACKEND, 63, DATA, true, &[]);
        let repr = Repr::DestUnreachable { code: unreachable::PORT, next_hop_mtu: 0, quoted: &forwarded };
        let mut b = icmp_packet(BACKEND.0, LOCAL.0, 64, &[], repr);
        let last = b.len() - 1;
        b[last] ^= 0x40; // damaged on the way, after the ICMP checksum was computed
        translate_error(&mut b, VIP.0, CLIENT.0, CLIENT, VIP).unwrap();
        assert!(!icmp::Packet::new_checked(&b[20..]).unwrap().verify_checksum());
    }

    #[test]
    fn refusals_leave_the_packet_unchanged() {
        let forwarded = tcp_packet(LOCAL, BACKEND, 63, Flags::ACK, DATA, &[]);
        let err = |ttl, quoted: &[u8]| icmp_packet(ROUTER, LOCAL.0, ttl, &[], Repr::TimeExceeded { code: 0, quoted });
        let mut bad_version = forwarded.clone();
        bad_version[0] = 0x65;
        let mut bad_ihl = forwarded.clone();
        bad_ihl[0] = 0x43;
        let mut later_fragment = forwarded.clone();
        later_fragment[7] = 0x10;
        let quoted_ping = echo_request_packet(LOCAL.0, BACKEND.0, 63, 1, b"12345678");
        let cases: Vec<(Vec<u8>, Refusal)> = vec![
            (err(1, &forwarded), Refusal::TtlExpired),
            (err(64, &forwarded[..27]), Refusal::Truncated),
            (err(64, &forwarded[..19]), Refusal::Truncated),
            (err(64, &bad_version), Refusal::BadHeader),
            (err(64, &bad_ihl), Refusal::BadHeader),
            (err(64, &later_fragment), Refusal::Fragment),
            (err(64, &quoted_ping), Refusal::UnsupportedProtocol),
            (echo_request_packet(ROUTER, LOCAL.0, 64, 1, &forwarded), Refusal::UnsupportedProtocol),
            (forwarded.clone(), Refusal::UnsupportedProtocol),
            (ip_packet(ROUTER, LOCAL.0, protocol::ICMP, 64, &[], &[3, 0, 0]), Refusal::Truncated),
        ];
        for (packet, refusal) in cases {
            let mut b = packet.clone();
            assert_eq!(translate_error(&mut b, VIP.0, CLIENT.0, CLIENT, VIP), Err(refusal));
            assert_eq!(b, packet);
            if refusal != Refusal::TtlExpired {
                assert_eq!(quoted_tuple(&packet), None);
            }
        }
        assert_eq!(quoted_tuple(&err(1, &forwarded)).map(|t| t.dst), Some(BACKEND.0));
    }
}
