pub mod api;
pub mod bgp;
pub mod config;
pub mod health;
pub mod import;
pub mod metrics;
pub mod sync;
