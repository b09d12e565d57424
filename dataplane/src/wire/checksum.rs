//! The Internet checksum (RFC 1071): one's-complement sums, the IPv4 header checksum, the
//! TCP/UDP pseudo header, and incremental updates (RFC 1624) for the NAT rewrite path.
//!
//! Conventions: a *sum* is the folded one's-complement sum of big-endian 16-bit words, never
//! complemented; a *checksum* is what goes on the wire, the complement of a sum.
//!
//! UDP has one special rule (RFC 768): a checksum field of 0 means "no checksum", so a computed
//! checksum of 0 is sent as 0xffff (the other zero of one's complement), and a datagram sent
//! with no checksum must keep 0 through a rewrite. `Delta::apply_udp` and `udp_on_wire` do this.

use std::net::Ipv4Addr;

/// Folds a 64-bit end-around-carry accumulator to 16 bits. A non-zero input never folds to 0.
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// One's-complement addition of two sums.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// The folded one's-complement sum of `data` taken as big-endian 16-bit words (an odd last
/// byte is padded with a zero). Sums of slices that start at even offsets of a buffer combine
/// with `add`.
///
/// Reads 8 bytes at a time in native order with end-around carry (2^64 = 1 modulo 0xffff) and
/// swaps the folded result once at the end: the sum is byte-order independent (RFC 1071 2.B).
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        acc = add_carry(acc, u64::from_ne_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        acc = add_carry(acc, u64::from_ne_bytes(word));
    }
    u16::from_be(fold(acc))
}

#[inline(always)]
fn add_carry(acc: u64, word: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(word);
    // With a carry, s <= 2^64 - 2, so adding it back cannot overflow.
    s + carry as u64
}

/// The sum of the TCP/UDP pseudo header: source, destination, zero + protocol, L4 length.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4_len: u16) -> u16 {
    let (s, d) = (u32::from(src), u32::from(dst));
    fold(
        (s >> 16) as u64
            + (s & 0xffff) as u64
            + (d >> 16) as u64
            + (d & 0xffff) as u64
            + protocol as u64
            + l4_len as u64,
    )
}

/// The checksum to store in an IPv4 header: the complement of the sum over `header` (the whole
/// header, options included) with the checksum field (bytes 10..12) taken as zero.
/// `header` must be at least 12 bytes long.
#[inline]
pub fn ipv4_header(header: &[u8]) -> u16 {
    !add(sum(&header[..10]), sum(&header[12..]))
}

/// The checksum to store for a message whose checksum field is already zero in `data` and
/// whose pseudo-header sum (0 for ICMP) is `initial`.
#[inline]
pub fn compute(initial: u16, data: &[u8]) -> u16 {
    !add(initial, sum(data))
}

/// A computed UDP checksum as it goes on the wire: 0 would mean "none", so it becomes 0xffff.
#[inline]
pub fn udp_on_wire(checksum: u16) -> u16 {
    if checksum == 0 {
        0xffff
    } else {
        checksum
    }
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit word of the covered data changed from `old` to
/// `new`: HC' = ~(~HC + ~m + m').
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    Delta::new().u16(old, new).apply(checksum)
}

/// As `update_u16`, for a 32-bit field (an address) at an even offset.
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    Delta::new().u32(old, new).apply(checksum)
}

/// Several field changes accumulated once (the sum of ~m + m' over changed words) and applied
/// to one or more checksums: an address change is computed once and applied to both the IP
/// header checksum and the TCP/UDP checksum, whose pseudo header covers the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta(u64);

impl Delta {
    #[inline]
    pub const fn new() -> Delta {
        Delta(0)
    }

    /// A 16-bit word at an even offset changed from `old` to `new`.
    #[inline]
    pub const fn u16(self, old: u16, new: u16) -> Delta {
        Delta(self.0 + (!old) as u64 + new as u64)
    }

    /// A 32-bit field at an even offset changed from `old` to `new`.
    #[inline]
    pub const fn u32(self, old: u32, new: u32) -> Delta {
        self.u16((old >> 16) as u16, (new >> 16) as u16).u16(old as u16, new as u16)
    }

    /// Both changes.
    #[inline]
    pub const fn plus(self, other: Delta) -> Delta {
        Delta(self.0 + other.0)
    }

    /// The updated checksum. Given a checksum computed in full, the result is exactly what a
    /// full recomputation gives (both lie in 0..=0xfffe and agree modulo 0xffff).
    #[inline]
    pub fn apply(self, checksum: u16) -> u16 {
        !fold((!checksum) as u64 + self.0)
    }

    /// The UDP rule: a checksum of 0 ("none") stays 0; a result of 0 goes out as 0xffff.
    #[inline]
    pub fn apply_udp(self, checksum: u16) -> u16 {
        if checksum == 0 {
            0
        } else {
            udp_on_wire(self.apply(checksum))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition, one word at a time.
    fn naive_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let word = if pair.len() == 2 { u16::from_be_bytes([pair[0], pair[1]]) } else { (pair[0] as u16) << 8 };
            s += word as u32;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn sum_matches_the_definition_for_every_length_and_alignment() {
        let data = pseudo_random_bytes(7, 300);
        for start in 0..4 {
            for end in start..data.len() {
                let d = &data[start..end];
                assert_eq!(sum(d), naive_sum(d), "{start}..{end}");
            }
        }
        assert_eq!(sum(&[0xff; 64]), 0xffff);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
    }

    #[test]
    fn ipv4_header_known_value() {
        // A classic example header; its checksum is b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(ipv4_header(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(sum(&h), 0xffff, "a correct header sums to all ones");
        assert_eq!(ipv4_header(&h), 0xb861, "the stored field is ignored");
    }

    #[test]
    fn pseudo_header_is_the_sum_of_its_bytes() {
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(203, 0, 113, 250));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(pseudo_header(s, d, 6, 1500), naive_sum(&bytes));
    }

    #[test]
    fn incremental_updates_equal_full_recomputation() {
        for seed in 1..200u64 {
            let mut data = pseudo_random_bytes(seed, 40 + (seed as usize % 9));
            data[0..2].copy_from_slice(&[0, 0]);
            let before = compute(0, &data);
            // Change a 16-bit word and a 32-bit word, both at even offsets.
            let r = pseudo_random_bytes(seed * 31, 6);
            let old16 = u16::from_be_bytes([data[6], data[7]]);
            let new16 = u16::from_be_bytes([r[0], r[1]]);
            let old32 = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
            let new32 = u32::from_be_bytes([r[2], r[3], r[4], r[5]]);
            data[6..8].copy_from_slice(&new16.to_be_bytes());
            data[12..16].copy_from_slice(&new32.to_be_bytes());
            let full = compute(0, &data);
            assert_eq!(update_u32(update_u16(before, old16, new16), old32, new32), full, "seed {seed}");
            assert_eq!(Delta::new().u16(old16, new16).u32(old32, new32).apply(before), full);
        }
    }

    #[test]
    fn udp_zero_rules() {
        assert_eq!(Delta::new().u16(1, 2).apply_udp(0), 0, "no checksum stays no checksum");
        // Data whose checksum is 0x0001; adding 1 to a word makes the full checksum 0.
        let before = 0x0001;
        assert_eq!(Delta::new().u16(0x1000, 0x1001).apply(before), 0x0000);
        assert_eq!(Delta::new().u16(0x1000, 0x1001).apply_udp(before), 0xffff);
        assert_eq!(udp_on_wire(0), 0xffff);
        assert_eq!(udp_on_wire(0x1234), 0x1234);
    }

    #[test]
    fn unchanged_fields_change_nothing() {
        for c in [0x0000u16, 0x1234, 0xfffe] {
            assert_eq!(update_u16(c, 0xabcd, 0xabcd), c);
            assert_eq!(update_u32(c, 0xdead_beef, 0xdead_beef), c);
        }
    }
}
