//! `[bgp]` and its `[[bgp.neighbor]]`s: what BIRD is told to do on this node's behalf.
//!
//! Checked here, before any daemon runs: AS numbers (1..=4294967295, not AS_TRANS), the
//! router id, the hold time (whole seconds, 3 or more, as RFC 4271 allows), BFD timers,
//! paths, and neighbours (each on a connected network, none twice, none the host's own
//! address). Passwords are written into BIRD's config inside quotes, so they may not hold
//! quotes, backslashes or control characters. Whether the `bird` binary exists is checked
//! at start, not here: `--check-config` may run on another machine.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use toml::{Spanned, Value};

use super::diagnostic::Report;
use super::duration::{parse_duration, DurationError};
use super::model::{Bgp, BgpNeighbor, Interface};
use super::raw;
use super::value::{at, bounded, duration, ipv4, require, FirstSeen};

/// RFC 6793: the 16-bit stand-in for a 4-byte AS number, never a real AS.
const AS_TRANS: u32 = 23456;
/// What BIRD and RFC 2385 implementations accept as a TCP MD5 key.
const PASSWORD_MAX: usize = 80;
/// RFC 4271 4.2: a hold time is zero or at least three seconds (zero is not offered: it
/// would turn keepalives off, and a dead node would keep its routes).
const HOLD_MIN: u64 = 3;
const HOLD_MAX: u64 = 65535;
/// BFD timers BIRD accepts, and what makes sense on a LAN.
const BFD_INTERVAL_MIN: Duration = Duration::from_millis(10);
const BFD_INTERVAL_MAX: Duration = Duration::from_secs(10);

pub fn bgp(report: &mut Report, table: &Spanned<raw::Bgp>, interfaces: &[Interface]) -> Option<Bgp> {
    let header = at(table);
    let written = table.get_ref();
    let local_as = require(report, &written.local_as, "local_as", table, "[bgp]")
        .and_then(|value| as_number(report, value, "bgp.local_as"));
    let router_id = match &written.router_id {
        Some(text) => router_id(report, text),
        None => {
            let first = interfaces.iter().flat_map(|i| i.addresses.iter()).next().map(|net| net.addr);
            if first.is_none() {
                report.error(header, "[bgp] needs a router_id: no interface has an address to take it from");
            }
            first
        }
    };
    let (local_as, router_id) = (local_as?, router_id?);
    let mut bgp = Bgp::defaults(local_as, router_id);

    if let Some(hold) = written.hold.as_ref().and_then(|value| hold_time(report, value)) {
        bgp.hold = hold;
    }
    if let Some(flag) = &written.bfd {
        bgp.bfd = *flag.get_ref();
    }
    if let Some(value) = &written.bfd_interval {
        if let Some(interval) = duration(report, value) {
            if (BFD_INTERVAL_MIN..=BFD_INTERVAL_MAX).contains(&interval) && interval.subsec_nanos() % 1_000_000 == 0 {
                bgp.bfd_interval = interval;
            } else {
                let message = format!(
                    "bgp.bfd_interval must be whole milliseconds from {}ms to {}s",
                    BFD_INTERVAL_MIN.as_millis(),
                    BFD_INTERVAL_MAX.as_secs()
                );
                report.error(at(value), message);
            }
        }
    }
    if let Some(value) = &written.bfd_multiplier {
        bgp.bfd_multiplier = bounded(report, value, "bgp.bfd_multiplier", 1, 255).unwrap_or(bgp.bfd_multiplier);
    }
    if let Some(text) = &written.bird {
        if text.get_ref().is_empty() {
            report.error(at(text), "bgp.bird is empty: expected the BIRD 2 binary, a name or a path");
        } else {
            bgp.bird = PathBuf::from(text.get_ref());
        }
    }
    if let Some(text) = &written.runtime_dir {
        if let Some(dir) = runtime_dir(report, text) {
            bgp.runtime_dir = dir;
        }
    }
    if let Some(flag) = &written.announce_local_ips {
        bgp.announce_local_ips = *flag.get_ref();
    }
    if let Some(value) = &written.drain {
        bgp.drain = drain(report, value).unwrap_or(bgp.drain);
    }
    if written.neighbor.is_empty() {
        report.error(header, "[bgp] has no [[bgp.neighbor]]: at least one router to announce to is needed");
    }
    let mut seen = FirstSeen::default();
    for table in &written.neighbor {
        if let Some(neighbor) = neighbor(report, table, interfaces, &mut seen) {
            bgp.neighbors.push(neighbor);
        }
    }
    Some(bgp)
}

fn as_number(report: &mut Report, value: &raw::Integer, key: &str) -> Option<u32> {
    let n = bounded(report, value, key, 1, u32::MAX)?;
    if n == AS_TRANS {
        report.error(at(value), format!("{key} {AS_TRANS} is AS_TRANS (RFC 6793), which no router may use as its AS"));
        return None;
    }
    Some(n)
}

fn router_id(report: &mut Report, text: &raw::Text) -> Option<Ipv4Addr> {
    let id = ipv4(report, text, "bgp.router_id")?;
    if id.is_unspecified() {
        report.error(at(text), "bgp.router_id 0.0.0.0 is not a valid router id");
        return None;
    }
    Some(id)
}

/// Whole seconds in `HOLD_MIN..=HOLD_MAX`.
fn hold_time(report: &mut Report, value: &raw::DurationValue) -> Option<Duration> {
    let hold = duration(report, value)?;
    if hold.subsec_nanos() != 0 || !(HOLD_MIN..=HOLD_MAX).contains(&hold.as_secs()) {
        let message =
            format!("bgp.hold must be whole seconds from {HOLD_MIN}s to {HOLD_MAX}s (RFC 4271), got {hold:?}");
        report.error(at(value), message);
        return None;
    }
    Some(hold)
}

/// A duration that may be zero ("0s": stop at once after the withdrawal).
fn drain(report: &mut Report, value: &raw::DurationValue) -> Option<Duration> {
    match value.get_ref() {
        Value::String(text) if parse_duration(text) == Err(DurationError::Zero) => Some(Duration::ZERO),
        _ => duration(report, value),
    }
}

fn runtime_dir(report: &mut Report, text: &raw::Text) -> Option<PathBuf> {
    let path = PathBuf::from(text.get_ref());
    if !path.is_absolute() {
        report.error(at(text), format!("bgp.runtime_dir must be an absolute path, got {:?}", text.get_ref()));
        return None;
    }
    // BIRD's config names files inside it in quotes.
    if text.get_ref().chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        report.error(at(text), "bgp.runtime_dir may not contain quotes, backslashes or control characters");
        return None;
    }
    Some(path)
}

fn neighbor(
    report: &mut Report,
    table: &Spanned<raw::BgpNeighbor>,
    interfaces: &[Interface],
    seen: &mut FirstSeen<Ipv4Addr>,
) -> Option<BgpNeighbor> {
    const TABLE: &str = "[[bgp.neighbor]]";
    let written = table.get_ref();
    let address = require(report, &written.address, "address", table, TABLE).and_then(|text| {
        let address = ipv4(report, text, "bgp neighbor address")?;
        neighbor_on_link(report, text, address, interfaces)?;
        seen.claim(report, address, at(text), format_args!("bgp neighbor {address}")).then_some(address)
    });
    let remote_as = require(report, &written.remote_as, "remote_as", table, TABLE)
        .and_then(|value| as_number(report, value, "bgp neighbor remote_as"));
    let password = match &written.password {
        Some(text) => Some(password(report, text)?),
        None => None,
    };
    Some(BgpNeighbor { address: address?, remote_as: remote_as?, password })
}

/// A neighbour on a connected network (BGP here is single-hop), other than the host itself.
fn neighbor_on_link(report: &mut Report, text: &raw::Text, address: Ipv4Addr, interfaces: &[Interface]) -> Option<()> {
    let mut on_link = false;
    for interface in interfaces {
        for net in &interface.addresses {
            if net.addr == address {
                let message = format!("bgp neighbor {address} is the address of interface {} itself", interface.name);
                report.error(at(text), message);
                return None;
            }
            on_link |= net.contains(address);
        }
    }
    if !on_link {
        let message = format!(
            "bgp neighbor {address} is not on a connected network: no interface address covers it (BGP sessions here are single-hop)"
        );
        report.error(at(text), message);
        return None;
    }
    Some(())
}

fn password(report: &mut Report, text: &raw::Text) -> Option<String> {
    let value = text.get_ref();
    if value.is_empty() || value.len() > PASSWORD_MAX {
        report.error(at(text), format!("bgp neighbor password must be 1 to {PASSWORD_MAX} bytes"));
        return None;
    }
    if value.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        report.error(at(text), "bgp neighbor password may not contain quotes, backslashes or control characters");
        return None;
    }
    Some(value.clone())
}

#[cfg(test)]
mod tests;
