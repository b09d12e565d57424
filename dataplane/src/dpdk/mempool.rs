use std::ffi::CString;
use std::ptr::NonNull;

use super::DpdkError;

/// A packet-buffer pool (`rte_pktmbuf_pool_create`). Freed on drop, so it must outlive every
/// port queue that was set up with it.
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
}

// SAFETY: the pointer is owned by this `Mempool` alone (freed only in its Drop), and an mbuf pool
// is thread-safe: gets and puts go through the multi-producer/multi-consumer ring ops that
// rte_pktmbuf_pool_create picks by default (ring_mp_mc), and a per-lcore cache is used only by
// the lcore whose id it bears (threads without an lcore id bypass the caches).
unsafe impl Send for Mempool {}
// SAFETY: through `&Mempool` one gets only `available` (a read of counters) and copies of the
// pointer, whose uses are thread-safe as said for Send.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `count` mbufs of the default data room (2048 bytes plus headroom), with a per-lcore
    /// cache of `cache` mbufs, on NUMA socket `socket`.
    pub fn pktmbuf(name: &str, count: u32, cache: u32, socket: i32) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::other("mempool", "name contains NUL"))?;
        // SAFETY: `cname` is a NUL-terminated string alive for the call (DPDK copies the name);
        // the other arguments are plain integers that DPDK validates, returning NULL with
        // rte_errno on failure. It needs an initialised EAL, which is not checked here (no `Eal`
        // is asked for): Sluice creates its pool right after Eal::init.
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
        // SAFETY: `self.raw` is a live pool (freed only when `self` drops). The call only reads
        // the pool's counters and every lcore's cache length; lcores changing those meanwhile
        // make the count approximate (as DPDK documents), never invalid.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: `self.raw` came from rte_pktmbuf_pool_create and is freed only here, once.
        // DPDK requires that no mbuf, queue or thread still uses the pool: not checked by the
        // types (a `PoolHandle` does not borrow it), but by the owner's order, which sets up port
        // queues after the pool, closes them before it, and joins workers before dropping it.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}

/// A non-owning reference to a `Mempool`; see [`Mempool::handle`].
#[derive(Clone, Copy)]
pub struct PoolHandle(NonNull<dpdk_sys::rte_mempool>);

// SAFETY: the handle is only a pointer to a pool, and the pool is thread-safe (see `Mempool`'s
// Send), so using it from another thread is sound. That the pool is still alive is a separate
// contract of `Mempool::handle`, upheld by the appliance, not by this type.
unsafe impl Send for PoolHandle {}

impl PoolHandle {
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.0.as_ptr()
    }
}
