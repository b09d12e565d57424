//! `[[service]]` and its `[[service.backend]]`s.
//!
//! Besides each service's own keys, this checks what services share: names, the
//! (vip, protocol) pairs they answer, and the addresses they use. A local IP is a FULLNAT
//! source address that backends answer to; it must be no VIP and no interface address,
//! or replies would be taken for new traffic or for the host's own.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use toml::Spanned;

use super::diagnostic::Report;
use super::health::health;
use super::ipv4net::Ipv4Net;
use super::model::{Backend, ClientAddress, Interface, Limits, Protocol, Scheduler, Service};
use super::raw;
use super::value::{at, bounded, endpoint, ipv4, keyword, network, plural, require, FirstSeen};

/// How messages name the table of a service.
const SERVICE: &str = "[[service]]";

/// What the checks of one service need to know about the rest of the file.
struct Context<'c> {
    workers: usize,
    interfaces: &'c [Interface],
    names: FirstSeen<String>,
    listeners: FirstSeen<(SocketAddrV4, Protocol)>,
    /// Every VIP address and the first service to use it.
    vips: HashMap<Ipv4Addr, String>,
    /// The local IPs of every service (address, position, service, index in its list),
    /// checked against every VIP and against each other once all are known.
    local_ips: Vec<(Ipv4Addr, usize, String, usize)>,
}

/// The valid services; `workers` is how many local IPs each needs at least.
pub fn services(
    report: &mut Report,
    tables: &[Spanned<raw::Service>],
    workers: usize,
    interfaces: &[Interface],
) -> Vec<Service> {
    let mut context = Context {
        workers,
        interfaces,
        names: FirstSeen::default(),
        listeners: FirstSeen::default(),
        vips: HashMap::new(),
        local_ips: Vec::new(),
    };
    let services: Vec<Service> = tables.iter().filter_map(|t| service(report, t, &mut context)).collect();
    for (local_ip, place, _, _) in &context.local_ips {
        if let Some(owner) = context.vips.get(local_ip) {
            report.error(*place, format!("local IP {local_ip} is the VIP of service {owner}"));
        }
    }
    // A local IP belongs to one worker (its port space is that worker's alone): a local IP that
    // services share must fall to the same worker in each (from nothing, `laddr::owners` deals a
    // service's local IPs round the workers: index % workers).
    if workers > 1 {
        for (i, (ip, place, service, index)) in context.local_ips.iter().enumerate() {
            let first = context.local_ips[..i].iter().find(|(other, _, s, _)| other == ip && s != service);
            if let Some((_, _, other_service, other_index)) = first {
                if index % workers != other_index % workers {
                    report.error(
                        *place,
                        format!(
                            "local IP {ip} is shared with service {other_service} but would belong to another worker here \
                             (position {} vs {} of {workers} workers): list it at the same position modulo {workers}, \
                             or give each service its own local IPs",
                            index + 1,
                            other_index + 1
                        ),
                    );
                }
            }
        }
    }
    services
}

fn service(report: &mut Report, table: &Spanned<raw::Service>, context: &mut Context) -> Option<Service> {
    let written = table.get_ref();
    // How messages about this service name it, even when its name is invalid.
    let label = written.name.as_ref().map_or("(unnamed)", |text| text.get_ref().as_str());
    let name =
        require(report, &written.name, "name", table, SERVICE).and_then(|text| service_name(report, text, context));
    let vip_text = require(report, &written.vip, "vip", table, SERVICE);
    let vip = vip_text.and_then(|text| endpoint(report, text, "vip"));
    let protocol =
        require(report, &written.protocol, "protocol", table, SERVICE).and_then(|text| keyword(report, text));
    if let (Some(text), Some(vip)) = (vip_text, vip) {
        context.vips.entry(*vip.ip()).or_insert_with(|| label.to_owned());
        if let Some(protocol) = protocol {
            let what = format_args!("vip {vip} ({protocol})");
            context.listeners.claim(report, (vip, protocol), at(text), what);
        }
    }
    let scheduler = written.scheduler.as_ref().map_or(Some(Scheduler::Rr), |text| keyword(report, text));
    let per_packet = per_packet(report, written.per_packet.as_ref(), protocol);
    let local_ips = require(report, &written.local_ips, "local_ips", table, SERVICE)
        .map(|list| local_ips(report, list, label, context))
        .unwrap_or_default();
    let client_address = written.client_address.as_ref().map_or(Some(ClientAddress::None), |text| {
        let mode = keyword(report, text)?;
        if mode == ClientAddress::Toa && protocol == Some(Protocol::Udp) {
            report.error(at(text), "client_address = \"toa\" is a TCP option: for tcp services only");
        }
        Some(mode)
    });
    let synproxy = synproxy(report, written.synproxy.as_ref(), protocol);
    let limit = |report: &mut Report, value: Option<&raw::Integer>, key: &str| {
        value.map_or(Some(0), |v| bounded(report, v, key, 0, u32::MAX))
    };
    let limits = Limits {
        max_sessions: limit(report, written.max_sessions.as_ref(), "max_sessions").unwrap_or(0),
        new_sessions_per_second: limit(report, written.new_sessions_per_second.as_ref(), "new_sessions_per_second")
            .unwrap_or(0),
        per_client_new_sessions_per_second: limit(
            report,
            written.per_client_new_sessions_per_second.as_ref(),
            "per_client_new_sessions_per_second",
        )
        .unwrap_or(0),
    };
    let allow = written.allow.as_ref().map(|list| prefixes(report, list, "allow")).unwrap_or_default();
    let deny = written.deny.as_ref().map(|list| prefixes(report, list, "deny")).unwrap_or_default();
    let health = health(report, written.health.as_ref());
    let backends = backends(report, &written.backend);
    let min_active = written.min_active.as_ref().map_or(Some(1), |value| {
        let count = bounded(report, value, "min_active", 0, u32::MAX)?;
        check_quorum(report, value, count, written.backend.len(), label)
    });

    Some(Service {
        name: name?,
        vip: vip?,
        protocol: protocol?,
        scheduler: scheduler?,
        per_packet,
        local_ips,
        min_active: min_active?,
        client_address: client_address?,
        synproxy,
        limits,
        allow,
        deny,
        health,
        backends,
    })
}

/// The SYN proxy: tcp services only.
fn synproxy(report: &mut Report, flag: Option<&raw::Flag>, protocol: Option<Protocol>) -> bool {
    let Some(flag) = flag.filter(|flag| *flag.get_ref()) else {
        return false;
    };
    if protocol == Some(Protocol::Udp) {
        report.error(at(flag), "synproxy answers TCP SYNs: for tcp services only");
    }
    true
}

/// Client prefixes (`allow`, `deny`): networks without host bits.
fn prefixes(report: &mut Report, list: &raw::List<String>, key: &str) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    let what = format!("{key} prefix");
    for text in list.get_ref() {
        out.extend(network(report, text, &what));
    }
    out
}

/// One-packet scheduling; a tcp connection cannot have it.
fn per_packet(report: &mut Report, flag: Option<&raw::Flag>, protocol: Option<Protocol>) -> bool {
    let Some(flag) = flag.filter(|flag| *flag.get_ref()) else {
        return false;
    };
    if protocol == Some(Protocol::Tcp) {
        let message = "per_packet is for udp services only: a tcp connection stays with one backend";
        report.error(at(flag), message);
    }
    true
}

fn service_name(report: &mut Report, text: &raw::Text, context: &mut Context) -> Option<String> {
    if text.get_ref().is_empty() {
        report.error(at(text), "service name is empty");
        return None;
    }
    context.names.claim_text(report, text, "service name").then(|| text.get_ref().clone())
}

/// At least one per worker, none twice, none the host's own.
fn local_ips(report: &mut Report, list: &raw::List<String>, service: &str, context: &mut Context) -> Vec<Ipv4Addr> {
    let written = list.get_ref();
    if written.len() < context.workers {
        let message = format!(
            "service {service} has {} for {}: each worker needs at least one",
            plural(written.len(), "local IP"),
            plural(context.workers, "worker")
        );
        report.error(at(list), message);
    }
    let mut seen = FirstSeen::default();
    let mut valid = Vec::new();
    for (index, text) in written.iter().enumerate() {
        let Some(addr) = ipv4(report, text, "local IP") else {
            continue;
        };
        if !seen.claim(report, addr, at(text), format_args!("local IP {addr}")) {
            continue;
        }
        let owner = context.interfaces.iter().find(|i| i.addresses.iter().any(|net| net.addr == addr));
        if let Some(interface) = owner {
            report.error(at(text), format!("local IP {addr} is the address of interface {}", interface.name));
            continue;
        }
        context.local_ips.push((addr, at(text), service.to_owned(), index));
        valid.push(addr);
    }
    valid
}

/// A quorum the backends can reach; with no backend yet any quorum stands.
fn check_quorum(
    report: &mut Report,
    value: &raw::Integer,
    min_active: u32,
    backends: usize,
    service: &str,
) -> Option<u32> {
    if backends > 0 && min_active as usize > backends {
        let message = format!(
            "min_active {min_active} is more than the {} of service {service}: its VIP would never answer",
            plural(backends, "backend")
        );
        report.error(at(value), message);
        return None;
    }
    Some(min_active)
}

fn backends(report: &mut Report, tables: &[Spanned<raw::Backend>]) -> Vec<Backend> {
    let mut seen = FirstSeen::default();
    let mut backends = Vec::new();
    for table in tables {
        let written = table.get_ref();
        let address = require(report, &written.address, "address", table, "[[service.backend]]")
            .and_then(|text| endpoint(report, text, "backend address").map(|addr| (addr, at(text))))
            .filter(|&(addr, place)| seen.claim(report, addr, place, format_args!("backend {addr}")));
        let weight =
            written.weight.as_ref().map_or(Some(1), |value| bounded(report, value, "backend weight", 0, 65535));
        if let (Some((address, _)), Some(weight)) = (address, weight) {
            backends.push(Backend { address, weight });
        }
    }
    backends
}

#[cfg(test)]
mod tests;
