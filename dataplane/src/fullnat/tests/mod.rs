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
use crate::snapshot::{ClientAddress, Link, ServiceSpec, Steering};
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

#[derive(Clone, Copy)]
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
        mtu: 1500,
    };
    let service =
        |name: &str, proto, vip: Ep, scheduler, backends: &[Ep], weights: &[u32], locals: &[Ipv4Addr]| ServiceSpec {
            name: name.into(),
            proto,
            vip: Endpoint::new(vip.0, vip.1),
            scheduler,
            per_packet: false,
            remove_on_failure: false,
            client_address: ClientAddress::None,
            backends: backends.iter().zip(weights).map(|(b, &w)| (Endpoint::new(b.0, b.1), w)).collect(),
            local_ips: locals.to_vec(),
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
        tcp_fin_wait: Duration::from_secs(1),
        tcp_close_wait: Duration::from_secs(1),
        tcp_last_ack: Duration::from_secs(1),
        tcp_time_wait: Duration::from_secs(1),
        tcp_closing: Duration::from_secs(1),
        udp: Duration::from_secs(2),
        udp_new: Duration::from_secs(2),
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

    /// The id of the session of the client flow `client -> vip`.
    fn session_id(&self, proto: u8, client: Ep, vip: Ep) -> Option<SessionId> {
        let key = FlowKey { proto, src: Endpoint::new(client.0, client.1), dst: Endpoint::new(vip.0, vip.1) };
        let (id, dir) = self.nat.sessions().lookup(&key)?;
        assert_eq!(dir, Direction::Forward);
        Some(id)
    }

    /// The session of the client flow `client -> vip`.
    fn session(&self, proto: u8, client: Ep, vip: Ep) -> Option<Session> {
        Some(*self.nat.sessions().get(self.session_id(proto, client, vip)?))
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
    assert_eq!((s.local.ip, s.backend, s.state), (DNS_LOCAL, Endpoint::new(ip(1, 2), 53), State::UdpNew));
    assert!(s.local.port >= 1024, "an unprivileged local port: {}", s.local.port);
    let mut expected = udp_packet((DNS_LOCAL, s.local.port), DNS_BACKENDS[0], 63, QUERY, true, &[]);
    expected.extend_from_slice(&[0xee; 6]);
    assert_eq!(b, expected);
    assert_eq!(b[8], 63, "TTL decremented");
    assert_checksums_exact(&b);

    assert_eq!(s.seen, Direction::Forward.bit(), "seen one way");
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
    assert_eq!((s.seen, s.last_seen_ms), (Direction::Forward.bit() | Direction::Reply.bit(), 1010));
    assert_eq!((lab.c.sessions_created.get(), lab.c.forwarded.get(), lab.c.replied.get()), (1, 1, 1));

    // No checksum stays no checksum.
    let mut b = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, false, &[]);
    assert_eq!(lab.process(&mut b, 1020), Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
    assert_eq!(b, udp_packet(DNS, CLIENT, 63, ANSWER, false, &[]));
}

#[test]
fn prefetching_finds_the_session_a_packet_belongs_to_either_way() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 1000);
    let id = |lab: &Lab, src: Ep, dst: Ep| {
        let key = FlowKey { proto: protocol::UDP, src: Endpoint::new(src.0, src.1), dst: Endpoint::new(dst.0, dst.1) };
        lab.nat.sessions().lookup(&key).map(|(id, _)| id)
    };
    for (src, dst) in [(CLIENT, DNS), (DNS_BACKENDS[0], local)] {
        let packet = udp_packet(src, dst, 64, QUERY, true, &[]);
        let hash = lab.nat.prefetch_index(&packet).expect("a UDP packet is hashed");
        assert_eq!(lab.nat.sessions().prefetch_session(hash), id(&lab, src, dst), "{src:?} -> {dst:?}");
        let hint = lab.nat.prefetch_session(hash);
        // The hint carried on to processing finds what processing without it finds.
        let (mut with, mut without) = (packet.clone(), packet.clone());
        let mut twin = lab.nat.clone();
        let hashed = lab.nat.process_hashed(&lab.snap, &mut with, 1010, &lab.c, Some(hint));
        assert_eq!(hashed, twin.process(&lab.snap, &mut without, 1010, &lab.c));
        assert!(matches!(hashed, Step::Forward { .. }), "{hashed:?}");
        assert_eq!(with, without);
    }
    // Nothing to prefetch for what is not TCP or UDP over IPv4, or is cut short.
    let echo = echo_request_packet(CLIENT.0, DNS.0, 64, 1, b"ping");
    assert_eq!(lab.nat.prefetch_index(&echo), None);
    let packet = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    assert_eq!(lab.nat.prefetch_index(&packet[..22]), None);
    assert_eq!(lab.nat.prefetch_index(&[]), None);
    // A flow without a session prefetches nothing (but for a 32-bit hash collision, harmless).
    let unknown = udp_packet(client(50000), DNS, 64, QUERY, true, &[]);
    let hash = lab.nat.prefetch_index(&unknown).unwrap();
    assert_eq!(lab.nat.sessions().prefetch_session(hash), None);
}

#[test]
fn later_datagrams_of_a_flow_follow_its_session() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 1000);
    assert_eq!(lab.query(CLIENT, DNS_BACKENDS[0], 1100), local, "same backend, same local port");
    assert_eq!(lab.query(CLIENT, DNS_BACKENDS[0], 1200), local);
    assert_eq!(lab.nat.sessions().len(), 1);
    assert_eq!(lab.session(protocol::UDP, CLIENT, DNS).unwrap().seen, Direction::Forward.bit());
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

    // The client shuts down its side; the backend answers for a while, then closes too.
    lab.segment(CLIENT, WEB, Flags::FIN | Flags::ACK, 500);
    assert_eq!(state(&lab), State::TcpFinWait);
    lab.segment(WEB_BACKENDS[0], local, Flags::PSH | Flags::ACK, 550);
    lab.segment(CLIENT, WEB, Flags::ACK, 560);
    assert_eq!(state(&lab), State::TcpFinWait);
    lab.segment(WEB_BACKENDS[0], local, Flags::FIN | Flags::ACK, 600);
    assert_eq!(state(&lab), State::TcpLastAck);
    lab.segment(CLIENT, WEB, Flags::ACK, 700);
    assert_eq!(state(&lab), State::TcpTimeWait);
    let s = lab.session(protocol::TCP, CLIENT, WEB).unwrap();
    assert_eq!(s.seen, Direction::Forward.bit() | Direction::Reply.bit());
    assert_eq!((lab.c.sessions_created.get(), lab.c.forwarded.get(), lab.c.replied.get()), (1, 7, 4));
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
        (ip_packet(CLIENT.0, VIP, 47, 64, &[], &[0; 8]), DropReason::UnsupportedProtocol),      // GRE
    ];
    for (packet, reason) in cases {
        assert_eq!(lab.drop_reason(&packet, 0), reason);
    }
    assert!(lab.nat.sessions().is_empty());
}

mod client_address;
mod ending;
mod expiry;
mod fast_lane;
mod icmp_to_us;
mod limits;
mod sync;
mod synproxy;
