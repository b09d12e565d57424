//! The kernel side of the exception path: one tap interface per port, named after the
//! `[[interface]]`, carrying the port's MAC and its `addresses`. The kernel answers ARP, ping,
//! ssh, BGP and health-check traffic for those addresses; the data path shuttles frames.
//!
//! Runs at start-up only (it spawns `ip`), never on the packet path.

use std::process::Command;

use ctrlplane::config::Interface;
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
