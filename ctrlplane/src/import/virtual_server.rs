//! One `virtual_server IP PORT { ... }` into one Sluice `[[service]]`: its identity (VIP,
//! port, protocol, a name made of them), its settings, its real servers and the health check
//! they share. Virtual servers Sluice cannot express (fwmark, group, IPv6, no port, SCTP) are
//! left out whole, with the reason.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::checker::Timers;
use super::diagnostic::Report;
use super::draft::{Backend, Service};
use super::policy;
use super::real_server::{self, Defaults, RealServer};
use super::syntax::Statement;
use super::values::{address, count, flag, port, Address};

/// What the virtual servers of one file must not share.
#[derive(Default)]
pub struct Taken {
    /// (VIP, protocol) to the line of the virtual server that has it.
    listeners: HashMap<(SocketAddrV4, &'static str), usize>,
    names: Vec<String>,
}

/// The settings of a virtual server, read before its real servers (which inherit them
/// wherever they are written in the block).
struct Settings {
    timers: Timers,
    scheduler: &'static str,
    /// keepalived's forwarding method, "NAT" unless written.
    forwarding: String,
    forwarding_written: bool,
    ops: Option<usize>,
    /// A quorum script that turns on one-packet scheduling (`ipvsadm -E ... --ops`).
    ops_by_script: Option<usize>,
    quorum: Option<(u64, usize)>,
    inhibit: Option<(bool, usize)>,
}

pub fn read(statement: &Statement, taken: &mut Taken, report: &mut Report) -> Option<Service> {
    let line = statement.line;
    let head = statement.head();
    let vip = identity(statement, report)?;
    if !statement.children().iter().any(|s| s.keyword == "real_server") {
        report.note(line, format!("{head} left out: it has no real servers, and keepalived ignores it too"));
        return None;
    }
    let (protocol, defaulted) = protocol(statement, report)?;
    if let Some(first) = taken.listeners.get(&(vip, protocol)) {
        report.error(line, format!("{head} left out: it repeats the {protocol} virtual server at line {first}"));
        return None;
    }

    let settings = settings(statement, report);
    if defaulted {
        report.note(line, format!("{head} has no protocol: keepalived's default UDP is used"));
    }
    if !settings.forwarding_written {
        policy::forwarding_note("NAT", "keepalived's default lb_kind NAT", line, report);
    }
    let per_packet = per_packet(&settings, protocol, report);

    let defaults = Defaults { vip, timers: &settings.timers, forwarding: &settings.forwarding };
    let mut servers: Vec<RealServer> = Vec::new();
    for child in statement.children().iter().filter(|s| s.keyword == "real_server") {
        let Some(server) = real_server::read(child, &defaults, report) else { continue };
        if let Some(first) = servers.iter().find(|s| s.address == server.address) {
            report.note(
                server.line,
                format!(
                    "real_server {} repeats the one at line {}: keepalived drops it, and so does the import",
                    server.address, first.line
                ),
            );
            continue;
        }
        servers.push(server);
    }
    if servers.is_empty() {
        report.error(line, format!("{head} left out: none of its real servers can be a Sluice backend"));
        return None;
    }
    taken.listeners.insert((vip, protocol), line);

    let health = policy::health(&servers, report).map(|check| {
        let on_failure = policy::on_failure(settings.inhibit, &servers, line, report);
        policy::health_section(&check, on_failure)
    });
    if health.is_none() {
        let inhibit = settings.inhibit.into_iter().chain(servers.iter().filter_map(|s| s.inhibit)).find(|&(on, _)| on);
        if let Some((_, place)) = inhibit {
            report.note(place, "inhibit_on_failure has no effect without a health check: not carried over");
        }
    }
    let min_active = policy::min_active(settings.quorum, &servers, report);
    Some(Service {
        name: name(vip, protocol, taken),
        line,
        origin: head,
        vip,
        protocol,
        scheduler: settings.scheduler,
        per_packet,
        min_active,
        checks_dropped: health.is_none() && servers.iter().any(|s| s.has_checker),
        health,
        backends: servers.iter().map(|s| Backend { address: s.address, weight: s.weight }).collect(),
    })
}

/// "tcp" or "udp" (true when not written: keepalived's default), or `None` (reported) for
/// another protocol.
fn protocol(statement: &Statement, report: &mut Report) -> Option<(&'static str, bool)> {
    let Some(written) = statement.children().iter().rev().find(|s| s.keyword == "protocol") else {
        return Some(("udp", true));
    };
    let value = written.args.first().map(String::as_str).unwrap_or("");
    let head = statement.head();
    match value.to_ascii_uppercase().as_str() {
        "TCP" => Some(("tcp", false)),
        "UDP" => Some(("udp", false)),
        "SCTP" => {
            report.error(written.line, format!("{head} left out: Sluice balances TCP and UDP, not SCTP"));
            None
        }
        _ => {
            report.error(written.line, format!("{head} left out: protocol {value:?} is not TCP or UDP"));
            None
        }
    }
}

/// The VIP and port, or `None` (reported) for a virtual server Sluice cannot express.
fn identity(statement: &Statement, report: &mut Report) -> Option<SocketAddrV4> {
    let line = statement.line;
    let head = statement.head();
    let first = statement.args.first().map(String::as_str).unwrap_or("");
    let why = match first {
        "fwmark" => "Sluice matches traffic by VIP, port and protocol, not by firewall mark: write a [[service]] for each VIP and port the mark selects".to_owned(),
        "group" => "virtual_server_group is not supported: write a [[service]] for each address and port of the group".to_owned(),
        written => match address(written) {
            Address::V6 => "Sluice's VIPs are IPv4".to_owned(),
            Address::Invalid => format!("{written:?} is not an IP address"),
            Address::V4(ip) => return with_port(statement, ip, report),
        },
    };
    report.error(line, format!("{head} left out: {why}"));
    None
}

fn with_port(statement: &Statement, ip: Ipv4Addr, report: &mut Report) -> Option<SocketAddrV4> {
    let head = statement.head();
    let Some(vport) = statement.args.get(1).and_then(|text| port(text)) else {
        let why = match statement.args.get(1).map(String::as_str) {
            None | Some("0") => "it has no port (all ports, persistent): a Sluice service has one port".to_owned(),
            Some(text) => format!("{text:?} is not a port"),
        };
        report.error(statement.line, format!("{head} left out: {why}"));
        return None;
    };
    if statement.args.len() > 2 {
        report.warning(statement.line, format!("{head}: the values after the port are not carried over"));
    }
    Some(SocketAddrV4::new(ip, vport))
}

fn settings(statement: &Statement, report: &mut Report) -> Settings {
    let mut settings = Settings {
        timers: Timers::default(),
        scheduler: "wlc",
        forwarding: "NAT".to_owned(),
        forwarding_written: false,
        ops: None,
        ops_by_script: None,
        quorum: None,
        inhibit: None,
    };
    for child in statement.children() {
        let line = child.line;
        let keyword = child.keyword.as_str();
        let value = child.args.first().map(String::as_str).unwrap_or("");
        if child.keyword == "real_server" || settings.timers.read(child, report) {
            continue;
        }
        match keyword {
            "lb_algo" | "lvs_sched" => settings.scheduler = policy::scheduler(child, report),
            "lb_kind" | "lvs_method" => {
                settings.forwarding = value.to_ascii_uppercase();
                settings.forwarding_written = true;
                policy::forwarding(child, report);
            }
            // Read by `protocol`.
            "protocol" => {}
            "ops" => settings.ops = Some(line),
            "quorum" => match count(value) {
                Some(q) => settings.quorum = Some((q, line)),
                None => report.warning(line, format!("quorum {value:?} is not a count: min_active = 1")),
            },
            "inhibit_on_failure" => match flag(&child.args) {
                Some(on) => settings.inhibit = Some((on, line)),
                None => report.warning(line, format!("inhibit_on_failure {value:?} is not a boolean: ignored")),
            },
            "quorum_up" | "quorum_down" => {
                let script = child.args.join(" ");
                if script.contains("ipvsadm") && script.split_whitespace().any(|w| w == "--ops" || w == "-o") {
                    settings.ops_by_script = Some(line);
                }
                report.warning(
                    line,
                    format!("{} not run: Sluice runs no scripts; with [bgp] the VIP is announced while min_active backends are up, withdrawn otherwise", child.head()),
                );
            }
            "persistence_timeout" | "persistence_granularity" | "persistence_engine" => report.warning(
                line,
                format!("{} not carried over: Sluice has no persistence across connections; scheduler \"sh\" keeps a client (by its address) on one backend while the backends stay the same", child.head()),
            ),
            "sorry_server" | "sorry_server_inhibit" | "sorry_server_lvs_method" => report.warning(
                line,
                format!("{} not carried over: Sluice has no sorry server; with fewer than min_active backends up the VIP stops answering", child.head()),
            ),
            "hysteresis" => report.warning(
                line,
                format!("{} not carried over: Sluice's quorum has none; the VIP stops answering as soon as fewer than min_active backends are up", child.head()),
            ),
            "alpha" => report.note(line, "alpha: Sluice starts every backend down until its checks pass, as alpha asks"),
            "omega" => report.warning(line, "omega not carried over: Sluice runs no quorum scripts, at shutdown or otherwise"),
            "ha_suspend" => report.warning(line, "ha_suspend not carried over: Sluice checks backends whether or not the VIP is announced"),
            "virtualhost" => {
                report.warning(line, "virtualhost not carried over: Sluice's http check sends the backend's address as Host")
            }
            "warmup" => report.warning(line, "warmup not carried over: Sluice starts checking every backend at once"),
            "ip_family" => report.note(line, "ip_family not carried over: Sluice's services are IPv4"),
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => report.warning(
                line,
                format!("{keyword} not carried over: Sluice's schedulers take no flags (sh hashes the client's address, maglev its address and port)"),
            ),
            _ => policy::common(child, "virtual_server", report),
        }
    }
    settings
}

/// `ops`, or a quorum script that sets it with ipvsadm, as `per_packet` (udp only).
fn per_packet(settings: &Settings, protocol: &str, report: &mut Report) -> bool {
    if let Some(line) = settings.ops {
        if protocol == "udp" {
            return true;
        }
        report.note(line, "ops not carried over: one-packet scheduling is for UDP, and keepalived drops it too");
    }
    match settings.ops_by_script {
        Some(line) if protocol == "udp" => {
            report.note(line, "the quorum script's ipvsadm --ops becomes per_packet = true, in force from the start");
            true
        }
        _ => false,
    }
}

/// `vs-198.18.0.10-53-udp`, made unique.
fn name(vip: SocketAddrV4, protocol: &str, taken: &mut Taken) -> String {
    let base = format!("vs-{}-{}-{protocol}", vip.ip(), vip.port());
    let mut name = base.clone();
    let mut n = 2;
    while taken.names.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    taken.names.push(name.clone());
    name
}
