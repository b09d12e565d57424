//! Hand-made packets for the hostile tests: a raw IPv4 socket inside a namespace that sends
//! whatever header it is given (forged sources, ICMP errors), the headers themselves with their
//! checksums, and ARP frames for a packet socket (`Capture::send`). Every address a test puts
//! in them is in 198.18.0.0/15.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::in_netns;

/// A raw IPv4 socket (`IPPROTO_RAW`: the caller writes the IP header) opened in a namespace.
pub struct RawIp {
    fd: OwnedFd,
}

impl RawIp {
    pub fn open(ns: &str) -> RawIp {
        let fd = in_netns(ns, || {
            // SAFETY: a plain system call; the descriptor is owned by the returned value.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            // SAFETY: `fd` is a socket just opened and owned by nothing else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        RawIp { fd }
    }

    /// Sends an IPv4 packet (header included) to its destination; `false` if the kernel
    /// refused it (a full queue, say).
    pub fn send(&self, packet: &[u8]) -> bool {
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(dst).to_be() },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        // SAFETY: the buffer and address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                len,
            )
        };
        sent == packet.len() as isize
    }
}

/// The Internet checksum of `data` (RFC 1071), starting from `sum`.
pub fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (20 bytes, DF set) for `payload_len` bytes of protocol `proto`.
pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let sum = checksum(&h, 0);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// A whole UDP/IPv4 packet from `src` to `dst`, checksums right.
pub fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(len as usize);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    let sum = checksum(&udp, u32::from(!checksum(&pseudo, 0)));
    udp[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
    [ipv4_header(*src.ip(), *dst.ip(), 17, udp.len()), udp].concat()
}

/// An ICMP "fragmentation needed" (type 3 code 4) from `from` to `to` with next-hop `mtu`,
/// quoting `quoted` (an IP header and at least 8 bytes after it).
pub fn frag_needed(from: Ipv4Addr, to: Ipv4Addr, mtu: u16, quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(quoted);
    let sum = checksum(&icmp, 0);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    [ipv4_header(from, to, 1, icmp.len()), icmp].concat()
}

/// An ARP request frame (broadcast) from `sender` (MAC, IP) asking for `target`.
pub fn arp_request(sender_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}
