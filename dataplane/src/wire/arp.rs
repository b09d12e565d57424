//! ARP for IPv4 over Ethernet (RFC 826), the only kind Sluice speaks.

use std::net::Ipv4Addr;

use super::{read_u16, write_u16, Error, MacAddr, Result};

mod field {
    use std::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

pub const PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
    Other(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Other(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(op: Operation) -> u16 {
        match op {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Other(v) => v,
        }
    }
}

pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Accepts only Ethernet/IPv4 ARP of full length.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if read_u16(b, field::HTYPE) != 1
            || read_u16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Malformed);
        }
        Ok(Packet { buffer })
    }

    pub fn operation(&self) -> Operation {
        read_u16(self.buffer.as_ref(), field::OPER).into()
    }

    pub fn sender_mac(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::SHA].try_into().expect("6 bytes"))
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::SPA.start)
    }

    pub fn target_mac(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::THA].try_into().expect("6 bytes"))
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::TPA.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Turns a request for an address we own into the reply, in place: `our_mac` answers,
    /// the requester becomes the target.
    pub fn make_reply(&mut self, our_mac: MacAddr) {
        let (requester_mac, requester_ip, asked_ip) = (self.sender_mac(), self.sender_ip(), self.target_ip());
        let b = self.buffer.as_mut();
        write_u16(b, field::OPER, Operation::Reply.into());
        b[field::SHA].copy_from_slice(&our_mac.0);
        b[field::SPA].copy_from_slice(&asked_ip.octets());
        b[field::THA].copy_from_slice(&requester_mac.0);
        b[field::TPA].copy_from_slice(&requester_ip.octets());
    }
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// A high-level ARP packet, for building test frames and gratuitous announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl Repr {
    pub fn emit(&self, b: &mut [u8; PACKET_LEN]) {
        write_u16(b, field::HTYPE, 1);
        write_u16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        write_u16(b, field::OPER, self.operation.into());
        b[field::SHA].copy_from_slice(&self.sender_mac.0);
        b[field::SPA].copy_from_slice(&self.sender_ip.octets());
        b[field::THA].copy_from_slice(&self.target_mac.0);
        b[field::TPA].copy_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> [u8; PACKET_LEN] {
        let mut b = [0u8; PACKET_LEN];
        Repr {
            operation: Operation::Request,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            sender_ip: Ipv4Addr::new(198, 18, 0, 2),
            target_mac: MacAddr::default(),
            target_ip: Ipv4Addr::new(198, 18, 0, 10),
        }
        .emit(&mut b);
        b
    }

    #[test]
    fn parses_request() {
        let b = request();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.target_ip(), Ipv4Addr::new(198, 18, 0, 10));
    }

    #[test]
    fn reply_swaps_roles() {
        let mut b = request();
        let ours = MacAddr([2, 0, 0, 0, 0, 1]);
        Packet::new_checked(&mut b[..]).unwrap().make_reply(ours);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), Operation::Reply);
        assert_eq!(p.sender_mac(), ours);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(p.target_mac(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(p.target_ip(), Ipv4Addr::new(198, 18, 0, 2));
    }

    #[test]
    fn refuses_other_hardware_and_short() {
        let mut b = request();
        assert_eq!(Packet::new_checked(&b[..27]).err(), Some(Error::Truncated));
        b[1] = 6; // IEEE 802 hardware type
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
    }
}
