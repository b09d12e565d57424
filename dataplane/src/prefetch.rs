//! A software prefetch hint: start loading the cache line holding `p` into every cache level,
//! so that a burst can issue all its likely misses before it needs the first (VPP's quad loop,
//! `rte_hash_lookup_bulk`). Only a hint: it never faults, whatever the address, and does
//! nothing on targets without one.

#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it does not dereference in the language's sense and never
    // faults, even for an address that is not mapped.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
