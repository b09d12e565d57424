//! http checks against loopback responders: 200 brings a backend up with the documented
//! request; 500 and a malformed reply take it down; a server that accepts and never answers
//! times out, and while it hangs another target is still checked on schedule.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::test_support::{run_until, spec, state, target, HttpMode, HttpResponder};
use super::{CheckSpec, Checker};
use crate::config::CheckKind;

fn http(path: &str, interval_ms: u64, timeout_ms: u64) -> CheckSpec {
    CheckSpec {
        send: path.to_owned(),
        expect: "200".to_owned(),
        ..spec(CheckKind::Http, interval_ms, timeout_ms, 2, 2)
    }
}

#[test]
fn http_rises_on_200_and_falls_on_500() {
    let responder = HttpResponder::start(HttpMode::Status(200));
    let backend = responder.address;
    let mut checker = Checker::new();
    let started = Instant::now();
    checker.set_targets(vec![target("web", backend, &http("/healthz", 50, 50))]);
    let (seen, done) = run_until(&mut checker, Duration::from_secs(3), |_, seen| !seen.is_empty());
    let rose = started.elapsed();
    assert!(done && seen[0].up, "{seen:?}");
    let request = String::from_utf8(responder.last.lock().unwrap().clone()).unwrap();
    assert_eq!(
        request,
        format!("GET /healthz HTTP/1.0\r\nHost: {backend}\r\nUser-Agent: sluice-health\r\nConnection: close\r\n\r\n")
    );

    responder.set_mode(HttpMode::Status(500));
    let changed = Instant::now();
    let (seen, done) = run_until(&mut checker, Duration::from_secs(3), |_, seen| !seen.is_empty());
    assert!(done && !seen[0].up, "{seen:?}");
    assert_eq!(seen[0].reason, "status 500");
    eprintln!("http: up after {rose:?} (rise 2, interval 50ms), down on 500 after {:?}", changed.elapsed());
}

#[test]
fn a_reply_that_is_not_http_fails_without_harm() {
    let responder = HttpResponder::start(HttpMode::Raw(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()));
    let backend = responder.address;
    let mut checker = Checker::new();
    checker.set_targets(vec![target("web", backend, &http("/", 30, 30))]);
    let (seen, done) = run_until(&mut checker, Duration::from_secs(2), |c, _| state(c, backend).2 >= 2);
    assert!(done && seen.is_empty(), "{seen:?}");

    responder.set_mode(HttpMode::Status(200));
    let (_, done) = run_until(&mut checker, Duration::from_secs(2), |c, _| state(c, backend).0);
    assert!(done, "never came up");
    for (junk, reason) in [
        (vec![0xffu8; 10_000], "malformed status line"),
        (b"HTTP/1.1 20".to_vec(), "malformed status line"),
        (Vec::new(), "connection closed without reply"),
    ] {
        responder.set_mode(HttpMode::Raw(junk));
        let (seen, done) = run_until(&mut checker, Duration::from_secs(2), |_, seen| !seen.is_empty());
        assert!(done && !seen[0].up, "{seen:?}");
        assert_eq!(seen[0].reason, reason);
        responder.set_mode(HttpMode::Status(200));
        let (_, done) = run_until(&mut checker, Duration::from_secs(2), |c, _| state(c, backend).0);
        assert!(done, "never came back up");
    }
}

#[test]
fn a_server_that_never_answers_times_out_without_delaying_others() {
    let stuck = HttpResponder::start(HttpMode::Status(200));
    let fast = HttpResponder::start(HttpMode::Status(200));
    let mut checker = Checker::new();
    checker.set_targets(vec![
        // Once silent, each check of the stuck target hangs for 2 s, its whole interval.
        target("web", stuck.address, &http("/", 2000, 2000)),
        target("web", fast.address, &http("/", 100, 100)),
    ]);
    let both_up = |c: &Checker, _: &[_]| state(c, stuck.address).0 && state(c, fast.address).0;
    let (_, done) = run_until(&mut checker, Duration::from_secs(10), both_up);
    assert!(done, "not both up");

    stuck.set_mode(HttpMode::Silent);
    let accepted = stuck.accepted.load(Ordering::Relaxed);
    // A check of the stuck server begins, and hangs.
    let (mut seen, done) =
        run_until(&mut checker, Duration::from_secs(30), |_, _| stuck.accepted.load(Ordering::Relaxed) > accepted);
    assert!(done, "the stuck server was never reached");
    let hanging = stuck.accepted.load(Ordering::Relaxed);
    let fast_before = state(&checker, fast.address).1;
    let started = Instant::now();
    // Eight checks of the fast target meanwhile. Were checks taken one after the other, each
    // would wait for a hanging check of the stuck one, and the stuck server would be connected
    // to about as often; side by side, the one hanging check spans them (two at most, as it
    // may end just before the eighth).
    let (more, done) =
        run_until(&mut checker, Duration::from_secs(30), |c, _| state(c, fast.address).1 >= fast_before + 8);
    seen.extend(more);
    assert!(done, "the fast target never passed 8 more checks");
    let during = stuck.accepted.load(Ordering::Relaxed) - hanging;
    eprintln!(
        "http: 8 checks of the fast target in {:?}, {during} more check(s) of the stuck one begun",
        started.elapsed()
    );
    assert!(during <= 1, "{during} checks of the stuck server began during 8 of the fast one");

    let (more, done) = run_until(&mut checker, Duration::from_secs(30), |c, _| !state(c, stuck.address).0);
    assert!(done, "the stuck target never went down");
    seen.extend(more);
    let stuck_down: Vec<_> = seen.iter().filter(|t| t.backend == stuck.address).collect();
    assert_eq!(stuck_down.len(), 1, "{seen:?}");
    assert!(!stuck_down[0].up);
    assert!(stuck_down[0].reason.starts_with("timeout after"), "{}", stuck_down[0].reason);
    assert!(seen.iter().all(|t| t.backend != fast.address), "the fast target flapped: {seen:?}");
    assert_eq!(state(&checker, fast.address).2, 0);
}
