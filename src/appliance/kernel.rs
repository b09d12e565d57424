//! The kernel side of the exception path: one tap interface per port, named after the
//! `[[interface]]`, carrying the port's MAC and its `addresses`. The kernel answers ARP, ping,
//! ssh, BGP and health-check traffic for those addresses; the data path shuttles frames.
//!
//! Runs at start-up and reload only (it spawns `ip`), never on the packet path.

use std::process::Command;

use ctrlplane::config::{Interface, Route};
use dataplane::dpdk::{DpdkError, Port};
use dataplane::wire::MacAddr;

/// The vdev name of the tap behind interface `name`.
pub fn tap_device(name: &str) -> String {
    format!("net_tap_{name}")
}

/// Creates the tap interface for `iface` with the port's MAC. The interface exists in the
/// kernel from here until the returned port is dropped.
pub fn create_tap(iface: &Interface, mac: MacAddr) -> Result<Port, DpdkError> {
    Port::create_vdev(&tap_device(&iface.name), &format!("iface={},mac={}", iface.name, mac))
}

/// Gives the kernel interface its addresses and brings it up.
pub fn configure_addresses(iface: &Interface) -> Result<(), String> {
    for net in &iface.addresses {
        ip(&["addr", "replace", &net.to_string(), "dev", &iface.name])?;
    }
    ip(&["link", "set", "dev", &iface.name, "up"])
}

/// The `[[route]]`s Sluice gave the kernel of its namespace, so that what leaves through the
/// exception path (health checks, BGP, ping) reaches what the data path reaches. A route the
/// kernel already has (the operator's own, a management default route) is left alone, with a
/// warning; only routes Sluice added are ever removed. They go by themselves with the tap
/// interfaces when Sluice stops.
#[derive(Debug, Default)]
pub struct KernelRoutes {
    installed: Vec<Route>,
}

impl KernelRoutes {
    /// Adds what `wanted` has and the kernel lacks; removes what Sluice added that `wanted`
    /// no longer has. Never fails: a route the kernel refuses is logged.
    pub fn sync(&mut self, wanted: &[Route]) {
        let gone: Vec<Route> = self.installed.iter().filter(|r| !wanted.contains(r)).cloned().collect();
        for route in gone {
            let (prefix, via) = (route.prefix.to_string(), route.via.to_string());
            if let Err(e) = ip(&["route", "del", &prefix, "via", &via]) {
                warn!("kernel route {prefix} via {via}: {e}");
            }
            self.installed.retain(|r| *r != route);
        }
        let missing: Vec<&Route> = wanted.iter().filter(|r| !self.installed.contains(r)).collect();
        for route in missing {
            let (prefix, via) = (route.prefix.to_string(), route.via.to_string());
            match ip(&["route", "add", &prefix, "via", &via, "proto", "static"]) {
                Ok(()) => self.installed.push(route.clone()),
                Err(e) if e.contains("File exists") => {
                    warn!("kernel route {prefix}: the kernel has one already, which stays (checks and BGP follow it)")
                }
                Err(e) => warn!("kernel route {prefix} via {via}: {e}"),
            }
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e} (is iproute2 installed?)", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}
