pub mod api;
pub mod config;
pub mod health;
pub mod metrics;
