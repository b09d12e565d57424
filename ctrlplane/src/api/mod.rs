//! The operator's API: JSON lines over a Unix stream socket (`[api] socket`), what `sluicectl`
//! speaks.
//!
//! - `protocol`: requests and reply framing, parsed strictly with a precise message per
//!   problem;
//! - `reply`: the documents each command answers with;
//! - `server`: `ApiServer`, polled from the housekeeping loop, never blocking on a client;
//! - `client`: `call`, one request and its reply within a deadline;
//! - `format`: the tables `sluicectl` prints.
//!
//! This module knows nothing of the running appliance: the server hands each `Request` to a
//! handler that the appliance provides and sends back what it returns.

mod client;
pub mod format;
pub mod poller;
mod protocol;
mod reply;
mod server;
mod table;

#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
mod server_tests;

pub use client::{call, MAX_REPLY};
pub use protocol::{parse_response, response_line, BackendAction, Request, MAX_WEIGHT};
pub use reply::{
    BackendStatus, BgpStatus, ClusterStatus, NeighborStatus, PeerStatus, PortStatus, Rates, ReloadReport, RouteStatus,
    ServiceStatus, SessionRow, Status, WorkerStatus,
};
pub use server::{answer, ApiServer, IDLE_TIMEOUT, MAX_CLIENTS, MAX_LINE};
pub use table::{Align, Table};
