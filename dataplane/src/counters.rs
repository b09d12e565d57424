//! Per-worker counters: one cache-line-aligned block per worker, written only by that worker
//! (plain load + store, no locked instruction) and read with relaxed loads by the control core,
//! which sums them. Every packet the data path drops is counted here under a `DropReason`.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter with a single writer. `add` is not atomic against other writers, by design.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why the data path dropped a packet. The metric label is `name()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// Too short, or a header field the format does not allow.
    Malformed,
    /// IPv4 for an address the data path owns (VIP, local IP) that no service handles.
    NoService,
    /// The port's tx queue refused the packet.
    TxFull,
    /// The kernel exception path refused the packet.
    ExceptionFull,
}

impl DropReason {
    pub const ALL: [DropReason; 4] =
        [DropReason::Malformed, DropReason::NoService, DropReason::TxFull, DropReason::ExceptionFull];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoService => "no_service",
            DropReason::TxFull => "tx_full",
            DropReason::ExceptionFull => "exception_full",
        }
    }
}

/// Everything one worker counts.
#[repr(align(64))]
#[derive(Default)]
pub struct WorkerCounters {
    pub polls: Counter,
    /// Polls that found at least one packet: busy ratio = busy_polls / polls.
    pub busy_polls: Counter,
    pub rx_packets: Counter,
    pub arp_replies: Counter,
    pub to_kernel: Counter,
    pub from_kernel: Counter,
    drops: [Counter; DropReason::ALL.len()],
}

impl WorkerCounters {
    #[inline(always)]
    pub fn count_drop(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].add(n);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_fill_their_own_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 64);
        assert_eq!(std::mem::size_of::<WorkerCounters>() % 64, 0);
    }

    #[test]
    fn every_reason_has_its_slot() {
        let c = WorkerCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            c.count_drop(*r, i as u64 + 1);
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(c.dropped(*r), i as u64 + 1);
        }
    }
}
