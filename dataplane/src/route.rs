//! The appliance's IPv4 routes: connected prefixes (from the interfaces' addresses) and `via`
//! routes (from `[[route]]`), with longest-prefix match.
//!
//! Owns: one immutable table. The control plane builds a new `Routes` when the config changes and
//! publishes it in the workers' snapshot; nothing mutates a published table.
//!
//! Structure: one hash map per prefix length in use (masked network -> target), kept sorted from
//! the longest length down, hashed by `MixHasher` (the keys are configured prefixes; SipHash
//! was some 4 % of what a new session costs). `lookup` masks the destination and probes each
//! map once, so it costs one hash probe per distinct prefix length configured (at most 33;
//! typically a handful: the connected /24s, a few vias, /0). That is plenty for where it runs:
//! once per new session (the next hop is cached in the session) and for ICMP, never per packet
//! of an established flow.
//! A trie or DIR-24-8 would only pay off for tables of thousands of routes. Allocation happens
//! in `new` only; `lookup` allocates nothing and cannot panic.
//!
//! Rules `new` enforces: prefix lengths are 0..=32; a `via` network must have no host bits set
//! (like `ip route`, to catch typos), while connected networks are masked (interface addresses
//! have host bits by nature); a via gateway must lie in a connected prefix (no recursive routes),
//! whose link it takes; a connected prefix shadows a via route of the same prefix; the same prefix
//! on two links, or via two gateways, is an error.

use std::collections::HashMap;

use crate::mix::BuildMix;
use std::net::Ipv4Addr;

/// Where to send a packet: out of link `link` (an index into the appliance's interfaces) to
/// `gateway` (the destination itself for connected prefixes); with `kernel`, the destination is
/// one of this host's own addresses on that link: the packet goes to the host's kernel, through
/// the exception path, not out of the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub link: usize,
    pub gateway: Ipv4Addr,
    pub kernel: bool,
}

/// A next hop as a session keeps it (6 bytes, so that both of a session's fit its cache line):
/// out of link `link` to the neighbour `gateway`, or, with the `KERNEL` bit in `link`, to this
/// host's own kernel on that link (a backend or client at one of the host's addresses: a
/// director that is also a real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub link: u16,
    pub gateway: Ipv4Addr,
}

impl Hop {
    /// No hop yet (a free session slot's).
    pub const NONE: Hop = Hop { link: 0, gateway: Ipv4Addr::UNSPECIFIED };
    /// The bit of `link` that says: to the kernel.
    pub const KERNEL: u16 = 0x8000;

    /// Whether the packet goes to this host's kernel rather than out of the port.
    #[inline(always)]
    pub fn to_kernel(self) -> bool {
        self.link & Hop::KERNEL != 0
    }

    /// The link, an index into the snapshot's links.
    #[inline(always)]
    pub fn link_index(self) -> usize {
        usize::from(self.link & !Hop::KERNEL)
    }
}

impl Default for Hop {
    fn default() -> Hop {
        Hop::NONE
    }
}

impl From<NextHop> for Hop {
    fn from(h: NextHop) -> Hop {
        let kernel = if h.kernel { Hop::KERNEL } else { 0 };
        Hop { link: h.link as u16 | kernel, gateway: h.gateway }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Connected { link: usize },
    Via(NextHop),
}

/// The prefixes of one length.
#[derive(Debug)]
struct Prefixes {
    len: u8,
    mask: u32,
    routes: HashMap<u32, Target, BuildMix>,
}

#[derive(Debug)]
pub struct Routes {
    /// Longest prefix length first.
    by_len: Vec<Prefixes>,
    /// The host's own addresses and their links: reached through the kernel.
    hosts: Vec<(u32, usize)>,
}

fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn check_len(net: Ipv4Addr, len: u8) -> Result<(), String> {
    if len > 32 {
        return Err(format!("{net}/{len}: prefix length above 32"));
    }
    Ok(())
}

impl Routes {
    /// `connected`: (network address, prefix length, link) from the interfaces' addresses; `via`:
    /// (network, prefix length, gateway) from `[[route]]`. A via route's link is the link of the
    /// connected prefix containing its gateway (longest match); a gateway with none is an
    /// `Err(String)` naming it.
    pub fn new(connected: &[(Ipv4Addr, u8, usize)], via: &[(Ipv4Addr, u8, Ipv4Addr)]) -> Result<Routes, String> {
        let mut routes = Routes { by_len: Vec::new(), hosts: Vec::new() };
        for &(net, len, link) in connected {
            check_len(net, len)?;
            let net = Ipv4Addr::from(u32::from(net) & mask(len));
            match routes.insert(net, len, Target::Connected { link }) {
                None => {}
                Some(existing) if existing == (Target::Connected { link }) => {} // two addresses, one subnet
                Some(_) => return Err(format!("connected prefix {net}/{len} is on more than one link")),
            }
        }
        // Resolve every gateway against the connected prefixes alone, before any via route is in.
        let mut resolved = Vec::with_capacity(via.len());
        for &(net, len, gateway) in via {
            check_len(net, len)?;
            if u32::from(net) & !mask(len) != 0 {
                return Err(format!("route {net}/{len}: host bits set in the network address"));
            }
            let link = match routes.lookup(gateway) {
                Some(hop) => hop.link,
                None => return Err(format!("route {net}/{len}: gateway {gateway} is not in any connected prefix")),
            };
            resolved.push((net, len, NextHop { link, gateway, kernel: false }));
        }
        for (net, len, hop) in resolved {
            match routes.get(net, len) {
                None => {
                    routes.insert(net, len, Target::Via(hop));
                }
                Some(Target::Connected { .. }) => {} // the connected prefix wins
                Some(Target::Via(existing)) if existing == hop => {}
                Some(Target::Via(existing)) => {
                    return Err(format!("route {net}/{len}: given via both {} and {}", existing.gateway, hop.gateway));
                }
            }
        }
        Ok(routes)
    }

    /// Longest-prefix match; a connected prefix beats a via route of the same length.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let dst_bits = u32::from(dst);
        if let Some(&(_, link)) = self.hosts.iter().find(|&&(a, _)| a == dst_bits) {
            return Some(NextHop { link, gateway: dst, kernel: true });
        }
        self.by_len.iter().find_map(|p| p.routes.get(&(dst_bits & p.mask))).map(|target| match *target {
            Target::Connected { link } => NextHop { link, gateway: dst, kernel: false },
            Target::Via(hop) => hop,
        })
    }

    /// The same routes, with the host's own addresses (address, link): a backend or a client at
    /// one of them is reached through the host's kernel on that link.
    pub fn with_hosts(mut self, hosts: impl IntoIterator<Item = (Ipv4Addr, usize)>) -> Routes {
        self.hosts = hosts.into_iter().map(|(a, link)| (u32::from(a), link)).collect();
        self
    }

    fn get(&self, net: Ipv4Addr, len: u8) -> Option<Target> {
        self.by_len.iter().find(|p| p.len == len)?.routes.get(&u32::from(net)).copied()
    }

    /// Inserts unless the prefix is there already; returns what was there.
    fn insert(&mut self, net: Ipv4Addr, len: u8, target: Target) -> Option<Target> {
        let at = match self.by_len.iter().position(|p| p.len <= len) {
            Some(at) if self.by_len[at].len == len => at,
            found => {
                let at = found.unwrap_or(self.by_len.len());
                self.by_len.insert(at, Prefixes { len, mask: mask(len), routes: HashMap::default() });
                at
            }
        };
        let routes = &mut self.by_len[at].routes;
        match routes.get(&u32::from(net)) {
            Some(existing) => Some(*existing),
            None => {
                routes.insert(u32::from(net), target);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn hop(link: usize, gateway: &str) -> Option<NextHop> {
        Some(NextHop { link, gateway: ip(gateway), kernel: false })
    }

    /// link 0: 192.0.2.0/24 (uplink), link 1: 10.1.0.0/16 (backends).
    fn connected() -> Vec<(Ipv4Addr, u8, usize)> {
        vec![(ip("192.0.2.0"), 24, 0), (ip("10.1.0.0"), 16, 1)]
    }

    #[test]
    fn connected_prefix_sends_to_the_destination_itself() {
        let r = Routes::new(&connected(), &[]).unwrap();
        assert_eq!(r.lookup(ip("10.1.7.9")), hop(1, "10.1.7.9"));
        assert_eq!(r.lookup(ip("192.0.2.200")), hop(0, "192.0.2.200"));
    }

    #[test]
    fn default_route_catches_the_rest() {
        let r = Routes::new(&connected(), &[(ip("0.0.0.0"), 0, ip("192.0.2.1"))]).unwrap();
        assert_eq!(r.lookup(ip("203.0.113.5")), hop(0, "192.0.2.1"));
        assert_eq!(r.lookup(ip("255.255.255.255")), hop(0, "192.0.2.1"));
        assert_eq!(r.lookup(ip("10.1.0.1")), hop(1, "10.1.0.1"));
    }

    #[test]
    fn more_specific_wins_whatever_the_order() {
        let via = [
            (ip("0.0.0.0"), 0, ip("192.0.2.1")),
            (ip("10.2.3.0"), 24, ip("10.1.0.254")),
            (ip("10.0.0.0"), 8, ip("192.0.2.2")),
        ];
        let r = Routes::new(&connected(), &via).unwrap();
        assert_eq!(r.lookup(ip("10.2.3.4")), hop(1, "10.1.0.254"));
        assert_eq!(r.lookup(ip("10.2.4.4")), hop(0, "192.0.2.2"));
        assert_eq!(r.lookup(ip("10.1.2.3")), hop(1, "10.1.2.3"), "connected /16 beats via /8");
        assert_eq!(r.lookup(ip("11.0.0.1")), hop(0, "192.0.2.1"));
    }

    #[test]
    fn host_route() {
        let via = [(ip("198.51.100.7"), 32, ip("10.1.0.254")), (ip("198.51.100.0"), 24, ip("192.0.2.1"))];
        let r = Routes::new(&connected(), &via).unwrap();
        assert_eq!(r.lookup(ip("198.51.100.7")), hop(1, "10.1.0.254"));
        assert_eq!(r.lookup(ip("198.51.100.6")), hop(0, "192.0.2.1"));
        assert_eq!(r.lookup(ip("198.51.100.8")), hop(0, "192.0.2.1"));
    }

    #[test]
    fn connected_beats_via_of_the_same_length() {
        let r = Routes::new(&connected(), &[(ip("10.1.0.0"), 16, ip("192.0.2.1"))]).unwrap();
        assert_eq!(r.lookup(ip("10.1.2.3")), hop(1, "10.1.2.3"));
    }

    #[test]
    fn unreachable_without_default() {
        let r = Routes::new(&connected(), &[(ip("10.0.0.0"), 8, ip("192.0.2.1"))]).unwrap();
        assert_eq!(r.lookup(ip("203.0.113.5")), None);
        assert_eq!(Routes::new(&[], &[]).unwrap().lookup(ip("10.1.2.3")), None);
    }

    #[test]
    fn connected_networks_are_masked() {
        let r = Routes::new(&[(ip("192.0.2.10"), 24, 3)], &[]).unwrap();
        assert_eq!(r.lookup(ip("192.0.2.99")), hop(3, "192.0.2.99"));
        assert_eq!(r.lookup(ip("192.0.3.1")), None);
    }

    #[test]
    fn gateway_takes_the_link_of_its_longest_connected_match() {
        let conn = [(ip("10.0.0.0"), 8, 0), (ip("10.9.9.0"), 24, 2)];
        let r = Routes::new(&conn, &[(ip("0.0.0.0"), 0, ip("10.9.9.1"))]).unwrap();
        assert_eq!(r.lookup(ip("8.8.8.8")), hop(2, "10.9.9.1"));
    }

    #[test]
    fn gateway_outside_every_connected_prefix_is_an_error() {
        let err = Routes::new(&connected(), &[(ip("0.0.0.0"), 0, ip("172.16.0.1"))]).unwrap_err();
        assert!(err.contains("172.16.0.1"), "{err}");
        // A via route does not make another via route's gateway reachable: no recursion.
        let via = [(ip("172.16.0.0"), 12, ip("192.0.2.1")), (ip("0.0.0.0"), 0, ip("172.16.0.1"))];
        assert!(Routes::new(&connected(), &via).unwrap_err().contains("172.16.0.1"));
    }

    #[test]
    fn config_mistakes_are_errors() {
        let bad_len = Routes::new(&[(ip("10.0.0.0"), 33, 0)], &[]).unwrap_err();
        assert!(bad_len.contains("10.0.0.0/33"), "{bad_len}");
        assert!(Routes::new(&connected(), &[(ip("10.0.0.0"), 40, ip("192.0.2.1"))]).is_err());
        let host_bits = Routes::new(&connected(), &[(ip("10.0.0.1"), 8, ip("192.0.2.1"))]).unwrap_err();
        assert!(host_bits.contains("10.0.0.1/8"), "{host_bits}");
        let two_links = Routes::new(&[(ip("10.0.0.1"), 8, 0), (ip("10.0.0.2"), 8, 1)], &[]).unwrap_err();
        assert!(two_links.contains("10.0.0.0/8"), "{two_links}");
        let two_gateways = [(ip("0.0.0.0"), 0, ip("192.0.2.1")), (ip("0.0.0.0"), 0, ip("192.0.2.2"))];
        assert!(Routes::new(&connected(), &two_gateways).unwrap_err().contains("0.0.0.0/0"));
    }

    #[test]
    fn repeats_that_agree_are_fine() {
        let conn = [(ip("10.0.0.1"), 8, 0), (ip("10.0.0.2"), 8, 0)];
        let via = [(ip("0.0.0.0"), 0, ip("10.0.0.9")), (ip("0.0.0.0"), 0, ip("10.0.0.9"))];
        let r = Routes::new(&conn, &via).unwrap();
        assert_eq!(r.lookup(ip("1.2.3.4")), hop(0, "10.0.0.9"));
    }
}
