//! ICMP to a VIP or local IP, TTL expiry, ICMP errors relayed, checksum offload.

use super::*;

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
    assert_eq!(lab.session(protocol::UDP, CLIENT, DNS).unwrap().seen, Direction::Forward.bit());
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
    assert_eq!(
        lab.session(protocol::UDP, CLIENT, DNS).unwrap().seen,
        Direction::Forward.bit(),
        "errors do not count as traffic"
    );
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

    // About a client flow this worker has no session for: another worker may have it.
    let other = tcp_packet(WEB, (FAR_CLIENT.0, FAR_CLIENT.1 + 1), 63, Flags::ACK, &data, &[]);
    let mut b = icmp_packet(ROUTER, VIP, 64, &[], frag_needed(&other));
    let before = b.clone();
    assert_eq!(lab.process(&mut b, 20), Step::Elsewhere);
    assert_eq!(b, before, "handed on as it came");
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
