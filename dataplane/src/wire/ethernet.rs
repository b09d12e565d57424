//! Ethernet II frames (no 802.1Q tag handling yet: tagged frames go to the kernel).

use super::{read_u16, write_u16, Error, MacAddr, Result};

mod field {
    use std::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

pub const HEADER_LEN: usize = field::PAYLOAD;

/// EtherType values Sluice distinguishes.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
}

pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    pub fn destination(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::DESTINATION].try_into().expect("6 bytes"))
    }

    pub fn source(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::SOURCE].try_into().expect("6 bytes"))
    }

    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_destination(&mut self, mac: MacAddr) -> &mut Self {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac.0);
        self
    }

    pub fn set_source(&mut self, mac: MacAddr) -> &mut Self {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac.0);
        self
    }

    pub fn set_ethertype(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, value);
        self
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 16] =
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0xaa, 0xbb];

    #[test]
    fn reads_fields() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.destination(), MacAddr::BROADCAST);
        assert_eq!(f.source(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn refuses_runt() {
        assert_eq!(Frame::new_checked(&FRAME[..13]).err(), Some(Error::Truncated));
    }

    #[test]
    fn writes_fields() {
        let mut buf = FRAME;
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        f.set_destination(MacAddr([1, 2, 3, 4, 5, 6])).set_ethertype(ethertype::IPV4);
        assert_eq!(&buf[..6], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&buf[12..14], &[0x08, 0x00]);
    }
}
