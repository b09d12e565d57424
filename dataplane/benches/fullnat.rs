//! The per-packet FULLNAT path without I/O: `FullNat::process` on 64-byte UDP frames held in
//! memory, for established flows both ways and for new-session creation, at a few table sizes.
//! Each figure includes copying the 50-byte IP packet from a template into the work buffer
//! (listed separately as "copy only"). Run: `cargo bench -p dataplane --bench fullnat`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use dataplane::classify::OwnedAddrs;
use dataplane::counters::WorkerCounters;
use dataplane::fullnat::{FullNat, Step};
use dataplane::route::Routes;
use dataplane::sched::SchedulerKind;
use dataplane::session::{Endpoint, Hint, Timeouts};
use dataplane::snapshot::{ClientAddress, Link, ServiceSpec, Snapshot, Steering};
use dataplane::wire::{checksum, MacAddr};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const LOCAL_IPS: u8 = 32;

fn snapshot() -> Snapshot {
    snapshot_with(Timeouts::default())
}

fn snapshot_with(timeouts: Timeouts) -> Snapshot {
    let local_ips: Vec<Ipv4Addr> = (0..LOCAL_IPS).map(|i| Ipv4Addr::new(198, 18, 1, 100 + i)).collect();
    let owned = OwnedAddrs::new(std::iter::once(VIP).chain(local_ips.iter().copied()));
    let link = |name: &str, port: u16, addr| Link {
        name: name.into(),
        port,
        kernel_port: port + 2,
        mac: MacAddr([2, 0, 0, 0, 0, port as u8]),
        addresses: vec![(addr, 16)],
        owned: owned.clone(),
        checksum_offload: false,
        steering: Steering::Single,
        rss: None,
        mtu: 1500,
    };
    let links = vec![link("wan", 0, Ipv4Addr::new(198, 18, 0, 1)), link("lan", 1, Ipv4Addr::new(198, 18, 1, 1))];
    let backends: Vec<Endpoint> = (2..6).map(|d| Endpoint::new(Ipv4Addr::new(198, 18, 1, d), 53)).collect();
    let services = [ServiceSpec {
        name: "udp".into(),
        proto: 17,
        vip: Endpoint::new(VIP, 53),
        scheduler: SchedulerKind::Rr,
        per_packet: false,
        remove_on_failure: false,
        client_address: ClientAddress::None,
        backends: backends.into_iter().map(|b| (b, 1)).collect(),
        local_ips,
    }];
    let routes = Routes::new(&[(Ipv4Addr::new(198, 18, 0, 0), 24, 0), (Ipv4Addr::new(198, 18, 1, 0), 24, 1)], &[])
        .expect("routes");
    Snapshot::from_specs(links, &services, routes, timeouts)
}

/// A 64-byte frame's IP packet: 20 IP + 8 UDP + 22 payload bytes.
fn udp(src: Endpoint, dst: Endpoint) -> [u8; 50] {
    let mut p = [0u8; 50];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&50u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.ip.octets());
    p[16..20].copy_from_slice(&dst.ip.octets());
    let c = checksum::ipv4_header(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&src.port.to_be_bytes());
    p[22..24].copy_from_slice(&dst.port.to_be_bytes());
    p[24..26].copy_from_slice(&30u16.to_be_bytes());
    p
}

fn client(i: u32) -> Endpoint {
    Endpoint::new(Ipv4Addr::new(198, 18, 0, 2 + (i >> 15) as u8), 32768 + (i & 0x7fff) as u16)
}

struct Rig {
    snap: Snapshot,
    nat: FullNat,
    counters: WorkerCounters,
    forward: Vec<[u8; 50]>,
    reply: Vec<[u8; 50]>,
}

/// `flows` established sessions in a table for `capacity`, with the forward packet and the
/// reply packet of each.
fn rig(flows: u32, capacity: u32) -> Rig {
    let snap = snapshot();
    let mut nat = FullNat::for_worker(&snap, 0, 1, capacity);
    let counters = WorkerCounters::default();
    let (mut forward, mut reply) = (Vec::new(), Vec::new());
    for i in 0..flows {
        let template = udp(client(i), Endpoint::new(VIP, 53));
        let mut p = template;
        match nat.process(&snap, &mut p, 0, &counters) {
            Step::Forward { .. } => {}
            other => panic!("flow {i}: {other:?}"),
        }
        // The backend's answer: the rewritten packet with its endpoints swapped.
        let (local, backend) = (endpoint(&p, 12, 20), endpoint(&p, 16, 22));
        forward.push(template);
        reply.push(udp(backend, local));
    }
    // As a worker does between bursts: the sessions' standing swept under the snapshot.
    nat.sweep_some(&snap, usize::MAX);
    Rig { snap, nat, counters, forward, reply }
}

fn endpoint(p: &[u8], ip_at: usize, port_at: usize) -> Endpoint {
    Endpoint::new(
        Ipv4Addr::new(p[ip_at], p[ip_at + 1], p[ip_at + 2], p[ip_at + 3]),
        u16::from_be_bytes([p[port_at], p[port_at + 1]]),
    )
}

/// ns per packet over `rounds` passes through `packets` in a shuffled order.
fn run(rig: &mut Rig, packets: &[[u8; 50]], rounds: u32) -> f64 {
    let order = shuffled(packets.len());
    let start = Instant::now();
    for _ in 0..rounds {
        for &i in &order {
            let mut buf = packets[i];
            black_box(rig.nat.process(&rig.snap, &mut buf, 1, &rig.counters));
        }
    }
    start.elapsed().as_nanos() as f64 / (rounds as f64 * packets.len() as f64)
}

/// As `run`, the way a worker handles a burst: 32 packets at a time, every flow's index slot
/// prefetched, then every session, then each packet processed with what those two stages
/// learnt of it (its hash, the session stage two found). The frames are copied from a list
/// already in the shuffled order, read front to back as a port's ring is: gathering them from
/// the flows' templates at random, as `run` does, costs a cache miss a packet at a million
/// flows (the "copy only" row) that no port's burst has.
fn run_bursts(rig: &mut Rig, packets: &[[u8; 50]], rounds: u32) -> f64 {
    const BURST: usize = 32;
    let arrivals: Vec<[u8; 50]> = shuffled(packets.len()).into_iter().map(|i| packets[i]).collect();
    let mut bufs = [[0u8; 50]; BURST];
    let mut hints = [None; BURST];
    let start = Instant::now();
    for _ in 0..rounds {
        for chunk in arrivals.chunks(BURST) {
            // The frames first, as a port's burst arrives: in the cache when stage one reads them.
            bufs[..chunk.len()].copy_from_slice(chunk);
            for (k, buf) in bufs[..chunk.len()].iter().enumerate() {
                hints[k] = rig.nat.prefetch_index(buf).map(Hint::hash_only);
            }
            for hint in hints[..chunk.len()].iter_mut().flatten() {
                *hint = rig.nat.prefetch_session(hint.hash);
            }
            for (buf, hint) in bufs[..chunk.len()].iter_mut().zip(hints) {
                black_box(rig.nat.process_hashed(&rig.snap, buf, 1, &rig.counters, hint));
            }
        }
    }
    start.elapsed().as_nanos() as f64 / (rounds as f64 * packets.len() as f64)
}

fn median3(mut pass: impl FnMut() -> f64) -> f64 {
    let mut v = [pass(), pass(), pass()];
    v.sort_by(f64::total_cmp);
    v[1]
}

fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

fn copy_only(packets: &[[u8; 50]]) -> f64 {
    let order = shuffled(packets.len());
    let start = Instant::now();
    for _ in 0..20 {
        for &i in &order {
            black_box(packets[i]);
        }
    }
    start.elapsed().as_nanos() as f64 / (20.0 * packets.len() as f64)
}

fn main() {
    println!("{:<44} {:>10}", "FULLNAT per packet, no I/O (64-byte UDP)", "ns/packet");
    // SLUICE_BENCH_CHURN: the churn row alone (for comparing builds).
    if std::env::var_os("SLUICE_BENCH_CHURN").is_some() {
        println!("{:<44} {:>10.1}", "session churn, ns a session (both packets)", churn());
        return;
    }
    // SLUICE_BENCH_QUICK: the 1k-flow case only (for profiling under callgrind).
    let quick = std::env::var_os("SLUICE_BENCH_QUICK").is_some();
    // SLUICE_BENCH_FLOWS=N[,N...]: only those table sizes, and no new-session row.
    let chosen: Option<Vec<u32>> = std::env::var("SLUICE_BENCH_FLOWS")
        .ok()
        .map(|v| v.split(',').map(|n| n.trim().parse().expect("SLUICE_BENCH_FLOWS: numbers")).collect());
    let sizes: &[u32] = match &chosen {
        Some(sizes) => sizes,
        None if quick => &[1_000],
        None => &[1_000, 100_000, 1_000_000],
    };
    for &flows in sizes {
        let mut r = rig(flows, flows.max(1024) * 2);
        let rounds = (20_000_000 / flows).clamp(3, 2000);
        let forward = r.forward.clone();
        let reply = r.reply.clone();
        println!("{:<44} {:>10.1}", format!("established forward, {flows} flows"), run(&mut r, &forward, rounds));
        println!("{:<44} {:>10.1}", format!("established reply, {flows} flows"), run(&mut r, &reply, rounds));
        // The rows the 1k-to-1M comparison reads: the median of three passes (the machine's
        // noise moves one pass by half).
        let bursts = median3(|| run_bursts(&mut r, &forward, rounds));
        println!("{:<44} {:>10.1}", format!("forward in bursts of 32, {flows} flows"), bursts);
        let bursts = median3(|| run_bursts(&mut r, &reply, rounds));
        println!("{:<44} {:>10.1}", format!("reply in bursts of 32, {flows} flows"), bursts);
        // The same without the fast lane: what the general path alone costs.
        r.nat.set_fast_lane(false);
        let general = run_bursts(&mut r, &forward, rounds);
        r.nat.set_fast_lane(true);
        println!("{:<44} {:>10.1}", format!("forward in bursts, general path, {flows} flows"), general);
        println!("{:<44} {:>10.1}", format!("copy only, {flows} flows"), copy_only(&forward));
    }
    // A few flows in a table sized for a million, as a worker runs with the default capacity:
    // the index is sized for the capacity, so the flows' slots are scattered over megabytes.
    // SLUICE_BENCH_SPARSE=1 adds these rows to a SLUICE_BENCH_FLOWS run.
    if !quick && (chosen.is_none() || std::env::var_os("SLUICE_BENCH_SPARSE").is_some()) {
        let (flows, capacity) = (1_000, 1 << 20);
        let mut r = rig(flows, capacity);
        let forward = r.forward.clone();
        let label = format!("{flows} flows, table for {capacity}");
        println!("{:<44} {:>10.1}", format!("forward one at a time, {label}"), run(&mut r, &forward, 2000));
        println!("{:<44} {:>10.1}", format!("forward in bursts of 32, {label}"), run_bursts(&mut r, &forward, 2000));
    }
    if quick || chosen.is_some() {
        return;
    }
    // New sessions: every packet a new flow, into an empty table.
    let n = 1_000_000u32;
    let snap = snapshot();
    let mut nat = FullNat::for_worker(&snap, 0, 1, n);
    let counters = WorkerCounters::default();
    let packets: Vec<[u8; 50]> = (0..n).map(|i| udp(client(i), Endpoint::new(VIP, 53))).collect();
    let start = Instant::now();
    let mut buf;
    for p in &packets {
        buf = *p;
        black_box(nat.process(&snap, &mut buf, 1, &counters));
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    assert_eq!(counters.sessions_created.get(), u64::from(n), "every packet opened a session");
    println!("{:<44} {:>10.1}", format!("new session, {n} into an empty table"), ns);
    println!("{:<44} {:>10.1}", "memory per session (bytes)", nat.sessions().memory_bytes() as f64 / f64::from(n));
    println!("{:<44} {:>10.1}", "session churn, ns a session (both packets)", churn());
    if std::env::var_os("SLUICE_BENCH_10M").is_some() {
        ten_million();
    }
}

/// Steady churn, as `scripts/bench`'s new-session run holds the table: every client packet a
/// new flow and each answered by its backend, 500 new flows a millisecond of simulated time,
/// sessions expiring after 1 s idle (so about 500,000 live in a table for 4 Mi), expired
/// between bursts as a worker does. Returns ns a session: its two packets, its opening and its
/// expiry, over the flows after the first two simulated seconds (the table's steady state).
fn churn() -> f64 {
    const BURST: usize = 32;
    const PER_MS: u32 = 500;
    let one_second = std::time::Duration::from_secs(1);
    let snap = snapshot_with(Timeouts { udp: one_second, udp_new: one_second, ..Timeouts::default() });
    let mut nat = FullNat::for_worker(&snap, 0, 1, 4 << 20);
    // Swept under the snapshot, as a worker's table is soon after it starts: the fast lane
    // reads the sessions' marks.
    nat.sweep_some(&snap, usize::MAX);
    let counters = WorkerCounters::default();
    let (warm, n) = (2_000 * PER_MS, 4_000 * PER_MS);
    let mut bufs = [[0u8; 50]; BURST];
    let mut hints = [None; BURST];
    let mut start = Instant::now();
    let mut burst = |nat: &mut FullNat, bufs: &mut [[u8; 50]; BURST], now: u64| {
        for (buf, hint) in bufs.iter().zip(hints.iter_mut()) {
            *hint = nat.prefetch_index(buf).map(Hint::hash_only);
        }
        for hint in hints.iter_mut().flatten() {
            *hint = nat.prefetch_session(hint.hash);
        }
        for (buf, hint) in bufs.iter_mut().zip(hints) {
            assert!(matches!(nat.process_hashed(&snap, buf, now, &counters, hint), Step::Forward { .. }));
        }
    };
    for first in (0..n).step_by(BURST) {
        if first == warm {
            start = Instant::now();
        }
        let now = u64::from(first / PER_MS);
        for (k, buf) in bufs.iter_mut().enumerate() {
            *buf = udp(client(first + k as u32), Endpoint::new(VIP, 53));
        }
        burst(&mut nat, &mut bufs, now);
        // Each backend answers: the rewritten packet with its endpoints swapped.
        for buf in bufs.iter_mut() {
            *buf = udp(endpoint(buf, 16, 22), endpoint(buf, 12, 20));
        }
        burst(&mut nat, &mut bufs, now);
        // As a worker between bursts: a chunk, and more while a chunk comes back full.
        for _ in 0..1000 {
            if nat.expire_some(now, BURST, &counters).1 < BURST {
                break;
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n - warm);
    let live = nat.sessions().len();
    assert!((400_000..700_000).contains(&live), "{live} sessions live: not the steady state meant");
    ns
}

/// The session table alone at 10 million sessions: its memory, inserts and lookups.
fn ten_million() {
    use dataplane::session::{FlowKey, NewSession, SessionTable};
    let n = 10_000_000u32;
    let mut table = SessionTable::with_capacity(n, Timeouts::default());
    let ep = |i: u32, base: u8| Endpoint::new(Ipv4Addr::new(198, base, (i >> 16) as u8, (i >> 8) as u8), i as u16);
    let start = Instant::now();
    for i in 0..n {
        let new = NewSession {
            proto: 17,
            client: ep(i, 18),
            vip: Endpoint::new(VIP, 53),
            local: ep(i, 19),
            backend: Endpoint::new(Ipv4Addr::new(198, 18, 1, 2), 53),
            service: 0,
            backend_index: 0,
            tcp_flags: 0,
            hops: Default::default(),
        };
        table.insert(new, 0).expect("room for 10M");
    }
    let insert = start.elapsed().as_nanos() as f64 / f64::from(n);
    let order = shuffled(1_000_000);
    let start = Instant::now();
    for &i in &order {
        let key = FlowKey { proto: 17, src: ep(i as u32 * 10, 18), dst: Endpoint::new(VIP, 53) };
        black_box(table.lookup(&key));
    }
    let lookup = start.elapsed().as_nanos() as f64 / order.len() as f64;
    println!("{:<44} {:>10.1}", "10M sessions: insert (ns)", insert);
    println!("{:<44} {:>10.1}", "10M sessions: random lookup (ns)", lookup);
    println!("{:<44} {:>10.1}", "10M sessions: table memory (MiB)", table.memory_bytes() as f64 / (1 << 20) as f64);
}
