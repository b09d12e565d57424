//! `client_address = "proxy-v2"` on UDP: what `process` asks of the worker.

use super::*;
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
    assert_eq!(step, Step::ForwardWithHeader { hop, header, service: 0 });
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
    assert!(matches!(lab.process(&mut q, 1000), Step::ForwardWithHeader { .. }));
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
    assert!(matches!(lab.process(&mut b, 1000), Step::ForwardWithHeader { .. }), "exactly the MTU with the header");

    let big = with_df(udp_packet(client(40001), DNS, 64, &[7u8; 1000 - 28 - 27], true, &[]));
    let mut b = big.clone();
    assert_eq!(lab.process(&mut b, 1000), Step::TooBig { mtu: 1000 - 28, service: 0 });
    assert_eq!(b, big, "left as it came, for the ICMP error to quote");

    let mut may_split = udp_packet(client(40002), DNS, 64, &[7u8; 1400], true, &[]);
    assert!(matches!(lab.process(&mut may_split, 1000), Step::ForwardWithHeader { .. }));
}
