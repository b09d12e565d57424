//! What every worker reads: links, services, VIPs and routes, built on the control core and
//! published whole. Immutable once published; a worker never sees half of one.

use std::net::Ipv4Addr;

use crate::classify::OwnedAddrs;
use crate::route::Routes;
use crate::sched::SchedulerKind;
use crate::session::{Endpoint, Timeouts};
use crate::wire::MacAddr;

/// A port as the data path sees it: its DPDK port, the kernel interface behind it, its MAC,
/// the host's addresses on it, and the addresses the data path answers ARP for on it.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub port: u16,
    pub kernel_port: u16,
    pub mac: MacAddr,
    /// The host's own addresses on this link (address, prefix length): sources of the data
    /// path's ARP requests and ICMP errors.
    pub addresses: Vec<(Ipv4Addr, u8)>,
    pub owned: OwnedAddrs,
    /// The port fills IPv4/TCP/UDP checksums on transmit and checks them on receipt.
    pub checksum_offload: bool,
}

impl Link {
    /// The host address to speak from towards `peer`: one on the same prefix, else the first.
    pub fn source_for(&self, peer: Ipv4Addr) -> Option<Ipv4Addr> {
        let on_prefix = |&&(addr, len): &&(Ipv4Addr, u8)| {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            u32::from(addr) & mask == u32::from(peer) & mask
        };
        self.addresses.iter().find(on_prefix).or(self.addresses.first()).map(|&(a, _)| a)
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    pub vip: Endpoint,
    pub scheduler: SchedulerKind,
    pub backends: Vec<Endpoint>,
    pub weights: Vec<u32>,
    /// Every local IP of the service; each worker uses its own share (`laddr::owned_by`).
    pub local_ips: Vec<Ipv4Addr>,
}

/// Finds the service of a (protocol, VIP address, port); tells VIP addresses apart.
#[derive(Debug, Clone, Default)]
pub struct VipIndex {
    /// (key, service index), sorted by key.
    services: Vec<(u64, u16)>,
    addresses: Vec<u32>,
}

fn vip_key(proto: u8, ip: Ipv4Addr, port: u16) -> u64 {
    (u64::from(proto) << 48) | (u64::from(u32::from(ip)) << 16) | u64::from(port)
}

impl VipIndex {
    pub fn new(services: &[Service]) -> VipIndex {
        let mut index: Vec<(u64, u16)> =
            services.iter().enumerate().map(|(i, s)| (vip_key(s.proto, s.vip.ip, s.vip.port), i as u16)).collect();
        index.sort_unstable();
        let mut addresses: Vec<u32> = services.iter().map(|s| u32::from(s.vip.ip)).collect();
        addresses.sort_unstable();
        addresses.dedup();
        VipIndex { services: index, addresses }
    }

    #[inline]
    pub fn service(&self, proto: u8, ip: Ipv4Addr, port: u16) -> Option<usize> {
        let key = vip_key(proto, ip, port);
        self.services.binary_search_by_key(&key, |&(k, _)| k).ok().map(|i| self.services[i].1 as usize)
    }

    #[inline]
    pub fn is_vip(&self, ip: Ipv4Addr) -> bool {
        self.addresses.binary_search(&u32::from(ip)).is_ok()
    }
}

/// Everything a worker reads.
#[derive(Debug)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub services: Vec<Service>,
    pub vips: VipIndex,
    pub routes: Routes,
    pub timeouts: Timeouts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(proto: u8, ip: [u8; 4], port: u16) -> Service {
        Service {
            name: format!("s{port}"),
            proto,
            vip: Endpoint::new(Ipv4Addr::from(ip), port),
            scheduler: SchedulerKind::Rr,
            backends: vec![],
            weights: vec![],
            local_ips: vec![],
        }
    }

    #[test]
    fn vip_index_finds_services_by_protocol_address_and_port() {
        let services = [service(17, [198, 18, 0, 10], 53), service(6, [198, 18, 0, 10], 80), service(6, [198, 18, 0, 11], 80)];
        let vips = VipIndex::new(&services);
        let ip = |d| Ipv4Addr::new(198, 18, 0, d);
        assert_eq!(vips.service(17, ip(10), 53), Some(0));
        assert_eq!(vips.service(6, ip(10), 80), Some(1));
        assert_eq!(vips.service(6, ip(11), 80), Some(2));
        assert_eq!(vips.service(6, ip(10), 53), None);
        assert_eq!(vips.service(17, ip(10), 80), None);
        assert!(vips.is_vip(ip(10)) && vips.is_vip(ip(11)) && !vips.is_vip(ip(12)));
    }

    #[test]
    fn source_address_prefers_the_peer_prefix() {
        let link = Link {
            name: "lan".into(),
            port: 0,
            kernel_port: 1,
            mac: MacAddr::default(),
            addresses: vec![(Ipv4Addr::new(198, 18, 1, 1), 24), (Ipv4Addr::new(198, 18, 2, 1), 24)],
            owned: OwnedAddrs::default(),
            checksum_offload: false,
        };
        assert_eq!(link.source_for(Ipv4Addr::new(198, 18, 2, 9)), Some(Ipv4Addr::new(198, 18, 2, 1)));
        assert_eq!(link.source_for(Ipv4Addr::new(10, 0, 0, 1)), Some(Ipv4Addr::new(198, 18, 1, 1)));
    }
}
