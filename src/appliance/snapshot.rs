//! The parts of a snapshot that come straight from the config and the opened ports: links,
//! routes and timeouts. Services and backends come from the `model`.

use std::net::Ipv4Addr;

use ctrlplane::config::{Config, WhenFull};
use dataplane::classify::OwnedAddrs;
use dataplane::route::Routes;
use dataplane::session::Timeouts;
use std::sync::Arc;

use dataplane::snapshot::{Link, Snapshot, Steering};
use dataplane::steer::rss::RssSteering;
use dataplane::wire::MacAddr;

/// The DPDK ports behind one `[[interface]]`.
pub struct OpenedLink {
    pub port: u16,
    pub kernel_port: u16,
    pub mac: MacAddr,
    pub checksum_offload: bool,
    pub steering: Steering,
    pub rss: Option<Arc<RssSteering>>,
    pub mtu: u16,
}

/// `opened[i]` belongs to `config.interfaces[i]`.
pub fn links(config: &Config, opened: &[OpenedLink]) -> Vec<Link> {
    config
        .interfaces
        .iter()
        .zip(opened)
        .enumerate()
        .map(|(i, (iface, o))| Link {
            name: iface.name.clone(),
            port: o.port,
            kernel_port: o.kernel_port,
            mac: o.mac,
            addresses: iface.addresses.iter().map(|n| (n.addr, n.prefix_len)).collect(),
            owned: OwnedAddrs::new(owned_addresses(config).filter(|&a| answers_on(config, i, a))),
            checksum_offload: o.checksum_offload,
            steering: o.steering,
            rss: o.rss.clone(),
            mtu: o.mtu,
        })
        .collect()
}

/// The links of `config` over the ports already opened (`old`), for a reload: the same ports,
/// the addresses the data path answers for recomputed.
pub fn relink(config: &Config, old: &[Link]) -> Vec<Link> {
    let opened: Vec<OpenedLink> = old
        .iter()
        .map(|l| OpenedLink {
            port: l.port,
            kernel_port: l.kernel_port,
            mac: l.mac,
            checksum_offload: l.checksum_offload,
            steering: l.steering,
            rss: l.rss.clone(),
            mtu: l.mtu,
        })
        .collect();
    links(config, &opened)
}

pub fn routes(config: &Config) -> Result<Routes, String> {
    let connected: Vec<(Ipv4Addr, u8, usize)> = config
        .interfaces
        .iter()
        .enumerate()
        .flat_map(|(i, iface)| iface.addresses.iter().map(move |n| (n.network(), n.prefix_len, i)))
        .collect();
    let via: Vec<(Ipv4Addr, u8, Ipv4Addr)> =
        config.routes.iter().map(|r| (r.prefix.network(), r.prefix.prefix_len, r.via)).collect();
    // The host's own addresses are reached through its kernel: a director that is also a
    // real server is its own backend.
    let hosts =
        config.interfaces.iter().enumerate().flat_map(|(i, iface)| iface.addresses.iter().map(move |n| (n.addr, i)));
    Ok(Routes::new(&connected, &via)?.with_hosts(hosts))
}

/// The session policies of `config` that the snapshot carries (`[sessions] when_full`).
pub fn with_policy(mut snapshot: Snapshot, config: &Config) -> Snapshot {
    snapshot.evict_when_full = config.sessions.when_full == WhenFull::Evict;
    snapshot
}

pub fn timeouts(config: &Config) -> Timeouts {
    let t = &config.timeouts;
    Timeouts {
        tcp_syn: t.tcp_syn,
        tcp_established: t.tcp_established,
        tcp_fin_wait: t.tcp_fin_wait,
        tcp_close_wait: t.tcp_close_wait,
        tcp_last_ack: t.tcp_last_ack,
        tcp_time_wait: t.tcp_time_wait,
        tcp_closing: t.tcp_closing,
        udp: t.udp,
        udp_new: t.udp_new,
    }
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

    #[test]
    fn the_data_paths_default_timeouts_are_the_configs() {
        let mut config = parse(CONFIG, "t.toml", &Host { cpus: 2 }).expect("valid");
        config.timeouts = ctrlplane::config::Timeouts::default();
        assert_eq!(timeouts(&config), Timeouts::default());
    }
    use ctrlplane::config::{parse, Host};

    pub const CONFIG: &str = r#"
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
[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"
[[service]]
name = "dns"
vip = "198.18.0.10:53"
protocol = "udp"
local_ips = ["198.18.1.100"]
[[service.backend]]
address = "198.18.1.2:53"
weight = 3
[[service]]
name = "web"
vip = "198.18.5.80:80"
protocol = "tcp"
local_ips = ["198.18.1.101"]
"#;

    fn config() -> Config {
        parse(CONFIG, "t.toml", &Host { cpus: 2 }).expect("valid")
    }

    fn opened() -> [OpenedLink; 2] {
        [
            OpenedLink {
                port: 0,
                kernel_port: 2,
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                checksum_offload: false,
                steering: Steering::Single,
                rss: None,
                mtu: 1500,
            },
            OpenedLink {
                port: 1,
                kernel_port: 3,
                mac: MacAddr([2, 0, 0, 0, 1, 1]),
                checksum_offload: true,
                steering: Steering::Single,
                rss: None,
                mtu: 1500,
            },
        ]
    }

    #[test]
    fn owned_addresses_follow_connected_prefixes() {
        let l = links(&config(), &opened());
        let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        let (wan, lan) = (&l[0].owned, &l[1].owned);
        assert!(wan.contains(ip(198, 18, 0, 10)) && !lan.contains(ip(198, 18, 0, 10)));
        assert!(lan.contains(ip(198, 18, 1, 100)) && !wan.contains(ip(198, 18, 1, 100)));
        assert!(wan.contains(ip(198, 18, 5, 80)) && lan.contains(ip(198, 18, 5, 80)), "unconnected VIP on all");
        assert_eq!((l[0].kernel_port, l[1].port), (2, 1));
        assert!(l[1].checksum_offload && !l[0].checksum_offload);
        let again = relink(&config(), &l);
        assert_eq!(again[1].owned, l[1].owned);
        assert_eq!(again[1].port, 1);
    }

    #[test]
    fn routes_come_from_interfaces_and_route_sections() {
        let r = routes(&config()).expect("routes");
        let hop = r.lookup(Ipv4Addr::new(198, 18, 1, 2)).expect("connected");
        assert_eq!((hop.link, hop.gateway), (1, Ipv4Addr::new(198, 18, 1, 2)));
        let hop = r.lookup(Ipv4Addr::new(198, 19, 0, 1)).expect("default route");
        assert_eq!((hop.link, hop.gateway), (0, Ipv4Addr::new(198, 18, 0, 254)));
        assert!(!hop.kernel);
        let hop = r.lookup(Ipv4Addr::new(198, 18, 1, 1)).expect("the host's own address");
        assert_eq!((hop.link, hop.kernel), (1, true), "through the kernel of lan");
    }
}
