//! A TCP reset in answer to a segment, built in place (RFC 793 "Reset Generation"): used when
//! a client's connection lost its backend (`on_failure = "remove"`), so that the client learns
//! at once instead of retransmitting into nothing.

use crate::wire::ipv4::{self, protocol};
use crate::wire::tcp::{self, Flags};

use super::Refusal;

/// TTL of packets Sluice originates.
const TTL: u8 = 64;

/// Turns the TCP segment `ip` (an IPv4 packet) into the RST its sender should get: addresses
/// and ports swapped, no options, no payload; if the segment carried an ACK the reset takes its
/// sequence number from it, else it acknowledges the segment. Returns the new IP length (the
/// frame must be shortened to it). Checksums are computed whole (a rare path).
pub fn tcp_reset(ip: &mut [u8]) -> Result<usize, Refusal> {
    let p = ipv4::Packet::new_checked(&*ip)?;
    if p.protocol() != protocol::TCP {
        return Err(Refusal::UnsupportedProtocol);
    }
    if p.is_fragment() {
        return Err(Refusal::Fragment);
    }
    let (src, dst, ihl) = (p.src(), p.dst(), p.header_len());
    let seg = tcp::Packet::new_checked(p.payload())?;
    let flags = seg.flags();
    if flags.contains(Flags::RST) {
        return Err(Refusal::UnsupportedProtocol); // never answer a reset with a reset
    }
    let mut seg_len = seg.payload().len() as u32;
    if flags.contains(Flags::SYN) {
        seg_len += 1;
    }
    if flags.contains(Flags::FIN) {
        seg_len += 1;
    }
    let (sport, dport, seq, ack) = (seg.src_port(), seg.dst_port(), seg.seq(), seg.ack());
    let (new_seq, new_ack, new_flags) = if flags.contains(Flags::ACK) {
        (ack, 0, Flags::RST)
    } else {
        (0, seq.wrapping_add(seg_len), Flags::RST | Flags::ACK)
    };

    let total = ihl + 20;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    let mut out = ipv4::Packet::new_checked(&mut *ip)?;
    out.set_src(dst).set_dst(src).set_ttl(TTL);
    out.fill_checksum();
    let l4 = &mut ip[ihl..total];
    l4.fill(0);
    l4[12] = 5 << 4; // data offset: 20 bytes, no options
    let mut t = tcp::Packet::new_checked(l4)?;
    t.set_src_port(dport).set_dst_port(sport).set_seq(new_seq).set_ack(new_ack).set_flags(new_flags);
    t.fill_checksum(dst, src);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::testkit::{assert_checksums_exact, tcp_packet};
    use std::net::Ipv4Addr;

    struct At {
        ip: Ipv4Addr,
        port: u16,
    }
    const CLIENT: At = At { ip: Ipv4Addr::new(198, 18, 0, 2), port: 40000 };
    const VIP: At = At { ip: Ipv4Addr::new(198, 18, 0, 10), port: 80 };

    fn seg(flags: Flags, payload: &[u8]) -> Vec<u8> {
        let mut p = tcp_packet((CLIENT.ip, CLIENT.port), (VIP.ip, VIP.port), 64, flags, payload, &[]);
        let ihl = 20;
        p[ihl + 4..ihl + 8].copy_from_slice(&1000u32.to_be_bytes()); // seq
        p[ihl + 8..ihl + 12].copy_from_slice(&5000u32.to_be_bytes()); // ack
        tcp::Packet::new_checked(&mut p[ihl..]).unwrap().fill_checksum(CLIENT.ip, VIP.ip);
        p
    }

    #[test]
    fn reset_for_an_acked_segment_takes_its_ack_as_sequence() {
        let mut p = seg(Flags::ACK | Flags::PSH, b"GET / HTTP/1.1\r\n\r\n");
        let len = tcp_reset(&mut p).unwrap();
        p.truncate(len);
        assert_eq!(len, 40);
        assert_checksums_exact(&p);
        let ip = ipv4::Packet::new_checked(&p[..]).unwrap();
        assert_eq!((ip.src(), ip.dst(), ip.ttl(), ip.total_len()), (VIP.ip, CLIENT.ip, 64, 40));
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.seq(), t.flags()), (80, 40000, 5000, Flags::RST));
    }

    #[test]
    fn reset_for_a_syn_acknowledges_it() {
        let mut p = seg(Flags::SYN, b"");
        let len = tcp_reset(&mut p).unwrap();
        p.truncate(len);
        assert_checksums_exact(&p);
        let t = tcp::Packet::new_checked(&p[20..]).unwrap();
        assert_eq!((t.seq(), t.ack(), t.flags()), (0, 1001, Flags::RST | Flags::ACK));
    }

    #[test]
    fn never_a_reset_for_a_reset_or_for_other_protocols() {
        let mut p = seg(Flags::RST, b"");
        let before = p.clone();
        assert_eq!(tcp_reset(&mut p), Err(Refusal::UnsupportedProtocol));
        assert_eq!(p, before);
        let mut u = before.clone();
        u[9] = protocol::UDP;
        assert!(tcp_reset(&mut u).is_err());
        for n in 0..before.len() {
            let mut cut = before[..n].to_vec();
            let _ = tcp_reset(&mut cut);
        }
    }
}
