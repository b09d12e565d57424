//! `[[interface]]` and `[[route]]`: the links the appliance sits on and how it reaches
//! beyond them. Interface addresses make their prefixes connected routes; a static
//! route's gateway must lie on one of them.

use std::net::Ipv4Addr;

use toml::Spanned;

use super::diagnostic::Report;
use super::ipv4net::Ipv4Net;
use super::model::{Interface, Route};
use super::raw;
use super::value::{at, ipv4, ipv4_net, network, require, FirstSeen};

/// The longest Linux interface name, in bytes (IFNAMSIZ less the terminating NUL).
const IFNAME_MAX: usize = 15;
use super::model::AF_XDP_PREFIX;

/// What no two interfaces may share.
#[derive(Default)]
struct Taken {
    names: FirstSeen<String>,
    devices: FirstSeen<String>,
    addresses: FirstSeen<Ipv4Addr>,
}

/// The interfaces whose name and device are valid; every problem is reported.
pub fn interfaces(report: &mut Report, tables: &[Spanned<raw::Interface>]) -> Vec<Interface> {
    if tables.is_empty() {
        report.error(0, "no [[interface]] defined: at least one is needed");
    }
    let mut taken = Taken::default();
    tables.iter().filter_map(|table| interface(report, table, &mut taken)).collect()
}

fn interface(report: &mut Report, table: &Spanned<raw::Interface>, taken: &mut Taken) -> Option<Interface> {
    let written = table.get_ref();
    let name = require(report, &written.name, "name", table, "[[interface]]")
        .and_then(|text| interface_name(report, text))
        .filter(|text| taken.names.claim_text(report, text, "interface name"));
    let device = require(report, &written.device, "device", table, "[[interface]]")
        .and_then(|text| device_name(report, text, name.map(|n| n.get_ref().as_str())))
        .filter(|text| taken.devices.claim_text(report, text, "interface device"));
    let mut addresses = Vec::new();
    for text in written.addresses.iter().flat_map(|list| list.get_ref()) {
        let Some(net) = ipv4_net(report, text, "interface address") else {
            continue;
        };
        if taken.addresses.claim(report, net.addr, at(text), format_args!("interface address {}", net.addr)) {
            addresses.push(net);
        }
    }
    Some(Interface { name: name?.get_ref().clone(), device: device?.get_ref().clone(), addresses })
}

/// A name the kernel accepts for a network device (see `dev_valid_name`).
fn interface_name<'t>(report: &mut Report, name: &'t raw::Text) -> Option<&'t raw::Text> {
    let text = name.get_ref();
    if text.is_empty() {
        report.error(at(name), "interface name is empty");
        return None;
    }
    let valid = text.len() <= IFNAME_MAX
        && text != "."
        && text != ".."
        && !text.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if !valid {
        let message = format!(
            "invalid interface name {text:?}: a Linux interface name has at most {IFNAME_MAX} bytes, no '/', ':' or whitespace, and is not \".\" or \"..\""
        );
        report.error(at(name), message);
        return None;
    }
    Some(name)
}

/// A DPDK device name, a PCI address, or `af_xdp:IFNAME` (a kernel interface Sluice drives
/// through an AF_XDP socket per worker, see `Interface::af_xdp`). `name`: the interface's own
/// name, which is Sluice's kernel tap and so cannot be the af_xdp interface too.
fn device_name<'t>(report: &mut Report, device: &'t raw::Text, name: Option<&str>) -> Option<&'t raw::Text> {
    let text = device.get_ref();
    if text.is_empty() {
        report.error(
            at(device),
            "interface device is empty: expected a DPDK device name, a PCI address or af_xdp:IFNAME",
        );
        return None;
    }
    if let Some(kernel) = text.strip_prefix(AF_XDP_PREFIX) {
        let valid = !kernel.is_empty()
            && kernel.len() <= IFNAME_MAX
            && !kernel.chars().any(|c| c == '/' || c == ':' || c == ',' || c.is_whitespace());
        if !valid {
            report.error(
                at(device),
                format!("invalid af_xdp device {text:?}: expected af_xdp:IFNAME, a Linux interface name of at most {IFNAME_MAX} bytes"),
            );
            return None;
        }
        if Some(kernel) == name {
            report.error(
                at(device),
                format!("af_xdp device {text:?} has the interface's own name: that name is Sluice's kernel interface for this link; name it otherwise"),
            );
            return None;
        }
    }
    Some(device)
}

/// The valid routes; `interfaces` give the connected prefixes a gateway must be on.
pub fn routes(report: &mut Report, tables: &[Spanned<raw::Route>], interfaces: &[Interface]) -> Vec<Route> {
    let mut prefixes = FirstSeen::default();
    let mut routes = Vec::new();
    for table in tables {
        let written = table.get_ref();
        let prefix = require(report, &written.prefix, "prefix", table, "[[route]]")
            .and_then(|text| route_prefix(report, text).map(|net| (net, at(text))))
            .filter(|&(net, place)| prefixes.claim(report, net, place, format_args!("route prefix {net}")));
        let via =
            require(report, &written.via, "via", table, "[[route]]").and_then(|text| gateway(report, text, interfaces));
        if let (Some((prefix, _)), Some(via)) = (prefix, via) {
            routes.push(Route { prefix, via });
        }
    }
    routes
}

fn route_prefix(report: &mut Report, text: &raw::Text) -> Option<Ipv4Net> {
    network(report, text, "route prefix")
}

/// A next hop on a connected prefix, other than one of the host's own addresses.
fn gateway(report: &mut Report, text: &raw::Text, interfaces: &[Interface]) -> Option<Ipv4Addr> {
    let via = ipv4(report, text, "route via")?;
    let connected = interfaces.iter().flat_map(|i| i.addresses.iter().map(move |net| (i, net)));
    let mut on_link = false;
    for (interface, net) in connected {
        if net.addr == via {
            let message = format!("route via {via} is the address of interface {} itself", interface.name);
            report.error(at(text), message);
            return None;
        }
        on_link |= net.contains(via);
    }
    if !on_link {
        let message = format!("route via {via} is not on a connected network: no interface address covers it");
        report.error(at(text), message);
        return None;
    }
    Some(via)
}

#[cfg(test)]
mod tests;
