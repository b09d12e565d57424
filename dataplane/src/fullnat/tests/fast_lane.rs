//! The fast lane against the general path: the same random traffic (new flows, replies, TCP
//! flags of every kind, IP options, bad checksums, TTLs running out) through two labs, one with
//! the lane and one without, while backends go away, fail and come back, VIPs lose quorum,
//! sessions expire and the sessions' standing is swept (`sweep`) a few slots at a time. Every
//! step, every byte leaving, every session and every counter must agree, and the lane must have
//! taken most packets, most of them by the sweep's marks (or the test would prove nothing).

use super::*;
use crate::session::{Hint, SEEN_STALE};
use crate::snapshot::BackendState;

/// Packets a burst in `the_fast_lane_does_what_the_general_path_does`.
const BURST: usize = 8;

/// What the counters say, in one comparable value.
fn figures(lab: &Lab) -> Vec<u64> {
    let c = &lab.c;
    let mut out = vec![c.forwarded.get(), c.replied.get(), c.sessions_created.get(), c.sessions_expired.get()];
    out.extend(DropReason::ALL.iter().map(|&r| c.dropped(r)));
    for b in c.backends.iter().take(lab.snap.backends.len()) {
        out.extend([b.active.get(), b.sessions.get(), b.packets[0].get(), b.packets[1].get()]);
        out.extend([b.bytes[0].get(), b.bytes[1].get()]);
    }
    out
}

fn sessions(lab: &Lab) -> Vec<Session> {
    lab.nat.sessions().iter().map(|(_, s)| *s).collect()
}

/// A packet of one of a few flows, or an answer to one that left earlier.
fn packet(rng: &mut Rng, left: &[Vec<u8>]) -> Vec<u8> {
    let port = 40000 + rng.below(6) as u16;
    let flags =
        [Flags::SYN, Flags::ACK, Flags::ACK | Flags::PSH, Flags::FIN | Flags::ACK, Flags::RST, Flags::SYN | Flags::ACK];
    let flag = flags[rng.below(flags.len())];
    let mut p = match rng.below(6) {
        0 => udp_packet(client(port), DNS, 64, QUERY, rng.below(2) == 0, &[]),
        1 => udp_packet(client(port), NTP, 64, QUERY, true, &[]),
        2 => tcp_packet(client(port), WEB, 64, flag, b"data", &[]),
        3 => udp_packet(client(port), DNS, 64, QUERY, true, &[1, 1, 1, 0]), // an IP option
        _ => match left.get(rng.below(left.len().max(1))) {
            // The backend's side: the packet that left, its endpoints swapped.
            Some(out) => answer(out, flag),
            None => tcp_packet(client(port), WEB, 64, Flags::SYN, b"", &[]),
        },
    };
    match rng.below(20) {
        0 => p[8] = 1, // TTL runs out here
        1 => p[11] ^= 0x40,
        _ => {}
    }
    p
}

/// The backend's answer to a packet that left for it.
fn answer(out: &[u8], flags: Flags) -> Vec<u8> {
    let p = ipv4::Packet::new_checked(out).unwrap();
    let l4 = p.payload();
    let ports = (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]));
    let (from, to) = ((p.dst(), ports.1), (p.src(), ports.0));
    if p.protocol() == protocol::TCP {
        tcp_packet(from, to, 64, flags, b"answer", &[])
    } else {
        udp_packet(from, to, 64, ANSWER, true, &[])
    }
}

/// One random change to the appliance, made to both labs alike.
fn change(rng: &mut Rng, labs: &mut [Lab; 2]) {
    let backend = rng.below(labs[0].snap.backends.len());
    let service = rng.below(labs[0].snap.services.len());
    let what = rng.below(5);
    for lab in labs.iter_mut() {
        match what {
            0 => lab.snap.backends[backend].live ^= true,
            1 => lab.snap.backends[backend].state = BackendState::Down,
            2 => lab.snap.backends[backend].state = BackendState::Up,
            3 => lab.snap.services[service].quorum ^= true,
            _ => lab.snap.services[service].remove_on_failure ^= true,
        }
        // A changed snapshot is a new one, as the control core publishes it.
        lab.snap.generation += 1;
    }
}

#[test]
fn the_fast_lane_does_what_the_general_path_does() {
    lane_against_general(PLAIN);
}

/// As above with checksum offload on the backends' link: the lane (and the general path, with
/// the lane's reading of a new flow's packet) leaves the checksums to the NIC as the general
/// path's `rewrite_for_offload` does.
#[test]
fn the_fast_lane_does_what_the_general_path_does_with_offload() {
    lane_against_general(Options { lan_offload: true, ..PLAIN });
}

fn lane_against_general(o: Options) {
    let mut labs = [Lab::with(o, 0, 1, 64), Lab::with(o, 0, 1, 64)];
    labs[1].nat.set_fast_lane(false);
    let mut rng = Rng::new(15);
    let mut left: Vec<Vec<u8>> = Vec::new();
    let mut now = 1000;
    let (mut burst, mut hints): (Vec<Vec<u8>>, Vec<Option<Hint>>) = (Vec::new(), Vec::new());
    // Packets the lane took by the sweep's marks.
    let mut taken_swept = 0u64;
    for round in 0..20_000 {
        if round % 500 == 499 {
            change(&mut rng, &mut labs);
        }
        if round % 2000 == 1999 {
            // Everything back as configured, so that sessions form again.
            for lab in labs.iter_mut() {
                for b in lab.snap.backends.iter_mut() {
                    (b.live, b.state) = (true, BackendState::Up);
                }
                for s in lab.snap.services.iter_mut() {
                    (s.quorum, s.remove_on_failure) = (true, false);
                }
                lab.snap.generation += 1;
            }
        }
        now += rng.below(40) as u64;
        // The lab with the lane takes the packet as the worker does: its burst's stages ran
        // before the packets ahead of it in the burst, which may have changed the table since.
        if round % BURST == 0 {
            burst = (0..BURST).map(|_| packet(&mut rng, &left)).collect();
            hints =
                burst.iter().map(|p| labs[0].nat.prefetch_index(p).map(|h| labs[0].nat.prefetch_session(h))).collect();
        }
        // Both labs sweep the sessions' standing as a worker does between bursts, a few slots
        // at a time: some packets find the table swept under their snapshot (the lane reads
        // the marks), others a sweep under way (the lane asks).
        if round % 8 == 0 {
            for lab in labs.iter_mut() {
                lab.nat.sweep_some(&lab.snap, 16);
            }
        }
        let p = burst[round % BURST].clone();
        let (mut a, mut b) = (p.clone(), p.clone());
        let lab = &mut labs[0];
        let (swept, taken) = (lab.nat.swept(&lab.snap), lab.nat.lane_taken);
        let sa = lab.nat.process_hashed(&lab.snap, &mut a, now, &lab.c, hints[round % BURST]);
        if swept && lab.nat.lane_taken > taken {
            taken_swept += 1;
        }
        let sb = labs[1].process(&mut b, now);
        assert_eq!(sa, sb, "round {round}: {p:02x?}");
        assert_eq!(a, b, "round {round}: the bytes that leave");
        if matches!(sa, Step::Forward { .. }) {
            left.push(a);
            if left.len() > 64 {
                left.remove(0);
            }
        }
        if round % 100 == 0 {
            for lab in labs.iter_mut() {
                lab.nat.expire(now, 1000, &lab.c);
            }
            assert_eq!(sessions(&labs[0]), sessions(&labs[1]), "round {round}");
            assert_eq!(figures(&labs[0]), figures(&labs[1]), "round {round}");
        }
    }
    assert_eq!(figures(&labs[0]), figures(&labs[1]));
    let forwarded = labs[0].c.forwarded.get() + labs[0].c.replied.get();
    assert!(forwarded > 5000, "traffic flowed: {forwarded}");
    let taken = labs[0].nat.lane_taken;
    assert!(taken * 2 > forwarded, "the lane took {taken} of {forwarded}");
    assert!(taken_swept * 2 > taken, "the lane read the marks for {taken_swept} of {taken}");
    assert!(taken_swept < taken, "and asked for the rest");
    assert_eq!(labs[1].nat.lane_taken, 0);
}

/// The lane takes what it is for: a datagram of an established flow leaves by it, and a lab
/// without the lane gives the same result by the general path.
#[test]
fn established_packets_take_the_lane() {
    for lane in [true, false] {
        let mut lab = Lab::new();
        lab.nat.set_fast_lane(lane);
        let local = lab.query(CLIENT, DNS_BACKENDS[0], 1);
        let created = lab.c.sessions_created.get();
        for now in 2..10 {
            assert_eq!(lab.query(CLIENT, DNS_BACKENDS[0], now), local);
        }
        let mut b = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, true, &[]);
        assert_eq!(lab.process(&mut b, 11), Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
        assert_eq!(b, udp_packet(DNS, CLIENT, 63, ANSWER, true, &[]));
        assert_eq!((lab.c.sessions_created.get(), lab.c.forwarded.get(), lab.c.replied.get()), (created, 9, 1));
        assert_eq!(lab.nat.lane_taken, if lane { 9 } else { 0 });
    }
}

/// The sweep marks exactly the sessions that may not go on under the snapshot it walked, a
/// slice at a time, and clears the marks of those that may; a newer snapshot starts it again;
/// a session is looked at as it opens. Once swept, the lane leaves a marked session's packet
/// to the general path.
#[test]
fn the_sweep_marks_what_may_not_go_on() {
    let mut lab = Lab::new();
    let ports: Vec<u16> = (40000..40006).collect();
    for &port in &ports {
        let mut p = udp_packet(client(port), DNS, 64, QUERY, true, &[]);
        assert!(matches!(lab.process(&mut p, 1), Step::Forward { .. }));
    }
    let session = |lab: &Lab, port| lab.session(protocol::UDP, client(port), DNS).expect("a session");
    let marked = |lab: &Lab| -> Vec<bool> { ports.iter().map(|&p| session(lab, p).seen & SEEN_STALE != 0).collect() };
    assert_eq!(marked(&lab), vec![false; ports.len()], "looked at as they opened");
    let gone = session(&lab, ports[0]).backend_index;
    let on_gone: Vec<bool> = ports.iter().map(|&p| session(&lab, p).backend_index == gone).collect();
    assert!(on_gone.iter().any(|&g| !g), "the flows spread over the backends");

    lab.snap.backends[usize::from(gone)].live = false;
    lab.snap.generation += 1;
    assert!(!lab.nat.swept(&lab.snap));
    let mut calls = 0;
    while lab.nat.sweep_some(&lab.snap, 8) == 8 {
        calls += 1;
        assert!(calls <= 64, "the sweep ends");
    }
    assert!(calls >= 7, "a slice at a time: {calls}");
    assert!(lab.nat.swept(&lab.snap));
    assert_eq!(marked(&lab), on_gone);
    assert_eq!(lab.nat.sweep_some(&lab.snap, 8), 0, "nothing more under this snapshot");

    // A packet of a marked flow: not the lane's; the general path ends the session and
    // schedules the datagram afresh (here by the lab's unchanged member list, which may pick
    // the same backend: the new session is marked as it opens if so).
    let taken = lab.nat.lane_taken;
    let mut p = udp_packet(client(ports[0]), DNS, 64, QUERY, true, &[]);
    assert!(matches!(lab.process(&mut p, 2), Step::Forward { .. }));
    assert_eq!(lab.nat.lane_taken, taken);
    assert_eq!(lab.c.sessions_created.get(), ports.len() as u64 + 1, "ended and opened again");
    let again = session(&lab, ports[0]);
    assert_eq!(again.seen & SEEN_STALE != 0, again.backend_index == gone, "looked at as it opened");

    // Back: a new snapshot, whose sweep clears the marks.
    lab.snap.backends[usize::from(gone)].live = true;
    lab.snap.generation += 1;
    while lab.nat.sweep_some(&lab.snap, 8) == 8 {}
    assert_eq!(marked(&lab), vec![false; ports.len()]);
}
