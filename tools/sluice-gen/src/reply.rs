//! What the client side makes of a frame arriving on its port: an ARP packet (answered or
//! learned from elsewhere), a good reply to one of its flows, a TCP segment (for `tcp` mode),
//! or a bad frame under a named reason. Every bad frame is counted; none is dropped silently.

use std::net::SocketAddrV4;

use dataplane::wire::{ethernet, ipv4, udp};

use super::space::ClientSpace;
use super::udp::Stamp;

/// Why a frame on the client port was not a good reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReason {
    /// Not a well-formed IPv4 packet, or a fragment.
    Malformed,
    /// IPv4, but neither UDP nor (in `tcp` mode) TCP.
    WrongProtocol,
    /// Not from the VIP's address and port.
    WrongSource,
    /// Not to a client address and port of this run.
    UnknownDestination,
    /// The IPv4 header or L4 checksum is wrong.
    BadChecksum,
    /// Payload too short for the stamp, or stamped in the future.
    BadStamp,
    /// A TCP reset.
    Reset,
    /// A TCP segment the connection did not expect at this point.
    UnexpectedSegment,
}

impl BadReason {
    pub const ALL: [BadReason; 8] = [
        BadReason::Malformed,
        BadReason::WrongProtocol,
        BadReason::WrongSource,
        BadReason::UnknownDestination,
        BadReason::BadChecksum,
        BadReason::BadStamp,
        BadReason::Reset,
        BadReason::UnexpectedSegment,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BadReason::Malformed => "malformed",
            BadReason::WrongProtocol => "wrong_protocol",
            BadReason::WrongSource => "wrong_source",
            BadReason::UnknownDestination => "unknown_destination",
            BadReason::BadChecksum => "bad_checksum",
            BadReason::BadStamp => "bad_stamp",
            BadReason::Reset => "reset",
            BadReason::UnexpectedSegment => "unexpected_segment",
        }
    }
}

/// A frame's kind, by its EtherType and IPv4 protocol only (no validation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Arp,
    Udp,
    Tcp,
    /// IPv4 with another protocol, or too short to tell.
    OtherIpv4,
    /// Neither ARP nor IPv4 (IPv6, LLDP, ...).
    NotIp,
}

#[inline]
pub fn kind(frame: &[u8]) -> Kind {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return Kind::NotIp;
    };
    match eth.ethertype() {
        ethernet::ethertype::ARP => Kind::Arp,
        ethernet::ethertype::IPV4 => match eth.payload().get(ipv4::offset::PROTOCOL) {
            Some(&ipv4::protocol::UDP) => Kind::Udp,
            Some(&ipv4::protocol::TCP) => Kind::Tcp,
            _ => Kind::OtherIpv4,
        },
        _ => Kind::NotIp,
    }
}

/// What a reply must look like.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub vip: SocketAddrV4,
    pub space: ClientSpace,
    /// Flows of the space in use: a reply to flow >= this is to an unknown destination.
    pub flows: u64,
}

/// Checks a UDP reply: from the VIP to one of the flows, checksums right, a stamp from the
/// past (`now` is the receive TSC). Returns the stamp.
#[inline]
pub fn check_udp(frame: &[u8], expect: &Expect, now: u64) -> Result<Stamp, BadReason> {
    let (ip, datagram) = udp_parts(frame)?;
    let (src, dst) = (ip.src(), ip.dst());
    if src != *expect.vip.ip() || datagram.src_port() != expect.vip.port() {
        return Err(BadReason::WrongSource);
    }
    match expect.space.flow_of(dst, datagram.dst_port()) {
        Some(flow) if flow < expect.flows => {}
        _ => return Err(BadReason::UnknownDestination),
    }
    if !ip.verify_checksum() || !datagram.verify_checksum(src, dst) {
        return Err(BadReason::BadChecksum);
    }
    match Stamp::read(datagram.payload()) {
        Some(stamp) if stamp.tsc <= now => Ok(stamp),
        _ => Err(BadReason::BadStamp),
    }
}

/// The stamp of any UDP frame carrying one (the `ceiling` mode's accounting: no VIP check).
#[inline]
pub fn any_stamp(frame: &[u8], now: u64) -> Option<Stamp> {
    let (_, datagram) = udp_parts(frame).ok()?;
    Stamp::read(datagram.payload()).filter(|s| s.tsc <= now)
}

/// The IPv4 header and UDP datagram views of a frame.
type UdpParts<'a> = (ipv4::Packet<&'a [u8]>, udp::Packet<&'a [u8]>);

fn udp_parts(frame: &[u8]) -> Result<UdpParts<'_>, BadReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| BadReason::Malformed)?;
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return Err(BadReason::Malformed);
    }
    let ip = ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).map_err(|_| BadReason::Malformed)?;
    if ip.is_fragment() {
        return Err(BadReason::Malformed);
    }
    if ip.protocol() != ipv4::protocol::UDP {
        return Err(BadReason::WrongProtocol);
    }
    let l4 = &frame[ethernet::HEADER_LEN + ip.header_len()..ethernet::HEADER_LEN + ip.total_len() as usize];
    let datagram = udp::Packet::new_checked(l4).map_err(|_| BadReason::Malformed)?;
    Ok((ip, datagram))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::tests::{request_frame, BACKEND_MAC, VIP};
    use crate::udp::{reflect, HEADERS_LEN};
    use std::net::Ipv4Addr;

    fn expect(flows: u64) -> Expect {
        let space = ClientSpace::new(Ipv4Addr::new(198, 18, 0, 2), 8, *VIP.ip()).unwrap();
        Expect { vip: VIP, space, flows }
    }

    /// A request reflected straight back: what a correct FULLNAT round trip returns.
    fn reply(stamp: Stamp) -> Vec<u8> {
        let mut b = request_frame(64, stamp);
        reflect(&mut b, BACKEND_MAC).unwrap();
        b
    }

    #[test]
    fn good_reply_yields_its_stamp() {
        let stamp = Stamp { tsc: 1_000, seq: 9 };
        let b = reply(stamp);
        assert_eq!(kind(&b), Kind::Udp);
        // 198.18.0.7 is address 5, port 4242 flow 5 + 8 * 3218.
        let flow = 5 + 8 * (4242 - 1024);
        assert_eq!(check_udp(&b, &expect(flow + 1), 2_000), Ok(stamp));
        assert_eq!(check_udp(&b, &expect(flow), 2_000), Err(BadReason::UnknownDestination));
        assert_eq!(check_udp(&b, &expect(u64::MAX), 999), Err(BadReason::BadStamp), "from the future");
        assert_eq!(any_stamp(&b, 2_000), Some(stamp));
    }

    #[test]
    fn the_request_itself_is_not_a_reply() {
        let b = request_frame(64, Stamp { tsc: 1, seq: 1 });
        assert_eq!(check_udp(&b, &expect(u64::MAX), 2), Err(BadReason::WrongSource));
    }

    #[test]
    fn bad_frames_get_their_reason() {
        let good = reply(Stamp { tsc: 1, seq: 1 });
        let e = expect(u64::MAX);
        let mut b = good.clone();
        b[HEADERS_LEN + 3] ^= 1;
        assert_eq!(check_udp(&b, &e, 2), Err(BadReason::BadChecksum));
        let mut b = good.clone();
        b[ethernet::HEADER_LEN + 9] = 1;
        assert_eq!(check_udp(&b, &e, 2), Err(BadReason::WrongProtocol));
        assert_eq!(kind(&b), Kind::OtherIpv4);
        let mut b = good.clone();
        b[ethernet::HEADER_LEN + 6] = 0x20; // more fragments
        assert_eq!(check_udp(&b, &e, 2), Err(BadReason::Malformed));
        let mut b = good.clone();
        b[ethernet::HEADER_LEN + 20 + 1] ^= 1; // source port 52
        assert_eq!(check_udp(&b, &e, 2), Err(BadReason::WrongSource));
        assert_eq!(check_udp(&good[..40], &e, 2), Err(BadReason::Malformed));
        let mut b = good.clone();
        b[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(kind(&b), Kind::NotIp);
        assert_eq!(check_udp(&b, &e, 2), Err(BadReason::Malformed));
    }

    #[test]
    fn reasons_have_distinct_names() {
        let mut names: Vec<&str> = BadReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BadReason::ALL.len());
    }
}
