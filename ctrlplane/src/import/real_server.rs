//! One `real_server IP [PORT] { ... }` of a virtual server: its address, weight,
//! `inhibit_on_failure` and checkers, read into a `RealServer`; what Sluice has no place for
//! is reported here.

use std::net::SocketAddrV4;

use super::checker::{self, Check, Timers};
use super::diagnostic::Report;
use super::policy;
use super::syntax::Statement;
use super::values::{address, count, flag, port, Address};

/// The largest backend weight Sluice takes.
const MAX_WEIGHT: u64 = crate::api::MAX_WEIGHT as u64;

/// What the virtual server passes down to its real servers.
pub struct Defaults<'a> {
    pub vip: SocketAddrV4,
    pub timers: &'a Timers,
    /// keepalived's forwarding method of the virtual server ("NAT", "DR", "TUN").
    pub forwarding: &'a str,
}

#[derive(Debug)]
pub struct RealServer {
    pub line: usize,
    pub address: SocketAddrV4,
    pub weight: u32,
    /// `inhibit_on_failure` as written on the real server, with its line.
    pub inhibit: Option<(bool, usize)>,
    /// Its checkers that Sluice can run, first written first.
    pub checks: Vec<Check>,
    /// Whether any checker was written, carried over or not.
    pub has_checker: bool,
}

/// The real server, or `None` (reported) when it cannot be a backend.
pub fn read(statement: &Statement, defaults: &Defaults, report: &mut Report) -> Option<RealServer> {
    let line = statement.line;
    let head = statement.head();
    let written_ip = statement.args.first().map(String::as_str).unwrap_or("");
    let ip = match address(written_ip) {
        Address::V4(ip) => ip,
        Address::V6 => {
            report.warning(line, format!("{head} not carried over: Sluice's backends are IPv4"));
            return None;
        }
        Address::Invalid => {
            report.warning(line, format!("{head} not carried over: {written_ip:?} is not an IP address"));
            return None;
        }
    };
    let vport = defaults.vip.port();
    let port = match statement.args.get(1).map(String::as_str) {
        None | Some("0") => vport,
        Some(text) => match port(text) {
            Some(p) if p != vport && defaults.forwarding != "NAT" => {
                report.note(
                    line,
                    format!(
                        "{head}: keepalived gives a {} real server the virtual server's port, so the backend is {ip}:{vport}",
                        defaults.forwarding
                    ),
                );
                vport
            }
            Some(p) => p,
            None => {
                report.warning(
                    line,
                    format!("{head}: {text:?} is not a port: the virtual server's port {vport} is used"),
                );
                vport
            }
        },
    };
    if statement.args.len() > 2 {
        report.warning(line, format!("{head}: the values after the port are not carried over"));
    }

    let mut server = RealServer {
        line,
        address: SocketAddrV4::new(ip, port),
        weight: 1,
        inhibit: None,
        checks: Vec::new(),
        has_checker: false,
    };
    let mut timers = defaults.timers.clone();
    let mut checkers = Vec::new();
    for child in statement.children() {
        if timers.read(child, report) {
            continue;
        }
        if checker::is_checker(&child.keyword) {
            checkers.push(child);
            continue;
        }
        setting(child, &mut server, report);
    }
    // Checkers take the real server's timers wherever those are written in its block.
    server.has_checker = !checkers.is_empty();
    for block in checkers {
        if let Some(check) = checker::read(block, port, &timers, report) {
            server.checks.push(check);
        }
    }
    if let Some((kept, others)) = server.checks.split_first() {
        for other in others {
            report.warning(
                other.line,
                format!(
                    "{} not carried over: Sluice runs one check per backend, the {} at line {} (keepalived needed every checker to pass)",
                    other.checker, kept.checker, kept.line
                ),
            );
        }
    }
    Some(server)
}

fn setting(statement: &Statement, server: &mut RealServer, report: &mut Report) {
    let line = statement.line;
    let keyword = statement.keyword.as_str();
    let value = statement.args.first().map(String::as_str).unwrap_or("");
    match keyword {
        "weight" => match count(value) {
            Some(w) if w > MAX_WEIGHT => {
                report.warning(line, format!("weight {w} is more than Sluice's largest, {MAX_WEIGHT}: {MAX_WEIGHT} is used"));
                server.weight = MAX_WEIGHT as u32;
            }
            Some(w) => server.weight = w as u32,
            None => report.warning(line, format!("weight {value:?} is not a number from 0 to {MAX_WEIGHT}: weight 1 is used")),
        },
        "inhibit_on_failure" => match flag(&statement.args) {
            Some(on) => server.inhibit = Some((on, line)),
            None => report.warning(line, format!("inhibit_on_failure {value:?} is not a boolean: ignored")),
        },
        "lb_kind" | "lvs_method" => policy::forwarding(statement, report),
        "notify_up" | "notify_down" => report.warning(
            line,
            format!("{keyword} script not run: Sluice runs no scripts; sluice_backend_up and the log show backends' changes"),
        ),
        "uthreshold" | "lthreshold" => report.warning(
            line,
            format!("{keyword} not carried over: Sluice limits the sessions of a service (max_sessions), not of one backend"),
        ),
        "alpha" => report.note(line, "alpha: Sluice starts every backend down until its checks pass, as alpha asks"),
        "warmup" => report.warning(line, "warmup not carried over: Sluice starts checking every backend at once"),
        "virtualhost" => {
            report.warning(line, "virtualhost not carried over: Sluice's http check sends the backend's address as Host")
        }
        _ => policy::common(statement, "real_server", report),
    }
}
