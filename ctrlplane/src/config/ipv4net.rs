//! `Ipv4Net`: an IPv4 address with a prefix length, as written `a.b.c.d/len`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An address and a prefix length. The address may have host bits set (an interface
/// address such as `198.18.0.1/24`); `network()` clears them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    /// 0..=32.
    pub prefix_len: u8,
}

impl Ipv4Net {
    /// None when `prefix_len` is over 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        (prefix_len <= 32).then_some(Ipv4Net { addr, prefix_len })
    }

    /// The mask of the prefix: `255.255.255.0` for a /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The address with its host bits cleared.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    /// True when `addr` lies inside this prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask_bits() == u32::from(self.network())
    }

    /// True when the address is the network address itself (no host bits set).
    pub fn is_network(&self) -> bool {
        self.addr == self.network()
    }

    fn mask_bits(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            len => u32::MAX << (32 - u32::from(len.min(32))),
        }
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// The text was not `a.b.c.d/len` with `len` 0..=32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidIpv4Net;

impl fmt::Display for InvalidIpv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a.b.c.d/len with len 0..=32")
    }
}

impl std::error::Error for InvalidIpv4Net {}

impl FromStr for Ipv4Net {
    type Err = InvalidIpv4Net;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, len) = text.split_once('/').ok_or(InvalidIpv4Net)?;
        let addr = addr.parse().map_err(|_| InvalidIpv4Net)?;
        let prefix_len: u8 = len.parse().map_err(|_| InvalidIpv4Net)?;
        // Canonical digits only: u8's parser would also take "+24" and "024".
        if prefix_len.to_string() != len {
            return Err(InvalidIpv4Net);
        }
        Ipv4Net::new(addr, prefix_len).ok_or(InvalidIpv4Net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().expect(text)
    }

    #[test]
    fn parses_and_displays() {
        let n = net("198.18.0.1/24");
        assert_eq!(n.addr, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(n.prefix_len, 24);
        assert_eq!(n.to_string(), "198.18.0.1/24");
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in ["198.18.0.1", "198.18.0.1/33", "198.18.0.1/", "198.18.0/24", "1.2.3.4/+8", "x/8", "1.2.3.4/024"] {
            assert_eq!(bad.parse::<Ipv4Net>(), Err(InvalidIpv4Net), "{bad}");
        }
    }

    #[test]
    fn network_and_contains() {
        let n = net("198.18.0.1/24");
        assert_eq!(n.network(), Ipv4Addr::new(198, 18, 0, 0));
        assert!(!n.is_network());
        assert!(net("198.18.0.0/24").is_network());
        assert!(n.contains(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(!n.contains(Ipv4Addr::new(198, 18, 1, 1)));
    }

    #[test]
    fn edge_prefixes() {
        let all = net("0.0.0.0/0");
        assert!(all.contains(Ipv4Addr::new(255, 255, 255, 255)));
        assert!(all.is_network());
        let host = net("198.18.0.7/32");
        assert!(host.contains(Ipv4Addr::new(198, 18, 0, 7)));
        assert!(!host.contains(Ipv4Addr::new(198, 18, 0, 8)));
        assert!(host.is_network());
    }
}
