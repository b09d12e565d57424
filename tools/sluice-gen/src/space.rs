//! The client address space: `count` consecutive IPv4 addresses from `base` (the VIP's address
//! skipped if it falls inside), each with source ports 1024..=65535. A flow index maps to one
//! (address, port) pair and back by arithmetic alone, so replies are validated without a table.
//!
//! Flow `i` is address `i % count`, port `1024 + i / count`: consecutive flows spread over the
//! addresses first, so K flows are "ports 1024.. over a few IPs".

use std::net::Ipv4Addr;

/// The first source port a client uses.
pub const FIRST_PORT: u16 = 1024;
/// Source ports per client address.
pub const PORTS_PER_IP: u64 = 65536 - FIRST_PORT as u64;

/// The benchmark range every address of the generator must lie in (RFC 2544: 198.18.0.0/15).
const BENCH_NET: u32 = 0xc612_0000;
const BENCH_MASK: u32 = 0xfffe_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSpace {
    base: u32,
    count: u32,
    /// Offset of the skipped VIP address from `base`, if it lies inside the range.
    hole: Option<u32>,
}

impl ClientSpace {
    /// `count` addresses from `base`, jumping over `vip`. All must lie in 198.18.0.0/15.
    pub fn new(base: Ipv4Addr, count: u32, vip: Ipv4Addr) -> Result<ClientSpace, String> {
        if count == 0 {
            return Err("the client address count must be at least 1".into());
        }
        let base = u32::from(base);
        let vip = u32::from(vip);
        let hole = vip.checked_sub(base).filter(|off| *off < count);
        let span = count + u32::from(hole.is_some());
        let last = base.checked_add(span - 1).ok_or("the client addresses run past 255.255.255.255")?;
        if !in_bench_net(base) || !in_bench_net(last) {
            return Err(format!(
                "client addresses {}..={} leave 198.18.0.0/15",
                Ipv4Addr::from(base),
                Ipv4Addr::from(last)
            ));
        }
        Ok(ClientSpace { base, count, hole })
    }

    /// Number of client addresses.
    pub fn addresses(&self) -> u32 {
        self.count
    }

    /// Number of distinct (address, port) pairs.
    pub fn capacity(&self) -> u64 {
        u64::from(self.count) * PORTS_PER_IP
    }

    /// Address number `i` (`i < addresses()`).
    #[inline]
    pub fn address(&self, i: u32) -> Ipv4Addr {
        let skip = matches!(self.hole, Some(h) if i >= h);
        Ipv4Addr::from(self.base + i + u32::from(skip))
    }

    /// Which address number `ip` is, if it is a client address.
    #[inline]
    pub fn index_of(&self, ip: Ipv4Addr) -> Option<u32> {
        let off = u32::from(ip).checked_sub(self.base)?;
        let i = match self.hole {
            Some(h) if off == h => return None,
            Some(h) if off > h => off - 1,
            _ => off,
        };
        (i < self.count).then_some(i)
    }

    /// The (address, port) of flow `flow` (`flow < capacity()`).
    #[inline]
    pub fn tuple(&self, flow: u64) -> (Ipv4Addr, u16) {
        let count = u64::from(self.count);
        let ip = self.address((flow % count) as u32);
        let port = FIRST_PORT as u64 + flow / count;
        (ip, port as u16)
    }

    /// The flow that (ip, port) is, if it is one of this space.
    #[inline]
    pub fn flow_of(&self, ip: Ipv4Addr, port: u16) -> Option<u64> {
        let i = self.index_of(ip)?;
        let p = port.checked_sub(FIRST_PORT)?;
        Some(u64::from(p) * u64::from(self.count) + u64::from(i))
    }
}

fn in_bench_net(addr: u32) -> bool {
    addr & BENCH_MASK == BENCH_NET
}

/// True if `ip` lies in 198.18.0.0/15.
pub fn is_bench_address(ip: Ipv4Addr) -> bool {
    in_bench_net(u32::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    #[test]
    fn flows_round_trip_and_spread_over_addresses_first() {
        let s = ClientSpace::new(Ipv4Addr::new(198, 18, 0, 2), 4, VIP).unwrap();
        assert_eq!(s.tuple(0), (Ipv4Addr::new(198, 18, 0, 2), 1024));
        assert_eq!(s.tuple(1), (Ipv4Addr::new(198, 18, 0, 3), 1024));
        assert_eq!(s.tuple(4), (Ipv4Addr::new(198, 18, 0, 2), 1025));
        for flow in (0..s.capacity()).step_by(997).chain([s.capacity() - 1]) {
            let (ip, port) = s.tuple(flow);
            assert_eq!(s.flow_of(ip, port), Some(flow));
        }
        assert_eq!(s.tuple(s.capacity() - 1), (Ipv4Addr::new(198, 18, 0, 5), 65535));
    }

    #[test]
    fn the_vip_is_skipped() {
        let s = ClientSpace::new(Ipv4Addr::new(198, 18, 0, 2), 10, VIP).unwrap();
        let all: Vec<Ipv4Addr> = (0..10).map(|i| s.address(i)).collect();
        assert!(!all.contains(&VIP));
        assert_eq!(all[7], Ipv4Addr::new(198, 18, 0, 9));
        assert_eq!(all[8], Ipv4Addr::new(198, 18, 0, 11));
        assert_eq!(all[9], Ipv4Addr::new(198, 18, 0, 12));
        for (i, ip) in all.iter().enumerate() {
            assert_eq!(s.index_of(*ip), Some(i as u32));
        }
        assert_eq!(s.index_of(VIP), None);
        assert_eq!(s.index_of(Ipv4Addr::new(198, 18, 0, 13)), None);
        assert_eq!(s.index_of(Ipv4Addr::new(198, 18, 0, 1)), None);
    }

    #[test]
    fn unknown_tuples_are_refused() {
        let s = ClientSpace::new(Ipv4Addr::new(198, 18, 0, 2), 2, VIP).unwrap();
        assert_eq!(s.flow_of(Ipv4Addr::new(198, 18, 0, 2), 1023), None, "below the first port");
        assert_eq!(s.flow_of(Ipv4Addr::new(198, 18, 0, 4), 2000), None, "not a client address");
        assert_eq!(s.flow_of(Ipv4Addr::new(198, 18, 0, 3), 1024), Some(1));
    }

    #[test]
    fn stays_inside_the_benchmark_range() {
        assert!(ClientSpace::new(Ipv4Addr::new(10, 0, 0, 2), 4, VIP).is_err());
        assert!(ClientSpace::new(Ipv4Addr::new(198, 19, 255, 250), 6, VIP).is_ok());
        assert!(ClientSpace::new(Ipv4Addr::new(198, 19, 255, 250), 7, VIP).is_err());
        assert!(ClientSpace::new(Ipv4Addr::new(198, 18, 0, 2), 0, VIP).is_err());
        assert!(is_bench_address(Ipv4Addr::new(198, 19, 1, 1)));
        assert!(!is_bench_address(Ipv4Addr::new(198, 20, 0, 1)));
    }
}
