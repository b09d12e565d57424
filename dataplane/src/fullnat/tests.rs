//! `FullNat` on byte arrays, against one worker's view of a small appliance: every packet that
//! leaves is compared byte for byte with the packet built from scratch with the expected
//! fields (`nat::testkit`), and every drop with its reason.
//!
//! The appliance: link 0 "wan" 198.18.0.1/24 (clients, a router at .254 for the rest of
//! 198.18.0.0/15), link 1 "lan" 198.18.1.1/24 (backends, local IPs); VIP 198.18.0.10 with
//! UDP :53 (rr over three backends, local IP .100), TCP :80 (wrr 2:1 over two backends,
//! local IP .101) and UDP :123 (its one backend drained to weight 0, local IP .100 again).

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::classify::OwnedAddrs;
use crate::nat::testkit::{
    assert_checksums_exact, echo_reply_packet, echo_request_packet, icmp_packet, ip_packet, tcp_packet, udp_packet,
    Endpoint as Ep, Rng,
};
use crate::route::Routes;
use crate::sched::SchedulerKind;
use crate::session::{Session, State, Timeouts};
use crate::snapshot::{Steering, Link, ServiceSpec};
use crate::wire::icmp::{self, unreachable, Repr};
use crate::wire::tcp::Flags;
use crate::wire::{checksum, ipv4, MacAddr};

const fn ip(c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, c, d)
}

const VIP: Ipv4Addr = ip(0, 10);
const DNS: Ep = (VIP, 53);
const WEB: Ep = (VIP, 80);
const NTP: Ep = (VIP, 123);
const DNS_LOCAL: Ipv4Addr = ip(1, 100);
const WEB_LOCAL: Ipv4Addr = ip(1, 101);
const DNS_BACKENDS: [Ep; 3] = [(ip(1, 2), 53), (ip(1, 3), 53), (ip(1, 4), 53)];
const WEB_BACKENDS: [Ep; 2] = [(ip(1, 2), 8080), (ip(1, 3), 8080)];
/// A client on the wan link, and one beyond the router there.
const CLIENT: Ep = (ip(0, 50), 40000);
const FAR_CLIENT: Ep = (Ipv4Addr::new(198, 19, 7, 7), 40000);
const ROUTER: Ipv4Addr = ip(0, 254);

const PORTS: u32 = 64512; // laddr::DEFAULT_PORTS
const QUERY: &[u8] = b"query, odd length";
const ANSWER: &[u8] = b"the answer";

struct Options {
    default_route: bool,
    lan_offload: bool,
    dns_local_ips: &'static [Ipv4Addr],
}

const PLAIN: Options = Options { default_route: true, lan_offload: false, dns_local_ips: &[DNS_LOCAL] };

fn snapshot(o: Options) -> Snapshot {
    let link = |name: &str, port: u16, addr, offload| Link {
        name: name.into(),
        port,
        kernel_port: port + 2,
        mac: MacAddr([2, 0, 0, 0, 0, port as u8]),
        addresses: vec![(addr, 24)],
        owned: OwnedAddrs::new([VIP, WEB_LOCAL].into_iter().chain(o.dns_local_ips.iter().copied())),
        checksum_offload: offload,
        steering: Steering::Single,
        rss: None,
    };
    let service = |name: &str, proto, vip: Ep, scheduler, backends: &[Ep], weights: &[u32], locals: &[Ipv4Addr]| {
        ServiceSpec {
            name: name.into(),
            proto,
            vip: Endpoint::new(vip.0, vip.1),
            scheduler,
            per_packet: false,
            remove_on_failure: false,
            backends: backends.iter().zip(weights).map(|(b, &w)| (Endpoint::new(b.0, b.1), w)).collect(),
            local_ips: locals.to_vec(),
        }
    };
    let services = vec![
        service("dns", protocol::UDP, DNS, SchedulerKind::Rr, &DNS_BACKENDS, &[1, 1, 1], o.dns_local_ips),
        service("web", protocol::TCP, WEB, SchedulerKind::Wrr, &WEB_BACKENDS, &[2, 1], &[WEB_LOCAL]),
        service("ntp", protocol::UDP, NTP, SchedulerKind::Rr, &[(ip(1, 5), 123)], &[0], &[DNS_LOCAL]),
    ];
    let via = if o.default_route { vec![(Ipv4Addr::UNSPECIFIED, 0, ROUTER)] } else { vec![] };
    let routes = Routes::new(&[(ip(0, 0), 24, 0), (ip(1, 0), 24, 1)], &via).expect("routes");
    let timeouts = Timeouts {
        tcp_syn: Duration::from_secs(1),
        tcp_established: Duration::from_secs(5),
        tcp_closing: Duration::from_secs(1),
        udp: Duration::from_secs(2),
    };
    let links = vec![link("wan", 0, ip(0, 1), false), link("lan", 1, ip(1, 1), o.lan_offload)];
    Snapshot::from_specs(links, &services, routes, timeouts)
}

/// One worker's FULLNAT with its snapshot and counters.
struct Lab {
    snap: Snapshot,
    nat: FullNat,
    c: WorkerCounters,
}

impl Lab {
    fn new() -> Lab {
        Lab::with(PLAIN, 0, 1, 64)
    }

    fn with(o: Options, worker: usize, workers: usize, capacity: u32) -> Lab {
        let snap = snapshot(o);
        let nat = FullNat::for_worker(&snap, worker, workers, capacity);
        Lab { snap, nat, c: WorkerCounters::default() }
    }

    fn process(&mut self, packet: &mut [u8], now_ms: u64) -> Step {
        self.nat.process(&self.snap, packet, now_ms, &self.c)
    }

    /// `process` of a packet that must be dropped, and left as it was.
    fn drop_reason(&mut self, packet: &[u8], now_ms: u64) -> DropReason {
        let mut b = packet.to_vec();
        let step = self.process(&mut b, now_ms);
        assert_eq!(b, packet, "a dropped packet is left unchanged");
        match step {
            Step::Drop(reason) => reason,
            other => panic!("expected a drop, got {other:?}"),
        }
    }

    /// The session of the client flow `client -> vip`.
    fn session(&self, proto: u8, client: Ep, vip: Ep) -> Option<Session> {
        let key = FlowKey { proto, src: Endpoint::new(client.0, client.1), dst: Endpoint::new(vip.0, vip.1) };
        let (id, dir) = self.nat.sessions().lookup(&key)?;
        assert_eq!(dir, Direction::Forward);
        Some(*self.nat.sessions().get(id))
    }

    /// Free ports of the pool of local IP `local`.
    fn free(&self, local: Ipv4Addr) -> u32 {
        self.nat.port_pools().iter().find(|p| p.ip() == local).expect("a pool").free()
    }

    /// Sends a datagram from `client` to the DNS VIP, which must open or follow a session to
    /// `backend`; checks the packet leaves exactly as local -> backend. Returns the local endpoint.
    fn query(&mut self, client: Ep, backend: Ep, now_ms: u64) -> Ep {
        let mut b = udp_packet(client, DNS, 64, QUERY, true, &[]);
        let step = self.process(&mut b, now_ms);
        assert_eq!(step, Step::Forward { hop: Hop { link: 1, gateway: backend.0 }, offload: None });
        let s = self.session(protocol::UDP, client, DNS).expect("a session");
        let local = (s.local.ip, s.local.port);
        assert_eq!((s.backend.ip, s.backend.port), backend);
        assert_eq!(b, udp_packet(local, backend, 63, QUERY, true, &[]));
        assert_checksums_exact(&b);
        local
    }

    /// Sends a SYN from `client` to the web VIP; checks it leaves as local -> `backend`.
    fn syn(&mut self, client: Ep, backend: Ep, now_ms: u64) -> Ep {
        let mut b = tcp_packet(client, WEB, 64, Flags::SYN, b"", &[]);
        let step = self.process(&mut b, now_ms);
        assert_eq!(step, Step::Forward { hop: Hop { link: 1, gateway: backend.0 }, offload: None });
        let s = self.session(protocol::TCP, client, WEB).expect("a session");
        let local = (s.local.ip, s.local.port);
        assert_eq!((s.backend.ip, s.backend.port), backend);
        assert_eq!(b, tcp_packet(local, backend, 63, Flags::SYN, b"", &[]));
        assert_checksums_exact(&b);
        local
    }

    /// A TCP segment of an existing web session, either way; checks it leaves rewritten exactly.
    fn segment(&mut self, from: Ep, to: Ep, flags: Flags, now_ms: u64) {
        let s = self.session_by_any(protocol::TCP, from, to);
        let (new_from, new_to, hop) = if (s.client.ip, s.client.port) == from {
            ((s.local.ip, s.local.port), (s.backend.ip, s.backend.port), Hop { link: 1, gateway: s.backend.ip })
        } else {
            ((s.vip.ip, s.vip.port), (s.client.ip, s.client.port), Hop { link: 0, gateway: s.client.ip })
        };
        let mut b = tcp_packet(from, to, 64, flags, b"data", &[]);
        assert_eq!(self.process(&mut b, now_ms), Step::Forward { hop, offload: None });
        assert_eq!(b, tcp_packet(new_from, new_to, 63, flags, b"data", &[]));
        assert_checksums_exact(&b);
    }

    fn session_by_any(&self, proto: u8, from: Ep, to: Ep) -> Session {
        let key = FlowKey { proto, src: Endpoint::new(from.0, from.1), dst: Endpoint::new(to.0, to.1) };
        let (id, _) = self.nat.sessions().lookup(&key).expect("a session");
        *self.nat.sessions().get(id)
    }
}

fn client(port: u16) -> Ep {
    (CLIENT.0, port)
}

// --- UDP ---

#[test]
fn udp_datagram_to_the_vip_opens_a_session_and_leaves_from_a_local_ip() {
    let mut lab = Lab::new();
    let mut b = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    b.extend_from_slice(&[0xee; 6]); // Ethernet padding: left alone
    let step = lab.process(&mut b, 1000);
    assert_eq!(step, Step::Forward { hop: Hop { link: 1, gateway: DNS_BACKENDS[0].0 }, offload: None });

    let s = lab.session(protocol::UDP, CLIENT, DNS).expect("a session");
    assert_eq!((s.local.ip, s.backend, s.state), (DNS_LOCAL, Endpoint::new(ip(1, 2), 53), State::Udp));
    assert!(s.local.port >= 1024, "an unprivileged local port: {}", s.local.port);
    let mut expected = udp_packet((DNS_LOCAL, s.local.port), DNS_BACKENDS[0], 63, QUERY, true, &[]);
    expected.extend_from_slice(&[0xee; 6]);
    assert_eq!(b, expected);
    assert_eq!(b[8], 63, "TTL decremented");
    assert_checksums_exact(&b);

    assert_eq!((s.packets, s.bytes), ([1, 0], [(20 + 8 + QUERY.len()) as u64, 0]), "IP length, padding not counted");
    assert_eq!((s.created_ms, s.last_seen_ms), (1000, 1000));
    assert_eq!((lab.c.sessions_created.get(), lab.c.forwarded.get(), lab.c.replied.get()), (1, 1, 0));
    assert_eq!(lab.free(DNS_LOCAL), PORTS - 1);
    assert_eq!(lab.free(WEB_LOCAL), PORTS);
}

#[test]
fn backend_reply_returns_from_the_vip_to_the_client() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 1000);
    let mut b = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, true, &[]);
    let step = lab.process(&mut b, 1010);
    assert_eq!(step, Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
    assert_eq!(b, udp_packet(DNS, CLIENT, 63, ANSWER, true, &[]));
    assert_checksums_exact(&b);

    let s = lab.session(protocol::UDP, CLIENT, DNS).unwrap();
    assert_eq!((s.packets, s.last_seen_ms), ([1, 1], 1010));
    assert_eq!((lab.c.sessions_created.get(), lab.c.forwarded.get(), lab.c.replied.get()), (1, 1, 1));

    // No checksum stays no checksum.
    let mut b = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, false, &[]);
    assert_eq!(lab.process(&mut b, 1020), Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
    assert_eq!(b, udp_packet(DNS, CLIENT, 63, ANSWER, false, &[]));
}

#[test]
fn later_datagrams_of_a_flow_follow_its_session() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 1000);
    assert_eq!(lab.query(CLIENT, DNS_BACKENDS[0], 1100), local, "same backend, same local port");
    assert_eq!(lab.query(CLIENT, DNS_BACKENDS[0], 1200), local);
    assert_eq!(lab.nat.sessions().len(), 1);
    assert_eq!(lab.session(protocol::UDP, CLIENT, DNS).unwrap().packets, [3, 0]);
    assert_eq!((lab.c.sessions_created.get(), lab.c.forwarded.get()), (1, 3));
    assert_eq!(lab.free(DNS_LOCAL), PORTS - 1);
}

#[test]
fn client_beyond_a_router_is_answered_through_the_router() {
    let mut lab = Lab::new();
    let local = lab.query(FAR_CLIENT, DNS_BACKENDS[0], 0);
    let mut b = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, true, &[]);
    assert_eq!(lab.process(&mut b, 1), Step::Forward { hop: Hop { link: 0, gateway: ROUTER }, offload: None });
    assert_eq!(b, udp_packet(DNS, FAR_CLIENT, 63, ANSWER, true, &[]));
}

// --- Scheduling ---

#[test]
fn rr_gives_each_new_flow_the_next_backend() {
    let mut lab = Lab::new();
    let picked: Vec<Ep> = (0..4).map(|i| lab.query(client(41000 + i), DNS_BACKENDS[i as usize % 3], 0)).collect();
    let mut ports: Vec<u16> = picked.iter().map(|l| l.1).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "a local port of its own for each session: {picked:?}");
    assert_eq!(lab.c.sessions_created.get(), 4);
    assert_eq!(lab.free(DNS_LOCAL), PORTS - 4);
}

#[test]
fn wrr_two_to_one_over_three_syns() {
    let mut lab = Lab::new();
    for (i, backend) in [WEB_BACKENDS[0], WEB_BACKENDS[1], WEB_BACKENDS[0]].into_iter().enumerate() {
        let local = lab.syn(client(42000 + i as u16), backend, 0);
        assert_eq!(local.0, WEB_LOCAL);
    }
    assert_eq!(lab.free(WEB_LOCAL), PORTS - 3);
    assert_eq!(lab.free(DNS_LOCAL), PORTS);
}

#[test]
fn new_sessions_take_turns_over_the_workers_local_ips() {
    const IPS: [Ipv4Addr; 3] = [ip(1, 100), ip(1, 102), ip(1, 103)];
    // Worker 0 of 2 owns the first and the third local IP, worker 1 the second.
    let mut lab = Lab::with(Options { dns_local_ips: &IPS, ..PLAIN }, 0, 2, 64);
    let locals: Vec<Ep> = (0..4).map(|i| lab.query(client(46000 + i), DNS_BACKENDS[i as usize % 3], 0)).collect();
    let ips: Vec<Ipv4Addr> = locals.iter().map(|l| l.0).collect();
    assert_eq!(ips, [IPS[0], IPS[2], IPS[0], IPS[2]]);
    assert_eq!((lab.free(IPS[0]), lab.free(IPS[2])), (PORTS - 2, PORTS - 2));
    let mut b = udp_packet(DNS_BACKENDS[1], locals[1], 64, ANSWER, true, &[]);
    assert_eq!(lab.process(&mut b, 1), Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
    assert_eq!(b, udp_packet(DNS, client(46001), 63, ANSWER, true, &[]));

    let mut lab = Lab::with(Options { dns_local_ips: &IPS, ..PLAIN }, 1, 2, 64);
    let pools: Vec<Ipv4Addr> = lab.nat.port_pools().iter().map(|p| p.ip()).collect();
    assert_eq!(pools, [IPS[1]], "the web service's one local IP belongs to worker 0");
    assert_eq!(lab.query(CLIENT, DNS_BACKENDS[0], 0).0, IPS[1]);
    let syn = tcp_packet(CLIENT, WEB, 64, Flags::SYN, b"", &[]);
    assert_eq!(lab.drop_reason(&syn, 0), DropReason::NoLocalPort);
}

#[test]
fn service_without_backend_or_route_or_local_ip_opens_nothing() {
    let mut lab = Lab::new();
    let ntp = udp_packet(CLIENT, NTP, 64, QUERY, true, &[]);
    assert_eq!(lab.drop_reason(&ntp, 0), DropReason::NoBackend);
    assert_eq!(lab.nat.port_pools().len(), 2, "ntp shares dns's local IP, and its pool");

    let mut lab = Lab::with(Options { default_route: false, ..PLAIN }, 0, 1, 64);
    let far = udp_packet(FAR_CLIENT, DNS, 64, QUERY, true, &[]);
    assert_eq!(lab.drop_reason(&far, 0), DropReason::NoRoute);
    assert_eq!(lab.free(DNS_LOCAL), PORTS, "no port taken");

    // Worker 1 of 2 owns no local IP of any service (each has one, owned by worker 0).
    let mut lab = Lab::with(PLAIN, 1, 2, 64);
    assert!(lab.nat.port_pools().is_empty());
    assert_eq!(lab.drop_reason(&udp_packet(CLIENT, DNS, 64, QUERY, true, &[]), 0), DropReason::NoLocalPort);
    assert_eq!(lab.drop_reason(&tcp_packet(CLIENT, WEB, 64, Flags::SYN, b"", &[]), 0), DropReason::NoLocalPort);
    assert!(lab.nat.sessions().is_empty());
    assert_eq!(lab.c.sessions_created.get(), 0);
}

// --- TCP ---

#[test]
fn tcp_handshake_data_and_close() {
    let mut lab = Lab::new();
    let local = lab.syn(CLIENT, WEB_BACKENDS[0], 0);
    let state = |lab: &Lab| lab.session(protocol::TCP, CLIENT, WEB).unwrap().state;
    assert_eq!(state(&lab), State::TcpSynSent);
    lab.segment(CLIENT, WEB, Flags::SYN, 100); // retransmitted SYN: same session
    assert_eq!(lab.c.sessions_created.get(), 1);

    lab.segment(WEB_BACKENDS[0], local, Flags::SYN | Flags::ACK, 200);
    assert_eq!(state(&lab), State::TcpEstablished);
    lab.segment(CLIENT, WEB, Flags::ACK, 300);
    lab.segment(CLIENT, WEB, Flags::PSH | Flags::ACK, 300);
    lab.segment(WEB_BACKENDS[0], local, Flags::PSH | Flags::ACK, 400);
    assert_eq!(state(&lab), State::TcpEstablished);

    lab.segment(CLIENT, WEB, Flags::FIN | Flags::ACK, 500);
    assert_eq!(state(&lab), State::TcpClosing);
    lab.segment(WEB_BACKENDS[0], local, Flags::FIN | Flags::ACK, 600);
    lab.segment(CLIENT, WEB, Flags::ACK, 700);
    assert_eq!(state(&lab), State::TcpClosing);
    let s = lab.session(protocol::TCP, CLIENT, WEB).unwrap();
    assert_eq!(s.packets, [6, 3]);
    assert_eq!((lab.c.sessions_created.get(), lab.c.forwarded.get(), lab.c.replied.get()), (1, 6, 3));
}

#[test]
fn rst_from_either_side_closes() {
    let mut lab = Lab::new();
    let local = lab.syn(client(43000), WEB_BACKENDS[0], 0);
    lab.segment(WEB_BACKENDS[0], local, Flags::RST | Flags::ACK, 10);
    assert_eq!(lab.session(protocol::TCP, client(43000), WEB).unwrap().state, State::TcpClosing);

    lab.syn(client(43001), WEB_BACKENDS[1], 0);
    lab.segment(client(43001), WEB, Flags::RST, 10);
    assert_eq!(lab.session(protocol::TCP, client(43001), WEB).unwrap().state, State::TcpClosing);
}

#[test]
fn syn_on_a_closing_session_opens_a_new_one() {
    let mut lab = Lab::new();
    let old = lab.syn(CLIENT, WEB_BACKENDS[0], 0);
    lab.segment(CLIENT, WEB, Flags::RST, 10);
    let new = lab.syn(CLIENT, WEB_BACKENDS[1], 20); // the client reuses its port: next backend
    assert_ne!(new, old);
    assert_eq!(lab.session(protocol::TCP, CLIENT, WEB).unwrap().state, State::TcpSynSent);
    assert_eq!((lab.nat.sessions().len(), lab.c.sessions_created.get()), (1, 2));
    assert_eq!(lab.free(WEB_LOCAL), PORTS - 1, "the old session's port is back");
    let stale = tcp_packet(WEB_BACKENDS[0], old, 64, Flags::ACK, b"", &[]);
    assert_eq!(lab.drop_reason(&stale, 30), DropReason::NoSession);
}

#[test]
fn tcp_without_a_lone_syn_opens_nothing() {
    let mut lab = Lab::new();
    for flags in [Flags::ACK, Flags::SYN | Flags::ACK, Flags::RST, Flags::SYN | Flags::RST, Flags::FIN, Flags(0)] {
        let b = tcp_packet(CLIENT, WEB, 64, flags, b"", &[]);
        assert_eq!(lab.drop_reason(&b, 0), DropReason::NoSession, "{flags:?}");
    }
    assert!(lab.nat.sessions().is_empty());
    assert_eq!((lab.c.sessions_created.get(), lab.free(WEB_LOCAL)), (0, PORTS));
}

#[test]
fn packets_to_a_local_ip_without_a_session_are_dropped() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 0);
    let other_port = (DNS_LOCAL, if local.1 == 5000 { 5001 } else { 5000 });
    for (from, to) in [(DNS_BACKENDS[0], other_port), (DNS_BACKENDS[1], local), (CLIENT, local)] {
        let b = udp_packet(from, to, 64, ANSWER, true, &[]);
        assert_eq!(lab.drop_reason(&b, 1), DropReason::NoSession, "{from:?} -> {to:?}");
    }
    let syn_ack = tcp_packet(WEB_BACKENDS[0], (WEB_LOCAL, 5000), 64, Flags::SYN | Flags::ACK, b"", &[]);
    assert_eq!(lab.drop_reason(&syn_ack, 1), DropReason::NoSession);
    // Even a lone SYN: a local IP is no VIP.
    let syn = tcp_packet(WEB_BACKENDS[0], (WEB_LOCAL, 80), 64, Flags::SYN, b"", &[]);
    assert_eq!(lab.drop_reason(&syn, 1), DropReason::NoSession);
    assert_eq!(lab.nat.sessions().len(), 1);
}

#[test]
fn vip_port_or_protocol_without_a_service() {
    let mut lab = Lab::new();
    let cases = [
        (tcp_packet(CLIENT, (VIP, 81), 64, Flags::SYN, b"", &[]), DropReason::NoService),
        (udp_packet(CLIENT, (VIP, 80), 64, QUERY, true, &[]), DropReason::NoService),
        (tcp_packet(CLIENT, (VIP, 53), 64, Flags::SYN, b"", &[]), DropReason::NoService),
        (tcp_packet(CLIENT, (ip(0, 11), 80), 64, Flags::SYN, b"", &[]), DropReason::NoSession), // not a VIP
        (ip_packet(CLIENT.0, VIP, 47, 64, &[], &[0; 8]), DropReason::UnsupportedProtocol), // GRE
    ];
    for (packet, reason) in cases {
        assert_eq!(lab.drop_reason(&packet, 0), reason);
    }
    assert!(lab.nat.sessions().is_empty());
}

// --- ICMP to us, and TTL ---

#[test]
fn echo_request_to_the_vip_or_a_local_ip_is_answered_whatever_its_ttl() {
    let mut lab = Lab::new();
    for (to, ttl) in [(VIP, 64), (VIP, 1), (VIP, 0), (DNS_LOCAL, 64)] {
        let mut b = echo_request_packet(CLIENT.0, to, ttl, 0x4242, b"ping data");
        assert_eq!(lab.process(&mut b, 0), Step::Bounce, "to {to}, TTL {ttl}");
        assert_eq!(b, echo_reply_packet(to, CLIENT.0, 64, 0x4242, b"ping data"));
        assert_checksums_exact(&b);
    }
    assert_eq!(lab.c.icmp_echo_replies.get(), 4);
    assert!(lab.nat.sessions().is_empty());
}

#[test]
fn other_icmp_to_the_vip_is_unhandled() {
    let mut lab = Lab::new();
    let reply = echo_reply_packet(CLIENT.0, VIP, 64, 7, b"pong");
    assert_eq!(lab.drop_reason(&reply, 0), DropReason::IcmpUnhandled);
    let mut timestamp = echo_request_packet(CLIENT.0, VIP, 64, 7, b"");
    timestamp[20] = 13;
    icmp::Packet::new_checked(&mut timestamp[20..]).unwrap().fill_checksum();
    assert_eq!(lab.drop_reason(&timestamp, 0), DropReason::IcmpUnhandled);
    assert_eq!(lab.c.icmp_echo_replies.get(), 0);
}

#[test]
fn ttl_running_out_on_the_way_to_a_backend_or_client() {
    let mut lab = Lab::new();
    for ttl in [0, 1] {
        let udp = udp_packet(CLIENT, DNS, ttl, QUERY, true, &[]);
        for packet in [udp, tcp_packet(CLIENT, WEB, ttl, Flags::SYN, b"", &[])] {
            let mut b = packet.clone();
            assert_eq!(lab.process(&mut b, 0), Step::TimeExceeded);
            assert_eq!(b, packet, "left as it came, to be quoted");
        }
    }
    assert!(lab.nat.sessions().is_empty());
    assert_eq!(lab.free(DNS_LOCAL), PORTS);

    // On an existing session too, either way; the session stays.
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 0);
    let mut b = udp_packet(DNS_BACKENDS[0], local, 1, ANSWER, true, &[]);
    assert_eq!(lab.process(&mut b, 1), Step::TimeExceeded);
    let mut b = udp_packet(CLIENT, DNS, 1, QUERY, true, &[]);
    assert_eq!(lab.process(&mut b, 1), Step::TimeExceeded);
    assert_eq!(lab.session(protocol::UDP, CLIENT, DNS).unwrap().packets, [1, 0]);
    let mut b = udp_packet(CLIENT, DNS, 2, QUERY, true, &[]);
    assert!(matches!(lab.process(&mut b, 2), Step::Forward { .. }), "TTL 2 leaves with 1");
    assert_eq!(b[8], 1);
}

// --- ICMP errors relayed ---

fn port_unreachable(quoted: &[u8]) -> Repr<'_> {
    Repr::DestUnreachable { code: unreachable::PORT, next_hop_mtu: 0, quoted }
}

fn frag_needed(quoted: &[u8]) -> Repr<'_> {
    Repr::DestUnreachable { code: unreachable::FRAG_NEEDED, next_hop_mtu: 1400, quoted }
}

#[test]
fn port_unreachable_from_the_backend_reaches_the_client() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 0);
    // What the backend received, and quotes back to the local IP.
    let forwarded = udp_packet(local, DNS_BACKENDS[0], 63, QUERY, true, &[]);
    let mut b = icmp_packet(DNS_BACKENDS[0].0, DNS_LOCAL, 64, &[], port_unreachable(&forwarded));
    let step = lab.process(&mut b, 10);
    assert_eq!(step, Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
    // As if the VIP refused the client's own datagram.
    let original = udp_packet(CLIENT, DNS, 63, QUERY, true, &[]);
    assert_eq!(b, icmp_packet(VIP, CLIENT.0, 63, &[], port_unreachable(&original)));
    assert_checksums_exact(&b);
    assert_eq!(lab.c.icmp_errors_relayed.get(), 1);
    assert_eq!(lab.session(protocol::UDP, CLIENT, DNS).unwrap().packets, [1, 0], "errors do not count as traffic");
}

#[test]
fn frag_needed_from_the_client_side_reaches_the_backend() {
    // The lan link offloads checksums: an ICMP error is finished here all the same.
    let mut lab = Lab::with(Options { lan_offload: true, ..PLAIN }, 0, 1, 64);
    let mut syn = tcp_packet(FAR_CLIENT, WEB, 64, Flags::SYN, b"", &[]);
    assert!(matches!(lab.process(&mut syn, 0), Step::Forward { offload: Some(OffloadL4::Tcp), .. }));
    let s = lab.session(protocol::TCP, FAR_CLIENT, WEB).unwrap();
    let (local, backend) = ((s.local.ip, s.local.port), (s.backend.ip, s.backend.port));
    let data = [0x5au8; 301];

    // The backend's segment left as VIP -> client; the router towards the client quotes it.
    let sent = tcp_packet(WEB, FAR_CLIENT, 63, Flags::PSH | Flags::ACK, &data, &[]);
    let original = tcp_packet(backend, local, 63, Flags::PSH | Flags::ACK, &data, &[]);
    for quoted in [28, sent.len()] {
        let mut b = icmp_packet(ROUTER, VIP, 64, &[], frag_needed(&sent[..quoted]));
        let step = lab.process(&mut b, 10);
        assert_eq!(step, Step::Forward { hop: Hop { link: 1, gateway: backend.0 }, offload: None });
        assert_eq!(b, icmp_packet(local.0, backend.0, 63, &[], frag_needed(&original[..quoted])), "quote {quoted}");
        assert_checksums_exact(&b);
        assert_eq!(icmp::Packet::new_checked(&b[20..]).unwrap().next_hop_mtu(), 1400);
    }
    assert_eq!(lab.c.icmp_errors_relayed.get(), 2);
}

#[test]
fn icmp_error_about_an_unknown_flow_is_dropped() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 0);
    let unknown_port = (DNS_LOCAL, local.1.wrapping_add(1).max(1024));
    let cases = [
        (udp_packet(unknown_port, DNS_BACKENDS[0], 63, QUERY, true, &[]), DropReason::NoSession),
        (udp_packet(local, DNS_BACKENDS[1], 63, QUERY, true, &[]), DropReason::NoSession),
        (tcp_packet(local, DNS_BACKENDS[0], 63, Flags::SYN, b"", &[]), DropReason::NoSession),
        // Quoting a packet its addressee did not send: not about any flow of ours.
        (udp_packet(CLIENT, DNS, 63, QUERY, true, &[]), DropReason::IcmpUnhandled),
        (echo_request_packet(DNS_LOCAL, DNS_BACKENDS[0].0, 63, 1, b"12345678"), DropReason::IcmpUnhandled),
    ];
    for (quoted, reason) in cases {
        let b = icmp_packet(DNS_BACKENDS[0].0, DNS_LOCAL, 64, &[], port_unreachable(&quoted));
        assert_eq!(lab.drop_reason(&b, 1), reason);
    }
    // Right flow, wrong side: an error sent to the VIP about what we sent the backend.
    let to_backend = udp_packet(local, DNS_BACKENDS[0], 63, QUERY, true, &[]);
    let misdirected = icmp_packet(CLIENT.0, DNS.0, 64, &[], port_unreachable(&to_backend));
    assert_eq!(lab.drop_reason(&misdirected, 0), DropReason::IcmpUnhandled);
    let short = icmp_packet(DNS_BACKENDS[0].0, DNS_LOCAL, 64, &[], port_unreachable(&[0x45; 20]));
    assert_eq!(lab.drop_reason(&short, 1), DropReason::IcmpUnhandled);
    assert_eq!(lab.c.icmp_errors_relayed.get(), 0);
}

// --- Checksum offload ---

#[test]
fn checksum_offload_is_asked_for_by_the_outgoing_link() {
    let mut lab = Lab::with(Options { lan_offload: true, ..PLAIN }, 0, 1, 64);
    let mut b = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    assert_eq!(
        lab.process(&mut b, 0),
        Step::Forward { hop: Hop { link: 1, gateway: DNS_BACKENDS[0].0 }, offload: Some(OffloadL4::Udp) }
    );
    let s = lab.session(protocol::UDP, CLIENT, DNS).unwrap();
    let local = (s.local.ip, s.local.port);
    assert_eq!(&b[10..12], &[0, 0], "IP checksum left to the NIC");
    let udp_len = (8 + QUERY.len()) as u16;
    let seed = checksum::pseudo_header(local.0, DNS_BACKENDS[0].0, protocol::UDP, udp_len);
    assert_eq!(&b[26..28], &seed.to_be_bytes(), "UDP checksum seeded with the pseudo header");
    // What the NIC then does.
    ipv4::Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
    let full = checksum::udp_on_wire(!checksum::sum(&b[20..]));
    b[26..28].copy_from_slice(&full.to_be_bytes());
    assert_eq!(b, udp_packet(local, DNS_BACKENDS[0], 63, QUERY, true, &[]));

    // The reply leaves by the wan link, which does not offload.
    let mut b = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, true, &[]);
    assert_eq!(lab.process(&mut b, 1), Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
    assert_eq!(b, udp_packet(DNS, CLIENT, 63, ANSWER, true, &[]));
}

// --- Expiry and limits ---

#[test]
fn idle_udp_session_expires_and_gives_its_port_back() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 1000);
    lab.query(CLIENT, DNS_BACKENDS[0], 2500); // seen again: idle from 2500 on
    assert_eq!(lab.nat.expire(3100, 16, &lab.c), 0);
    assert_eq!(lab.nat.expire(4500, 16, &lab.c), 0, "idle 2000 ms is not more than the 2 s timeout");
    assert_eq!(lab.nat.sessions().len(), 1);
    assert_eq!(lab.nat.expire(4600, 16, &lab.c), 1);
    assert_eq!(lab.c.sessions_expired.get(), 1);
    assert!(lab.nat.sessions().is_empty());
    assert_eq!(lab.free(DNS_LOCAL), PORTS, "its port is back in the pool");

    let reply = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, true, &[]);
    assert_eq!(lab.drop_reason(&reply, 4700), DropReason::NoSession);
    // The client's next datagram opens a new session, with the next backend.
    lab.query(CLIENT, DNS_BACKENDS[1], 4800);
    assert_eq!(lab.c.sessions_created.get(), 2);
}

#[test]
fn tcp_sessions_expire_by_their_state_timeout() {
    let mut lab = Lab::new();
    lab.syn(client(44000), WEB_BACKENDS[0], 0); // half open: 1 s
    let local = lab.syn(client(44001), WEB_BACKENDS[1], 0);
    lab.segment(WEB_BACKENDS[1], local, Flags::SYN | Flags::ACK, 0); // established: 5 s
    assert_eq!(lab.nat.expire(1000, 16, &lab.c), 0);
    assert_eq!(lab.nat.expire(1100, 16, &lab.c), 1);
    assert!(lab.session(protocol::TCP, client(44000), WEB).is_none());
    assert_eq!(lab.nat.expire(5000, 16, &lab.c), 0);
    assert_eq!(lab.nat.expire(5100, 16, &lab.c), 1);
    assert_eq!((lab.c.sessions_expired.get(), lab.free(WEB_LOCAL)), (2, PORTS));
}

#[test]
fn full_session_table_refuses_new_flows_and_keeps_the_port() {
    let mut lab = Lab::with(PLAIN, 0, 1, 4);
    let locals: Vec<Ep> = (0..4).map(|i| lab.query(client(45000 + i), DNS_BACKENDS[i as usize % 3], 0)).collect();
    assert_eq!(lab.free(DNS_LOCAL), PORTS - 4);
    assert_eq!(lab.drop_reason(&udp_packet(client(45004), DNS, 64, QUERY, true, &[]), 1), DropReason::SessionTableFull);
    assert_eq!(lab.drop_reason(&tcp_packet(CLIENT, WEB, 64, Flags::SYN, b"", &[]), 1), DropReason::SessionTableFull);
    assert_eq!((lab.free(DNS_LOCAL), lab.free(WEB_LOCAL)), (PORTS - 4, PORTS), "the ports taken are given back");
    assert_eq!((lab.nat.sessions().len(), lab.c.sessions_created.get()), (4, 4));

    // The sessions there go on working.
    let mut b = udp_packet(DNS_BACKENDS[0], locals[3], 64, ANSWER, true, &[]);
    assert!(matches!(lab.process(&mut b, 2), Step::Forward { .. }));
    assert_eq!(b, udp_packet(DNS, client(45003), 63, ANSWER, true, &[]));
}

#[test]
fn local_ports_run_out_and_come_back() {
    let mut lab = Lab::with(PLAIN, 0, 1, PORTS + 1); // room for one session more than ports
    for port in 0..PORTS as u16 {
        let mut b = udp_packet(client(port), DNS, 64, b"", true, &[]);
        let step = lab.process(&mut b, 0);
        assert!(matches!(step, Step::Forward { .. }), "flow {port}: {step:?}");
    }
    let s = lab.nat.sessions();
    assert_eq!((s.len(), lab.free(DNS_LOCAL)), (PORTS as usize, 0));
    let mut ports: Vec<u16> = s.iter().map(|(_, s)| s.local.port).collect();
    ports.sort_unstable();
    assert_eq!(ports, (1024..=65535).collect::<Vec<u16>>(), "every port once");

    let next = udp_packet(FAR_CLIENT, DNS, 64, b"", true, &[]);
    assert_eq!(lab.drop_reason(&next, 1), DropReason::NoLocalPort);
    assert_eq!(lab.nat.sessions().len(), PORTS as usize);
    assert_eq!(lab.nat.expire(2100, usize::MAX, &lab.c), PORTS as usize);
    assert_eq!((lab.free(DNS_LOCAL), lab.c.sessions_expired.get()), (PORTS, u64::from(PORTS)));
    let mut b = next.clone();
    assert!(matches!(lab.process(&mut b, 2200), Step::Forward { .. }));
    assert_eq!((lab.free(DNS_LOCAL), lab.c.sessions_created.get()), (PORTS - 1, u64::from(PORTS) + 1));
}

// --- Malformed input ---

#[test]
fn malformed_packets_are_dropped_by_reason() {
    let mut lab = Lab::new();
    let good = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    for len in 0..good.len() {
        assert_eq!(lab.drop_reason(&good[..len], 0), DropReason::Truncated, "cut at {len}");
    }
    let with = |at: usize, value: u8, refix: bool| {
        let mut b = good.clone();
        b[at] = value;
        if refix {
            ipv4::Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
        }
        b
    };
    let cases = [
        (with(0, 0x65, false), DropReason::BadHeader),       // version 6
        (with(0, 0x44, false), DropReason::BadHeader),       // header of 16 bytes
        (with(0, 0x4f, false), DropReason::BadHeader),       // header longer than the packet
        (with(3, 19, false), DropReason::BadHeader),         // total length below the header
        (with(11, good[11] ^ 1, false), DropReason::BadIpChecksum),
        (with(6, 0x20, true), DropReason::Fragment),         // more fragments
        (with(7, 0x08, true), DropReason::Fragment),         // a later fragment
        (with(25, 7, false), DropReason::BadHeader),         // UDP length below 8
        (with(25, 0xff, false), DropReason::Truncated),      // UDP length beyond the packet
        (ip_packet(CLIENT.0, VIP, protocol::TCP, 64, &[], &[0; 12]), DropReason::Truncated),
        (ip_packet(CLIENT.0, VIP, protocol::ICMP, 64, &[], &[8, 0, 0]), DropReason::Truncated),
    ];
    for (i, (packet, reason)) in cases.iter().enumerate() {
        assert_eq!(lab.drop_reason(packet, 0), *reason, "case {i}");
    }
    // Any single-bit damage to the IP header is caught before anything else.
    for (at, &byte) in good.iter().enumerate().take(20) {
        let b = with(at, byte ^ 0x01, false);
        let reason = lab.drop_reason(&b, 0);
        let caught = matches!(reason, DropReason::BadHeader | DropReason::Truncated | DropReason::BadIpChecksum);
        assert!(caught, "byte {at}: {reason:?}");
    }
    assert!(lab.nat.sessions().is_empty());
    assert_eq!(lab.c.sessions_created.get(), 0);
}

#[test]
fn random_bytes_are_dropped_with_the_reason_inspect_gives() {
    let mut lab = Lab::new();
    let mut rng = Rng::new(7);
    for i in 0..5000 {
        let len = rng.below(96);
        let mut b = rng.bytes(len);
        if i % 2 == 0 && len >= 4 {
            // Shaped like IPv4 so that it gets past the first checks.
            b[0] = 0x45;
            b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        let refusal = crate::nat::inspect(&b).expect_err("random bytes are no valid packet");
        assert_ne!(refusal, crate::nat::Refusal::TtlExpired);
        assert_eq!(lab.drop_reason(&b, i), DropReason::from(refusal));
    }
    assert!(lab.nat.sessions().is_empty());
}
