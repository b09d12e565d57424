//! Quorum, on_failure and the scheduler: where keepalived and Sluice count differently.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::super::diagnostic::{Report, Severity};
use super::super::real_server::RealServer;
use super::super::syntax::Statement;
use super::*;

fn servers(weights: &[u32], inhibits: &[Option<bool>]) -> Vec<RealServer> {
    weights
        .iter()
        .zip(inhibits)
        .enumerate()
        .map(|(i, (&weight, inhibit))| RealServer {
            line: 10 + i,
            address: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2 + i as u8), 80),
            weight,
            inhibit: inhibit.map(|on| (on, 10 + i)),
            checks: Vec::new(),
            has_checker: false,
        })
        .collect()
}

fn statement(keyword: &str, value: &str) -> Statement {
    Statement { line: 3, keyword: keyword.to_owned(), args: vec![value.to_owned()], block: None }
}

#[test]
fn quorum_of_unit_weights_is_a_count() {
    let mut report = Report::new("k.conf");
    assert_eq!(min_active(Some((3, 5)), &servers(&[1, 1, 1, 1], &[None; 4]), &mut report), 3);
    assert_eq!(min_active(None, &servers(&[1, 1], &[None; 2]), &mut report), 1);
    let found = report.finish();
    assert_eq!(found.len(), 1, "only what min_active means more than quorum: {found:?}");
    assert!(found[0].message.starts_with("quorum becomes min_active, which means more"), "{}", found[0]);
}

/// The diagnostics of `report` but the one every quorum gets.
fn besides_meaning(report: Report) -> Vec<crate::import::Diagnostic> {
    report.finish().into_iter().filter(|d| !d.message.starts_with("quorum becomes min_active")).collect()
}

#[test]
fn quorum_of_weights_takes_the_fewest_heaviest_backends() {
    let mut report = Report::new("k.conf");
    assert_eq!(min_active(Some((5, 5)), &servers(&[1, 4, 2], &[None; 3]), &mut report), 2);
    let found = besides_meaning(report);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Warning);
}

#[test]
fn quorum_above_the_total_weight_is_lowered_as_keepalived_does() {
    let mut report = Report::new("k.conf");
    assert_eq!(min_active(Some((9, 5)), &servers(&[1, 1], &[None; 2]), &mut report), 2);
    let found = besides_meaning(report);
    assert!(found[0].message.contains("keepalived lowers it to 2"), "{}", found[0]);
}

#[test]
fn quorum_of_equal_weights_divides() {
    let mut report = Report::new("k.conf");
    assert_eq!(min_active(Some((5, 5)), &servers(&[2, 2, 2, 2], &[None; 4]), &mut report), 3);
    assert_eq!(besides_meaning(report)[0].severity, Severity::Note);
}

#[test]
fn on_failure_follows_inhibit_on_failure_of_every_real_server() {
    let mut report = Report::new("k.conf");
    assert_eq!(on_failure(None, &servers(&[1, 1], &[None, None]), 1, &mut report), "remove");
    assert_eq!(on_failure(Some((true, 2)), &servers(&[1, 1], &[None, None]), 1, &mut report), "inhibit");
    assert_eq!(on_failure(Some((true, 2)), &servers(&[1, 1], &[None, Some(false)]), 1, &mut report), "inhibit");
    let found = report.finish();
    assert_eq!(found.len(), 1, "only the mixed case is reported");
    assert!(found[0].message.starts_with("inhibit_on_failure is set on 1 of 2 real servers"), "{}", found[0]);
}

#[test]
fn schedulers_map_and_report_what_changes() {
    let mut report = Report::new("k.conf");
    let mapped: Vec<&str> = ["rr", "wrr", "wlc", "sh", "lc", "mh", "dh", "nq", "fo", "loadbalance"]
        .iter()
        .map(|name| scheduler(&statement("lb_algo", name), &mut report))
        .collect();
    assert_eq!(mapped, ["rr", "wrr", "wlc", "sh", "wlc", "sh", "sh", "wlc", "wrr", "wlc"]);
    let severities: Vec<Severity> = report.finish().iter().map(|d| d.severity).collect();
    // lc and mh are notes; dh, nq, fo and an unknown name are warnings (merged by message).
    assert_eq!(severities.iter().filter(|&&s| s == Severity::Note).count(), 2);
    assert_eq!(severities.iter().filter(|&&s| s == Severity::Warning).count(), 4);
}
