//! Sluice's data plane: what runs on a worker lcore, and the safe DPDK wrappers it uses.
//!
//! A packet's way, inside `worker::Worker::run`: `dpdk::RxBurst` -> `classify` -> ARP answered
//! and learned (`neigh`) | kernel exception path | `fullnat` (`session` lookup, `sched`,
//! `laddr`, `nat` rewrite) -> next hop by `route` and `neigh` -> `dpdk::TxQueue`. Every drop is
//! counted under a `counters::DropReason`.
//!
//! Everything but `dpdk` and `worker` is pure logic over byte slices and plain values, built
//! also without the `dpdk` feature (fuzzing, benchmarks, unit tests).

pub mod bigmem;
pub mod classify;
pub mod counters;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod dump;
pub mod fullnat;
pub mod ipmap;
pub mod laddr;
pub mod limits;
pub mod mix;
pub mod nat;
pub mod neigh;
pub mod prefetch;
pub mod publish;
pub mod route;
pub mod sched;
pub mod session;
pub mod snapshot;
pub mod steer;
pub mod sync;
pub mod synproxy;
pub mod wire;
#[cfg(feature = "dpdk")]
pub mod worker;
