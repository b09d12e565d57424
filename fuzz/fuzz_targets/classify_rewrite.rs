//! Frames through what a worker does with them: classify, then for IPv4 the whole FULLNAT step
//! (inspect, session lookup or creation, rewrite, ICMP answer or relay, reset), and the
//! byte-level NAT functions on their own. Every input starts from the same fresh worker, so a
//! saved crash replays exactly.
//!
//! An input is: a byte choosing how the snapshot changes half way through (nothing; a service
//! removed; a backend removed; a backend down with `on_failure = "remove"`; every service
//! below quorum; every weight 0; a service moved to another port; the UDP and TCP services
//! telling their backends the client's address by PROXY v2, over a lan link of MTU 576; the TCP
//! service by TOA), a byte for how far time moves between frames (so that sessions expire),
//! then frames, each a big-endian u16 length and that many bytes. So sessions opened under one
//! snapshot meet the next one: the paths that end sessions, reset connections and reschedule
//! datagrams are reached.
//!
//! Checked: nothing panics; what FULLNAT forwards, bounces or resets has an exact IPv4 header
//! checksum, and an exact TCP, UDP or ICMP checksum whenever the packet came in with one; so
//! has a datagram or segment grown by the PROXY header or TOA, and datagram fragments have
//! exact IP checksums and fit the MTU.

#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::Duration;

use dataplane::classify::{classify, OwnedAddrs, Verdict};
use dataplane::counters::WorkerCounters;
use dataplane::fullnat::{Extra, FullNat, Step};
use dataplane::nat;
use dataplane::route::Routes;
use dataplane::sched::SchedulerKind;
use dataplane::session::{Endpoint, Timeouts};
use dataplane::snapshot::{BackendState, ClientAddress, Link, ServiceSpec, Snapshot, Steering, VipIndex};
use dataplane::wire::{checksum, MacAddr};
use libfuzzer_sys::fuzz_target;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
/// How the snapshot may change half way (index 0: it does not).
const CHANGES: usize = 9;

struct Fixture {
    /// `snapshots[0]` first; `snapshots[change]` from half way.
    snapshots: Vec<Snapshot>,
    /// A worker that has seen nothing, cloned for every input.
    pristine: FullNat,
    /// Counters only count (no scheduler here reads them), so inputs may share them.
    counters: WorkerCounters,
}

fn snapshot(change: usize) -> Snapshot {
    let link = |name: &str, port, addr| Link {
        name: name.into(),
        port,
        kernel_port: port + 2,
        mac: MacAddr([2, 0, 0, 0, 0, port as u8]),
        addresses: vec![(addr, 24)],
        owned: OwnedAddrs::new([VIP, LOCAL]),
        checksum_offload: false,
        steering: Steering::Single,
        rss: None,
        mtu: 1500,
    };
    let backends: Vec<Endpoint> = (2..5).map(|d| Endpoint::new(Ipv4Addr::new(198, 18, 1, d), 53)).collect();
    let spec = |name: &str, proto, port, scheduler, per_packet, weights: [u32; 3]| ServiceSpec {
        name: name.into(),
        proto,
        vip: Endpoint::new(VIP, port),
        scheduler,
        per_packet,
        remove_on_failure: false,
        client_address: ClientAddress::None,
        backends: backends.iter().copied().zip(weights).collect(),
        local_ips: vec![LOCAL],
    };
    let services = [
        spec("udp", 17, 53, SchedulerKind::Rr, false, [1, 1, 1]),
        spec("tcp", 6, 80, SchedulerKind::Wrr, false, [2, 1, 1]),
        spec("per-datagram", 17, 54, SchedulerKind::Maglev, true, [1, 2, 3]),
    ];
    let routes = Routes::new(
        &[(Ipv4Addr::new(198, 18, 0, 0), 24, 0), (Ipv4Addr::new(198, 18, 1, 0), 24, 1)],
        &[(Ipv4Addr::new(0, 0, 0, 0), 0, Ipv4Addr::new(198, 18, 0, 254))],
    )
    .expect("routes");
    let links = vec![link("wan", 0, Ipv4Addr::new(198, 18, 0, 1)), link("lan", 1, Ipv4Addr::new(198, 18, 1, 1))];
    // Short timeouts, so that time moving on a few seconds expires sessions.
    let timeouts = Timeouts {
        tcp_syn: Duration::from_secs(1),
        tcp_established: Duration::from_secs(4),
        tcp_fin_wait: Duration::from_secs(2),
        tcp_close_wait: Duration::from_secs(2),
        tcp_last_ack: Duration::from_secs(1),
        tcp_time_wait: Duration::from_secs(1),
        tcp_closing: Duration::from_secs(1),
        udp: Duration::from_secs(2),
        udp_new: Duration::from_secs(1),
    };
    let mut s = Snapshot::from_specs(links, &services, routes, timeouts);
    match change {
        1 => s.services[0].live = false,
        2 => s.backends[0].live = false,
        3 => {
            s.backends[0].state = BackendState::Down;
            s.services.iter_mut().for_each(|svc| svc.remove_on_failure = true);
        }
        4 => s.services.iter_mut().for_each(|svc| svc.quorum = false),
        5 => s.backends.iter_mut().for_each(|b| b.weight = 0),
        6 => s.services[1].vip.port = 8080,
        7 => {
            s.services[0].client_address = ClientAddress::ProxyV2;
            s.services[1].client_address = ClientAddress::ProxyV2;
            s.links[1].mtu = 576;
        }
        8 => s.services[1].client_address = ClientAddress::Toa,
        _ => {}
    }
    s.vips = VipIndex::new(&s.services);
    s
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let snapshots: Vec<Snapshot> = (0..CHANGES).map(snapshot).collect();
        let pristine = FullNat::for_worker(&snapshots[0], 0, 1, 256);
        Fixture { snapshots, pristine, counters: WorkerCounters::default() }
    })
}

/// The frames of an input: each a big-endian u16 length and its bytes (the last may be short).
fn frames(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while rest.len() >= 2 && out.len() < 64 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [change, step, rest @ ..] = data else { return };
    let f = fixture();
    let mut nat = f.pristine.clone();
    let counters = &f.counters;
    let frames = frames(rest);
    let half = frames.len() / 2;
    let mut now = 1000;
    for (i, frame) in frames.iter().enumerate() {
        let snap = &f.snapshots[if i < half { 0 } else { usize::from(*change) % CHANGES }];
        now += u64::from(*step) * 25;
        nat.expire(now, 64, counters);
        let mut buf = frame.to_vec();
        if classify(frame, &snap.links[0].owned) == Verdict::Local {
            let ip = &mut buf[14..];
            let l4_was_exact = l4_exact(ip) == Some(true);
            let step = nat.process(snap, ip, now, counters);
            let extra = nat.take_extra();
            match (step, extra) {
                (Step::Forward { offload: None, .. } | Step::Bounce, _) => check(ip, l4_was_exact),
                (Step::Reset { ip_len }, _) => check(&ip[..ip_len], true),
                (Step::ForwardExtra { .. }, Some(Extra::Header { header, .. })) => {
                    check(ip, l4_was_exact);
                    let tcp = ip[9] == 6;
                    let bytes = header.proxy_v2_udp();
                    let mut grown = vec![0u8; bytes.len()];
                    grown.extend_from_slice(&buf);
                    let insert = if tcp { nat::proxy::insert_tcp_header } else { nat::proxy::insert_udp_header };
                    let total = usize::from(insert(&mut grown, 14, &bytes).expect("a forwarded segment grows"));
                    let ip = &mut grown[14..14 + total];
                    check(ip, l4_was_exact);
                    let mut rest = [0u8; 576];
                    let split = if tcp { None } else { nat::proxy::split(ip, 576, &mut rest).ok() };
                    if let Some((first, second)) = split {
                        assert!(first <= 576 && second <= 576);
                        check(&ip[..first], false);
                        check(&rest[..second], false);
                    }
                }
                (Step::ForwardExtra { .. }, Some(Extra::First(first))) => {
                    check(ip, l4_was_exact);
                    let mut out = [0u8; 128];
                    let payload = first.payload().unwrap_or([0; 28]);
                    let n = nat::shift::build(&first.segment, &payload, &mut out).expect("a header segment fits");
                    check(&out[..n], true);
                }
                (Step::ForwardExtra { .. }, Some(Extra::Toa { client, .. })) => {
                    check(ip, l4_was_exact);
                    let mut grown = vec![0u8; 8];
                    grown.extend_from_slice(&buf);
                    let (start, total, _) = nat::toa::insert(&mut grown, 14, 8, (client.ip, client.port)).expect("a forwarded segment takes TOA");
                    check(&grown[start + 14..start + 14 + usize::from(total)], l4_was_exact);
                }
                _ => {}
            }
        }
        // The byte-level functions on their own, on whatever follows an Ethernet header.
        if let Some(ip) = buf.get_mut(14..) {
            let _ = nat::inspect(ip);
            let _ = nat::quoted_tuple(ip);
            let mut out = [0u8; 576];
            let _ = nat::time_exceeded(ip, Ipv4Addr::new(198, 18, 0, 1), &mut out);
            let _ = nat::translate_error(ip, LOCAL, VIP, (LOCAL, 1), (VIP, 2));
            let _ = nat::echo_reply(ip);
            let _ = nat::rewrite(ip, (LOCAL, 1024), (VIP, 53));
            let _ = nat::shift::unshift_ack(ip, nat::shift::Inserted { at: 1000, len: 28 });
            let _ = nat::shift::shift_seq(ip, 28);
            let _ = nat::shift::refuse_fast_open(ip);
            let _ = nat::toa::remove(ip, nat::toa::KIND);
            let _ = nat::toa::lower_mss(ip, 8);
        }
    }
});

/// A packet FULLNAT sent on: exact IPv4 header checksum, and exact L4 checksum when `l4` says
/// the packet came in with an exact one (an incremental update keeps a wrong one wrong).
fn check(ip: &[u8], l4: bool) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert_eq!(checksum::ipv4_header(&ip[..ihl]), u16::from_be_bytes([ip[10], ip[11]]), "IP header checksum");
    if l4 {
        assert_eq!(l4_exact(ip), Some(true), "L4 checksum");
    }
}

/// Whether the TCP, UDP or ICMP checksum of an IPv4 packet is exact (a UDP checksum of zero,
/// "none", counts as exact); `None` when the packet is not one of those whole and unfragmented.
fn l4_exact(ip: &[u8]) -> Option<bool> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    if ihl < 20 || total < ihl || total > ip.len() || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return None;
    }
    let l4 = &ip[ihl..total];
    let (src, dst) = (Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    let pseudo = |proto| checksum::pseudo_header(src, dst, proto, l4.len() as u16);
    let at = match ip[9] {
        6 if l4.len() >= 20 => 16,
        17 if l4.len() >= 8 => {
            if u16::from_be_bytes([l4[6], l4[7]]) == 0 {
                return Some(true);
            }
            if usize::from(u16::from_be_bytes([l4[4], l4[5]])) != l4.len() {
                return None;
            }
            6
        }
        1 if l4.len() >= 8 => 2,
        _ => return None,
    };
    let mut copy = l4.to_vec();
    let stored = u16::from_be_bytes([copy[at], copy[at + 1]]);
    copy[at..at + 2].fill(0);
    let initial = if ip[9] == 1 { 0 } else { pseudo(ip[9]) };
    let full = checksum::compute(initial, &copy);
    let full = if ip[9] == 17 { checksum::udp_on_wire(full) } else { full };
    Some(stored == full)
}
