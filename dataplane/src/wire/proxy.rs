//! The PROXY protocol, version 2 (HAProxy's `proxy-protocol.txt`, section 2.2), for IPv4: the
//! binary header a load balancer puts before what it relays so that the server learns the
//! client's address. Sluice writes the PROXY form (client and VIP addresses and ports, for TCP
//! or UDP) before relayed data, and the LOCAL form (no addresses) before its own health checks.

use std::net::Ipv4Addr;

use super::{read_u16, Error, Result};

/// The 12 bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A PROXY header for IPv4: signature, version and command, family, length, then 12 bytes of
/// addresses and ports.
pub const PROXY_LEN: usize = 28;
/// A LOCAL header: no addresses.
pub const LOCAL_LEN: usize = 16;

const VERSION_PROXY: u8 = 0x21;
const VERSION_LOCAL: u8 = 0x20;
const INET_STREAM: u8 = 0x11;
const INET_DGRAM: u8 = 0x12;
const UNSPEC: u8 = 0x00;

/// What a relayed connection or datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// The header telling the server that `client` reached `vip` over `transport`.
pub fn proxy(transport: Transport, client: (Ipv4Addr, u16), vip: (Ipv4Addr, u16)) -> [u8; PROXY_LEN] {
    let mut h = [0u8; PROXY_LEN];
    h[..12].copy_from_slice(&SIGNATURE);
    h[12] = VERSION_PROXY;
    h[13] = match transport {
        Transport::Tcp => INET_STREAM,
        Transport::Udp => INET_DGRAM,
    };
    h[14..16].copy_from_slice(&12u16.to_be_bytes());
    h[16..20].copy_from_slice(&client.0.octets());
    h[20..24].copy_from_slice(&vip.0.octets());
    h[24..26].copy_from_slice(&client.1.to_be_bytes());
    h[26..28].copy_from_slice(&vip.1.to_be_bytes());
    h
}

/// The header of a connection the balancer makes on its own behalf (a health check): the
/// server must use the connection's own addresses.
pub fn local() -> [u8; LOCAL_LEN] {
    let mut h = [0u8; LOCAL_LEN];
    h[..12].copy_from_slice(&SIGNATURE);
    h[12] = VERSION_LOCAL;
    h[13] = UNSPEC;
    h
}

/// A header read back: for tests, and for servers that check what they were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Local,
    Proxy { transport: Transport, client: (Ipv4Addr, u16), vip: (Ipv4Addr, u16) },
}

/// Parses a version 2 header of the IPv4 kinds at the start of `data`; returns it and its
/// length (what follows is the relayed data). Other families and TLVs are refused.
pub fn parse(data: &[u8]) -> Result<(Header, usize)> {
    if data.len() < LOCAL_LEN {
        return Err(Error::Truncated);
    }
    if data[..12] != SIGNATURE {
        return Err(Error::Malformed);
    }
    let len = LOCAL_LEN + usize::from(read_u16(data, 14));
    if data.len() < len {
        return Err(Error::Truncated);
    }
    match (data[12], data[13]) {
        (VERSION_LOCAL, _) => Ok((Header::Local, len)),
        (VERSION_PROXY, family @ (INET_STREAM | INET_DGRAM)) if len == PROXY_LEN => {
            let transport = if family == INET_STREAM { Transport::Tcp } else { Transport::Udp };
            let ip = |at: usize| Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3]);
            let client = (ip(16), read_u16(data, 24));
            let vip = (ip(20), read_u16(data, 26));
            Ok((Header::Proxy { transport, client, vip }, len))
        }
        _ => Err(Error::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_header_is_the_documented_28_bytes() {
        let h = proxy(Transport::Udp, (Ipv4Addr::new(198, 18, 0, 2), 40000), (Ipv4Addr::new(198, 18, 0, 10), 53));
        let expected: [u8; 28] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
            0x21, 0x12, 0x00, 0x0c, // v2 PROXY, UDP over IPv4, 12 bytes follow
            198, 18, 0, 2, 198, 18, 0, 10, // source, destination
            0x9c, 0x40, 0x00, 0x35, // ports
        ];
        assert_eq!(h, expected);
        let tcp = proxy(Transport::Tcp, (Ipv4Addr::new(198, 18, 0, 2), 1), (Ipv4Addr::new(198, 18, 0, 10), 80));
        assert_eq!(tcp[13], 0x11);
    }

    #[test]
    fn headers_read_back_and_strangers_are_refused() {
        let client = (Ipv4Addr::new(198, 18, 0, 2), 40000);
        let vip = (Ipv4Addr::new(198, 18, 0, 10), 53);
        let mut data = proxy(Transport::Udp, client, vip).to_vec();
        data.extend_from_slice(b"payload");
        assert_eq!(parse(&data), Ok((Header::Proxy { transport: Transport::Udp, client, vip }, 28)));
        assert_eq!(parse(&local()), Ok((Header::Local, 16)));
        assert_eq!(parse(&data[..20]), Err(Error::Truncated));
        assert_eq!(parse(b"PROXY TCP4 198.18.0.2 198.18.0.10 1 2\r\n"), Err(Error::Malformed));
        let mut v6 = data.clone();
        v6[13] = 0x21;
        assert_eq!(parse(&v6), Err(Error::Malformed));
    }
}
