//! IPv4 headers (RFC 791), options included. This view checks the header only; the payload
//! length is taken from the total length field, never from the buffer.

use std::net::Ipv4Addr;

use super::{checksum, read_u16, write_u16, Error, Result};

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const OPTIONS: usize = 20;
}

pub const MIN_HEADER_LEN: usize = 20;
pub const MAX_HEADER_LEN: usize = 60;

/// Byte offsets of the header fields, for code that adjusts checksums around them.
pub mod offset {
    pub const VER_IHL: usize = super::field::VER_IHL;
    pub const TOTAL_LEN: usize = super::field::TOTAL_LEN;
    pub const FLAGS_FRAG: usize = super::field::FLAGS_FRAG;
    pub const TTL: usize = super::field::TTL;
    pub const PROTOCOL: usize = super::field::PROTOCOL;
    pub const CHECKSUM: usize = super::field::CHECKSUM;
    pub const SRC: usize = super::field::SRC;
    pub const DST: usize = super::field::DST;
}

pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// The don't-fragment flag, in the 16-bit flags + fragment offset word.
pub const DONT_FRAGMENT: u16 = 0x4000;
/// More fragments follow this one.
pub const MORE_FRAGMENTS: u16 = 0x2000;
/// More-fragments flag and fragment offset: any of these set makes a fragment.
pub const FRAGMENT_MASK: u16 = 0x3fff;

/// The header length an IPv4 header's IHL gives, in bytes, without any check: for packets
/// already validated (`Packet::new_checked`, `nat::inspect`). Panics on an empty slice.
#[inline]
pub fn header_len(ip: &[u8]) -> usize {
    usize::from(ip[field::VER_IHL] & 0x0f) * 4
}

pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Version 4, a header length of at least 20 bytes that fits the buffer, and a total length
    /// that covers the header and fits the buffer (Ethernet padding may follow it).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let len = buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Packet { buffer };
        if p.buffer.as_ref()[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let (header, total) = (p.header_len(), p.total_len() as usize);
        if header < MIN_HEADER_LEN || total < header {
            return Err(Error::Malformed);
        }
        if len < total {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        header_len(self.buffer.as_ref())
    }

    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The flags + fragment offset word as on the wire.
    #[inline]
    pub fn flags_frag(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG)
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.flags_frag() & DONT_FRAGMENT != 0
    }

    /// True for any fragment: more-fragments set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & FRAGMENT_MASK != 0
    }

    /// The fragment offset in bytes (0 for the first fragment and for whole datagrams).
    #[inline]
    pub fn frag_offset(&self) -> usize {
        ((self.flags_frag() & 0x1fff) as usize) * 8
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[field::SRC], b[field::SRC + 1], b[field::SRC + 2], b[field::SRC + 3])
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[field::DST], b[field::DST + 1], b[field::DST + 2], b[field::DST + 3])
    }

    /// The option bytes between the fixed header and the payload (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }

    /// True if the header checksum is right (the header, options included, sums to all ones).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.header()) == 0xffff
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_tos(&mut self, value: u8) -> &mut Self {
        self.buffer.as_mut()[field::TOS] = value;
        self
    }

    #[inline]
    pub fn set_ident(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
        self
    }

    #[inline]
    pub fn set_flags_frag(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::FLAGS_FRAG, value);
        self
    }

    #[inline]
    pub fn set_ttl(&mut self, value: u8) -> &mut Self {
        self.buffer.as_mut()[field::TTL] = value;
        self
    }

    #[inline]
    pub fn set_protocol(&mut self, value: u8) -> &mut Self {
        self.buffer.as_mut()[field::PROTOCOL] = value;
        self
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
        self
    }

    #[inline]
    pub fn set_src(&mut self, addr: Ipv4Addr) -> &mut Self {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&addr.octets());
        self
    }

    #[inline]
    pub fn set_dst(&mut self, addr: Ipv4Addr) -> &mut Self {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&addr.octets());
        self
    }

    /// Computes the header checksum in full and stores it (building packets; the NAT path
    /// updates it incrementally instead).
    pub fn fill_checksum(&mut self) -> &mut Self {
        let value = checksum::ipv4_header(self.header());
        self.set_checksum(value)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..self.total_len() as usize;
        &mut self.buffer.as_mut()[range]
    }
}

/// A high-level IPv4 header without options, for building packets (tests, ICMP errors).
/// Identification 0, no flags, TOS 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub payload_len: usize,
}

impl Repr {
    /// Reads the header of a checked packet (options are skipped).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            payload_len: p.total_len() as usize - p.header_len(),
        }
    }

    /// Header plus payload length.
    pub fn total_len(&self) -> usize {
        MIN_HEADER_LEN + self.payload_len
    }

    /// Writes the 20-byte header with its checksum into `buffer[..20]`.
    /// Panics if the buffer is shorter than 20 bytes or the total length exceeds 65535.
    pub fn emit(&self, buffer: &mut [u8]) {
        self.emit_with_options(buffer, &[]);
    }

    /// Writes the header followed by `options` (a multiple of 4 bytes, at most 40) with its
    /// checksum; the payload starts at `20 + options.len()`.
    /// Panics if the options or the buffer do not fit, or the total length exceeds 65535.
    pub fn emit_with_options(&self, buffer: &mut [u8], options: &[u8]) {
        assert!(
            options.len().is_multiple_of(4) && options.len() <= MAX_HEADER_LEN - MIN_HEADER_LEN,
            "bad IPv4 options length"
        );
        let header_len = MIN_HEADER_LEN + options.len();
        let total = u16::try_from(header_len + self.payload_len).expect("IPv4 total length over 65535");
        let b = &mut buffer[..header_len];
        b[field::VER_IHL] = 0x40 | (header_len / 4) as u8;
        b[field::TOS] = 0;
        write_u16(b, field::TOTAL_LEN, total);
        write_u16(b, field::IDENT, 0);
        write_u16(b, field::FLAGS_FRAG, 0);
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::SRC..field::SRC + 4].copy_from_slice(&self.src.octets());
        b[field::DST..field::DST + 4].copy_from_slice(&self.dst.octets());
        b[field::OPTIONS..].copy_from_slice(options);
        let value = checksum::ipv4_header(b);
        write_u16(b, field::CHECKSUM, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 198.18.0.2 -> 198.18.0.10, UDP, 28 bytes total.
    const HEADER: [u8; 28] =
        [0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 10, 0x30, 0x39, 0, 53, 0, 8, 0, 0];

    #[test]
    fn reads_fields() {
        let p = Packet::new_checked(&HEADER[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.protocol(), protocol::UDP);
        assert_eq!(p.src(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.dst(), Ipv4Addr::new(198, 18, 0, 10));
        assert!(!p.is_fragment(), "DF alone is not a fragment");
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn refuses_bad_lengths_and_version() {
        assert_eq!(Packet::new_checked(&HEADER[..19]).err(), Some(Error::Truncated));
        assert_eq!(Packet::new_checked(&HEADER[..27]).err(), Some(Error::Truncated));
        let mut b = HEADER;
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        let mut b = HEADER;
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        let mut b = HEADER;
        b[3] = 12;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn sees_fragments() {
        let mut b = HEADER;
        b[6] = 0x20; // more fragments
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
        let mut b = HEADER;
        b[7] = 0x10; // offset 16
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
    }

    #[test]
    fn setters_and_checksum() {
        let mut b = HEADER;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(!p.verify_checksum(), "the fixture has no checksum");
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_src(Ipv4Addr::new(10, 0, 0, 1)).set_dst(Ipv4Addr::new(10, 0, 0, 2)).set_ttl(3);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!((p.src(), p.dst(), p.ttl()), (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 3));
        p.payload_mut()[0] = 0xaa;
        assert_eq!(b[20], 0xaa);
    }

    #[test]
    fn repr_round_trip_with_options() {
        let repr = Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(192, 0, 2, 2),
            protocol: protocol::TCP,
            ttl: 17,
            payload_len: 4,
        };
        let mut b = [0u8; 32];
        // Record route with room for one address (7 bytes) and end of options.
        let options = [7, 7, 4, 0, 0, 0, 0, 0];
        repr.emit_with_options(&mut b, &options);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.options(), &options);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 4);
        assert_eq!(Repr::parse(&p), repr);

        let mut b = [0u8; 24];
        repr.emit(&mut b);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(p.options().is_empty());
        assert_eq!(Repr::parse(&p), repr);
    }

    #[test]
    fn header_longer_than_buffer_is_truncated() {
        let mut b = HEADER;
        b[0] = 0x4f; // 60-byte header in a 28-byte buffer
        b[3] = 60;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
    }
}
