//! The Toeplitz hash that NICs use for receive-side scaling (RSS), as Microsoft's RSS
//! specification defines it, computed in software so that Sluice can predict which rx queue
//! the NIC will deliver a packet to.
//!
//! The hash: for every bit of the input, most significant bit of the first byte first, that is
//! set, XOR into the result the 32 bits of the key that start at the same bit offset. Key bits
//! past the end of the key count as zero (a NIC's key is always long enough: 40 bytes cover a
//! 36-byte input, the longest, IPv6 with ports).
//!
//! Two ways to compute it:
//! - `hash`: bit by bit, straight from the definition; no table, no allocation. About 8
//!   shift-and-XOR steps per input byte. The reference, and fine for an occasional hash.
//! - `Toeplitz`: a per-key table with, for each input byte position and each of its 256 values,
//!   the XOR of the key windows of the bits set in that value. A hash is then one lookup and one
//!   XOR per input byte (12 for an IPv4 tuple). The table costs 1 KiB per key byte (40 KiB for
//!   a 40-byte key, of which an IPv4 tuple reads 12 KiB) and is built once, off the packet path.
//!
//! The hash is linear over GF(2): `hash(a ^ b) == hash(a) ^ hash(b)` for inputs of equal
//! length. So when only the destination port changes between candidates (choosing a local
//! port), the hash of the rest of the tuple is computed once and each candidate costs two
//! lookups (`Toeplitz::byte`).

use std::net::Ipv4Addr;

/// The 40-byte key of Microsoft's "Verifying the RSS Hash Calculation" suite, which many NICs
/// (Intel's among them) also use by default. Other NICs have other defaults: read the key a
/// port actually uses from the port rather than assuming this one.
pub const MS_DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// Position in `ipv4_tuple_input` of the destination port's two bytes.
pub const IPV4_TUPLE_DST_PORT: usize = 10;

/// The Toeplitz hash of `input` under `key`, bit by bit.
pub fn hash(key: &[u8], input: &[u8]) -> u32 {
    let mut result = 0;
    for (position, &byte) in input.iter().enumerate() {
        let window = key_window(key, position);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= (window >> (8 - bit)) as u32;
            }
        }
    }
    result
}

/// The RSS input for an IPv4 packet with ports (TCP or UDP): source address, destination
/// address, source port, destination port, each in network byte order.
pub fn ipv4_tuple_input(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> [u8; 12] {
    let mut input = [0; 12];
    input[0..4].copy_from_slice(&src.octets());
    input[4..8].copy_from_slice(&dst.octets());
    input[8..10].copy_from_slice(&src_port.to_be_bytes());
    input[IPV4_TUPLE_DST_PORT..12].copy_from_slice(&dst_port.to_be_bytes());
    input
}

/// The RSS input for an IPv4 packet hashed on its addresses only (fragments, other protocols):
/// source address, then destination address.
pub fn ipv4_input(src: Ipv4Addr, dst: Ipv4Addr) -> [u8; 8] {
    let mut input = [0; 8];
    input[0..4].copy_from_slice(&src.octets());
    input[4..8].copy_from_slice(&dst.octets());
    input
}

/// A key's lookup table: `hash` in one lookup per input byte.
#[derive(Clone)]
pub struct Toeplitz {
    /// Row `p`, column `v`: what input byte `v` at position `p` contributes to the hash.
    rows: Box<[[u32; 256]]>,
}

impl Toeplitz {
    /// The table of `key`: one row per key byte (input bytes past the key contribute nothing,
    /// as in `hash`). Allocates 1 KiB per key byte.
    pub fn new(key: &[u8]) -> Toeplitz {
        let mut rows = vec![[0u32; 256]; key.len()].into_boxed_slice();
        for (position, row) in rows.iter_mut().enumerate() {
            let window = key_window(key, position);
            // Each value's entry is that of the value without its lowest set bit, XOR the
            // window of that bit; entries for smaller values are always filled first.
            for value in 1..256usize {
                // Counted from the least significant bit: that is bit `7 - lowest` of `hash`.
                let lowest = value.trailing_zeros() as usize;
                let bit_window = (window >> (lowest + 1)) as u32;
                row[value] = row[value & (value - 1)] ^ bit_window;
            }
        }
        Toeplitz { rows }
    }

    /// The Toeplitz hash of `input`; equal to `hash(key, input)`.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input.iter().zip(self.rows.iter()).fold(0, |acc, (&byte, row)| acc ^ row[byte as usize])
    }

    /// What input byte `value` at `position` contributes to a hash: a hash is the XOR of its
    /// bytes' contributions. 0 for a position past the key.
    #[inline]
    pub fn byte(&self, position: usize, value: u8) -> u32 {
        self.rows.get(position).map_or(0, |row| row[value as usize])
    }
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Toeplitz({} rows)", self.rows.len())
    }
}

/// Key bits `8 * position` to `8 * position + 39` in the low 40 bits: the 32-bit windows of the
/// eight bits of input byte `position`, bit `b` (0 = most significant) at `>> (8 - b)`.
#[inline]
fn key_window(key: &[u8], position: usize) -> u64 {
    (0..5).fold(0u64, |acc, i| (acc << 8) | u64::from(key.get(position + i).copied().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vector {
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        ipv4: u32,
        ipv4_tcp: u32,
    }

    /// Every row of the IPv4 table of Microsoft's "Verifying the RSS Hash Calculation". The
    /// table lists the destination first: the first row is the packet 66.9.149.187:2794 ->
    /// 161.142.100.80:1766, whose input starts with 66.9.149.187.
    fn microsoft_ipv4_vectors() -> [Vector; 5] {
        let v = |dst: [u8; 4], dp, src: [u8; 4], sp, ipv4, ipv4_tcp| Vector {
            src: (Ipv4Addr::from(src), sp),
            dst: (Ipv4Addr::from(dst), dp),
            ipv4,
            ipv4_tcp,
        };
        // destination, source, IPv4 only, IPv4 with TCP ports: as the table has them.
        [
            v([161, 142, 100, 80], 1766, [66, 9, 149, 187], 2794, 0x323e_8fc2, 0x51cc_c178),
            v([65, 69, 140, 83], 4739, [199, 92, 111, 2], 14230, 0xd718_262a, 0xc626_b0ea),
            v([12, 22, 207, 184], 38024, [24, 19, 198, 95], 12898, 0xd2d0_a5de, 0x5c2b_394a),
            v([209, 142, 163, 6], 2217, [38, 27, 205, 30], 48228, 0x8298_9176, 0xafc7_327f),
            v([202, 188, 127, 2], 1303, [153, 39, 163, 191], 44251, 0x5d18_09c5, 0x10e8_28a2),
        ]
    }

    #[test]
    fn microsoft_vectors_bit_by_bit() {
        for v in microsoft_ipv4_vectors() {
            let tuple = ipv4_tuple_input(v.src.0, v.dst.0, v.src.1, v.dst.1);
            assert_eq!(hash(&MS_DEFAULT_KEY, &tuple), v.ipv4_tcp, "{:?} -> {:?} with ports", v.src, v.dst);
            let addrs = ipv4_input(v.src.0, v.dst.0);
            assert_eq!(hash(&MS_DEFAULT_KEY, &addrs), v.ipv4, "{:?} -> {:?} addresses only", v.src, v.dst);
        }
    }

    #[test]
    fn microsoft_vectors_by_table() {
        let table = Toeplitz::new(&MS_DEFAULT_KEY);
        for v in microsoft_ipv4_vectors() {
            assert_eq!(table.hash(&ipv4_tuple_input(v.src.0, v.dst.0, v.src.1, v.dst.1)), v.ipv4_tcp);
            assert_eq!(table.hash(&ipv4_input(v.src.0, v.dst.0)), v.ipv4);
        }
    }

    #[test]
    fn input_layout_is_network_order() {
        let tuple = ipv4_tuple_input(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8), 0x0a0b, 0x0c0d);
        assert_eq!(tuple, [1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(ipv4_input(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)), [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
        (0..len).map(|_| splitmix(state) as u8).collect()
    }

    #[test]
    fn table_agrees_with_bit_by_bit_and_is_linear() {
        let mut state = 11;
        for round in 0..200 {
            let key = random_bytes(&mut state, if round % 4 == 0 { 52 } else { 40 });
            let table = Toeplitz::new(&key);
            let len = (splitmix(&mut state) % 40) as usize;
            let a = random_bytes(&mut state, len);
            let b = random_bytes(&mut state, len);
            assert_eq!(table.hash(&a), hash(&key, &a));
            let xor: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
            assert_eq!(hash(&key, &xor), hash(&key, &a) ^ hash(&key, &b), "linear");
            let by_bytes = a.iter().enumerate().fold(0, |acc, (p, &v)| acc ^ table.byte(p, v));
            assert_eq!(by_bytes, table.hash(&a));
        }
    }

    #[test]
    fn short_keys_and_long_inputs_do_not_panic() {
        assert_eq!(hash(&[], &[0xff; 12]), 0);
        assert_eq!(Toeplitz::new(&[]).hash(&[0xff; 12]), 0);
        let key = [0xffu8; 4];
        // Bit 0's window is the whole key; later bits see zeros shifted in.
        assert_eq!(hash(&key, &[0x80]), 0xffff_ffff);
        assert_eq!(hash(&key, &[0x01]), 0xffff_ff80);
        assert_eq!(
            Toeplitz::new(&key).hash(&[0x81, 0xff, 0xff, 0xff, 0xff, 0xff]),
            hash(&key, &[0x81, 0xff, 0xff, 0xff, 0xff, 0xff])
        );
        assert_eq!(Toeplitz::new(&key).byte(4, 0xff), 0);
    }

    /// DPDK's own software Toeplitz (`rte_softrss`, a pure inline function: no EAL needed)
    /// agrees, on the same key and tuples. It takes the tuple as host-order 32-bit words.
    #[cfg(feature = "dpdk")]
    #[test]
    fn agrees_with_dpdk_softrss() {
        let mut state = 5;
        let table = Toeplitz::new(&MS_DEFAULT_KEY);
        for _ in 0..1000 {
            let r = splitmix(&mut state);
            let src = Ipv4Addr::from(r as u32);
            let dst = Ipv4Addr::from((r >> 32) as u32);
            let ports = splitmix(&mut state) as u32;
            let tuple = ipv4_tuple_input(src, dst, (ports >> 16) as u16, ports as u16);
            let mut words = [u32::from(src), u32::from(dst), ports];
            // SAFETY: three words of input, a 40-byte key (the function reads key word
            // `input_len`, i.e. key bytes up to 16).
            let dpdk = unsafe { dpdk_sys::rte_softrss(words.as_mut_ptr(), 3, MS_DEFAULT_KEY.as_ptr()) };
            assert_eq!(table.hash(&tuple), dpdk);
        }
    }
}
