//! Safe wrappers over the raw `dpdk-sys` bindings: the EAL, lcores, mempools, mbufs and ports.
//!
//! Owns: every `unsafe` call into DPDK that the rest of Sluice makes. Callers get owned types that
//! release what they hold on drop (an `Mbuf` frees itself, a `Port` stops and closes, the `Eal`
//! cleans up), and errors that carry DPDK's own message. The per-packet wrappers (`RxBurst`,
//! `TxQueue`) never allocate, lock or block.

mod burst;
mod eal;
mod error;
mod flow;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use burst::{RxBurst, TxQueue, BURST};
pub use eal::Eal;
pub use error::DpdkError;
pub use flow::{create as create_flow, install as install_flows, validate as validate_flow, FlowHandle};
pub use lcore::{launch, LcoreHandle, LcoreState};
pub use mbuf::{L4Checksum, Mbuf};
pub use mempool::{Mempool, PoolHandle};
pub use port::{LinkStatus, Port, PortStats, RssConfig};
pub use ring::{mbuf_ring, RingConsumer, RingProducer, RingQueue};

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
    // SAFETY: rte_rdtsc (a wrapped static inline) takes no arguments and only reads the CPU's
    // cycle counter register; it touches no memory of ours and needs no EAL.
    unsafe {
        dpdk_sys::rte_rdtsc()
    }
}

/// TSC ticks per second, measured by the EAL at start-up.
pub fn tsc_hz() -> u64 {
    // SAFETY: rte_get_tsc_hz takes no arguments and only returns a global that the EAL writes
    // inside rte_eal_init (0 before it) and never again, so no write races this read.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// The DPDK version string, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static 32-byte buffer that it fills with
    // snprintf (so NUL-terminated) on its first call and never frees; the string is copied out
    // before this returns. The lazy fill is unsynchronised in DPDK: sound because Sluice calls
    // this only on the main lcore (once, after rte_eal_init), never from two threads at once.
    unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_version()) }.to_string_lossy().into_owned()
}
