use std::cell::Cell;
use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use dpdk_sys::rte_mbuf;

use super::burst::BURST;
use super::{DpdkError, Mbuf};

// RING_F_SP_ENQ | RING_F_SC_DEQ: macros in rte_ring.h.
const SINGLE_PRODUCER_SINGLE_CONSUMER: u32 = 0x0001 | 0x0002;

/// A single-producer single-consumer ring of mbufs between two lcores (`rte_ring`), used in
/// bursts. It exists only as its two halves, each owned by one lcore: the types make a second
/// producer or consumer impossible. Whatever is left in it is freed with the last half.
struct MbufRing {
    raw: NonNull<dpdk_sys::rte_ring>,
}

// SAFETY: the ring is DPDK shared memory with no tie to the creating thread; whichever thread
// holds the last half frees it (after the Arc's count orders it behind the other half's uses).
unsafe impl Send for MbufRing {}
// SAFETY: shared only by its two halves (`MbufRing` is private), and each half, neither Sync nor
// Clone, calls only its own side: at most one thread enqueues and at most one dequeues at a time,
// which is exactly what an SP/SC rte_ring allows to run concurrently.
unsafe impl Sync for MbufRing {}

/// The enqueueing half: `Send` (it moves to its lcore) but neither `Sync` nor `Clone`.
pub struct RingProducer {
    ring: Arc<MbufRing>,
    _not_sync: PhantomData<Cell<()>>,
}

/// The dequeueing half: `Send` but neither `Sync` nor `Clone`.
pub struct RingConsumer {
    ring: Arc<MbufRing>,
    _not_sync: PhantomData<Cell<()>>,
}

/// A ring of `size` slots (a power of two; one stays empty), as its two halves.
pub fn mbuf_ring(name: &str, size: u32, socket: i32) -> Result<(RingProducer, RingConsumer), DpdkError> {
    let cname = CString::new(name).map_err(|_| DpdkError::other("rte_ring_create", "name contains NUL"))?;
    // SAFETY: `cname` is a NUL-terminated string alive for the call (DPDK copies the name); DPDK
    // checks `size` (a power of two) and the flags and returns NULL with rte_errno on failure.
    let raw = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), size, socket, SINGLE_PRODUCER_SINGLE_CONSUMER) };
    let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_rte_errno(format!("rte_ring_create({name})")))?;
    let ring = Arc::new(MbufRing { raw });
    Ok((RingProducer { ring: ring.clone(), _not_sync: PhantomData }, RingConsumer { ring, _not_sync: PhantomData }))
}

impl RingProducer {
    /// Enqueues as many of `pkts` as fit, in one burst; returns how many (the caller keeps
    /// ownership of the rest).
    ///
    /// # Safety
    /// Every pointer is an mbuf the caller owns and gives up if it is enqueued: the consumer
    /// takes each one as an owned `Mbuf` (and frees it).
    #[inline]
    pub unsafe fn enqueue(&self, pkts: &[*mut rte_mbuf]) -> usize {
        self.ring.enqueue(pkts)
    }
}

impl RingConsumer {
    /// Dequeues up to `out.len()` mbufs in one burst; returns how many were written.
    #[inline]
    pub fn dequeue(&self, out: &mut [*mut rte_mbuf]) -> usize {
        self.ring.dequeue(out)
    }
}

impl MbufRing {
    #[inline]
    fn enqueue(&self, pkts: &[*mut rte_mbuf]) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        // SAFETY: `self.raw` is live while any half is. `pkts` is valid for `pkts.len()` reads of
        // pointer-sized objects, which the ring copies. Only the producing half calls this, so
        // there is a single producer, as the SP enqueue requires. The ring stores the pointers
        // without reading through them; that they are owned mbufs (whose ownership passes to the
        // ring) is the caller's duty (`RingProducer::enqueue`'s `# Safety`): its one caller,
        // `RingQueue`, passes only pointers from `Mbuf::into_raw`.
        unsafe {
            dpdk_sys::rte_ring_sp_enqueue_burst(
                self.raw.as_ptr(),
                pkts.as_ptr() as *const *mut std::os::raw::c_void,
                pkts.len() as u32,
                std::ptr::null_mut(),
            ) as usize
        }
    }

    #[inline]
    fn dequeue(&self, out: &mut [*mut rte_mbuf]) -> usize {
        // SAFETY: `self.raw` is live while any half is. `out` is an exclusively borrowed slice
        // valid for `out.len()` pointer writes, and the ring writes at most that many. Only the
        // consuming half (or the last half, in Drop) calls this, so there is a single consumer,
        // as the SC dequeue requires.
        unsafe {
            dpdk_sys::rte_ring_sc_dequeue_burst(
                self.raw.as_ptr(),
                out.as_mut_ptr() as *mut *mut std::os::raw::c_void,
                out.len() as u32,
                std::ptr::null_mut(),
            ) as usize
        }
    }
}

impl Drop for MbufRing {
    fn drop(&mut self) {
        let mut left = [std::ptr::null_mut(); BURST];
        loop {
            let n = self.dequeue(&mut left);
            if n == 0 {
                break;
            }
            for &m in &left[..n] {
                // SAFETY: every pointer in the ring is an owned mbuf handed over through `enqueue`
                // (from `Mbuf::into_raw`, see there); dequeuing it makes this its only owner.
                drop(unsafe { Mbuf::from_raw(m) });
            }
        }
        // SAFETY: `self.raw` came from rte_ring_create; this is the last owner (both halves are
        // gone), the ring was just emptied, and it is freed only here, once.
        unsafe { dpdk_sys::rte_ring_free(self.raw.as_ptr()) };
    }
}

/// Mbufs bound for another worker, sent over its ring in bursts.
pub struct RingQueue {
    pkts: [*mut rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the first `len` pointers are owned mbufs (from `Mbuf::into_raw`) that nothing else
// refers to, so the queue is like a `[Mbuf; BURST]`, and `Mbuf` is Send.
unsafe impl Send for RingQueue {}

impl Default for RingQueue {
    fn default() -> Self {
        RingQueue { pkts: [ptr::null_mut(); BURST], len: 0 }
    }
}

impl RingQueue {
    /// Queues `m`; when the buffer is full it is flushed into `ring` first. Returns packets
    /// the ring refused (freed).
    #[inline]
    pub fn push(&mut self, ring: &super::RingProducer, m: Mbuf) -> u32 {
        let dropped = if self.len == BURST { self.flush(ring) } else { 0 };
        self.pkts[self.len] = m.into_raw();
        self.len += 1;
        dropped
    }

    /// Sends what is buffered in one burst; returns how many the ring refused (freed here).
    pub fn flush(&mut self, ring: &super::RingProducer) -> u32 {
        // SAFETY: `pkts[..len]` came from `Mbuf::into_raw` in `push`: owned here, given up to
        // the ring for those it takes.
        let sent = unsafe { ring.enqueue(&self.pkts[..self.len]) };
        let refused = self.len - sent;
        if refused > 0 {
            // SAFETY: the ring took `pkts[..sent]`, in order; `pkts[sent..len]` (`refused` pointers)
            // are still owned here and are freed once (`len` is reset below).
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.pkts[sent..self.len].as_mut_ptr(), refused as u32) };
        }
        self.len = 0;
        refused as u32
    }
}

impl Drop for RingQueue {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: `pkts[..len]` are owned mbufs never handed on; dropping frees each once.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
        }
    }
}
