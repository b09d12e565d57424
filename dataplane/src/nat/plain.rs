//! The common packet at fixed offsets: an IPv4 TCP or UDP packet without IP options, not a
//! fragment, its header checksum right, its TTL above 1 and its L4 header whole. Nearly every
//! packet of an established flow is one, and reading it at known offsets from one bounds check
//! costs a fraction of the general readers' layered, checked views (about 150 instructions of
//! `inspect` and 110 of `rewrite` per 64-byte datagram, counted under callgrind).
//!
//! `Plain::parse` accepts only such packets; anything else is `None`, and the caller takes the
//! general path (`inspect`, `rewrite`), which also says why a packet is refused. On what it
//! accepts it agrees with `inspect`, and `Plain::rewrite` with `rewrite` and
//! `rewrite_for_offload` byte for byte: the tests below hold both to that on random and mutated
//! packets, so the two paths cannot drift apart unnoticed.

use std::net::Ipv4Addr;

use super::{Inspected, Tuple};
use crate::wire::checksum;
use crate::wire::ipv4::protocol;

/// IPv4, a 20-byte header.
const VERSION_IHL: u8 = 0x45;
/// Flag and offset bits other than DF: set, the packet is a fragment or odd (the reserved bit).
const NOT_DF: u16 = 0xbfff;
const IP_HEADER: usize = 20;
const UDP_END: usize = IP_HEADER + 8;
const TCP_END: usize = IP_HEADER + 20;
/// The L4 checksum's offset from the start of the IP header.
const UDP_CHECKSUM: usize = IP_HEADER + 6;
const TCP_CHECKSUM: usize = IP_HEADER + 16;

/// What `parse` read of a plain packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub src_port: u16,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
    /// The IP total length (Ethernet padding may follow it in the buffer).
    pub total_len: u16,
    /// TCP flags; 0 for UDP.
    pub tcp_flags: u8,
    /// The TTL: above 1.
    pub ttl: u8,
}

impl Plain {
    /// The packet at the start of `ip`, if it is a plain one (see the module comment).
    #[inline(always)]
    pub fn parse(ip: &[u8]) -> Option<Plain> {
        let h: &[u8; UDP_END] = ip.get(..UDP_END)?.try_into().ok()?;
        let total = u16::from_be_bytes([h[2], h[3]]);
        let flags_frag = u16::from_be_bytes([h[6], h[7]]);
        let (ttl, proto) = (h[8], h[9]);
        if h[0] != VERSION_IHL || usize::from(total) > ip.len() || flags_frag & NOT_DF != 0 || ttl <= 1 {
            return None;
        }
        if !header_sum_ok(h) {
            return None;
        }
        let payload = usize::from(total).checked_sub(IP_HEADER)?;
        let tcp_flags = match proto {
            protocol::UDP => {
                let len = usize::from(u16::from_be_bytes([h[24], h[25]]));
                if len < UDP_END - IP_HEADER || len > payload {
                    return None;
                }
                0
            }
            protocol::TCP => {
                let t: &[u8; TCP_END] = ip.get(..TCP_END)?.try_into().ok()?;
                let header = usize::from(t[32] >> 4) * 4;
                if header < TCP_END - IP_HEADER || header > payload {
                    return None;
                }
                t[33]
            }
            _ => return None,
        };
        Some(Plain {
            proto,
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            src_port: u16::from_be_bytes([h[20], h[21]]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            dst_port: u16::from_be_bytes([h[22], h[23]]),
            total_len: total,
            tcp_flags,
            ttl,
        })
    }

    /// What `inspect` returns for the packet (`parse_agrees_with_inspect`): for the general
    /// path, which need not read and check the header again.
    #[inline(always)]
    pub fn inspected(&self) -> Inspected {
        let tuple =
            Tuple { proto: self.proto, src: self.src, src_port: self.src_port, dst: self.dst, dst_port: self.dst_port };
        Inspected {
            tuple,
            header_len: IP_HEADER,
            total_len: self.total_len,
            ttl: self.ttl,
            tcp_flags: self.tcp_flags,
            icmp: None,
        }
    }

    /// The translation of the packet `parse` read from `ip` (the same buffer, unchanged since):
    /// source and destination replaced, TTL decremented, checksums updated incrementally, or,
    /// with `offload`, left for the NIC exactly as `rewrite_for_offload` leaves them.
    ///
    /// The incremental updates (RFC 1624: HC' = ~(~HC + ~m + m')) run on words read in the
    /// machine's byte order, 32 bits at a time where fields allow: one's-complement sums do not
    /// depend on byte order (RFC 1071 2.B), and a 32-bit word is congruent to the sum of its two
    /// halves modulo 0xffff, its complement to theirs; so no byte swaps and no halving, and the
    /// folded result is the one `checksum::Delta` gives (tests below hold it to `rewrite`).
    #[inline(always)]
    pub fn rewrite(&self, ip: &mut [u8], new_src: (Ipv4Addr, u16), new_dst: (Ipv4Addr, u16), offload: bool) {
        let (l4_end, l4_checksum) =
            if self.proto == protocol::TCP { (TCP_END, TCP_CHECKSUM) } else { (UDP_END, UDP_CHECKSUM) };
        let Some(h) = ip.get_mut(..l4_end) else {
            debug_assert!(false, "rewrite of a buffer parse did not read");
            return;
        };
        let word32 = |h: &[u8], at: usize| u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let src = u32::from_ne_bytes(new_src.0.octets());
        let dst = u32::from_ne_bytes(new_dst.0.octets());
        let (sp, dp) = (new_src.1.to_be_bytes(), new_dst.1.to_be_bytes());
        let ports = u32::from_ne_bytes([sp[0], sp[1], dp[0], dp[1]]);
        // ~m + m' over both addresses, for both checksums (the L4 one through its pseudo header).
        let addrs = u64::from(!word32(h, 12)) + u64::from(!word32(h, 16)) + u64::from(src) + u64::from(dst);
        let l4 = if offload {
            let len = if self.proto == protocol::TCP {
                self.total_len - IP_HEADER as u16
            } else {
                u16::from_be_bytes([h[24], h[25]])
            };
            checksum::pseudo_header(new_src.0, new_dst.0, self.proto, len).to_be_bytes()
        } else {
            let old = u16::from_ne_bytes([h[l4_checksum], h[l4_checksum + 1]]);
            let updated = !checksum::fold(u64::from(!old) + addrs + u64::from(!word32(h, 20)) + u64::from(ports));
            let updated = match self.proto {
                protocol::TCP => updated,
                // UDP: a checksum of 0 ("none") stays 0; a result of 0 goes out as 0xffff. Both
                // read the same in either byte order.
                _ if old == 0 => 0,
                _ => checksum::udp_on_wire(updated),
            };
            updated.to_ne_bytes()
        };
        let ttl = h[8];
        let ip_checksum = if offload {
            [0, 0]
        } else {
            // TTL shares a 16-bit word with the protocol; in the machine's order as the rest.
            let word = u16::from_ne_bytes([ttl, self.proto]);
            let after = u16::from_ne_bytes([ttl - 1, self.proto]);
            let old = u16::from_ne_bytes([h[10], h[11]]);
            (!checksum::fold(u64::from(!old) + addrs + u64::from(!word) + u64::from(after))).to_ne_bytes()
        };
        h[8] = ttl - 1;
        h[10..12].copy_from_slice(&ip_checksum);
        h[12..16].copy_from_slice(&src.to_ne_bytes());
        h[16..20].copy_from_slice(&dst.to_ne_bytes());
        h[20..24].copy_from_slice(&ports.to_ne_bytes());
        h[l4_checksum..l4_checksum + 2].copy_from_slice(&l4);
    }
}

/// Whether a 20-byte IPv4 header's checksum is right: its one's-complement sum is all ones.
/// Summed as five 32-bit words (the sum does not depend on byte order, RFC 1071).
#[inline(always)]
fn header_sum_ok(h: &[u8; UDP_END]) -> bool {
    let mut sum = 0u64;
    for i in 0..5 {
        sum += u64::from(u32::from_ne_bytes([h[4 * i], h[4 * i + 1], h[4 * i + 2], h[4 * i + 3]]));
    }
    checksum::fold(sum) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::nat::{inspect, rewrite, rewrite_for_offload};
    use crate::wire::tcp::Flags;

    /// What `inspect` says of a packet, in `Plain`'s terms, if it is one `parse` must accept.
    fn expected(ip: &[u8]) -> Option<Plain> {
        let i = inspect(ip).ok()?;
        let plain = i.header_len == 20
            && (i.tuple.proto == protocol::TCP || i.tuple.proto == protocol::UDP)
            && ip[6] & 0x80 == 0;
        plain.then_some(Plain {
            proto: i.tuple.proto,
            src: i.tuple.src,
            src_port: i.tuple.src_port,
            dst: i.tuple.dst,
            dst_port: i.tuple.dst_port,
            total_len: i.total_len,
            tcp_flags: i.tcp_flags,
            ttl: i.ttl,
        })
    }

    fn samples(seed: u64) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for n in 0..64u64 {
            let ttl = rng.below(4) as u8 + if n % 2 == 0 { 0 } else { 60 };
            let len = rng.below(40);
            let payload = rng.bytes(len);
            let mut p = match n % 4 {
                0 => udp_packet(CLIENT, VIP, ttl, &payload, true, &[]),
                1 => udp_packet(BACKEND, LOCAL, ttl, &payload, false, &[]),
                2 => tcp_packet(CLIENT, VIP, ttl, Flags::ACK, &payload, &[]),
                _ => tcp_packet(BACKEND, LOCAL, ttl, Flags::SYN | Flags::ACK, &payload, &[2, 4, 5, 0xb4]),
            };
            if n % 8 == 7 {
                p.extend_from_slice(&[0; 6]); // Ethernet padding
            }
            out.push(p);
        }
        out.push(udp_packet(CLIENT, VIP, 64, b"opts", true, &IP_OPTIONS));
        out
    }

    /// Single-byte changes anywhere in the first 44 bytes, truncations, and the packet whole:
    /// `parse` accepts exactly what `inspect` accepts as plain, with the same reading.
    #[test]
    fn parse_agrees_with_inspect() {
        let mut rng = Rng::new(7);
        let (mut accepted, mut refused) = (0, 0);
        for p in samples(1) {
            let mut cases = vec![p.clone()];
            for cut in [19, 20, 27, 28, 39, 40] {
                cases.push(p[..cut.min(p.len())].to_vec());
            }
            for _ in 0..200 {
                let mut q = p.clone();
                let at = rng.below(44.min(q.len()));
                q[at] ^= 1 << rng.below(8);
                if rng.below(2) == 0 {
                    // Keep the header checksum right, so that the change itself is judged.
                    if let Ok(mut ip) = crate::wire::ipv4::Packet::new_checked(&mut q[..]) {
                        ip.fill_checksum();
                    }
                }
                cases.push(q);
            }
            for case in cases {
                let got = Plain::parse(&case);
                assert_eq!(got, expected(&case), "{case:02x?}");
                if let Some(plain) = got {
                    assert_eq!(Ok(plain.inspected()), inspect(&case), "{case:02x?}");
                }
                if got.is_some() {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
        assert!(accepted > 1000 && refused > 1000, "both sides exercised: {accepted} / {refused}");
    }

    /// `Plain::rewrite` leaves exactly the bytes `rewrite` and `rewrite_for_offload` leave.
    #[test]
    fn rewrite_agrees_with_the_general_rewrite() {
        let mut rng = Rng::new(11);
        let mut checked = 0;
        for p in samples(2) {
            let Some(plain) = Plain::parse(&p) else { continue };
            for offload in [false, true] {
                for _ in 0..200 {
                    let (src, dst) = (rng.endpoint(), rng.endpoint());
                    let (mut fast, mut general) = (p.clone(), p.clone());
                    plain.rewrite(&mut fast, src, dst, offload);
                    if offload {
                        rewrite_for_offload(&mut general, src, dst).unwrap();
                    } else {
                        rewrite(&mut general, src, dst).unwrap();
                    }
                    assert_eq!(fast, general, "offload {offload}, {src:?} -> {dst:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000);
    }
}
