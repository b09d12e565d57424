//! The Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
//! Load Balancer", NSDI 2016), behind `maglev` (indexed by the flow's hash) and `sh` (by the
//! client address's hash).
//!
//! Built on the control core; a pick is one division and one load from the table. Entries are
//! `u16` backend indexes: 128 KiB for the default 65537 entries, shared (`Arc`) by the clones of
//! a scheduler, read only.
//!
//! Permutations. Each backend has a stable key (`backend_key`, a hash of its address). From two
//! hashes of it come `offset` in `[0, M)` and `skip` in `[1, M)`; its preference list over the
//! table's `M` entries is `offset, offset + skip, offset + 2 skip, ... (mod M)`, which visits
//! every entry once because `M` is prime.
//!
//! Filling in turns. Backends take turns; in its turn a backend takes the next entry of its
//! preference list not taken yet, until the table is full. Each backend therefore gets about
//! `M / N` entries, mostly its first preferences; rebuilt without one backend, the others' turns
//! mostly find the same entries free as before, so most of their entries stay theirs and the
//! entries that change are about the leaving backend's `1 / N` (the paper's figures, and
//! `tests`). Turns go by key order, not list order, so the table maps each flow to the same
//! backend *address* on every node whatever the order of the backends in its configuration.
//!
//! Weights: credit per round (normalised by the largest weight, not by the gcd). Each round,
//! every backend gains its weight as credit, and a backend with credit >= the largest weight
//! pays that much and takes one turn. The heaviest backends take a turn every round, a backend
//! of weight `w` about `w / max` of the rounds, spread evenly: over the whole table, backend
//! `i` gets `M * w_i / sum(w)` entries, give or take about one round (at most one entry per
//! backend), which for ratios such as 1:2:3 is within a few entries of exact (`tests`). Unlike
//! whole turns per round after dividing by the gcd, a round never gives one backend many turns
//! in a row, and large coprime weights (1000:999) cost nothing more. A backend of weight 0 takes
//! no turn and gets no entry. The cost of a build is O(M * max / mean weight) turns.
//!
//! Table size: `M` must be prime (for the permutations) and much larger than the number of
//! backends `N` (each backend's share is whole entries, and the paper asks `M >= 100 N` for a
//! balance within about 1%). The size used is the smallest prime >= both the size asked for and
//! `100 N`, where `N` counts every backend of the list, weight 0 included, so that draining
//! a backend does not resize (and so reshuffle) the table. The size asked for is first capped
//! at `MAX_TABLE_SIZE`.

use std::sync::Arc;

use super::hash::{mix, OFFSET, SKIP};

/// The table size `Scheduler::new` uses for maglev: prime, and >= 100 x 655 backends.
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;
/// The table size `Scheduler::new` asks for sh: prime, >= 100 x 40 backends (more backends
/// get a larger table by the 100 x N rule). Clients, not flows, index it: it needs no more.
pub(super) const SH_TABLE_SIZE: u32 = 4_093;
/// The largest size asked for that is honoured: 16 Mi entries, 32 MiB.
pub(super) const MAX_TABLE_SIZE: u32 = 1 << 24;
/// Backends beyond the first `MAX_BACKENDS` get no entry: `u16::MAX` marks a free entry while
/// the table fills. (A snapshot holds far fewer.)
const MAX_BACKENDS: usize = u16::MAX as usize;
const FREE: u16 = u16::MAX;

/// A filled lookup table: entry -> backend index.
#[derive(Debug, Clone)]
pub(super) struct Table {
    entries: Arc<[u16]>,
}

/// A backend while the table fills: its place in its preference list and its credit.
struct Turn {
    key: u64,
    backend: u16,
    weight: u64,
    credit: u64,
    /// The next entry of its preference list to try.
    entry: u64,
    skip: u64,
}

impl Table {
    /// The table over backends `0..weights.len()`; `key(i)` is backend `i`'s stable key (a
    /// backend without one gets no entry). `None` when no backend gets an entry.
    pub(super) fn build(weights: &[u32], key: impl Fn(usize) -> Option<u64>, size_asked: u32) -> Option<Table> {
        let backends = weights.len().min(MAX_BACKENDS);
        let size = table_size(size_asked, backends);
        let m = u64::from(size);
        let mut turns: Vec<Turn> = (0..backends)
            .filter(|&i| weights[i] > 0)
            .filter_map(|i| {
                let key = key(i)?;
                let entry = mix(key ^ OFFSET) % m;
                let skip = mix(key ^ SKIP) % (m - 1) + 1;
                Some(Turn { key, backend: i as u16, weight: u64::from(weights[i]), credit: 0, entry, skip })
            })
            .collect();
        let max = turns.iter().map(|t| t.weight).max()?;
        turns.sort_unstable_by_key(|t| (t.key, t.backend));
        let mut entries = vec![FREE; size as usize];
        let mut filled = 0;
        'fill: loop {
            for t in &mut turns {
                t.credit += t.weight;
                if t.credit < max {
                    continue;
                }
                t.credit -= max;
                // Ends: the table is not full and the preference list visits every entry.
                while entries[t.entry as usize] != FREE {
                    t.entry += t.skip;
                    if t.entry >= m {
                        t.entry -= m;
                    }
                }
                entries[t.entry as usize] = t.backend;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Some(Table { entries: entries.into() })
    }

    /// The backend of the flow or client of hash `hash`.
    #[inline]
    pub(super) fn lookup(&self, hash: u64) -> Option<usize> {
        let at = hash.checked_rem(self.entries.len() as u64)?;
        self.entries.get(at as usize).map(|&b| usize::from(b))
    }

    #[cfg(test)]
    pub(super) fn entries(&self) -> &[u16] {
        &self.entries
    }
}

/// The table size for `size_asked` over `backends` backends: the smallest prime >= both
/// `min(size_asked, MAX_TABLE_SIZE)` and `100 * backends`.
pub(super) fn table_size(size_asked: u32, backends: usize) -> u32 {
    let floor = (backends.min(MAX_BACKENDS) as u32) * 100;
    next_prime(size_asked.min(MAX_TABLE_SIZE).max(floor).max(2))
}

/// The smallest prime >= `n`, for `n` <= `MAX_TABLE_SIZE` (primes are close together there: no
/// overflow).
fn next_prime(mut n: u32) -> u32 {
    while !is_prime(n) {
        n += 1;
    }
    n
}

/// Trial division by 2 and the odd numbers up to the square root: at most 2048 divisions for
/// the largest size.
pub(super) fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n & 1 == 0 {
        return false;
    }
    let mut d = 3u64;
    while d * d <= u64::from(n) {
        if u64::from(n) % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests;
