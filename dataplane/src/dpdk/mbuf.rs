use std::ptr::{self, NonNull};

use dpdk_sys::rte_mbuf;

use super::PoolHandle;

// RTE_MBUF_F_* are macros with shifts; bindgen cannot see them.
// Each checksum status is two bits: BAD alone means bad; both bits mean NONE (not checked,
// data valid); GOOD alone means good.
const RX_IP_CKSUM_BAD: u64 = 1 << 4;
const RX_IP_CKSUM_MASK: u64 = (1 << 4) | (1 << 7);
const RX_L4_CKSUM_BAD: u64 = 1 << 3;
const RX_L4_CKSUM_MASK: u64 = (1 << 3) | (1 << 8);
const RX_CKSUM_MASK: u64 = RX_IP_CKSUM_MASK | RX_L4_CKSUM_MASK;
const TX_TCP_CKSUM: u64 = 1 << 52;
const TX_UDP_CKSUM: u64 = 3 << 52;
const TX_IP_CKSUM: u64 = 1 << 54;
const TX_IPV4: u64 = 1 << 55;

/// Which L4 checksum the NIC is asked to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Checksum {
    Tcp,
    Udp,
    None,
}

/// Packets per rx or tx burst.
pub const BURST: usize = 32;

/// An owned packet buffer. Dropping it returns it to its pool; `into_raw` hands ownership to
/// DPDK (a tx burst) instead.
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an `Mbuf` is the sole owner of its mbuf, like a `Box`, and an mbuf has no thread
// affinity: DPDK passes mbufs between lcores by design, and freeing one on any thread returns it
// to its pool, which is thread-safe (see `Mempool`'s Send).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// # Safety
    /// `raw` must be null (giving `None`) or a valid mbuf, from a pool that outlives it, that the
    /// caller owns and passes on: nothing else may use or free it afterwards. Its data must not
    /// overlap another live mbuf's (no clone or attached mbuf), since `data_mut` gives `&mut`.
    pub unsafe fn from_raw(raw: *mut rte_mbuf) -> Option<Mbuf> {
        NonNull::new(raw).map(Mbuf)
    }

    /// A fresh empty mbuf from `pool`, or None when the pool is exhausted.
    pub fn alloc(pool: PoolHandle) -> Option<Mbuf> {
        // SAFETY: a `PoolHandle` points at a live pool: its contract, kept by the appliance
        // (workers, which hold the handles, are joined before the pool is freed) and not checked
        // by the type. rte_pktmbuf_alloc is thread-safe on it and returns NULL or a fresh mbuf
        // (refcnt 1, one segment, direct) that nothing else references, which `from_raw` owns.
        unsafe { Mbuf::from_raw(dpdk_sys::rte_pktmbuf_alloc(pool.as_ptr())) }
    }

    /// Grows the packet by `len` bytes at the tail and returns them; None if they do not fit.
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: `self.0` is a valid mbuf this `Mbuf` owns, and `&mut self` excludes any other
        // access; rte_pktmbuf_append checks the last segment's tailroom and returns NULL,
        // changing nothing, when `len` bytes do not fit.
        let tail = unsafe { dpdk_sys::rte_pktmbuf_append(self.0.as_ptr(), len) };
        if tail.is_null() {
            return None;
        }
        // SAFETY: rte_pktmbuf_append reserved `len` bytes at `tail` inside the last segment's
        // buffer (DPDK memory, holding old data or zeroes, never uninitialised in Rust's sense);
        // the slice borrows `self` mutably, so nothing else reaches those bytes while it lives.
        Some(unsafe { std::slice::from_raw_parts_mut(tail as *mut u8, len as usize) })
    }

    /// Grows the packet by `len` bytes at the front (into the headroom); false if they do not
    /// fit. `data()` then starts with them.
    pub fn prepend(&mut self, len: u16) -> bool {
        // SAFETY: the mbuf is valid and owned, with `&mut self` the only access; DPDK checks the
        // headroom and returns null, changing nothing, if it is short.
        !unsafe { dpdk_sys::rte_pktmbuf_prepend(self.0.as_ptr(), len) }.is_null()
    }

    /// Removes `len` bytes from the front of the packet; false if it is shorter.
    pub fn adj(&mut self, len: u16) -> bool {
        // SAFETY: the mbuf is valid and owned, with `&mut self` the only access; DPDK checks the
        // first segment's length and returns null, changing nothing, if it is short.
        !unsafe { dpdk_sys::rte_pktmbuf_adj(self.0.as_ptr(), len) }.is_null()
    }

    /// True when the NIC checked a checksum of this packet on receipt and found it wrong.
    #[inline]
    pub fn rx_checksum_bad(&self) -> bool {
        let f = self.raw().ol_flags;
        f & RX_IP_CKSUM_MASK == RX_IP_CKSUM_BAD || f & RX_L4_CKSUM_MASK == RX_L4_CKSUM_BAD
    }

    /// Asks the NIC to fill the IPv4 header checksum and `l4` checksum on transmit. The L4
    /// checksum field must already hold the pseudo-header sum.
    #[inline]
    pub fn request_tx_checksums(&mut self, l2_len: u8, l3_len: u16, l4: L4Checksum) {
        // SAFETY: `self.0` points at a valid mbuf this `Mbuf` owns, and `&mut self` makes `m` the
        // only reference to its header while it lives.
        let m = unsafe { self.0.as_mut() };
        let l4_flag = match l4 {
            L4Checksum::Tcp => TX_TCP_CKSUM,
            L4Checksum::Udp => TX_UDP_CKSUM,
            L4Checksum::None => 0,
        };
        m.ol_flags = (m.ol_flags & !RX_CKSUM_MASK) | TX_IPV4 | TX_IP_CKSUM | l4_flag;
        // tx_offload: l2_len in bits 0..7, l3_len in bits 7..16.
        m.__bindgen_anon_3.tx_offload = u64::from(l2_len & 0x7f) | (u64::from(l3_len & 0x1ff) << 7);
    }

    pub fn into_raw(self) -> *mut rte_mbuf {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }

    fn raw(&self) -> &rte_mbuf {
        // SAFETY: `self.0` stays a valid mbuf while `self` lives (owned, freed only in Drop), and
        // no `&mut` to the header can exist during this `&self` borrow.
        unsafe { self.0.as_ref() }
    }

    /// The first segment's bytes (DPDK's `rte_pktmbuf_mtod` and `data_len`).
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: DPDK keeps data_off + data_len within the buf_len bytes at buf_addr (and so
        // does `set_len`); the bytes live as long as the mbuf, which this borrow of `self` keeps.
        unsafe { std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize) }
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (m.buf_addr as *mut u8, m.data_off as usize, m.data_len as usize);
        // SAFETY: in bounds as in `data`; `&mut self` is the only access to this mbuf, and its
        // data overlaps no other live mbuf's (the `from_raw` contract), so the `&mut` is unique.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    /// Total length over all segments.
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The port it was received on.
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The mbuf's user tag (`hash.usr`): free for the application once the packet is
    /// received (it shares room with the RSS hash, which Sluice does not read).
    pub fn tag(&self) -> u32 {
        // SAFETY: reading `usr` reinterprets the union's first four bytes as a u32, valid for
        // any variant since all of them are plain integers.
        unsafe { self.raw().__bindgen_anon_2.hash.usr }
    }

    pub fn set_tag(&mut self, tag: u32) {
        // SAFETY: a valid, owned mbuf, and `&mut self` makes this the only reference to it.
        unsafe { self.0.as_mut() }.__bindgen_anon_2.hash.usr = tag;
    }

    /// Sets the first (and only) segment's length, within the buffer's room.
    /// Returns false, changing nothing, if the mbuf is chained or `len` does not fit.
    pub fn set_len(&mut self, len: u16) -> bool {
        // SAFETY: a valid, owned mbuf, and `&mut self` makes `m` the only reference to it.
        let m = unsafe { self.0.as_mut() };
        if m.nb_segs != 1 || m.data_off as usize + len as usize > m.buf_len as usize {
            return false;
        }
        m.data_len = len;
        m.pkt_len = len as u32;
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: `self.0` is still owned (`into_raw` forgets `self` instead of dropping it), so
        // it is freed exactly once, with all its segments, into pools kept alive longer than any
        // mbuf (see `Mempool`'s Drop).
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) };
    }
}

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
}

impl RxBurst {
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

#[inline(always)]
fn prefetch_data(m: *mut rte_mbuf) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the only caller, `RxBurst::next`, passes an mbuf the burst owns (an index below
    // `len`), so its header may be read; buf_addr + data_off lies inside its buffer, so `add` stays in bounds; and a prefetch
    // is only a hint that never faults (SSE is part of the x86-64 baseline).
    unsafe {
        let m = &*m;
        let data = (m.buf_addr as *const i8).add(m.data_off as usize);
        std::arch::x86_64::_mm_prefetch(data, std::arch::x86_64::_MM_HINT_T0);
    }
}

/// A transmit queue with a burst buffer in front of it: `push` collects, `flush` sends.
/// Packets the NIC does not take are freed and reported, never retried in a loop.
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

pub struct TxQueue {
    port: u16,
    queue: u16,
    pkts: [*mut rte_mbuf; BURST],
    len: usize,
}

// SAFETY: as for `RingQueue`, the first `len` pointers are owned mbufs, so moving the queue moves
// their ownership. It is not Sync and `flush` takes `&mut self`, so one thread at a time uses it.
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
