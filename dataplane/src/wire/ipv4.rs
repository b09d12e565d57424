//! IPv4 headers (RFC 791), options included. This view checks the header only; the payload
//! length is taken from the total length field, never from the buffer.

use std::net::Ipv4Addr;

use super::{read_u16, Error, Result};

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

pub const MIN_HEADER_LEN: usize = 20;

pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
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

    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }

    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// True for any fragment: more-fragments set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & 0x3fff != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[field::SRC], b[field::SRC + 1], b[field::SRC + 2], b[field::SRC + 3])
    }

    pub fn dst(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[field::DST], b[field::DST + 1], b[field::DST + 2], b[field::DST + 3])
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 198.18.0.2 -> 198.18.0.10, UDP, 28 bytes total.
    const HEADER: [u8; 28] = [
        0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 10, 0x30, 0x39, 0, 53, 0, 8, 0, 0,
    ];

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
}
