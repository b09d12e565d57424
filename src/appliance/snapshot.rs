//! Builds what the workers read (`dataplane::worker::Snapshot`) from the validated config and
//! the ports that were opened for it.

use std::net::Ipv4Addr;

use ctrlplane::config::Config;
use dataplane::classify::OwnedAddrs;
use dataplane::wire::MacAddr;
use dataplane::worker::{Link, Snapshot};

/// The DPDK ports behind one `[[interface]]`.
pub struct OpenedLink {
    pub port: u16,
    pub kernel_port: u16,
    pub mac: MacAddr,
}

/// `opened[i]` belongs to `config.interfaces[i]`.
pub fn build(config: &Config, opened: &[OpenedLink]) -> Snapshot {
    let links = config
        .interfaces
        .iter()
        .zip(opened)
        .enumerate()
        .map(|(i, (iface, o))| Link {
            name: iface.name.clone(),
            port: o.port,
            kernel_port: o.kernel_port,
            mac: o.mac,
            owned: OwnedAddrs::new(owned_addresses(config).filter(|&a| answers_on(config, i, a))),
        })
        .collect();
    Snapshot { links }
}

/// VIPs and local IPs: the addresses the data path answers ARP for.
fn owned_addresses(config: &Config) -> impl Iterator<Item = Ipv4Addr> + '_ {
    config.services.iter().flat_map(|s| std::iter::once(*s.vip.ip()).chain(s.local_ips.iter().copied()))
}

/// An owned address is answered on the interfaces whose connected prefixes contain it; one
/// that no interface prefix contains (a VIP routed to us) is answered on every interface.
fn answers_on(config: &Config, interface: usize, addr: Ipv4Addr) -> bool {
    let connected = |i: usize| config.interfaces[i].addresses.iter().any(|n| n.contains(addr));
    connected(interface) || !(0..config.interfaces.len()).any(connected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrlplane::config::{parse, Host};

    const CONFIG: &str = r#"
[dpdk]
args = ["--vdev=net_af_packet0,iface=lb0", "--vdev=net_af_packet1,iface=lb1"]
[cpu]
workers = [1]
[[interface]]
name = "wan"
device = "net_af_packet0"
addresses = ["198.18.0.1/24"]
[[interface]]
name = "lan"
device = "net_af_packet1"
addresses = ["198.18.1.1/24"]
[[service]]
name = "dns"
vip = "198.18.0.10:53"
protocol = "udp"
local_ips = ["198.18.1.100"]
[[service]]
name = "web"
vip = "198.18.5.80:80"
protocol = "tcp"
local_ips = ["198.18.1.101"]
"#;

    #[test]
    fn owned_addresses_follow_connected_prefixes() {
        let config = parse(CONFIG, "t.toml", &Host { cpus: 2 }).expect("valid");
        let opened = [
            OpenedLink { port: 0, kernel_port: 2, mac: MacAddr([2, 0, 0, 0, 0, 1]) },
            OpenedLink { port: 1, kernel_port: 3, mac: MacAddr([2, 0, 0, 0, 1, 1]) },
        ];
        let s = build(&config, &opened);
        let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        let (wan, lan) = (&s.links[0].owned, &s.links[1].owned);
        assert!(wan.contains(ip(198, 18, 0, 10)) && !lan.contains(ip(198, 18, 0, 10)));
        assert!(lan.contains(ip(198, 18, 1, 100)) && !wan.contains(ip(198, 18, 1, 100)));
        assert!(wan.contains(ip(198, 18, 5, 80)) && lan.contains(ip(198, 18, 5, 80)), "unconnected VIP on all");
        assert_eq!((s.links[0].kernel_port, s.links[1].port), (2, 1));
    }
}
