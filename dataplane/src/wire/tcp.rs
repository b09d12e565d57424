//! TCP segments (RFC 9293). The view is given the IP payload: the segment is the whole buffer,
//! so slice it at the IP total length first (`ipv4::Packet::payload` does).

use std::fmt;
use std::net::Ipv4Addr;

use super::{checksum, ipv4, read_u16, read_u32, write_u16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

pub const HEADER_LEN: usize = 20;

/// Byte offsets of the header fields, for code that rewrites them around a checksum.
pub mod offset {
    pub const SRC_PORT: usize = super::field::SRC_PORT;
    pub const DST_PORT: usize = super::field::DST_PORT;
    pub const SEQ: usize = super::field::SEQ;
    pub const ACK: usize = super::field::ACK;
    pub const DATA_OFF: usize = super::field::DATA_OFF;
    pub const FLAGS: usize = super::field::FLAGS;
    pub const WINDOW: usize = super::field::WINDOW;
    pub const CHECKSUM: usize = super::field::CHECKSUM;
}

/// The control bits of byte 13.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    pub const ECE: Flags = Flags(0x40);
    pub const CWR: Flags = Flags(0x80);

    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any flag of `other` is set.
    #[inline]
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    #[inline]
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// The header length a TCP header's data offset gives, in bytes, options included, without
/// any check: for segments already validated. Panics on a slice shorter than 13 bytes.
#[inline]
pub fn header_len(tcp: &[u8]) -> usize {
    usize::from(tcp[field::DATA_OFF] >> 4) * 4
}

pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// At least a fixed header, and a data offset of at least 5 words that fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Packet { buffer };
        let header = p.header_len();
        if header < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    #[inline]
    pub fn seq(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK)
    }

    /// The header length in bytes, options included (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        header_len(self.buffer.as_ref())
    }

    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True if the checksum is right over the pseudo header and the whole segment.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let segment = self.buffer.as_ref();
        match u16::try_from(segment.len()) {
            Ok(len) => {
                checksum::add(checksum::pseudo_header(src, dst, ipv4::protocol::TCP, len), checksum::sum(segment))
                    == 0xffff
            }
            Err(_) => false,
        }
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

    #[inline]
    pub fn set_seq(&mut self, value: u32) -> &mut Self {
        self.buffer.as_mut()[field::SEQ..field::SEQ + 4].copy_from_slice(&value.to_be_bytes());
        self
    }

    #[inline]
    pub fn set_ack(&mut self, value: u32) -> &mut Self {
        self.buffer.as_mut()[field::ACK..field::ACK + 4].copy_from_slice(&value.to_be_bytes());
        self
    }

    #[inline]
    pub fn set_flags(&mut self, flags: Flags) -> &mut Self {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
        self
    }

    #[inline]
    pub fn set_window(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::WINDOW, value);
        self
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
        self
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes the checksum in full over the pseudo header and the segment and stores it.
    /// Panics if the segment is longer than 65535 bytes.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) -> &mut Self {
        self.set_checksum(0);
        let segment = self.buffer.as_ref();
        let len = u16::try_from(segment.len()).expect("TCP segment over 65535 bytes");
        let value = checksum::compute(checksum::pseudo_header(src, dst, ipv4::protocol::TCP, len), segment);
        self.set_checksum(value)
    }
}

/// A high-level TCP segment, for building packets in tests. `options` must be a multiple of 4
/// bytes, at most 40.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub window: u16,
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len() + self.payload.len()
    }

    /// Writes the segment into `buffer[..buffer_len()]` with its checksum for `src` -> `dst`.
    /// Panics if the buffer is too short or the options are not a multiple of 4 up to 40.
    pub fn emit(&self, buffer: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        assert!(self.options.len().is_multiple_of(4) && self.options.len() <= 40, "bad TCP options length");
        let header_len = HEADER_LEN + self.options.len();
        let b = &mut buffer[..self.buffer_len()];
        write_u16(b, field::SRC_PORT, self.src_port);
        write_u16(b, field::DST_PORT, self.dst_port);
        b[field::SEQ..field::SEQ + 4].copy_from_slice(&self.seq.to_be_bytes());
        b[field::ACK..field::ACK + 4].copy_from_slice(&self.ack.to_be_bytes());
        b[field::DATA_OFF] = ((header_len / 4) as u8) << 4;
        b[field::FLAGS] = self.flags.0;
        write_u16(b, field::WINDOW, self.window);
        write_u16(b, field::CHECKSUM, 0);
        write_u16(b, field::URGENT, 0);
        b[HEADER_LEN..header_len].copy_from_slice(self.options);
        b[header_len..].copy_from_slice(self.payload);
        Packet { buffer: b }.fill_checksum(src, dst);
    }

    pub fn parse(p: &Packet<&'a [u8]>) -> Repr<'a> {
        let b: &'a [u8] = p.buffer;
        Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            options: &b[HEADER_LEN..p.header_len()],
            payload: &b[p.header_len()..],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    // MSS 1460, then NOP NOP and SACK permitted.
    const OPTIONS: [u8; 8] = [2, 4, 0x05, 0xb4, 1, 1, 4, 2];

    fn repr<'a>(payload: &'a [u8]) -> Repr<'a> {
        Repr {
            src_port: 40000,
            dst_port: 80,
            seq: 0x0102_0304,
            ack: 0xa0b0_c0d0,
            flags: Flags::SYN | Flags::ACK,
            window: 65535,
            options: &OPTIONS,
            payload,
        }
    }

    fn segment(payload: &[u8]) -> Vec<u8> {
        let r = repr(payload);
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b, SRC, DST);
        b
    }

    #[test]
    fn emits_parses_and_verifies() {
        let b = segment(b"GET /");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert_eq!((p.seq(), p.ack(), p.window()), (0x0102_0304, 0xa0b0_c0d0, 65535));
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.options(), &OPTIONS);
        assert_eq!(p.payload(), b"GET /");
        assert!(p.flags().contains(Flags::SYN) && p.flags().contains(Flags::ACK));
        assert!(!p.flags().intersects(Flags::FIN | Flags::RST | Flags::PSH));
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(198, 18, 0, 11)), "the pseudo header counts");
        assert_eq!(Repr::parse(&p), repr(b"GET /"));
        assert_eq!(format!("{:?}", p.flags()), "SYN|ACK");
    }

    #[test]
    fn known_checksum() {
        // A bare SYN, 20 bytes, summed by hand: pseudo c612+0002+c612+000a+0006+0014, header
        // 9c40+0050+0000+0001+0000+0000+5002+0400+0000+0000.
        let r = Repr {
            src_port: 40000,
            dst_port: 80,
            seq: 1,
            ack: 0,
            flags: Flags::SYN,
            window: 1024,
            options: &[],
            payload: &[],
        };
        let mut b = [0u8; 20];
        r.emit(&mut b, SRC, DST);
        let words: u32 =
            [0xc612u32, 0x0002, 0xc612, 0x000a, 0x0006, 0x0014, 0x9c40, 0x0050, 0x0001, 0x5002, 0x0400].iter().sum();
        let folded = (words & 0xffff) + (words >> 16);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().checksum(), !(folded as u16));
    }

    #[test]
    fn setters() {
        let mut b = segment(b"odd");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1).set_dst_port(2).set_seq(3).set_ack(4).set_flags(Flags::FIN).set_window(5);
        assert!(!p.verify_checksum(SRC, DST));
        p.fill_checksum(SRC, DST);
        assert!(p.verify_checksum(SRC, DST));
        p.payload_mut()[0] = b'e';
        assert_eq!((p.src_port(), p.dst_port(), p.seq(), p.ack(), p.window()), (1, 2, 3, 4, 5));
        assert_eq!(p.flags(), Flags::FIN);
        assert_eq!(p.payload(), b"edd");
    }

    #[test]
    fn length_checks() {
        let b = segment(b"");
        assert_eq!(Packet::new_checked(&b[..19]).err(), Some(Error::Truncated));
        assert_eq!(Packet::new_checked(&b[..27]).err(), Some(Error::Truncated), "options cut off");
        let mut c = b.clone();
        c[12] = 0x40;
        assert_eq!(Packet::new_checked(&c[..]).err(), Some(Error::Malformed));
        for len in 0..b.len() {
            let _ = Packet::new_checked(&b[..len]);
        }
    }
}
