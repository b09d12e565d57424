//! Builds what the workers read (`dataplane::snapshot::Snapshot`) from the validated config
//! and the ports that were opened for it.

use std::net::Ipv4Addr;

use ctrlplane::config::{Config, Protocol, Scheduler};
use dataplane::classify::OwnedAddrs;
use dataplane::route::Routes;
use dataplane::sched::SchedulerKind;
use dataplane::session::{Endpoint, Timeouts};
use dataplane::snapshot::{Link, Service, Snapshot, VipIndex};
use dataplane::wire::ipv4::protocol;
use dataplane::wire::MacAddr;

/// The DPDK ports behind one `[[interface]]`.
pub struct OpenedLink {
    pub port: u16,
    pub kernel_port: u16,
    pub mac: MacAddr,
    pub checksum_offload: bool,
}

/// `opened[i]` belongs to `config.interfaces[i]`.
pub fn build(config: &Config, opened: &[OpenedLink]) -> Result<Snapshot, String> {
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
            addresses: iface.addresses.iter().map(|n| (n.addr, n.prefix_len)).collect(),
            owned: OwnedAddrs::new(owned_addresses(config).filter(|&a| answers_on(config, i, a))),
            checksum_offload: o.checksum_offload,
        })
        .collect();
    let services: Vec<Service> = config.services.iter().map(service).collect();
    let connected: Vec<(Ipv4Addr, u8, usize)> = config
        .interfaces
        .iter()
        .enumerate()
        .flat_map(|(i, iface)| iface.addresses.iter().map(move |n| (n.network(), n.prefix_len, i)))
        .collect();
    let via: Vec<(Ipv4Addr, u8, Ipv4Addr)> =
        config.routes.iter().map(|r| (r.prefix.network(), r.prefix.prefix_len, r.via)).collect();
    let routes = Routes::new(&connected, &via)?;
    let t = &config.timeouts;
    Ok(Snapshot {
        links,
        vips: VipIndex::new(&services),
        services,
        routes,
        timeouts: Timeouts { tcp_syn: t.tcp_syn, tcp_established: t.tcp_established, tcp_closing: t.tcp_closing, udp: t.udp },
    })
}

fn service(s: &ctrlplane::config::Service) -> Service {
    let scheduler = match s.scheduler {
        Scheduler::Rr => SchedulerKind::Rr,
        Scheduler::Wrr => SchedulerKind::Wrr,
        other => {
            crate::warn!("service {}: scheduler {other:?} is not implemented yet; using wrr", s.name);
            SchedulerKind::Wrr
        }
    };
    Service {
        name: s.name.clone(),
        proto: match s.protocol {
            Protocol::Tcp => protocol::TCP,
            Protocol::Udp => protocol::UDP,
        },
        vip: Endpoint::new(*s.vip.ip(), s.vip.port()),
        scheduler,
        backends: s.backends.iter().map(|b| Endpoint::new(*b.address.ip(), b.address.port())).collect(),
        weights: s.backends.iter().map(|b| b.weight).collect(),
        local_ips: s.local_ips.clone(),
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

    fn snapshot() -> Snapshot {
        let config = parse(CONFIG, "t.toml", &Host { cpus: 2 }).expect("valid");
        let opened = [
            OpenedLink { port: 0, kernel_port: 2, mac: MacAddr([2, 0, 0, 0, 0, 1]), checksum_offload: false },
            OpenedLink { port: 1, kernel_port: 3, mac: MacAddr([2, 0, 0, 0, 1, 1]), checksum_offload: true },
        ];
        build(&config, &opened).expect("routes")
    }

    #[test]
    fn owned_addresses_follow_connected_prefixes() {
        let s = snapshot();
        let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        let (wan, lan) = (&s.links[0].owned, &s.links[1].owned);
        assert!(wan.contains(ip(198, 18, 0, 10)) && !lan.contains(ip(198, 18, 0, 10)));
        assert!(lan.contains(ip(198, 18, 1, 100)) && !wan.contains(ip(198, 18, 1, 100)));
        assert!(wan.contains(ip(198, 18, 5, 80)) && lan.contains(ip(198, 18, 5, 80)), "unconnected VIP on all");
        assert_eq!((s.links[0].kernel_port, s.links[1].port), (2, 1));
        assert!(s.links[1].checksum_offload && !s.links[0].checksum_offload);
    }

    #[test]
    fn services_vips_and_routes_come_from_the_config() {
        let s = snapshot();
        assert_eq!(s.vips.service(protocol::UDP, Ipv4Addr::new(198, 18, 0, 10), 53), Some(0));
        assert_eq!(s.vips.service(protocol::TCP, Ipv4Addr::new(198, 18, 5, 80), 80), Some(1));
        assert_eq!(s.services[0].weights, [3]);
        let hop = s.routes.lookup(Ipv4Addr::new(198, 18, 1, 2)).expect("connected");
        assert_eq!((hop.link, hop.gateway), (1, Ipv4Addr::new(198, 18, 1, 2)));
        let hop = s.routes.lookup(Ipv4Addr::new(198, 19, 0, 1)).expect("default route");
        assert_eq!((hop.link, hop.gateway), (0, Ipv4Addr::new(198, 18, 0, 254)));
    }
}
