//! The Sluice appliance: ties the control plane (`ctrlplane`: config) to the data plane
//! (`dataplane`: ports, workers) in an explicit start-up and shutdown order.

#[macro_use]
extern crate log;

pub mod appliance;
pub mod cli;
pub mod logging;

/// "0.1.0 (commit abcdef123456)".
pub fn version() -> String {
    cli::VERSION.to_owned()
}
