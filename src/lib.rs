//! The Sluice appliance: ties the control plane (`ctrlplane`: config) to the data plane
//! (`dataplane`: ports, workers) in an explicit start-up and shutdown order.

#[macro_use]
pub mod log;
pub mod appliance;
pub mod gen;

/// "0.1.0 (commit abcdef123456)".
pub fn version() -> String {
    format!("{} (commit {})", env!("CARGO_PKG_VERSION"), env!("SLUICE_COMMIT"))
}
