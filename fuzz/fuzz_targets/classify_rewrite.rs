//! Any frame through what a worker does with it: classify, then for IPv4 the whole FULLNAT
//! step (inspect, session lookup or creation, rewrite, ICMP answer or relay) on a persistent
//! worker state, and the byte-level NAT functions on their own. Nothing may panic, and a
//! packet FULLNAT forwards must leave with exact checksums.

#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Mutex, OnceLock};

use dataplane::classify::{classify, OwnedAddrs, Verdict};
use dataplane::counters::WorkerCounters;
use dataplane::fullnat::{FullNat, Step};
use dataplane::nat;
use dataplane::route::Routes;
use dataplane::sched::SchedulerKind;
use dataplane::session::{Endpoint, Timeouts};
use dataplane::snapshot::{Link, ServiceSpec, Snapshot, Steering};
use dataplane::wire::{checksum, MacAddr};
use libfuzzer_sys::fuzz_target;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);

struct World {
    snapshot: Snapshot,
    nat: FullNat,
    counters: WorkerCounters,
    now: u64,
}

fn world() -> &'static Mutex<World> {
    static WORLD: OnceLock<Mutex<World>> = OnceLock::new();
    WORLD.get_or_init(|| {
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
        };
        let backends: Vec<Endpoint> = (2..5).map(|d| Endpoint::new(Ipv4Addr::new(198, 18, 1, d), 53)).collect();
        let spec = |name: &str, proto, port, scheduler, per_packet, weights: [u32; 3]| ServiceSpec {
            name: name.into(),
            proto,
            vip: Endpoint::new(VIP, port),
            scheduler,
            per_packet,
            remove_on_failure: false,
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
        let snapshot = Snapshot::from_specs(links, &services, routes, Timeouts::default());
        let nat = FullNat::for_worker(&snapshot, 0, 1, 4096);
        Mutex::new(World { snapshot, nat, counters: WorkerCounters::default(), now: 0 })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut world = world().lock().unwrap_or_else(|e| e.into_inner());
    let World { snapshot, nat, counters, now } = &mut *world;
    *now += 7;
    let verdict = classify(data, &snapshot.links[0].owned);
    let mut frame = data.to_vec();
    if verdict == Verdict::Local {
        let ip = &mut frame[14..];
        if let Step::Forward { offload: None, .. } = nat.process(snapshot, ip, *now, counters) {
            assert_exact_checksums(ip);
        }
        nat.expire(*now, 16, counters);
    }
    // The byte-level functions on their own, on whatever follows an Ethernet header.
    if frame.len() > 14 {
        let ip = &mut frame[14..];
        let _ = nat::inspect(ip);
        let _ = nat::quoted_tuple(ip);
        let mut out = [0u8; 576];
        let _ = nat::time_exceeded(ip, Ipv4Addr::new(198, 18, 0, 1), &mut out);
        let _ = nat::translate_error(ip, LOCAL, VIP, (LOCAL, 1), (VIP, 2));
        let _ = nat::echo_reply(ip);
        let _ = nat::rewrite(ip, (LOCAL, 1024), (VIP, 53));
    }
});

/// A forwarded packet's IP header checksum must be exact: `inspect` refused any packet whose
/// header checksum was wrong on the way in. (L4 checksums are updated incrementally, so a bad
/// one stays bad by design; the unit tests check them on valid packets.)
fn assert_exact_checksums(ip: &[u8]) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert_eq!(checksum::ipv4_header(&ip[..ihl]), u16::from_be_bytes([ip[10], ip[11]]), "IP header checksum");
}
