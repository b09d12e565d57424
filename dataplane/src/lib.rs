//! Sluice's data plane: what runs on a worker lcore, and the safe DPDK wrappers it uses.
//!
//! A packet's way: `dpdk::RxBurst` -> `classify` -> (ARP answered | kernel exception path |
//! counted drop) -> `dpdk::TxQueue`, all inside `worker::Worker::run`.

pub mod classify;
pub mod counters;
pub mod dpdk;
pub mod laddr;
pub mod nat;
pub mod neigh;
pub mod route;
pub mod sched;
pub mod session;
pub mod wire;
pub mod worker;
