use std::ptr::NonNull;

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
