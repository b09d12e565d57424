//! FULLNAT on plain byte buffers: what a worker needs to check, rewrite and answer IPv4 packets,
//! with no knowledge of mbufs, sessions or ports.
//!
//! A forwarded packet gets both addresses and both ports replaced: a client's packet to a VIP
//! leaves as local address -> backend, the backend's answer leaves as VIP -> client.
//!
//! - `inspect` validates a packet and extracts its 5-tuple (`Tuple`), or says why it is refused
//!   (`Refusal`, whose `name()` is the drop-reason metric label).
//! - `rewrite` / `rewrite_for_offload` do the translation in place, TTL decremented.
//! - `echo_reply` answers a ping to one of our addresses in place.
//! - `quoted_tuple` / `translate_error` relay ICMP errors about a session to its other side.
//! - `time_exceeded` builds the error for a packet whose TTL ran out here.
//!
//! Owns nothing: every function works on the slice it is given, starting at the IP header
//! (Ethernet padding may follow the IP total length and is left alone).
//! On the packet path (`inspect`, `rewrite*`, `echo_reply`, `quoted_tuple`): no allocation,
//! no lock, no panic on any input, and checksums only ever updated incrementally (RFC 1624),
//! which also keeps a packet corrupted on the way in detectably corrupted on the way out.

mod icmp_error;
mod inspect;
mod plain;
pub mod proxy;
mod reset;
mod rewrite;
pub mod shift;
pub mod syn;
mod time_exceeded;
pub mod toa;

#[cfg(test)]
mod robustness;
#[cfg(test)]
pub(crate) mod testkit;

use std::fmt;
use std::net::Ipv4Addr;

use crate::wire;
use crate::wire::{read_u32, write_u32};

pub use icmp_error::{quoted_tuple, translate_error};
pub use inspect::inspect;
pub use plain::Plain;
pub use reset::tcp_reset;
pub use rewrite::{echo_reply, rewrite, rewrite_for_offload};
pub use time_exceeded::{frag_needed, time_exceeded};

/// The 5-tuple of an IPv4 TCP/UDP packet as seen on the wire.
///
/// ICMP echo: a request carries its identifier as `src_port` (`dst_port` 0), a reply as
/// `dst_port` (`src_port` 0), so that a reply's tuple is the reverse of its request's, as for
/// TCP and UDP, and `rewrite` takes the new identifier from the same place. Other ICMP: ports 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub src_port: u16,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
}

impl Tuple {
    /// The tuple of a packet going the other way.
    #[inline]
    pub fn reversed(&self) -> Tuple {
        Tuple { proto: self.proto, src: self.dst, src_port: self.dst_port, dst: self.src, dst_port: self.src_port }
    }
}

/// What `inspect` learned about an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspected {
    pub tuple: Tuple,
    /// IP header length in bytes, options included.
    pub header_len: usize,
    /// The IP total length (the packet without any Ethernet padding after it).
    pub total_len: u16,
    pub ttl: u8,
    /// TCP flags (`wire::tcp::Flags` bits); 0 for other protocols.
    pub tcp_flags: u8,
    /// The kind of ICMP message; `None` for TCP and UDP.
    pub icmp: Option<IcmpKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    EchoRequest,
    EchoReply,
    /// Destination unreachable, time exceeded or parameter problem (types 3, 11, 12): carries
    /// the start of the packet it is about (`quoted_tuple`).
    Error,
    Other,
}

/// Why a packet is refused. Each maps to a drop-reason metric label via `name()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Shorter than a header, or than a length field says.
    Truncated,
    /// A header field the format does not allow (version, header length, L4 length...).
    BadHeader,
    BadIpChecksum,
    /// Any IPv4 fragment: FULLNAT needs the ports, which only the first fragment has.
    Fragment,
    /// TTL 0 or 1: forwarding would take it to 0. The caller may send `time_exceeded`.
    TtlExpired,
    /// Not TCP, UDP or ICMP; or, for a function that handles only some ICMP messages
    /// (echo request, errors), an ICMP message of another type.
    UnsupportedProtocol,
    /// `time_exceeded` only: no error may be sent about this packet (it is itself an ICMP
    /// error, or it came from or went to a broadcast, multicast or otherwise non-unicast
    /// address; RFC 1122 3.2.2, RFC 1812 4.3.2.7). Not a drop reason of its own: the packet
    /// was already counted under `ttl_expired`.
    IcmpErrorSuppressed,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::Truncated,
        Refusal::BadHeader,
        Refusal::BadIpChecksum,
        Refusal::Fragment,
        Refusal::TtlExpired,
        Refusal::UnsupportedProtocol,
        Refusal::IcmpErrorSuppressed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::Truncated => "truncated",
            Refusal::BadHeader => "bad_header",
            Refusal::BadIpChecksum => "bad_ip_checksum",
            Refusal::Fragment => "fragment",
            Refusal::TtlExpired => "ttl_expired",
            Refusal::UnsupportedProtocol => "unsupported_protocol",
            Refusal::IcmpErrorSuppressed => "icmp_error_suppressed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Refusal {}

impl From<wire::Error> for Refusal {
    #[inline]
    fn from(e: wire::Error) -> Refusal {
        match e {
            wire::Error::Truncated => Refusal::Truncated,
            wire::Error::Malformed => Refusal::BadHeader,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_are_metric_labels() {
        let names: Vec<&str> = Refusal::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "truncated",
                "bad_header",
                "bad_ip_checksum",
                "fragment",
                "ttl_expired",
                "unsupported_protocol",
                "icmp_error_suppressed"
            ]
        );
        for n in names {
            assert!(n.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'));
        }
        assert_eq!(Refusal::from(wire::Error::Malformed), Refusal::BadHeader);
        assert_eq!(Refusal::TtlExpired.to_string(), "ttl_expired");
    }

    #[test]
    fn reversed_tuple() {
        let t = Tuple {
            proto: 6,
            src: Ipv4Addr::new(1, 2, 3, 4),
            src_port: 5,
            dst: Ipv4Addr::new(6, 7, 8, 9),
            dst_port: 10,
        };
        assert_eq!(t.reversed().reversed(), t);
        assert_eq!((t.reversed().src, t.reversed().src_port), (t.dst, t.dst_port));
    }
}
