//! The SYN proxy: cookies answer SYNs, only a valid ACK opens a session and the backend's
//! handshake, and the two handshakes' numbers are mapped for the session's life.

use super::*;
use crate::fullnat::{Emit, Extra};
use crate::nat::syn::{self, Options};
use crate::wire::tcp::Packet as Tcp;

const ISN: u32 = 0xffff_ff00;
const B_ISN: u32 = 900_000;
const TSVAL: u32 = 5000;

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.snap.services[1].synproxy = true;
    lab
}

#[allow(clippy::too_many_arguments)]
fn seg(from: Ep, to: Ep, seq: u32, ack: u32, flags: Flags, window: u16, options: &[u8], data: &[u8]) -> Vec<u8> {
    let repr =
        crate::wire::tcp::Repr { src_port: from.1, dst_port: to.1, seq, ack, flags, window, options, payload: data };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut l4, from.0, to.0);
    ip_packet(from.0, to.0, protocol::TCP, 64, &[], &l4)
}

fn ts(val: u32, ecr: u32) -> Vec<u8> {
    Options::timestamp(Some((val, ecr))).as_slice().to_vec()
}

/// The client's SYN (Linux's options) answered; returns the cookie and Sluice's timestamp.
fn syn(lab: &mut Lab) -> (u32, u32) {
    let options = Options::syn(1460, Some(7), true, Some((TSVAL, 0)));
    let mut b = seg(CLIENT, WEB, ISN, 0, Flags::SYN, 64240, options.as_slice(), b"");
    let Step::Answer { ip_len } = lab.process(&mut b, 1000) else { panic!("no answer") };
    let answer = &b[..ip_len];
    assert_checksums_exact(answer);
    let t = Tcp::new_checked(&answer[20..]).unwrap();
    assert_eq!(
        (t.src_port(), t.dst_port(), t.ack(), t.flags()),
        (WEB.1, CLIENT.1, ISN.wrapping_add(1), Flags::SYN | Flags::ACK)
    );
    assert!(lab.nat.sessions().is_empty(), "a SYN keeps nothing");
    let (our_ts, echo) = syn::timestamp(answer).expect("timestamps answered");
    assert_eq!(echo, TSVAL);
    (t.seq(), our_ts)
}

/// The client's ACK with the cookie: a session, the SYN to the backend, the ACK held.
fn ack(lab: &mut Lab, cookie: u32, our_ts: u32) -> (Emit, Ep, Ep) {
    let mut b =
        seg(CLIENT, WEB, ISN.wrapping_add(1), cookie.wrapping_add(1), Flags::ACK, 502, &ts(TSVAL + 1, our_ts), b"");
    let Step::ForwardExtra { .. } = lab.process(&mut b, 1001) else { panic!("not opened") };
    let Some(Extra::Hold { first: Some(syn), .. }) = lab.nat.take_extra() else { panic!("no SYN to the backend") };
    let s = lab.session(protocol::TCP, CLIENT, WEB).expect("a session");
    (syn, (s.local.ip, s.local.port), (s.backend.ip, s.backend.port))
}

#[test]
fn only_a_valid_cookie_opens_and_the_backend_handshake_carries_the_clients_options() {
    let mut lab = lab();
    let (cookie, our_ts) = syn(&mut lab);
    for forged in [cookie.wrapping_add(2), cookie ^ 0x100, 12345] {
        let b = seg(CLIENT, WEB, ISN.wrapping_add(1), forged, Flags::ACK, 502, &ts(TSVAL + 1, our_ts), b"");
        assert_eq!(lab.drop_reason(&b, 1001), DropReason::SynproxyBadCookie);
    }
    assert!(lab.nat.sessions().is_empty());
    assert_eq!(lab.c.services[1].synproxy.iter().map(|c| c.get()).collect::<Vec<_>>(), [1, 0, 3]);

    let (syn, local, backend) = ack(&mut lab, cookie, our_ts);
    assert_eq!(
        (syn.segment.src, syn.segment.dst, syn.segment.seq, syn.segment.flags),
        (local, backend, ISN, Flags::SYN)
    );
    assert_eq!(
        syn.segment.options,
        Options::syn(1460, Some(7), true, Some((TSVAL + 1, 0))),
        "the client's own options"
    );
    assert_eq!(lab.c.services[1].synproxy[1].get(), 1);
}

#[test]
fn the_backends_answer_completes_the_handshake_and_numbers_map_both_ways() {
    let mut lab = lab();
    let (cookie, our_ts) = syn(&mut lab);
    let (_, local, backend) = ack(&mut lab, cookie, our_ts);
    let id = lab.session_id(protocol::TCP, CLIENT, WEB).unwrap();

    // The client's request while the backend's handshake is under way: held as it came.
    let mut request = seg(
        CLIENT,
        WEB,
        ISN.wrapping_add(1),
        cookie.wrapping_add(1),
        Flags::ACK | Flags::PSH,
        502,
        &ts(TSVAL + 2, our_ts),
        b"GET /",
    );
    let held = request.clone();
    assert!(matches!(lab.process(&mut request, 1002), Step::ForwardExtra { .. }));
    assert_eq!(lab.nat.take_extra(), Some(Extra::Hold { session: id, first: None }));
    assert_eq!(request, held, "held untouched, to go through again");

    // The backend's SYN+ACK (window scale 9, its own clock): absorbed, our ACK completes it.
    let options = Options::syn(1400, Some(9), true, Some((70, TSVAL + 1)));
    let mut syn_ack =
        seg(backend, local, B_ISN, ISN.wrapping_add(1), Flags::SYN | Flags::ACK, 65535, options.as_slice(), b"");
    assert_eq!(lab.process(&mut syn_ack, 1003), Step::Absorbed);
    let Some(Extra::Release { session, first }) = lab.nat.take_extra() else { panic!("not released") };
    assert_eq!(session, id);
    assert_eq!(
        (first.segment.seq, first.segment.ack, first.segment.flags),
        (ISN.wrapping_add(1), B_ISN + 1, Flags::ACK)
    );
    assert_eq!(first.segment.options, Options::timestamp(Some((TSVAL + 1, 70))));

    // The held request, again: acknowledgement and timestamp echo in the backend's numbers.
    let mut again = held.clone();
    assert!(matches!(lab.process(&mut again, 1004), Step::Forward { offload: None, .. }));
    assert_checksums_exact(&again);
    let t = Tcp::new_checked(&again[20..]).unwrap();
    assert_eq!((t.ack(), t.payload()), (B_ISN + 1, &b"GET /"[..]));
    assert_eq!(syn::timestamp(&again), Some((TSVAL + 2, 70)));

    // The answer: sequence number and timestamp in Sluice's, window in the client's scale.
    let mut answer = seg(
        backend,
        local,
        B_ISN + 1,
        ISN.wrapping_add(6),
        Flags::ACK | Flags::PSH,
        100,
        &ts(75, TSVAL + 2),
        b"200 OK",
    );
    assert!(matches!(lab.process(&mut answer, 1005), Step::Forward { .. }));
    assert_checksums_exact(&answer);
    let t = Tcp::new_checked(&answer[20..]).unwrap();
    assert_eq!((t.seq(), t.window()), (cookie.wrapping_add(1), 400), "100 << 9 >> 7");
    assert_eq!(syn::timestamp(&answer), Some((our_ts.wrapping_add(5), TSVAL + 2)));
}

#[test]
fn a_backend_that_refuses_or_never_answers_resets_the_client() {
    let mut lab = lab();
    let (cookie, our_ts) = syn(&mut lab);
    let (syn, local, backend) = ack(&mut lab, cookie, our_ts);
    let mut rst = seg(backend, local, 0, ISN.wrapping_add(1), Flags::RST | Flags::ACK, 0, &[], b"");
    assert_eq!(lab.process(&mut rst, 1002), Step::Absorbed);
    let Some(Extra::First(reset)) = lab.nat.take_extra() else { panic!("no reset") };
    assert_eq!(
        (reset.segment.dst, reset.segment.seq, reset.segment.flags),
        (CLIENT, cookie.wrapping_add(1), Flags::RST)
    );
    assert!(lab.session(protocol::TCP, CLIENT, WEB).is_none());

    // Another client whose backend stays silent: the SYN again after 1, 2 and 4 s, then a reset.
    let other = client(40404);
    let options = Options::syn(1460, None, false, Some((TSVAL, 0)));
    let mut b = seg(other, WEB, ISN, 0, Flags::SYN, 64240, options.as_slice(), b"");
    let Step::Answer { ip_len } = lab.process(&mut b, 2000) else { panic!() };
    let (cookie, our_ts) = (Tcp::new_checked(&b[20..ip_len]).unwrap().seq(), syn::timestamp(&b[..ip_len]).unwrap().0);
    let mut b = seg(other, WEB, ISN.wrapping_add(1), cookie.wrapping_add(1), Flags::ACK, 502, &ts(TSVAL, our_ts), b"");
    lab.process(&mut b, 2000);
    assert!(matches!(lab.nat.take_extra(), Some(Extra::Hold { first: Some(_), .. })));
    let (mut syns, mut resets, mut out) = (1, 0, Vec::new());
    for now in (2100..20_000).step_by(100) {
        out.clear();
        lab.nat.resend_headers(now, &lab.c, &mut out);
        syns += out.iter().filter(|e| e.segment.flags == Flags::SYN).count();
        resets += out.iter().filter(|e| e.segment.flags == Flags::RST && e.segment.dst == other).count();
    }
    assert_eq!((syns, resets), (usize::from(crate::fullnat::synproxied::MAX_SYNS), 1));
    assert!(lab.session(protocol::TCP, other, WEB).is_none());
    let _ = syn;
}

#[test]
fn without_timestamps_only_the_mss_is_offered() {
    let mut lab = lab();
    let mut b = seg(CLIENT, WEB, ISN, 0, Flags::SYN, 64240, Options::syn(1460, Some(7), true, None).as_slice(), b"");
    let Step::Answer { ip_len } = lab.process(&mut b, 1000) else { panic!() };
    let t = Tcp::new_checked(&b[20..ip_len]).unwrap();
    assert_eq!(t.options(), Options::syn(1460, None, false, None).as_slice());
}

#[test]
fn with_proxy_v2_the_header_follows_the_proxys_handshake_and_both_shifts_apply() {
    let mut lab = lab();
    lab.snap.services[1].client_address = ClientAddress::ProxyV2;
    let (cookie, our_ts) = syn(&mut lab);
    let (_, local, backend) = ack(&mut lab, cookie, our_ts);
    let held =
        seg(CLIENT, WEB, ISN.wrapping_add(1), cookie.wrapping_add(1), Flags::ACK, 502, &ts(TSVAL + 1, our_ts), b"");
    let options = Options::syn(1460, Some(7), true, Some((70, TSVAL + 1)));
    let mut syn_ack =
        seg(backend, local, B_ISN, ISN.wrapping_add(1), Flags::SYN | Flags::ACK, 65535, options.as_slice(), b"");
    assert_eq!(lab.process(&mut syn_ack, 1003), Step::Absorbed);
    assert!(matches!(lab.nat.take_extra(), Some(Extra::Release { .. })));

    // The held ACK, again: the PROXY header first (at the client's first byte, acknowledging
    // the backend's), then the ACK 28 bytes on, its acknowledgement in the backend's numbers.
    let mut again = held.clone();
    assert!(matches!(lab.process(&mut again, 1004), Step::ForwardExtra { .. }));
    let Some(Extra::First(header)) = lab.nat.take_extra() else { panic!("no header") };
    assert_eq!((header.segment.seq, header.segment.ack), (ISN.wrapping_add(1), B_ISN + 1));
    assert!(header.payload().is_some());
    let t = Tcp::new_checked(&again[20..]).unwrap();
    assert_eq!((t.seq(), t.ack()), (ISN.wrapping_add(29), B_ISN + 1));
    assert_checksums_exact(&again);

    // The backend acknowledges the header and 5 bytes: the client sees its 5, in its numbers.
    let mut answer = seg(backend, local, B_ISN + 1, ISN.wrapping_add(34), Flags::ACK, 100, &ts(75, TSVAL + 2), b"hi");
    assert!(matches!(lab.process(&mut answer, 1005), Step::Forward { .. }));
    let t = Tcp::new_checked(&answer[20..]).unwrap();
    assert_eq!((t.seq(), t.ack()), (cookie.wrapping_add(1), ISN.wrapping_add(6)));
    assert_checksums_exact(&answer);
}

#[test]
fn with_toa_the_syn_ack_leaves_room_for_the_option() {
    let mut lab = lab();
    lab.snap.services[1].client_address = ClientAddress::Toa;
    let mut b = seg(CLIENT, WEB, ISN, 0, Flags::SYN, 64240, Options::syn(1460, None, false, None).as_slice(), b"");
    let Step::Answer { ip_len } = lab.process(&mut b, 1000) else { panic!() };
    assert_eq!(Tcp::new_checked(&b[20..ip_len]).unwrap().options(), Options::syn(1452, None, false, None).as_slice());
}
