//! Burst I/O on a port's queue: `RxBurst` receives up to `BURST` packets at once and hands
//! them out as owned `Mbuf`s; `TxQueue` collects packets and sends them in bursts.

use std::ptr;

use dpdk_sys::rte_mbuf;

use super::Mbuf;

/// Packets per rx or tx burst.
pub const BURST: usize = 32;

/// One received burst. Yields its packets as owned `Mbuf`s; whatever is not taken is freed.
pub struct RxBurst {
    pkts: [*mut rte_mbuf; BURST],
    len: usize,
    next: usize,
}

impl Default for RxBurst {
    fn default() -> Self {
        RxBurst { pkts: [ptr::null_mut(); BURST], len: 0, next: 0 }
    }
}

impl RxBurst {
    /// Receives up to `BURST` packets from `port`/`queue`, replacing an exhausted burst.
    /// Returns how many arrived.
    pub fn receive(&mut self, port: u16, queue: u16) -> usize {
        debug_assert_eq!(self.next, self.len, "previous burst not consumed");
        // SAFETY: `self.pkts` has room for the `BURST` pointers the PMD may write; any mbufs of a
        // previous burst not taken would only leak (asserted above), never be freed twice. The
        // caller's duty, checked by neither this signature nor DPDK (without RTE_ETHDEV_DEBUG_RX):
        // `port`/`queue` name a configured rx queue of a started port that no other thread polls
        // meanwhile (rx_burst is not thread-safe per queue). Each worker polls only its own queue.
        let n = unsafe { dpdk_sys::rte_eth_rx_burst(port, queue, self.pkts.as_mut_ptr(), BURST as u16) };
        self.len = n as usize;
        self.next = 0;
        self.len
    }

    /// How many packets are not yet taken.
    pub fn remaining(&self) -> usize {
        self.len - self.next
    }

    /// The first segment's bytes of each packet not yet taken, in order: for a look at the
    /// whole burst (prefetching what processing it will need) before it is handled.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.pkts[self.next..self.len].iter().map(|&raw| {
            // SAFETY: the burst owns every pointer in `next..len`, valid mbufs, until they are
            // taken, and `&self` keeps them from being taken while `m` lives.
            let m = unsafe { &*raw };
            // SAFETY: DPDK keeps data_off + data_len within the buffer at buf_addr; the slice lives
            // no longer than the borrow of the burst, which owns the mbuf throughout.
            unsafe {
                std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize)
            }
        })
    }

    /// Takes up to `BURST` packets out of `ring` instead of a port.
    pub fn receive_ring(&mut self, ring: &super::RingConsumer) -> usize {
        debug_assert_eq!(self.next, self.len, "previous burst not consumed");
        self.len = ring.dequeue(&mut self.pkts);
        self.next = 0;
        self.len
    }
}

impl Iterator for RxBurst {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.len {
            return None;
        }
        let raw = self.pkts[self.next];
        self.next += 1;
        if let Some(&ahead) = self.pkts[..self.len].get(self.next) {
            // Warm the next packet's headers while this one is handled.
            prefetch_data(ahead);
        }
        // SAFETY: rx_burst (or the ring) handed this burst ownership of every pointer below
        // `len`; `next` has moved past `raw`, so it is handed out once, to the new `Mbuf` alone.
        unsafe { Mbuf::from_raw(raw) }
    }
}

impl Drop for RxBurst {
    fn drop(&mut self) {
        for raw in &self.pkts[self.next..self.len] {
            // SAFETY: pointers in `next..len` were received and never taken, so the burst still
            // owns them; each is freed once.
            unsafe { dpdk_sys::rte_pktmbuf_free(*raw) };
        }
    }
}

/// Starts loading the first bytes of a packet's data.
#[inline(always)]
fn prefetch_data(m: *mut rte_mbuf) {
    // SAFETY: the only caller, `RxBurst::next`, passes an mbuf the burst owns (an index below
    // `len`), so its header may be read.
    let m = unsafe { &*m };
    crate::prefetch::prefetch((m.buf_addr as *const u8).wrapping_add(usize::from(m.data_off)));
}

/// A transmit queue with a burst buffer in front of it: `push` collects, `flush` sends.
/// Packets the NIC does not take are freed and reported, never retried in a loop.
pub struct TxQueue {
    port: u16,
    queue: u16,
    pkts: [*mut rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the first `len` pointers are owned mbufs (taken from `Mbuf::into_raw` by `push`), so
// moving the queue moves their ownership. It is not Sync and `flush` takes `&mut self`, so one thread at a time uses it.
unsafe impl Send for TxQueue {}

impl TxQueue {
    pub fn new(port: u16, queue: u16) -> TxQueue {
        TxQueue { port, queue, pkts: [ptr::null_mut(); BURST], len: 0 }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queues `m`; when the buffer is full it is flushed first. Returns packets dropped by
    /// that flush (0 in the common case).
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> u32 {
        let dropped = if self.len == BURST { self.flush() } else { 0 };
        self.pkts[self.len] = m.into_raw();
        self.len += 1;
        dropped
    }

    /// Sends what is buffered in one burst; returns how many the queue refused (freed here).
    pub fn flush(&mut self) -> u32 {
        if self.len == 0 {
            return 0;
        }
        // SAFETY: `pkts[..len]` are `len` (at most `BURST`) owned mbufs; the PMD takes ownership of
        // the first `sent` and leaves the rest to us. The caller's duty, checked by neither `new`
        // nor DPDK (without RTE_ETHDEV_DEBUG_TX): `port`/`queue` name a configured tx queue of a
        // started port that no other thread transmits on meanwhile (tx_burst is not thread-safe
        // per queue). Each worker builds its `TxQueue`s on its own queue index.
        let sent = unsafe { dpdk_sys::rte_eth_tx_burst(self.port, self.queue, self.pkts.as_mut_ptr(), self.len as u16) }
            as usize;
        let refused = self.len - sent;
        if refused > 0 {
            // SAFETY: the PMD took `pkts[..sent]`; the `refused` pointers from `sent` on are still
            // owned here and are freed once (`len` is reset below).
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.pkts[sent..].as_mut_ptr(), refused as u32) };
        }
        self.len = 0;
        refused as u32
    }

    pub fn pending(&self) -> usize {
        self.len
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: `pkts[..len]` are owned mbufs never handed on; dropping frees each once.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
        }
    }
}
