//! Schedulers: which backend of a service a new connection goes to.
//!
//! Owns: a cursor over a service's backends. Built on the control plane from the backends'
//! weights (that is where it allocates); each worker keeps its own clone, so picking takes no
//! lock and no shared write. Must never, in `pick`: allocate, block, or panic.
//!
//! `Wrr` is smooth weighted round robin (nginx's), not LVS's interleaved wrr. Both give each
//! backend exactly its weight over `sum(weights)` picks, but LVS's sends runs to the heaviest
//! backends first (weights 5,1,1 give `a a a a a b c`), and since every worker starts its own
//! copy of the cycle at the same time, a burst of new connections after a configuration change
//! lands on one backend from all workers at once. Smooth wrr spreads each backend's picks over
//! the cycle (5,1,1 give `a a b a c a a`).
//!
//! The smooth algorithm costs O(backends) a pick, so `new` runs it ahead of time and stores one
//! full cycle (weights divided by their gcd) when that cycle has at most `MAX_CYCLE` picks:
//! then a pick is one load and one increment, for rr and for the usual weights alike. Longer
//! cycles (large, coprime weights) run the algorithm live, with the same sequence.

/// How a service spreads new connections over its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    /// Round robin over the backends with weight > 0; other weights do not matter.
    Rr,
    /// Smooth weighted round robin.
    Wrr,
}

/// The longest cycle `new` precomputes: 16 KiB of backend indexes.
const MAX_CYCLE: usize = 4096;

/// One service's scheduler, one clone per worker, each with its own cursor.
#[derive(Debug, Clone)]
pub struct Scheduler {
    plan: Plan,
}

#[derive(Debug, Clone)]
enum Plan {
    /// No backend with weight > 0.
    Empty,
    /// A precomputed cycle of backend indexes.
    Cycle { order: Box<[u32]>, next: usize },
    /// Smooth wrr run live: `weights` are the backends with weight > 0 (index, weight / gcd).
    Smooth { weights: Box<[(u32, i64)]>, current: Box<[i64]>, total: i64 },
}

impl Scheduler {
    /// A scheduler over backends `0..weights.len()`; a backend of weight 0 is never picked.
    pub fn new(kind: SchedulerKind, weights: &[u32]) -> Scheduler {
        Scheduler::with_max_cycle(kind, weights, MAX_CYCLE)
    }

    fn with_max_cycle(kind: SchedulerKind, weights: &[u32], max_cycle: usize) -> Scheduler {
        let divisor = weights.iter().fold(0, |g, &w| gcd(g, w));
        let active: Vec<(u32, i64)> = weights
            .iter()
            .enumerate()
            .filter(|&(_, &w)| w > 0)
            .map(|(i, &w)| (i as u32, i64::from(w / divisor)))
            .collect();
        let plan = if active.is_empty() {
            Plan::Empty
        } else if kind == SchedulerKind::Rr {
            Plan::Cycle { order: active.iter().map(|&(i, _)| i).collect(), next: 0 }
        } else {
            let total: i64 = active.iter().map(|&(_, w)| w).sum();
            let mut smooth =
                Plan::Smooth { current: vec![0; active.len()].into_boxed_slice(), weights: active.into(), total };
            if total as u64 <= max_cycle as u64 {
                let order = (0..total).map(|_| smooth.pick_smooth()).collect();
                smooth = Plan::Cycle { order, next: 0 };
            }
            smooth
        };
        Scheduler { plan }
    }

    /// The index of the backend for the next new connection; `None` if there are no backends
    /// or all weights are 0.
    #[inline]
    pub fn pick(&mut self) -> Option<usize> {
        match &mut self.plan {
            Plan::Empty => None,
            Plan::Cycle { order, next } => {
                let backend = *order.get(*next)?;
                *next = if *next + 1 == order.len() { 0 } else { *next + 1 };
                Some(backend as usize)
            }
            smooth @ Plan::Smooth { .. } => Some(smooth.pick_smooth() as usize),
        }
    }
}

impl Plan {
    /// One step of smooth wrr: every backend gains its weight, the one with the most (the
    /// first, on a tie) is picked and pays back the total. Over `total` steps each backend
    /// is picked exactly `weight` times, spread as evenly as the weights allow.
    fn pick_smooth(&mut self) -> u32 {
        let Plan::Smooth { weights, current, total } = self else {
            return 0;
        };
        let mut best = 0;
        for (i, &(_, weight)) in weights.iter().enumerate() {
            current[i] += weight;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= *total;
        weights[best].0
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
    use super::*;
    use SchedulerKind::{Rr, Wrr};

    fn picks(s: &mut Scheduler, n: usize) -> Vec<usize> {
        (0..n).map(|_| s.pick().expect("a backend")).collect()
    }

    fn counts(picked: &[usize], backends: usize) -> Vec<u64> {
        let mut counts = vec![0; backends];
        for &b in picked {
            counts[b] += 1;
        }
        counts
    }

    /// Every window of sum(weights) consecutive picks, wherever it starts, gives each backend
    /// exactly its weight.
    fn assert_exact(weights: &[u32], max_cycle: usize) {
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut s = Scheduler::with_max_cycle(Wrr, weights, max_cycle);
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
        assert!(matches!(s.plan, Plan::Smooth { .. }));
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
            let mut live = Scheduler::with_max_cycle(Wrr, weights, 0);
            assert!(matches!(cycle.plan, Plan::Cycle { .. }) && matches!(live.plan, Plan::Smooth { .. }));
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
    fn no_backend_to_pick() {
        for kind in [Rr, Wrr] {
            assert_eq!(Scheduler::new(kind, &[]).pick(), None);
            assert_eq!(Scheduler::new(kind, &[0, 0]).pick(), None);
            let mut single = Scheduler::new(kind, &[0, 4]);
            assert_eq!(picks(&mut single, 5), [1; 5]);
        }
    }

    #[test]
    fn clones_keep_their_own_cursor() {
        let mut a = Scheduler::new(Wrr, &[2, 1]);
        assert_eq!(a.pick(), Some(0));
        let mut b = a.clone();
        assert_eq!(picks(&mut a, 3), [1, 0, 0]);
        assert_eq!(picks(&mut b, 3), [1, 0, 0]);
    }
}
