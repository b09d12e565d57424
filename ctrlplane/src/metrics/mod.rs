//! Prometheus metrics (`[api] metrics`): the names are part of the interface contract.
//!
//! - `sample`: `Sample`, one reading of every metric as plain values, one `Vec` of rows per
//!   family; the appliance fills it by summing its workers' counters;
//! - `render`: the sample as text exposition format 0.0.4, through the `prometheus` crate's
//!   protobuf model and text encoder;
//! - `http`: `MetricsServer`, a tiny non-blocking HTTP/1.1 server for `GET /metrics`, polled
//!   from the housekeeping loop.

mod http;
mod render;
mod sample;

#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod dashboard_tests;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod render_tests;

pub use http::{MetricsServer, MAX_CONNECTIONS, MAX_REQUEST, READ_DEADLINE, WRITE_DEADLINE};
pub use render::{render, CONTENT_TYPE};
pub use sample::{
    BackendCount, BackendDirection, BackendUp, BackendWeight, CheckResult, HealthChecks, LocalPortsFree, NeighborUp,
    PeerSample, PortCount, PortDirection, PortDrops, PortSteering, RouteAnnounced, Sample, ServiceCount,
    ServiceResultCount, ServiceSessions, WorkerBusy, WorkerCount, WorkerCycles, WorkerDrops, WorkerHistogram,
    WorkerRedirected, WorkerSeconds,
};
