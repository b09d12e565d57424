//! Round robin and smooth weighted round robin: a cursor over a cycle of backends.
//!
//! `Wrr` is smooth weighted round robin (nginx's), not LVS's interleaved wrr. Both give each
//! backend exactly its weight over `sum(weights)` picks, but LVS's sends runs to the heaviest
//! backends first (weights 5,1,1 give `a a a a a b c`), and since every worker starts its own
//! copy of the cycle at the same time, a burst of new connections after a configuration change
//! lands on one backend from all workers at once. Smooth wrr spreads each backend's picks over
//! the cycle (5,1,1 give `a a b a c a a`).
//!
//! The smooth algorithm costs O(backends) a pick, so the scheduler is built with one full cycle
//! precomputed (weights divided by their gcd) when that cycle has at most `MAX_CYCLE` picks:
//! then a pick is one load and one increment, for rr and for the usual weights alike. Longer
//! cycles (large, coprime weights) run the algorithm live, with the same sequence.

use super::Plan;

/// The longest cycle precomputed: 16 KiB of backend indexes.
pub(super) const MAX_CYCLE: usize = 4096;

/// A precomputed cycle of backend indexes and the cursor in it.
#[derive(Debug, Clone)]
pub(super) struct Cycle {
    order: Box<[u32]>,
    next: usize,
}

/// Smooth wrr run live: `weights` are the backends with weight > 0 (index, weight / gcd).
#[derive(Debug, Clone)]
pub(super) struct Smooth {
    weights: Box<[(u32, i64)]>,
    current: Box<[i64]>,
    total: i64,
}

/// The plan of rr (`weighted` false: every backend of weight > 0 once a cycle) or smooth wrr.
pub(super) fn plan(weighted: bool, weights: &[u32], max_cycle: usize) -> Plan {
    let divisor = weights.iter().fold(0, |g, &w| gcd(g, w));
    let active: Vec<(u32, i64)> =
        weights.iter().enumerate().filter(|&(_, &w)| w > 0).map(|(i, &w)| (i as u32, i64::from(w / divisor))).collect();
    if active.is_empty() {
        return Plan::Empty;
    }
    if !weighted {
        return Plan::Cycle(Cycle { order: active.iter().map(|&(i, _)| i).collect(), next: 0 });
    }
    let total: i64 = active.iter().map(|&(_, w)| w).sum();
    let mut smooth = Smooth { current: vec![0; active.len()].into_boxed_slice(), weights: active.into(), total };
    if total as u64 <= max_cycle as u64 {
        let order = (0..total).map(|_| smooth.pick() as u32).collect();
        return Plan::Cycle(Cycle { order, next: 0 });
    }
    Plan::Smooth(smooth)
}

impl Cycle {
    /// What `pick` returns after the next `ahead` picks (0: next).
    #[inline]
    pub(super) fn peek(&self, ahead: usize) -> Option<usize> {
        let len = self.order.len();
        (len > 0).then(|| self.order[super::turn(self.next, ahead, len)] as usize)
    }

    #[inline]
    pub(super) fn pick(&mut self) -> Option<usize> {
        let backend = *self.order.get(self.next)?;
        self.next = if self.next + 1 == self.order.len() { 0 } else { self.next + 1 };
        Some(backend as usize)
    }
}

impl Smooth {
    /// One step of smooth wrr: every backend gains its weight, the one with the most (the
    /// first, on a tie) is picked and pays back the total. Over `total` steps each backend
    /// is picked exactly `weight` times, spread as evenly as the weights allow.
    pub(super) fn pick(&mut self) -> usize {
        let mut best = 0;
        for (i, &(_, weight)) in self.weights.iter().enumerate() {
            self.current[i] += weight;
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        self.weights[best].0 as usize
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{counts, picks};
    use super::super::{Scheduler, SchedulerKind::*};
    use super::*;

    fn with_max_cycle(weights: &[u32], max_cycle: usize) -> Scheduler {
        Scheduler { plan: plan(true, weights, max_cycle) }
    }

    /// Every window of sum(weights) consecutive picks, wherever it starts, gives each backend
    /// exactly its weight.
    fn assert_exact(weights: &[u32], max_cycle: usize) {
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut s = with_max_cycle(weights, max_cycle);
        let picked = picks(&mut s, 3 * sum as usize);
        let expected: Vec<u64> = weights.iter().map(|&w| u64::from(w)).collect();
        for start in [0, 1, sum as usize / 2, sum as usize - 1, sum as usize] {
            let window = &picked[start..start + sum as usize];
            assert_eq!(counts(window, weights.len()), expected, "weights {weights:?} from pick {start}");
        }
    }

    #[test]
    fn wrr_gives_each_backend_its_weight() {
        for weights in [
            &[1, 1, 1][..],
            &[5, 1, 1],
            &[0, 3, 0, 2],
            &[7],
            &[1000, 1],
            &[4, 2, 6],
            &[100, 100],
            &[3, 0],
            &[65_535, 1, 2],
        ] {
            assert_exact(weights, MAX_CYCLE);
            assert_exact(weights, 0); // run live
        }
    }

    #[test]
    fn wrr_large_coprime_weights_run_live_and_stay_exact() {
        let weights = [100_000, 99_999, 3];
        let s = Scheduler::new(Wrr, &weights);
        assert!(matches!(s.plan, Plan::Smooth(_)));
        assert_exact(&weights, MAX_CYCLE);
    }

    #[test]
    fn wrr_interleaves_smoothly() {
        let mut s = Scheduler::new(Wrr, &[5, 1, 1]);
        assert_eq!(picks(&mut s, 14), [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
        // 1000 to 1: the light backend once per cycle, not after a run of a thousand.
        let mut s = Scheduler::new(Wrr, &[1000, 1]);
        let cycle = picks(&mut s, 1001);
        assert_eq!(cycle.iter().position(|&b| b == 1), Some(500));
    }

    #[test]
    fn precomputed_and_live_sequences_agree() {
        for weights in [&[5, 1, 1][..], &[9, 6, 3, 0, 1], &[1000, 1], &[2, 3, 5, 7]] {
            let sum: u32 = weights.iter().sum();
            let mut cycle = Scheduler::new(Wrr, weights);
            let mut live = with_max_cycle(weights, 0);
            assert!(matches!(cycle.plan, Plan::Cycle(_)) && matches!(live.plan, Plan::Smooth(_)));
            let n = 2 * sum as usize;
            assert_eq!(picks(&mut cycle, n), picks(&mut live, n), "{weights:?}");
        }
    }

    #[test]
    fn rr_rotates_over_backends_with_weight() {
        let mut s = Scheduler::new(Rr, &[1, 1, 1]);
        assert_eq!(counts(&picks(&mut s, 3000), 3), [1000, 1000, 1000]);
        let mut s = Scheduler::new(Rr, &[5, 0, 2, 9]);
        assert_eq!(picks(&mut s, 7), [0, 2, 3, 0, 2, 3, 0]);
    }

    #[test]
    fn clones_keep_their_own_cursor() {
        let mut a = Scheduler::new(Wrr, &[2, 1]);
        assert_eq!(picks(&mut a, 1), [0]);
        let mut b = a.clone();
        assert_eq!(picks(&mut a, 3), [1, 0, 0]);
        assert_eq!(picks(&mut b, 3), [1, 0, 0]);
    }
}
