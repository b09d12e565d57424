//! Schedulers: which backend of a service a new connection goes to.
//!
//! Owns: the choice of a backend for a new flow, from the backends' weights and, by kind, a
//! rotation cursor (rr, wrr, wlc), a lookup table indexed by the flow's hash (maglev) or by the
//! client address's hash (sh). Built on the control core: that is where it allocates and where
//! any table is computed. Each worker then owns its own clone (clones share the read-only
//! tables), so picking takes no lock and no shared write. Must never, in `pick`: allocate,
//! block, or panic.
//!
//! | kind   | spreads by                        | same client -> same backend         | pick        |
//! |--------|-----------------------------------|-------------------------------------|-------------|
//! | rr     | turns, weights ignored (but 0)    | no                                  | O(1)        |
//! | wrr    | smooth weighted turns (`wrr`)     | no                                  | O(1) mostly |
//! | wlc    | fewest active sessions for weight | no                                  | O(backends) |
//! | sh     | maglev table over the client's ip | yes, while backends/weights stay    | O(1)        |
//! | maglev | maglev table over the flow's hash | per flow: on every node and worker, and through most changes | O(1) |
//!
//! Files: `wrr` (rr and smooth wrr), `wlc`, `maglev` (the table of maglev and sh), `hash` (the
//! hashes every node computes alike).
//!
//! Backend identity for the tables: `Scheduler::new` keys backend `i` by its index, which is
//! stable across nodes and workers as long as the list of backends is the same, in the same
//! order; a backend removed from the middle of the list then shifts the others' keys and moves
//! far more flows than its own. Callers that know the backends' addresses should build with
//! `Scheduler::maglev` / `Scheduler::sh` and `backend_key`: keys that follow a backend wherever
//! it is in the list.

use std::net::Ipv4Addr;

mod hash;
mod maglev;
mod wlc;
mod wrr;

pub use hash::{backend_key, flow_hash};
pub use maglev::DEFAULT_TABLE_SIZE as MAGLEV_TABLE_SIZE;

/// `(i + k) % n`, where a rotation takes its turns (`n > 0`): a compare and a subtract for
/// the usual `i < n` and small `k`, not a division (a few tens of cycles, several times for
/// every new session otherwise); `%` only for a cursor left past a rotation that shrank.
#[inline(always)]
pub fn turn(i: usize, k: usize, n: usize) -> usize {
    let j = i + k;
    if j < n {
        j
    } else if j - n < n {
        j - n
    } else {
        j % n
    }
}

/// How a service spreads new connections over its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    /// Round robin over the backends with weight > 0; other weights do not matter.
    Rr,
    /// Smooth weighted round robin.
    Wrr,
    /// Weighted least connections: fewest `(active + 1) / weight`.
    Wlc,
    /// Source hashing: by the client's address, weighted.
    Sh,
    /// Maglev consistent hashing of the flow, weighted.
    Maglev,
}

/// What a scheduler may look at of a new flow. Each kind reads only its own field.
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    /// The client's address (sh).
    pub client: Ipv4Addr,
    /// `flow_hash` of the new flow (maglev).
    pub hash: u64,
    /// Active sessions per backend, every worker's together (wlc); missing ones count as 0.
    pub active: &'a [u32],
}

/// One service's scheduler, one clone per worker, each with its own cursor.
///
/// Built on the control core (this is where any table is computed), then moved to a worker,
/// which only calls `pick`.
#[derive(Debug, Clone)]
pub struct Scheduler {
    plan: Plan,
}

#[derive(Debug, Clone)]
enum Plan {
    /// No backend to pick.
    Empty,
    Cycle(wrr::Cycle),
    Smooth(wrr::Smooth),
    Wlc(wlc::Wlc),
    Sh(maglev::Table),
    Maglev(maglev::Table),
}

impl Scheduler {
    /// A scheduler over backends `0..weights.len()`; a backend of weight 0 is never picked.
    /// Sh and maglev key the backends by their index (see the module's comment); maglev's
    /// table has `MAGLEV_TABLE_SIZE` entries, or more for more than 655 backends.
    pub fn new(kind: SchedulerKind, weights: &[u32]) -> Scheduler {
        let by_index = |i: usize| Some(hash::index_key(i));
        let plan = match kind {
            SchedulerKind::Rr => wrr::plan(false, weights, wrr::MAX_CYCLE),
            SchedulerKind::Wrr => wrr::plan(true, weights, wrr::MAX_CYCLE),
            SchedulerKind::Wlc => wlc::Wlc::new(weights).map_or(Plan::Empty, Plan::Wlc),
            SchedulerKind::Sh => {
                maglev::Table::build(weights, by_index, maglev::SH_TABLE_SIZE).map_or(Plan::Empty, Plan::Sh)
            }
            SchedulerKind::Maglev => {
                maglev::Table::build(weights, by_index, MAGLEV_TABLE_SIZE).map_or(Plan::Empty, Plan::Maglev)
            }
        };
        Scheduler { plan }
    }

    /// Maglev over backends `0..weights.len()`, backend `i` placed by `keys[i]` (`backend_key`
    /// of its address: the same table on every node and every worker, mostly the same when a
    /// backend leaves). The table has the smallest prime number of entries >= `table_size`
    /// and >= 100 x `weights.len()` (`table_size` capped at 2^24 first). A backend of weight 0,
    /// or without a key (`keys` shorter than `weights`), gets no entry.
    pub fn maglev(weights: &[u32], keys: &[u64], table_size: u32) -> Scheduler {
        debug_assert_eq!(weights.len(), keys.len(), "one key per backend");
        let table = maglev::Table::build(weights, |i| keys.get(i).copied(), table_size);
        Scheduler { plan: table.map_or(Plan::Empty, Plan::Maglev) }
    }

    /// Source hashing with backends placed by `keys`, as `maglev`, on a table of about
    /// 4093 entries (more for more than 40 backends).
    pub fn sh(weights: &[u32], keys: &[u64]) -> Scheduler {
        debug_assert_eq!(weights.len(), keys.len(), "one key per backend");
        let table = maglev::Table::build(weights, |i| keys.get(i).copied(), maglev::SH_TABLE_SIZE);
        Scheduler { plan: table.map_or(Plan::Empty, Plan::Sh) }
    }

    /// The index of the backend for the new flow `flow`; `None` if there are no backends or
    /// all weights are 0. No allocation; O(1) but for wlc (O(backends)) and for wrr with a
    /// cycle too long to precompute.
    /// What `pick` returns after the next `ahead` picks (0: the next) whatever the flows,
    /// where the plan knows that in advance (rr, and wrr with a precomputed cycle); `None`
    /// otherwise. For prefetching only.
    #[inline]
    pub fn peek(&self, ahead: usize) -> Option<usize> {
        match &self.plan {
            Plan::Cycle(cycle) => cycle.peek(ahead),
            _ => None,
        }
    }

    #[inline]
    pub fn pick(&mut self, flow: &Flow) -> Option<usize> {
        match &mut self.plan {
            Plan::Empty => None,
            Plan::Cycle(cycle) => cycle.pick(),
            Plan::Smooth(smooth) => Some(smooth.pick()),
            Plan::Wlc(wlc) => wlc.pick(flow.active),
            Plan::Sh(table) => table.lookup(hash::client_hash(flow.client)),
            Plan::Maglev(table) => table.lookup(flow.hash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SchedulerKind::*;

    const ALL: [SchedulerKind; 5] = [Rr, Wrr, Wlc, Sh, Maglev];

    /// The `i`th of many distinct flows, from distinct clients.
    pub(super) fn flow(i: u32) -> Flow<'static> {
        let client = Ipv4Addr::from(0x0a00_0000 + i);
        Flow { client, hash: flow_hash(6, client, 40000 + (i % 20000) as u16), active: &[] }
    }

    /// `n` picks, each for a new flow of its own, every session still active (for wlc).
    pub(super) fn picks(s: &mut Scheduler, n: usize) -> Vec<usize> {
        let mut active = Vec::new();
        (0..n as u32)
            .map(|i| {
                let b = s.pick(&Flow { active: &active, ..flow(i) }).expect("a backend");
                if active.len() <= b {
                    active.resize(b + 1, 0);
                }
                active[b] += 1;
                b
            })
            .collect()
    }

    pub(super) fn counts(picked: &[usize], backends: usize) -> Vec<u64> {
        let mut counts = vec![0; backends];
        for &b in picked {
            counts[b] += 1;
        }
        counts
    }

    #[test]
    fn no_backend_to_pick() {
        for kind in ALL {
            assert_eq!(Scheduler::new(kind, &[]).pick(&flow(1)), None, "{kind:?}");
            assert_eq!(Scheduler::new(kind, &[0, 0]).pick(&flow(1)), None, "{kind:?}");
            let mut single = Scheduler::new(kind, &[0, 4]);
            assert_eq!(counts(&picks(&mut single, 500), 2), [0, 500], "{kind:?}");
        }
        assert_eq!(Scheduler::maglev(&[0, 0], &[1, 2], 101).pick(&flow(1)), None);
        assert_eq!(Scheduler::sh(&[], &[]).pick(&flow(1)), None);
    }

    #[test]
    fn turn_is_the_remainder_without_dividing() {
        for n in 1..40 {
            for i in 0..3 * n {
                for k in 0..3 * n {
                    assert_eq!(turn(i, k, n), (i + k) % n, "turn({i}, {k}, {n})");
                }
            }
        }
    }

    #[test]
    fn peek_tells_the_next_pick_where_the_plan_knows_it() {
        for (kind, weights) in [(Rr, vec![1, 1, 1]), (Wrr, vec![5, 1, 0, 2]), (Rr, vec![0, 7])] {
            let mut s = Scheduler::new(kind, &weights);
            let ahead: Vec<Option<usize>> = (0..50).map(|k| s.peek(k)).collect();
            for (i, peeked) in ahead.into_iter().enumerate() {
                assert!(peeked.is_some(), "{kind:?}: a cycle knows its picks");
                assert_eq!(s.peek(0), peeked, "{kind:?} pick {i}");
                assert_eq!(peeked, s.pick(&flow(i as u32)), "{kind:?} pick {i}");
            }
        }
        // Live smooth wrr (a cycle too long to precompute), least connection and the hashes
        // depend on the flow or the load: nothing to tell.
        assert_eq!(Scheduler { plan: wrr::plan(true, &[4_000, 4_001], wrr::MAX_CYCLE) }.peek(0), None);
        for kind in [Wlc, Sh, Maglev] {
            assert_eq!(Scheduler::new(kind, &[1, 1]).peek(1), None, "{kind:?}");
        }
        assert_eq!(Scheduler::new(Rr, &[]).peek(0), None);
    }

    #[test]
    fn weight_zero_is_never_picked() {
        let weights = [0, 3, 0, 1, 2, 0];
        for kind in ALL {
            let mut s = Scheduler::new(kind, &weights);
            let picked = counts(&picks(&mut s, 30_000), weights.len());
            for (b, (&w, &n)) in weights.iter().zip(&picked).enumerate() {
                assert_eq!(w == 0, n == 0, "{kind:?}: backend {b} of weight {w} picked {n} times");
            }
        }
    }

    #[test]
    fn every_kind_follows_the_weights() {
        // 60,000 new flows over 1:2:3, each flow from its own client: within 2% of the share
        // for the hashing kinds (the hash's sampling noise is about 0.4%), exact for the others.
        let weights = [1, 2, 3];
        for kind in ALL {
            let mut s = Scheduler::new(kind, &weights);
            let picked = counts(&picks(&mut s, 60_000), 3);
            let expected = if kind == Rr { [20_000; 3] } else { [10_000, 20_000, 30_000] };
            for (b, (&n, &e)) in picked.iter().zip(&expected).enumerate() {
                let tolerance = if matches!(kind, Sh | Maglev) { e / 50 } else { 0 };
                assert!(n.abs_diff(e) <= tolerance, "{kind:?}: backend {b} took {n}, expected {e}: {picked:?}");
            }
        }
    }

    #[test]
    fn a_worker_moves_a_scheduler_it_did_not_build() {
        fn assert_send<T: Send + 'static>(_: &T) {}
        for kind in ALL {
            assert_send(&Scheduler::new(kind, &[1, 2]));
        }
    }
}
