//! `BigArray`: a fixed-size array for the large per-worker tables (session slab, flow index,
//! wheel links), on 2 MiB pages where the kernel gives them.
//!
//! Why: at a million flows the tables span about 90 MB. On 4 KiB pages that is some 22,000
//! pages, far beyond the TLB, so a packet pays a page walk on top of each cache miss, and a
//! prefetch cannot hide a walk as well as a miss. On 2 MiB pages it is 45 pages.
//! How: arrays of 2 MiB or more are allocated aligned to 2 MiB, rounded up to whole huge
//! pages, and marked `MADV_HUGEPAGE` before their first write, so that transparent huge pages
//! back them when the system allows it (`/sys/kernel/mm/transparent_hugepage/enabled` set to
//! `always` or `madvise`, the default on Debian). Otherwise they are ordinary memory: never a
//! failure, only slower. DPDK's reserved hugepages stay for the mbuf pools.
//! NUMA: every element is written here, at construction, and a worker's tables are built by
//! `Worker::new` on the worker's own lcore, so the kernel's first-touch policy puts them on the
//! worker's node.
//! Owns: its allocation. Must never: be resized (the tables never grow), or be used for
//! anything that must be shared with DPDK (this memory is not registered with the EAL).

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A transparent huge page on x86-64 and aarch64 with 4 KiB base pages.
pub const HUGE_PAGE: usize = 2 << 20;

/// `len` copies of a `T: Copy`, allocated once; derefs to a slice.
pub struct BigArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// The layout it was allocated with (zero size: nothing allocated).
    layout: Layout,
}

// SAFETY: a `BigArray` owns its elements outright, like a `Box<[T]>`.
unsafe impl<T: Copy + Send> Send for BigArray<T> {}
// SAFETY: shared access only reads, as for `Box<[T]>`.
unsafe impl<T: Copy + Sync> Sync for BigArray<T> {}

impl<T: Copy> BigArray<T> {
    /// `len` copies of `value`. Aborts like `Vec` if memory runs out.
    pub fn new(len: usize, value: T) -> BigArray<T> {
        let array = BigArray::<T>::uninit(len);
        for i in 0..len {
            // SAFETY: `i < len` and the allocation holds `len` elements of `T`, aligned.
            unsafe { array.ptr.as_ptr().add(i).write(value) };
        }
        array
    }

    /// Room for `len` elements, not yet written: every caller writes all of them before the
    /// array is read.
    fn uninit(len: usize) -> BigArray<T> {
        let bytes = std::mem::size_of::<T>().checked_mul(len).expect("BigArray size overflows");
        let huge = bytes >= HUGE_PAGE;
        let (size, align) = if huge {
            (bytes.div_ceil(HUGE_PAGE) * HUGE_PAGE, HUGE_PAGE.max(std::mem::align_of::<T>()))
        } else {
            (bytes, std::mem::align_of::<T>())
        };
        let layout = Layout::from_size_align(size, align).expect("BigArray layout");
        if size == 0 {
            return BigArray { ptr: NonNull::dangling(), len, layout };
        }
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else { alloc::handle_alloc_error(layout) };
        if huge {
            // Before the first write, so that the first faults already take huge pages.
            advise_huge(raw, size);
        }
        BigArray { ptr, len, layout }
    }

    /// Bytes allocated (whole huge pages for a large array).
    pub fn allocated_bytes(&self) -> usize {
        self.layout.size()
    }
}

/// Asks the kernel for transparent huge pages over `[at, at + size)`, both 2 MiB aligned. A
/// refusal (no THP support, a kernel that says `never`) leaves ordinary pages.
fn advise_huge(at: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: the range is this allocation's, which nothing else uses yet; madvise with
    // MADV_HUGEPAGE changes no content and fails harmlessly.
    unsafe {
        libc::madvise(at.cast(), size, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (at, size);
}

impl<T: Copy> Drop for BigArray<T> {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: allocated in `new` with exactly this layout; `T: Copy` needs no drop.
            unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
        }
    }
}

impl<T: Copy> Deref for BigArray<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised elements live at `ptr` (dangling but aligned when empty).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for BigArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Clone for BigArray<T> {
    fn clone(&self) -> BigArray<T> {
        let copy = BigArray::<T>::uninit(self.len);
        // SAFETY: both hold `len` elements; distinct allocations never overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), copy.ptr.as_ptr(), self.len) };
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_arrays_are_aligned_to_huge_pages_and_hold_their_values() {
        let mut a = BigArray::new(HUGE_PAGE / 8 + 3, 7u64);
        assert_eq!(a.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(a.allocated_bytes(), 2 * HUGE_PAGE, "rounded up to whole huge pages");
        assert!(a.iter().all(|&v| v == 7));
        a[HUGE_PAGE / 8 + 2] = 9;
        let b = a.clone();
        assert_eq!((b.len(), b[HUGE_PAGE / 8 + 2], b[0]), (a.len(), 9, 7));
    }

    #[test]
    fn small_and_empty_arrays() {
        let a = BigArray::new(3, [1u8; 64]);
        assert_eq!((a.len(), a.allocated_bytes()), (3, 192));
        let e: BigArray<u32> = BigArray::new(0, 0);
        assert!(e.is_empty());
        assert!(e.clone().is_empty());
    }
}
