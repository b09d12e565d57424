//! ICMP for IPv4 (RFC 792, RFC 1191 for frag-needed). The view is given the IP payload: the
//! message is the whole buffer and its checksum covers all of it (no pseudo header).
//! Errors (destination unreachable, time exceeded, parameter problem) carry, after their
//! 8-byte header, the start of the packet that caused them: its IP header and at least 8
//! bytes of what followed.

use super::{checksum, read_u16, write_u16, Error, Result};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const POINTER: usize = 4;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const DATA: usize = 8;
}

pub const HEADER_LEN: usize = field::DATA;

pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;

    /// The error messages of RFC 792, which must never be answered with another error
    /// (RFC 1122 3.2.2).
    pub const fn is_error(t: u8) -> bool {
        matches!(t, DEST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM)
    }

    /// The errors a load balancer relays to the other side of a session: those reporting
    /// that a packet could not be delivered.
    pub const fn is_relayed_error(t: u8) -> bool {
        matches!(t, DEST_UNREACHABLE | TIME_EXCEEDED | PARAMETER_PROBLEM)
    }
}

/// Codes of destination unreachable (type 3).
pub mod unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; the next-hop MTU is in bytes 6..8 (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
}

/// Codes of time exceeded (type 11).
pub mod exceeded {
    pub const TTL: u8 = 0;
    pub const REASSEMBLY: u8 = 1;
}

pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// At least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo request/reply identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo request/reply sequence number.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// Frag-needed (type 3 code 4) next-hop MTU; 0 from routers older than RFC 1191.
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Parameter problem pointer: the offset of the faulty byte in the quoted packet.
    #[inline]
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[field::POINTER]
    }

    /// True for the errors that quote a packet and are relayed (types 3, 11, 12).
    #[inline]
    pub fn is_relayed_error(&self) -> bool {
        msg_type::is_relayed_error(self.msg_type())
    }

    /// Everything after the 8-byte header: echo data, or for an error the quoted packet.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// For an error: the bytes of the packet it quotes, starting at its IP header.
    /// `None` for messages that quote nothing.
    #[inline]
    pub fn quoted(&self) -> Option<&[u8]> {
        if msg_type::is_error(self.msg_type()) {
            Some(self.data())
        } else {
            None
        }
    }

    /// True if the whole message sums to all ones.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) -> &mut Self {
        self.buffer.as_mut()[field::TYPE] = value;
        self
    }

    #[inline]
    pub fn set_code(&mut self, value: u8) -> &mut Self {
        self.buffer.as_mut()[field::CODE] = value;
        self
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
        self
    }

    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
        self
    }

    #[inline]
    pub fn set_echo_seq(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQ, value);
        self
    }

    /// Sets the 4 bytes after the checksum (identifier + sequence, unused + MTU, pointer...).
    #[inline]
    pub fn set_rest_of_header(&mut self, value: [u8; 4]) -> &mut Self {
        self.buffer.as_mut()[field::ECHO_IDENT..field::DATA].copy_from_slice(&value);
        self
    }

    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) -> &mut Self {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, value);
        self
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes the checksum over the whole message and stores it.
    pub fn fill_checksum(&mut self) -> &mut Self {
        self.set_checksum(0);
        let value = checksum::compute(0, self.buffer.as_ref());
        self.set_checksum(value)
    }
}

/// A high-level ICMP message, for building packets (tests, and errors we originate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    /// `next_hop_mtu` is meaningful for code 4 (frag needed) and should be 0 otherwise.
    DestUnreachable {
        code: u8,
        next_hop_mtu: u16,
        quoted: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        quoted: &'a [u8],
    },
    ParameterProblem {
        pointer: u8,
        quoted: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    fn parts(&self) -> (u8, u8, [u8; 4], &'a [u8]) {
        let two = |a: u16, b: u16| {
            let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
            [a[0], a[1], b[0], b[1]]
        };
        match *self {
            Repr::EchoRequest { ident, seq, data } => (msg_type::ECHO_REQUEST, 0, two(ident, seq), data),
            Repr::EchoReply { ident, seq, data } => (msg_type::ECHO_REPLY, 0, two(ident, seq), data),
            Repr::DestUnreachable { code, next_hop_mtu, quoted } => {
                (msg_type::DEST_UNREACHABLE, code, two(0, next_hop_mtu), quoted)
            }
            Repr::TimeExceeded { code, quoted } => (msg_type::TIME_EXCEEDED, code, [0; 4], quoted),
            Repr::ParameterProblem { pointer, quoted } => (msg_type::PARAMETER_PROBLEM, 0, [pointer, 0, 0, 0], quoted),
        }
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.parts().3.len()
    }

    /// Writes the message into `buffer[..buffer_len()]` with its checksum.
    /// Panics if the buffer is too short.
    pub fn emit(&self, buffer: &mut [u8]) {
        let (t, code, rest, data) = self.parts();
        let b = &mut buffer[..HEADER_LEN + data.len()];
        b[field::DATA..].copy_from_slice(data);
        Packet { buffer: b }.set_msg_type(t).set_code(code).set_rest_of_header(rest).fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(repr: Repr) -> Vec<u8> {
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut b);
        b
    }

    #[test]
    fn echo_request_known_bytes() {
        let b = emit(Repr::EchoRequest { ident: 0x1234, seq: 1, data: b"ab" });
        // 0800 + 1234 + 0001 + 6162 = 7b97, complement 8468.
        assert_eq!(b, [8, 0, 0x84, 0x68, 0x12, 0x34, 0, 1, b'a', b'b']);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!((p.msg_type(), p.code(), p.echo_ident(), p.echo_seq()), (8, 0, 0x1234, 1));
        assert_eq!(p.data(), b"ab");
        assert_eq!(p.quoted(), None);
        assert!(!p.is_relayed_error());
    }

    #[test]
    fn echo_reply_and_setters() {
        let mut b = emit(Repr::EchoReply { ident: 7, seq: 9, data: b"odd" });
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), msg_type::ECHO_REPLY);
        p.set_echo_ident(8).set_echo_seq(10);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.data_mut()[0] = b'e';
        assert_eq!((p.echo_ident(), p.echo_seq(), p.data()), (8, 10, &b"edd"[..]));
    }

    #[test]
    fn errors_quote_the_packet() {
        let quoted = [0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 2, 3, 4, 0, 8, 0, 0];
        let b = emit(Repr::DestUnreachable { code: unreachable::FRAG_NEEDED, next_hop_mtu: 1400, quoted: &quoted });
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(p.is_relayed_error());
        assert_eq!((p.msg_type(), p.code(), p.next_hop_mtu()), (3, 4, 1400));
        assert_eq!(p.quoted(), Some(&quoted[..]));
        assert_eq!(&b[4..6], &[0, 0], "unused bytes are zero");

        let b = emit(Repr::TimeExceeded { code: exceeded::TTL, quoted: &quoted });
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!((p.msg_type(), p.code()), (11, 0));
        assert_eq!(p.quoted(), Some(&quoted[..]));

        let b = emit(Repr::ParameterProblem { pointer: 9, quoted: &quoted });
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!((p.msg_type(), p.pointer()), (12, 9));
    }

    #[test]
    fn error_classes() {
        for t in [3, 4, 5, 11, 12] {
            assert!(msg_type::is_error(t));
        }
        for t in [0, 8, 13, 14, 255] {
            assert!(!msg_type::is_error(t));
        }
        assert!(!msg_type::is_relayed_error(msg_type::REDIRECT));
        assert!(msg_type::is_relayed_error(msg_type::TIME_EXCEEDED));
    }

    #[test]
    fn refuses_short() {
        assert_eq!(Packet::new_checked(&[8u8, 0, 0, 0, 0, 0, 0][..]).err(), Some(Error::Truncated));
        assert!(Packet::new_checked(&[8u8, 0, 0, 0, 0, 0, 0, 0][..]).is_ok());
    }
}
