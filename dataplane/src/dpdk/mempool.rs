use std::ffi::CString;
use std::ptr::NonNull;

use super::DpdkError;

/// A packet-buffer pool (`rte_pktmbuf_pool_create`). Freed on drop, so it must outlive every
/// port queue that was set up with it.
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
}

// The pool itself is thread-safe (per-lcore caches plus a lock-free ring).
unsafe impl Send for Mempool {}
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `count` mbufs of the default data room (2048 bytes plus headroom), with a per-lcore
    /// cache of `cache` mbufs, on NUMA socket `socket`.
    pub fn pktmbuf(name: &str, count: u32, cache: u32, socket: i32) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::other("mempool", "name contains NUL"))?;
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                count,
                cache,
                0,
                dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| DpdkError::from_rte_errno(format!("rte_pktmbuf_pool_create({name}, {count} mbufs)")))
    }

    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// A copyable reference for workers that allocate (ARP requests, ICMP errors). Valid while
    /// the pool lives, which the appliance guarantees by joining workers before freeing it.
    pub fn handle(&self) -> PoolHandle {
        PoolHandle(self.raw)
    }

    /// Mbufs currently free in the pool (approximate while lcores run).
    pub fn available(&self) -> u32 {
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}

/// A non-owning reference to a `Mempool`; see [`Mempool::handle`].
#[derive(Clone, Copy)]
pub struct PoolHandle(NonNull<dpdk_sys::rte_mempool>);

unsafe impl Send for PoolHandle {}

impl PoolHandle {
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.0.as_ptr()
    }
}
