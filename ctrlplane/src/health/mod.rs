//! Health checks: whether each backend answers, run on the housekeeping core.
//!
//! The appliance hands the `Checker` one `Target` per (service, backend) whose service has a
//! `[service.health]` check other than `none`, then calls `Checker::poll` from its housekeeping
//! loop and applies the `Transition`s it returns (weight 0 or removal, per `on_failure`).
//! Checks use plain kernel sockets in the appliance's own network namespace; the kernel reaches
//! the backends through Sluice's exception path, so nothing here knows about DPDK.
//!
//! - `probe`: one check in flight: a non-blocking socket, its stage, its deadline;
//! - `http`: the request an http check sends and the status line it reads back;
//! - `tally`: successes and failures in a row, and when they change a backend's state;
//! - `checker`: `Checker`, the schedule and the one `poll(2)` loop that services every probe.
//!
//! Why non-blocking sockets and one `poll` loop, with std and libc only: hundreds of backends
//! are checked every second or so, and a slow or silent one must not delay the others. A
//! blocking socket per check would need a thread per backend (hundreds of stacks, and locks
//! to hand results back to the loop that applies them), and an async runtime would bring an
//! executor, its own threads and a large dependency to the housekeeping core for what is a
//! handful of state machines. Here each check is a non-blocking socket with its own deadline;
//! a single `poll` waits on all of them at once, for no longer than the nearest deadline, the
//! next scheduled check or the caller's own `wait`, whichever comes first. The cost per
//! round is linear in the number of checks in flight, which is small at hundreds of targets.
//!
//! Never: block on one backend, panic on anything a backend sends, or buffer more than
//! `MAX_REPLY` bytes of a reply.

mod checker;
mod http;
mod probe;
mod tally;

#[cfg(test)]
mod checker_tests;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod udp_tests;

use std::fmt;
use std::net::SocketAddrV4;
use std::time::Duration;

use crate::config::{CheckKind, Health, HTTP_DEFAULT_PATH, HTTP_DEFAULT_STATUS};

pub use checker::Checker;

/// The most bytes of a reply a check reads: a udp datagram, or an http status line.
pub const MAX_REPLY: usize = 4096;

/// One backend of one service, and how to check it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub service: String,
    pub backend: SocketAddrV4,
    pub spec: CheckSpec,
}

/// How a backend is checked: `[service.health]` without `check = "none"` and `on_failure`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Tcp, Udp or Http; a target is never made for `CheckKind::None`.
    pub kind: CheckKind,
    /// From the start of one check to the start of the next.
    pub interval: Duration,
    /// How long one check may take before it counts as failed.
    pub timeout: Duration,
    /// Successes in a row that bring a backend up.
    pub rise: u32,
    /// Failures in a row that take a backend down.
    pub fall: u32,
    /// udp: the datagram's payload; http: the request path.
    pub send: String,
    /// udp: the prefix the reply must start with; http: the status code.
    pub expect: String,
    /// Bytes sent before the check's own (none from `from_config`): the PROXY protocol's LOCAL
    /// header for backends of a `client_address = "proxy-v2"` service, which expect a header
    /// on every connection and datagram. udp: the start of the datagram; tcp: written once
    /// connected; http: before the request.
    pub preamble: Vec<u8>,
}

impl CheckSpec {
    /// The check `health` describes, or `None` for `check = "none"`. An http check's empty
    /// `send` and `expect` become `/` and `200`, as the config parser would have made them.
    pub fn from_config(health: &Health) -> Option<CheckSpec> {
        let (mut send, mut expect) = (health.send.clone(), health.expect.clone());
        match health.check {
            CheckKind::None => return None,
            CheckKind::Http => {
                if send.is_empty() {
                    send = HTTP_DEFAULT_PATH.to_owned();
                }
                if expect.is_empty() {
                    expect = HTTP_DEFAULT_STATUS.to_owned();
                }
            }
            CheckKind::Tcp | CheckKind::Udp => {}
        }
        Some(CheckSpec {
            kind: health.check,
            interval: health.interval,
            timeout: health.timeout,
            rise: health.rise,
            fall: health.fall,
            send,
            expect,
            preamble: Vec::new(),
        })
    }
}

/// A backend that went up or down, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub service: String,
    pub backend: SocketAddrV4,
    /// The new state: `true` for up.
    pub up: bool,
    /// `3 checks ok` when it comes up; the last failure when it goes down.
    pub reason: String,
}

/// One structured log line: `service=dns backend=198.18.1.2:53 down -> up reason="3 checks ok"`.
impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (old, new) = if self.up { ("down", "up") } else { ("up", "down") };
        write!(f, "service={} backend={} {old} -> {new} reason=\"", self.service, self.backend)?;
        for c in self.reason.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}
