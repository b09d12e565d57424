//! The rules that map keepalived's notions onto Sluice's where they differ in kind: the
//! scheduler, the forwarding method, the quorum (a total weight in keepalived, a number of
//! backends in Sluice), `inhibit_on_failure` (per real server there, per service here) and the
//! one health check a service has.

use super::checker::Check;
use super::diagnostic::Report;
use super::draft::Health;
use super::real_server::RealServer;
use super::syntax::Statement;

/// The Sluice scheduler for `lb_algo`/`lvs_sched`, reporting any change of behaviour.
pub fn scheduler(statement: &Statement, report: &mut Report) -> &'static str {
    let line = statement.line;
    let written = statement.args.first().map(String::as_str).unwrap_or("");
    let (chosen, why) = match written {
        "rr" => return "rr",
        "wrr" => return "wrr",
        "wlc" => return "wlc",
        "sh" => return "sh",
        "lc" => {
            report
                .note(line, "lb_algo lc becomes scheduler \"wlc\": with equal weights it is lc, and weights now count");
            return "wlc";
        }
        "mh" => {
            report.note(
                line,
                "lb_algo mh becomes scheduler \"sh\": IPVS mh hashes the client's address, as Sluice's sh does \
                 (with mh-port it hashed the port too: that is Sluice's \"maglev\")",
            );
            return "sh";
        }
        "dh" => (
            "sh",
            "destination hashing sends everything for one VIP to one real server; Sluice hashes the client instead",
        ),
        "sed" | "nq" => ("wlc", "Sluice has no expected-delay scheduler; wlc also picks the least loaded by weight"),
        "lblc" | "lblcr" => ("wlc", "Sluice has no locality-based scheduler; wlc is its least-connection part"),
        "fo" => ("wrr", "Sluice has no failover scheduler; wrr spreads over every backend by weight"),
        "ovf" => ("wlc", "Sluice has no overflow scheduler; wlc fills backends by weight"),
        "twos" => ("wlc", "Sluice has no random-of-two scheduler; wlc picks the least loaded by weight"),
        _ => ("wlc", "the importer does not know it; wlc is keepalived's default"),
    };
    report.warning(line, format!("lb_algo {written} becomes scheduler \"{chosen}\": {why}"));
    chosen
}

/// keepalived's forwarding method, read for a note on what FULLNAT changes for backends.
pub fn forwarding(statement: &Statement, report: &mut Report) {
    let written = statement.args.first().map(String::as_str).unwrap_or("");
    let what = format!("{} {}", statement.keyword, statement.args.join(" "));
    forwarding_note(written, what.trim_end(), statement.line, report);
}

/// The note for forwarding method `method` (`NAT` | `DR` | `TUN`), written as `what`.
pub fn forwarding_note(method: &str, what: &str, line: usize, report: &mut Report) {
    const SOURCE: &str = "backends see a local IP as the source, not the client, unless client_address is set";
    let message = match method.to_ascii_uppercase().as_str() {
        "NAT" => format!("{what} becomes FULLNAT: {SOURCE}, and no longer need this host as their gateway"),
        "DR" => format!(
            "{what} becomes FULLNAT: {SOURCE}; they no longer need the VIP on lo nor arp_ignore/arp_announce, and their replies come back through Sluice"
        ),
        "TUN" => format!(
            "{what} becomes FULLNAT: {SOURCE}; they no longer need an IPIP tunnel nor the VIP, and their replies come back through Sluice"
        ),
        _ => {
            report.warning(line, format!("{what} is not a forwarding method keepalived knows: Sluice forwards with FULLNAT"));
            return;
        }
    };
    report.note(line, message);
}

/// The keywords any block of the LVS part may have and Sluice has no place for; the
/// importer's word for the ones it does not know.
pub fn common(statement: &Statement, within: &str, report: &mut Report) {
    let line = statement.line;
    let keyword = statement.keyword.as_str();
    match keyword {
        "smtp_alert" => report.warning(line, "smtp_alert not carried over: Sluice sends no mail; alert on its metrics"),
        "snmp_name" => report.note(line, "snmp_name not carried over: Sluice has no SNMP; its metrics name services"),
        k if k.starts_with('@') => report.warning(
            line,
            format!(
                "conditional line `{}` skipped: the importer does not know this host's config-id",
                statement.head()
            ),
        ),
        k if k.starts_with('$') => report.warning(
            line,
            format!("parameter `{}` not expanded: the importer does not substitute parameters", statement.head()),
        ),
        _ => report.warning(line, format!("{keyword} in {within} not carried over: the importer does not know it")),
    }
}

/// `min_active` for keepalived's `quorum` (a total weight of live real servers): the fewest
/// backends whose weights reach it, heaviest first, so that the VIP is never withdrawn where
/// keepalived kept it.
pub fn min_active(quorum: Option<(u64, usize)>, backends: &[RealServer], report: &mut Report) -> u32 {
    let Some((written, line)) = quorum else { return 1 };
    report.warning(
        line,
        "quorum becomes min_active, which means more: below it Sluice stops answering for the VIP, \
         its established sessions included (and withdraws it with [bgp]), where keepalived kept the \
         live real servers serving (or added the sorry server)",
    );
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    let mut quorum = written;
    if quorum > total {
        report.note(
            line,
            format!(
                "quorum {written} is more than the real servers' total weight {total}: keepalived lowers it to {total}"
            ),
        );
        quorum = total;
    }
    let mut weights: Vec<u64> = backends.iter().map(|b| u64::from(b.weight)).collect();
    weights.sort_unstable_by(|a, b| b.cmp(a));
    let mut reached = 0;
    let mut needed = 0u32;
    for weight in weights.iter().copied() {
        if reached >= quorum {
            break;
        }
        reached += weight;
        needed += 1;
    }
    let first = weights.first().copied().unwrap_or(1);
    if weights.iter().any(|&w| w != first) {
        report.warning(
            line,
            format!(
                "quorum {written} is a total weight in keepalived but a number of backends in Sluice: min_active = {needed}, the fewest real servers whose weights reach {quorum}"
            ),
        );
    } else if first != 1 && written > 0 {
        report.note(
            line,
            format!(
                "quorum {written} is a total weight in keepalived: with every weight {first}, min_active = {needed}"
            ),
        );
    }
    needed
}

/// `on_failure` from the real servers' `inhibit_on_failure` (theirs, else the virtual server's).
pub fn on_failure(
    default: Option<(bool, usize)>,
    servers: &[RealServer],
    line: usize,
    report: &mut Report,
) -> &'static str {
    let inhibits = servers.iter().filter(|s| s.inhibit.or(default).is_some_and(|(on, _)| on)).count();
    if inhibits == 0 {
        "remove"
    } else if inhibits == servers.len() {
        "inhibit"
    } else {
        report.warning(
            line,
            format!(
                "inhibit_on_failure is set on {inhibits} of {} real servers: Sluice has one on_failure per service, \"inhibit\" for all (a failed backend gets weight 0 and its sessions live on)",
                servers.len()
            ),
        );
        "inhibit"
    }
}

/// The service's health check: the first real server's, reported where others differ.
pub fn health(servers: &[RealServer], report: &mut Report) -> Option<Check> {
    let chosen = servers.iter().find_map(|s| s.checks.first())?.clone();
    for server in servers {
        match server.checks.first() {
            Some(check) if !check.same(&chosen) => report.warning(
                check.line,
                format!(
                    "{} ({}) differs from the service's check, the {} at line {} ({}): Sluice has one health check per service",
                    check.checker,
                    check.describe(),
                    chosen.checker,
                    chosen.line,
                    chosen.describe()
                ),
            ),
            Some(_) => {}
            None => {
                let had = if server.has_checker {
                    "no checker Sluice can run"
                } else {
                    "no checker (keepalived keeps it up unchecked)"
                };
                report.warning(
                    server.line,
                    format!(
                        "real_server {} has {had}: Sluice checks it like the others, {}",
                        server.address,
                        chosen.describe()
                    ),
                );
            }
        }
    }
    Some(chosen)
}

/// The `[service.health]` for a chosen check.
pub fn health_section(check: &Check, on_failure: &'static str) -> Health {
    Health {
        probe: check.probe.clone(),
        interval: check.interval,
        timeout: check.timeout,
        rise: 1,
        fall: check.fall,
        on_failure,
    }
}

#[cfg(test)]
mod tests;
