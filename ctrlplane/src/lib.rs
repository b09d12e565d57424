pub mod api;
pub mod config;
pub mod metrics;
