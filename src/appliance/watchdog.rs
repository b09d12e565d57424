//! Worker liveness: a worker counts every pass of its poll loop (`WorkerCounters::polls`), also
//! when idle (adaptive sleeps are at most a millisecond). A count that stands still for
//! `STALL_AFTER` means the worker is stuck: nothing it owns moves, so the node must not keep
//! attracting traffic (its BGP routes are withdrawn until the worker polls again). A panicked
//! worker ends the appliance instead (serve.rs).

use std::time::{Duration, Instant};

/// How long a worker may go without a pass of its loop.
pub const STALL_AFTER: Duration = Duration::from_secs(1);

/// A worker that stopped or started polling again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub worker: usize,
    pub stalled: bool,
    /// How long its count stood still.
    pub still_for: Duration,
}

pub struct Watchdog {
    after: Duration,
    /// Per worker: the last count seen, when it last moved, and whether it is stalled.
    workers: Vec<(u64, Instant, bool)>,
}

impl Watchdog {
    pub fn new(workers: usize, after: Duration, now: Instant) -> Watchdog {
        Watchdog { after, workers: vec![(0, now, false); workers] }
    }

    /// Takes each worker's current count; returns the workers whose state changed.
    pub fn observe(&mut self, polls: impl IntoIterator<Item = u64>, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for (worker, (count, state)) in polls.into_iter().zip(self.workers.iter_mut()).enumerate() {
            let (last, moved, stalled) = state;
            let still_for = now.saturating_duration_since(*moved);
            if count != *last {
                if *stalled {
                    changes.push(Change { worker, stalled: false, still_for });
                }
                *state = (count, now, false);
            } else if !*stalled && still_for >= self.after {
                *stalled = true;
                changes.push(Change { worker, stalled: true, still_for });
            }
        }
        changes
    }

    pub fn any_stalled(&self) -> bool {
        self.workers.iter().any(|w| w.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_standing_still_is_a_stall_until_it_moves() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut dog = Watchdog::new(2, Duration::from_secs(1), t0);
        assert!(dog.observe([1, 1], ms(100)).is_empty());
        assert!(dog.observe([2, 1], ms(900)).is_empty(), "worker 1 still within its second");
        let stalled = dog.observe([3, 1], ms(1200));
        assert_eq!(stalled, [Change { worker: 1, stalled: true, still_for: Duration::from_millis(1100) }]);
        assert!(dog.any_stalled());
        assert!(dog.observe([4, 1], ms(5000)).is_empty(), "said once");
        let back = dog.observe([5, 2], ms(5100));
        assert_eq!(back, [Change { worker: 1, stalled: false, still_for: Duration::from_millis(5000) }]);
        assert!(!dog.any_stalled());
    }

    #[test]
    fn a_worker_that_never_polled_stalls_too() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(1, Duration::from_secs(1), t0);
        assert_eq!(dog.observe([0], t0 + Duration::from_secs(2)).len(), 1);
    }
}
