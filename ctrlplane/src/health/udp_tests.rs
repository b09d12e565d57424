//! udp checks against loopback responders: a reply with the expected prefix brings a backend
//! up; a port unreachable fails a check at once (not at its timeout); a wrong reply and
//! silence fail it too.

use std::time::{Duration, Instant};

use super::test_support::{closed_udp_port, run_until, spec, state, target, UdpResponder};
use super::{CheckSpec, Checker};
use crate::config::CheckKind;

fn ping_pong(interval_ms: u64, timeout_ms: u64) -> CheckSpec {
    CheckSpec {
        send: "ping".to_owned(),
        expect: "pong".to_owned(),
        ..spec(CheckKind::Udp, interval_ms, timeout_ms, 2, 2)
    }
}

#[test]
fn udp_rises_on_pong_and_falls_on_port_unreachable() {
    let responder = UdpResponder::start(b"pong from the test");
    let backend = responder.address;
    let mut checker = Checker::new();
    let started = Instant::now();
    checker.set_targets(vec![target("dns", backend, &ping_pong(50, 50))]);
    let (seen, done) = run_until(&mut checker, Duration::from_secs(3), |_, seen| !seen.is_empty());
    let rose = started.elapsed();
    assert!(done && seen[0].up, "{seen:?}");
    assert_eq!(seen[0].reason, "2 checks ok");
    assert_eq!(*responder.last.lock().unwrap(), b"ping");

    drop(responder);
    let closed = Instant::now();
    let (seen, done) = run_until(&mut checker, Duration::from_secs(3), |_, seen| !seen.is_empty());
    assert!(done, "no transition after the responder went");
    assert!(!seen[0].up);
    assert_eq!(seen[0].reason, "port unreachable");
    eprintln!("udp: up after {rose:?} (rise 2, interval 50ms), down after {:?} (fall 2)", closed.elapsed());
}

#[test]
fn a_preamble_leads_the_datagram() {
    let responder = UdpResponder::start(b"pong");
    let backend = responder.address;
    let mut checker = Checker::new();
    let spec = CheckSpec { preamble: b"\r\n\r\n\0\r\nQUIT\n\x20\0\0\0".to_vec(), ..ping_pong(50, 500) };
    checker.set_targets(vec![target("dns", backend, &spec)]);
    let (seen, done) = run_until(&mut checker, Duration::from_secs(3), |_, seen| !seen.is_empty());
    assert!(done && seen[0].up, "{seen:?}");
    assert_eq!(*responder.last.lock().unwrap(), b"\r\n\r\n\0\r\nQUIT\n\x20\0\0\0ping");
}

#[test]
fn port_unreachable_fails_at_once_not_at_the_timeout() {
    let backend = closed_udp_port();
    let mut checker = Checker::new();
    // A timeout of 5s: failures seen sooner can only come from the ICMP error.
    checker.set_targets(vec![target("dns", backend, &ping_pong(50, 5_000))]);
    let started = Instant::now();
    let (seen, done) = run_until(&mut checker, Duration::from_secs(2), |c, _| state(c, backend).2 >= 3);
    assert!(done, "three failures not within 2s: {:?}", state(&checker, backend));
    assert!(seen.is_empty(), "a new target is already down: {seen:?}");
    assert_eq!(state(&checker, backend).1, 0);
    eprintln!("udp: 3 port-unreachable failures in {:?} (interval 50ms)", started.elapsed());
}

#[test]
fn a_wrong_reply_fails() {
    let responder = UdpResponder::start(b"nope");
    let backend = responder.address;
    let mut checker = Checker::new();
    checker.set_targets(vec![target("dns", backend, &ping_pong(30, 30))]);
    let (seen, done) = run_until(&mut checker, Duration::from_secs(2), |c, _| state(c, backend).2 >= 3);
    assert!(done && seen.is_empty(), "{seen:?}");
    assert_eq!(state(&checker, backend).1, 0, "no check passed");

    // The same backend, once up, goes down on a wrong reply with that reason.
    responder.set_reply(Some(b"pong"));
    let (_, done) = run_until(&mut checker, Duration::from_secs(2), |c, _| state(c, backend).0);
    assert!(done, "never came up on pong");
    responder.set_reply(Some(b"PONG"));
    let (seen, done) = run_until(&mut checker, Duration::from_secs(2), |_, seen| !seen.is_empty());
    assert!(done && !seen[0].up, "{seen:?}");
    assert_eq!(seen[0].reason, "unexpected reply");
}

#[test]
fn silence_is_a_timeout() {
    let responder = UdpResponder::start(b"pong");
    let backend = responder.address;
    let mut checker = Checker::new();
    checker.set_targets(vec![target("dns", backend, &ping_pong(40, 25))]);
    let (_, done) = run_until(&mut checker, Duration::from_secs(2), |c, _| state(c, backend).0);
    assert!(done, "never came up");
    responder.set_reply(None);
    let (seen, done) = run_until(&mut checker, Duration::from_secs(2), |_, seen| !seen.is_empty());
    assert!(done && !seen[0].up, "{seen:?}");
    assert_eq!(seen[0].reason, "timeout after 25ms");
}
