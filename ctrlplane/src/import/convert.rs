//! The top of a keepalived file: `virtual_server` blocks become services, `global_defs`'
//! `lvs_timeouts` become `[timeouts]`, and everything else (VRRP, static addresses, includes,
//! ...) is reported with what takes its place in Sluice, if anything.

use std::time::Duration;

use super::diagnostic::Report;
use super::draft::Draft;
use super::policy;
use super::syntax::Statement;
use super::values::count;
use super::virtual_server::{self, Taken};

/// A `vrrp_instance`, reported once the services (and so the VIPs) are known.
struct Vrrp {
    line: usize,
    head: String,
    addresses: Vec<String>,
}

pub fn convert(statements: &[Statement], report: &mut Report) -> Draft {
    let mut draft = Draft::default();
    let mut taken = Taken::default();
    let mut vrrp = Vec::new();
    for statement in statements {
        let line = statement.line;
        let head = statement.head();
        match statement.keyword.as_str() {
            "virtual_server" => {
                draft.virtual_servers += 1;
                draft.services.extend(virtual_server::read(statement, &mut taken, report));
            }
            "virtual_server_group" => report.warning(
                line,
                format!("{head} not carried over: Sluice has no groups; each address and port needs a [[service]] of its own"),
            ),
            "global_defs" => global_defs(statement, &mut draft, report),
            "vrrp_instance" => {
                for child in statement.children().iter().filter(|c| c.keyword == "lvs_sync_daemon_interface") {
                    sync_daemon(child, report);
                }
                let addresses = statement
                    .children()
                    .iter()
                    .filter(|c| c.keyword == "virtual_ipaddress" || c.keyword == "virtual_ipaddress_excluded")
                    .flat_map(Statement::children)
                    .map(|address| address.keyword.split('/').next().unwrap_or_default().to_owned())
                    .collect();
                vrrp.push(Vrrp { line, head, addresses });
            }
            "vrrp_sync_group" => report.warning(
                line,
                format!("{head} not carried over: with BGP and ECMP every node announces its VIPs on its own; nothing to group"),
            ),
            "vrrp_script" => report.warning(
                line,
                format!("{head} not run: Sluice withdraws a VIP by quorum (min_active) or with `sluicectl drain-node`, not by script"),
            ),
            "static_ipaddress" | "static_routes" | "static_rules" => {
                let listed: Vec<String> = statement.children().iter().map(Statement::head).collect();
                let listed = if listed.is_empty() { String::new() } else { format!(" ({})", listed.join("; ")) };
                report.note(
                    line,
                    format!("{} not carried over{listed}: this host's addresses are [[interface]] addresses, its routes [[route]]", statement.keyword),
                );
            }
            "SSL" => report.note(line, "SSL not carried over: it configures SSL_GET, and Sluice has no TLS check"),
            "include" | "includer" | "includem" | "includew" | "includeb" | "includea" => report.warning(
                line,
                format!("{head} not followed: import that file on its own and merge its services into this one"),
            ),
            "bfd_instance" => report.warning(
                line,
                format!("{head} not carried over: Sluice runs BFD with its BGP neighbours only ([bgp] bfd)"),
            ),
            keyword
                if keyword.starts_with("vrrp_")
                    || keyword.starts_with("track_")
                    || matches!(keyword, "garp_group" | "linkbeat_interfaces" | "interface_up_down_delays") =>
            {
                report.warning(line, format!("{keyword} not carried over: it serves VRRP, which Sluice replaces with BGP ([bgp])"))
            }
            _ => policy::common(statement, "the top level", report),
        }
    }
    for instance in vrrp {
        report.warning(instance.line, vrrp_message(&instance, &draft));
    }
    draft
}

fn vrrp_message(instance: &Vrrp, draft: &Draft) -> String {
    let mut message = format!(
        "{} not carried over: Sluice replaces VRRP with BGP announcements to an ECMP router ([bgp]), a VIP announced while its services have quorum",
        instance.head
    );
    if instance.addresses.is_empty() {
        return message;
    }
    let described: Vec<String> = instance
        .addresses
        .iter()
        .map(|address| {
            let vip = draft.services.iter().any(|s| s.vip.ip().to_string() == *address);
            if vip {
                format!("{address} (a VIP)")
            } else {
                format!("{address} (no service's VIP)")
            }
        })
        .collect();
    message.push_str(&format!("; its virtual addresses: {}", described.join(", ")));
    message
}

fn global_defs(statement: &Statement, draft: &mut Draft, report: &mut Report) {
    let mut rest = Vec::new();
    for child in statement.children() {
        match child.keyword.as_str() {
            "lvs_sync_daemon" => sync_daemon(child, report),
            "lvs_timeouts" => lvs_timeouts(child, draft, report),
            other => rest.push(other.to_owned()),
        }
    }
    let listed = if rest.is_empty() { String::new() } else { format!(" ({})", rest.join(", ")) };
    report.note(
        statement.line,
        format!("global_defs not carried over{listed}: keepalived's own settings have no meaning for Sluice"),
    );
}

fn sync_daemon(statement: &Statement, report: &mut Report) {
    report.warning(
        statement.line,
        format!(
            "{} not carried over: Sluice nodes share their sessions with [cluster] (docs/sync-protocol.md)",
            statement.keyword
        ),
    );
}

/// `lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]` as `[timeouts]`.
fn lvs_timeouts(statement: &Statement, draft: &mut Draft, report: &mut Report) {
    let line = statement.line;
    let mut carried = Vec::new();
    for pair in statement.args.chunks(2) {
        let key = match pair[0].as_str() {
            "tcp" => "tcp_established",
            "tcpfin" => "tcp_fin_wait",
            "udp" => "udp",
            other => {
                report.warning(line, format!("lvs_timeouts {other} not carried over: not tcp, tcpfin or udp"));
                continue;
            }
        };
        match pair.get(1).and_then(|v| count(v)).filter(|&s| s > 0) {
            Some(seconds) => {
                draft.timeouts.retain(|(k, _)| *k != key);
                draft.timeouts.push((key, Duration::from_secs(seconds)));
                carried.push(format!("{key} = \"{seconds}s\""));
            }
            None => report.warning(
                line,
                format!("lvs_timeouts {}: not a number of seconds above 0, not carried over", pair.join(" ")),
            ),
        }
    }
    let order = ["tcp_established", "tcp_fin_wait", "udp"];
    draft.timeouts.sort_by_key(|(key, _)| order.iter().position(|k| k == key));
    if !carried.is_empty() {
        report.note(line, format!("lvs_timeouts becomes [timeouts] {}", carried.join(", ")));
    }
}
