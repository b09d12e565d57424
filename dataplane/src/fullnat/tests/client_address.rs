//! `client_address = "proxy-v2"` on UDP: what `process` asks of the worker.

use super::*;
use crate::fullnat::{Emit, Extra};
use crate::nat::proxy::insert_udp_header;
use crate::wire::proxy::{self, Header, Transport};

/// The lab with its DNS service telling backends the client's address, the lan link's MTU
/// `mtu`, and checksum offload on the lan link (which such datagrams must not use).
fn lab(mtu: u16) -> Lab {
    let mut lab = Lab::with(Options { lan_offload: true, ..PLAIN }, 0, 1, 64);
    lab.snap.services[0].client_address = ClientAddress::ProxyV2;
    lab.snap.links[1].mtu = mtu;
    lab
}

fn with_df(mut ip: Vec<u8>) -> Vec<u8> {
    ip[6] |= 0x40;
    ip[10..12].fill(0);
    let c = checksum::ipv4_header(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip
}

#[test]
fn a_datagram_to_the_backend_is_rewritten_in_full_and_told_its_client() {
    let mut lab = lab(1500);
    let mut b = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    let step = lab.process(&mut b, 1000);
    let header = ClientHeader { client: Endpoint::new(CLIENT.0, CLIENT.1), vip: Endpoint::new(DNS.0, DNS.1) };
    let hop = Hop { link: 1, gateway: DNS_BACKENDS[0].0 };
    assert_eq!(step, Step::ForwardExtra { hop });
    assert_eq!(lab.nat.take_extra(), Some(Extra::Header { header, service: 0 }));
    let s = lab.session(protocol::UDP, CLIENT, DNS).expect("a session");
    assert_eq!(b, udp_packet((s.local.ip, s.local.port), DNS_BACKENDS[0], 63, QUERY, true, &[]), "no offload");

    // What the worker then makes of it: the header before the query, checksums exact.
    let mut frame = vec![0u8; proxy::PROXY_LEN + 14];
    frame.extend_from_slice(&b);
    let total = usize::from(insert_udp_header(&mut frame, 14, &header.proxy_v2_udp()).unwrap());
    let grown = &frame[14..14 + total];
    assert_checksums_exact(grown);
    let (told, at) = proxy::parse(&grown[28..]).unwrap();
    assert_eq!(told, Header::Proxy { transport: Transport::Udp, client: CLIENT, vip: DNS });
    assert_eq!(&grown[28 + at..], QUERY);
}

#[test]
fn replies_and_other_services_pass_as_before() {
    let mut lab = lab(1500);
    let mut q = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    assert!(matches!(lab.process(&mut q, 1000), Step::ForwardExtra { .. }));
    let s = lab.session(protocol::UDP, CLIENT, DNS).unwrap();
    let mut answer = udp_packet(DNS_BACKENDS[0], (s.local.ip, s.local.port), 64, ANSWER, true, &[]);
    assert_eq!(
        lab.process(&mut answer, 1010),
        Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None }
    );
    assert_eq!(answer, udp_packet(DNS, CLIENT, 63, ANSWER, true, &[]));
    let mut syn = tcp_packet(CLIENT, WEB, 64, Flags::SYN, b"", &[]);
    let step = lab.process(&mut syn, 1020);
    assert!(matches!(step, Step::Forward { offload: Some(OffloadL4::Tcp), .. }), "{step:?}");
}

#[test]
fn a_datagram_too_big_with_the_header_is_refused_only_when_it_may_not_be_fragmented() {
    let mut lab = lab(1000);
    let fits = udp_packet(CLIENT, DNS, 64, &[7u8; 1000 - 28 - 28], true, &[]);
    let mut b = with_df(fits.clone());
    assert!(matches!(lab.process(&mut b, 1000), Step::ForwardExtra { .. }), "exactly the MTU with the header");

    let big = with_df(udp_packet(client(40001), DNS, 64, &[7u8; 1000 - 28 - 27], true, &[]));
    let mut b = big.clone();
    assert_eq!(lab.process(&mut b, 1000), Step::TooBig { mtu: 1000 - 28, service: 0 });
    assert_eq!(b, big, "left as it came, for the ICMP error to quote");

    let mut may_split = udp_packet(client(40002), DNS, 64, &[7u8; 1400], true, &[]);
    assert!(matches!(lab.process(&mut may_split, 1000), Step::ForwardExtra { .. }));
}

// --- TCP ---

const C_ISN: u32 = 0xffff_fff0; // the header and the client's bytes wrap 2^32
const B_ISN: u32 = 70_000;

/// The lab with its web service telling backends the client's address.
fn tcp_lab() -> Lab {
    let mut lab = Lab::new();
    lab.snap.services[1].client_address = ClientAddress::ProxyV2;
    lab
}

fn seg(from: Ep, to: Ep, seq: u32, ack: u32, flags: Flags, options: &[u8], data: &[u8]) -> Vec<u8> {
    let repr = crate::wire::tcp::Repr {
        src_port: from.1,
        dst_port: to.1,
        seq,
        ack,
        flags,
        window: 512,
        options,
        payload: data,
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut l4, from.0, to.0);
    ip_packet(from.0, to.0, protocol::TCP, 64, &[], &l4)
}

/// SYN, SYN+ACK; returns the session's local endpoint and backend.
fn handshake(lab: &mut Lab, now: u64) -> (Ep, Ep) {
    let mut syn = seg(CLIENT, WEB, C_ISN, 0, Flags::SYN, &[], b"");
    assert!(matches!(lab.process(&mut syn, now), Step::Forward { offload: None, .. }));
    let s = lab.session(protocol::TCP, CLIENT, WEB).unwrap();
    let (local, backend) = ((s.local.ip, s.local.port), (s.backend.ip, s.backend.port));
    let mut syn_ack = seg(backend, local, B_ISN, C_ISN.wrapping_add(1), Flags::SYN | Flags::ACK, &[], b"");
    assert!(matches!(lab.process(&mut syn_ack, now), Step::Forward { .. }));
    assert_eq!(syn_ack, {
        let mut e = seg(WEB, CLIENT, B_ISN, C_ISN.wrapping_add(1), Flags::SYN | Flags::ACK, &[], b"");
        e[8] = 63;
        fix(&mut e);
        e
    });
    (local, backend)
}

/// The IP checksum after a test changed the TTL.
fn fix(ip: &mut [u8]) {
    ip[10..12].fill(0);
    let c = checksum::ipv4_header(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

fn header_of(e: &Emit) -> Header {
    proxy::parse(&e.payload().unwrap()).unwrap().0
}

#[test]
fn the_header_goes_out_when_the_handshake_completes_and_the_client_moves_28_on() {
    let mut lab = tcp_lab();
    let (local, backend) = handshake(&mut lab, 1000);
    let at = C_ISN.wrapping_add(1);

    // The client's handshake ACK: the header segment first, then the ACK 28 bytes on.
    let mut ack = seg(CLIENT, WEB, at, B_ISN + 1, Flags::ACK, &[], b"");
    let Step::ForwardExtra { hop } = lab.process(&mut ack, 1001) else { panic!("no header") };
    let Some(Extra::First(first)) = lab.nat.take_extra() else { panic!("no header") };
    assert_eq!(hop, Hop { link: 1, gateway: backend.0 });
    assert_eq!((first.segment.src, first.segment.dst), (local, backend));
    assert_eq!((first.segment.seq, first.segment.ack, first.segment.window), (at, B_ISN + 1, 512));
    assert_eq!(header_of(&first), Header::Proxy { transport: Transport::Tcp, client: CLIENT, vip: WEB });
    let mut expected = seg(local, backend, at.wrapping_add(28), B_ISN + 1, Flags::ACK, &[], b"");
    expected[8] = 63;
    fix(&mut expected);
    assert_eq!(ack, expected);
    assert_checksums_exact(&ack);

    // The client's first data while the header is unacknowledged: the header leads it, at its
    // own place (the worker inserts it); its retransmission likewise, the same bytes again.
    let header = ClientHeader { client: Endpoint::new(CLIENT.0, CLIENT.1), vip: Endpoint::new(WEB.0, WEB.1) };
    for _ in 0..2 {
        let mut data = seg(CLIENT, WEB, at, B_ISN + 1, Flags::ACK | Flags::PSH, &[], b"GET /");
        assert_eq!(lab.process(&mut data, 1002), Step::ForwardExtra { hop });
        assert_eq!(lab.nat.take_extra(), Some(Extra::Header { header, service: 1 }));
        let t = crate::wire::tcp::Packet::new_checked(&data[20..]).unwrap();
        assert_eq!(t.seq(), at, "the header takes the first 28 bytes from here");
        assert_checksums_exact(&data);
    }

    // The backend acknowledges header and data: the client sees its own 5 bytes acknowledged.
    let mut answer = seg(backend, local, B_ISN + 1, at.wrapping_add(33), Flags::ACK, &[], b"200 OK");
    lab.process(&mut answer, 1003);
    assert_eq!(crate::wire::tcp::Packet::new_checked(&answer[20..]).unwrap().ack(), at.wrapping_add(5));
    assert_checksums_exact(&answer);

    // From now on the client's bytes only move: a late retransmission carries no header.
    let mut again = seg(CLIENT, WEB, at, B_ISN + 7, Flags::ACK | Flags::PSH, &[], b"GET /");
    assert_eq!(lab.process(&mut again, 1004), Step::Forward { hop, offload: None });
    assert_eq!(crate::wire::tcp::Packet::new_checked(&again[20..]).unwrap().seq(), at.wrapping_add(28));
    assert_checksums_exact(&again);
    let id = lab.session_id(protocol::TCP, CLIENT, WEB).unwrap();
    assert_eq!(lab.nat.proxied().state(id).phase, crate::fullnat::proxied::Phase::Acked);
    let mut out = Vec::new();
    lab.nat.resend_headers(5000, &lab.c, &mut out);
    assert!(out.is_empty() && lab.nat.proxied().in_flight() == 0, "an acknowledged header is not resent");
    let counted = lab.c.services[1].client_address.iter().map(|c| c.get()).collect::<Vec<_>>();
    assert_eq!(counted, [1, 0, 0, 0, 2, 0, 0], "added once, led the data twice");
}

#[test]
fn an_unacknowledged_header_is_resent_the_same_then_both_sides_are_reset() {
    let mut lab = tcp_lab();
    let (local, backend) = handshake(&mut lab, 1000);
    let at = C_ISN.wrapping_add(1);
    let mut ack = seg(CLIENT, WEB, at, B_ISN + 1, Flags::ACK, &[], b"");
    let Step::ForwardExtra { .. } = lab.process(&mut ack, 1000) else { panic!() };
    let Some(Extra::First(first)) = lab.nat.take_extra() else { panic!() };

    // The backend's duplicate acknowledgement of `at` (bytes after a hole): resent at once.
    let mut dup = seg(backend, local, B_ISN + 1, at, Flags::ACK, &[], b"");
    lab.process(&mut dup, 1050);
    let mut out = Vec::new();
    lab.nat.resend_headers(1051, &lab.c, &mut out);
    assert_eq!(out, [first], "byte-identical, at the same sequence number");

    // Then on a timer that doubles, until MAX_SENDS sends: then a reset to each side.
    let mut sends = 2;
    let mut now = 1051;
    let mut resets = Vec::new();
    while resets.is_empty() && now < 60_000 {
        now += 100;
        out.clear();
        lab.nat.resend_headers(now, &lab.c, &mut out);
        for e in &out {
            if e.header.is_some() {
                assert_eq!(*e, first);
                sends += 1;
            } else {
                resets.push(*e);
            }
        }
    }
    assert_eq!(sends, crate::fullnat::proxied::MAX_SENDS);
    assert_eq!(resets.len(), 2);
    let to_backend = resets.iter().find(|e| e.segment.dst == backend).expect("a reset to the backend");
    assert_eq!((to_backend.segment.src, to_backend.segment.seq, to_backend.segment.flags), (local, at, Flags::RST));
    let to_client = resets.iter().find(|e| e.segment.dst == CLIENT).expect("a reset to the client");
    assert_eq!((to_client.segment.src, to_client.segment.seq), (WEB, B_ISN + 1));
    assert!(lab.session(protocol::TCP, CLIENT, WEB).is_none(), "the session ended");
    assert_eq!(lab.free(WEB_LOCAL), PORTS, "its port given back");
    let results: Vec<u64> = lab.c.services[1].client_address.iter().map(|c| c.get()).collect();
    assert_eq!(results, [1, 0, 0, 0, u64::from(crate::fullnat::proxied::MAX_SENDS) - 1, 1, 0]);
}

#[test]
fn fast_open_data_on_the_syn_is_held_back_and_other_tcp_services_pass_as_before() {
    let mut lab = tcp_lab();
    let tfo = [34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1];
    let mut syn = seg(CLIENT, WEB, C_ISN, 0, Flags::SYN, &tfo, b"early data");
    assert!(matches!(lab.process(&mut syn, 1000), Step::Forward { .. }));
    let total = usize::from(u16::from_be_bytes([syn[2], syn[3]]));
    assert_eq!(total, 20 + 32, "the SYN leaves without its data");
    assert_checksums_exact(&syn[..total]);

    let mut plain = Lab::new();
    let mut syn = seg(CLIENT, WEB, C_ISN, 0, Flags::SYN, &tfo, b"early data");
    assert!(matches!(plain.process(&mut syn, 1000), Step::Forward { .. }));
    assert_eq!(usize::from(u16::from_be_bytes([syn[2], syn[3]])), 20 + 32 + 10, "without proxy-v2 untouched");
}

// --- TOA ---

#[test]
fn toa_goes_on_client_segments_until_the_backend_speaks_and_forged_ones_never_pass() {
    let mut lab = Lab::new();
    lab.snap.services[1].client_address = ClientAddress::Toa;
    let forged = [254, 8, 0, 1, 10, 0, 0, 1];
    let mut syn = seg(CLIENT, WEB, C_ISN, 0, Flags::SYN, &forged, b"");
    assert!(matches!(lab.process(&mut syn, 1000), Step::Forward { offload: None, .. }));
    assert_eq!(&syn[40..48], &[1; 8], "the client's own option 254 became NOPs");
    assert_checksums_exact(&syn);
    let s = lab.session(protocol::TCP, CLIENT, WEB).unwrap();
    let (local, backend) = ((s.local.ip, s.local.port), (s.backend.ip, s.backend.port));

    let mut syn_ack = seg(backend, local, B_ISN, C_ISN + 1, Flags::SYN | Flags::ACK, &[2, 4, 0x05, 0xb4], b"");
    lab.process(&mut syn_ack, 1001);
    assert_eq!(&syn_ack[40..44], &[2, 4, 0x05, 0xac], "MSS 1460 offered as 1452");
    assert_checksums_exact(&syn_ack);

    let client = Endpoint::new(CLIENT.0, CLIENT.1);
    let hop = Hop { link: 1, gateway: backend.0 };
    for flags in [Flags::ACK, Flags::ACK | Flags::PSH] {
        let mut b = seg(CLIENT, WEB, C_ISN + 1, B_ISN + 1, flags, &[], b"data");
        assert_eq!(lab.process(&mut b, 1002), Step::ForwardExtra { hop });
        assert_eq!(lab.nat.take_extra(), Some(Extra::Toa { client, service: 1 }));
    }
    let mut answer = seg(backend, local, B_ISN + 1, C_ISN + 5, Flags::ACK, &[], b"hello");
    lab.process(&mut answer, 1003);
    let mut later = seg(CLIENT, WEB, C_ISN + 5, B_ISN + 6, Flags::ACK, &forged, b"more");
    assert_eq!(lab.process(&mut later, 1004), Step::Forward { hop, offload: None });
    assert_eq!(&later[40..48], &[1; 8], "after the backend spoke: no option, and no forged one");
    assert_checksums_exact(&later);
}

#[test]
fn a_step_stays_small_for_the_packets_without_extras() {
    assert!(std::mem::size_of::<Step>() <= 16, "Step: {} bytes", std::mem::size_of::<Step>());
}
