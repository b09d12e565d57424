//! UDP frames: the clients' requests (built from one template per run, stamped per packet) and
//! the backends' reflection of whatever datagram reaches them.
//!
//! A request is Ethernet + IPv4 (20 bytes, TTL 64) + UDP + payload, `frame_len` bytes on the
//! buffer (the wire size without the 4-byte FCS). Its payload begins with the stamp: the send
//! TSC (8 bytes, little endian) and a sequence number (8 bytes, little endian); the rest is
//! zero. Per packet only the source address, source port and stamp change, so both checksums
//! are the template's sums plus those fields' sums: no pass over the frame.

use std::net::{Ipv4Addr, SocketAddrV4};

use dataplane::wire::{checksum, ethernet, ipv4, udp, MacAddr};

/// Bytes of the stamp at the start of the UDP payload.
pub const STAMP_LEN: usize = 16;
/// Ethernet + IPv4 + UDP headers.
pub const HEADERS_LEN: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN;
/// Smallest and largest frame on the buffer (64 and 1518 bytes on the wire with the FCS).
pub const MIN_FRAME: usize = 60;
pub const MAX_FRAME: usize = 1514;
/// TTL of every IPv4 header the generator writes.
pub const TTL: u8 = 64;

const IP_AT: usize = ethernet::HEADER_LEN;
const UDP_AT: usize = IP_AT + ipv4::MIN_HEADER_LEN;
const STAMP_AT: usize = HEADERS_LEN;

/// The send TSC and sequence number a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub tsc: u64,
    pub seq: u64,
}

impl Stamp {
    /// Reads the stamp at the start of a UDP payload.
    #[inline]
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let b = payload.get(..STAMP_LEN)?;
        let tsc = u64::from_le_bytes(b[..8].try_into().ok()?);
        let seq = u64::from_le_bytes(b[8..16].try_into().ok()?);
        Some(Stamp { tsc, seq })
    }
}

/// The request frame of a run, from the clients' MAC to the balancer's, for the VIP.
#[derive(Debug, Clone)]
pub struct Request {
    frame: Vec<u8>,
    /// IPv4 header sum with the source address and checksum taken as zero.
    ip_sum: u16,
    /// Pseudo header + datagram sum with source address, source port, stamp and checksum zero.
    udp_sum: u16,
}

impl Request {
    pub fn new(client_mac: MacAddr, peer_mac: MacAddr, vip: SocketAddrV4, frame_len: usize) -> Result<Request, String> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame_len) {
            return Err(format!("frame size {frame_len} (without FCS) outside {MIN_FRAME}..={MAX_FRAME}"));
        }
        let mut frame = vec![0u8; frame_len];
        let mut eth = ethernet::Frame::new_checked(&mut frame[..]).map_err(|e| e.to_string())?;
        eth.set_destination(peer_mac).set_source(client_mac).set_ethertype(ethernet::ethertype::IPV4);
        let udp_len = frame_len - UDP_AT;
        let ip = ipv4::Repr {
            src: Ipv4Addr::UNSPECIFIED,
            dst: *vip.ip(),
            protocol: ipv4::protocol::UDP,
            ttl: TTL,
            payload_len: udp_len,
        };
        ip.emit(&mut frame[IP_AT..]);
        let zeros = vec![0u8; udp_len - udp::HEADER_LEN];
        let datagram = udp::Repr { src_port: 0, dst_port: vip.port(), payload: &zeros };
        datagram.emit(&mut frame[UDP_AT..], Ipv4Addr::UNSPECIFIED, *vip.ip(), false);
        let header = &frame[IP_AT..UDP_AT];
        let ip_sum = checksum::add(checksum::sum(&header[..10]), checksum::sum(&header[12..]));
        let pseudo = checksum::pseudo_header(Ipv4Addr::UNSPECIFIED, *vip.ip(), ipv4::protocol::UDP, udp_len as u16);
        let udp_sum = checksum::add(pseudo, checksum::sum(&frame[UDP_AT..]));
        Ok(Request { frame, ip_sum, udp_sum })
    }

    /// Frame length on the buffer.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// The balancer's MAC changed (learned again by ARP).
    pub fn set_peer_mac(&mut self, mac: MacAddr) {
        self.frame[..6].copy_from_slice(&mac.0);
    }

    /// Writes the request of client `src`:`src_port` with `stamp` into `out` (`len()` bytes).
    #[inline]
    pub fn write(&self, out: &mut [u8], src: Ipv4Addr, src_port: u16, stamp: Stamp) {
        out.copy_from_slice(&self.frame);
        let src_octets = src.octets();
        out[IP_AT + ipv4::offset::SRC..IP_AT + ipv4::offset::SRC + 4].copy_from_slice(&src_octets);
        out[UDP_AT..UDP_AT + 2].copy_from_slice(&src_port.to_be_bytes());
        out[STAMP_AT..STAMP_AT + 8].copy_from_slice(&stamp.tsc.to_le_bytes());
        out[STAMP_AT + 8..STAMP_AT + 16].copy_from_slice(&stamp.seq.to_le_bytes());
        let src_sum = checksum::sum(&src_octets);
        let ip_check = !checksum::add(self.ip_sum, src_sum);
        out[IP_AT + ipv4::offset::CHECKSUM..IP_AT + ipv4::offset::CHECKSUM + 2]
            .copy_from_slice(&ip_check.to_be_bytes());
        let varying =
            checksum::add(checksum::add(src_sum, src_port), checksum::sum(&out[STAMP_AT..STAMP_AT + STAMP_LEN]));
        let udp_check = checksum::udp_on_wire(!checksum::add(self.udp_sum, varying));
        let at = UDP_AT + udp::offset::CHECKSUM;
        out[at..at + 2].copy_from_slice(&udp_check.to_be_bytes());
    }
}

/// Why the backend side did not reflect a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReflected {
    /// Not IPv4 + UDP, a fragment, or lengths that do not hold together.
    Malformed,
    /// The IPv4 header or UDP checksum is wrong: the balancer's rewrite broke it.
    BadChecksum,
}

/// Turns the UDP datagram in `frame` around in place, as a backend answering it: Ethernet
/// destination = the sender, source = `our_mac`; addresses and ports swapped (which leaves both
/// checksums as they are: the sums do not depend on order); TTL back to 64 with the header
/// checksum updated incrementally (RFC 1624). Checksums are verified first.
pub fn reflect(frame: &mut [u8], our_mac: MacAddr) -> Result<(), NotReflected> {
    let mut eth = ethernet::Frame::new_checked(&mut *frame).map_err(|_| NotReflected::Malformed)?;
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return Err(NotReflected::Malformed);
    }
    let sender = eth.source();
    eth.set_destination(sender).set_source(our_mac);
    let mut ip = ipv4::Packet::new_checked(eth.payload_mut()).map_err(|_| NotReflected::Malformed)?;
    if ip.protocol() != ipv4::protocol::UDP || ip.is_fragment() {
        return Err(NotReflected::Malformed);
    }
    if !ip.verify_checksum() {
        return Err(NotReflected::BadChecksum);
    }
    let (src, dst, ttl) = (ip.src(), ip.dst(), ip.ttl());
    let ttl_word = |ttl: u8| u16::from_be_bytes([ttl, ipv4::protocol::UDP]);
    let ip_check = checksum::update_u16(ip.checksum(), ttl_word(ttl), ttl_word(TTL));
    ip.set_src(dst).set_dst(src).set_ttl(TTL).set_checksum(ip_check);
    let mut datagram = udp::Packet::new_checked(ip.payload_mut()).map_err(|_| NotReflected::Malformed)?;
    if !datagram.verify_checksum(src, dst) {
        return Err(NotReflected::BadChecksum);
    }
    let (sport, dport) = (datagram.src_port(), datagram.dst_port());
    datagram.set_src_port(dport).set_dst_port(sport);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc1]);
    pub const LB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x1b]);
    pub const BACKEND_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb1]);
    pub const VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 53);
    pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 7);

    pub fn request_frame(size: usize, stamp: Stamp) -> Vec<u8> {
        let r = Request::new(CLIENT_MAC, LB_MAC, VIP, size).unwrap();
        let mut b = vec![0u8; r.len()];
        r.write(&mut b, CLIENT, 4242, stamp);
        b
    }

    fn check_udp(frame: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> (u16, u16, Vec<u8>) {
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum(), "IPv4 header checksum");
        assert_eq!((ip.src(), ip.dst(), ip.protocol()), (src, dst, ipv4::protocol::UDP));
        assert_eq!(ip.total_len() as usize, frame.len() - ethernet::HEADER_LEN);
        let d = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_ne!(d.checksum(), 0, "a request always carries a UDP checksum");
        assert!(d.verify_checksum(src, dst), "UDP checksum");
        (d.src_port(), d.dst_port(), d.payload().to_vec())
    }

    #[test]
    fn requests_at_every_size_are_valid() {
        for size in [MIN_FRAME, 61, 124, 508, 1020, MAX_FRAME] {
            let stamp = Stamp { tsc: 0x0123_4567_89ab_cdef + size as u64, seq: 77 };
            let b = request_frame(size, stamp);
            assert_eq!(b.len(), size);
            let eth = ethernet::Frame::new_checked(&b[..]).unwrap();
            assert_eq!((eth.destination(), eth.source()), (LB_MAC, CLIENT_MAC));
            let (sport, dport, payload) = check_udp(&b, CLIENT, *VIP.ip());
            assert_eq!((sport, dport), (4242, 53));
            assert_eq!(payload.len(), size - HEADERS_LEN);
            assert_eq!(Stamp::read(&payload), Some(stamp));
            assert!(payload[STAMP_LEN..].iter().all(|&x| x == 0));
        }
        assert!(Request::new(CLIENT_MAC, LB_MAC, VIP, 59).is_err());
        assert!(Request::new(CLIENT_MAC, LB_MAC, VIP, 1515).is_err());
    }

    #[test]
    fn checksums_hold_for_many_sources_and_stamps() {
        let r = Request::new(CLIENT_MAC, LB_MAC, VIP, 64).unwrap();
        let mut b = vec![0u8; 64];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..5_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let src = Ipv4Addr::from(0xc612_0000 | (x as u32 & 0x1_ffff));
            let port = (x >> 20) as u16;
            r.write(&mut b, src, port, Stamp { tsc: x, seq: u64::from(i) });
            check_udp(&b, src, *VIP.ip());
        }
    }

    /// A request as a FULLNAT balancer would deliver it to a backend: new addresses and ports,
    /// TTL decremented, checksums recomputed.
    fn as_delivered(mut b: Vec<u8>) -> Vec<u8> {
        let (local, backend) = (Ipv4Addr::new(198, 18, 1, 100), Ipv4Addr::new(198, 18, 1, 2));
        let mut eth = ethernet::Frame::new_checked(&mut b[..]).unwrap();
        eth.set_destination(BACKEND_MAC).set_source(LB_MAC);
        let mut ip = ipv4::Packet::new_checked(eth.payload_mut()).unwrap();
        ip.set_src(local).set_dst(backend).set_ttl(63).fill_checksum();
        let mut d = udp::Packet::new_checked(ip.payload_mut()).unwrap();
        d.set_src_port(40000).set_dst_port(5353).fill_checksum(local, backend);
        b
    }

    #[test]
    fn reflection_swaps_and_keeps_checksums_right() {
        for size in [MIN_FRAME, 128, MAX_FRAME] {
            let stamp = Stamp { tsc: 123_456_789, seq: 5 };
            let mut b = as_delivered(request_frame(size, stamp));
            reflect(&mut b, BACKEND_MAC).unwrap();
            let eth = ethernet::Frame::new_checked(&b[..]).unwrap();
            assert_eq!((eth.destination(), eth.source()), (LB_MAC, BACKEND_MAC));
            let (sport, dport, payload) = check_udp(&b, Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 100));
            assert_eq!((sport, dport), (5353, 40000));
            assert_eq!(Stamp::read(&payload), Some(stamp), "the payload comes back untouched");
            let ip = ipv4::Packet::new_checked(&b[ethernet::HEADER_LEN..]).unwrap();
            assert_eq!(ip.ttl(), TTL);
        }
    }

    #[test]
    fn reflection_refuses_broken_frames() {
        let good = as_delivered(request_frame(64, Stamp { tsc: 1, seq: 1 }));
        let mut b = good.clone();
        b[ethernet::HEADER_LEN + 12] ^= 1; // source address, header checksum now wrong
        assert_eq!(reflect(&mut b, BACKEND_MAC), Err(NotReflected::BadChecksum));
        let mut b = good.clone();
        b[STAMP_AT] ^= 0x40; // payload, UDP checksum now wrong
        assert_eq!(reflect(&mut b, BACKEND_MAC), Err(NotReflected::BadChecksum));
        let mut b = good.clone();
        b[ethernet::HEADER_LEN + 9] = ipv4::protocol::TCP;
        assert_eq!(reflect(&mut b, BACKEND_MAC), Err(NotReflected::Malformed));
        assert_eq!(reflect(&mut good.clone()[..30], BACKEND_MAC), Err(NotReflected::Malformed));
    }
}
