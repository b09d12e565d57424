//! Sessions against a snapshot that changed under them: a backend removed, down with
//! `on_failure = "remove"` or `"inhibit"`, a service removed. Ids in the lab's snapshot: DNS
//! backends 0..=2, web backends 3 and 4.

use super::*;
use crate::snapshot::{BackendState, VipIndex};
use crate::wire::tcp;

const WEB0: usize = 3;

/// An established web connection from `CLIENT` to the first web backend; its local endpoint.
fn established(lab: &mut Lab) -> Ep {
    let local = lab.syn(CLIENT, WEB_BACKENDS[0], 1000);
    lab.segment(WEB_BACKENDS[0], local, Flags::SYN | Flags::ACK, 1010);
    lab.segment(CLIENT, WEB, Flags::ACK, 1020);
    local
}

/// The client's next segment must come back as a reset from the VIP, checksums exact, and
/// the session and its port be gone.
fn assert_reset(lab: &mut Lab, now: u64) {
    let mut b = tcp_packet(CLIENT, WEB, 64, Flags::ACK | Flags::PSH, b"more", &[]);
    let Step::Reset { ip_len } = lab.process(&mut b, now) else { panic!("no reset") };
    let ip = &b[..ip_len];
    assert_checksums_exact(ip);
    let p = ipv4::Packet::new_checked(ip).unwrap();
    assert_eq!((p.src(), p.dst()), (WEB.0, CLIENT.0));
    let t = tcp::Packet::new_checked(p.payload()).unwrap();
    assert_eq!((t.src_port(), t.dst_port()), (WEB.1, CLIENT.1));
    assert!(t.flags().contains(Flags::RST));
    assert!(lab.session(protocol::TCP, CLIENT, WEB).is_none());
    assert_eq!(lab.free(WEB_LOCAL), PORTS, "the local port is back");
}

#[test]
fn a_removed_backend_resets_its_connections_but_its_last_replies_still_arrive() {
    let mut lab = Lab::new();
    let local = established(&mut lab);
    lab.snap.backends[WEB0].live = false;
    // A reply already on its way from the backend still reaches the client ...
    lab.segment(WEB_BACKENDS[0], local, Flags::ACK | Flags::PSH, 1030);
    // ... and the client's next segment gets a reset.
    assert_reset(&mut lab, 1040);
}

#[test]
fn a_down_backend_ends_connections_with_remove_and_keeps_them_with_inhibit() {
    let mut lab = Lab::new();
    established(&mut lab);
    lab.snap.backends[WEB0].state = BackendState::Down;
    lab.segment(CLIENT, WEB, Flags::ACK, 1030); // inhibit (the default): it goes on
    lab.snap.services[1].remove_on_failure = true;
    assert_reset(&mut lab, 1040);
}

#[test]
fn a_removed_service_resets_its_connections_and_its_datagrams_find_no_service() {
    let mut lab = Lab::new();
    established(&mut lab);
    lab.query(CLIENT, DNS_BACKENDS[0], 1000);
    lab.snap.services[1].live = false;
    lab.snap.services[0].live = false;
    lab.snap.vips = VipIndex::new(&lab.snap.services);
    assert_reset(&mut lab, 1040);
    let q = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    assert_eq!(lab.drop_reason(&q, 1050), DropReason::NoService);
    assert!(lab.session(protocol::UDP, CLIENT, DNS).is_none());
    assert_eq!(lab.free(DNS_LOCAL), PORTS);
}

#[test]
fn a_datagram_of_a_removed_backend_goes_to_another_and_its_last_reply_arrives() {
    let mut lab = Lab::new();
    let local = lab.query(CLIENT, DNS_BACKENDS[0], 1000);
    lab.snap.backends[0].live = false;
    let mut r = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, true, &[]);
    assert_eq!(lab.process(&mut r, 1010), Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
    assert_eq!(r, udp_packet(DNS, CLIENT, 63, ANSWER, true, &[]), "the answer in flight arrives");
    // The next datagram is scheduled afresh (rr goes on to the second backend).
    lab.query(CLIENT, DNS_BACKENDS[1], 1020);
    assert_eq!(lab.c.sessions_created.get(), 2);
}
