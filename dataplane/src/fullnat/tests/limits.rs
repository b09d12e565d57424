//! Defence before anything is allocated: allow and deny prefixes, session and rate limits.

use super::*;
use crate::snapshot::{Limits, Prefixes};

fn datagram(lab: &mut Lab, from: Ep, now: u64) -> Step {
    let mut b = udp_packet(from, DNS, 64, QUERY, true, &[]);
    lab.process(&mut b, now)
}

#[test]
fn deny_comes_first_and_allow_names_who_may_open() {
    let mut lab = Lab::new();
    lab.snap.services[0].deny = Prefixes::new([(ip(0, 48), 29)]); // .48 - .55: CLIENT .50 in it
    assert_eq!(datagram(&mut lab, CLIENT, 1000), Step::Drop(DropReason::Denied));
    lab.snap.services[0].allow = Prefixes::new([(ip(0, 0), 24)]);
    assert_eq!(datagram(&mut lab, CLIENT, 1000), Step::Drop(DropReason::Denied), "deny wins over allow");
    lab.snap.services[0].deny = Prefixes::default();
    assert!(matches!(datagram(&mut lab, CLIENT, 1000), Step::Forward { .. }));
    assert_eq!(datagram(&mut lab, FAR_CLIENT, 1000), Step::Drop(DropReason::Denied), "outside allow");
    assert!(lab.nat.sessions().len() == 1, "nothing allocated for the refused");

    // Established sessions are not asked again (a reload that denies their client leaves them).
    lab.snap.services[0].deny = Prefixes::new([(CLIENT.0, 32)]);
    assert!(matches!(datagram(&mut lab, CLIENT, 1001), Step::Forward { .. }));
}

#[test]
fn max_sessions_counts_the_services_sessions() {
    let mut lab = Lab::new();
    lab.snap.services[0].limits = Limits { max_sessions: 3, ..Limits::default() };
    let opened =
        (0..5).filter(|&i| matches!(datagram(&mut lab, client(41000 + i), 1000), Step::Forward { .. })).count();
    assert_eq!(opened, 3);
    assert_eq!(datagram(&mut lab, client(42000), 1000), Step::Drop(DropReason::LimitSessions));
    assert!(matches!(datagram(&mut lab, client(41000), 1000), Step::Forward { .. }), "its own flows go on");
}

#[test]
fn new_sessions_a_second_for_the_service_and_for_each_client() {
    let mut lab = Lab::new();
    lab.snap.services[0].limits = Limits { new_sessions_per_second: 4, ..Limits::default() };
    let opened =
        (0..10).filter(|&i| matches!(datagram(&mut lab, client(41000 + i), 1000), Step::Forward { .. })).count();
    assert_eq!(opened, 4);
    assert_eq!(datagram(&mut lab, client(42000), 1999), Step::Drop(DropReason::LimitRate));
    assert!(matches!(datagram(&mut lab, client(42000), 2000), Step::Forward { .. }), "the next second");

    let mut lab = Lab::new();
    lab.snap.services[0].limits = Limits { per_client_new_sessions_per_second: 2, ..Limits::default() };
    let from_one =
        (0..5).filter(|&i| matches!(datagram(&mut lab, client(41000 + i), 1000), Step::Forward { .. })).count();
    assert_eq!(from_one, 2);
    assert!(matches!(datagram(&mut lab, FAR_CLIENT, 1000), Step::Forward { .. }), "another client has its own");
}
