//! Weighted least connections, as LVS's wlc: the backend with the fewest active sessions for
//! its weight takes the new one.
//!
//! The load of a backend is `(active + 1) / weight`: the `+ 1` counts the session being opened,
//! so that among idle backends the heaviest is first, and a backend with twice the weight takes
//! twice the sessions. Loads are compared by cross-multiplication in `u64`
//! (`(a + 1) * w_b < (b + 1) * w_a`; each product is below 2^64), without floats or division.
//! A backend of weight 0 is never picked.
//!
//! Ties: LVS takes the first backend of least load, so with equal loads the first backend of
//! the list takes every session until its count moves; when the counts move late (the caller
//! sums several workers' counts, or passes counts that are seconds old) the first backend takes
//! bursts. Here the scan for the least load starts after the backend picked last, so backends
//! of equal load take turns.
//!
//! `active[i]` is backend `i`'s number of active sessions, the caller's own and the other
//! workers' together; a backend beyond the end of `active` counts as idle. The pick is a scan
//! of the backends: O(backends), no allocation.

/// The weights and the rotation cursor.
#[derive(Debug, Clone)]
pub(super) struct Wlc {
    weights: Box<[u32]>,
    /// Where the next scan starts: after the backend picked last.
    next: usize,
}

impl Wlc {
    /// `None` if no backend has weight > 0.
    pub(super) fn new(weights: &[u32]) -> Option<Wlc> {
        weights.iter().any(|&w| w > 0).then(|| Wlc { weights: weights.into(), next: 0 })
    }

    #[inline]
    pub(super) fn pick(&mut self, active: &[u32]) -> Option<usize> {
        let n = self.weights.len();
        // (index, active + 1, weight) of the least loaded backend so far.
        let mut best: Option<(usize, u64, u64)> = None;
        let mut i = self.next;
        for _ in 0..n {
            if i >= n {
                i = 0;
            }
            let weight = u64::from(self.weights[i]);
            if weight > 0 {
                let load = u64::from(active.get(i).copied().unwrap_or(0)) + 1;
                match best {
                    Some((_, best_load, best_weight)) if load * best_weight >= best_load * weight => {}
                    _ => best = Some((i, load, weight)),
                }
            }
            i += 1;
        }
        let (picked, _, _) = best?;
        self.next = picked + 1;
        Some(picked)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Flow, Scheduler, SchedulerKind::Wlc};
    use std::net::Ipv4Addr;

    fn pick(s: &mut Scheduler, active: &[u32]) -> Option<usize> {
        s.pick(&Flow { client: Ipv4Addr::UNSPECIFIED, hash: 0, active })
    }

    /// Opens `n` sessions one after the other, each counted before the next pick.
    fn open(s: &mut Scheduler, active: &mut [u32], n: usize) {
        for _ in 0..n {
            let b = pick(s, active).expect("a backend");
            active[b] += 1;
        }
    }

    #[test]
    fn picks_the_least_loaded_for_its_weight() {
        // Loads (active + 1) / weight: 11/1, 11/2, 11/3: the heaviest.
        assert_eq!(pick(&mut Scheduler::new(Wlc, &[1, 2, 3]), &[10, 10, 10]), Some(2));
        // 5/1 = 5, 11/2 = 5.5, 16/3 = 5.33: the lightest, by a little.
        assert_eq!(pick(&mut Scheduler::new(Wlc, &[1, 2, 3]), &[4, 10, 15]), Some(0));
        // 2/1 vs 4/2 is a tie, 7/3 is more: one of the tied two, then the other.
        let mut s = Scheduler::new(Wlc, &[1, 2, 3]);
        assert_eq!(pick(&mut s, &[1, 3, 6]), Some(0));
        assert_eq!(pick(&mut s, &[1, 3, 6]), Some(1));
        assert_eq!(pick(&mut s, &[1, 3, 6]), Some(0));
        // Idle: the heaviest first (1/3 < 1/2 < 1/1).
        assert_eq!(pick(&mut Scheduler::new(Wlc, &[1, 2, 3]), &[0, 0, 0]), Some(2));
        // Counts missing at the end are idle backends.
        assert_eq!(pick(&mut Scheduler::new(Wlc, &[1, 1, 1]), &[5, 5]), Some(2));
        // Large counts and weights do not overflow: (u32::MAX + 1) * u32::MAX fits in u64.
        let mut s = Scheduler::new(Wlc, &[u32::MAX, u32::MAX - 1]);
        assert_eq!(pick(&mut s, &[u32::MAX, u32::MAX]), Some(0));
    }

    #[test]
    fn equal_backends_take_turns() {
        let mut s = Scheduler::new(Wlc, &[3, 3, 3, 3]);
        // Counts that do not move (another worker's view, late): rotation, not the first each time.
        let picked: Vec<_> = (0..8).map(|_| pick(&mut s, &[7, 7, 7, 7])).collect();
        assert_eq!(picked, [0, 1, 2, 3, 0, 1, 2, 3].map(Some));
    }

    #[test]
    fn sessions_spread_by_weight() {
        for (weights, n) in [
            (&[1, 1, 1][..], 3000),
            (&[1, 2, 3], 600),
            (&[1, 2, 3], 601),
            (&[5, 0, 1, 1], 1000),
            (&[100, 1], 5050),
            (&[7, 3, 11, 2], 2309),
        ] {
            let mut s = Scheduler::new(Wlc, weights);
            let mut active = vec![0; weights.len()];
            open(&mut s, &mut active, n);
            assert_within_one_of_share(weights, &active);
        }
    }

    #[test]
    fn a_new_backend_catches_up_then_shares() {
        let weights = [1, 1, 1];
        let mut s = Scheduler::new(Wlc, &weights);
        let mut active = vec![100, 100, 0];
        // The empty backend takes every new session until it has as many as the others.
        for _ in 0..100 {
            let b = pick(&mut s, &active).expect("a backend");
            assert_eq!(b, 2);
            active[b] += 1;
        }
        open(&mut s, &mut active, 300);
        assert_eq!(active, [200, 200, 200]);
        // Sessions of one backend end: it takes the next ones.
        active[0] -= 50;
        open(&mut s, &mut active, 50);
        assert_eq!(active, [200, 200, 200]);
    }

    #[test]
    fn weight_zero_is_never_picked() {
        let mut s = Scheduler::new(Wlc, &[0, 1, 0, 1]);
        let mut active = vec![0; 4];
        open(&mut s, &mut active, 100);
        assert_eq!(active, [0, 50, 0, 50]);
        assert_eq!(pick(&mut Scheduler::new(Wlc, &[0, 0]), &[]), None);
    }

    fn assert_within_one_of_share(weights: &[u32], active: &[u32]) {
        let total: u64 = active.iter().map(|&a| u64::from(a)).sum();
        let weight_sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        for (i, (&w, &a)) in weights.iter().zip(active).enumerate() {
            // |a - total * w / weight_sum| <= 1, in integers.
            let (a, share) = (i128::from(a) * i128::from(weight_sum), i128::from(total * u64::from(w)));
            assert!((a - share).abs() <= i128::from(weight_sum), "backend {i}: {active:?} for weights {weights:?}");
        }
    }
}
