//! The Sluice config the importer builds from a keepalived file, before it is written out as
//! TOML: only what keepalived can say (services, their checks and backends, timeouts); the
//! rest of the file is left to the operator and to the defaults.

use std::net::SocketAddrV4;
use std::time::Duration;

/// Everything carried over from one keepalived file.
#[derive(Debug, Default)]
pub struct Draft {
    /// `virtual_server` blocks seen, carried over or not.
    pub virtual_servers: usize,
    pub services: Vec<Service>,
    /// `[timeouts]` keys from `lvs_timeouts`, in the order Sluice lists them.
    pub timeouts: Vec<(&'static str, Duration)>,
}

#[derive(Debug)]
pub struct Service {
    pub name: String,
    /// Where the `virtual_server` was written, and its head, for a comment above the service.
    pub line: usize,
    pub origin: String,
    pub vip: SocketAddrV4,
    /// "tcp" | "udp".
    pub protocol: &'static str,
    /// A Sluice scheduler name.
    pub scheduler: &'static str,
    pub per_packet: bool,
    pub min_active: u32,
    pub health: Option<Health>,
    /// keepalived had checkers here, none of which Sluice can run.
    pub checks_dropped: bool,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Tcp,
    Udp { send: String, expect: String },
    Http { path: String, status: String },
}

impl Probe {
    pub fn check(&self) -> &'static str {
        match self {
            Probe::Tcp => "tcp",
            Probe::Udp { .. } => "udp",
            Probe::Http { .. } => "http",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Health {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// "inhibit" | "remove".
    pub on_failure: &'static str,
}

#[derive(Debug)]
pub struct Backend {
    pub address: SocketAddrV4,
    pub weight: u32,
}
