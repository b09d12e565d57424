//! Growing a rewritten UDP datagram by a header placed before its payload (the PROXY protocol
//! v2 header of `client_address = "proxy-v2"`), and splitting a datagram the header made too big
//! for the link into two fragments.
//!
//! Both work on the frame in the buffer the port gave (`l2` bytes of link header, then the IP
//! packet), so that only the headers move: the caller makes room before the frame (the mbuf's
//! headroom), the link, IP and UDP headers move into it, and the header goes into the gap. The
//! checksums are updated, never recomputed: the inserted header is summed once (28 bytes), and
//! the payload keeps its parity (the header's length is even), so its words sum as before.

use crate::wire::checksum::{self, Delta};
use crate::wire::ipv4::{self, offset, protocol};
use crate::wire::{read_u16, tcp, udp, write_u16};

use super::Refusal;

/// Inserts `header` (of even length) after the UDP header of the datagram in `buf`, whose
/// first `header.len()` bytes are free room and whose frame starts right after them, with
/// `l2` bytes of link header. The frame then starts at `buf[0]`; returns its new IP total
/// length (Ethernet padding, if any, now follows it). On `Err` nothing has changed.
///
/// The checksums must be complete (not left to the NIC): the IP checksum gets the length
/// change, the UDP checksum (unless 0, none) the length change twice (UDP header and pseudo
/// header) and the header's sum.
pub fn insert_udp_header(buf: &mut [u8], l2: usize, header: &[u8]) -> Result<u16, Refusal> {
    let n = header.len();
    debug_assert!(n.is_multiple_of(2), "an inserted header keeps the payload's parity");
    let ip = buf.get_mut(n + l2..).ok_or(Refusal::Truncated)?;
    let p = ipv4::Packet::new_checked(&*ip)?;
    if p.protocol() != protocol::UDP {
        return Err(Refusal::UnsupportedProtocol);
    }
    if p.is_fragment() {
        return Err(Refusal::Fragment);
    }
    let ihl = p.header_len();
    let total = p.total_len();
    let udp_len = udp::Packet::new_checked(p.payload())?.len();
    let grown_total = total.checked_add(n as u16).filter(|_| n <= 0xffff).ok_or(Refusal::BadHeader)?;
    let grown_udp = udp_len + n as u16; // udp_len <= total, so it fits as well

    let ip_checksum = Delta::new().u16(total, grown_total).apply(p.checksum());
    write_u16(ip, offset::TOTAL_LEN, grown_total);
    write_u16(ip, offset::CHECKSUM, ip_checksum);
    let l4 = &mut ip[ihl..];
    let old = read_u16(l4, udp::offset::CHECKSUM);
    let lengths = Delta::new().u16(udp_len, grown_udp).u16(udp_len, grown_udp);
    let added = Delta::new().u16(0, checksum::sum(header));
    write_u16(l4, 4, grown_udp);
    write_u16(l4, udp::offset::CHECKSUM, lengths.plus(added).apply_udp(old));

    let headers = l2 + ihl + udp::HEADER_LEN;
    buf.copy_within(n..n + headers, 0);
    buf[headers..headers + n].copy_from_slice(header);
    Ok(grown_total)
}

/// As `insert_udp_header`, for a TCP segment: `header` goes after the TCP header (options
/// included), before the segment's data, whose sequence number stays: the header takes the
/// first bytes of its sequence space. The TCP checksum gets the pseudo header's length change
/// and the header's sum.
pub fn insert_tcp_header(buf: &mut [u8], l2: usize, header: &[u8]) -> Result<u16, Refusal> {
    let n = header.len();
    debug_assert!(n.is_multiple_of(2), "an inserted header keeps the payload's parity");
    let ip = buf.get_mut(n + l2..).ok_or(Refusal::Truncated)?;
    let p = ipv4::Packet::new_checked(&*ip)?;
    if p.protocol() != protocol::TCP {
        return Err(Refusal::UnsupportedProtocol);
    }
    if p.is_fragment() {
        return Err(Refusal::Fragment);
    }
    let ihl = p.header_len();
    let total = p.total_len();
    let thl = tcp::Packet::new_checked(p.payload())?.header_len();
    let grown_total = total.checked_add(n as u16).filter(|_| n <= 0xffff).ok_or(Refusal::BadHeader)?;
    let l4_len = total - ihl as u16;

    let ip_checksum = Delta::new().u16(total, grown_total).apply(p.checksum());
    write_u16(ip, offset::TOTAL_LEN, grown_total);
    write_u16(ip, offset::CHECKSUM, ip_checksum);
    let l4 = &mut ip[ihl..];
    let old = read_u16(l4, tcp::offset::CHECKSUM);
    let change = Delta::new().u16(l4_len, l4_len + n as u16).u16(0, checksum::sum(header));
    write_u16(l4, tcp::offset::CHECKSUM, change.apply(old));

    let headers = l2 + ihl + thl;
    buf.copy_within(n..n + headers, 0);
    buf[headers..headers + n].copy_from_slice(header);
    Ok(grown_total)
}

/// Splits the IP packet `ip` (its IP total length bytes; no DF, not a fragment) into a first
/// fragment left in `ip`, of at most `mtu` bytes, and a second written to `rest`; returns both
/// lengths. The second gets the header without options (RFC 791 copies only options marked to
/// be copied; Sluice refuses none, and sends none on). Refused if two fragments do not suffice
/// or `rest` is too small; on `Err` nothing has changed.
pub fn split(ip: &mut [u8], mtu: usize, rest: &mut [u8]) -> Result<(usize, usize), Refusal> {
    let p = ipv4::Packet::new_checked(&*ip)?;
    if p.is_fragment() || p.dont_fragment() {
        return Err(Refusal::Fragment);
    }
    let ihl = p.header_len();
    let total = usize::from(p.total_len());
    let first_data = mtu.checked_sub(ihl).ok_or(Refusal::BadHeader)? & !7;
    let data = total - ihl;
    if first_data == 0 || data <= first_data {
        return Err(Refusal::BadHeader);
    }
    let second_len = ipv4::MIN_HEADER_LEN + data - first_data;
    if second_len > mtu || rest.len() < second_len {
        return Err(Refusal::BadHeader);
    }
    let flags = p.flags_frag();

    let first_len = ihl + first_data;
    let second = &mut rest[..second_len];
    second[..ipv4::MIN_HEADER_LEN].copy_from_slice(&ip[..ipv4::MIN_HEADER_LEN]);
    second[ipv4::MIN_HEADER_LEN..].copy_from_slice(&ip[first_len..total]);
    second[offset::VER_IHL] = 0x40 | (ipv4::MIN_HEADER_LEN / 4) as u8;
    write_u16(second, offset::TOTAL_LEN, second_len as u16);
    write_u16(second, offset::FLAGS_FRAG, flags | (first_data / 8) as u16);
    let c = checksum::ipv4_header(&second[..ipv4::MIN_HEADER_LEN]);
    write_u16(second, offset::CHECKSUM, c);

    write_u16(ip, offset::TOTAL_LEN, first_len as u16);
    write_u16(ip, offset::FLAGS_FRAG, flags | ipv4::MORE_FRAGMENTS);
    let c = checksum::ipv4_header(&ip[..ihl]);
    write_u16(ip, offset::CHECKSUM, c);
    Ok((first_len, second_len))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::nat::testkit::Endpoint;
    use crate::nat::testkit::{assert_checksums_exact, ip_packet, udp_packet, Rng};
    use crate::wire::proxy::{self, Transport};

    const L2: usize = 14;

    fn endpoints() -> (Endpoint, Endpoint) {
        ((Ipv4Addr::new(198, 18, 1, 101), 40000), (Ipv4Addr::new(198, 18, 1, 2), 53))
    }

    /// `room` free bytes, a 14-byte link header, then `ip`.
    fn framed(room: usize, ip: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xee; room];
        buf.extend((0..L2 as u8).map(|i| i + 1));
        buf.extend_from_slice(ip);
        buf
    }

    fn header() -> [u8; proxy::PROXY_LEN] {
        proxy::proxy(Transport::Udp, (Ipv4Addr::new(198, 18, 0, 2), 5353), (Ipv4Addr::new(198, 18, 0, 10), 53))
    }

    #[test]
    fn the_header_lands_before_the_payload_and_every_checksum_stays_exact() {
        let mut rng = Rng::new(7);
        let (src, dst) = endpoints();
        for len in [0usize, 1, 2, 3, 17, 64, 1000, 1471] {
            let payload = rng.bytes(len);
            let ip = udp_packet(src, dst, 63, &payload, true, &[]);
            let mut buf = framed(28, &ip);
            let total = insert_udp_header(&mut buf, L2, &header()).unwrap();
            assert_eq!(usize::from(total), ip.len() + 28);
            assert_eq!(&buf[..L2], (1..=L2 as u8).collect::<Vec<_>>().as_slice(), "link header moved intact");
            let grown = &buf[L2..L2 + usize::from(total)];
            assert_checksums_exact(grown);
            let p = ipv4::Packet::new_checked(grown).unwrap();
            let u = udp::Packet::new_checked(p.payload()).unwrap();
            assert_eq!(usize::from(u.len()), 8 + 28 + len);
            assert_eq!((u.src_port(), u.dst_port()), (src.1, dst.1));
            let (parsed, at) = proxy::parse(u.payload()).unwrap();
            assert_eq!(at, 28);
            assert!(matches!(parsed, proxy::Header::Proxy { client: (_, 5353), .. }));
            assert_eq!(&u.payload()[28..], payload.as_slice());
        }
    }

    #[test]
    fn a_header_leads_a_tcp_segments_data_at_its_sequence_number() {
        use crate::nat::testkit::tcp_packet;
        use crate::wire::tcp::Flags;
        let (src, dst) = endpoints();
        for data in [&b""[..], b"x", b"GET / HTTP/1.1\r\n\r\n"] {
            let ip = tcp_packet(src, dst, 63, Flags::ACK | Flags::PSH, data, &[]);
            let seq = tcp::Packet::new_checked(&ip[20..]).unwrap().seq();
            let mut buf = framed(28, &ip);
            let tcp_header =
                proxy::proxy(Transport::Tcp, (Ipv4Addr::new(198, 18, 0, 2), 1), (Ipv4Addr::new(198, 18, 0, 10), 80));
            let total = usize::from(insert_tcp_header(&mut buf, L2, &tcp_header).unwrap());
            let grown = &buf[L2..L2 + total];
            assert_checksums_exact(grown);
            let t = tcp::Packet::new_checked(&grown[20..]).unwrap();
            assert_eq!(t.seq(), seq);
            assert_eq!(&t.payload()[..28], &tcp_header);
            assert_eq!(&t.payload()[28..], data);
        }
    }

    #[test]
    fn a_datagram_without_checksum_keeps_none() {
        let (src, dst) = endpoints();
        let ip = udp_packet(src, dst, 63, b"no checksum", false, &[]);
        let ihl = 20;
        let mut buf = framed(28, &ip);
        insert_udp_header(&mut buf, L2, &header()).unwrap();
        assert_eq!(&buf[L2 + ihl + 6..L2 + ihl + 8], &[0, 0]);
    }

    #[test]
    fn what_is_not_a_whole_udp_datagram_is_left_alone() {
        let (src, dst) = endpoints();
        let tcp = ip_packet(src.0, dst.0, protocol::TCP, 63, &[], &[0u8; 20]);
        let mut buf = framed(28, &tcp);
        let before = buf.clone();
        assert_eq!(insert_udp_header(&mut buf, L2, &header()), Err(Refusal::UnsupportedProtocol));
        let mut fragment = udp_packet(src, dst, 63, b"x", true, &[]);
        fragment[6] = 0x20; // more fragments
        let mut frag_buf = framed(28, &fragment);
        assert_eq!(insert_udp_header(&mut frag_buf, L2, &header()), Err(Refusal::Fragment));
        assert_eq!(insert_udp_header(&mut buf[..30], L2, &header()), Err(Refusal::Truncated));
        assert_eq!(buf, before);
    }

    #[test]
    fn a_datagram_too_big_for_the_link_splits_in_two_that_reassemble() {
        let mut rng = Rng::new(9);
        let (src, dst) = endpoints();
        let payload = rng.bytes(1472);
        let ip = udp_packet(src, dst, 63, &payload, true, &[]); // DF clear
        let mut buf = framed(28, &ip);
        let total = usize::from(insert_udp_header(&mut buf, L2, &header()).unwrap());
        let whole = buf[L2..L2 + total].to_vec();
        let mut rest = vec![0u8; 1500];
        let (a, b) = split(&mut buf[L2..L2 + total], 1500, &mut rest).unwrap();
        assert_eq!((a, b), (1500, 20 + (total - 20) - 1480));
        let first = ipv4::Packet::new_checked(&buf[L2..L2 + a]).unwrap();
        let second = ipv4::Packet::new_checked(&rest[..b]).unwrap();
        assert!(first.verify_checksum() && second.verify_checksum());
        assert_eq!((first.flags_frag(), second.flags_frag()), (ipv4::MORE_FRAGMENTS, 1480 / 8));
        assert_eq!(first.ident(), second.ident());
        let reassembled = [first.payload(), second.payload()].concat();
        assert_eq!(reassembled, whole[20..]);
    }

    #[test]
    fn split_refuses_df_and_what_needs_three_fragments() {
        let (src, dst) = endpoints();
        let ip = udp_packet(src, dst, 63, &[0u8; 1400], true, &[]);
        let mut rest = vec![0u8; 1500];
        let mut df = ip.clone();
        df[6] = 0x40;
        assert_eq!(split(&mut df, 1000, &mut rest), Err(Refusal::Fragment));
        let mut plain = ip.clone();
        plain[6] = 0;
        assert_eq!(split(&mut plain, 576, &mut rest), Err(Refusal::BadHeader));
        assert_eq!(split(&mut plain, 1500, &mut rest), Err(Refusal::BadHeader), "it fits: nothing to split");
    }
}
