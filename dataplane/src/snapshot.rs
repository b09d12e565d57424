//! What every worker reads: links, services, VIPs and routes, built on the control core and
//! published whole. Immutable once published; a worker never sees half of one.

use std::net::Ipv4Addr;

use crate::classify::OwnedAddrs;
use crate::ipmap::IpMap;
use crate::route::{Hop, Routes};
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
    /// How replies on this port reach the worker that owns their local IP.
    pub steering: Steering,
    /// With `Steering::Rss`: the port's Toeplitz key and redirection table, to choose local
    /// ports whose replies hash to the owner's queue.
    pub rss: Option<std::sync::Arc<crate::steer::rss::RssSteering>>,
    /// The largest IP packet the port sends (its MTU): what the data path makes bigger
    /// (`ClientAddress::ProxyV2`) is kept within it.
    pub mtu: u16,
}

/// Limits on a service's new sessions (`max_sessions`, ...); 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_sessions: u32,
    pub new_sessions_per_second: u32,
    pub per_client_new_sessions_per_second: u32,
}

/// Client prefixes (`allow`, `deny`), as (network, mask).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prefixes(Vec<(u32, u32)>);

impl Prefixes {
    pub fn new(prefixes: impl IntoIterator<Item = (Ipv4Addr, u8)>) -> Prefixes {
        Prefixes(
            prefixes
                .into_iter()
                .map(|(addr, len)| {
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
                    (u32::from(addr) & mask, mask)
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.0.iter().any(|&(net, mask)| ip & mask == net)
    }
}

/// What backends learn of the client (`client_address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAddress {
    /// Nothing: they see the local IP.
    #[default]
    None,
    /// A PROXY protocol v2 header (UDP: before every datagram's payload).
    ProxyV2,
    /// TCP option 254 on the client's segments (`nat::toa`).
    Toa,
}

/// How replies reach the worker that owns their session (`[steering] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// One worker: every reply is its own.
    Single,
    /// The NIC's flow rules send each local IP to its owner's queue.
    Flow,
    /// Local ports are chosen so that the NIC's RSS hash of the reply lands on the owner.
    Rss,
    /// Software: a worker hands a reply it does not own to its owner over a ring.
    Redirect,
}

impl Steering {
    pub fn name(self) -> &'static str {
        match self {
            Steering::Single => "single",
            Steering::Flow => "flow",
            Steering::Rss => "rss",
            Steering::Redirect => "redirect",
        }
    }
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

pub use crate::limits::{MAX_BACKENDS, MAX_SERVICES};

/// A backend, at a stable id (its index in `Snapshot::backends`) that it keeps across reloads
/// for as long as it stays in its service.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// The slot of its service in `Snapshot::services`.
    pub service: u16,
    pub endpoint: Endpoint,
    /// The weight in force (configured, or set at run time).
    pub weight: u32,
    pub state: BackendState,
    /// False for a free id (a removed backend): sessions still pointing here end.
    pub live: bool,
    /// Next hop towards it, from the routes.
    pub hop: Option<Hop>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Takes new sessions by its weight.
    Up,
    /// No new sessions; its sessions go on (`sluicectl backend ... drain`).
    Draining,
    /// Failed its health checks: no new sessions; its sessions go on with `on_failure =
    /// "inhibit"` and end with `"remove"`.
    Down,
}

impl BackendState {
    pub fn name(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::Draining => "draining",
            BackendState::Down => "down",
        }
    }
}

impl Backend {
    /// The weight the scheduler uses for new sessions.
    pub fn effective_weight(&self) -> u32 {
        if self.live && self.state == BackendState::Up {
            self.weight
        } else {
            0
        }
    }
}

/// A service, at a stable slot (its index in `Snapshot::services`) that it keeps across
/// reloads; a removed service leaves its slot not `live`.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    pub vip: Endpoint,
    pub scheduler: SchedulerKind,
    /// UDP: every datagram is scheduled on its own; replies from any backend reach the client.
    pub per_packet: bool,
    /// `on_failure = "remove"`: sessions of a backend that went down end.
    pub remove_on_failure: bool,
    pub client_address: ClientAddress,
    /// TCP: SYNs are answered with cookies; only a valid ACK opens a session (`synproxied`).
    pub synproxy: bool,
    pub limits: Limits,
    /// Clients that may open sessions (empty: all) and those that may not (checked first).
    pub allow: Prefixes,
    pub deny: Prefixes,
    pub live: bool,
    /// At least `min_active` backends are healthy. Without it the service does not answer:
    /// its traffic is dropped (`vip_down`), and its VIP's ARP too unless another service of the
    /// VIP still has its quorum.
    pub quorum: bool,
    /// Backend ids, in configuration order: what the scheduler chooses among.
    pub members: Vec<u16>,
    /// Every local IP of the service; each worker uses those it owns (`Snapshot::local_owners`).
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
        let live = || services.iter().enumerate().filter(|(_, s)| s.live);
        let mut index: Vec<(u64, u16)> =
            live().map(|(i, s)| (vip_key(s.proto, s.vip.ip, s.vip.port), i as u16)).collect();
        index.sort_unstable();
        let mut addresses: Vec<u32> = live().map(|(_, s)| u32::from(s.vip.ip)).collect();
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

/// VIP addresses none of whose live services has its quorum: they answer nothing.
pub fn silent_vips(services: &[Service]) -> Vec<Ipv4Addr> {
    let live = || services.iter().filter(|s| s.live);
    let mut silent: Vec<Ipv4Addr> = live()
        .filter(|s| !s.quorum)
        .map(|s| s.vip.ip)
        .filter(|&ip| !live().any(|o| o.vip.ip == ip && o.quorum))
        .collect();
    silent.sort_unstable();
    silent.dedup();
    silent
}

/// Everything a worker reads.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every snapshot published.
    pub generation: u64,
    pub links: Vec<Link>,
    /// By slot; removed services stay as slots that are not `live`.
    pub services: Vec<Service>,
    /// By backend id; removed backends stay as ids that are not `live`.
    pub backends: Vec<Backend>,
    pub vips: VipIndex,
    pub routes: Routes,
    pub timeouts: Timeouts,
    /// `[sessions] when_full = "evict"`: a new flow that finds the table or its local IP's
    /// ports full takes the place of the oldest unconfirmed session (else it is dropped).
    pub evict_when_full: bool,
    /// Local IP (as u32) -> the worker that owns it (see `Snapshot::owners`).
    pub local_owners: IpMap<u16>,
}

impl Snapshot {
    /// The worker that owns local IP `ip`, if it is one.
    #[inline]
    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<u16> {
        self.local_owners.get(u32::from(ip))
    }

    /// Which worker owns each local IP of the live services (`laddr::owners`, the one rule),
    /// keeping every assignment of `previous` that still applies.
    pub fn owners(services: &[Service], workers: usize, previous: &[(u32, u16)]) -> Vec<(u32, u16)> {
        crate::laddr::owners(services.iter().filter(|s| s.live).map(|s| s.local_ips.as_slice()), workers, previous)
    }
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
            per_packet: false,
            remove_on_failure: false,
            client_address: ClientAddress::None,
            synproxy: false,
            limits: Limits::default(),
            allow: Prefixes::default(),
            deny: Prefixes::default(),
            live: true,
            quorum: true,
            members: vec![],
            local_ips: vec![],
        }
    }

    #[test]
    fn vip_index_finds_services_by_protocol_address_and_port() {
        let mut gone = service(6, [198, 18, 0, 12], 80);
        gone.live = false;
        let services = [
            service(17, [198, 18, 0, 10], 53),
            service(6, [198, 18, 0, 10], 80),
            service(6, [198, 18, 0, 11], 80),
            gone,
        ];
        let vips = VipIndex::new(&services);
        assert_eq!(vips.service(6, Ipv4Addr::new(198, 18, 0, 12), 80), None, "a removed slot is no service");
        let ip = |d| Ipv4Addr::new(198, 18, 0, d);
        assert_eq!(vips.service(17, ip(10), 53), Some(0));
        assert_eq!(vips.service(6, ip(10), 80), Some(1));
        assert_eq!(vips.service(6, ip(11), 80), Some(2));
        assert_eq!(vips.service(6, ip(10), 53), None);
        assert_eq!(vips.service(17, ip(10), 80), None);
        assert!(vips.is_vip(ip(10)) && vips.is_vip(ip(11)) && !vips.is_vip(ip(12)));
    }

    #[test]
    fn local_ips_keep_their_worker_across_changes() {
        let ip = |d| Ipv4Addr::new(198, 18, 1, d);
        let with = |ips: &[u8]| {
            let mut s = service(17, [198, 18, 0, 10], 53);
            s.local_ips = ips.iter().map(|&d| ip(d)).collect();
            vec![s]
        };
        let first = Snapshot::owners(&with(&[100, 101, 102, 103]), 2, &[]);
        let of = |o: &[(u32, u16)], d| o.iter().find(|&&(a, _)| a == u32::from(ip(d))).map(|&(_, w)| w);
        assert_eq!(
            [100, 101, 102, 103].map(|d| of(&first, d)),
            [Some(0), Some(1), Some(0), Some(1)],
            "index modulo workers"
        );
        // 100 leaves: nothing moves (by position every IP would have changed hands).
        let second = Snapshot::owners(&with(&[101, 102, 103]), 2, &first);
        assert_eq!([101, 102, 103].map(|d| of(&second, d)), [Some(1), Some(0), Some(1)]);
        assert_eq!(of(&second, 100), None);
        // A new one goes where the service lacks a local IP, or to the least loaded worker.
        let third = Snapshot::owners(&with(&[101, 103, 104]), 2, &second);
        assert_eq!(of(&third, 104), Some(0), "worker 0 had none of this service left");
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
            steering: Steering::Single,
            rss: None,
            mtu: 1500,
        };
        assert_eq!(link.source_for(Ipv4Addr::new(198, 18, 2, 9)), Some(Ipv4Addr::new(198, 18, 2, 1)));
        assert_eq!(link.source_for(Ipv4Addr::new(10, 0, 0, 1)), Some(Ipv4Addr::new(198, 18, 1, 1)));
    }
}

/// A service described plainly, for building whole snapshots in tests, benchmarks and fuzzing
/// (the appliance builds its snapshots from its model instead).
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub proto: u8,
    pub vip: Endpoint,
    pub scheduler: SchedulerKind,
    pub per_packet: bool,
    pub remove_on_failure: bool,
    pub client_address: ClientAddress,
    /// (backend, weight)
    pub backends: Vec<(Endpoint, u32)>,
    pub local_ips: Vec<Ipv4Addr>,
}

impl Snapshot {
    /// Services at slots 0.., backends at ids 0.. in order, all up, next hops from `routes`.
    pub fn from_specs(links: Vec<Link>, specs: &[ServiceSpec], routes: Routes, timeouts: Timeouts) -> Snapshot {
        let mut services = Vec::new();
        let mut backends = Vec::new();
        for (slot, spec) in specs.iter().enumerate() {
            let mut members = Vec::new();
            for &(endpoint, weight) in &spec.backends {
                members.push(backends.len() as u16);
                backends.push(Backend {
                    service: slot as u16,
                    endpoint,
                    weight,
                    state: BackendState::Up,
                    live: true,
                    hop: routes.lookup(endpoint.ip).map(Into::into),
                });
            }
            services.push(Service {
                name: spec.name.clone(),
                proto: spec.proto,
                vip: spec.vip,
                scheduler: spec.scheduler,
                per_packet: spec.per_packet,
                remove_on_failure: spec.remove_on_failure,
                client_address: spec.client_address,
                synproxy: false,
                limits: Limits::default(),
                allow: Prefixes::default(),
                deny: Prefixes::default(),
                live: true,
                quorum: true,
                members,
                local_ips: spec.local_ips.clone(),
            });
        }
        Snapshot {
            generation: 1,
            links,
            vips: VipIndex::new(&services),
            services,
            backends,
            routes,
            timeouts,
            evict_when_full: true,
            local_owners: IpMap::default(),
        }
    }
}
