//! The `Draft` written out as a Sluice config file: a header saying where it came from and
//! what is left to do, placeholder interfaces, then one `[[service]]` per virtual server in
//! the order of the keepalived file, keys in the order of conf/example.toml.
//!
//! Placeholders are values `sluice --check-config` refuses, each under a `# FILL IN:` comment:
//! interface names with a space and a colon (no Linux interface name has either), an empty
//! device, and addresses that are not addresses.

use std::fmt::Write as _;

use super::diagnostic::{Diagnostic, Severity};
use super::draft::{Draft, Probe, Service};
use super::values::sluice_duration;
use crate::config::value::plural;

/// The placeholders, for whoever fills them in (the tests do).
pub const CLIENT_SIDE_NAME: &str = "FILL IN: client side";
pub const BACKEND_SIDE_NAME: &str = "FILL IN: backend side";
pub const DEVICE: &str = "";
pub const INTERFACE_ADDRESS: &str = "FILL IN: a.b.c.d/len";
pub const LOCAL_IP: &str = "FILL IN: local IP";

pub fn render(file: &str, draft: &Draft, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    header(&mut out, file, draft, diagnostics);
    if !draft.timeouts.is_empty() {
        out.push_str("\n# From global_defs' lvs_timeouts.\n[timeouts]\n");
        for (key, duration) in &draft.timeouts {
            let _ = writeln!(out, "{key} = {}", string(&sluice_duration(*duration)));
        }
    }
    interfaces(&mut out);
    for service in &draft.services {
        self::service(&mut out, file, service);
    }
    out
}

fn header(out: &mut String, file: &str, draft: &Draft, diagnostics: &[Diagnostic]) {
    let file = one_line(file);
    let _ = writeln!(out, "# Sluice config imported from {file} by `sluice import-keepalived`.");
    let services = draft.services.len();
    let left_out = draft.virtual_servers - services;
    let _ = writeln!(
        out,
        "# {}: {} carried over as [[service]], {left_out} left out.",
        plural(draft.virtual_servers, "virtual server"),
        services
    );
    if diagnostics.is_empty() {
        out.push_str("# No diagnostics: everything in the file was carried over.\n");
    } else {
        let count = |severity| diagnostics.iter().filter(|d| d.severity == severity).count();
        let _ = writeln!(
            out,
            "# {} came with it ({}, {}, {}), as FILE:LINE: what and why: read them first.",
            plural(diagnostics.len(), "diagnostic"),
            plural(count(Severity::Note), "note"),
            plural(count(Severity::Warning), "warning"),
            plural(count(Severity::Error), "error")
        );
    }
    out.push_str("# Replace every FILL IN below: until then `sluice --check-config` refuses this file.\n");
    let defaults = if draft.timeouts.is_empty() {
        "[dpdk], [cpu], [api], [sessions], [steering], [timeouts]"
    } else {
        "[dpdk], [cpu], [api], [sessions], [steering]"
    };
    let _ = writeln!(out, "# Left out, {defaults} take their defaults:");
    out.push_str("# conf/example.toml lists every key with its default and range.\n");
    out.push_str("# Without [bgp] this node answers ARP for the VIPs alone; with [bgp] it announces them to\n");
    out.push_str("# routers that spread clients over the nodes (ECMP), which takes the place of VRRP.\n");
}

fn interfaces(out: &mut String) {
    let sides = [
        (
            CLIENT_SIDE_NAME,
            "# FILL IN: the link clients reach the VIPs on. name: the kernel interface Sluice creates for it\n\
             # (e.g. \"wan\"); device: its DPDK port (a PCI address, a vdev of [dpdk] args, or \"af_xdp:IFNAME\");\n\
             # addresses: this host's own address on it, a.b.c.d/len.\n",
        ),
        (
            BACKEND_SIDE_NAME,
            "# FILL IN: the link to the real servers, as above (leave it out when one link reaches both).\n",
        ),
    ];
    for (name, comment) in sides {
        let _ = write!(
            out,
            "\n{comment}[[interface]]\nname = {}\ndevice = {}  # FILL IN\naddresses = [{}]\n",
            string(name),
            string(DEVICE),
            string(INTERFACE_ADDRESS)
        );
    }
}

fn service(out: &mut String, file: &str, service: &Service) {
    let _ = writeln!(out, "\n# {} ({} line {})", one_line(&service.origin), one_line(file), service.line);
    out.push_str("[[service]]\n");
    let _ = writeln!(out, "name = {}", string(&service.name));
    let _ = writeln!(out, "vip = {}", string(&service.vip.to_string()));
    let _ = writeln!(out, "protocol = {}", string(service.protocol));
    let _ = writeln!(out, "scheduler = {}", string(service.scheduler));
    if service.per_packet {
        out.push_str("per_packet = true\n");
    }
    out.push_str("# FILL IN: FULLNAT source addresses, at least one per worker, none a VIP or an interface address.\n");
    let _ = writeln!(out, "local_ips = [{}]", string(LOCAL_IP));
    let _ = writeln!(out, "min_active = {}", service.min_active);

    match &service.health {
        Some(health) => {
            out.push_str("\n[service.health]\n");
            let _ = writeln!(out, "check = {}", string(health.probe.check()));
            let _ = writeln!(out, "interval = {}", string(&sluice_duration(health.interval)));
            let _ = writeln!(out, "timeout = {}", string(&sluice_duration(health.timeout)));
            let _ = writeln!(out, "rise = {}  # keepalived brings a real server back after one good check", health.rise);
            let _ = writeln!(out, "fall = {}", health.fall);
            match &health.probe {
                Probe::Tcp => {}
                Probe::Udp { send, expect } | Probe::Http { path: send, status: expect } => {
                    let _ = writeln!(out, "send = {}", string(send));
                    let _ = writeln!(out, "expect = {}", string(expect));
                }
            }
            let why = match health.on_failure {
                "remove" => "  # keepalived removed a failed real server (no inhibit_on_failure)",
                _ => "",
            };
            let _ = writeln!(out, "on_failure = {}{why}", string(health.on_failure));
        }
        None if service.checks_dropped => out.push_str(
            "# No [service.health]: Sluice cannot run keepalived's checkers here (see the diagnostics); every backend counts as up.\n",
        ),
        None => out.push_str("# No [service.health]: keepalived checked nothing here; every backend counts as up.\n"),
    }

    for backend in &service.backends {
        out.push_str("\n[[service.backend]]\n");
        let _ = writeln!(out, "address = {}", string(&backend.address.to_string()));
        let _ = writeln!(out, "weight = {}", backend.weight);
    }
}

/// A TOML basic string.
fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a comment: control characters (a line break in a file name) become `?`.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}
