//! A whole synthetic connection through a simulated FULLNAT: every segment either end writes
//! is checked in full (IPv4 header and TCP checksums recomputed by the wire views).

use super::*;
use crate::space::ClientSpace;

const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc1]);
const LB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x1b]);
const BACKEND_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb1]);
const VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 80);
const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 3), 2000);
const LOCAL: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 1, 100), 33000);
const BACKEND: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 1, 2), 8080);

fn expect() -> Expect {
    let space = ClientSpace::new(Ipv4Addr::new(198, 18, 0, 2), 4, *VIP.ip()).unwrap();
    Expect { vip: VIP, space, flows: space.capacity() }
}

/// Checks a frame in full and returns (flags, seq, ack, payload).
fn check(frame: &[u8], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> (Flags, u32, u32, Vec<u8>) {
    assert!(frame.len() >= 60, "padded to the minimum frame");
    let eth = ethernet::Frame::new_checked(frame).unwrap();
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src(), ip.dst(), ip.protocol(), ip.ttl()), (src.0, dst.0, ipv4::protocol::TCP, TTL));
    let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
    assert!(seg.verify_checksum(src.0, dst.0), "TCP checksum");
    assert_eq!((seg.src_port(), seg.dst_port()), (src.1, dst.1));
    (seg.flags(), seg.seq(), seg.ack(), seg.payload().to_vec())
}

/// What the balancer does to a frame: new MACs, addresses and ports, checksums recomputed.
fn nat(frame: &mut [u8], macs: (MacAddr, MacAddr), src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) {
    let mut eth = ethernet::Frame::new_checked(&mut frame[..]).unwrap();
    eth.set_destination(macs.0).set_source(macs.1);
    let mut ip = ipv4::Packet::new_checked(eth.payload_mut()).unwrap();
    ip.set_src(src.0).set_dst(dst.0).set_ttl(TTL - 1).fill_checksum();
    let mut seg = tcp::Packet::new_checked(ip.payload_mut()).unwrap();
    seg.set_src_port(src.1).set_dst_port(dst.1).fill_checksum(src.0, dst.0);
}

fn to_backend(frame: &mut [u8]) {
    nat(frame, (BACKEND_MAC, LB_MAC), LOCAL, BACKEND);
}

fn to_client(frame: &mut [u8]) {
    nat(frame, (CLIENT_MAC, LB_MAC), (*VIP.ip(), VIP.port()), CLIENT);
}

#[test]
fn a_connection_opens_carries_data_and_closes() {
    let vip = (*VIP.ip(), VIP.port());
    let start = 0x1234_5678_9abc_u64;
    let mut b = [0u8; FRAME_ROOM];

    let len = syn(&mut b, CLIENT_MAC, LB_MAC, CLIENT.0, CLIENT.1, VIP, start);
    let (flags, client_isn, _, payload) = check(&b[..len], CLIENT, vip);
    assert_eq!((flags, client_isn, payload.len()), (Flags::SYN, isn(start), 0));
    assert_eq!(ethernet::Frame::new_checked(&b[..]).unwrap().destination(), LB_MAC);

    to_backend(&mut b[..len]);
    let len = serve(&mut b, len, BACKEND_MAC).unwrap();
    let (flags, server_isn, ack, _) = check(&b[..len], BACKEND, LOCAL);
    assert_eq!((flags, ack), (Flags::SYN | Flags::ACK, client_isn + 1));
    assert_eq!(ethernet::Frame::new_checked(&b[..]).unwrap().destination(), LB_MAC);

    to_client(&mut b[..len]);
    let ClientStep::Request(len) = client_step(&mut b, len, CLIENT_MAC, &expect(), start + 1000).unwrap() else {
        panic!("expected the request");
    };
    let (flags, seq, ack, payload) = check(&b[..len], CLIENT, vip);
    assert_eq!((flags, seq, ack), (Flags::ACK | Flags::PSH, client_isn + 1, server_isn.wrapping_add(1)));
    assert_eq!(payload, REQUEST);

    to_backend(&mut b[..len]);
    let len = serve(&mut b, len, BACKEND_MAC).unwrap();
    let (flags, seq, ack, payload) = check(&b[..len], BACKEND, LOCAL);
    assert_eq!(
        (flags, seq, ack),
        (Flags::ACK | Flags::PSH | Flags::FIN, server_isn.wrapping_add(1), client_isn + 1 + REQUEST.len() as u32)
    );
    assert_eq!(payload, RESPONSE);

    to_client(&mut b[..len]);
    let now = start + 64_000;
    let ClientStep::Completed { len, cycles } = client_step(&mut b, len, CLIENT_MAC, &expect(), now).unwrap() else {
        panic!("expected completion");
    };
    assert!((63_936..=64_064).contains(&cycles), "latency from the ISN: {cycles}");
    let (flags, seq, ack, _) = check(&b[..len], CLIENT, vip);
    let response_end = server_isn.wrapping_add(2 + RESPONSE.len() as u32);
    assert_eq!((flags, seq, ack), (Flags::FIN | Flags::ACK, client_isn + 1 + REQUEST.len() as u32, response_end));

    to_backend(&mut b[..len]);
    let len = serve(&mut b, len, BACKEND_MAC).unwrap();
    let (flags, _, ack, _) = check(&b[..len], BACKEND, LOCAL);
    assert_eq!((flags, ack), (Flags::ACK, client_isn + 1 + REQUEST.len() as u32 + 1));

    to_client(&mut b[..len]);
    assert_eq!(client_step(&mut b, len, CLIENT_MAC, &expect(), now), Ok(ClientStep::Closed));
    // The final ACK needs no answer on the backend side either.
    to_backend(&mut b[..len]);
    assert_eq!(serve(&mut b, len, BACKEND_MAC), Err(BadReason::UnexpectedSegment));
}

#[test]
fn isn_latency_survives_wrap_around() {
    let sent = (u64::from(u32::MAX) << ISN_SHIFT) - 640; // ten ticks before the 32-bit wrap
    assert_eq!(elapsed_cycles(isn(sent), sent + 6_400), 6_400);
}

#[test]
fn client_refuses_what_is_not_its_own() {
    let mut b = [0u8; FRAME_ROOM];
    let len = syn(&mut b, CLIENT_MAC, LB_MAC, CLIENT.0, CLIENT.1, VIP, 1 << 20);
    to_backend(&mut b[..len]);
    let len = serve(&mut b, len, BACKEND_MAC).unwrap();
    let synack = b;

    // Not from the VIP: the balancer forgot to rewrite the source.
    nat(&mut b[..len], (CLIENT_MAC, LB_MAC), BACKEND, CLIENT);
    assert_eq!(client_step(&mut b, len, CLIENT_MAC, &expect(), 1 << 21), Err(BadReason::WrongSource));

    // To an address outside the client space.
    b = synack;
    nat(&mut b[..len], (CLIENT_MAC, LB_MAC), (*VIP.ip(), VIP.port()), (Ipv4Addr::new(198, 18, 0, 99), 2000));
    assert_eq!(client_step(&mut b, len, CLIENT_MAC, &expect(), 1 << 21), Err(BadReason::UnknownDestination));

    // A corrupted segment.
    b = synack;
    to_client(&mut b[..len]);
    b[TCP_AT + 4] ^= 0x10;
    assert_eq!(client_step(&mut b, len, CLIENT_MAC, &expect(), 1 << 21), Err(BadReason::BadChecksum));

    // A reset.
    b = synack;
    let mut eth = ethernet::Frame::new_checked(&mut b[..len]).unwrap();
    let mut ip = ipv4::Packet::new_checked(eth.payload_mut()).unwrap();
    tcp::Packet::new_checked(ip.payload_mut()).unwrap().set_flags(Flags::RST | Flags::ACK);
    to_client(&mut b[..len]);
    assert_eq!(client_step(&mut b, len, CLIENT_MAC, &expect(), 1 << 21), Err(BadReason::Reset));
    assert_eq!(serve(&mut b, len, BACKEND_MAC), Err(BadReason::Reset));
}

#[test]
fn udp_is_not_tcp() {
    let mut b = crate::udp::tests::request_frame(64, crate::udp::Stamp { tsc: 1, seq: 1 });
    b.resize(FRAME_ROOM, 0);
    assert_eq!(serve(&mut b, 64, BACKEND_MAC), Err(BadReason::WrongProtocol));
}
