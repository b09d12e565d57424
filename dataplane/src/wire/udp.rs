//! UDP datagrams (RFC 768). The view is given the IP payload; the datagram's extent is its own
//! length field, which must lie within that buffer.

use std::net::Ipv4Addr;

use super::{checksum, ipv4, read_u16, write_u16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

pub const HEADER_LEN: usize = 8;

/// Byte offsets of the header fields, for code that rewrites them around a checksum.
pub mod offset {
    pub const SRC_PORT: usize = super::field::SRC_PORT;
    pub const DST_PORT: usize = super::field::DST_PORT;
    pub const CHECKSUM: usize = super::field::CHECKSUM;
}

pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// At least a header, and a length field of at least 8 that fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = read_u16(b, field::LENGTH) as usize;
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Never true for a checked packet (the length covers at least the header).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }

    /// True if the checksum is right over the pseudo header and the datagram, or absent (0).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = &self.buffer.as_ref()[..self.len() as usize];
        checksum::add(checksum::pseudo_header(src, dst, ipv4::protocol::UDP, self.len()), checksum::sum(datagram))
            == 0xffff
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_src_port(&mut self, port: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
        self
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
        self
    }

    /// Sets the length field. It is not re-checked: keep it within the buffer.
    #[inline]
    pub fn set_len(&mut self, len: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
        self
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
        self
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes the checksum in full over the pseudo header and the datagram and stores it
    /// (0 goes out as 0xffff).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) -> &mut Self {
        self.set_checksum(0);
        let len = self.len();
        let datagram = &self.buffer.as_ref()[..len as usize];
        let value = checksum::compute(checksum::pseudo_header(src, dst, ipv4::protocol::UDP, len), datagram);
        self.set_checksum(checksum::udp_on_wire(value))
    }
}

/// A high-level UDP datagram, for building packets in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes header and payload into `buffer[..buffer_len()]`, with the checksum for `src` ->
    /// `dst`, or none (0) if `with_checksum` is false.
    /// Panics if the buffer is too short or the length exceeds 65535.
    pub fn emit(&self, buffer: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, with_checksum: bool) {
        let len = u16::try_from(self.buffer_len()).expect("UDP length over 65535");
        let b = &mut buffer[..len as usize];
        write_u16(b, field::SRC_PORT, self.src_port);
        write_u16(b, field::DST_PORT, self.dst_port);
        write_u16(b, field::LENGTH, len);
        write_u16(b, field::CHECKSUM, 0);
        b[HEADER_LEN..].copy_from_slice(self.payload);
        if with_checksum {
            Packet { buffer: b }.fill_checksum(src, dst);
        }
    }

    pub fn parse(p: &Packet<&'a [u8]>) -> Repr<'a> {
        let b: &'a [u8] = p.buffer;
        Repr { src_port: p.src_port(), dst_port: p.dst_port(), payload: &b[HEADER_LEN..p.len() as usize] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    fn datagram(payload: &[u8], with_checksum: bool) -> Vec<u8> {
        let repr = Repr { src_port: 40000, dst_port: 53, payload };
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut b, SRC, DST, with_checksum);
        b
    }

    #[test]
    fn emits_parses_and_verifies() {
        let b = datagram(b"hello", true);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (40000, 53, 13));
        assert_eq!(p.payload(), b"hello");
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(198, 18, 0, 11)), "the pseudo header counts");
        assert_eq!(Repr::parse(&p), Repr { src_port: 40000, dst_port: 53, payload: b"hello" });
    }

    #[test]
    fn known_checksum() {
        // 198.18.0.2:40000 -> 198.18.0.10:53, payload "hi", worked by hand:
        // pseudo c612+0002+c612+000a+0011+000a, header 9c40+0035+000a, data 6869.
        let b = datagram(b"hi", true);
        let words: u32 =
            [0xc612u32, 0x0002, 0xc612, 0x000a, 0x0011, 0x000a, 0x9c40, 0x0035, 0x000a, 0x6869].iter().sum();
        let folded = (words & 0xffff) + (words >> 16);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().checksum(), !(folded as u16));
    }

    #[test]
    fn zero_checksum_means_none() {
        let b = datagram(b"x", false);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.checksum(), 0);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn computed_zero_goes_out_as_ffff() {
        // Choose the payload word that makes the datagram sum to all ones.
        let mut b = datagram(&[0, 0], false);
        let partial = checksum::add(checksum::pseudo_header(SRC, DST, ipv4::protocol::UDP, 10), checksum::sum(&b));
        b[8..10].copy_from_slice(&(!partial).to_be_bytes());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn setters() {
        let mut b = datagram(b"abc", true);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1).set_dst_port(2);
        assert!(!p.verify_checksum(SRC, DST));
        p.fill_checksum(SRC, DST);
        assert!(p.verify_checksum(SRC, DST));
        p.payload_mut()[0] = b'z';
        assert_eq!((p.src_port(), p.dst_port(), p.payload()), (1, 2, &b"zbc"[..]));
    }

    #[test]
    fn length_checks() {
        let b = datagram(b"hello", true);
        assert_eq!(Packet::new_checked(&b[..7]).err(), Some(Error::Truncated));
        assert_eq!(Packet::new_checked(&b[..12]).err(), Some(Error::Truncated), "length field beyond buffer");
        let mut c = b.clone();
        c[5] = 7;
        assert_eq!(Packet::new_checked(&c[..]).err(), Some(Error::Malformed));
        let mut padded = b.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), b"hello", "bytes after the length field are not payload");
        assert!(p.verify_checksum(SRC, DST));
    }
}
