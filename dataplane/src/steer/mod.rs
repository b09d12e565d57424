//! Reply steering: getting a backend's reply, addressed to a local IP and port, onto the rx
//! queue of the worker that owns that local address (`laddr`), without software handoff.
//!
//! Owns: pure computations over plain values, built also without the `dpdk` feature:
//! - `toeplitz`: the RSS hash NICs compute, bit by bit and by per-key table.
//! - `rss`: which queue a tuple lands on, given a port's key and redirection table, and the
//!   choice of a local port whose replies land on the owner's queue ("rss" mode).
//! - `flow`: the per-local-IP rules of "flow" mode (IPv4 dst = local IP -> owner's queue);
//!   `dpdk::install_flows` puts them on a port.
//!
//! May touch: a worker's `laddr::PortPool`, through `rss::PortSource`. Must never, in
//! `RssSteering::{queue, lands_on, choose_port}` (the only calls made while a session opens):
//! allocate, lock, block or panic. Building a `RssSteering` or a rule list allocates: do it
//! on the control core.

pub mod flow;
pub mod rss;
pub mod toeplitz;

pub use flow::{rules, rules_for_workers, DuplicateLocalIp, FlowRule};
pub use rss::{PortChoiceError, PortSource, RssSteering, SteeredPort, TRIES_PER_EXPECTED};
pub use toeplitz::{Toeplitz, MS_DEFAULT_KEY};
