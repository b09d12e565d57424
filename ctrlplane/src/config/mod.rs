//! The config file: reading it, checking it, and the validated `Config` it becomes.
//!
//! The file is TOML (the contract is in docs/interface.md; `conf/example.toml` lists every key
//! with its default and range). Reading happens in two steps:
//!
//! 1. `raw`: serde reads the TOML into structs that mirror the file, every value with its
//!    place. Syntax errors, wrong types and unknown keys stop here, at the first one.
//! 2. `system`, `network`, `service`, `health`, `bgp`, `cluster`: each section is given its meaning and
//!    checked, and every problem found is reported, not just the first. Missing keys are
//!    reported at their table's header.
//!
//! A problem is a `Diagnostic` with `FILE:LINE:COL`. The result is either a `Config`,
//! with the warnings that did not refuse it, or all the `Diagnostics`.
//!
//! This module never touches a device or the network: `sluice --check-config` relies on it.

mod bgp;
mod cluster;
mod diagnostic;
mod duration;
mod health;
mod ipv4net;
mod keyword;
mod model;
mod network;
mod raw;
mod service;
mod system;
pub(crate) mod value;

#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use duration::{parse_duration, DurationError};
pub use health::{HTTP_DEFAULT_PATH, HTTP_DEFAULT_STATUS};
pub use ipv4net::{InvalidIpv4Net, Ipv4Net};
pub use keyword::Keyword;
pub use model::{
    Api, Backend, Bgp, BgpNeighbor, CheckKind, ClientAddress, Cluster, Config, Cpu, Dpdk, Health, IdleMode, Interface,
    Limits, OnFailure, Protocol, Route, Scheduler, Service, Sessions, Steering, SteeringMode, Timeouts, WhenFull,
};
pub use system::{mbufs_needed, MAX_SESSIONS, MIN_MBUFS};

use diagnostic::Report;

/// The machine the config is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// How many CPUs the machine has: cores are numbered `0..cpus`.
    pub cpus: usize,
}

/// Reads and checks the config file at `path`; diagnostics name the file as `path` shows.
pub fn load(path: &Path, host: &Host) -> Result<Config, Diagnostics> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file, host),
        Err(error) => {
            let report = Report::new(&file, "");
            Err(report.fatal(0, format!("cannot read config file: {error}")))
        }
    }
}

/// Checks config `text`; `file` is the name diagnostics give it.
pub fn parse(text: &str, file: &str, host: &Host) -> Result<Config, Diagnostics> {
    let report = Report::new(file, text);
    let document: raw::Document = match toml::from_str(text) {
        Ok(document) => document,
        Err(error) => {
            let place = error.span().map_or(0, |span| span.start);
            return Err(report.fatal(place, one_line(error.message())));
        }
    };
    resolve(report, &document, host)
}

fn resolve(mut report: Report, document: &raw::Document, host: &Host) -> Result<Config, Diagnostics> {
    let dpdk = system::dpdk(&mut report, document.dpdk.as_ref());
    let cpu = system::cpu(&mut report, document.cpu.as_ref(), host);
    let api = system::api(&mut report, document.api.as_ref());
    let sessions = system::sessions(&mut report, document.sessions.as_ref());
    let steering = system::steering(&mut report, document.steering.as_ref());
    let timeouts = system::timeouts(&mut report, document.timeouts.as_ref());
    let interfaces = network::interfaces(&mut report, &document.interface);
    system::check_mbufs(&mut report, document.dpdk.as_ref(), dpdk.mbufs, cpu.workers.len(), interfaces.len());
    let routes = network::routes(&mut report, &document.route, &interfaces);
    let services = service::services(&mut report, &document.service, cpu.workers.len(), &interfaces);
    let bgp = document.bgp.as_ref().and_then(|table| bgp::bgp(&mut report, table, &interfaces));
    let cluster =
        document.cluster.as_ref().and_then(|table| cluster::cluster(&mut report, table, &interfaces, bgp.is_some()));

    let warnings = report.finish()?;
    Ok(Config { dpdk, cpu, api, sessions, steering, timeouts, interfaces, routes, services, bgp, cluster, warnings })
}

/// TOML's messages may span lines; a diagnostic is one line.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    if parts.is_empty() {
        // The TOML parser says nothing for some errors (a control character in a comment).
        return "invalid TOML syntax".to_owned();
    }
    parts.join(": ")
}
