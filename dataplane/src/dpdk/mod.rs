//! Safe wrappers over the raw `dpdk-sys` bindings: the EAL, lcores, mempools, mbufs and ports.
//!
//! Owns: every `unsafe` call into DPDK that the rest of Sluice makes. Callers get owned types that
//! release what they hold on drop (an `Mbuf` frees itself, a `Port` stops and closes, the `Eal`
//! cleans up), and errors that carry DPDK's own message. The per-packet wrappers (`RxBurst`,
//! `TxQueue`) never allocate, lock or block.

mod eal;
mod error;
mod flow;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use eal::Eal;
pub use error::DpdkError;
pub use flow::{create as create_flow, install as install_flows, validate as validate_flow, FlowHandle};
pub use lcore::{launch, LcoreHandle, LcoreState};
pub use mbuf::{L4Checksum, Mbuf, RingQueue, RxBurst, TxQueue, BURST};
pub use mempool::{Mempool, PoolHandle};
pub use port::{LinkStatus, Port, PortStats, RssConfig};
pub use ring::{mbuf_ring, RingConsumer, RingProducer};

/// TSC cycles since an arbitrary origin: the same counter as DPDK's `rte_rdtsc` (and
/// `rte_get_tsc_hz`), read inline on x86-64 rather than through a wrapped C call.
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC exists on every x86-64 CPU and only reads the time-stamp counter.
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: a plain read of the cycle counter through DPDK.
    unsafe {
        dpdk_sys::rte_rdtsc()
    }
}

/// TSC ticks per second, measured by the EAL at start-up.
pub fn tsc_hz() -> u64 {
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// The DPDK version string, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_version()) }.to_string_lossy().into_owned()
}
