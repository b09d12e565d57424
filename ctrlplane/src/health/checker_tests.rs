//! The checker against real loopback sockets: tcp checks rise against a listener after `rise`
//! checks and fall when it closes after `fall`, a first check runs at once (not an interval
//! later), `set_targets` keeps the targets that stay, and 300 targets all settle, each with
//! the checks it needs (its refused ports held by sockets that never listen, so that no other
//! socket can take one meanwhile). Also `Transition`'s log line and `CheckSpec::from_config`.
//! Conditions are polled with generous deadlines: how fast checks run is the benchmarks'
//! business.

use std::time::{Duration, Instant};

use super::test_support::{listener, refusing, run_until, spec, state, target};
use super::{CheckSpec, Checker, Transition};
use crate::config::{CheckKind, Health};

#[test]
fn tcp_rises_against_a_listener_and_falls_when_it_closes() {
    let (listening, backend) = listener();
    let check = spec(CheckKind::Tcp, 50, 50, 3, 2);
    let mut checker = Checker::new();
    let started = Instant::now();
    checker.set_targets(vec![target("web", backend, &check)]);

    let (seen, done) = run_until(&mut checker, Duration::from_secs(10), |_, seen| !seen.is_empty());
    let rose = started.elapsed();
    assert!(done, "no transition within 10s");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].up);
    assert_eq!(seen[0].reason, "3 checks ok");
    assert_eq!(state(&checker, backend), (true, 3, 0), "up after exactly `rise` checks");

    drop(listening);
    let closed = Instant::now();
    let (seen, done) = run_until(&mut checker, Duration::from_secs(10), |_, seen| !seen.is_empty());
    let fell = closed.elapsed();
    assert!(done, "no transition within 10s of closing");
    assert_eq!(seen[0].to_string(), format!("service=web backend={backend} up -> down reason=\"connection refused\""));
    let (up, _, failed) = state(&checker, backend);
    assert!(!up);
    assert_eq!(failed, 2, "down after exactly `fall` failures");
    eprintln!("tcp: up after {rose:?} (rise 3, interval 50ms), down after {fell:?} (fall 2)");
}

#[test]
fn first_check_runs_at_once_not_after_an_interval() {
    let (_listening, backend) = listener();
    let mut checker = Checker::new();
    let started = Instant::now();
    checker.set_targets(vec![target("web", backend, &spec(CheckKind::Tcp, 10_000, 1_000, 1, 1))]);
    // With a 10 s interval, a first check an interval late could not land within this deadline.
    let (seen, done) = run_until(&mut checker, Duration::from_secs(5), |_, seen| !seen.is_empty());
    assert!(done && seen[0].up, "no first check within 5s: {seen:?}");
    assert_eq!(seen[0].reason, "1 check ok");
    eprintln!("first check after {:?} (interval 10s)", started.elapsed());
}

#[test]
fn set_targets_keeps_targets_that_stay_and_starts_new_ones_down() {
    let (_a, first) = listener();
    let (_b, second) = listener();
    let check = spec(CheckKind::Tcp, 30, 30, 2, 2);
    let mut checker = Checker::new();
    checker.set_targets(vec![target("web", first, &check)]);
    let (_, done) = run_until(&mut checker, Duration::from_secs(3), |c, _| state(c, first).0);
    assert!(done, "first target never came up");
    let before = state(&checker, first);

    // A reload that keeps the first target (listed twice) and adds the second.
    let kept = target("web", first, &check);
    checker.set_targets(vec![kept.clone(), target("web", second, &check), kept]);
    assert_eq!(checker.len(), 2, "a target listed twice is checked once");
    assert_eq!(state(&checker, first), before, "the target that stays keeps its state");
    assert_eq!(state(&checker, second), (false, 0, 0), "the new target starts down");

    let (seen, done) = run_until(&mut checker, Duration::from_secs(3), |c, _| state(c, second).0);
    assert!(done, "second target never came up");
    assert_eq!(seen.len(), 1, "only the new target changes: {seen:?}");
    assert_eq!(seen[0].backend, second);
    let (up, ok, failed) = state(&checker, first);
    assert!(up && ok > before.1 && failed == 0);

    // The same backend with another check keeps its state (up stays up, as keepalived keeps
    // it), and goes on with the new check.
    let mut slower = check.clone();
    slower.interval = Duration::from_millis(60);
    slower.timeout = Duration::from_millis(60);
    let before = state(&checker, first);
    checker.set_targets(vec![target("web", first, &slower), target("web", second, &check)]);
    assert_eq!(state(&checker, first), before, "state and counters stay");
    assert!(state(&checker, second).0);
    let (changes, _) = run_until(&mut checker, Duration::from_secs(5), |c, _| state(c, first).1 >= before.1 + 3);
    assert!(changes.is_empty(), "no transition for a changed check: {changes:?}");
    assert!(state(&checker, first).0);

    // A service that is dropped takes its targets with it.
    checker.set_targets(vec![target("web", second, &check)]);
    assert_eq!(checker.states().count(), 1);
}

#[test]
fn hundreds_of_targets_all_settle() {
    const OPEN: usize = 200;
    const CLOSED: usize = 100;
    let (interval, timeout) = (200, 200);
    let check = spec(CheckKind::Tcp, interval, timeout, 2, 2);
    let listeners: Vec<_> = (0..OPEN).map(|_| listener()).collect();
    // Ports held by sockets that never listen: refused all along, and no other socket's.
    let holders: Vec<_> = (0..CLOSED).map(|_| refusing()).collect();
    let closed: Vec<_> = holders.iter().map(|(_, backend)| *backend).collect();
    let mut targets: Vec<_> = listeners.iter().map(|(_, backend)| target("many", *backend, &check)).collect();
    targets.extend(closed.iter().map(|backend| target("many", *backend, &check)));

    let mut checker = Checker::new();
    let started = Instant::now();
    checker.set_targets(targets);
    assert_eq!(checker.len(), OPEN + CLOSED);
    let settled = |checker: &Checker, _: &[Transition]| {
        let (mut up, mut down) = (0, 0);
        for (_, _, is_up, ok, failed) in checker.states() {
            if is_up {
                up += 1;
            } else if ok == 0 && failed >= 2 {
                down += 1;
            }
        }
        up == OPEN && down == CLOSED
    };
    let (seen, done) = run_until(&mut checker, Duration::from_secs(30), settled);
    let took = started.elapsed();
    assert!(done, "300 targets not settled within 30s");
    assert_eq!(seen.len(), OPEN, "one transition per listener, none for closed ports");
    assert!(seen.iter().all(|t| t.up && listeners.iter().any(|(_, b)| *b == t.backend)));
    eprintln!("300 tcp targets ({OPEN} up, {CLOSED} refused, rise 2, interval {interval}ms): settled in {took:?}");
}

#[test]
fn transition_renders_one_structured_line() {
    let up = Transition {
        service: "dns".to_owned(),
        backend: "198.18.1.2:53".parse().unwrap(),
        up: true,
        reason: "3 checks ok".to_owned(),
    };
    assert_eq!(up.to_string(), r#"service=dns backend=198.18.1.2:53 down -> up reason="3 checks ok""#);
    let down = Transition { up: false, reason: "say \"hi\"\n\\".to_owned(), ..up };
    assert_eq!(down.to_string(), r#"service=dns backend=198.18.1.2:53 up -> down reason="say \"hi\"\u{a}\\""#);
}

#[test]
fn check_spec_from_config() {
    assert_eq!(CheckSpec::from_config(&Health::default()), None);
    let http = Health { check: CheckKind::Http, ..Health::default() };
    let spec = CheckSpec::from_config(&http).unwrap();
    assert_eq!((spec.send.as_str(), spec.expect.as_str()), ("/", "200"));
    assert_eq!((spec.interval, spec.timeout, spec.rise, spec.fall), (http.interval, http.timeout, 2, 2));
    let udp =
        Health { check: CheckKind::Udp, send: "ping".into(), expect: "pong".into(), rise: 3, ..Health::default() };
    let spec = CheckSpec::from_config(&udp).unwrap();
    assert_eq!((spec.kind, spec.send.as_str(), spec.expect.as_str(), spec.rise), (CheckKind::Udp, "ping", "pong", 3));
}
