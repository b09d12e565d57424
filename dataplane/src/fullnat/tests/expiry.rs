//! Expiry of idle sessions, a full table, local ports running out.

use super::*;

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
fn full_session_table_with_when_full_drop_refuses_new_flows_and_keeps_the_port() {
    let mut lab = Lab::with(PLAIN, 0, 1, 4);
    lab.snap.evict_when_full = false;
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

/// A DNS query from `c`, which must be forwarded (to whichever backend).
fn datagram(lab: &mut Lab, c: Ep, now: u64) {
    let mut b = udp_packet(c, DNS, 64, QUERY, true, &[]);
    let step = lab.process(&mut b, now);
    assert!(matches!(step, Step::Forward { .. }), "{c:?}: {step:?}");
}

#[test]
fn a_full_table_gives_way_to_a_new_flow_with_its_oldest_unconfirmed_session() {
    let mut lab = Lab::with(PLAIN, 0, 1, 4);
    let clients: Vec<Ep> = (0..4).map(|i| client(45100 + i)).collect();
    for (i, &c) in clients.iter().enumerate() {
        datagram(&mut lab, c, i as u64);
    }
    datagram(&mut lab, clients[0], 10); // a second datagram: confirmed
    assert_eq!(lab.session(protocol::UDP, clients[0], DNS).unwrap().state, State::Udp);
    assert_eq!(lab.session(protocol::UDP, clients[1], DNS).unwrap().state, State::UdpNew);

    // A SYN finds the table full: the oldest unconfirmed flow (clients[1]) makes way.
    let mut syn = tcp_packet(CLIENT, WEB, 64, Flags::SYN, b"", &[]);
    assert!(matches!(lab.process(&mut syn, 20), Step::Forward { .. }));
    assert!(lab.session(protocol::UDP, clients[1], DNS).is_none());
    assert!(lab.session(protocol::UDP, clients[0], DNS).is_some(), "confirmed: kept");
    assert_eq!((lab.c.sessions_evicted.get(), lab.nat.sessions().len()), (1, 4));
    assert_eq!(lab.free(DNS_LOCAL), PORTS - 3, "its port is back");

    // A session's own packets take no one's place.
    datagram(&mut lab, clients[2], 30);
    assert_eq!(lab.c.sessions_evicted.get(), 1);
    // clients[2] is confirmed now; next in line: clients[3], then the SYN (a handshake that
    // has not finished).
    for i in 0..2u16 {
        datagram(&mut lab, client(45200 + i), 40);
    }
    assert_eq!(lab.c.sessions_evicted.get(), 3);
    assert!(lab.session(protocol::UDP, clients[3], DNS).is_none());
    assert!(lab.session(protocol::TCP, CLIENT, WEB).is_none(), "the half-open connection went too");
    assert!(lab.session(protocol::UDP, clients[2], DNS).is_some());

    // Once every session is confirmed, new flows are refused as before.
    for i in 0..2u16 {
        datagram(&mut lab, client(45200 + i), 50);
    }
    let next = udp_packet(client(45300), DNS, 64, QUERY, true, &[]);
    assert_eq!(lab.drop_reason(&next, 60), DropReason::SessionTableFull);
    assert_eq!(lab.c.sessions_evicted.get(), 3);
}

#[test]
fn when_ports_run_out_a_new_flow_takes_the_port_of_the_oldest_unconfirmed_session() {
    let mut lab = Lab::with(PLAIN, 0, 1, PORTS + 8);
    for port in 0..PORTS as u16 {
        let mut b = udp_packet(client(port), DNS, 64, b"", true, &[]);
        assert!(matches!(lab.process(&mut b, u64::from(port / 1000)), Step::Forward { .. }));
    }
    assert_eq!(lab.free(DNS_LOCAL), 0);
    // The first flow confirms itself; the second is then the oldest unconfirmed.
    let mut again = udp_packet(client(0), DNS, 64, b"", true, &[]);
    assert!(matches!(lab.process(&mut again, 100), Step::Forward { .. }));
    for n in 0..3u16 {
        let mut b = udp_packet((FAR_CLIENT.0, 7000 + n), DNS, 64, QUERY, true, &[]);
        assert!(matches!(lab.process(&mut b, 200), Step::Forward { .. }), "new flow {n}");
    }
    assert_eq!((lab.c.sessions_evicted.get(), lab.nat.sessions().len()), (3, PORTS as usize));
    assert!(lab.session(protocol::UDP, client(0), DNS).is_some());
    for port in 1..=3 {
        assert!(lab.session(protocol::UDP, client(port), DNS).is_none(), "client port {port} made way");
    }
    assert!(lab.session(protocol::UDP, client(4), DNS).is_some());
}

#[test]
fn local_ports_run_out_and_come_back() {
    let mut lab = Lab::with(PLAIN, 0, 1, PORTS + 1); // room for one session more than ports
    lab.snap.evict_when_full = false;
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
        (with(0, 0x65, false), DropReason::BadHeader), // version 6
        (with(0, 0x44, false), DropReason::BadHeader), // header of 16 bytes
        (with(0, 0x4f, false), DropReason::BadHeader), // header longer than the packet
        (with(3, 19, false), DropReason::BadHeader),   // total length below the header
        (with(11, good[11] ^ 1, false), DropReason::BadIpChecksum),
        (with(6, 0x20, true), DropReason::Fragment),    // more fragments
        (with(7, 0x08, true), DropReason::Fragment),    // a later fragment
        (with(25, 7, false), DropReason::BadHeader),    // UDP length below 8
        (with(25, 0xff, false), DropReason::Truncated), // UDP length beyond the packet
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
